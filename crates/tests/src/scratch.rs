//! Per-test names and directories.
//!
//! Every container id, cgroup and directory a test makes carries the test's prefix
//! (`mt<pid>x<n>`), so tests running at once never collide and leftovers are easy to
//! find; the directory is removed when the [`Scratch`] is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A test's private prefix and directory.
#[derive(Debug)]
pub struct Scratch {
    prefix: String,
    dir: PathBuf,
}

impl Scratch {
    /// A new prefix and an empty directory for it under the system temp dir.
    pub fn new(test: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("mt{}x{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("moor-test-{prefix}-{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("create scratch dir {}: {e}", dir.display());
        }
        Self { prefix, dir }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A name unique to this test: `<prefix>-<name>`.
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
