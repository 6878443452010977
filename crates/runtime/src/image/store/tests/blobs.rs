//! Blobs: verification, failure leaving nothing behind, one write for two ingests,
//! clean-up at open, a full disk.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::super::StoreError;
use super::super::lock::{Lock, Mode};
use super::super::test_support::{is_root, names_in, require, someone_waits_on, wait_until};
use super::{lock_file, mode_of, new_store, tmp_entries};
use crate::image::digest::Digest;
use crate::image::store::Store;

fn noop() -> impl FnMut(u64) {
    |_| {}
}

#[test]
fn ingest_verifies_and_stores_read_only() {
    let (_d, store) = new_store();
    let data = b"hello blob".to_vec();
    let d = Digest::sha256(&data);
    let mut seen = 0;
    store
        .ingest(&d, Some(data.len() as u64), 1 << 20, &data[..], &mut |n| {
            seen = n
        })
        .unwrap();
    assert_eq!(seen, data.len() as u64);
    assert!(store.has_blob(&d));
    assert_eq!(store.read_blob(&d, 100).unwrap(), data);
    assert_eq!(mode_of(&store.blob_path(&d)), 0o444);
    assert!(tmp_entries(&store).is_empty());
    assert!(
        names_in(&store.root().join("locks")).is_empty(),
        "lock files are removed"
    );
    // Already present: returns without reading.
    let mut r = FailingReader;
    store
        .ingest(&d, None, 1 << 20, &mut r, &mut noop())
        .unwrap();
    assert_eq!(store.put_blob(&data).unwrap(), d);
}

#[test]
fn wrong_content_leaves_nothing_behind() {
    let (_d, store) = new_store();
    let data = vec![1u8; 1000];
    let right = Digest::sha256(&data);
    let wrong = Digest::sha256(b"something else");
    let len = data.len() as u64;
    type Check = Box<dyn Fn(&StoreError) -> bool>;
    let cases: Vec<(Digest, Option<u64>, u64, Check)> = vec![
        (
            wrong.clone(),
            Some(len),
            len,
            Box::new(|e| matches!(e, StoreError::DigestMismatch { .. })),
        ),
        (
            right.clone(),
            Some(len + 1),
            len + 1,
            Box::new(|e| matches!(e, StoreError::Short { actual: 1000, .. })),
        ),
        (
            right.clone(),
            Some(len - 1),
            len,
            Box::new(|e| matches!(e, StoreError::TooLong { expected: 999, .. })),
        ),
        (
            right.clone(),
            None,
            len - 1,
            Box::new(|e| matches!(e, StoreError::TooLarge { max: 999, .. })),
        ),
    ];
    for (digest, size, max, check) in cases {
        let e = store
            .ingest(&digest, size, max, &data[..], &mut noop())
            .unwrap_err();
        assert!(check(&e), "unexpected error {e}");
        assert!(!store.has_blob(&digest));
        assert!(tmp_entries(&store).is_empty(), "tmp not cleaned after {e}");
    }
    let e = store
        .ingest(
            &right,
            None,
            1 << 20,
            (&data[..]).chain(FailingReader),
            &mut noop(),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::Source { .. }), "{e}");
    assert!(e.to_string().contains(&right.to_string()), "{e}");
    assert!(tmp_entries(&store).is_empty());
    assert!(!store.has_blob(&right));
}

#[test]
fn read_blob_enforces_its_limit_and_reports_missing_blobs() {
    let (_d, store) = new_store();
    let d = store.put_blob(&[5u8; 100]).unwrap();
    assert!(matches!(
        store.read_blob(&d, 99),
        Err(StoreError::TooLarge { max: 99, .. })
    ));
    let absent = Digest::sha256(b"absent");
    assert!(matches!(
        store.read_blob(&absent, 99),
        Err(StoreError::BlobMissing { .. })
    ));
    assert!(matches!(
        store.open_blob(&absent),
        Err(StoreError::BlobMissing { .. })
    ));
}

#[test]
fn put_reader_names_content_by_its_digest() {
    let (_d, store) = new_store();
    let (d, n) = store.put_reader(&b"abc"[..], 10).unwrap();
    assert_eq!((d.clone(), n), (Digest::sha256(b"abc"), 3));
    assert!(store.has_blob(&d));
    assert!(matches!(
        store.put_reader(&[0u8; 11][..], 10),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(tmp_entries(&store).is_empty());
    assert!(names_in(&store.root().join("locks")).is_empty());
}

/// A reader that holds its first read until told to go, after saying it started.
struct Gated {
    data: Vec<u8>,
    pos: usize,
    started: Option<mpsc::Sender<()>>,
    go: mpsc::Receiver<()>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(tx) = self.started.take() {
            tx.send(()).unwrap();
            self.go.recv().unwrap();
        }
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct Counting<'a> {
    inner: &'a [u8],
    count: Arc<AtomicU64>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer went away",
        ))
    }
}

#[test]
fn two_ingests_of_one_blob_write_it_once_and_both_succeed() {
    let (_d, store) = new_store();
    let data = vec![7u8; 300_000];
    let d = Digest::sha256(&data);
    let len = data.len() as u64;
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let gated = Gated {
                data: data.clone(),
                pos: 0,
                started: Some(started_tx),
                go: go_rx,
            };
            store.ingest(&d, Some(len), len, gated, &mut noop())
        });
        started_rx.recv().unwrap();
        // Half-way: the content is only in tmp/, never under blobs/ (rename is the
        // only way in).
        assert!(!store.has_blob(&d));
        assert_eq!(tmp_entries(&store).len(), 1);

        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        let (store, data, d) = (&store, &data, &d);
        let second = s.spawn(move || {
            let r = Counting {
                inner: data,
                count: counted,
            };
            store.ingest(d, Some(len), len, r, &mut noop())
        });
        wait_until("the second ingest to wait on the blob's lock", || {
            someone_waits_on(&lock_file(store, d.hex()))
        });
        go_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "the second ingest read nothing"
        );
    });
    assert_eq!(store.read_blob(&d, len).unwrap(), data);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn open_removes_leftovers_nobody_holds_and_keeps_work_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tmp = store.root().join("tmp");
    let (a, b, c) = (
        Digest::sha256(b"a"),
        Digest::sha256(b"b"),
        Digest::sha256(b"c"),
    );
    // An interrupted download, an interrupted unpack with a read-only directory, and
    // a download another process is still doing.
    std::fs::write(tmp.join(format!("{}.4242-0", a.hex())), b"partial").unwrap();
    let unpack = tmp.join(format!("{}.4242-1", b.hex()));
    std::fs::create_dir_all(unpack.join("ro/inner")).unwrap();
    std::fs::write(unpack.join("ro/inner/f"), b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(unpack.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let busy = tmp.join(format!("{}.4243-0", c.hex()));
    std::fs::write(&busy, b"in progress").unwrap();
    let held = Lock::acquire(&lock_file(&store, c.hex()), Mode::Exclusive).unwrap();
    // A stale lock file.
    std::fs::write(lock_file(&store, "stale"), b"").unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(tmp_entries(&store), vec![format!("{}.4243-0", c.hex())]);
    assert_eq!(
        names_in(&store.root().join("locks")),
        vec![format!("{}.lock", c.hex())]
    );
    drop(held);
    let store = Store::open(dir.path()).unwrap();
    assert!(tmp_entries(&store).is_empty());
    assert!(names_in(&store.root().join("locks")).is_empty());
    for sub in ["blobs/sha256", "layers/sha256", "leases", "locks", "tmp"] {
        assert!(store.root().join(sub).is_dir(), "{sub}");
    }
}

/// Unmounts a test's tmpfs when the test ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_disk_fails_the_ingest_and_leaves_only_an_empty_tmp() {
    require!(is_root(), "root (to mount a small tmpfs)");
    let dir = tempfile::tempdir().unwrap();
    let mounted = nix::mount::mount(
        Some("tmpfs"),
        dir.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=256k"),
    );
    require!(mounted.is_ok(), "permission to mount tmpfs");
    let _unmount = Unmount(dir.path().to_path_buf());
    let store = Store::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256(&data);
    let e = store
        .ingest(&d, Some(data.len() as u64), 1 << 30, &data[..], &mut noop())
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC)),
        "{e}"
    );
    assert!(!store.has_blob(&d));
    assert!(tmp_entries(&store).is_empty());
    // The store still works once there is room.
    let small = store.put_blob(b"fits").unwrap();
    assert!(store.has_blob(&small));
}

#[test]
fn unpacked_layers_are_reachable_by_root_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layers = store.root().join("layers");
    assert_eq!(mode(&layers), 0o700);
    // A store made when the directory was open to everyone is closed at the next open.
    std::fs::set_permissions(&layers, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(mode(&store.root().join("layers")), 0o700);
    // Blobs stay readable (they are what any registry serves).
    assert_eq!(mode(&store.root().join("blobs")), 0o755);
}
