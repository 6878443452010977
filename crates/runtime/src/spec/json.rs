//! Bytes to JSON: the untyped tree, then oci-spec's types, with errors that point into the file.
//!
//! ```text
//! bytes ──serde_json──▶ Value ──(refusals, name checks)──▶ Value ──oci-spec──▶ Spec/Process
//!   syntax errors:        line and column from the parser
//!   shape errors:         message from deserializing the Value; line, column and the JSON
//!                         path found by parsing the bytes again and walking to that spot
//! ```
//!
//! The typed pass reads the already-parsed tree rather than the bytes so that fields the
//! refusal pass stripped (an empty `seccomp: {}`, say) are not held to oci-spec's shape.
//! serde_json's own recursion limit (128 levels) bounds nesting, so hostile input cannot
//! exhaust the stack here.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::SpecError;

/// Parses a document into the untyped tree.
pub(crate) fn parse_value(bytes: &[u8], origin: &Path) -> Result<Value, SpecError> {
    serde_json::from_slice(bytes).map_err(|source| SpecError::Syntax {
        path: origin.to_path_buf(),
        line: source.line(),
        column: source.column(),
        source,
    })
}

/// Deserializes `value` (parsed from `bytes`) into `T`, locating any error in `bytes`.
pub(crate) fn typed<T: DeserializeOwned>(
    value: &Value,
    bytes: &[u8],
    origin: &Path,
) -> Result<T, SpecError> {
    let err = match T::deserialize(value) {
        Ok(typed) => return Ok(typed),
        Err(err) => err,
    };
    let message = err.to_string();
    // Deserializing the bytes directly hits the same error, and knows where it is. If it
    // fails differently (on something the refusal pass stripped), only the message is kept.
    let located = match serde_json::from_slice::<T>(bytes) {
        Err(again) if again.line() > 0 && again.to_string().starts_with(&message) => {
            Some((again.line(), again.column()))
        }
        _ => None,
    };
    Err(SpecError::Shape {
        path: origin.to_path_buf(),
        field: located.and_then(|(line, column)| path_at(bytes, line, column)),
        position: located,
        message,
    })
}

/// The JSON path of the value that ends at `line`/`column` (both from 1, as serde_json
/// counts them: the column of the last byte it read). For a missing field serde_json
/// stops on the object's closing brace, which yields the object's own path.
pub(crate) fn path_at(bytes: &[u8], line: usize, column: usize) -> Option<String> {
    let end = offset_of(bytes, line, column)?;
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0;
    while pos < end {
        let Some(&byte) = bytes.get(pos) else { break };
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
                pos += 1;
            }
            b'{' => {
                mark_element(&mut stack);
                stack.push(Frame::Object {
                    key: None,
                    expect_key: true,
                });
                pos += 1;
            }
            b'[' => {
                mark_element(&mut stack);
                stack.push(Frame::Array {
                    index: 0,
                    started: false,
                });
                pos += 1;
            }
            b'}' | b']' => {
                stack.pop();
                pos += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Object { key, expect_key }) => {
                        *key = None;
                        *expect_key = true;
                    }
                    Some(Frame::Array { index, started }) => {
                        *index += 1;
                        *started = false;
                    }
                    None => {}
                }
                pos += 1;
            }
            b'"' => {
                let close = string_end(bytes, pos)?;
                match stack.last_mut() {
                    Some(Frame::Object { key, expect_key }) if *expect_key => {
                        let raw = bytes.get(pos..=close)?;
                        *key = Some(serde_json::from_slice::<String>(raw).ok()?);
                    }
                    _ => mark_element(&mut stack),
                }
                pos = close + 1;
            }
            _ => {
                // A number, `true`, `false` or `null`: runs to the next delimiter.
                mark_element(&mut stack);
                while let Some(&b) = bytes.get(pos) {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    pos += 1;
                }
            }
        }
    }
    Some(render(&stack))
}

enum Frame {
    Object {
        key: Option<String>,
        expect_key: bool,
    },
    Array {
        index: usize,
        started: bool,
    },
}

fn mark_element(stack: &mut [Frame]) {
    if let Some(Frame::Array { started, .. }) = stack.last_mut() {
        *started = true;
    }
}

fn render(stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if is_plain_name(key) {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                } else {
                    path = super::error::key(&path, key);
                }
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index, started } => {
                if *started {
                    path = super::error::index(&path, *index);
                }
            }
        }
    }
    path
}

fn is_plain_name(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Byte offset just past the byte at 1-based `line`/`column`.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> Option<usize> {
    let mut start = 0;
    for _ in 1..line {
        let newline = bytes.get(start..)?.iter().position(|&b| b == b'\n')?;
        start += newline + 1;
    }
    Some((start + column).min(bytes.len()))
}

/// Index of the quote closing the string that opens at `open`.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut pos = open + 1;
    loop {
        match bytes.get(pos)? {
            b'\\' => pos += 2,
            b'"' => return Some(pos),
            _ => pos += 1,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::Spec;

    fn shape_error(text: &str) -> SpecError {
        let value = parse_value(text.as_bytes(), Path::new("config.json")).unwrap();
        typed::<Spec>(&value, text.as_bytes(), Path::new("config.json")).unwrap_err()
    }

    #[test]
    fn shape_errors_name_the_field_and_position() {
        let cases = [
            (
                r#"{"process": {"cwd": "/", "user": {"uid": "x", "gid": 0}}}"#,
                "process.user.uid",
            ),
            (
                r#"{"process": {"user": {"uid": 0, "gid": 0}, "env": ["a"]}}"#,
                "process",
            ),
            (
                r#"{"linux": {"namespaces": [{"type": "pid"}, {"type": "foo"}]}}"#,
                "linux.namespaces[1].type",
            ),
            (
                "{\"ociVersion\": \"1.0.0\",\n \"mounts\": [ {\"destination\": 5} ]}",
                "mounts[0].destination",
            ),
            (
                r#"{"linux": {"sysctl": {"net.ipv4.x": 1}}}"#,
                r#"linux.sysctl["net.ipv4.x"]"#,
            ),
        ];
        for (text, field) in cases {
            let err = shape_error(text);
            assert_eq!(err.field(), Some(field), "{text}: {err}");
            let SpecError::Shape { position, .. } = &err else {
                panic!("{err}");
            };
            assert!(position.is_some(), "{err}");
        }
    }

    #[test]
    fn path_at_survives_any_position() {
        let text = br#"{"a": [1, {"b\"": "x"}], "c": null}"#;
        for line in 0..3 {
            for column in 0..text.len() + 3 {
                let _ = path_at(text, line, column);
            }
        }
        assert_eq!(path_at(text, 1, 21).as_deref(), Some(r#"a[1]["b\""]"#));
        assert_eq!(path_at(text, 1, 22).as_deref(), Some("a[1]"));
    }
}
