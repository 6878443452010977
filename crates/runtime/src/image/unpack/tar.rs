//! A streaming tar reader that bounds what it holds in memory.
//!
//! Reads ustar, GNU and PAX archives as Docker, BuildKit, Go's `archive/tar` and GNU tar
//! write them: GNU long names (`L`, `K`), PAX local headers (`x`: path, linkpath, size,
//! uid, gid, mtime, `SCHILY.xattr.*`), PAX global headers (`g`, ignored as containerd
//! does) and sparse files (old GNU `S`, PAX 0.0, 0.1 and 1.0; see [`super::sparse`]).
//!
//! This is written here rather than taken from the `tar` crate because a layer is
//! hostile input and the crate reads a long-name or PAX entry into memory whatever its
//! size (only the stream's length bounds it: a 60 MB gzip can ask for 60 GB), and it
//! cannot tell a clean end of archive from a stream cut at a header. Here every
//! extension header has a cap derived from the limits, and the end of an archive is
//! judged as Go's reader does: a zero block followed by a zero block or the end of
//! the stream (a zero block followed by a header is an error, as in containerd).

use std::io::BufRead;

use super::UnpackError;
use super::error::entry_path;
use super::pax::{Pax, SparseFormat};
use super::sparse::{self, MAX_SPARSE_REGIONS, Sparse};

const BLOCK: usize = 512;

/// How much of an over-long name an error shows.
const MAX_SHOWN_NAME: u64 = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One archive member with every extension header applied.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The name as the archive spells it (PAX path, GNU long name or ustar name).
    pub name: Vec<u8>,
    /// Symlink or hardlink target, as the archive spells it.
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Bytes of file data that follow the header (and any sparse map) in the archive.
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    pub device: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub sparse: Option<Sparse>,
}

/// Reads entries one by one; the caller reads or skips each entry's data before asking
/// for the next.
#[derive(Debug)]
pub(super) struct TarReader<R> {
    src: R,
    /// Data of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    max_path: usize,
    /// Name of the last entry, for errors about a stream that ends.
    last: Vec<u8>,
}

/// The stream ended inside an entry's data.
#[derive(Debug)]
pub(super) struct Truncated;

impl<R: BufRead> TarReader<R> {
    pub(super) fn new(src: R, max_path: usize) -> Self {
        TarReader {
            src,
            remaining: 0,
            padding: 0,
            max_path,
            last: Vec::new(),
        }
    }

    /// The next piece of the current entry's data, straight from the stream's buffer;
    /// empty when the entry's data is all read. Follow with [`consume`](Self::consume).
    pub(super) fn data(&mut self) -> Result<&[u8], Truncated> {
        if self.remaining == 0 {
            return Ok(&[]);
        }
        let buf = self.src.fill_buf().map_err(|_| Truncated)?;
        if buf.is_empty() {
            return Err(Truncated);
        }
        let n = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        Ok(&buf[..n])
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.src.consume(n);
        self.remaining -= n as u64;
    }

    /// Skips what is left of the current entry's data and its padding.
    fn skip_rest(&mut self) -> Result<(), UnpackError> {
        let mut n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        while n > 0 {
            let buf = more(&mut self.src, &self.last)?;
            if buf.is_empty() {
                return Err(self.truncated());
            }
            let k = usize::try_from(n).map_or(buf.len(), |n| n.min(buf.len()));
            self.src.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    fn truncated(&self) -> UnpackError {
        UnpackError::Truncated {
            path: entry_path(&self.last),
        }
    }

    /// Reads one block; false at a clean end of the stream (no byte of it read).
    fn block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, UnpackError> {
        let mut n = 0;
        while n < BLOCK {
            let buf = more(&mut self.src, &self.last)?;
            if buf.is_empty() {
                return if n == 0 {
                    Ok(false)
                } else {
                    Err(self.truncated())
                };
            }
            let k = buf.len().min(BLOCK - n);
            block[n..n + k].copy_from_slice(&buf[..k]);
            self.src.consume(k);
            n += k;
        }
        Ok(true)
    }

    /// Reads an extension header's data (at most `cap` bytes) and its padding. A long
    /// name over the cap is refused naming what of it fits in an error.
    fn extension(
        &mut self,
        header: &Header,
        size: u64,
        cap: usize,
    ) -> Result<Vec<u8>, UnpackError> {
        let Some(len) = usize::try_from(size).ok().filter(|&n| n <= cap) else {
            if matches!(header.typeflag(), b'L' | b'K') {
                let shown = self.read_exact(size.min(MAX_SHOWN_NAME))?;
                return Err(UnpackError::UnsafeName {
                    path: entry_path(&shown),
                    reason: "name longer than the limit",
                });
            }
            return Err(header.error("extension header larger than the limit"));
        };
        let out = self.read_exact(len as u64)?;
        self.padding = padding(size);
        self.skip_rest()?;
        Ok(out)
    }

    /// Reads `len` bytes (small: the caller bounds it).
    fn read_exact(&mut self, len: u64) -> Result<Vec<u8>, UnpackError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut out = vec![0; len];
        let mut n = 0;
        while n < len {
            let buf = more(&mut self.src, &self.last)?;
            if buf.is_empty() {
                return Err(self.truncated());
            }
            let k = buf.len().min(len - n);
            out[n..n + k].copy_from_slice(&buf[..k]);
            self.src.consume(k);
            n += k;
        }
        Ok(out)
    }

    /// The next entry, or `None` at the end of the archive.
    pub(super) fn next_entry(&mut self) -> Result<Option<Entry>, UnpackError> {
        self.skip_rest()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        let mut raw = [0u8; BLOCK];
        loop {
            let got = self.block(&mut raw)?;
            let zero = got && raw.iter().all(|&b| b == 0);
            if !got || zero {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    let name = long_name
                        .or(pax.and_then(|p| p.path))
                        .unwrap_or_else(|| self.last.clone());
                    return Err(UnpackError::Header {
                        path: entry_path(&name),
                        reason: "extension header without an entry",
                    });
                }
                if zero {
                    self.end_of_archive(&mut raw)?;
                }
                return Ok(None);
            }
            let header = Header(raw);
            header.check_sum()?;
            let size = header.number(124, 12, "size")?;
            let size = match (&pax, header.typeflag()) {
                (Some(p), t) if !matches!(t, b'L' | b'K' | b'x' | b'g') => p.size.unwrap_or(size),
                _ => size,
            };
            // Room for a name at the limit plus GNU's terminating NUL.
            let name_cap = self.max_path + 1;
            match header.typeflag() {
                b'L' if long_name.is_some() => return Err(header.error("two gnu long names")),
                b'K' if long_link.is_some() => return Err(header.error("two gnu long links")),
                b'x' if pax.is_some() => return Err(header.error("two pax headers")),
                b'L' => long_name = Some(gnu_string(self.extension(&header, size, name_cap)?)),
                b'K' => long_link = Some(gnu_string(self.extension(&header, size, name_cap)?)),
                b'x' => {
                    let data = self.extension(&header, size, self.pax_cap())?;
                    pax = Some(Pax::parse(&data).map_err(|r| header.error(r))?);
                }
                b'g' => {
                    let data = self.extension(&header, size, self.pax_cap())?;
                    tracing::debug!(bytes = data.len(), "pax global header ignored");
                }
                _ => {
                    let (mut entry, map_in_data) =
                        self.entry(&header, size, long_name, long_link, pax)?;
                    self.last.clone_from(&entry.name);
                    self.remaining = size;
                    self.padding = padding(size);
                    if let Some(real_size) = map_in_data {
                        let err = |reason| UnpackError::Header {
                            path: entry_path(&entry.name),
                            reason,
                        };
                        let regions = sparse::read_map_1_0(self).map_err(err)?;
                        entry.size = self.remaining;
                        entry.sparse =
                            Some(Sparse::new(real_size, regions, entry.size).map_err(err)?);
                    }
                    return Ok(Some(entry));
                }
            }
        }
    }

    /// PAX records carry a path, a link target and extended attributes.
    fn pax_cap(&self) -> usize {
        2 * self.max_path + (1 << 20)
    }

    /// After a zero block: the next block must be zero too, or the stream must end.
    fn end_of_archive(&mut self, raw: &mut [u8; BLOCK]) -> Result<(), UnpackError> {
        match self.block(raw) {
            Ok(false) => Ok(()),
            Ok(true) if raw.iter().all(|&b| b == 0) => Ok(()),
            Ok(true) => Err(Header(*raw).error("header after a zero block")),
            // Part of a block after the zero block: trailing bytes, not an entry.
            Err(UnpackError::Truncated { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The stream, positioned after the end of the archive.
    pub(super) fn into_inner(self) -> R {
        self.src
    }

    fn entry(
        &mut self,
        header: &Header,
        size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Pax>,
    ) -> Result<(Entry, Option<u64>), UnpackError> {
        let mut pax = pax.unwrap_or_default();
        let name = pax
            .sparse
            .name
            .take()
            .or(pax.path.take())
            .or(long_name)
            .unwrap_or_else(|| header.name());
        let err = |reason| UnpackError::Header {
            path: entry_path(&name),
            reason,
        };
        let pax_sparse = pax.sparse.format().map_err(err)?;
        let kind = match header.typeflag() {
            b'\0' if name.ends_with(b"/") => Kind::Dir,
            b'0' | b'\0' | b'7' | b'S' => Kind::File,
            b'1' => Kind::Hardlink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            other => {
                return Err(UnpackError::UnsupportedType {
                    path: entry_path(&name),
                    typeflag: char::from(other),
                });
            }
        };
        let link = pax
            .linkpath
            .take()
            .or(long_link)
            .unwrap_or_else(|| cstr(&header.0[157..257]).to_vec());
        let id = |n: Option<u64>, off, what| -> Result<u32, UnpackError> {
            let n = match n {
                Some(n) => n,
                None => header.number(off, 8, what)?,
            };
            u32::try_from(n).map_err(|_| err("owner id out of range"))
        };
        let uid = id(pax.uid, 108, "uid")?;
        let gid = id(pax.gid, 116, "gid")?;
        let mtime = match pax.mtime {
            Some(t) => t,
            None => (header.signed(136, 12, "mtime")?, 0),
        };
        let mode = (header.number(100, 8, "mode")? & 0o7777) as u32;
        let device = if matches!(kind, Kind::Char | Kind::Block) {
            let major = header.number(329, 8, "devmajor")?;
            let minor = header.number(337, 8, "devminor")?;
            match (u32::try_from(major), u32::try_from(minor)) {
                (Ok(major), Ok(minor)) => (major, minor),
                _ => return Err(err("device number out of range")),
            }
        } else {
            (0, 0)
        };
        let mut map_in_data = None;
        let sparse = match pax_sparse {
            _ if header.typeflag() == b'S' => Some(self.gnu_sparse_map(header, size, &name)?),
            SparseFormat::NotSparse => None,
            _ if kind != Kind::File => return Err(err("sparse records on a non-file entry")),
            SparseFormat::InRecords => {
                let real_size = pax
                    .sparse
                    .real_size
                    .ok_or_else(|| err("sparse file without a size"))?;
                let map = pax.sparse.map.as_deref().unwrap_or_default();
                let regions = sparse::pairs(map).map_err(err)?;
                Some(Sparse::new(real_size, regions, size).map_err(err)?)
            }
            SparseFormat::InData => {
                let real_size = pax
                    .sparse
                    .real_size
                    .ok_or_else(|| err("sparse file without a size"))?;
                map_in_data = Some(real_size);
                None
            }
        };
        let entry = Entry {
            name,
            link,
            kind,
            size,
            mode,
            uid,
            gid,
            mtime,
            device,
            xattrs: pax.xattrs,
            sparse,
        };
        Ok((entry, map_in_data))
    }

    /// The old-style GNU sparse map: four regions in the header, 21 in each extension
    /// block that follows it.
    fn gnu_sparse_map(
        &mut self,
        header: &Header,
        size: u64,
        name: &[u8],
    ) -> Result<Sparse, UnpackError> {
        let err = |reason| UnpackError::Header {
            path: entry_path(name),
            reason,
        };
        if !header.is_gnu() {
            return Err(err("sparse entry without a gnu header"));
        }
        let mut regions = Vec::new();
        let mut push = |block: &Header, off: usize| -> Result<(), UnpackError> {
            if block.0[off] == 0 && block.0[off + 12] == 0 {
                return Ok(());
            }
            if regions.len() >= MAX_SPARSE_REGIONS {
                return Err(err("sparse map has too many regions"));
            }
            regions.push((
                block.number(off, 12, "sparse offset")?,
                block.number(off + 12, 12, "sparse length")?,
            ));
            Ok(())
        };
        for i in 0..4 {
            push(header, 386 + 24 * i)?;
        }
        let mut extended = header.0[482] != 0;
        let mut raw = [0u8; BLOCK];
        while extended {
            if !self.block(&mut raw)? {
                return Err(err("stream ends inside the sparse map"));
            }
            let ext = Header(raw);
            for i in 0..21 {
                push(&ext, 24 * i)?;
            }
            extended = ext.0[504] != 0;
        }
        let real_size = header.number(483, 12, "sparse real size")?;
        Sparse::new(real_size, regions, size).map_err(err)
    }
}

/// The next buffered bytes of the stream; empty only at its end.
fn more<'a, R: BufRead>(src: &'a mut R, last: &[u8]) -> Result<&'a [u8], UnpackError> {
    src.fill_buf().map_err(|_| UnpackError::Truncated {
        path: entry_path(last),
    })
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A GNU long name: the bytes before the terminating NULs (a NUL inside stays and is
/// refused later with the rest of the name checks).
fn gnu_string(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// A NUL-terminated header field.
fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// One 512-byte header block.
struct Header([u8; BLOCK]);

impl Header {
    fn typeflag(&self) -> u8 {
        self.0[156]
    }

    fn is_ustar(&self) -> bool {
        &self.0[257..263] == b"ustar\0"
    }

    fn is_gnu(&self) -> bool {
        &self.0[257..265] == b"ustar  \0"
    }

    /// The ustar name: `prefix/name` in the POSIX format, `name` otherwise.
    fn name(&self) -> Vec<u8> {
        let name = cstr(&self.0[0..100]);
        let prefix = if self.is_ustar() {
            cstr(&self.0[345..500])
        } else {
            &[]
        };
        if prefix.is_empty() {
            return name.to_vec();
        }
        let mut out = Vec::with_capacity(prefix.len() + 1 + name.len());
        out.extend_from_slice(prefix);
        out.push(b'/');
        out.extend_from_slice(name);
        out
    }

    fn error(&self, reason: &'static str) -> UnpackError {
        UnpackError::Header {
            path: entry_path(&self.name()),
            reason,
        }
    }

    /// The checksum counts the checksum field as spaces; some old writers summed
    /// signed bytes, which GNU tar and Go also accept.
    fn check_sum(&self) -> Result<(), UnpackError> {
        let expected = self.number(148, 8, "checksum")?;
        let (mut unsigned, mut signed) = (0u64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if expected == unsigned || i64::try_from(expected).is_ok_and(|e| e == signed) {
            Ok(())
        } else {
            Err(self.error("checksum mismatch"))
        }
    }

    /// A numeric field: octal (space or NUL padded) or GNU base-256.
    fn number(&self, off: usize, len: usize, what: &'static str) -> Result<u64, UnpackError> {
        let n = self.signed(off, len, what)?;
        u64::try_from(n).map_err(|_| self.error(negative(what)))
    }

    fn signed(&self, off: usize, len: usize, what: &'static str) -> Result<i64, UnpackError> {
        parse_number(&self.0[off..off + len]).ok_or_else(|| self.error(bad_number(what)))
    }
}

fn negative(what: &'static str) -> &'static str {
    match what {
        "size" => "negative size",
        _ => "negative number field",
    }
}

fn bad_number(what: &'static str) -> &'static str {
    match what {
        "size" => "bad size field",
        "checksum" => "bad checksum field",
        "mtime" => "bad mtime field",
        _ => "bad number field",
    }
}

/// Parses an octal or base-256 tar number.
fn parse_number(field: &[u8]) -> Option<i64> {
    if let Some(&first) = field.first()
        && first & 0x80 != 0
    {
        // Base-256, big-endian two's complement after the marker bit; bit 0x40 of the
        // first byte is the sign. Inverting a negative number's bytes gives -n-1.
        let invert = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut n: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 {
                (b ^ invert) & 0x7f
            } else {
                b ^ invert
            };
            if n >> 56 != 0 {
                return None;
            }
            n = (n << 8) | u64::from(b);
        }
        let n = i64::try_from(n).ok()?;
        return Some(if invert == 0xff { !n } else { n });
    }
    let s = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .map_or(&field[field.len()..], |i| &field[i..]);
    let end = s
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(s.len());
    if s[end..].iter().any(|&b| b != b' ' && b != 0) {
        return None;
    }
    let mut n: i64 = 0;
    for &b in &s[..end] {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        n = n.checked_mul(8)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(n)
}
