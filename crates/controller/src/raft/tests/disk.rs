//! redb backends for tests: one that simulates a power cut, one that counts what reaches
//! the disk.

use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use redb::StorageBackend;
use redb::backends::FileBackend;

/// The contents of a simulated disk: what the device holds (`synced`) and what the page
/// cache holds (`written`). Power is cut after `cut_after_ops` writes, resizes and syncs;
/// from then on nothing reaches either.
#[derive(Debug)]
struct DiskState {
    written: Vec<u8>,
    synced: Vec<u8>,
    /// Writes and resizes since the last sync, in order; a sync replays them onto `synced`.
    unsynced: Vec<Unsynced>,
    ops: u64,
    cut_after_ops: Option<u64>,
    powered: bool,
}

#[derive(Debug)]
enum Unsynced {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

fn write_at(target: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if end > target.len() {
        target.resize(end, 0);
    }
    target[offset..end].copy_from_slice(data);
}

impl DiskState {
    /// Counts an operation; false when the power is (now) off.
    fn admit(&mut self) -> bool {
        if !self.powered {
            return false;
        }
        self.ops += 1;
        if self.cut_after_ops.is_some_and(|limit| self.ops > limit) {
            self.powered = false;
        }
        self.powered
    }
}

/// A disk whose unsynced writes vanish on a power cut. Clones share the disk; each
/// [`PowerCutDisk::backend`] is one open of it.
#[derive(Debug, Clone)]
pub(crate) struct PowerCutDisk {
    state: Arc<Mutex<DiskState>>,
}

impl PowerCutDisk {
    /// A disk holding `image` as synced data.
    pub(crate) fn with_image(image: Vec<u8>) -> Self {
        Self {
            state: Arc::new(Mutex::new(DiskState {
                written: image.clone(),
                synced: image,
                unsynced: Vec::new(),
                ops: 0,
                cut_after_ops: None,
                powered: true,
            })),
        }
    }

    /// Cuts the power once `ops` more operations have reached the disk.
    pub(crate) fn cut_after(&self, ops: u64) {
        let mut state = self.state.lock().unwrap();
        state.cut_after_ops = Some(state.ops + ops);
    }

    /// Cuts the power now.
    pub(crate) fn cut(&self) {
        self.state.lock().unwrap().powered = false;
    }

    pub(crate) fn powered(&self) -> bool {
        self.state.lock().unwrap().powered
    }

    pub(crate) fn ops(&self) -> u64 {
        self.state.lock().unwrap().ops
    }

    /// What survives: the synced data only.
    pub(crate) fn synced_image(&self) -> Vec<u8> {
        self.state.lock().unwrap().synced.clone()
    }

    pub(crate) fn backend(&self) -> PowerCutBackend {
        PowerCutBackend { disk: self.clone() }
    }
}

#[derive(Debug)]
pub(crate) struct PowerCutBackend {
    disk: PowerCutDisk,
}

impl StorageBackend for PowerCutBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.disk.state.lock().unwrap().written.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.disk.state.lock().unwrap();
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + out.len();
        if end > state.written.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        out.copy_from_slice(&state.written[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.disk.state.lock().unwrap();
        if state.admit() {
            state.written.resize(len as usize, 0);
            state.unsynced.push(Unsynced::SetLen(len as usize));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.disk.state.lock().unwrap();
        if state.admit() {
            let state = &mut *state;
            for change in state.unsynced.drain(..) {
                match change {
                    Unsynced::Write { offset, data } => write_at(&mut state.synced, offset, &data),
                    Unsynced::SetLen(len) => state.synced.resize(len, 0),
                }
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.disk.state.lock().unwrap();
        if state.admit() {
            write_at(&mut state.written, offset as usize, data);
            state.unsynced.push(Unsynced::Write {
                offset: offset as usize,
                data: data.to_vec(),
            });
        }
        Ok(())
    }
}

/// Counts what redb sends to a real file: bytes written and syncs.
#[derive(Debug, Default)]
pub(crate) struct DiskCounters {
    pub(crate) bytes_written: AtomicU64,
    pub(crate) syncs: AtomicU64,
}

impl DiskCounters {
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (
            self.bytes_written.load(Ordering::SeqCst),
            self.syncs.load(Ordering::SeqCst),
        )
    }
}

#[derive(Debug)]
pub(crate) struct CountingBackend {
    pub(crate) inner: FileBackend,
    pub(crate) counters: Arc<DiskCounters>,
}

impl StorageBackend for CountingBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.counters.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.counters
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        self.inner.write(offset, data)
    }
}
