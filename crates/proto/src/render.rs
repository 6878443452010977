//! Rendering objects as YAML or JSON for people (`moor get -o yaml`).
//!
//! Owns: turning stored objects into text without noise: the stored types are plain
//! (every field always present, as postcard needs), so `null`s and empty lists and maps
//! are pruned here instead of with `skip_serializing_if` on the types. An `emptyDir: {}`
//! is kept: its presence is the meaning. Does not own: reading (see `manifest`).

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::resources::{Object, each_kind};

/// Why an object could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// serde_yaml_ng refused a value.
    #[error("cannot render as YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// serde_json refused a value.
    #[error("cannot render as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Keys whose empty mapping means something.
const MEANINGFUL_WHEN_EMPTY: &[&str] = &["emptyDir"];

/// Keys whose empty string means "unset": a pod template's `metadata.name` is stored as
/// `""`. Other empty strings are kept, since an empty label value is a value.
const UNSET_WHEN_EMPTY_STRING: &[&str] = &["name"];

fn pruned_value(object: &Object) -> Result<Value, RenderError> {
    let mut value = each_kind!(object, inner => to_value(inner))?;
    prune(&mut value);
    Ok(value)
}

fn to_value<T: Serialize>(inner: &T) -> Result<Value, RenderError> {
    Ok(serde_yaml_ng::to_value(inner)?)
}

fn prune(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            for (_, entry) in mapping.iter_mut() {
                prune(entry);
            }
            mapping.retain(|key, entry| {
                let key = key.as_str().unwrap_or_default();
                let keep_empty = MEANINGFUL_WHEN_EMPTY.contains(&key);
                match entry {
                    Value::Null => false,
                    Value::String(text) if text.is_empty() => {
                        !UNSET_WHEN_EMPTY_STRING.contains(&key)
                    }
                    Value::Mapping(inner) if inner.is_empty() => keep_empty,
                    Value::Sequence(items) if items.is_empty() => false,
                    _ => true,
                }
            });
        }
        Value::Sequence(items) => items.iter_mut().for_each(prune),
        Value::Tagged(tagged) => prune(&mut tagged.value),
        _ => {}
    }
}

/// One object as a YAML document (without the leading `---`).
pub fn to_yaml(object: &Object) -> Result<String, RenderError> {
    Ok(serde_yaml_ng::to_string(&pruned_value(object)?)?)
}

/// Several objects as one YAML stream, documents separated by `---`.
pub fn to_yaml_stream(objects: &[Object]) -> Result<String, RenderError> {
    let documents = objects.iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(documents.join("---\n"))
}

/// One object as pretty JSON, fields in the same order as the YAML.
pub fn to_json(object: &Object) -> Result<String, RenderError> {
    Ok(serde_json::to_string_pretty(&pruned_value(object)?)?)
}
