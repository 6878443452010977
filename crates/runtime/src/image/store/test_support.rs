//! Helpers for the store's and the archives' tests: small images made by hand (layer
//! tars, configs, manifests, indexes) and a look at who waits on a lock.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Store;
use crate::image::digest::Digest;
use crate::image::manifest::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::image::platform::Platform;

pub(crate) const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer tar holding `files` (parent directories added), owner 0:0, fixed times.
pub(crate) fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (name, _) in files {
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
    }
    for d in dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())
            .unwrap();
    }
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An image put into a store piece by piece.
#[derive(Debug, Clone)]
pub(crate) struct TestImage {
    pub manifest: Digest,
    pub manifest_size: u64,
    pub config: Digest,
    pub config_bytes: Vec<u8>,
    /// Layer blob digests and bytes, bottom first.
    pub layers: Vec<(Digest, Vec<u8>)>,
    pub diff_ids: Vec<Digest>,
    pub manifest_bytes: Vec<u8>,
}

/// The JSON of a config for `platform` with these diff ids.
pub(crate) fn config_json(platform: &Platform, diff_ids: &[Digest]) -> Vec<u8> {
    let mut v = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "test"}],
    });
    if let Some(variant) = &platform.variant {
        v["variant"] = serde_json::json!(variant);
    }
    serde_json::to_vec(&v).unwrap()
}

/// Builds an image from uncompressed layer tars (gzipped when `compress`), puts every
/// blob into `store` and returns what it made.
pub(crate) fn put_image(
    store: &Store,
    platform: &Platform,
    tars: &[Vec<u8>],
    compress: bool,
) -> TestImage {
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::sha256(t)).collect();
    let config_bytes = config_json(platform, &diff_ids);
    let config = store.put_blob(&config_bytes).unwrap();
    let mut layers = Vec::new();
    for t in tars {
        let blob = if compress { gzip(t) } else { t.clone() };
        let d = store.put_blob(&blob).unwrap();
        layers.push((d, blob));
    }
    let manifest_bytes = manifest_json(&config, config_bytes.len(), &layers, compress);
    let manifest = store.put_blob(&manifest_bytes).unwrap();
    TestImage {
        manifest,
        manifest_size: manifest_bytes.len() as u64,
        config,
        config_bytes,
        layers,
        diff_ids,
        manifest_bytes,
    }
}

pub(crate) fn manifest_json(
    config: &Digest,
    config_size: usize,
    layers: &[(Digest, Vec<u8>)],
    compressed: bool,
) -> Vec<u8> {
    let layer_type = if compressed { LAYER_GZIP } else { LAYER_TAR };
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": config_size},
        "layers": layers.iter().map(|(d, b)| serde_json::json!({
            "mediaType": layer_type, "digest": d, "size": b.len(),
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).unwrap()
}

/// The JSON of an index listing `(digest, size, media type, platform)`.
pub(crate) fn index_json(entries: &[(&Digest, u64, &str, &str)]) -> Vec<u8> {
    let manifests: Vec<_> = entries
        .iter()
        .map(|(d, size, media_type, platform)| {
            let p: Vec<&str> = platform.split('/').collect();
            let mut plat = serde_json::json!({"os": p[0], "architecture": p[1]});
            if let Some(v) = p.get(2) {
                plat["variant"] = serde_json::json!(v);
            }
            serde_json::json!({"mediaType": media_type, "digest": d, "size": size, "platform": plat})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

pub(crate) fn platform(s: &str) -> Platform {
    s.parse().unwrap()
}

/// True when some open file description waits for a `flock` on `path` (`/proc/locks`
/// lists waiters with `->`).
pub(crate) fn someone_waits_on(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let Ok(locks) = fs::read_to_string("/proc/locks") else {
        return false;
    };
    locks.lines().any(|line| {
        line.contains("->")
            && line.contains("FLOCK")
            && line.split_whitespace().any(|field| {
                field
                    .rsplit(':')
                    .next()
                    .and_then(|ino| ino.parse::<u64>().ok())
                    .is_some_and(|ino| ino == meta.ino() && field.matches(':').count() == 2)
            })
    })
}

/// The names in `dir`, sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Returns from the test when a prerequisite is missing (see `tests::prereq::require`).
macro_rules! require {
    ($ok:expr, $what:expr) => {
        if !::tests::prereq::require($what, $ok) {
            return;
        }
    };
}
pub(crate) use require;

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Waits until `cond` holds, panicking with `what` if it does not within 10 s.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut backoff = std::time::Duration::from_millis(1);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(std::time::Duration::from_millis(50));
    }
}
