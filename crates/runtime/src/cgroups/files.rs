//! Reading and writing cgroup interface files, with errors that carry the file's path.
//!
//! Owns the small IO helpers every other file of the module uses ([`FileWrite`],
//! [`write`], [`read`], [`read_procs`], [`read_key`]). It knows nothing about which file
//! means what.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::{CgroupError, Result};

/// One value for one interface file of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    pub file: &'static str,
    pub value: String,
}

impl FileWrite {
    pub fn new(file: &'static str, value: impl Into<String>) -> Self {
        FileWrite {
            file,
            value: value.into(),
        }
    }
}

/// Writes `value` to `dir/file` in one `write(2)`, as cgroupfs wants. The file must
/// exist: a missing interface file means a missing controller, never a file to create.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let fail = |source| CgroupError::Write {
        path: path.clone(),
        value: value.to_owned(),
        source,
    };
    let mut handle = File::options()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(fail)?;
    handle.write_all(value.as_bytes()).map_err(fail)
}

/// Applies `writes` in order.
pub fn write_all(dir: &Path, writes: &[FileWrite]) -> Result<()> {
    for w in writes {
        write(dir, w.file, &w.value)?;
    }
    Ok(())
}

/// Reads `dir/file` whole.
pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// True when `dir/file` exists.
pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// The pids listed in `dir/cgroup.procs` (this group only, not its children).
pub fn read_procs(dir: &Path) -> Result<Vec<i32>> {
    let text = read(dir, "cgroup.procs")?;
    text.split_whitespace()
        .map(|word| {
            word.parse().map_err(|_| CgroupError::UnexpectedContent {
                path: dir.join("cgroup.procs"),
                content: word.to_owned(),
            })
        })
        .collect()
}

/// The value of `key` in a flat-keyed file such as `cgroup.events` (`populated 1`).
pub fn read_key(dir: &Path, file: &str, key: &str) -> Result<Option<String>> {
    Ok(key_in(&read(dir, file)?, key).map(str::to_owned))
}

/// The value of `key` in the text of a flat-keyed file.
pub fn key_in<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then_some(v.trim())
    })
}

/// Child group directories of `dir` (none when `dir` is gone).
pub fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::ListChildren {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::ListChildren {
            path: dir.to_path_buf(),
            source,
        })?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Every group at or below `dir`, parents before children.
pub fn tree(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let children = child_dirs(&out[i])?;
        out.extend(children);
        i += 1;
    }
    Ok(out)
}

/// Makes `root/<path>` one level at a time, calling `each(parent, dir)` after every
/// level so the caller can prepare it (copy cpuset values down, enable controllers)
/// before the next level is made below it. Returns whether the last level was made here
/// (false when it was already there). On failure, the levels made by this call are
/// removed again.
pub fn make_dirs(
    root: &Path,
    path: &Path,
    mut each: impl FnMut(&Path, &Path) -> Result<()>,
) -> Result<bool> {
    let mut made: Vec<PathBuf> = Vec::new();
    let mut parent = root.to_path_buf();
    let mut created = false;
    for component in path.components() {
        let std::path::Component::Normal(name) = component else {
            continue;
        };
        let dir = parent.join(name);
        let step = match std::fs::create_dir(&dir) {
            Ok(()) => {
                made.push(dir.clone());
                created = true;
                each(&parent, &dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                created = false;
                each(&parent, &dir)
            }
            Err(source) => Err(CgroupError::CreateDir {
                path: dir.clone(),
                source,
            }),
        };
        if let Err(e) = step {
            for dir in made.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
        parent = dir;
    }
    Ok(created)
}
