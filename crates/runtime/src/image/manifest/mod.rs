//! Manifests, indexes and image configurations: parsing them as hostile input and
//! choosing the manifest for a platform.
//!
//! Owns the rules for what moor accepts as a manifest; does not fetch or store anything
//! (the registry client and the store call in here).
//!
//! ```text
//! bytes + declared media type ──parse──► Parsed::Index ──select(platform)──► Descriptor
//!                                        Parsed::Image ──config blob──► parse_config ──► chain_ids
//! ```
//!
//! Accepted: OCI image manifests and indexes, Docker schema 2 manifests and manifest
//! lists. Refused: schema 1, unknown media types, a document whose declared media type
//! (HTTP `Content-Type` or the descriptor that pointed at it) contradicts its own
//! `mediaType` field or its shape (`manifests` for an index, `layers` for an image),
//! `schemaVersion` other than 2, more than [`MAX_MANIFEST_BYTES`], non-UTF-8, nesting
//! deeper than [`MAX_DEPTH`], and descriptors whose digest is not a valid [`Digest`] or
//! whose size is negative or above [`MAX_BLOB_SIZE`].

mod config;
#[cfg(test)]
mod tests;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::Value;

use super::digest::{Digest, DigestError};
use super::platform::Platform;

pub use config::{ImageConfig, chain_ids, check_layer_count, config_platform, parse_config};

/// Largest manifest or index accepted (the distribution spec's own recommended limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest image configuration accepted: configs carry history and labels, real ones
/// are well under 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;
/// Largest blob a descriptor may announce. 64 GiB is far above any layer an edge device
/// can hold, and low enough that size arithmetic never overflows.
pub const MAX_BLOB_SIZE: u64 = 64 << 30;
/// Deepest JSON nesting accepted. A manifest needs four levels, a config about five.
pub const MAX_DEPTH: usize = 32;
/// Most layers an image may have: overlayfs stacks at most 500 lower directories.
pub const MAX_LAYERS: usize = 500;
/// Most manifests an index may list.
pub const MAX_INDEX_ENTRIES: usize = 1024;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The `Accept` header a registry client sends for manifests.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

const SCHEMA1: [&str; 3] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1",
];

/// The annotation buildkit puts on attestation manifests in an index.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Errors parsing manifests, indexes and configurations.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{what} is {size} bytes: more than the {max} allowed")]
    TooLarge {
        what: &'static str,
        size: u64,
        max: u64,
    },
    #[error("{what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("{what} nests deeper than {max} levels")]
    TooDeep { what: &'static str, max: usize },
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} does not match the OCI schema: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "schema 1 manifests ({media_type}) are not supported: push the image again with a current client"
    )]
    SchemaV1 { media_type: String },
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType { media_type: String },
    #[error("manifest declared as {declared:?} says it is {found:?}")]
    MediaTypeMismatch { declared: String, found: String },
    #[error("manifest of type {media_type} has the shape of {shape}")]
    ShapeMismatch {
        media_type: String,
        shape: &'static str,
    },
    #[error("manifest has both \"manifests\" and \"layers\": ambiguous, refused")]
    Ambiguous,
    #[error("manifest has neither \"manifests\" nor \"layers\"")]
    UnknownShape,
    #[error("schemaVersion {found} is not supported: expected 2")]
    SchemaVersion { found: String },
    #[error("{field}: {source}")]
    BadDigest {
        field: String,
        #[source]
        source: DigestError,
    },
    #[error("{field}: size {found} is not a whole number from 0 to {max}")]
    BadSize {
        field: String,
        found: String,
        max: u64,
    },
    #[error("{field}: missing or not a {expected}")]
    BadField {
        field: String,
        expected: &'static str,
    },
    #[error("{field} has {count} entries: more than the {max} allowed")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("no manifest for {wanted} in the index (available: {})", available.join(", "))]
    NoMatchingPlatform {
        wanted: String,
        available: Vec<String>,
    },
    #[error("rootfs.type is {found:?}: expected \"layers\"")]
    RootfsType { found: String },
    #[error("the manifest has {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCount { layers: usize, diff_ids: usize },
}

/// What a manifest document turned out to be.
// Short-lived and never in a collection: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Image(ImageManifest),
    Index(ImageIndex),
}

impl Parsed {
    /// The document's media type: its own `mediaType` field, else the OCI type of its
    /// kind (OCI documents may leave the field out).
    pub fn media_type(&self) -> String {
        match self {
            Parsed::Image(m) => m
                .media_type()
                .as_ref()
                .map_or(OCI_MANIFEST.to_string(), |t| t.to_string()),
            Parsed::Index(i) => i
                .media_type()
                .as_ref()
                .map_or(OCI_INDEX.to_string(), |t| t.to_string()),
        }
    }

    /// Every descriptor the document points at: the config and layers of an image, the
    /// manifests of an index.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Parsed::Image(m) => std::iter::once(m.config()).chain(m.layers()).collect(),
            Parsed::Index(i) => i.manifests().iter().collect(),
        }
    }
}

/// An image manifest or an index: the two kinds of manifest document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Index,
}

/// The kind a media type names, `None` for anything that is not a manifest moor reads.
pub fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        OCI_INDEX | DOCKER_LIST => Some(Kind::Index),
        _ => None,
    }
}

/// A descriptor's digest as a validated [`Digest`].
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    d.digest()
        .to_string()
        .parse()
        .map_err(|source| ManifestError::BadDigest {
            field: "digest".into(),
            source,
        })
}

/// Parses a manifest or index. `declared_media_type` is what the source said it is (an
/// HTTP `Content-Type`, parameters allowed, or the media type of the descriptor that
/// pointed at it); `None` or `application/json` when nobody said.
pub fn parse(bytes: &[u8], declared_media_type: Option<&str>) -> Result<Parsed, ManifestError> {
    let value = parse_json(bytes, "manifest", MAX_MANIFEST_BYTES)?;
    let Some(obj) = value.as_object() else {
        return Err(ManifestError::BadField {
            field: "manifest".into(),
            expected: "JSON object",
        });
    };

    let field_type = match obj.get("mediaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ManifestError::BadField {
                field: "mediaType".into(),
                expected: "string",
            });
        }
    };
    let declared = declared_media_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty() && t != "application/json");

    for t in declared.iter().map(String::as_str).chain(field_type) {
        if SCHEMA1.contains(&t) {
            return Err(ManifestError::SchemaV1 {
                media_type: t.to_string(),
            });
        }
    }
    let schema = obj.get("schemaVersion");
    if schema.and_then(Value::as_u64) != Some(2) {
        if schema.and_then(Value::as_u64) == Some(1) {
            return Err(ManifestError::SchemaV1 {
                media_type: field_type.unwrap_or("schemaVersion 1").to_string(),
            });
        }
        return Err(ManifestError::SchemaVersion {
            found: schema.map_or("(missing)".to_string(), |v| truncate(&v.to_string())),
        });
    }

    let shape = match (obj.contains_key("manifests"), obj.contains_key("layers")) {
        (true, true) => return Err(ManifestError::Ambiguous),
        (true, false) => Kind::Index,
        (false, true) => Kind::Image,
        (false, false) => return Err(ManifestError::UnknownShape),
    };
    if let (Some(d), Some(f)) = (declared.as_deref(), field_type)
        && d != f
    {
        return Err(ManifestError::MediaTypeMismatch {
            declared: truncate(d),
            found: truncate(f),
        });
    }
    if let Some(t) = declared.as_deref().or(field_type) {
        let kind = kind_of(t).ok_or_else(|| ManifestError::UnsupportedMediaType {
            media_type: truncate(t),
        })?;
        if kind != shape {
            return Err(ManifestError::ShapeMismatch {
                media_type: t.to_string(),
                shape: match shape {
                    Kind::Image => "an image manifest",
                    Kind::Index => "an index",
                },
            });
        }
    }

    match shape {
        Kind::Image => {
            check_descriptor(obj.get("config"), "config")?;
            let layers = descriptor_list(obj.get("layers"), "layers", MAX_LAYERS)?;
            for (i, l) in layers.iter().enumerate() {
                check_descriptor(Some(l), &format!("layers[{i}]"))?;
            }
        }
        Kind::Index => {
            let list = descriptor_list(obj.get("manifests"), "manifests", MAX_INDEX_ENTRIES)?;
            for (i, m) in list.iter().enumerate() {
                check_descriptor(Some(m), &format!("manifests[{i}]"))?;
            }
        }
    }
    if let Some(s) = obj.get("subject").filter(|s| !s.is_null()) {
        check_descriptor(Some(s), "subject")?;
    }

    let decode = |source| ManifestError::Decode {
        what: "manifest",
        source,
    };
    Ok(match shape {
        Kind::Image => Parsed::Image(serde_json::from_value(value).map_err(decode)?),
        Kind::Index => Parsed::Index(serde_json::from_value(value).map_err(decode)?),
    })
}

/// Chooses the manifest for `platform` from an index: the best [`Platform::rank`] wins,
/// the first of equals. Attestation manifests (buildkit's `unknown/unknown` entries) and
/// entries that are not manifests are skipped; an entry without a platform is taken only
/// when nothing names a matching one (the caller checks the config's platform).
pub fn select(index: &ImageIndex, platform: &Platform) -> Result<Descriptor, ManifestError> {
    const NO_PLATFORM_RANK: u8 = u8::MAX;
    let mut best: Option<(u8, &Descriptor)> = None;
    let mut available = Vec::new();
    for d in index.manifests() {
        if kind_of(d.media_type().as_ref()).is_none() || is_attestation(d) {
            continue;
        }
        let rank = match d.platform() {
            Some(p) => {
                let (os, arch) = (p.os().to_string(), p.architecture().to_string());
                let variant = p.variant().as_deref();
                available.push(match variant {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                });
                platform.rank(&os, &arch, variant)
            }
            None => {
                available.push("(no platform)".to_string());
                Some(NO_PLATFORM_RANK)
            }
        };
        if let Some(r) = rank
            && best.is_none_or(|(b, _)| r < b)
        {
            best = Some((r, d));
        }
    }
    best.map(|(_, d)| d.clone())
        .ok_or_else(|| ManifestError::NoMatchingPlatform {
            wanted: platform.to_string(),
            available,
        })
}

/// Attestation manifests: buildkit marks them with an annotation and the platform
/// `unknown/unknown`; neither is an image to run.
pub fn is_attestation(d: &Descriptor) -> bool {
    let annotated = d
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REFERENCE_TYPE))
        .is_some_and(|t| t == "attestation-manifest");
    let unknown = d.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "unknown" && p.architecture().to_string() == "unknown"
    });
    annotated || unknown
}

/// Size, UTF-8 and depth checks, then JSON. Shared with the config parser.
pub(crate) fn parse_json(
    bytes: &[u8],
    what: &'static str,
    max: u64,
) -> Result<Value, ManifestError> {
    let size = bytes.len() as u64;
    if size > max {
        return Err(ManifestError::TooLarge { what, size, max });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8 { what })?;
    if !depth_within(text, MAX_DEPTH) {
        return Err(ManifestError::TooDeep {
            what,
            max: MAX_DEPTH,
        });
    }
    serde_json::from_str(text).map_err(|source| ManifestError::Json { what, source })
}

/// True when no array or object in `text` nests deeper than `max`. Counts brackets
/// outside strings, so it runs before a recursive parser ever sees the input.
fn depth_within(text: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn descriptor_list<'a>(
    v: Option<&'a Value>,
    field: &'static str,
    max: usize,
) -> Result<&'a Vec<Value>, ManifestError> {
    let list = v.and_then(Value::as_array).ok_or(ManifestError::BadField {
        field: field.into(),
        expected: "list",
    })?;
    if list.len() > max {
        return Err(ManifestError::TooMany {
            field,
            count: list.len(),
            max,
        });
    }
    Ok(list)
}

/// A descriptor's media type is a string, its digest a valid [`Digest`], its size a
/// whole number no larger than [`MAX_BLOB_SIZE`].
fn check_descriptor(v: Option<&Value>, field: &str) -> Result<(), ManifestError> {
    let bad = |name: &str, expected| ManifestError::BadField {
        field: format!("{field}{name}"),
        expected,
    };
    let obj = v
        .and_then(Value::as_object)
        .ok_or_else(|| bad("", "descriptor object"))?;
    obj.get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(".mediaType", "string"))?;
    let digest = obj
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(".digest", "string"))?;
    digest
        .parse::<Digest>()
        .map_err(|source| ManifestError::BadDigest {
            field: format!("{field}.digest"),
            source,
        })?;
    let size = obj.get("size");
    if size
        .and_then(Value::as_u64)
        .is_none_or(|s| s > MAX_BLOB_SIZE)
    {
        return Err(ManifestError::BadSize {
            field: format!("{field}.size"),
            found: size.map_or("(missing)".to_string(), |s| truncate(&s.to_string())),
            max: MAX_BLOB_SIZE,
        });
    }
    Ok(())
}

/// Untrusted text in an error message: at most 200 characters.
fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
