//! Bearer tokens: reading a token server's answer and remembering tokens until they
//! expire.
//!
//! A token server answers `{"token": …, "access_token": …, "expires_in": …}` (Docker's
//! token spec; OAuth2 servers send only `access_token`). The cache is keyed by
//! (registry host, scope) and takes `now` as an argument, so expiry is tested without
//! a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The most of a token answer that is read.
pub(crate) const TOKEN_BODY_LIMIT: u64 = 1024 * 1024;
/// The longest token sent in a header.
const MAX_TOKEN: usize = 64 * 1024;
/// The lifetime assumed when the server names none (the token spec's default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime believed.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A token and how long it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub value: String,
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// Reads a token server's JSON answer.
pub(crate) fn parse_answer(body: &[u8]) -> Result<Token, String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("token answer is not the expected JSON: {e}"))?;
    let value = answer
        .token
        .filter(|t| !t.is_empty())
        .or(answer.access_token.filter(|t| !t.is_empty()))
        .ok_or("token answer has neither token nor access_token")?;
    if value.len() > MAX_TOKEN {
        return Err(format!("token longer than {MAX_TOKEN} bytes"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("token holds characters a header cannot carry".into());
    }
    // Any number works; a wrong type or a negative number means "not said".
    let seconds = answer
        .expires_in
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0);
    let lifetime = match seconds {
        Some(s) if s >= MAX_LIFETIME.as_secs_f64() => MAX_LIFETIME,
        Some(s) => Duration::from_secs_f64(s),
        None => DEFAULT_LIFETIME,
    };
    Ok(Token { value, lifetime })
}

/// Tokens by (host, scope), each with the instant after which it is not sent.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: HashMap<(String, String), (String, Instant)>,
}

impl TokenCache {
    /// A token still usable at `now`.
    pub(crate) fn get(&self, host: &str, scope: &str, now: Instant) -> Option<&str> {
        self.entries
            .get(&(host.to_string(), scope.to_string()))
            .filter(|(_, until)| now < *until)
            .map(|(t, _)| t.as_str())
    }

    /// Remembers `token`, to be dropped a little before the server says it expires
    /// (a tenth of its lifetime, at most 30 s), so a request never carries a token
    /// that expires on the way.
    pub(crate) fn insert(&mut self, host: &str, scope: &str, token: &Token, now: Instant) {
        let margin = (token.lifetime / 10).min(Duration::from_secs(30));
        let until = now + token.lifetime - margin;
        self.entries.retain(|_, (_, u)| now < *u);
        self.entries.insert(
            (host.to_string(), scope.to_string()),
            (token.value.clone(), until),
        );
    }

    /// Forgets a token the registry refused.
    pub(crate) fn remove(&mut self, host: &str, scope: &str) {
        self.entries.remove(&(host.to_string(), scope.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_access_token_are_accepted() {
        let t =
            parse_answer(br#"{"token":"abc","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}"#)
                .expect("token");
        assert_eq!(
            t,
            Token {
                value: "abc".into(),
                lifetime: Duration::from_secs(300)
            }
        );
        let t = parse_answer(br#"{"access_token":"xyz"}"#).expect("access_token");
        assert_eq!(
            t,
            Token {
                value: "xyz".into(),
                lifetime: DEFAULT_LIFETIME
            }
        );
        let t = parse_answer(br#"{"token":"","access_token":"b"}"#).expect("empty token");
        assert_eq!(t.value, "b");
    }

    #[test]
    fn hostile_token_answers_are_refused_or_tamed() {
        let huge = format!(r#"{{"token":"{}"}}"#, "a".repeat(MAX_TOKEN + 1));
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            br#"{"token":5}"#,
            br#"{"token":"a\r\nX-Injected: 1"}"#,
            br#"{"token":"a b"}"#,
            br#"{"token":"\u00e9"}"#,
            br#"{"token":null,"access_token":null}"#,
            b"\xff\xfe garbage",
            huge.as_bytes(),
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{:.60?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        for (expires, lifetime) in [
            ("-5", DEFAULT_LIFETIME),
            ("\"300\"", DEFAULT_LIFETIME),
            ("1e300", MAX_LIFETIME),
            ("0", DEFAULT_LIFETIME),
            ("null", DEFAULT_LIFETIME),
            ("0.5", Duration::from_millis(500)),
        ] {
            let body = format!(r#"{{"token":"t","expires_in":{expires}}}"#);
            assert_eq!(
                parse_answer(body.as_bytes()).map(|t| t.lifetime),
                Ok(lifetime),
                "{expires}"
            );
        }
    }

    #[test]
    fn cached_tokens_expire_before_the_server_says() {
        let now = Instant::now();
        let mut cache = TokenCache::default();
        let t = Token {
            value: "t".into(),
            lifetime: Duration::from_secs(100),
        };
        cache.insert("reg", "repository:a:pull", &t, now);
        assert_eq!(cache.get("reg", "repository:a:pull", now), Some("t"));
        assert_eq!(cache.get("reg", "repository:a:pull,push", now), None);
        assert_eq!(cache.get("other", "repository:a:pull", now), None);
        assert_eq!(
            cache.get("reg", "repository:a:pull", now + Duration::from_secs(89)),
            Some("t")
        );
        assert_eq!(
            cache.get("reg", "repository:a:pull", now + Duration::from_secs(90)),
            None
        );
        cache.remove("reg", "repository:a:pull");
        assert_eq!(cache.get("reg", "repository:a:pull", now), None);
    }
}
