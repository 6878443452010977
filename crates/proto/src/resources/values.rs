//! Small value types whose YAML form differs from their stored form.
//!
//! Owns: [`Opaque`] (a field moor stores but does not interpret yet) and [`IntOrString`]
//! (`targetPort: 8080` or `targetPort: http`). In YAML/JSON they look like Kubernetes; in
//! the compact binary encoding (postcard, which has no self-describing values) they are
//! plain tagged data. The switch is serde's `is_human_readable`, so stored types need no
//! `untagged`, `flatten` or `deserialize_any` on the binary path.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A field moor keeps, unread, until a later step honours it (see `manifest::schema`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Opaque(pub serde_json::Value);

impl Serialize for Opaque {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.0.serialize(serializer)
        } else {
            serializer.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Opaque {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            serde_json::Value::deserialize(deserializer).map(Opaque)
        } else {
            let text = String::deserialize(deserializer)?;
            serde_json::from_str(&text)
                .map(Opaque)
                .map_err(D::Error::custom)
        }
    }
}

/// A port given by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// A port number.
    Int(i32),
    /// A named port of the container.
    String(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(number) => write!(formatter, "{number}"),
            IntOrString::String(name) => formatter.write_str(name),
        }
    }
}

/// The binary form: an ordinary externally tagged enum.
#[derive(Serialize, Deserialize)]
enum TaggedIntOrString {
    Int(i32),
    String(String),
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (serializer.is_human_readable(), self) {
            (true, IntOrString::Int(number)) => serializer.serialize_i32(*number),
            (true, IntOrString::String(name)) => serializer.serialize_str(name),
            (false, IntOrString::Int(number)) => {
                TaggedIntOrString::Int(*number).serialize(serializer)
            }
            (false, IntOrString::String(name)) => {
                TaggedIntOrString::String(name.clone()).serialize(serializer)
            }
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return Ok(match TaggedIntOrString::deserialize(deserializer)? {
                TaggedIntOrString::Int(number) => IntOrString::Int(number),
                TaggedIntOrString::String(name) => IntOrString::String(name),
            });
        }
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(name) => Ok(IntOrString::String(name)),
            serde_json::Value::Number(number) => number
                .as_i64()
                .and_then(|number| i32::try_from(number).ok())
                .map(IntOrString::Int)
                .ok_or_else(|| D::Error::custom("port number out of range")),
            other => Err(D::Error::custom(format!(
                "expected a number or a name, found {other}"
            ))),
        }
    }
}
