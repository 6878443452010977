//! Writing a build's layer: a gzip-compressed tar, the same bytes for the same input.
//!
//! Reproducible by construction: entries sorted by path, every timestamp set to one
//! fixed time (`SOURCE_DATE_EPOCH` or 0), owners from the spec (never the host's),
//! no user or group names, gzip without a file name or time. The tar stream's digest
//! (the diff_id) and the compressed stream's digest are computed as it is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::Compression as Level;
use flate2::GzBuilder;

use super::spec::{Item, Source};
use crate::image::digest::{Algorithm, Digest, HashingWriter};

/// Errors writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {kind} files cannot go into an image layer")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("write layer entry {dest}: {source}")]
    Write {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The digests of a written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Of the uncompressed tar.
    pub diff_id: Digest,
    /// Of the gzip stream, which is the blob.
    pub digest: Digest,
    pub size: u64,
}

/// One entry of the layer, after expanding directories.
#[derive(Debug, Clone)]
enum Entry {
    File {
        host: Option<PathBuf>,
        inline: Vec<u8>,
        mode: u32,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone)]
struct Planned {
    entry: Entry,
    uid: u32,
    gid: u32,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Adds `host` (a file, link or tree) at `dest`, recursing into directories in name
/// order. Symlinks are copied as links, never followed (except the top `src` itself).
fn plan_host(
    plan: &mut BTreeMap<PathBuf, Planned>,
    host: &Path,
    dest: &Path,
    item: &Item,
    top: bool,
) -> Result<(), LayerError> {
    let meta = if top {
        fs::metadata(host)
    } else {
        fs::symlink_metadata(host)
    }
    .map_err(read_err(host))?;
    let ft = meta.file_type();
    let kept = meta.mode() & 0o7777;
    let entry = if ft.is_file() {
        Entry::File {
            host: Some(host.to_path_buf()),
            inline: Vec::new(),
            mode: if top { item.mode.unwrap_or(kept) } else { kept },
        }
    } else if ft.is_dir() {
        Entry::Dir {
            mode: if top { item.mode.unwrap_or(kept) } else { kept },
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(host).map_err(read_err(host))?;
        Entry::Symlink {
            target: target.to_string_lossy().into_owned(),
        }
    } else {
        let kind = if ft.is_block_device() || ft.is_char_device() {
            "device"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        return Err(LayerError::Unsupported {
            path: host.to_path_buf(),
            kind,
        });
    };
    let is_dir = matches!(entry, Entry::Dir { .. });
    plan.insert(
        dest.to_path_buf(),
        Planned {
            entry,
            uid: item.uid,
            gid: item.gid,
        },
    );
    if is_dir {
        let mut names: Vec<_> = fs::read_dir(host)
            .map_err(read_err(host))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err(host))?;
        names.sort();
        for name in names {
            plan_host(plan, &host.join(&name), &dest.join(&name), item, false)?;
        }
    }
    Ok(())
}

/// What the layer will hold, path by path (a later item for a path wins). With
/// `parents`, directories implied by an entry are added (0755, root).
fn plan(items: &[Item], parents: bool) -> Result<BTreeMap<PathBuf, Planned>, LayerError> {
    let mut plan = BTreeMap::new();
    for item in items {
        match &item.source {
            Source::Host(host) => plan_host(&mut plan, host, &item.dest, item, true)?,
            Source::Inline(bytes) => {
                plan.insert(
                    item.dest.clone(),
                    Planned {
                        entry: Entry::File {
                            host: None,
                            inline: bytes.clone(),
                            mode: item.mode.unwrap_or(0o644),
                        },
                        uid: item.uid,
                        gid: item.gid,
                    },
                );
            }
            Source::Dir => {
                plan.insert(
                    item.dest.clone(),
                    Planned {
                        entry: Entry::Dir {
                            mode: item.mode.unwrap_or(0o755),
                        },
                        uid: item.uid,
                        gid: item.gid,
                    },
                );
            }
            Source::Symlink(target) => {
                plan.insert(
                    item.dest.clone(),
                    Planned {
                        entry: Entry::Symlink {
                            target: target.clone(),
                        },
                        uid: item.uid,
                        gid: item.gid,
                    },
                );
            }
        }
    }
    if parents {
        let implied: Vec<PathBuf> = plan
            .keys()
            .flat_map(|p| {
                p.ancestors()
                    .skip(1)
                    .map(Path::to_path_buf)
                    .collect::<Vec<_>>()
            })
            .filter(|p| p != Path::new("/") && !p.as_os_str().is_empty())
            .collect();
        for dir in implied {
            plan.entry(dir).or_insert(Planned {
                entry: Entry::Dir { mode: 0o755 },
                uid: 0,
                gid: 0,
            });
        }
    }
    Ok(plan)
}

/// Writes the layer for `items` to `out`. `mtime` is the one timestamp of every entry;
/// `parents` adds implied parent directories (for an image built from scratch; on a
/// base image they would override the base's directories).
pub fn write_layer<W: Write>(
    items: &[Item],
    parents: bool,
    mtime: u64,
    out: W,
) -> Result<(LayerInfo, W), LayerError> {
    let plan = plan(items, parents)?;
    let blob = HashingWriter::new(out, Algorithm::Sha256);
    // No name, no time, a fixed OS byte: the header is the same on every machine.
    let gz = GzBuilder::new()
        .operating_system(255)
        .mtime(0)
        .write(blob, Level::default());
    let tar_stream = HashingWriter::new(gz, Algorithm::Sha256);
    let mut builder = tar::Builder::new(tar_stream);
    builder.mode(tar::HeaderMode::Deterministic);
    for (dest, planned) in &plan {
        let werr = |source| LayerError::Write {
            dest: dest.clone(),
            source,
        };
        // Tar names are relative; directories end in '/'.
        let rel = dest.strip_prefix("/").unwrap_or(dest);
        if rel.as_os_str().is_empty() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_uid(u64::from(planned.uid));
        header.set_gid(u64::from(planned.gid));
        header.set_mtime(mtime);
        match &planned.entry {
            Entry::File { host, inline, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                match host {
                    Some(path) => {
                        let file = fs::File::open(path).map_err(read_err(path))?;
                        let len = file.metadata().map_err(read_err(path))?.len();
                        header.set_size(len);
                        // A file that changes size while being read would corrupt the
                        // tar: read exactly `len` bytes and fail if they are not there.
                        let mut limited = file.take(len);
                        builder
                            .append_data(&mut header, rel, &mut limited)
                            .map_err(werr)?;
                    }
                    None => {
                        header.set_size(inline.len() as u64);
                        builder
                            .append_data(&mut header, rel, inline.as_slice())
                            .map_err(werr)?;
                    }
                }
            }
            Entry::Dir { mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder
                    .append_data(&mut header, rel, io::empty())
                    .map_err(werr)?;
            }
            Entry::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, rel, target)
                    .map_err(werr)?;
            }
        }
    }
    let end = |source| LayerError::Write {
        dest: PathBuf::from("(end of layer)"),
        source,
    };
    let tar_stream = builder.into_inner().map_err(end)?;
    let (gz, diff_id, _) = tar_stream.finish();
    let blob = gz.finish().map_err(end)?;
    let (out, digest, size) = blob.finish();
    Ok((
        LayerInfo {
            diff_id,
            digest,
            size,
        },
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn items(dir: &Path) -> Vec<Item> {
        vec![
            Item {
                dest: "/www".into(),
                source: Source::Host(dir.to_path_buf()),
                mode: None,
                uid: 0,
                gid: 0,
            },
            Item {
                dest: "/etc/motd".into(),
                source: Source::Inline(b"hello\n".to_vec()),
                mode: Some(0o600),
                uid: 1,
                gid: 2,
            },
            Item {
                dest: "/bin/sh".into(),
                source: Source::Symlink("busybox".into()),
                mode: None,
                uid: 0,
                gid: 0,
            },
        ]
    }

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("b.txt"), "b").expect("write");
        fs::create_dir(tmp.path().join("sub")).expect("mkdir");
        fs::write(tmp.path().join("sub/a.cgi"), "#!/bin/sh\n").expect("write");
        fs::set_permissions(
            tmp.path().join("sub/a.cgi"),
            fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        std::os::unix::fs::symlink("b.txt", tmp.path().join("link")).expect("symlink");
        tmp
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let t = tree();
        let (a, bytes_a) = write_layer(&items(t.path()), true, 0, Vec::new()).expect("layer");
        // Touch the files: host times and owners must not leak into the layer.
        filetime_now(&t.path().join("b.txt"));
        let (b, bytes_b) = write_layer(&items(t.path()), true, 0, Vec::new()).expect("layer");
        assert_eq!(a, b);
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(a.digest, Digest::sha256(&bytes_a));
        assert_eq!(a.size, bytes_a.len() as u64);
    }

    fn filetime_now(path: &Path) {
        let f = fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        f.set_modified(std::time::SystemTime::now()).expect("mtime");
    }

    #[test]
    fn entries_are_sorted_with_parents_modes_and_links() {
        let t = tree();
        let (info, bytes) = write_layer(&items(t.path()), true, 7, Vec::new()).expect("layer");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut raw)
            .expect("gunzip");
        assert_eq!(Digest::sha256(&raw), info.diff_id);
        let mut archive = tar::Archive::new(raw.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().expect("entries") {
            let e = e.expect("entry");
            let h = e.header();
            seen.push((
                e.path().expect("path").display().to_string(),
                h.mode().expect("mode"),
                h.mtime().expect("mtime"),
                h.uid().expect("uid"),
            ));
        }
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "etc",
                "etc/motd",
                "www",
                "www/b.txt",
                "www/link",
                "www/sub",
                "www/sub/a.cgi"
            ]
        );
        assert!(seen.iter().all(|s| s.2 == 7));
        let motd = seen.iter().find(|s| s.0 == "etc/motd").expect("motd");
        assert_eq!((motd.1, motd.3), (0o600, 1));
        let cgi = seen.iter().find(|s| s.0 == "www/sub/a.cgi").expect("cgi");
        assert_eq!(cgi.1, 0o755);
    }

    #[test]
    fn device_files_are_refused() {
        let item = Item {
            dest: "/dev/null".into(),
            source: Source::Host("/dev/null".into()),
            mode: None,
            uid: 0,
            gid: 0,
        };
        let err = write_layer(&[item], true, 0, Vec::new()).expect_err("refused");
        assert!(err.to_string().contains("device"), "{err}");
    }
}
