//! Label selectors: the `matchLabels`/`matchExpressions` objects of manifests and the
//! selector strings `moor get -l` takes, compiled to one [`Selector`] with `matches`.
//!
//! Owns: the selector grammar of `kubectl -l` — `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`, joined by commas (all must hold) — and its limits. Does not
//! own: the label key and value rules themselves (`validate::names`).
//!
//! ```text
//! selector    := "" | requirement ("," requirement)*
//! requirement := "!" key | key | key ("=" | "==" | "!=") value
//!              | key ("in" | "notin") "(" value ("," value)* ")"
//! ```

use serde::{Deserialize, Serialize};

use crate::resources::Labels;
use crate::validate::names::{self, NameError};

/// Longest selector string accepted; real ones are a few dozen characters.
pub const MAX_SELECTOR_LENGTH: usize = 4096;

/// `selector` of a Deployment or DaemonSet: every label and expression must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LabelSelector {
    pub match_labels: Labels,
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

/// Operator of a `matchExpressions` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SelectorOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Why a selector is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("selector is {length} characters long, more than {MAX_SELECTOR_LENGTH}")]
    TooLong { length: usize },
    #[error("expected {expected} at character {position}, found {found}")]
    Unexpected {
        position: usize,
        expected: &'static str,
        found: String,
    },
    #[error("invalid label key `{key}`: {reason}")]
    InvalidKey { key: String, reason: NameError },
    #[error("invalid label value `{value}` for key `{key}`: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: NameError,
    },
    #[error("operator {operator:?} on key `{key}` needs at least one value")]
    MissingValues {
        key: String,
        operator: SelectorOperator,
    },
    #[error("operator {operator:?} on key `{key}` takes no values")]
    UnexpectedValues {
        key: String,
        operator: SelectorOperator,
    },
}

/// A compiled selector: all requirements must hold. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

/// One condition on one label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// One value for `Equals`/`NotEquals`, one or more for `In`/`NotIn`, none otherwise.
    pub values: Vec<String>,
}

/// How a requirement tests its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement. As in Kubernetes, `!=` and `notin`
    /// hold for objects that lack the label.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals | Operator::In => {
                value.is_some_and(|value| self.values.contains(value))
            }
            Operator::NotEquals | Operator::NotIn => {
                value.is_none_or(|value| !self.values.contains(value))
            }
        }
    }
}

impl Selector {
    /// Parses a `kubectl -l` selector string.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let length = text.chars().count();
        if length > MAX_SELECTOR_LENGTH {
            return Err(SelectorError::TooLong { length });
        }
        SelectorParser {
            chars: text.chars().collect(),
            position: 0,
        }
        .parse()
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements
            .iter()
            .all(|requirement| requirement.matches(labels))
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl LabelSelector {
    /// Checks keys, values and operators and compiles to a [`Selector`].
    pub fn to_selector(&self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in &self.match_labels {
            requirements.push(checked(key, Operator::Equals, vec![value.clone()])?);
        }
        for expression in &self.match_expressions {
            let operator = match expression.operator {
                SelectorOperator::In => Operator::In,
                SelectorOperator::NotIn => Operator::NotIn,
                SelectorOperator::Exists => Operator::Exists,
                SelectorOperator::DoesNotExist => Operator::DoesNotExist,
            };
            let takes_values = matches!(operator, Operator::In | Operator::NotIn);
            if takes_values && expression.values.is_empty() {
                let key = expression.key.clone();
                return Err(SelectorError::MissingValues {
                    key,
                    operator: expression.operator,
                });
            }
            if !takes_values && !expression.values.is_empty() {
                let key = expression.key.clone();
                return Err(SelectorError::UnexpectedValues {
                    key,
                    operator: expression.operator,
                });
            }
            requirements.push(checked(
                &expression.key,
                operator,
                expression.values.clone(),
            )?);
        }
        Ok(Selector { requirements })
    }

    /// Whether `labels` match; an invalid selector matches nothing.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.to_selector()
            .is_ok_and(|selector| selector.matches(labels))
    }

    /// Whether neither labels nor expressions are given.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

fn checked(
    key: &str,
    operator: Operator,
    values: Vec<String>,
) -> Result<Requirement, SelectorError> {
    names::label_key(key).map_err(|reason| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    })?;
    for value in &values {
        names::label_value(value).map_err(|reason| SelectorError::InvalidValue {
            key: key.to_owned(),
            value: value.clone(),
            reason,
        })?;
    }
    Ok(Requirement {
        key: key.to_owned(),
        operator,
        values,
    })
}

struct SelectorParser {
    chars: Vec<char>,
    position: usize,
}

fn is_word_char(character: char) -> bool {
    !character.is_whitespace() && !matches!(character, '!' | '=' | ',' | '(' | ')')
}

impl SelectorParser {
    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_spaces();
            match self.peek() {
                None => return Ok(Selector { requirements }),
                Some(',') => self.position += 1,
                Some(_) => return Err(self.unexpected("`,` or end of selector")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_spaces();
        if self.peek() == Some('!') {
            self.position += 1;
            let key = self.word("a label key")?;
            return checked(&key, Operator::DoesNotExist, Vec::new());
        }
        let key = self.word("a label key")?;
        self.skip_spaces();
        match (self.peek(), self.peek_at(1)) {
            (None | Some(','), _) => checked(&key, Operator::Exists, Vec::new()),
            (Some('='), Some('=')) => {
                self.position += 2;
                let value = self.value()?;
                checked(&key, Operator::Equals, vec![value])
            }
            (Some('='), _) => {
                self.position += 1;
                let value = self.value()?;
                checked(&key, Operator::Equals, vec![value])
            }
            (Some('!'), Some('=')) => {
                self.position += 2;
                let value = self.value()?;
                checked(&key, Operator::NotEquals, vec![value])
            }
            _ => {
                let operator_start = self.position;
                let operator = match self.take_word().as_str() {
                    "in" => Operator::In,
                    "notin" => Operator::NotIn,
                    _ => {
                        self.position = operator_start;
                        return Err(self.unexpected("`=`, `==`, `!=`, `in` or `notin`"));
                    }
                };
                let values = self.value_set()?;
                checked(&key, operator, values)
            }
        }
    }

    /// A value after `=`: may be empty (`a=` selects an empty label value).
    fn value(&mut self) -> Result<String, SelectorError> {
        self.skip_spaces();
        Ok(self.take_word())
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_spaces();
        if self.peek() != Some('(') {
            return Err(self.unexpected("`(`"));
        }
        self.position += 1;
        let mut values = Vec::new();
        loop {
            self.skip_spaces();
            values.push(self.take_word());
            self.skip_spaces();
            match self.peek() {
                Some(',') => self.position += 1,
                Some(')') => {
                    self.position += 1;
                    return Ok(values);
                }
                _ => return Err(self.unexpected("`,` or `)`")),
            }
        }
    }

    fn word(&mut self, expected: &'static str) -> Result<String, SelectorError> {
        self.skip_spaces();
        let word = self.take_word();
        if word.is_empty() {
            return Err(self.unexpected(expected));
        }
        Ok(word)
    }

    fn take_word(&mut self) -> String {
        let start = self.position;
        while self.peek().is_some_and(is_word_char) {
            self.position += 1;
        }
        self.chars[start..self.position].iter().collect()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.position + ahead).copied()
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        let found = match self.peek() {
            Some(character) => format!("`{}`", character.escape_debug()),
            None => "end of selector".to_owned(),
        };
        SelectorError::Unexpected {
            position: self.position + 1,
            expected,
            found,
        }
    }
}

#[cfg(test)]
mod tests;
