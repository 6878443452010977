//! The layer's directory tree as unpacking builds it: directory descriptors walked
//! component by component from the root with `O_NOFOLLOW|O_DIRECTORY`, so no path ever
//! passes through a symlink, and directory metadata kept until the end.
//!
//! The destination starts empty and only this module creates directories in it, so
//! every directory below the root is one this layer made; a symlink anywhere on a walk
//! is an error naming it. Open directory descriptors are cached by relative path (tar
//! archives list a directory's entries together), and dropped when an entry replaces a
//! directory.
//!
//! Directory metadata (owner, mode, xattrs, times) is applied last, deepest first: an
//! entry added to a directory changes its mtime, and a read-only mode must not stop
//! its children from being made.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use super::error::entry_path;
use super::name::{is_within, join};
use super::{UnpackError, at};

/// Directory descriptors kept open at once (well under the usual 1024 descriptors).
const CACHE_LIMIT: usize = 128;

/// Metadata a directory gets once everything is in it.
#[derive(Debug, Default, Clone)]
pub(super) struct DirMeta {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
    pub mtime: Option<(i64, u32)>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a walk stopped.
#[derive(Debug)]
pub(super) enum WalkError {
    /// A component is a symlink (the relative path up to it).
    Symlink(Vec<u8>),
    /// A component is neither a directory nor a symlink.
    NotDirectory(Vec<u8>),
    /// A component is missing and the walk was not to create it.
    Missing(Vec<u8>),
    Io(io::Error),
}

impl WalkError {
    /// The error for entry `entry` whose parent walk failed.
    pub(super) fn for_entry(self, entry: &[u8]) -> UnpackError {
        let path = entry_path(entry);
        match self {
            WalkError::Symlink(p) => UnpackError::BelowSymlink {
                path,
                parent: entry_path(&p),
            },
            WalkError::NotDirectory(p) | WalkError::Missing(p) => UnpackError::ParentNotDirectory {
                path,
                parent: entry_path(&p),
            },
            WalkError::Io(source) => UnpackError::Io {
                path,
                step: "open parent directory",
                source,
            },
        }
    }
}

#[derive(Debug)]
pub(super) struct Tree {
    root: Rc<OwnedFd>,
    cache: HashMap<Vec<u8>, Rc<OwnedFd>>,
    pending: HashMap<Vec<u8>, DirMeta>,
    /// Owner new files get without a `chown`; `None` when the root is setgid.
    default_owner: Option<(u32, u32)>,
    /// Ownership is restored only by root, as GNU tar does: another user could not
    /// give files away, and in a user namespace its own ids are the container's root.
    chown: bool,
    /// The process umask, when `/proc` tells it (it cannot be read without changing it).
    umask: Option<u32>,
}

impl Tree {
    /// Takes the destination directory, which must be empty.
    pub(super) fn new(dest: &Path) -> Result<Tree, UnpackError> {
        let open_err = |source| UnpackError::OpenDest {
            path: dest.to_path_buf(),
            source,
        };
        let root = at::open_dir_path(dest).map_err(open_err)?;
        let st = at::fstat(root.as_fd()).map_err(open_err)?;
        let mut dir = nix::dir::Dir::from_fd(root.try_clone().map_err(open_err)?)
            .map_err(|e| open_err(io::Error::from(e)))?;
        let occupied = dir
            .iter()
            .any(|e| e.map_or(true, |e| !matches!(e.file_name().to_bytes(), b"." | b"..")));
        if occupied {
            return Err(UnpackError::DestNotEmpty {
                path: dest.to_path_buf(),
            });
        }
        let euid = nix::unistd::geteuid();
        let default_owner = (st.st_mode & libc::S_ISGID == 0)
            .then(|| (euid.as_raw(), nix::unistd::getegid().as_raw()));
        Ok(Tree {
            root: Rc::new(root),
            cache: HashMap::new(),
            pending: HashMap::new(),
            default_owner,
            chown: euid.is_root(),
            umask: read_umask(),
        })
    }

    /// True when a file created with `mode` has exactly it without a `chmod`: no
    /// setuid, setgid or sticky bit (`chown` may clear the first two; `open` ignores
    /// them) and nothing the umask removes.
    pub(super) fn create_mode_is_final(&self, mode: u32) -> bool {
        mode & 0o7000 == 0 && self.umask.is_some_and(|m| mode & m == 0)
    }

    /// True when an entry made now needs a `chown` to get this owner.
    pub(super) fn needs_chown(&self, uid: u32, gid: u32) -> bool {
        self.chown && self.default_owner != Some((uid, gid))
    }

    /// The directory at `rel` (normalized, empty for the root). Missing components are
    /// made 0755 when `create`, and never through a symlink.
    pub(super) fn dir(&mut self, rel: &[u8], create: bool) -> Result<Rc<OwnedFd>, WalkError> {
        if rel.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(fd) = self.cache.get(rel) {
            return Ok(fd.clone());
        }
        // Start from the deepest cached ancestor.
        let mut start = 0;
        let mut fd = self.root.clone();
        let mut cut = rel.len();
        while let Some(i) = rel[..cut].iter().rposition(|&b| b == b'/') {
            if let Some(found) = self.cache.get(&rel[..i]) {
                fd = found.clone();
                start = i + 1;
                break;
            }
            cut = i;
        }
        while start < rel.len() {
            let end = rel[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(rel.len(), |i| start + i);
            let here = &rel[..end];
            let name = at::c(&rel[start..end]).map_err(WalkError::Io)?;
            let next = self.step(fd.as_fd(), &name, here, create)?;
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            let next = Rc::new(next);
            self.cache.insert(here.to_vec(), next.clone());
            fd = next;
            start = end + 1;
        }
        Ok(fd)
    }

    /// Opens (or makes) one component of a walk.
    fn step(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        here: &[u8],
        create: bool,
    ) -> Result<OwnedFd, WalkError> {
        let io = WalkError::Io;
        match at::open_dir(parent, name) {
            Ok(fd) => Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if !create {
                    return Err(WalkError::Missing(here.to_vec()));
                }
                at::mkdir(parent, name, 0o755).map_err(io)?;
                // Implied directories are 0755 whatever the umask.
                self.pending.entry(here.to_vec()).or_insert(DirMeta {
                    mode: 0o755,
                    ..DirMeta::default()
                });
                at::open_dir(parent, name).map_err(io)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let st = at::lstat(parent, name).map_err(io)?;
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    Err(WalkError::Symlink(here.to_vec()))
                } else {
                    Err(WalkError::NotDirectory(here.to_vec()))
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Records metadata for the directory at `rel`, applied by [`finish`](Self::finish).
    pub(super) fn set_dir_meta(&mut self, rel: &[u8], meta: DirMeta) {
        self.pending.insert(rel.to_vec(), meta);
    }

    /// Removes whatever is at `name` in `parent` (whose relative path is `parent_rel`),
    /// a directory with everything below it. Symlinks are removed, never followed.
    /// Returns false when nothing was there.
    pub(super) fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        parent_rel: &[u8],
        name: &CStr,
    ) -> io::Result<bool> {
        let st = match at::lstat(parent, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        };
        if at::is_dir(&st) {
            let rel = join(parent_rel, name.to_bytes());
            self.cache.retain(|k, _| !is_within(k, &rel));
            self.pending.retain(|k, _| !is_within(k, &rel));
            remove_tree(parent, name)?;
            at::unlink(parent, name, true)?;
        } else {
            at::unlink(parent, name, false)?;
        }
        Ok(true)
    }

    /// Applies directory metadata, deepest first, and releases the descriptors.
    pub(super) fn finish(mut self) -> Result<(), UnpackError> {
        let mut pending: Vec<(Vec<u8>, DirMeta)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        pending.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (rel, mut meta) in pending {
            let fd = self.dir(&rel, false).map_err(|e| e.for_entry(&rel))?;
            if !self.chown {
                meta.owner = None;
            }
            apply_dir_meta(fd.as_fd(), &rel, &meta)?;
        }
        Ok(())
    }
}

/// The `Umask:` line of `/proc/self/status` (Linux 4.7 and later).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

fn apply_dir_meta(fd: BorrowedFd<'_>, rel: &[u8], meta: &DirMeta) -> Result<(), UnpackError> {
    let shown: &[u8] = if rel.is_empty() { b"." } else { rel };
    if let Some((uid, gid)) = meta.owner {
        at::fchown(fd, uid, gid).map_err(UnpackError::io(shown, "set owner"))?;
    }
    // After chown, which clears the setgid bit.
    at::fchmod(fd, meta.mode).map_err(UnpackError::io(shown, "set mode"))?;
    for (name, value) in &meta.xattrs {
        let xname = at::c(name).map_err(UnpackError::io(shown, "set xattr"))?;
        at::fsetxattr(fd, &xname, value).map_err(UnpackError::io(shown, "set xattr"))?;
    }
    if let Some(mtime) = meta.mtime {
        at::futimes(fd, mtime).map_err(UnpackError::io(shown, "set times"))?;
    }
    Ok(())
}

/// Empties the directory `name` in `parent` without following any symlink.
fn remove_tree(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let fd = at::open_dir(parent, name)?;
    let mut children = Vec::new();
    {
        let mut dir = nix::dir::Dir::from_fd(fd.try_clone()?).map_err(io::Error::from)?;
        for entry in dir.iter() {
            let entry = entry.map_err(io::Error::from)?;
            let child = entry.file_name();
            if matches!(child.to_bytes(), b"." | b"..") {
                continue;
            }
            let is_dir = match entry.file_type() {
                Some(t) => t == nix::dir::Type::Directory,
                None => at::is_dir(&at::lstat(fd.as_fd(), child)?),
            };
            children.push((child.to_owned(), is_dir));
        }
    }
    for (child, is_dir) in children {
        if is_dir {
            remove_tree(fd.as_fd(), &child)?;
        }
        at::unlink(fd.as_fd(), &child, is_dir)?;
    }
    Ok(())
}
