//! Builds positioned [`Document`]s from saphyr-parser's event stream, enforcing limits.
//!
//! Owns: the limits (see [`Limits`]) and the errors of reading. The parser itself keeps
//! an explicit stack, so deep input cannot overflow ours; we stop at the first event that
//! crosses a limit, so a hostile stream costs at most the limit's worth of work.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

use super::scalar::resolve_plain;
use super::{Document, Entry, Mark, Node, Value};

/// Bounds on what one input may cost to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of sequences and mappings (a scalar root is depth 1).
    pub max_depth: usize,
    /// Most values in one input, counting every value an alias repeats, and the values
    /// under an anchor once more (the reader keeps a copy of them). Across the whole
    /// input, not per document: thousands of small alias bombs add up.
    pub max_nodes: usize,
    /// Most documents in one input.
    pub max_documents: usize,
}

impl Default for Limits {
    /// Far above any real manifest (a large Helm chart renders to a few hundred KiB, some
    /// tens of thousands of values, and nests about fifteen levels), far below what would
    /// hurt a small box: 500,000 values are some tens of MiB at most.
    fn default() -> Self {
        Limits {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 64,
            max_nodes: 500_000,
            max_documents: 10_000,
        }
    }
}

/// Why an input could not be read as YAML.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YamlError {
    /// The input is larger than [`Limits::max_bytes`].
    #[error("input is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The input is not UTF-8.
    #[error("input is not valid UTF-8")]
    NotUtf8 { mark: Mark },
    /// The parser rejected the text.
    #[error("invalid YAML: {reason}")]
    Syntax { mark: Mark, reason: String },
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {limit} levels")]
    TooDeep { mark: Mark, limit: usize },
    /// More values than [`Limits::max_nodes`] in one input.
    #[error("input has more than {limit} values (aliases counted at each use)")]
    TooManyNodes { mark: Mark, limit: usize },
    /// More documents than [`Limits::max_documents`].
    #[error("more than {limit} documents")]
    TooManyDocuments { mark: Mark, limit: usize },
    /// A mapping repeats a key.
    #[error("duplicate key `{key}`")]
    DuplicateKey { mark: Mark, key: String },
    /// A mapping key is a list, a mapping or an alias.
    #[error("mapping keys must be plain values, found {found}")]
    ComplexKey { mark: Mark, found: &'static str },
    /// An alias names no earlier anchor.
    #[error("alias to an unknown anchor")]
    UnknownAnchor { mark: Mark },
    /// A tag other than the core schema's.
    #[error("unsupported tag `{tag}`")]
    UnsupportedTag { mark: Mark, tag: String },
}

impl YamlError {
    /// Where the problem is, if it has a place.
    pub fn mark(&self) -> Option<Mark> {
        match self {
            YamlError::TooLarge { .. } => None,
            YamlError::NotUtf8 { mark }
            | YamlError::Syntax { mark, .. }
            | YamlError::TooDeep { mark, .. }
            | YamlError::TooManyNodes { mark, .. }
            | YamlError::TooManyDocuments { mark, .. }
            | YamlError::DuplicateKey { mark, .. }
            | YamlError::ComplexKey { mark, .. }
            | YamlError::UnknownAnchor { mark }
            | YamlError::UnsupportedTag { mark, .. } => Some(*mark),
        }
    }
}

/// Reads every non-empty document of a YAML (or JSON) stream.
pub fn read_documents(bytes: &[u8], limits: Limits) -> Result<Vec<Document>, YamlError> {
    if bytes.len() > limits.max_bytes {
        return Err(YamlError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|error| YamlError::NotUtf8 {
        mark: mark_of_byte(bytes, error.valid_up_to()),
    })?;
    // A byte-order mark is legal at the start of YAML and JSON files written on Windows.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder::new(limits);
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| YamlError::Syntax {
            mark: to_mark(*error.marker()),
            reason: error.info().to_owned(),
        })?;
        builder.on_event(event, to_mark(span.start))?;
    }
    Ok(builder.documents)
}

fn to_mark(marker: saphyr_parser::Marker) -> Mark {
    Mark {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

fn mark_of_byte(bytes: &[u8], offset: usize) -> Mark {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |at| at + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Mark { line, column }
}

enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Mark)>,
    },
}

struct Builder {
    limits: Limits,
    documents: Vec<Document>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    document_mark: Mark,
    nodes_in_input: usize,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            documents: Vec::new(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            document_mark: Mark::default(),
            nodes_in_input: 0,
        }
    }

    fn on_event(&mut self, event: Event<'_>, mark: Mark) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(_) => {
                self.anchors.clear();
                self.root = None;
                self.document_mark = mark;
            }
            Event::DocumentEnd => {
                if let Some(root) = self.root.take()
                    && root.value != Value::Null
                {
                    if self.documents.len() >= self.limits.max_documents {
                        let limit = self.limits.max_documents;
                        return Err(YamlError::TooManyDocuments { mark, limit });
                    }
                    self.documents.push(Document {
                        root,
                        mark: self.document_mark,
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = self.stack.last_mut()
                {
                    // Keys keep their text: `80: x` is key "80", as sigs.k8s.io/yaml does.
                    *key = Some((text.into_owned(), mark));
                    return Ok(());
                }
                let value = resolve_scalar(&text, style, tag.as_deref(), mark)?;
                self.count(1, 1, mark)?;
                self.complete(Node { mark, value }, anchor)?;
            }
            Event::Alias(anchor) => {
                if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                    return Err(YamlError::ComplexKey {
                        mark,
                        found: "an alias",
                    });
                }
                let node = self
                    .anchors
                    .get(&anchor)
                    .cloned()
                    .ok_or(YamlError::UnknownAnchor { mark })?;
                let (size, depth) = node.size_and_depth();
                self.count(size, depth, mark)?;
                self.complete(node, 0)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(mark, tag.as_deref(), "seq")?;
                self.stack.push(Frame::Seq {
                    mark,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.open(mark, tag.as_deref(), "map")?;
                self.stack.push(Frame::Map {
                    mark,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    mark,
                    anchor,
                    items,
                }) => {
                    self.complete(
                        Node {
                            mark,
                            value: Value::Seq(items),
                        },
                        anchor,
                    )?;
                }
                Some(Frame::Map {
                    mark,
                    anchor,
                    entries,
                    ..
                }) => {
                    self.complete(
                        Node {
                            mark,
                            value: Value::Map(entries),
                        },
                        anchor,
                    )?;
                }
                // The parser balances start and end events; an unbalanced end is ignored.
                None => {}
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
        Ok(())
    }

    /// Checks limits and position before a sequence or mapping starts.
    fn open(&mut self, mark: Mark, tag: Option<&Tag>, expected_tag: &str) -> Result<(), YamlError> {
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            let found = if expected_tag == "seq" {
                "a list"
            } else {
                "a mapping"
            };
            return Err(YamlError::ComplexKey { mark, found });
        }
        if let Some(tag) = tag
            && !(tag.is_yaml_core_schema() && tag.suffix == expected_tag)
        {
            return Err(YamlError::UnsupportedTag {
                mark,
                tag: tag.to_string(),
            });
        }
        self.count(1, 1, mark)
    }

    /// Adds `size` values at depth `stack + depth`, failing past the limits.
    fn count(&mut self, size: usize, depth: usize, mark: Mark) -> Result<(), YamlError> {
        if self.stack.len() + depth > self.limits.max_depth {
            return Err(YamlError::TooDeep {
                mark,
                limit: self.limits.max_depth,
            });
        }
        self.nodes_in_input = self.nodes_in_input.saturating_add(size);
        if self.nodes_in_input > self.limits.max_nodes {
            return Err(YamlError::TooManyNodes {
                mark,
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    /// Places a finished value into its parent (or as the document root).
    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            // The copy kept for later aliases costs memory too: charge it, so nested
            // anchors over a large subtree cannot multiply it unchecked.
            let (size, _) = node.size_and_depth();
            self.count(size, 0, node.mark)?;
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => {
                // The key was set by the scalar branch; collections and aliases in key
                // position were refused in `open` and the alias branch.
                let Some((key, key_mark)) = key.take() else {
                    return Err(YamlError::ComplexKey {
                        mark: node.mark,
                        found: "a value",
                    });
                };
                if entries.iter().any(|entry| entry.key == key) {
                    return Err(YamlError::DuplicateKey {
                        mark: key_mark,
                        key,
                    });
                }
                entries.push(Entry {
                    key,
                    key_mark,
                    value: node,
                });
            }
        }
        Ok(())
    }
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    mark: Mark,
) -> Result<Value, YamlError> {
    match tag {
        None if style == ScalarStyle::Plain => Ok(resolve_plain(text)),
        None => Ok(Value::Str(text.to_owned())),
        Some(tag) if tag.is_yaml_core_schema() => match tag.suffix.as_str() {
            "str" => Ok(Value::Str(text.to_owned())),
            "int" | "float" | "bool" | "null" => Ok(resolve_plain(text)),
            _ => Err(YamlError::UnsupportedTag {
                mark,
                tag: tag.to_string(),
            }),
        },
        Some(tag) => Err(YamlError::UnsupportedTag {
            mark,
            tag: tag.to_string(),
        }),
    }
}
