//! `moor image build DIR`: a small, reproducible image builder (no `RUN` steps: files,
//! links and configuration only, which is what appliance images need).
//!
//! ```text
//! DIR/image.yaml ─ spec::load ─▶ BuildSpec ─ layer::write_layer ─▶ one gzip layer
//!                                       └── base image's layers (from:) are reused as is
//! config (base's, overridden) + manifest ─▶ store, tagged
//! ```
//!
//! The same directory and spec give the same manifest digest: the layer is written
//! deterministically (see [`layer`]), the config is JSON with sorted keys and one fixed
//! time (`SOURCE_DATE_EPOCH`, or 0), and nothing of the host but the files' contents
//! and permission bits gets in.

pub mod layer;
pub mod spec;

use std::fs::{self, File};
use std::io::{self, Seek};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use self::layer::{LayerError, write_layer};
use self::spec::{BuildSpec, SpecFileError};
use crate::image::digest::Digest;
use crate::image::manifest::{MAX_BLOB_SIZE, OCI_CONFIG, OCI_MANIFEST};
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::image::store::{Store, StoreError};

/// The spec file's name in a build directory.
pub const SPEC_FILE: &str = "image.yaml";

/// The media type of the layers a build writes.
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Spec(#[from] SpecFileError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("base image {reference} is not in the store (pull, import or build it first)")]
    BaseMissing { reference: Reference },
    #[error("build scratch file {path}: {source}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("base image config {digest}: {reason}")]
    BaseConfig { digest: Digest, reason: String },
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build directory.
    pub dir: PathBuf,
    /// The spec; `DIR/image.yaml` when `None`.
    pub spec: Option<PathBuf>,
    /// Tags to give the result.
    pub tags: Vec<Reference>,
    /// The one timestamp of the image (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
}

impl BuildOptions {
    /// Options for `dir` with the epoch from `SOURCE_DATE_EPOCH` (0 if unset or bad).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            dir: dir.into(),
            spec: None,
            tags: Vec::new(),
            epoch,
        }
    }
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub manifest: Digest,
    pub config: Digest,
    pub layer: Digest,
    pub platform: Platform,
}

/// A scratch file in the data directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Builds the image and tags it.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<Built, BuildError> {
    let spec_path = opts
        .spec
        .clone()
        .unwrap_or_else(|| opts.dir.join(SPEC_FILE));
    let spec = spec::load(&spec_path, &opts.dir)?;
    let _hold = store.hold()?;
    let base = match &spec.from {
        None => None,
        Some(reference) => {
            let digest = store
                .resolve(reference)?
                .ok_or_else(|| BuildError::BaseMissing {
                    reference: reference.clone(),
                })?;
            let platform = spec.platform.clone().unwrap_or_else(Platform::host);
            Some(store.image(&digest, &platform)?)
        }
    };
    let platform = spec
        .platform
        .clone()
        .or_else(|| base.as_ref().map(|b| b.platform.clone()))
        .unwrap_or_else(Platform::host);

    // The layer goes through a scratch file beside the store, then in with its digest.
    let scratch = Scratch(
        store
            .root()
            .parent()
            .unwrap_or(store.root())
            .join(format!(".build-{}", std::process::id())),
    );
    let scratch_err = |source| BuildError::Scratch {
        path: scratch.0.clone(),
        source,
    };
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&scratch.0)
        .map_err(scratch_err)?;
    let (info, mut file) = write_layer(&spec.items, base.is_none(), opts.epoch, file)?;
    file.rewind().map_err(scratch_err)?;
    store.ingest(
        &info.digest,
        Some(info.size),
        MAX_BLOB_SIZE,
        &mut file,
        &mut |_| {},
    )?;

    let base_config = match &base {
        Some(b) => {
            let bytes =
                store.read_blob(&b.config_digest, crate::image::manifest::MAX_CONFIG_BYTES)?;
            serde_json::from_slice::<Value>(&bytes).map_err(|e| BuildError::BaseConfig {
                digest: b.config_digest.clone(),
                reason: e.to_string(),
            })?
        }
        None => json!({}),
    };
    let config = image_config(base_config, &spec, &platform, &info.diff_id, opts.epoch);
    let config_bytes = serde_json::to_vec(&config).map_err(|e| BuildError::BaseConfig {
        digest: Digest::sha256(b""),
        reason: e.to_string(),
    })?;
    let config_digest = store.put_blob(&config_bytes)?;

    let mut layers: Vec<Value> = match &base {
        Some(b) => b
            .layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": l.blob.media_type().to_string(),
                    "digest": l.blob_digest.to_string(),
                    "size": l.blob.size(),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    layers.push(json!({
        "mediaType": LAYER_MEDIA_TYPE,
        "digest": info.digest.to_string(),
        "size": info.size,
    }));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": layers,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| BuildError::BaseConfig {
        digest: config_digest.clone(),
        reason: e.to_string(),
    })?;
    let manifest_digest = store.put_blob(&manifest_bytes)?;
    for tag in &opts.tags {
        store.tag(tag, &manifest_digest)?;
    }
    Ok(Built {
        manifest: manifest_digest,
        config: config_digest,
        layer: info.digest,
        platform,
    })
}

/// RFC 3339 of a Unix time.
fn rfc3339(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
        .to_string()
}

/// The new image's config: the base's (or an empty one) with the spec's settings over
/// it, Docker's way: a new entrypoint drops the base's cmd unless the spec sets one;
/// env entries replace the base's of the same name; ports and labels are merged.
fn image_config(
    mut base: Value,
    spec: &BuildSpec,
    platform: &Platform,
    diff_id: &Digest,
    epoch: u64,
) -> Value {
    if !base.is_object() {
        base = json!({});
    }
    let created = rfc3339(epoch);
    let root = base.as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut root: Map<String, Value> = root;
    root.insert("created".into(), json!(created));
    root.insert("os".into(), json!(platform.os));
    root.insert("architecture".into(), json!(platform.architecture));
    match &platform.variant {
        Some(v) => root.insert("variant".into(), json!(v)),
        None => root.remove("variant"),
    };
    let mut cfg = root
        .remove("config")
        .and_then(|c| match c {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    if let Some(ep) = &spec.entrypoint {
        cfg.insert("Entrypoint".into(), json!(ep));
        if spec.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &spec.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if !spec.env.is_empty() {
        let mut env: Vec<String> = cfg
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for kv in &spec.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        cfg.insert("Env".into(), json!(env));
    }
    if let Some(w) = &spec.workdir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &spec.user {
        cfg.insert("User".into(), json!(u));
    }
    if !spec.expose.is_empty() {
        let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
        if let Value::Object(m) = ports {
            for p in &spec.expose {
                m.insert(p.clone(), json!({}));
            }
        }
    }
    if !spec.labels.is_empty() {
        let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
        if let Value::Object(m) = labels {
            for (k, v) in &spec.labels {
                m.insert(k.clone(), json!(v));
            }
        }
    }
    root.insert("config".into(), Value::Object(cfg));
    let mut rootfs = root
        .remove("rootfs")
        .and_then(|r| r.get("diff_ids").cloned())
        .and_then(|d| match d {
            Value::Array(a) => Some(a),
            _ => None,
        })
        .unwrap_or_default();
    rootfs.push(json!(diff_id.to_string()));
    root.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": rootfs}),
    );
    let mut history = match root.remove("history") {
        Some(Value::Array(h)) => h,
        _ => Vec::new(),
    };
    history.push(json!({"created": created, "created_by": "moor image build"}));
    root.insert("history".into(), Value::Array(history));
    Value::Object(root)
}

/// Where a build directory's spec is, for messages.
pub fn spec_path(dir: &Path) -> PathBuf {
    dir.join(SPEC_FILE)
}

#[cfg(test)]
mod tests;
