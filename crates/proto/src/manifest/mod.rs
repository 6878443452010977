//! Manifest parsing: bytes with a source name in, validated objects and warnings out.
//!
//! Owns: the pipeline below and its diagnostics ([`ManifestError`], [`Warning`]), each
//! naming the source, line, column, field path and reason. The field table that decides
//! what is honoured, stored with a warning, or refused lives in [`schema`].
//! Does not own: reading files, directories or stdin (the CLI does that and calls
//! [`parse`] once per input), nor defaulting the namespace (`-n` is the CLI's).
//!
//! ```text
//! bytes ─► yaml::read_documents ─► per document: apiVersion/kind ─► check (schema
//!   table: shapes, classes, warnings) ─► JSON ─► serde into resources::* ─► validate
//!   ─► Object + location
//! ```
//!
//! Every document is checked even after an error in another, so one run reports every
//! problem in a file. YAML and JSON are read alike (JSON is YAML flow syntax). A `v1`
//! `List` document (what `kubectl get -o yaml` prints) yields its items; their paths
//! start with `items[N]`.

mod check;
mod error;
pub mod schema;

pub use error::{Location, ManifestError, ManifestErrors, Warning, WarningReason};

use std::collections::HashMap;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::path::FieldPath;
use crate::resources::{
    ConfigMap, DaemonSet, Deployment, Job, Kind, Namespace, Node as NodeObject, Object, Pod,
    Secret, Service,
};
use crate::validate;
use crate::yaml::{self, Limits, Mark, Node, Value};
use check::Checker;

/// One object read from an input, with where its document starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObject {
    /// The object, validated.
    pub object: Object,
    /// Where its document starts.
    pub location: Location,
}

/// The objects of one input, in source order, and the warnings about them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manifest {
    /// The objects.
    pub objects: Vec<ParsedObject>,
    /// Fields that were accepted but are not (or not yet) acted on.
    pub warnings: Vec<Warning>,
}

/// Parses every document of one input under the default [`Limits`].
pub fn parse(source: &str, bytes: &[u8]) -> Result<Manifest, ManifestErrors> {
    parse_with_limits(source, bytes, Limits::default())
}

/// Parses every document of one input under the given limits.
pub fn parse_with_limits(
    source: &str,
    bytes: &[u8],
    limits: Limits,
) -> Result<Manifest, ManifestErrors> {
    let documents = yaml::read_documents(bytes, limits).map_err(|reason| {
        let mark = reason.mark().unwrap_or_default();
        let location = Location {
            source: source.to_owned(),
            line: mark.line,
            column: mark.column,
        };
        ManifestErrors(vec![ManifestError::Yaml { location, reason }])
    })?;
    let mut manifest = Manifest::default();
    let mut errors = Vec::new();
    let mut seen: HashMap<(Kind, Option<String>, String), usize> = HashMap::new();
    for document in &documents {
        let mut checker = Checker {
            source,
            errors: Vec::new(),
            warnings: Vec::new(),
            hide_data_values: false,
        };
        let parsed = parse_document(&mut checker, &document.root);
        errors.append(&mut checker.errors);
        manifest.warnings.append(&mut checker.warnings);
        for (object, mark) in parsed {
            let metadata = object.metadata();
            let identity = (
                object.kind(),
                metadata.namespace.clone(),
                metadata.name.clone(),
            );
            let location = checker.location(mark);
            if let Some(&first_line) = seen.get(&identity) {
                errors.push(ManifestError::DuplicateObject {
                    location,
                    kind: object.kind().name(),
                    name: metadata.name.clone(),
                    first_line,
                });
                continue;
            }
            seen.insert(identity, location.line);
            manifest.objects.push(ParsedObject { object, location });
        }
    }
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// The objects of one document: one, or the items of a `v1` `List` (what
/// `kubectl get -o yaml` prints for several objects). Errors go to the checker.
fn parse_document(checker: &mut Checker<'_>, root: &Node) -> Vec<(Object, Mark)> {
    let is_list =
        root.str_field("apiVersion") == Some("v1") && root.str_field("kind") == Some("List");
    if !is_list {
        return parse_object(checker, root, &FieldPath::root())
            .map(|object| (object, root.mark))
            .into_iter()
            .collect();
    }
    let items_path = FieldPath::fields("items");
    let json = checker.object(root, schema::LIST_ROOT, &FieldPath::root());
    let mut objects = Vec::new();
    if json.is_null() {
        return objects;
    }
    if let Some(Value::Seq(items)) = root.entry("items").map(|entry| &entry.value.value) {
        for (index, item) in items.iter().enumerate() {
            if let Some(object) = parse_object(checker, item, &items_path.index(index)) {
                objects.push((object, item.mark));
            }
        }
    }
    objects
}

/// Checks, decodes and validates one object found at `prefix` in its document.
fn parse_object(checker: &mut Checker<'_>, root: &Node, prefix: &FieldPath) -> Option<Object> {
    if !matches!(root.value, Value::Map(_)) {
        let location = checker.location(root.mark);
        checker.errors.push(ManifestError::NotAnObject {
            location,
            found: root.value.type_name(),
        });
        return None;
    }
    let mut type_field = |field: &'static str| match root.str_field(field) {
        Some(text) => Some(text.to_owned()),
        None => {
            let mark = root.entry(field).map_or(root.mark, |entry| entry.key_mark);
            let location = checker.location(mark);
            checker
                .errors
                .push(ManifestError::MissingTypeField { location, field });
            None
        }
    };
    let (api_version, kind_name) = (type_field("apiVersion"), type_field("kind"));
    let (api_version, kind_name) = (api_version?, kind_name?);
    let Some(kind) = Kind::from_type_meta(&api_version, &kind_name) else {
        let mark = root.entry("kind").map_or(root.mark, |entry| entry.key_mark);
        let location = checker.location(mark);
        checker.errors.push(ManifestError::UnknownKind {
            location,
            api_version,
            kind: kind_name,
        });
        return None;
    };
    let errors_before = checker.errors.len();
    checker.hide_data_values = kind == Kind::Secret;
    let mut json = checker.object(root, schema::root_fields(kind), prefix);
    checker.hide_data_values = false;
    if checker.errors.len() > errors_before {
        return None;
    }
    if kind == Kind::Secret {
        merge_string_data(&mut json);
    }
    let object = match decode(kind, json) {
        Ok(object) => object,
        Err(error) => {
            let location = checker.location(root.mark);
            checker.errors.push(ManifestError::TypeTableMismatch {
                location,
                detail: error.to_string(),
            });
            return None;
        }
    };
    let violations = validate::validate(&object);
    for violation in &violations {
        let (mut mark, found) = violation.path.locate(root);
        if !found && let Some(alternative) = string_data_path(&violation.path) {
            mark = alternative.locate(root).0;
        }
        let location = checker.location(mark);
        checker.errors.push(ManifestError::Invalid {
            location,
            path: prefix.join(&violation.path),
            reason: violation.reason.clone(),
        });
    }
    violations.is_empty().then_some(object)
}

/// `data[key]` of a Secret may have come from `stringData[key]`.
fn string_data_path(path: &FieldPath) -> Option<FieldPath> {
    use crate::path::Segment;
    match path.0.as_slice() {
        [Segment::Field(field), rest @ ..] if field == "data" => {
            let mut segments = vec![Segment::Field("stringData".to_owned())];
            segments.extend_from_slice(rest);
            Some(FieldPath(segments))
        }
        _ => None,
    }
}

/// Moves `stringData` into `data` (base64), as the Kubernetes API server does: a key in
/// both takes the `stringData` value.
fn merge_string_data(json: &mut Json) {
    let Some(object) = json.as_object_mut() else {
        return;
    };
    let Some(Json::Object(string_data)) = object.remove("stringData") else {
        return;
    };
    let data = object
        .entry("data")
        .or_insert_with(|| Json::Object(Default::default()));
    if let Json::Object(data) = data {
        for (key, value) in string_data {
            if let Json::String(text) = value {
                let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                data.insert(key, Json::String(encoded));
            }
        }
    }
}

fn decode(kind: Kind, json: Json) -> Result<Object, serde_json::Error> {
    fn typed<T: DeserializeOwned>(json: Json) -> Result<T, serde_json::Error> {
        serde_json::from_value(json)
    }
    Ok(match kind {
        Kind::Namespace => Object::Namespace(typed::<Namespace>(json)?),
        Kind::Node => Object::Node(typed::<NodeObject>(json)?),
        Kind::Pod => Object::Pod(typed::<Pod>(json)?),
        Kind::Deployment => Object::Deployment(typed::<Deployment>(json)?),
        Kind::DaemonSet => Object::DaemonSet(typed::<DaemonSet>(json)?),
        Kind::Job => Object::Job(typed::<Job>(json)?),
        Kind::Service => Object::Service(typed::<Service>(json)?),
        Kind::ConfigMap => Object::ConfigMap(typed::<ConfigMap>(json)?),
        Kind::Secret => Object::Secret(typed::<Secret>(json)?),
    })
}

#[cfg(test)]
mod tests;
