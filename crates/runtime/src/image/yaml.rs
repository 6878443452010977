//! Reading YAML written by people (build specs, `registries.yaml`) without letting a
//! hostile file stall the process.
//!
//! The YAML parser's cost grows with the square of flow nesting (`[[[[…`): 8,000 levels
//! take 0.1 s, a 1 MiB file of brackets would take most of an hour. Its own recursion
//! limit only stops it at the end. So the text is scanned first (linear, quotes and
//! comments respected) and refused when flow collections nest deeper than any real
//! configuration does.

use serde::de::DeserializeOwned;

/// Deeper flow nesting than this is refused before parsing.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Why a YAML text was refused or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error("line {line}: collections nested more than {MAX_FLOW_DEPTH} deep")]
    TooDeep { line: usize },
    #[error("{0}")]
    Syntax(String),
}

/// The line where flow nesting first exceeds `max`, if it does.
pub fn too_deep(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut prev_blank = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                line += 1;
                prev_blank = true;
                continue;
            }
            '#' if prev_blank => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
                prev_blank = true;
                continue;
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '\'' if prev_blank || depth > 0 => {
                for c in chars.by_ref() {
                    match c {
                        '\'' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > max {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev_blank = c.is_whitespace() || matches!(c, '[' | '{' | ',' | ':');
    }
    None
}

/// Parses `text` as `T` after the depth check. The syntax error keeps the parser's
/// message, which has the line and column.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    if let Some(line) = too_deep(text, MAX_FLOW_DEPTH) {
        return Err(YamlError::TooDeep { line });
    }
    serde_yaml_ng::from_str(text).map_err(|e| YamlError::Syntax(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_fast_and_names_the_line() {
        let text = format!("a: 1\nb: {}\n", "[".repeat(1_000_000));
        let start = std::time::Instant::now();
        assert_eq!(
            from_str::<serde_yaml_ng::Value>(&text),
            Err(YamlError::TooDeep { line: 2 })
        );
        // Not a timing assertion on the parser: the scan alone must not take long.
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let text = format!(
            "a: \"{}\"\nb: '{}'\n# {}\nc: [[1], {{d: [2]}}]\n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        assert_eq!(too_deep(&text, 8), None);
        let v: serde_yaml_ng::Value = from_str(&text).expect("parses");
        assert!(v.get("c").is_some());
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        let err = from_str::<serde_yaml_ng::Value>("a: [1\nb: 2").expect_err("bad");
        assert!(err.to_string().contains("line"), "{err}");
    }
}
