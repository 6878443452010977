//! Container state under the runtime root: one directory per container id.
//!
//! ```text
//! <root>/                 0700, on tmpfs (/run/moor/runtime by default)
//!   <id>/                 created atomically by mkdir: a second create of an id fails
//!     state.json          what the runtime must remember (written atomically)
//!     config.json         the bundle's configuration as it was at create, for exec
//!     exec.fifo           present from create until start
//! ```
//!
//! The status is not stored: it is derived each time from the init process's identity,
//! the fifo and the freezer, so it can never go stale (a container whose init died is
//! stopped even if nobody told the runtime). Verbs that change a container hold an
//! exclusive `flock` on its directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::NamespaceKind;
use crate::identity::ProcessIdentity;

/// The default runtime root: on tmpfs, so container state never outlives a reboot and
/// never wears the disk.
pub const DEFAULT_ROOT: &str = "/run/moor/runtime";

/// Largest state file the runtime will read back (it writes a few hundred bytes).
const MAX_STATE_BYTES: u64 = 1 << 20;

/// Format version of `state.json`.
const STATE_VERSION: u32 = 1;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "invalid container id {id:?}: use 1 to 1024 letters, digits, '_', '+', '-' or '.', not starting with '.'"
    )]
    InvalidId { id: String },
    #[error("container id {id:?} is already in use")]
    IdInUse { id: String },
    #[error("container {id:?} does not exist")]
    NotFound { id: String },
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `name` is safe as one file name of our own (a container id, a lease holder, a
/// lock key): 1 to `max_len` bytes of `[A-Za-z0-9_+.-]`, not starting with `.` (so never
/// `.`, `..` or a hidden file).
pub(crate) fn is_plain_file_name(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
}

/// Container ids as runc accepts them, and never a path component that means something.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = is_plain_file_name(id, 1024);
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId { id: id.to_string() })
    }
}

/// What the runtime remembers about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    pub version: u32,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 time of creation.
    pub created: String,
    /// User name (or uid) of whoever created it.
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
    /// The container's first process.
    pub init: ProcessIdentity,
    /// The container's cgroup, relative to each hierarchy's root.
    pub cgroup_path: PathBuf,
    /// The namespaces the container has (new or joined), which `exec` enters.
    pub namespaces: Vec<NamespaceKind>,
}

impl StoredState {
    /// A state for a container whose init is `init`, created now.
    pub fn new(
        id: &str,
        bundle: &Path,
        rootfs: &Path,
        init: ProcessIdentity,
        cgroup_path: &Path,
        namespaces: Vec<NamespaceKind>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        Self {
            version: STATE_VERSION,
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            owner: owner_name(),
            annotations,
            init,
            cgroup_path: cgroup_path.to_path_buf(),
            namespaces,
        }
    }
}

/// The name of the effective user, as runc reports `owner`.
fn owner_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The runtime root and the containers in it.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
}

impl StateStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes a directory for a new container, failing if the id is taken. The directory
    /// is locked; dropping the returned handle without `commit`ting removes it again.
    pub fn reserve(&self, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io_err("create runtime root", &self.root))?;
        let path = self.root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::IdInUse { id: id.to_string() });
            }
            Err(e) => return Err(io_err("create container directory", &path)(e)),
        }
        let lock = lock_dir(&path)?;
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
            remove_on_drop: true,
        })
    }

    /// Opens and locks an existing container's directory.
    pub fn open(&self, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        let path = self.root.join(id);
        let lock = match lock_dir(&path) {
            Ok(lock) => lock,
            Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound { id: id.to_string() });
            }
            Err(e) => return Err(e),
        };
        // A concurrent delete may have removed the directory while we waited.
        if !path.join("state.json").exists() {
            return Err(StateError::NotFound { id: id.to_string() });
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
            remove_on_drop: false,
        })
    }

    /// Removes the directory of a create that died before it wrote the state file (an
    /// id would otherwise stay taken forever). Waits for the directory's lock first, so
    /// a create still in progress is never disturbed.
    pub fn remove_unfinished(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        let path = self.root.join(id);
        let _lock = match lock_dir(&path) {
            Ok(lock) => lock,
            Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if path.join("state.json").exists() {
            return Ok(());
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove unfinished container directory", &path)(e)),
        }
    }

    /// Ids of every container with a state file, sorted.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list runtime root", &self.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok() && self.root.join(id).join("state.json").exists())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock_dir(path: &Path) -> Result<File, StateError> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err("open container directory", path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err("lock container directory", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(dir)
}

/// One container's locked state directory.
#[derive(Debug)]
pub struct ContainerDir {
    id: String,
    path: PathBuf,
    _lock: File,
    remove_on_drop: bool,
}

impl ContainerDir {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fifo that holds a created container's init until `start`.
    pub fn fifo_path(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    /// The copy of the bundle's configuration taken at create.
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    /// Keeps the directory when the handle is dropped (create succeeded).
    pub fn commit(&mut self) {
        self.remove_on_drop = false;
    }

    pub fn read_state(&self) -> Result<StoredState, StateError> {
        peek(&self.path, &self.id)
    }

    pub fn write_state(&self, state: &StoredState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state).map_err(|e| StateError::Corrupt {
            path: self.path.join("state.json"),
            reason: e.to_string(),
        })?;
        write_atomic(&self.path.join("state.json"), &bytes, 0o600)
    }

    /// Removes the directory and everything in it.
    pub fn remove(mut self) -> Result<(), StateError> {
        self.remove_on_drop = false;
        fs::remove_dir_all(&self.path).map_err(io_err("remove container directory", &self.path))
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Reads a container's state without locking its directory (the file is only ever
/// replaced whole, so a reader sees a complete one).
pub fn peek(dir: &Path, id: &str) -> Result<StoredState, StateError> {
    let path = dir.join("state.json");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StateError::NotFound { id: id.to_string() });
        }
        Err(e) => return Err(io_err("open state", &path)(e)),
    };
    let len = file.metadata().map_err(io_err("stat state", &path))?.len();
    if len > MAX_STATE_BYTES {
        return Err(StateError::Corrupt {
            path,
            reason: format!("{len} bytes is more than a state file can be"),
        });
    }
    let state: StoredState =
        serde_json::from_reader(io::BufReader::new(file)).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if state.version != STATE_VERSION || state.id != id {
        return Err(StateError::Corrupt {
            path,
            reason: format!(
                "expected version {STATE_VERSION} for id {id:?}, found version {} for id {:?}",
                state.version, state.id
            ),
        });
    }
    Ok(state)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader sees the
/// old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> StoredState {
        StoredState::new(
            id,
            Path::new("/b"),
            Path::new("/b/rootfs"),
            ProcessIdentity {
                pid: 1,
                start_time: 2,
                boot_id: "x".into(),
            },
            Path::new("/moor/a"),
            vec![NamespaceKind::Pid, NamespaceKind::Mount],
            BTreeMap::new(),
        )
    }

    #[test]
    fn ids_that_could_mean_a_path_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "a\0b",
            "a b",
            &"x".repeat(1025),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "web-1", "A_b.c+d", "0"] {
            assert!(validate_id(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn second_reserve_of_an_id_is_refused_and_drop_cleans_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(tmp.path().join("root"));
        let dir = store.reserve("a").expect("reserve");
        assert!(matches!(
            store.reserve("a"),
            Err(StateError::IdInUse { .. })
        ));
        drop(dir);
        assert!(!tmp.path().join("root/a").exists());
        store.reserve("a").expect("reserve again after drop");
    }

    #[test]
    fn state_round_trips_and_lists() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(tmp.path());
        let mut dir = store.reserve("c1").expect("reserve");
        dir.write_state(&sample("c1")).expect("write");
        dir.commit();
        drop(dir);
        let dir = store.open("c1").expect("open");
        assert_eq!(dir.read_state().expect("read"), {
            let mut s = sample("c1");
            s.created = dir.read_state().expect("read").created;
            s.owner = dir.read_state().expect("read").owner;
            s
        });
        drop(dir);
        assert_eq!(store.list().expect("list"), vec!["c1".to_string()]);
        store.open("c1").expect("open").remove().expect("remove");
        assert!(matches!(store.open("c1"), Err(StateError::NotFound { .. })));
    }

    #[test]
    fn an_unfinished_create_can_be_removed_and_frees_its_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(tmp.path());
        let mut dir = store.reserve("half").expect("reserve");
        dir.commit();
        drop(dir); // as if the create died before writing state.json
        assert!(matches!(
            store.reserve("half"),
            Err(StateError::IdInUse { .. })
        ));
        store.remove_unfinished("half").expect("remove");
        store.reserve("half").expect("id free again");
        store
            .remove_unfinished("never-made")
            .expect("nothing to remove is fine");
    }

    #[test]
    fn corrupt_or_foreign_state_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(tmp.path());
        let mut dir = store.reserve("c2").expect("reserve");
        dir.commit();
        for junk in [&b"{"[..], b"null", b"\xff\xfe", b"{\"version\":1}"] {
            fs::write(dir.path().join("state.json"), junk).expect("write");
            assert!(matches!(dir.read_state(), Err(StateError::Corrupt { .. })));
        }
        dir.write_state(&sample("other")).expect("write");
        assert!(matches!(dir.read_state(), Err(StateError::Corrupt { .. })));
    }
}
