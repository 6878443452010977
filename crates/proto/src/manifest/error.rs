//! What parsing a manifest reports: [`ManifestError`] (the object is refused) and
//! [`Warning`] (the object is accepted, but something in it is not honoured).
//!
//! Every diagnostic prints as `source:line:column: path: reason`, like a compiler's.

use std::fmt;

use crate::path::FieldPath;
use crate::validate::ValidationError;
use crate::yaml::YamlError;

/// A place in an input: its name (a file name, `-` for stdin) and 1-based line and
/// column; line 0 means the whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The name the caller gave the input.
    pub source: String,
    /// Line from 1, or 0 for the whole input.
    pub line: usize,
    /// Column from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            formatter.write_str(&self.source)
        } else {
            write!(formatter, "{}:{}:{}", self.source, self.line, self.column)
        }
    }
}

/// Why an object (or the whole input) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML or JSON, or breaks a reading limit.
    #[error("{location}: {reason}")]
    Yaml {
        location: Location,
        reason: YamlError,
    },
    /// A document is not a mapping.
    #[error("{location}: expected an object with apiVersion and kind, found {found}")]
    NotAnObject {
        location: Location,
        found: &'static str,
    },
    /// `apiVersion` or `kind` is missing or not a string.
    #[error("{location}: {field} must be given, as a string")]
    MissingTypeField {
        location: Location,
        field: &'static str,
    },
    /// A kind moor does not know.
    #[error(
        "{location}: unsupported kind {kind} (apiVersion {api_version}); moor knows v1 Namespace, Node, Pod, Service, ConfigMap, Secret, apps/v1 Deployment, DaemonSet and batch/v1 Job"
    )]
    UnknownKind {
        location: Location,
        api_version: String,
        kind: String,
    },
    /// A field moor does not know.
    #[error("{location}: {path}: unknown field")]
    UnknownField { location: Location, path: FieldPath },
    /// A field moor refuses.
    #[error("{location}: {path}: not supported: {reason}")]
    RejectedField {
        location: Location,
        path: FieldPath,
        reason: &'static str,
    },
    /// A value of the wrong type.
    #[error("{location}: {path}: expected {expected}, found {found}")]
    WrongType {
        location: Location,
        path: FieldPath,
        expected: String,
        found: String,
    },
    /// A value of the right type that breaks a rule.
    #[error("{location}: {path}: {reason}")]
    Invalid {
        location: Location,
        path: FieldPath,
        reason: ValidationError,
    },
    /// The checked tree did not fit the stored type: the table in `schema` and the types
    /// in `resources` disagree. A bug, reported rather than hidden.
    #[error("{location}: internal mismatch between the field table and the stored type: {detail}")]
    TypeTableMismatch { location: Location, detail: String },
    /// The same object appears twice in one input.
    #[error("{location}: {kind} {name} appears more than once (first at line {first_line})")]
    DuplicateObject {
        location: Location,
        kind: &'static str,
        name: String,
        first_line: usize,
    },
}

impl ManifestError {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            ManifestError::Yaml { location, .. }
            | ManifestError::NotAnObject { location, .. }
            | ManifestError::MissingTypeField { location, .. }
            | ManifestError::UnknownKind { location, .. }
            | ManifestError::UnknownField { location, .. }
            | ManifestError::RejectedField { location, .. }
            | ManifestError::WrongType { location, .. }
            | ManifestError::Invalid { location, .. }
            | ManifestError::TypeTableMismatch { location, .. }
            | ManifestError::DuplicateObject { location, .. } => location,
        }
    }
}

/// Every error found in one input, in source order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", display_lines(.0))]
pub struct ManifestErrors(pub Vec<ManifestError>);

fn display_lines(errors: &[ManifestError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why an accepted field produced a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WarningReason {
    /// A deferred field: stored as written, not acted on yet.
    #[error("stored but not yet honoured by moor")]
    NotYetHonoured,
    /// A controller-owned field set in a manifest.
    #[error("set by the controller; the value given here is replaced when applied")]
    ControllerOwned,
    /// A dropped field that was not empty.
    #[error("ignored: {0}")]
    Dropped(&'static str),
}

/// Something accepted that the user should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where the field is.
    pub location: Location,
    /// Which field.
    pub path: FieldPath,
    /// What happens to it.
    pub reason: WarningReason,
}

impl fmt::Display for Warning {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: {}: {}",
            self.location, self.path, self.reason
        )
    }
}
