//! The store's tests: blobs, references, images, layers, leases, GC, and several users
//! at once (threads: `flock` locks belong to open file descriptions, so threads that
//! each open the lock file exclude each other exactly as processes do).

mod blobs;
mod gc;
mod images;
mod layers;
mod refs;

use std::path::Path;

use super::Store;

/// A store in a fresh temporary directory.
fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn lock_file(store: &Store, key: &str) -> std::path::PathBuf {
    store.root().join("locks").join(format!("{key}.lock"))
}

fn tmp_entries(store: &Store) -> Vec<String> {
    super::test_support::names_in(&store.root().join("tmp"))
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}
