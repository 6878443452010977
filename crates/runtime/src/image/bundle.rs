//! An OCI bundle from an image in the store: `config.json` from the image's config, and
//! `rootfs/` an overlay of its layer directories with an upper and work directory of the
//! bundle's own. The layers are leased for as long as the bundle exists, so garbage
//! collection keeps them.
//!
//! ```text
//! DIR/config.json     the runtime's defaults (as `moor runtime spec`), with the image's
//!                     entrypoint+cmd, env, working directory and user; no terminal
//! DIR/rootfs/         overlay: layers (read-only, shared) + DIR/upper, DIR/work
//! DIR/.moor-bundle    which image and lease, for `unbundle`
//! ```

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::image::digest::Digest;
use crate::image::rootfs::{self, RootfsError};
use crate::image::store::{Store, StoreError, StoredImage};
use crate::sys;

/// The record a bundle keeps of its image.
const RECORD: &str = ".moor-bundle";

/// Errors making or removing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error("bundle {path}: {step}: {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle {path} already exists and is not empty")]
    NotEmpty { path: PathBuf },
    #[error("{path} is not a bundle made by moor image bundle")]
    NotABundle { path: PathBuf },
    #[error("image user {user:?}: {reason}")]
    User { user: String, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    image: Digest,
    lease: String,
}

fn io_err<'a>(
    path: &'a Path,
    step: &'static str,
) -> impl FnOnce(std::io::Error) -> BundleError + 'a {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        step,
        source,
    }
}

/// The lease name of the bundle at `dir` (absolute): stable for a path.
fn lease_name(dir: &Path) -> String {
    let d = Digest::sha256(dir.as_os_str().as_encoded_bytes());
    format!("bundle-{}", &d.hex()[..32])
}

/// Makes a bundle of `image` at `dir` (created, or an existing empty directory).
pub fn create(store: &Store, image: &StoredImage, dir: &Path) -> Result<PathBuf, BundleError> {
    let dir = std::path::absolute(dir).map_err(io_err(dir, "resolve"))?;
    if dir.exists()
        && fs::read_dir(&dir)
            .map_err(io_err(&dir, "read"))?
            .next()
            .is_some()
    {
        return Err(BundleError::NotEmpty { path: dir });
    }
    for sub in ["rootfs", "upper", "work"] {
        fs::create_dir_all(dir.join(sub)).map_err(io_err(&dir, "make directories"))?;
    }
    // The mounted root holds the image's setuid files: only root may walk into it.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(&dir, "restrict"))?;
    let lease = lease_name(&dir);
    let result = (|| {
        let _hold = store.hold()?;
        let layers = store.ensure_layers(image, &mut |_| {})?;
        store.lease(&lease, &image.chain_ids())?;
        rootfs::mount_overlay(
            &layers,
            &dir.join("upper"),
            &dir.join("work"),
            &dir.join("rootfs"),
        )?;
        let config = bundle_config(image, &dir.join("rootfs"))?;
        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
        fs::write(dir.join("config.json"), text).map_err(io_err(&dir, "write config.json"))?;
        let record = serde_json::to_vec(&Record {
            image: image.manifest_digest.clone(),
            lease: lease.clone(),
        })
        .unwrap_or_default();
        fs::write(dir.join(RECORD), record).map_err(io_err(&dir, "write record"))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = rootfs::unmount(&dir.join("rootfs"));
        let _ = store.release(&lease);
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Unmounts the bundle's root, releases its lease and removes the directory.
pub fn remove(store: &Store, dir: &Path) -> Result<(), BundleError> {
    let dir = std::path::absolute(dir).map_err(io_err(dir, "resolve"))?;
    let bytes =
        fs::read(dir.join(RECORD)).map_err(|_| BundleError::NotABundle { path: dir.clone() })?;
    let record: Record = serde_json::from_slice(&bytes)
        .map_err(|_| BundleError::NotABundle { path: dir.clone() })?;
    rootfs::unmount(&dir.join("rootfs")).map_err(io_err(&dir, "unmount rootfs"))?;
    store.release(&record.lease)?;
    fs::remove_dir_all(&dir).map_err(io_err(&dir, "remove"))?;
    Ok(())
}

/// Reads `/etc/passwd` or `/etc/group` of the mounted root without leaving it.
fn read_in_root(rootfs: &Path, file: &str) -> Option<String> {
    let root = sys::openat2(
        libc::AT_FDCWD,
        rootfs,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .ok()?;
    let fd = sys::openat2(
        root.as_raw_fd(),
        Path::new(file),
        libc::O_RDONLY,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
    .ok()?;
    let mut text = String::new();
    fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Finds `name` in a passwd/group text: (id, primary gid for passwd).
fn lookup(text: &str, name: &str) -> Option<(u32, Option<u32>)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| (f[2].parse().ok(), f.get(3).and_then(|g| g.parse().ok())))
            .and_then(|(id, gid)| id.map(|i| (i, gid)))
    })
}

/// The image's `User` (`name`, `uid`, `name:group`, `uid:gid`) as numbers, names
/// looked up in the image's own files.
fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32), BundleError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let err = |reason: &str| BundleError::User {
        user: user.to_string(),
        reason: reason.to_string(),
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => {
            let passwd = read_in_root(rootfs, "etc/passwd")
                .ok_or_else(|| err("the image has no /etc/passwd"))?;
            lookup(&passwd, u).ok_or_else(|| err("not in the image's /etc/passwd"))?
        }
    };
    let gid = match g {
        None => primary.unwrap_or(if uid == 0 { 0 } else { uid }),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = read_in_root(rootfs, "etc/group")
                    .ok_or_else(|| err("the image has no /etc/group"))?;
                lookup(&group, g)
                    .map(|(id, _)| id)
                    .ok_or_else(|| err("group not in the image's /etc/group"))?
            }
        },
    };
    Ok((uid, gid))
}

/// `config.json` for the image: the runtime's defaults with the image's process.
fn bundle_config(image: &StoredImage, rootfs: &Path) -> Result<Value, BundleError> {
    let mut config: Value =
        serde_json::from_str(&crate::spec::default_spec_json()).unwrap_or_else(|_| json!({}));
    let c = image.config.config().clone().unwrap_or_default();
    let mut args: Vec<String> = c.entrypoint().clone().unwrap_or_default();
    args.extend(c.cmd().clone().unwrap_or_default());
    if args.is_empty() {
        args.push("sh".into());
    }
    let mut env: Vec<String> = c.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let cwd = c
        .working_dir()
        .clone()
        .filter(|w| w.starts_with('/'))
        .unwrap_or_else(|| "/".into());
    let (uid, gid) = resolve_user(c.user().as_deref().unwrap_or(""), rootfs)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    config["process"]["env"] = json!(env);
    config["process"]["cwd"] = json!(cwd);
    config["process"]["user"] = json!({"uid": uid, "gid": gid});
    config["root"] = json!({"path": "rootfs", "readonly": false});
    config["annotations"] = json!({
        "org.opencontainers.image.manifest.digest": image.manifest_digest.to_string(),
    });
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_by_number_or_from_the_images_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n",
        )
        .expect("passwd");
        fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        assert_eq!(resolve_user("", root).expect("empty"), (0, 0));
        assert_eq!(resolve_user("7", root).expect("uid"), (7, 7));
        assert_eq!(resolve_user("7:8", root).expect("uid:gid"), (7, 8));
        assert_eq!(resolve_user("web", root).expect("name"), (1000, 1001));
        assert_eq!(resolve_user("web:staff", root).expect("names"), (1000, 50));
        assert!(resolve_user("nobody", root).is_err());
        assert!(resolve_user("web:nogroup", root).is_err());
    }

    #[test]
    fn passwd_lookup_survives_garbage() {
        assert_eq!(lookup("x\n::::\nweb:x:notanumber:1\n", "web"), None);
        assert_eq!(lookup("", "root"), None);
    }
}
