//! Walks a positioned YAML tree against the field table (`schema`) and produces the JSON
//! value the typed decode reads, plus the errors and warnings, each with its place.
//!
//! Owns: shape checks (types, enum values, quantities, base64) and field classes.
//! Does not own: value rules across fields (`validate`).

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json};

use super::error::{Location, ManifestError, Warning, WarningReason};
use super::schema::{Field, FieldClass, Shape};
use crate::path::{FieldPath, Segment};
use crate::yaml::{Mark, Node, Value};

/// Collects what one document's walk found.
pub(crate) struct Checker<'source> {
    pub source: &'source str,
    pub errors: Vec<ManifestError>,
    pub warnings: Vec<Warning>,
    /// Set while checking a Secret: values under its `data` and `stringData` are never
    /// quoted in messages, only their type.
    pub hide_data_values: bool,
}

impl Checker<'_> {
    pub(crate) fn location(&self, mark: Mark) -> Location {
        Location {
            source: self.source.to_owned(),
            line: mark.line,
            column: mark.column,
        }
    }

    /// Checks a mapping against `fields`; returns the accepted part as JSON.
    pub(crate) fn object(&mut self, node: &Node, fields: &[Field], path: &FieldPath) -> Json {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, path, "a mapping");
            return Json::Null;
        };
        let mut object = Map::new();
        for entry in entries {
            let field_path = path.field(&entry.key);
            let Some(field) = fields.iter().find(|field| field.name == entry.key) else {
                let location = self.location(entry.key_mark);
                self.errors.push(ManifestError::UnknownField {
                    location,
                    path: field_path,
                });
                continue;
            };
            let value = &entry.value;
            let empty = value.value.is_empty();
            let warn = |checker: &mut Self, reason| {
                let location = checker.location(entry.key_mark);
                checker.warnings.push(Warning {
                    location,
                    path: field_path.clone(),
                    reason,
                });
            };
            match field.class {
                FieldClass::Honoured if value.value == Value::Null => {}
                FieldClass::Honoured => {
                    let json = self.value(value, &field.shape, &field_path);
                    object.insert(entry.key.clone(), json);
                }
                FieldClass::ControllerOwned => {
                    if !empty {
                        warn(self, WarningReason::ControllerOwned);
                        let json = self.value(value, &field.shape, &field_path);
                        object.insert(entry.key.clone(), json);
                    }
                }
                FieldClass::Deferred => {
                    if !empty {
                        warn(self, WarningReason::NotYetHonoured);
                        let json = self.value(value, &field.shape, &field_path);
                        object.insert(entry.key.clone(), json);
                    }
                }
                FieldClass::Dropped(reason) => {
                    if !empty {
                        warn(self, WarningReason::Dropped(reason));
                    }
                }
                FieldClass::Rejected(reason) => {
                    if !empty {
                        let location = self.location(entry.key_mark);
                        self.errors.push(ManifestError::RejectedField {
                            location,
                            path: field_path,
                            reason,
                        });
                    }
                }
            }
        }
        Json::Object(object)
    }

    fn value(&mut self, node: &Node, shape: &Shape, path: &FieldPath) -> Json {
        match (shape, &node.value) {
            (Shape::Str, Value::Str(text)) => Json::String(text.clone()),
            (Shape::Int32, Value::Int(number)) if i32::try_from(*number).is_ok() => {
                Json::from(*number)
            }
            (Shape::Int32, Value::Int(_)) => {
                self.wrong_type(node, path, "an integer of at most 32 bits");
                Json::Null
            }
            (Shape::Int64, Value::Int(number)) => Json::from(*number),
            (Shape::Bool, Value::Bool(flag)) => Json::Bool(*flag),
            (Shape::Enum(allowed), Value::Str(text)) if allowed.contains(&text.as_str()) => {
                Json::String(text.clone())
            }
            (Shape::Enum(allowed), _) => {
                let expected = format!("one of {}", quoted_list(allowed));
                self.mismatch(node, path, expected);
                Json::Null
            }
            (Shape::IntOrStr, Value::Str(text)) => Json::String(text.clone()),
            (Shape::IntOrStr, Value::Int(number)) if i32::try_from(*number).is_ok() => {
                Json::from(*number)
            }
            (Shape::IntOrStr, _) => {
                self.wrong_type(node, path, "a port number or name");
                Json::Null
            }
            (Shape::Quantity, _) => self.quantity(node, path),
            (Shape::StrMap | Shape::QuantityMap | Shape::Base64Map, Value::Map(entries)) => {
                let mut object = Map::new();
                for entry in entries {
                    let entry_path = path.key(&entry.key);
                    let json = match shape {
                        Shape::QuantityMap => self.quantity(&entry.value, &entry_path),
                        Shape::Base64Map => self.base64(&entry.value, &entry_path),
                        _ => self.value(&entry.value, &Shape::Str, &entry_path),
                    };
                    object.insert(entry.key.clone(), json);
                }
                Json::Object(object)
            }
            (Shape::StrList, Value::Seq(items)) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.value(item, &Shape::Str, &path.index(index)))
                    .collect(),
            ),
            (Shape::Object(fields), Value::Map(_)) => self.object(node, fields, path),
            (Shape::List(item_shape), Value::Seq(items)) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.value(item, item_shape, &path.index(index)))
                    .collect(),
            ),
            (Shape::Any, _) => self.any(node, path),
            (Shape::Str, _) => self.wrong_type(node, path, "a string"),
            (Shape::Int32 | Shape::Int64, _) => self.wrong_type(node, path, "an integer"),
            (Shape::Bool, _) => self.wrong_type(node, path, "true or false"),
            (Shape::StrMap | Shape::QuantityMap | Shape::Base64Map | Shape::Object(_), _) => {
                self.wrong_type(node, path, "a mapping")
            }
            (Shape::StrList | Shape::List(_), _) => self.wrong_type(node, path, "a list"),
        }
    }

    fn quantity(&mut self, node: &Node, path: &FieldPath) -> Json {
        let text = match &node.value {
            Value::Str(text) => text.clone(),
            Value::Int(number) => number.to_string(),
            Value::Float(number) if number.is_finite() => number.to_string(),
            _ => return self.wrong_type(node, path, "a quantity such as 500m or 128Mi"),
        };
        if is_quantity(&text) {
            Json::String(text)
        } else {
            self.mismatch(node, path, "a quantity such as 500m or 128Mi".to_owned())
        }
    }

    fn base64(&mut self, node: &Node, path: &FieldPath) -> Json {
        let Value::Str(text) = &node.value else {
            return self.wrong_type(node, path, "base64 text");
        };
        // Kubernetes accepts standard base64 with padding; line breaks from tools that
        // wrap at 76 columns are not part of it, so they are refused as well.
        match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
            Ok(_) => Json::String(text.clone()),
            Err(_) => {
                // Secret data: the value itself never goes into a message.
                let location = self.location(node.mark);
                self.errors.push(ManifestError::WrongType {
                    location,
                    path: path.clone(),
                    expected: "base64 text".to_owned(),
                    found: "other text (not shown: it may be a secret)".to_owned(),
                });
                Json::Null
            }
        }
    }

    /// Any value, converted as written (floats must be finite to fit JSON).
    fn any(&mut self, node: &Node, path: &FieldPath) -> Json {
        match &node.value {
            Value::Null => Json::Null,
            Value::Bool(flag) => Json::Bool(*flag),
            Value::Int(number) => Json::from(*number),
            Value::Float(number) => match Number::from_f64(*number) {
                Some(number) => Json::Number(number),
                None => self.wrong_type(node, path, "a finite number"),
            },
            Value::Str(text) => Json::String(text.clone()),
            Value::Seq(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.any(item, &path.index(index)))
                    .collect(),
            ),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|entry| {
                        (
                            entry.key.clone(),
                            self.any(&entry.value, &path.key(&entry.key)),
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn wrong_type(&mut self, node: &Node, path: &FieldPath, expected: &str) -> Json {
        self.mismatch(node, path, expected.to_owned())
    }

    fn mismatch(&mut self, node: &Node, path: &FieldPath, expected: String) -> Json {
        let hidden = self.hide_data_values
            && path.0.iter().any(|segment| {
                matches!(segment, Segment::Field(name) if name == "data" || name == "stringData")
            });
        let found = match &node.value {
            other if hidden => other.type_name().to_owned(),
            Value::Str(text) => format!("\"{}\"", shorten(text)),
            Value::Int(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            other => other.type_name().to_owned(),
        };
        let location = self.location(node.mark);
        self.errors.push(ManifestError::WrongType {
            location,
            path: path.clone(),
            expected,
            found,
        });
        Json::Null
    }
}

fn quoted_list(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|value| format!("\"{value}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps messages readable when the offending value is huge.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        text.escape_debug().to_string()
    } else {
        let head: String = text.chars().take(SHOWN).collect();
        format!(
            "{}... ({} characters)",
            head.escape_debug(),
            text.chars().count()
        )
    }
}

/// A Kubernetes quantity: a decimal number with an optional SI or binary suffix, or an
/// exponent (`500m`, `1.5Gi`, `2`, `1e3`).
pub(crate) fn is_quantity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_end = body
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let digits = number.replace('.', "");
    let number_ok = !digits.is_empty() && number.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exponent| exponent.strip_prefix(['+', '-']).unwrap_or(exponent))
        .is_some_and(|exponent| {
            !exponent.is_empty() && exponent.bytes().all(|byte| byte.is_ascii_digit())
        });
    number_ok && suffix_ok
}
