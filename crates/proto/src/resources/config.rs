//! ConfigMap and Secret: key–value data handed to pods.
//!
//! Owns: their types. Secret `data` holds the decoded bytes, so what is stored and sent
//! is the value itself; `stringData` from a manifest is merged into `data` by the
//! manifest layer. Does not own: encryption at rest (the controller) or mounting (agent).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::resource;

resource! {
    /// Plain configuration data.
    ConfigMap, "v1", "ConfigMap" {
        /// UTF-8 values.
        data: BTreeMap<String, String>,
        /// Base64 in manifests, bytes here.
        binary_data: BTreeMap<String, Bytes>,
        /// Whether the data may never change.
        immutable: Option<bool>,
    }
}

resource! {
    /// Sensitive data: reaches containers as files on tmpfs, never logged.
    Secret, "v1", "Secret" {
        /// Base64 in manifests, bytes here.
        data: BTreeMap<String, Bytes>,
        /// `Opaque` when unset.
        #[serde(rename = "type")]
        secret_type: Option<String>,
        /// Whether the data may never change.
        immutable: Option<bool>,
    }
}

/// Bytes that appear as standard base64 in YAML and JSON, and as raw bytes in postcard.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    /// Never prints the content: secrets must not reach logs through `{:?}`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        use serde::de::Error as _;
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map(Bytes)
                .map_err(|error| D::Error::custom(format!("invalid base64: {error}")))
        } else {
            serde_bytes_vec(deserializer).map(Bytes)
        }
    }
}

fn serde_bytes_vec<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct BytesVisitor;
    impl<'de> serde::de::Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }
    }
    deserializer.deserialize_bytes(BytesVisitor)
}
