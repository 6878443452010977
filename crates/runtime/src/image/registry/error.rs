//! The registry client's error type, and the reading of a registry's JSON error body.
//!
//! Every variant that comes from talking to a server names the step (`fetch manifest`,
//! `upload blob`…) and the host (`host:port`) it was talking to, and, for an HTTP
//! failure, the status and what the registry said about it.

use std::io;
use std::path::PathBuf;

use crate::image::digest::Digest;

/// Everything the registry client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `registries.yaml` is unreadable as YAML or says something moor refuses. The
    /// reason names the field (`mirrors.docker.io.endpoint[0]: …`) and the position
    /// (`… at line 3 column 7`) when the YAML parser knows them.
    #[error("{}: {reason}", path.display())]
    Config {
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        reason: String,
    },
    /// A file named by the configuration (the YAML itself, a CA, a certificate, a key).
    #[error("{step} {}: {source}", path.display())]
    File {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The TLS settings for a host cannot be used.
    #[error("tls settings for {host}: {reason}")]
    Tls { host: String, reason: String },
    /// The registry or repository name cannot name a registry API endpoint.
    #[error("invalid registry name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A reference for another registry was handed to this registry's client.
    #[error("{reference} is not in registry {registry}")]
    WrongRegistry { registry: String, reference: String },
    /// No connection, a TLS handshake failure, a timeout, or a broken HTTP exchange.
    #[error("{step} at {host}: {source}")]
    Connect {
        step: &'static str,
        host: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered with a status the step does not accept.
    #[error("{step} at {host}: HTTP {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        step: &'static str,
        host: String,
        status: u16,
        /// What the registry's error body said, bounded and stripped of control characters.
        message: String,
    },
    /// Authentication could not be done (bad challenge, bad token answer, no credentials).
    #[error("{step} at {host}: authentication: {reason}")]
    Auth {
        step: &'static str,
        host: String,
        reason: String,
    },
    /// The server's answer breaks the protocol (missing or malformed header).
    #[error("{step} at {host}: bad response: {reason}")]
    Protocol {
        step: &'static str,
        host: String,
        reason: String,
    },
    /// A response is larger than the step accepts.
    #[error("{step} at {host}: response larger than {limit} bytes")]
    TooLarge {
        step: &'static str,
        host: String,
        limit: u64,
    },
    /// Content whose digest is not the one it was asked for or announced with.
    #[error("{step} at {host}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        step: &'static str,
        host: String,
        expected: Digest,
        actual: Digest,
    },
    /// Reading a response body failed part-way (connection closed, timeout).
    #[error("{step} at {host}: reading the response: {source}")]
    Body {
        step: &'static str,
        host: String,
        #[source]
        source: io::Error,
    },
    /// The caller's data for an upload could not be read, or was not the size promised.
    #[error("{step} at {host}: reading the data to send: {source}")]
    Source {
        step: &'static str,
        host: String,
        #[source]
        source: io::Error,
    },
    /// Plain HTTP to a host that is not allowed it.
    #[error(
        "{step}: refusing plain HTTP to {url}: write the endpoint as http:// in registries.yaml, mark the host `insecure: true`, or pass --plain-http"
    )]
    PlainHttp { step: &'static str, url: String },
    /// More redirects than a registry needs.
    #[error("{step} at {host}: more than {limit} redirects")]
    TooManyRedirects {
        step: &'static str,
        host: String,
        limit: u32,
    },
}

impl RegistryError {
    /// Whether trying the same step again later may succeed: network trouble and the
    /// statuses that mean "busy" or "not now". Authentication, protocol and content
    /// errors stay the same on a retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Connect { source, .. } => is_transient(source),
            RegistryError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
            }
            RegistryError::Body { .. } => true,
            RegistryError::Config { .. }
            | RegistryError::File { .. }
            | RegistryError::Tls { .. }
            | RegistryError::InvalidName { .. }
            | RegistryError::WrongRegistry { .. }
            | RegistryError::Auth { .. }
            | RegistryError::Protocol { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::Source { .. }
            | RegistryError::PlainHttp { .. }
            | RegistryError::TooManyRedirects { .. } => false,
        }
    }

    /// The HTTP status, for an error that carries one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the registry said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Network trouble is transient; a certificate the client refuses (reported by the TLS
/// layer as invalid data) or a request the client cannot form is not.
fn is_transient(e: &ureq::Error) -> bool {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::Io(io) => !matches!(
            io.kind(),
            K::InvalidData | K::InvalidInput | K::PermissionDenied | K::Unsupported
        ),
        ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

/// The most of an error body that is read.
pub(crate) const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// The most of it that is kept in a message.
const MESSAGE_LIMIT: usize = 400;

/// What a registry's error body says, as one bounded line.
///
/// The distribution spec's `{"errors":[{"code":…,"message":…,"detail":…}]}` becomes
/// `CODE: message; CODE: message`; a token server's `{"details":…}` or `{"error":…}`
/// is used as it is; anything else that is text is kept as text. Control characters
/// are dropped, so a hostile body cannot forge lines in a log.
pub(crate) fn describe_error_body(body: &[u8]) -> String {
    let body = &body[..body.len().min(ERROR_BODY_LIMIT as usize)];
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => describe_json(&value),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    clean(&text)
}

fn describe_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        let parts: Vec<String> = errors
            .iter()
            .take(8)
            .map(|e| match (field(e, "code"), field(e, "message")) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c,
                (None, Some(m)) => m,
                (None, None) => "unknown error".to_string(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    for key in ["details", "error_description", "error", "message"] {
        if let Some(s) = field(value, key) {
            return s;
        }
    }
    String::new()
}

/// Drops control characters and bounds the length (at a character boundary).
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if out.len() + c.len_utf8() > MESSAGE_LIMIT {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_errors_are_joined() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"DENIED"}]}"#;
        assert_eq!(
            describe_error_body(body),
            "MANIFEST_UNKNOWN: manifest unknown; DENIED"
        );
    }

    #[test]
    fn token_server_errors_are_read() {
        assert_eq!(
            describe_error_body(br#"{"details":"incorrect username or password"}"#),
            "incorrect username or password"
        );
        assert_eq!(
            describe_error_body(br#"{"error":"invalid_grant"}"#),
            "invalid_grant"
        );
    }

    #[test]
    fn hostile_error_bodies_are_bounded_and_cleaned() {
        // Forged log lines, wrong types, deep nesting, huge bodies, binary garbage.
        let forged = describe_error_body(b"oops\n2026-01-01 INFO all good\r\x1b[31m");
        assert!(
            !forged.contains('\n') && !forged.contains('\x1b'),
            "{forged}"
        );
        assert_eq!(
            describe_error_body(br#"{"errors":[{"code":1,"message":[]}]}"#),
            "unknown error"
        );
        assert_eq!(describe_error_body(br#"{"errors":"x"}"#), "");
        assert_eq!(describe_error_body(br#"{"errors":[]}"#), "");
        let deep = "[".repeat(100_000);
        assert!(describe_error_body(deep.as_bytes()).len() <= MESSAGE_LIMIT + 4);
        let huge = format!(
            r#"{{"errors":[{{"code":"X","message":"{}"}}]}}"#,
            "m".repeat(1 << 20)
        );
        assert!(describe_error_body(huge.as_bytes()).len() <= MESSAGE_LIMIT + 4);
        let many = format!(
            r#"{{"errors":[{}]}}"#,
            vec![r#"{"code":"C","message":"é"}"#; 10_000].join(",")
        );
        assert!(describe_error_body(many.as_bytes()).len() <= MESSAGE_LIMIT + 4);
        assert!(describe_error_body(&[0xff, 0xfe, 0, 1, 2]).len() < 20);
        assert_eq!(describe_error_body(b""), "");
    }

    #[test]
    fn retryable_statuses_are_the_busy_ones() {
        let status = |status| RegistryError::Status {
            step: "fetch manifest",
            host: "h".into(),
            status,
            message: String::new(),
        };
        assert!(status(503).is_retryable() && status(429).is_retryable());
        assert!(!status(401).is_retryable() && !status(404).is_retryable());
        assert!(status(404).is_not_found());
        assert_eq!(status(500).to_string(), "fetch manifest at h: HTTP 500");
    }
}
