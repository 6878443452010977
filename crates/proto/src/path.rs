//! [`FieldPath`]: where a field sits in an object, such as
//! `spec.template.spec.containers[0].ports[0].containerPort`.
//!
//! Owns: building and printing paths, and finding the node a path names in a positioned
//! YAML tree. Does not own: what the fields mean.

use std::fmt;

use crate::yaml::{Node, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A field of an object: printed `.name`.
    Field(String),
    /// An element of a list: printed `[3]`.
    Index(usize),
    /// A key of a free-form map (labels, data): printed `[app.kubernetes.io/name]`.
    Key(String),
}

/// A path from an object's root to one of its fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The empty path (the object itself).
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// Builds a path from dotted field names (no indices or keys).
    pub fn fields(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .map(|name| Segment::Field(name.to_owned()))
                .collect(),
        )
    }

    /// This path with a field appended.
    pub fn field(&self, name: &str) -> FieldPath {
        self.with(Segment::Field(name.to_owned()))
    }

    /// This path with a list index appended.
    pub fn index(&self, index: usize) -> FieldPath {
        self.with(Segment::Index(index))
    }

    /// This path with a map key appended.
    pub fn key(&self, key: &str) -> FieldPath {
        self.with(Segment::Key(key.to_owned()))
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &FieldPath) -> FieldPath {
        FieldPath(self.0.iter().chain(&rest.0).cloned().collect())
    }

    fn with(&self, segment: Segment) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(segment);
        FieldPath(segments)
    }

    /// The deepest node along this path that exists in `root`, and whether it is the
    /// whole path. A missing field is reported where its parent is. For a field, the
    /// position is its key's (so errors point at `replicas:`, not at its value).
    pub fn locate(&self, root: &Node) -> (crate::yaml::Mark, bool) {
        let mut node = root;
        let mut mark = root.mark;
        for segment in &self.0 {
            let next = match (segment, &node.value) {
                (Segment::Field(name) | Segment::Key(name), Value::Map(entries)) => entries
                    .iter()
                    .find(|entry| &entry.key == name)
                    .map(|entry| (entry.key_mark, &entry.value)),
                (Segment::Index(index), Value::Seq(items)) => {
                    items.get(*index).map(|item| (item.mark, item))
                }
                _ => None,
            };
            match next {
                Some((next_mark, next_node)) => {
                    mark = next_mark;
                    node = next_node;
                }
                None => return (mark, false),
            }
        }
        (mark, true)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return formatter.write_str("(object)");
        }
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if position == 0 => formatter.write_str(name)?,
                Segment::Field(name) => write!(formatter, ".{name}")?,
                Segment::Index(index) => write!(formatter, "[{index}]")?,
                Segment::Key(key) => write!(formatter, "[{key}]")?,
            }
        }
        Ok(())
    }
}
