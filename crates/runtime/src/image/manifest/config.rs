//! Image configurations: parsed with limits, diff ids validated, chain ids computed.

use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::{MAX_CONFIG_BYTES, MAX_LAYERS, ManifestError, parse_json};
use crate::image::digest::Digest;
use crate::image::platform::Platform;

/// A parsed configuration with its diff ids already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    pub config: ImageConfiguration,
    /// The digest of each layer's uncompressed tar, bottom first.
    pub diff_ids: Vec<Digest>,
}

/// Parses an image configuration (OCI or Docker, which share the fields moor reads).
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    let value = parse_json(bytes, "image config", MAX_CONFIG_BYTES)?;
    let config: ImageConfiguration =
        serde_json::from_value(value).map_err(|source| ManifestError::Decode {
            what: "image config",
            source,
        })?;
    if config.rootfs().typ() != "layers" {
        return Err(ManifestError::RootfsType {
            found: config.rootfs().typ().chars().take(100).collect(),
        });
    }
    let raw = config.rootfs().diff_ids();
    if raw.len() > MAX_LAYERS {
        return Err(ManifestError::TooMany {
            field: "rootfs.diff_ids",
            count: raw.len(),
            max: MAX_LAYERS,
        });
    }
    let diff_ids = raw
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.parse::<Digest>()
                .map_err(|source| ManifestError::BadDigest {
                    field: format!("rootfs.diff_ids[{i}]"),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImageConfig { config, diff_ids })
}

/// The OCI image spec's chain ids: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`. Each names a layer
/// together with everything below it, so equal chain ids mean equal stacks.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::sha256(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A manifest and its config must agree on the number of layers.
pub fn check_layer_count(
    manifest: &ImageManifest,
    config: &ImageConfig,
) -> Result<(), ManifestError> {
    let (layers, diff_ids) = (manifest.layers().len(), config.diff_ids.len());
    if layers != diff_ids {
        return Err(ManifestError::LayerCount { layers, diff_ids });
    }
    Ok(())
}

/// The platform a configuration says its image is for.
pub fn config_platform(config: &ImageConfiguration) -> Platform {
    let arch = config.architecture().to_string();
    // Parsing normalises architecture aliases; fall back to the raw names for values
    // the platform parser refuses (they then match nothing).
    let text = match config.variant() {
        Some(v) if !v.is_empty() => format!("{}/{arch}/{v}", config.os()),
        _ => format!("{}/{arch}", config.os()),
    };
    text.parse().unwrap_or(Platform {
        os: config.os().to_string(),
        architecture: arch,
        variant: config.variant().clone(),
    })
}
