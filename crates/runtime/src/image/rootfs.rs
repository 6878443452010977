//! A container's root filesystem from an image: an overlay of the image's unpacked
//! layer directories (read-only, shared by every container of every image that has
//! them) with an upper and a work directory of the container's own.
//!
//! The mount option string of `mount(2)` is limited to a page (4 KiB), which about 55
//! store paths fill. The fd-based mount API has no such limit: each layer is one
//! `fsconfig("lowerdir+")` call (Linux 6.8+). On older kernels the layers are opened
//! and named by `/proc/self/fd/N` (about 17 bytes each, so some 230 layers fit).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// Errors mounting a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("image has no layers")]
    NoLayers,
    #[error("open layer {path}: {source}")]
    Layer {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount overlay on {target}: {source}")]
    Mount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "mount overlay on {target}: {count} layers do not fit in a mount option on this kernel"
    )]
    TooManyLayers { target: PathBuf, count: usize },
}

/// Mounts the overlay of `layers` (bottom first, as an image lists them) with `upper`
/// and `work` (empty directories on the same filesystem) on `target`.
pub fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    if layers.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let merr = |source| RootfsError::Mount {
        target: target.to_path_buf(),
        source,
    };
    match overlay_by_fsconfig(layers, upper, work) {
        Ok(mnt) => {
            let dest = sys::openat2(
                libc::AT_FDCWD,
                target,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                0,
            )
            .map_err(merr)?;
            sys::move_mount(mnt.as_fd(), dest.as_fd()).map_err(merr)
        }
        // EINVAL: a kernel without "lowerdir+" (before 6.8).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            overlay_by_fd_paths(layers, upper, work, target)
        }
        Err(e) => Err(merr(e)),
    }
}

fn overlay_by_fsconfig(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> io::Result<std::os::fd::OwnedFd> {
    let fs = sys::fsopen("overlay")?;
    sys::fsconfig_set(fs.as_fd(), "source", Some("moor"))?;
    // The first lower layer given is the uppermost.
    for layer in layers.iter().rev() {
        sys::fsconfig_set(fs.as_fd(), "lowerdir+", Some(&layer.to_string_lossy()))?;
    }
    sys::fsconfig_set(fs.as_fd(), "upperdir", Some(&upper.to_string_lossy()))?;
    sys::fsconfig_set(fs.as_fd(), "workdir", Some(&work.to_string_lossy()))?;
    sys::fsmount(fs.as_fd(), 0)
}

fn overlay_by_fd_paths(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    let mut opened = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(layer)
            .map_err(|source| RootfsError::Layer {
                path: layer.clone(),
                source,
            })?;
        opened.push(f);
    }
    let lower: Vec<String> = opened
        .iter()
        .map(|f| format!("/proc/self/fd/{}", f.as_raw_fd()))
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() >= 4096 {
        return Err(RootfsError::TooManyLayers {
            target: target.to_path_buf(),
            count: layers.len(),
        });
    }
    nix::mount::mount(
        Some("moor"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| RootfsError::Mount {
        target: target.to_path_buf(),
        source: e.into(),
    })
}

/// Unmounts a root filesystem mounted by [`mount_overlay`] (lazily, so a process still
/// inside it does not keep the caller waiting).
pub fn unmount(target: &Path) -> io::Result<()> {
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => Ok(()), // not mounted
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root() -> bool {
        // SAFETY: geteuid cannot fail.
        let ok = unsafe { libc::geteuid() } == 0;
        if !ok {
            if std::env::var("MOOR_TEST_STRICT").is_ok_and(|v| v == "1") {
                panic!("missing prerequisite: root (MOOR_TEST_STRICT=1)");
            }
            eprintln!("skipped: needs root");
        }
        ok
    }

    #[test]
    fn many_layers_stack_with_whiteouts_and_the_top_wins() {
        if !root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let count = 120; // more than a 4 KiB option string of store paths would hold
        let mut layers = Vec::new();
        for i in 0..count {
            let dir = tmp.path().join(format!("layers/sha256/{:064x}", i));
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("which"), format!("{i}")).expect("write");
            fs::write(dir.join(format!("only-{i}")), "x").expect("write");
            layers.push(dir);
        }
        // The top layer deletes a file of the bottom one, as an unpacked whiteout does.
        nix::sys::stat::mknod(
            &layers[count - 1].join("only-0"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o000),
            0,
        )
        .expect("whiteout");
        let (upper, work, target) = (
            tmp.path().join("upper"),
            tmp.path().join("work"),
            tmp.path().join("rootfs"),
        );
        for d in [&upper, &work, &target] {
            fs::create_dir(d).expect("mkdir");
        }
        mount_overlay(&layers, &upper, &work, &target).expect("mount");
        let which = fs::read_to_string(target.join("which"));
        let gone = target.join("only-0").exists();
        let middle = target.join("only-60").exists();
        fs::write(target.join("new"), "n").expect("write through");
        unmount(&target).expect("unmount");
        assert_eq!(which.expect("read"), format!("{}", count - 1));
        assert!(!gone, "whiteout hides the lower file");
        assert!(middle);
        assert!(upper.join("new").exists(), "writes land in the upper dir");
        assert!(
            !layers[count - 1].join("new").exists(),
            "layers stay untouched"
        );
    }

    #[test]
    fn the_fallback_for_older_kernels_names_layers_by_descriptor() {
        if !root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut layers = Vec::new();
        for i in 0..100 {
            let dir = tmp.path().join(format!("layers/sha256/{:064x}", i));
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("which"), format!("{i}")).expect("write");
            layers.push(dir);
        }
        let (upper, work, target) = (
            tmp.path().join("u"),
            tmp.path().join("w"),
            tmp.path().join("r"),
        );
        for d in [&upper, &work, &target] {
            fs::create_dir(d).expect("mkdir");
        }
        overlay_by_fd_paths(&layers, &upper, &work, &target).expect("mount");
        let which = fs::read_to_string(target.join("which"));
        unmount(&target).expect("unmount");
        assert_eq!(which.expect("read"), "99");
        let many: Vec<PathBuf> = (0..400).map(|_| layers[0].clone()).collect();
        assert!(matches!(
            overlay_by_fd_paths(&many, &upper, &work, &target),
            Err(RootfsError::TooManyLayers { .. })
        ));
    }

    #[test]
    fn an_image_without_layers_is_an_error() {
        let p = PathBuf::from("/nonexistent");
        assert!(matches!(
            mount_overlay(&[], &p, &p, &p),
            Err(RootfsError::NoLayers)
        ));
    }
}
