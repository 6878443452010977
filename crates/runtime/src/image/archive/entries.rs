//! Reading an archive's tar entries into the store, one pass, bounded.
//!
//! The `tar` crate frames entries and checks header checksums; it runs in raw mode so
//! GNU long names and PAX headers come here, where they are read with a cap (the crate
//! would read one of any announced size into memory). Entry names are normalised
//! (`./a` is `a`) and refused if absolute or containing `..`; symlinks and hardlinks
//! are recorded as archive paths and refused if they leave the archive. Nothing is
//! ever written to disk by name.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::{ArchiveError, MAX_ENTRIES};
use crate::image::digest::Digest;
use crate::image::manifest::{MAX_BLOB_SIZE, MAX_MANIFEST_BYTES};
use crate::image::store::Store;

/// Longest entry or link name accepted (the kernel's `PATH_MAX`).
const MAX_NAME: u64 = 4096;
/// Largest PAX extension header accepted.
const MAX_PAX: u64 = 64 << 10;
/// Most links followed to find a file.
const MAX_LINK_HOPS: usize = 16;

/// Files kept in memory rather than the store: the layout's own metadata.
const SMALL_FILES: [&str; 3] = ["index.json", "oci-layout", "manifest.json"];

/// What one pass over an archive found.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    /// The layout's metadata files, by name.
    pub small: BTreeMap<String, Vec<u8>>,
    /// Every other regular file, stored as a blob: path → (digest, size).
    pub blobs: BTreeMap<String, (Digest, u64)>,
    /// Symlinks and hardlinks: path → target path, both from the archive's root.
    pub links: BTreeMap<String, String>,
}

impl Scanned {
    /// The stored file at `name`, following links.
    pub(super) fn lookup(&self, name: &str) -> Option<&(Digest, u64)> {
        let mut current = name;
        for _ in 0..=MAX_LINK_HOPS {
            if let Some(b) = self.blobs.get(current) {
                return Some(b);
            }
            current = self.links.get(current)?;
        }
        None
    }
}

/// Reads every entry of the tar `input`, storing files as blobs (see the module docs).
pub(super) fn scan(store: &Store, input: impl Read, path: &Path) -> Result<Scanned, ArchiveError> {
    let read_err = |source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bad = |entry: &[u8], problem| ArchiveError::BadEntry {
        path: path.to_path_buf(),
        entry: String::from_utf8_lossy(entry).chars().take(300).collect(),
        problem,
    };
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(read_err)?.raw(true);
    let mut scanned = Scanned::default();
    let (mut long_name, mut long_link, mut pax_path, mut pax_link) = (None, None, None, None);
    let mut count = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(read_err)?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries {
                path: path.to_path_buf(),
                max: MAX_ENTRIES,
            });
        }
        let header_name = entry.header().path_bytes().into_owned();
        let kind = entry.header().entry_type().as_byte();
        match kind {
            b'L' | b'K' => {
                let mut value = read_capped(&mut entry, MAX_NAME)
                    .map_err(read_err)?
                    .ok_or_else(|| bad(&header_name, "GNU long name longer than 4096 bytes"))?;
                while value.last() == Some(&0) {
                    value.pop();
                }
                *(if kind == b'L' {
                    &mut long_name
                } else {
                    &mut long_link
                }) = Some(value);
                continue;
            }
            b'x' | b'g' => {
                let data = read_capped(&mut entry, MAX_PAX)
                    .map_err(read_err)?
                    .ok_or_else(|| bad(&header_name, "PAX header larger than 64 KiB"))?;
                if kind == b'x' {
                    for ext in tar::PaxExtensions::new(&data) {
                        let ext = ext.map_err(read_err)?;
                        match ext.key() {
                            Ok("path") => pax_path = Some(ext.value_bytes().to_vec()),
                            Ok("linkpath") => pax_link = Some(ext.value_bytes().to_vec()),
                            // Sizes past 8 GiB: far beyond any blob an archive for an
                            // edge device carries, and a way to desynchronise framing.
                            Ok("size") => {
                                return Err(bad(
                                    &header_name,
                                    "PAX size records are not supported",
                                ));
                            }
                            _ => {}
                        }
                    }
                }
                continue;
            }
            _ => {}
        }
        let raw_name = pax_path.take().or(long_name.take()).unwrap_or(header_name);
        let raw_link = pax_link
            .take()
            .or(long_link.take())
            .or_else(|| entry.header().link_name_bytes().map(|l| l.into_owned()));
        let name = normalize(&raw_name).map_err(|p| bad(&raw_name, p))?;
        match kind {
            b'0' | b'\0' | b'7' => {
                if scanned.small.contains_key(&name) || scanned.blobs.contains_key(&name) {
                    return Err(bad(&raw_name, "appears twice in the archive"));
                }
                let size = entry.header().entry_size().map_err(read_err)?;
                store_file(store, path, &name, size, &mut entry, &mut scanned)?;
            }
            b'5' => {}
            b'1' | b'2' => {
                let target = raw_link.ok_or_else(|| bad(&raw_name, "link without a target"))?;
                let target = if kind == b'2' {
                    resolve_symlink(&name, &target)
                } else {
                    normalize(&target)
                }
                .map_err(|p| bad(&raw_name, p))?;
                scanned.links.insert(name, target);
            }
            _ => {
                return Err(bad(
                    &raw_name,
                    "unsupported entry type: an image archive holds files, directories and links",
                ));
            }
        }
    }
    Ok(scanned)
}

fn store_file(
    store: &Store,
    path: &Path,
    name: &str,
    size: u64,
    entry: &mut impl Read,
    scanned: &mut Scanned,
) -> Result<(), ArchiveError> {
    let entry_err = |source| ArchiveError::Entry {
        path: path.to_path_buf(),
        entry: name.to_string(),
        source: Box::new(source),
    };
    if SMALL_FILES.contains(&name) {
        let bytes = read_capped(entry, MAX_MANIFEST_BYTES)
            .map_err(|source| ArchiveError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .ok_or_else(|| ArchiveError::TooLarge {
                path: path.to_path_buf(),
                file: name.to_string(),
                max: MAX_MANIFEST_BYTES,
            })?;
        scanned.small.insert(name.to_string(), bytes);
        return Ok(());
    }
    if let Some(rest) = name.strip_prefix("blobs/") {
        // blobs/<alg>/<hex>: the name is the digest, so the content verifies itself.
        let digest = rest
            .split_once('/')
            .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok())
            .ok_or_else(|| ArchiveError::BadEntry {
                path: path.to_path_buf(),
                entry: name.to_string(),
                problem: "a file under blobs/ must be named blobs/<algorithm>/<hex digest>",
            })?;
        store
            .ingest(&digest, Some(size), MAX_BLOB_SIZE, entry, &mut |_| {})
            .map_err(entry_err)?;
        scanned.blobs.insert(name.to_string(), (digest, size));
        return Ok(());
    }
    // docker save's legacy metadata: nothing reads it.
    let legacy = name == "repositories" || name.ends_with("/json") || name.ends_with("/VERSION");
    if legacy {
        return Ok(());
    }
    let (digest, stored) = store.put_reader(entry, MAX_BLOB_SIZE).map_err(entry_err)?;
    scanned.blobs.insert(name.to_string(), (digest, stored));
    Ok(())
}

/// Reads all of `r` if it is at most `max` bytes; `None` if it is longer.
fn read_capped(r: &mut impl Read, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    r.take(max + 1).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= max).then_some(out))
}

/// An entry name as a relative path from the archive's root: `./a//b/` is `a/b`.
pub(super) fn normalize(raw: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "name is not UTF-8")?;
    if text.starts_with('/') {
        return Err("absolute name");
    }
    if text.contains('\0') {
        return Err("name contains a NUL byte");
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("'..' in name"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// A symlink's target as a path from the archive's root, resolved from the link's own
/// directory; an error if it is absolute or climbs out of the archive.
fn resolve_symlink(name: &str, target: &[u8]) -> Result<String, &'static str> {
    let target = std::str::from_utf8(target).map_err(|_| "link target is not UTF-8")?;
    if target.starts_with('/') {
        return Err("symlink target is absolute");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or("symlink points outside the archive")?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}
