//! Errors from reading and checking a bundle's configuration.
//!
//! Every error names the file it came from and, once the JSON is well formed, the field
//! that is wrong, as a JSON path (`process.rlimits[2].type`, `linux.sysctl["net..x"]`),
//! and says what was expected. Conversion code below the entry points returns
//! [`FieldError`], which knows the field but not the file; the entry points add the file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a bundle's `config.json` (or an `exec` process file) was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The bundle directory could not be made absolute.
    #[error("bundle {}: cannot make the path absolute: {source}", path.display())]
    Bundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Opening, inspecting or reading the file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is a directory, a device, a FIFO…
    #[error("{}: expected a regular file", path.display())]
    NotRegularFile { path: PathBuf },
    /// The file is larger than moor reads.
    #[error("{}: {size} bytes is more than the limit of {limit} bytes", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// Not JSON at all: a syntax error, invalid UTF-8, nesting deeper than the parser allows.
    /// The source's message carries the line and column.
    #[error("{}: invalid json: {source}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    /// Well-formed JSON whose shape does not match the specification: a string where a
    /// number belongs, a missing required field, an unknown enumeration value.
    #[error(
        "{}: {}{message}{}",
        path.display(),
        FieldLabel(field),
        Position(*position)
    )]
    Shape {
        path: PathBuf,
        /// The JSON path of the offending value, when it could be found.
        field: Option<String>,
        /// Line and column in the file, when they could be found.
        position: Option<(usize, usize)>,
        message: String,
    },
    /// A field whose value moor refuses.
    #[error("{}{field}: {problem}", FileLabel(file.as_deref()))]
    Invalid {
        /// `None` when the error came from [`super::process_from_oci`], which has no file.
        file: Option<PathBuf>,
        field: String,
        problem: Problem,
    },
}

impl SpecError {
    /// The JSON path of the field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecError::Shape { field, .. } => field.as_deref(),
            SpecError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The problem with a field, for errors about a value moor refuses.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            SpecError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// What is wrong with one field.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// Defined by the runtime specification, not implemented by moor yet.
    #[error("not supported by this version of moor")]
    NotSupported,
    /// A value of a field (a namespace type, a mount option) that moor does not implement.
    #[error("{what} is not supported by this version of moor")]
    ValueNotSupported { what: String },
    #[error("missing, expected {expected}")]
    Missing { expected: &'static str },
    #[error("expected {expected}, found {found}")]
    Invalid { expected: String, found: String },
    #[error("unknown {kind} {name:?}")]
    Unknown { kind: &'static str, name: String },
    #[error("duplicate {what}")]
    Duplicate { what: String },
    #[error("{what} is required")]
    Required { what: &'static str },
    #[error("soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard { soft: u64, hard: u64 },
    #[error("memory+swap limit {swap} is below the memory limit {limit}")]
    SwapBelowLimit { swap: i64, limit: i64 },
    #[error("sysctl {name} is not namespaced")]
    NotNamespaced { name: String },
    #[error("{what} requires a new {namespace} namespace")]
    NeedsNamespace {
        what: String,
        namespace: &'static str,
    },
    #[error("rootfs {} does not exist", path.display())]
    RootfsMissing { path: PathBuf },
    #[error("rootfs {} is not a directory", path.display())]
    RootfsNotDirectory { path: PathBuf },
    #[error("rootfs {}: {source}", path.display())]
    RootfsUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A refused field, before the file it came from is known.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) problem: Problem,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, problem: Problem) -> Self {
        FieldError {
            field: field.into(),
            problem,
        }
    }

    /// `expected …, found …`.
    pub(crate) fn invalid(
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl fmt::Display,
    ) -> Self {
        Self::new(
            field,
            Problem::Invalid {
                expected: expected.into(),
                found: found.to_string(),
            },
        )
    }

    pub(crate) fn in_file(self, file: &Path) -> SpecError {
        SpecError::Invalid {
            file: Some(file.to_path_buf()),
            field: self.field,
            problem: self.problem,
        }
    }

    pub(crate) fn without_file(self) -> SpecError {
        SpecError::Invalid {
            file: None,
            field: self.field,
            problem: self.problem,
        }
    }
}

/// `prefix.name`, or just `name` at the top of a document.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `base[index]`.
pub(crate) fn index(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// `base["key"]`, quoted the way JSON would.
pub(crate) fn key(base: &str, key: &str) -> String {
    let quoted = serde_json::Value::from(key).to_string();
    format!("{base}[{quoted}]")
}

/// A string as it appeared in the file, quoted, for `found …` in messages.
pub(crate) fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

struct FileLabel<'a>(Option<&'a Path>);

impl fmt::Display for FileLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "{}: ", path.display()),
            None => Ok(()),
        }
    }
}

struct FieldLabel<'a>(&'a Option<String>);

impl fmt::Display for FieldLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_deref() {
            Some("") => write!(f, "document: "),
            Some(field) => write!(f, "{field}: "),
            None => Ok(()),
        }
    }
}

struct Position(Option<(usize, usize)>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, " at line {line} column {column}"),
            None => Ok(()),
        }
    }
}
