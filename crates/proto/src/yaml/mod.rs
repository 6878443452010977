//! A positioned YAML tree: every scalar, sequence, mapping and key keeps the line and
//! column it came from, so the manifest layer can point at any field.
//!
//! Owns: turning text into [`Document`]s of [`Node`]s under hard limits (input size,
//! nesting depth, nodes per document including alias expansion), YAML 1.2 core-schema
//! scalar resolution, and rejection of duplicate keys, non-string keys and custom tags.
//! JSON is read by the same path (it is YAML flow syntax).
//! Does not own: what the fields mean (see `manifest`), or any IO.

mod reader;
mod scalar;

pub use reader::{Limits, YamlError, read_documents};

/// A position in the source, both 1-based (column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

/// One YAML value with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub mark: Mark,
    /// The value.
    pub value: Value,
}

/// A mapping entry: keys are always strings in manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key starts (diagnostics about a field point here).
    pub key_mark: Mark,
    /// The value under the key.
    pub value: Node,
}

/// A resolved YAML value (core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float (including `.inf` and `.nan`).
    Float(f64),
    /// A string (quoted, block or plain text that is no other type).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order, keys unique.
    Map(Vec<Entry>),
}

impl Value {
    /// A short name of the type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Whether the value carries no information: null, `{}`, `[]`, `""`, or a mapping of
    /// such values (kubectl writes a Service's `status: {loadBalancer: {}}`).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Str(text) => text.is_empty(),
            Value::Seq(items) => items.is_empty(),
            Value::Map(entries) => entries.iter().all(|entry| entry.value.value.is_empty()),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => false,
        }
    }
}

impl Node {
    /// The entry under `key`, if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }

    /// The string under `key`, if present and a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        match self.entry(key).map(|entry| &entry.value.value) {
            Some(Value::Str(text)) => Some(text),
            _ => None,
        }
    }

    /// Number of nodes in this subtree and its depth (1 for a scalar).
    pub(crate) fn size_and_depth(&self) -> (usize, usize) {
        match &self.value {
            Value::Seq(items) => items.iter().fold((1, 1), |(size, depth), item| {
                let (item_size, item_depth) = item.size_and_depth();
                (size + item_size, depth.max(item_depth + 1))
            }),
            Value::Map(entries) => entries.iter().fold((1, 1), |(size, depth), entry| {
                let (item_size, item_depth) = entry.value.size_and_depth();
                (size + item_size, depth.max(item_depth + 1))
            }),
            _ => (1, 1),
        }
    }
}

/// One YAML document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's root value.
    pub root: Node,
    /// Position of the document's start (diagnostics about a whole object point here).
    pub mark: Mark,
}
