//! Making image content by hand, including content no well-behaved tool would write:
//! tar archives with any entry names and links, OCI image layouts (directories)
//! with any `index.json`, `docker save` archives, and gzip or zstd compression.
//!
//! ```text
//! Tar::new().file("bin/x", 0o755, b"…").symlink("a", "../b").finish()   raw ustar bytes
//! Layout::new(dir).blob(bytes) -> Descriptor; .index(json)             an OCI layout dir
//! image_blobs(layers, cmd)                                              config + manifest
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(bytes))
}

/// The hex SHA-256 of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// zstd of `bytes`.
pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).expect("zstd")
}

/// A descriptor of a blob: `{mediaType, digest, size}`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// A tar archive written byte by byte (ustar headers), so entries can have names and
/// link targets the `tar` crate's builder refuses (`../x`, absolute paths).
#[derive(Debug, Default)]
pub struct Tar {
    out: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    fn entry(&mut self, name: &str, kind: u8, mode: u32, link: &str, data: &[u8]) -> &mut Tar {
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "names are at most 100 bytes here"
        );
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| {
            h[at..at + bytes.len()].copy_from_slice(bytes);
        };
        let octal = |h: &mut [u8; 512], at: usize, width: usize, value: u64| {
            let text = format!("{value:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(text.as_bytes());
        };
        put(&mut h, 0, name.as_bytes());
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 0);
        h[156] = kind;
        put(&mut h, 157, link.as_bytes());
        put(&mut h, 257, b"ustar\0");
        put(&mut h, 263, b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Tar {
        self.entry(name, b'0', mode, "", data)
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Tar {
        self.entry(name, b'5', mode, "", &[])
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.entry(name, b'2', 0o777, target, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.entry(name, b'1', 0o644, target, &[])
    }

    /// The archive, with its two zero blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend(std::iter::repeat_n(0, 1024));
        out
    }
}

/// A config, layer blobs and a manifest for one image.
#[derive(Debug, Clone)]
pub struct ImageBlobs {
    pub config: Vec<u8>,
    /// (media type, blob) per layer.
    pub layers: Vec<(String, Vec<u8>)>,
    pub manifest: Vec<u8>,
}

impl ImageBlobs {
    pub fn manifest_digest(&self) -> String {
        digest(&self.manifest)
    }
}

/// An image of uncompressed tar layers (`layers`), running `cmd`, for linux/amd64 or
/// whatever `arch` names.
pub fn image_blobs(layers: &[Vec<u8>], cmd: &[&str], arch: &str) -> ImageBlobs {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes();
    let layer_descriptors: Vec<Value> = layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": layer_descriptors,
    })
    .to_string()
    .into_bytes();
    ImageBlobs {
        config,
        layers: layers
            .iter()
            .map(|l| (OCI_LAYER.to_string(), l.clone()))
            .collect(),
        manifest,
    }
}

/// An OCI image layout directory being written.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Makes `dir` with `oci-layout` and an empty `blobs/sha256`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir layout");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write oci-layout");
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` under their digest; returns the digest.
    pub fn blob(&self, bytes: &[u8]) -> String {
        self.blob_as(&hex(bytes), bytes);
        digest(bytes)
    }

    /// Writes `bytes` as `blobs/sha256/<name>`, whatever their digest.
    pub fn blob_as(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join("blobs/sha256").join(name), bytes).expect("write blob");
    }

    /// Writes every blob of an image.
    pub fn image(&self, image: &ImageBlobs) {
        self.blob(&image.config);
        for (_, l) in &image.layers {
            self.blob(l);
        }
        self.blob(&image.manifest);
    }

    /// Writes `index.json`.
    pub fn index(&self, index: &Value) {
        std::fs::write(self.dir.join("index.json"), index.to_string()).expect("write index.json");
    }

    /// An `index.json` naming `manifests` (descriptors).
    pub fn index_of(&self, manifests: &[Value]) {
        self.index(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }));
    }
}

/// A `docker save` archive of one image: `manifest.json`, the config as
/// `<hex>.json`, each layer as `<n>/layer.tar`, tagged `repo_tags`.
pub fn docker_save_tar(image: &ImageBlobs, repo_tags: &[&str]) -> Vec<u8> {
    let config_name = format!("{}.json", hex(&image.config));
    let layer_names: Vec<String> = (0..image.layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }])
    .to_string();
    let mut tar = Tar::new();
    tar.file("manifest.json", 0o644, manifest.as_bytes());
    tar.file(&config_name, 0o644, &image.config);
    for (name, (_, layer)) in layer_names.iter().zip(&image.layers) {
        let dir = name.trim_end_matches("/layer.tar");
        tar.dir(dir, 0o755);
        tar.file(name, 0o644, layer);
        tar.file(&format!("{dir}/VERSION"), 0o644, b"1.0");
    }
    tar.file("repositories", 0o644, b"{}");
    tar.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entries_read_back_with_their_names() {
        let bytes = Tar::new()
            .dir("d", 0o755)
            .file("d/f", 0o644, b"hello")
            .symlink("d/l", "../x")
            .finish();
        assert_eq!(bytes.len() % 512, 0);
        // Header checksums and names as written.
        assert_eq!(&bytes[..1], b"d");
        assert_eq!(&bytes[512..515], b"d/f");
        assert_eq!(&bytes[1024..1029], b"hello");
        assert_eq!(&bytes[1536..1539], b"d/l");
        assert_eq!(&bytes[1536 + 157..1536 + 161], b"../x");
    }

    #[test]
    fn image_blobs_reference_each_other() {
        let layer = Tar::new().file("a", 0o644, b"a").finish();
        let image = image_blobs(std::slice::from_ref(&layer), &["/a"], "amd64");
        let manifest: Value = serde_json::from_slice(&image.manifest).expect("json");
        assert_eq!(manifest["layers"][0]["digest"], digest(&layer));
        assert_eq!(manifest["config"]["digest"], digest(&image.config));
    }
}
