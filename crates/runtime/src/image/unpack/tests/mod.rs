//! Tests of layer unpacking: hostile layers (`hostile`), ordinary ones (`layers`), and
//! the helpers they share — a tar writer that produces the headers `tar::Builder`
//! refuses to write, a harness that unpacks next to a sentinel directory, and a few
//! `stat`/xattr probes.
//!
//! Tests that need root (device nodes, ownership, `trusted.*` attributes) use
//! `require!`: with `MOOR_TEST_STRICT=1` a missing prerequisite fails the test, otherwise
//! it prints `skipped: needs <what>`.

mod hostile;
mod layers;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Compression, UnpackError, UnpackLimits, Unpacked, unpack_layer};

macro_rules! require {
    ($ok:expr, $what:expr) => {
        if !::tests::prereq::require($what, $ok) {
            return;
        }
    };
}
pub(super) use require;

pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tar stream written block by block, so any header can be made.
#[derive(Debug, Default)]
pub(super) struct RawTar {
    pub out: Vec<u8>,
}

/// The fields of one raw header; `Hdr::new` gives a 0644 root-owned regular file.
#[derive(Debug, Clone)]
pub(super) struct Hdr {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub device: (u32, u32),
    pub gnu: bool,
}

impl Hdr {
    pub(super) fn new(name: &[u8], typeflag: u8) -> Hdr {
        Hdr {
            name: name.to_vec(),
            typeflag,
            size: 0,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: Vec::new(),
            device: (0, 0),
            gnu: false,
        }
    }

    pub(super) fn block(&self) -> [u8; 512] {
        assert!(
            self.name.len() <= 100 && self.link.len() <= 100,
            "raw names fit"
        );
        let mut b = [0u8; 512];
        b[..self.name.len()].copy_from_slice(&self.name);
        octal(&mut b[100..108], u64::from(self.mode));
        octal(&mut b[108..116], u64::from(self.uid));
        octal(&mut b[116..124], u64::from(self.gid));
        octal(&mut b[124..136], self.size);
        octal(&mut b[136..148], self.mtime);
        b[156] = self.typeflag;
        b[157..157 + self.link.len()].copy_from_slice(&self.link);
        if self.gnu {
            b[257..265].copy_from_slice(b"ustar  \0");
        } else {
            b[257..263].copy_from_slice(b"ustar\0");
            b[263..265].copy_from_slice(b"00");
        }
        octal(&mut b[329..337], u64::from(self.device.0));
        octal(&mut b[337..345], u64::from(self.device.1));
        checksum(&mut b);
        b
    }
}

/// A number field: octal when it fits, GNU base-256 otherwise.
pub(super) fn octal(field: &mut [u8], n: u64) {
    let text = format!("{n:0width$o}\0", width = field.len() - 1);
    if text.len() == field.len() {
        field.copy_from_slice(text.as_bytes());
        return;
    }
    field.fill(0);
    field[0] = 0x80;
    let bytes = n.to_be_bytes();
    let len = field.len();
    field[len - 8..].copy_from_slice(&bytes);
}

pub(super) fn checksum(b: &mut [u8; 512]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
}

impl RawTar {
    pub(super) fn new() -> RawTar {
        RawTar::default()
    }

    pub(super) fn block(&mut self, block: &[u8; 512]) -> &mut Self {
        self.out.extend_from_slice(block);
        self
    }

    /// A header and its data, padded to the block.
    pub(super) fn entry(&mut self, hdr: &Hdr, data: &[u8]) -> &mut Self {
        let mut hdr = hdr.clone();
        if hdr.size == 0 {
            hdr.size = data.len() as u64;
        }
        self.block(&hdr.block());
        self.data(data)
    }

    pub(super) fn data(&mut self, data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub(super) fn file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        self.entry(&Hdr::new(name, b'0'), data)
    }

    pub(super) fn dir(&mut self, name: &[u8]) -> &mut Self {
        self.entry(&Hdr::new(name, b'5'), b"")
    }

    pub(super) fn symlink(&mut self, name: &[u8], target: &[u8]) -> &mut Self {
        let mut h = Hdr::new(name, b'2');
        h.link = target.to_vec();
        self.entry(&h, b"")
    }

    pub(super) fn hardlink(&mut self, name: &[u8], target: &[u8]) -> &mut Self {
        let mut h = Hdr::new(name, b'1');
        h.link = target.to_vec();
        self.entry(&h, b"")
    }

    /// A PAX local header with these records.
    pub(super) fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3;
            // The length counts its own digits.
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(len.to_string().as_bytes());
            data.push(b' ');
            data.extend_from_slice(key);
            data.push(b'=');
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.entry(&Hdr::new(b"PaxHeader/x", b'x'), &data)
    }

    /// A GNU long name (`L`) or long link (`K`) header.
    pub(super) fn gnu_long(&mut self, typeflag: u8, name: &[u8]) -> &mut Self {
        let mut h = Hdr::new(b"././@LongLink", typeflag);
        h.gnu = true;
        let mut data = name.to_vec();
        data.push(0);
        self.entry(&h, &data)
    }

    /// The end-of-archive marker.
    pub(super) fn end(&mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        std::mem::take(&mut self.out)
    }
}

/// A temporary directory with an empty `dest` to unpack into and a `sentinel` beside
/// it that must stay untouched.
#[derive(Debug)]
pub(super) struct Scratch {
    pub tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub sentinel: PathBuf,
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("dest");
        let sentinel = tmp.path().join("sentinel");
        std::fs::create_dir(&dest).expect("mkdir dest");
        std::fs::create_dir(&sentinel).expect("mkdir sentinel");
        Scratch {
            tmp,
            dest,
            sentinel,
        }
    }

    pub(super) fn unpack(
        &self,
        tar: &[u8],
        limits: &UnpackLimits,
    ) -> Result<Unpacked, UnpackError> {
        unpack_layer(tar, Compression::None, &self.dest, None, limits)
    }

    /// Empties `dest` for the next case.
    pub(super) fn reset(&self) {
        std::fs::remove_dir_all(&self.dest).expect("clean dest");
        std::fs::create_dir(&self.dest).expect("mkdir dest");
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    /// Nothing appeared beside `dest`, and the sentinel holds only what the test put in.
    pub(super) fn assert_contained(&self, sentinel_entries: usize) {
        let mut top: Vec<_> = std::fs::read_dir(self.tmp.path())
            .expect("read tmp")
            .map(|e| e.expect("entry").file_name())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["dest", "sentinel"],
            "something was written beside dest"
        );
        let inside = std::fs::read_dir(&self.sentinel)
            .expect("read sentinel")
            .count();
        assert_eq!(inside, sentinel_entries, "the sentinel directory changed");
    }
}

/// Asserts an unpack failed with an error whose message names `entry`.
pub(super) fn assert_names(result: Result<Unpacked, UnpackError>, entry: &str) -> UnpackError {
    let err = result.expect_err("the layer was accepted");
    let text = err.to_string();
    assert!(
        text.contains(entry),
        "error {text:?} does not name {entry:?}"
    );
    err
}

pub(super) fn lstat(path: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

/// An extended attribute of `path` itself (not following a symlink).
pub(super) fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(len).ok()?;
    buf.truncate(len);
    Some(buf)
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

pub(super) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).expect("zstd")
}
