//! Syntax rules for names, label keys and values, port names and data keys, as
//! Kubernetes applies them (`k8s.io/apimachinery/pkg/util/validation`).
//!
//! Owns: the character and length rules. Does not own: which rule applies to which kind
//! (see `validate`).

/// Why a name breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, found {length}")]
    TooLong { length: usize, max: usize },
    #[error("{rule}")]
    Syntax { rule: &'static str },
}

const DNS_LABEL_RULE: &str =
    "must consist of lowercase letters, digits and '-', and start and end with a letter or digit";
const DNS_1035_RULE: &str = "must consist of lowercase letters, digits and '-', start with a letter and end with a letter or digit";
const DNS_SUBDOMAIN_RULE: &str =
    "must be lowercase DNS labels (letters, digits, '-') joined by '.'";
const QUALIFIED_NAME_RULE: &str =
    "must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit";
const PORT_NAME_RULE: &str = "must consist of lowercase letters, digits and '-', contain a letter, and have no '-' at either end or twice in a row";
const CONFIG_KEY_RULE: &str =
    "must consist of letters, digits, '-', '_' or '.', and not be '.' or '..'";
const ENV_NAME_RULE: &str = "must consist of printable characters other than '='";

fn length_at_most(text: &str, max: usize) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.len() > max {
        return Err(NameError::TooLong {
            length: text.len(),
            max,
        });
    }
    Ok(())
}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

fn dns_label_syntax(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&byte| is_lower_alphanumeric(byte) || byte == b'-')
        && bytes
            .first()
            .is_some_and(|&byte| is_lower_alphanumeric(byte))
        && bytes
            .last()
            .is_some_and(|&byte| is_lower_alphanumeric(byte))
}

/// RFC 1123 label: namespaces and most single-label names (at most 63).
pub fn dns_label(text: &str) -> Result<(), NameError> {
    length_at_most(text, 63)?;
    if dns_label_syntax(text) {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: DNS_LABEL_RULE,
        })
    }
}

/// RFC 1035 label: Service names, which become DNS names (at most 63, first a letter).
pub fn dns_1035_label(text: &str) -> Result<(), NameError> {
    length_at_most(text, 63)?;
    if dns_label_syntax(text) && text.as_bytes().first().is_some_and(u8::is_ascii_lowercase) {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: DNS_1035_RULE,
        })
    }
}

/// RFC 1123 subdomain: names of most kinds and label-key prefixes (at most 253).
pub fn dns_subdomain(text: &str) -> Result<(), NameError> {
    length_at_most(text, 253)?;
    if text.split('.').all(dns_label_syntax) {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: DNS_SUBDOMAIN_RULE,
        })
    }
}

fn qualified_name_part(text: &str) -> Result<(), NameError> {
    length_at_most(text, 63)?;
    let bytes = text.as_bytes();
    let valid = bytes
        .iter()
        .all(|&byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if valid {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: QUALIFIED_NAME_RULE,
        })
    }
}

/// Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain, name at most 63.
pub fn label_key(text: &str) -> Result<(), NameError> {
    match text.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix)?;
            qualified_name_part(name)
        }
        None => qualified_name_part(text),
    }
}

/// Label values: empty, or at most 63 of letters, digits, `-`, `_`, `.` with alphanumeric
/// ends.
pub fn label_value(text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        Ok(())
    } else {
        qualified_name_part(text)
    }
}

/// Named ports (IANA service names): at most 15.
pub fn port_name(text: &str) -> Result<(), NameError> {
    length_at_most(text, 15)?;
    let bytes = text.as_bytes();
    let valid = bytes
        .iter()
        .all(|&byte| is_lower_alphanumeric(byte) || byte == b'-')
        && bytes.iter().any(u8::is_ascii_lowercase)
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--");
    if valid {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: PORT_NAME_RULE,
        })
    }
}

/// Keys of ConfigMap and Secret data (they become file names): at most 253.
pub fn config_key(text: &str) -> Result<(), NameError> {
    length_at_most(text, 253)?;
    let valid = text
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        && text != "."
        && text != "..";
    if valid {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: CONFIG_KEY_RULE,
        })
    }
}

/// Environment variable names, as relaxed in Kubernetes 1.34: printable, no `=`.
pub fn env_var_name(text: &str) -> Result<(), NameError> {
    length_at_most(text, 4096)?;
    if text
        .chars()
        .all(|character| (' '..='~').contains(&character) && character != '=')
    {
        Ok(())
    } else {
        Err(NameError::Syntax {
            rule: ENV_NAME_RULE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_follow_rfc_1123_and_1035() {
        assert!(dns_label("web-1").is_ok());
        assert!(dns_label("1web").is_ok());
        assert_eq!(dns_label(""), Err(NameError::Empty));
        assert!(dns_label("Web").is_err());
        assert!(dns_label("web-").is_err());
        assert!(dns_label("a.b").is_err());
        assert_eq!(
            dns_label(&"a".repeat(64)),
            Err(NameError::TooLong {
                length: 64,
                max: 63
            })
        );
        assert!(dns_1035_label("1web").is_err());
        assert!(dns_1035_label("web1").is_ok());
        assert!(dns_subdomain("box-1.north.example").is_ok());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain(".a").is_err());
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        assert_eq!(
            dns_subdomain(&long),
            Err(NameError::TooLong {
                length: 255,
                max: 253
            })
        );
    }

    #[test]
    fn label_keys_have_an_optional_prefix() {
        assert!(label_key("app").is_ok());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("Under_score.Dot-dash").is_ok());
        assert!(label_key("/name").is_err());
        assert!(label_key("prefix/").is_err());
        assert!(label_key("a/b/c").is_err());
        assert!(label_key("UPPER.example/name").is_err());
        assert!(label_key(&"k".repeat(64)).is_err());
        assert!(label_key("").is_err());
    }

    #[test]
    fn label_values_may_be_empty() {
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_3-x").is_ok());
        assert!(label_value("-x").is_err());
        assert!(label_value("x y").is_err());
        assert!(label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn port_names_follow_iana() {
        assert!(port_name("http").is_ok());
        assert!(port_name("http-web-svc").is_ok());
        assert!(port_name("8080").is_err(), "needs a letter");
        assert!(port_name("a--b").is_err());
        assert!(port_name("-a").is_err());
        assert!(port_name("name-of-service-port").is_err(), "more than 15");
    }

    #[test]
    fn data_keys_and_environment_names() {
        assert!(config_key(".secret-file").is_ok());
        assert!(config_key("game.properties").is_ok());
        assert!(config_key("..").is_err());
        assert!(config_key("a/b").is_err());
        assert!(env_var_name("MY_VAR").is_ok());
        assert!(env_var_name("my.var-1").is_ok());
        assert!(env_var_name("A=B").is_err());
        assert!(env_var_name("tab\there").is_err());
    }
}
