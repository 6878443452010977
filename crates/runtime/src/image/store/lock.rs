//! `flock` locks on files that may be removed while other processes wait on them.
//!
//! A lock is held on an open file description, so two threads of one process that each
//! open the file exclude each other just as two processes do. Lock files under `locks/`
//! are removed by whoever holds them exclusively (when a blob or layer is done, or by
//! the clean-up at open), so a waiter that wakes up checks that the path it opened still
//! names the inode it locked, and starts again if not.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Shared (readers, users of content) or exclusive (writers, GC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Shared,
    Exclusive,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Waits for the lock on `path` (created if missing).
    pub(crate) fn acquire(path: &Path, mode: Mode) -> io::Result<Lock> {
        loop {
            let file = open(path)?;
            match mode {
                Mode::Shared => file.lock_shared()?,
                Mode::Exclusive => file.lock()?,
            }
            if still_names(&file, path)? {
                return Ok(Lock {
                    file,
                    path: path.to_path_buf(),
                });
            }
        }
    }

    /// Takes the lock if nobody holds a conflicting one.
    pub(crate) fn try_acquire(path: &Path, mode: Mode) -> io::Result<Option<Lock>> {
        loop {
            let file = open(path)?;
            let r = match mode {
                Mode::Shared => file.try_lock_shared(),
                Mode::Exclusive => file.try_lock(),
            };
            match r {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
            if still_names(&file, path)? {
                return Ok(Some(Lock {
                    file,
                    path: path.to_path_buf(),
                }));
            }
        }
    }

    /// Removes the lock file, then releases the lock. Only for exclusive locks: a
    /// waiter then finds the path gone or new and locks afresh.
    pub(crate) fn remove(self) {
        if let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "removing lock file");
        }
        drop(self.file);
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// True when `path` still names the file `file` has open.
fn still_names(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_other_open_file_descriptions_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::acquire(&path, Mode::Exclusive).unwrap();
        assert!(Lock::try_acquire(&path, Mode::Shared).unwrap().is_none());
        drop(held);
        let a = Lock::try_acquire(&path, Mode::Shared).unwrap().unwrap();
        let b = Lock::try_acquire(&path, Mode::Shared).unwrap().unwrap();
        assert!(Lock::try_acquire(&path, Mode::Exclusive).unwrap().is_none());
        drop((a, b));
    }

    #[test]
    fn a_waiter_on_a_removed_lock_file_locks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::acquire(&path, Mode::Exclusive).unwrap();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let l = Lock::acquire(&p, Mode::Exclusive).unwrap();
            // The lock it got is on the file the path names now.
            assert!(still_names(&l.file, &p).unwrap());
        });
        // Whether the waiter opened the old file or not, removal must not leave two
        // holders of two different inodes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        held.remove();
        waiter.join().unwrap();
    }
}
