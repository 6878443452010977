//! Applying one tar entry to the layer tree, as the OCI image spec describes layers and
//! overlayfs reads them.
//!
//! ```text
//! name checks -> parent walk (no symlinks, missing dirs made 0755)
//!   .wh..wh..opq   -> trusted.overlay.opaque=y on the parent
//!   .wh.NAME       -> char device 0:0 NAME (replacing what this layer put there)
//!   file/sparse    -> new file, data, then owner, mode, xattrs, times on its descriptor
//!   dir            -> made or kept; metadata recorded for the end
//!   symlink        -> target stored as is; owner, xattrs, times on the link itself
//!   hardlink       -> to an earlier regular file of this layer only
//!   char/block/fifo-> mknod; owner, mode, xattrs, times without following
//! ```
//!
//! A later entry replaces an earlier one of the same name, whatever the types; a
//! directory replaced by a non-directory is removed with everything below it.

use std::ffi::CStr;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;

use super::name::{self, split};
use super::tar::{Entry, Kind, TarReader};
use super::tree::{DirMeta, Tree};
use super::{UnpackError, UnpackLimits, at};
use crate::image::unpack::error::entry_path;

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT_META: &[u8] = b".wh..wh.";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const OVERLAY_XATTRS: &[u8] = b"trusted.overlay.";

/// Unpacks every entry; returns how many there were. Stops at the end-of-archive
/// marker, leaving the rest of the stream to the caller.
pub(super) fn extract<R: BufRead>(
    tar: &mut TarReader<R>,
    tree: &mut Tree,
    limits: &UnpackLimits,
) -> Result<u64, UnpackError> {
    let mut entries: u64 = 0;
    let mut sparse_bytes: u64 = 0;
    while let Some(mut entry) = tar.next_entry()? {
        entries += 1;
        if entries > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                path: entry_path(&entry.name),
                limit: limits.max_entries,
            });
        }
        if entry.size > limits.max_bytes {
            return Err(UnpackError::TooManyBytes {
                limit: limits.max_bytes,
            });
        }
        if let Some(sparse) = &entry.sparse {
            sparse_bytes = sparse_bytes.saturating_add(sparse.real_size);
            if sparse_bytes > limits.max_bytes {
                return Err(UnpackError::SparseTooLarge {
                    path: entry_path(&entry.name),
                    size: sparse.real_size,
                    limit: limits.max_bytes,
                });
            }
        }
        let name = &entry.name;
        entry.xattrs.retain(|(xattr, _)| {
            let overlay = xattr.starts_with(OVERLAY_XATTRS);
            if overlay {
                let (entry, xattr) = (entry_path(name), entry_path(xattr));
                tracing::debug!(?entry, ?xattr, "overlay xattr in the archive dropped");
            }
            !overlay
        });
        apply(tar, tree, &entry, limits)?;
    }
    Ok(entries)
}

fn apply<R: BufRead>(
    tar: &mut TarReader<R>,
    tree: &mut Tree,
    entry: &Entry,
    limits: &UnpackLimits,
) -> Result<(), UnpackError> {
    let raw = &entry.name;
    let unsafe_name = |reason| UnpackError::UnsafeName {
        path: entry_path(raw),
        reason,
    };
    let rel = name::normalize(raw, limits.max_path).map_err(unsafe_name)?;
    if rel.is_empty() {
        // The layer root itself: only a directory entry may name it.
        if entry.kind != Kind::Dir {
            return Err(unsafe_name("a non-directory entry names the layer root"));
        }
        tree.set_dir_meta(&[], dir_meta(entry));
        return Ok(());
    }
    let (parent_rel, base) = split(&rel);
    let parent = tree.dir(parent_rel, true).map_err(|e| e.for_entry(raw))?;
    let parent = parent.as_fd();
    if base.starts_with(WHITEOUT) {
        return whiteout(tree, parent, parent_rel, base, entry);
    }
    let cname = at::c(base).map_err(|_| unsafe_name("name contains a NUL byte"))?;
    let io = |step| UnpackError::io(raw, step);
    match entry.kind {
        Kind::Dir => {
            match at::lstat(parent, &cname) {
                Ok(st) if at::is_dir(&st) => {}
                Ok(_) => {
                    tree.remove(parent, parent_rel, &cname)
                        .map_err(io("replace existing entry"))?;
                    at::mkdir(parent, &cname, 0o755).map_err(io("create directory"))?;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    at::mkdir(parent, &cname, 0o755).map_err(io("create directory"))?;
                }
                Err(e) => return Err(io("inspect existing entry")(e)),
            }
            tree.set_dir_meta(&rel, dir_meta(entry));
        }
        Kind::File => {
            // Made with its final permissions when they survive the umask (the open
            // descriptor can write whatever they are), else 0600 and a chmod.
            let final_mode = tree.create_mode_is_final(entry.mode);
            let mode = if final_mode { entry.mode } else { 0o600 };
            let file = create(tree, parent, parent_rel, &cname, raw, |dir, name| {
                at::create_file(dir, name, mode)
            })?;
            write_data(tar, entry, &file)?;
            let fd = file.as_fd();
            if tree.needs_chown(entry.uid, entry.gid) {
                at::fchown(fd, entry.uid, entry.gid).map_err(io("set owner"))?;
            }
            // After chown, which clears setuid and setgid bits and file capabilities.
            if !final_mode {
                at::fchmod(fd, entry.mode).map_err(io("set mode"))?;
            }
            for (name, value) in &entry.xattrs {
                let xname = at::c(name).map_err(io("set xattr"))?;
                at::fsetxattr(fd, &xname, value).map_err(io("set xattr"))?;
            }
            at::futimes(fd, entry.mtime).map_err(io("set times"))?;
        }
        Kind::Symlink => {
            let target = symlink_target(entry, limits)?;
            create(tree, parent, parent_rel, &cname, raw, |dir, name| {
                at::symlink(&target, dir, name)
            })?;
            if tree.needs_chown(entry.uid, entry.gid) {
                at::lchown(parent, &cname, entry.uid, entry.gid).map_err(io("set owner"))?;
            }
            set_xattrs_nofollow(parent, &cname, entry)?;
            at::lutimes(parent, &cname, entry.mtime).map_err(io("set times"))?;
        }
        Kind::Hardlink => hardlink(tree, parent, parent_rel, &rel, &cname, entry, limits)?,
        Kind::Char | Kind::Block | Kind::Fifo => {
            let kind = match entry.kind {
                Kind::Char => libc::S_IFCHR,
                Kind::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let dev = libc::makedev(entry.device.0, entry.device.1);
            create(tree, parent, parent_rel, &cname, raw, |dir, name| {
                at::mknod(dir, name, kind | 0o600, dev)
            })?;
            if tree.needs_chown(entry.uid, entry.gid) {
                at::lchown(parent, &cname, entry.uid, entry.gid).map_err(io("set owner"))?;
            }
            at::chmod_nofollow(parent, &cname, entry.mode).map_err(io("set mode"))?;
            set_xattrs_nofollow(parent, &cname, entry)?;
            at::lutimes(parent, &cname, entry.mtime).map_err(io("set times"))?;
        }
    }
    Ok(())
}

fn dir_meta(entry: &Entry) -> DirMeta {
    DirMeta {
        mode: entry.mode,
        owner: Some((entry.uid, entry.gid)),
        mtime: Some(entry.mtime),
        xattrs: entry.xattrs.clone(),
    }
}

/// Makes a new directory entry with `make`; if the name is taken, removes what is there
/// (a directory with its contents) and makes it again.
fn create<T>(
    tree: &mut Tree,
    parent: BorrowedFd<'_>,
    parent_rel: &[u8],
    name: &CStr,
    raw: &[u8],
    mut make: impl FnMut(BorrowedFd<'_>, &CStr) -> std::io::Result<T>,
) -> Result<T, UnpackError> {
    match make(parent, name) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            tree.remove(parent, parent_rel, name)
                .map_err(UnpackError::io(raw, "replace existing entry"))?;
            make(parent, name).map_err(UnpackError::io(raw, "create entry"))
        }
        other => other.map_err(UnpackError::io(raw, "create entry")),
    }
}

/// Copies the entry's data into `file`: straight from the stream's buffers, or region by
/// region for a sparse file (holes stay holes).
fn write_data<R: BufRead>(
    tar: &mut TarReader<R>,
    entry: &Entry,
    mut file: &std::fs::File,
) -> Result<(), UnpackError> {
    let raw = &entry.name;
    let truncated = |_| UnpackError::Truncated {
        path: entry_path(raw),
    };
    match &entry.sparse {
        None => loop {
            let chunk = tar.data().map_err(truncated)?;
            if chunk.is_empty() {
                return Ok(());
            }
            file.write_all(chunk)
                .map_err(UnpackError::io(raw, "write data"))?;
            let n = chunk.len();
            tar.consume(n);
        },
        Some(sparse) => {
            for &(offset, length) in &sparse.regions {
                let mut done = 0u64;
                while done < length {
                    let chunk = tar.data().map_err(truncated)?;
                    let n =
                        usize::try_from(length - done).map_or(chunk.len(), |r| r.min(chunk.len()));
                    file.write_all_at(&chunk[..n], offset + done)
                        .map_err(UnpackError::io(raw, "write data"))?;
                    tar.consume(n);
                    done += n as u64;
                }
            }
            file.set_len(sparse.real_size)
                .map_err(UnpackError::io(raw, "set sparse file size"))
        }
    }
}

fn symlink_target(entry: &Entry, limits: &UnpackLimits) -> Result<std::ffi::CString, UnpackError> {
    let err = |reason| UnpackError::SymlinkTarget {
        path: entry_path(&entry.name),
        target: entry_path(&entry.link),
        reason,
    };
    if entry.link.is_empty() {
        return Err(err("empty target"));
    }
    if entry.link.len() > limits.max_path {
        return Err(err("target longer than the limit"));
    }
    at::c(&entry.link).map_err(|_| err("target contains a NUL byte"))
}

/// Extended attributes of a symlink or device node, on the entry itself.
fn set_xattrs_nofollow(
    parent: BorrowedFd<'_>,
    name: &CStr,
    entry: &Entry,
) -> Result<(), UnpackError> {
    for (xname, value) in &entry.xattrs {
        let io = UnpackError::io(&entry.name, "set xattr");
        let xname = at::c(xname).map_err(UnpackError::io(&entry.name, "set xattr"))?;
        at::lsetxattr(parent, name, &xname, value).map_err(io)?;
    }
    Ok(())
}

fn hardlink(
    tree: &mut Tree,
    parent: BorrowedFd<'_>,
    parent_rel: &[u8],
    rel: &[u8],
    cname: &CStr,
    entry: &Entry,
    limits: &UnpackLimits,
) -> Result<(), UnpackError> {
    let err = |reason| UnpackError::Hardlink {
        path: entry_path(&entry.name),
        target: entry_path(&entry.link),
        reason,
    };
    let target = name::normalize(&entry.link, limits.max_path).map_err(err)?;
    if target.is_empty() {
        return Err(err("target is the layer root"));
    }
    let (target_parent_rel, target_base) = split(&target);
    let target_parent = tree.dir(target_parent_rel, false).map_err(|e| match e {
        super::tree::WalkError::Symlink(_) => err("target is below a symlink"),
        super::tree::WalkError::Missing(_) | super::tree::WalkError::NotDirectory(_) => {
            err("target does not exist in this layer")
        }
        e => e.for_entry(&entry.name),
    })?;
    let target_name = at::c(target_base).map_err(|_| err("target contains a NUL byte"))?;
    match at::lstat(target_parent.as_fd(), &target_name) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {}
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
            return Err(err("target is a symlink"));
        }
        Ok(st) if at::is_dir(&st) => return Err(err("target is a directory")),
        Ok(_) => return Err(err("target is not a regular file")),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT)) => {
            return Err(err("target does not exist in this layer"));
        }
        Err(e) => return Err(UnpackError::io(&entry.name, "inspect hardlink target")(e)),
    }
    if target == rel {
        // A link to itself: the file is already there.
        return Ok(());
    }
    create(tree, parent, parent_rel, cname, &entry.name, |dir, name| {
        at::link(target_parent.as_fd(), &target_name, dir, name)
    })
}

/// `.wh..wh..opq` marks its directory opaque; `.wh.NAME` becomes the 0:0 character
/// device overlayfs reads as "NAME deleted".
fn whiteout(
    tree: &mut Tree,
    parent: BorrowedFd<'_>,
    parent_rel: &[u8],
    base: &[u8],
    entry: &Entry,
) -> Result<(), UnpackError> {
    let raw = &entry.name;
    let err = |reason| UnpackError::Whiteout {
        path: entry_path(raw),
        reason,
    };
    if base == OPAQUE {
        return at::fsetxattr(parent, OPAQUE_XATTR, b"y")
            .map_err(UnpackError::io(raw, "mark directory opaque"));
    }
    if base.starts_with(WHITEOUT_META) {
        // Other AUFS metadata (.wh..wh.plnk and the like) means nothing to overlayfs.
        tracing::debug!(entry = ?entry_path(raw), "aufs whiteout metadata skipped");
        return Ok(());
    }
    let target = &base[WHITEOUT.len()..];
    if matches!(target, b"" | b"." | b"..") {
        return Err(err("names no entry (the layer root or its parent)"));
    }
    let cname = at::c(target).map_err(|_| err("name contains a NUL byte"))?;
    create(tree, parent, parent_rel, &cname, raw, |dir, name| {
        at::mknod(dir, name, libc::S_IFCHR, libc::makedev(0, 0))
    })?;
    if tree.needs_chown(entry.uid, entry.gid) {
        at::lchown(parent, &cname, entry.uid, entry.gid)
            .map_err(UnpackError::io(raw, "set owner"))?;
    }
    Ok(())
}
