//! `WWW-Authenticate` challenges (RFC 7235), as registries send them on a 401:
//!
//! ```text
//! Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"
//! Basic realm="Registry Realm"
//! ```
//!
//! Several challenges may share one header (separated by commas, like the parameters,
//! which is why this is a small parser rather than a split), parameter values may be
//! tokens or quoted strings with `\` escapes, and several headers may be sent. Bearer is
//! preferred to Basic; other schemes are ignored. Input is bounded: a header longer
//! than [`MAX_HEADER`] is refused before it is parsed.

use std::fmt;

/// The longest challenge header parsed.
pub(crate) const MAX_HEADER: usize = 8 * 1024;

/// What a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Fetch a token from `realm` (with `service` and a scope) and send it as a bearer.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send the configured user name and password.
    Basic,
}

/// Why a challenge was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChallengeError(pub String);

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WWW-Authenticate: {}", self.0)
    }
}

fn err(reason: impl Into<String>) -> ChallengeError {
    ChallengeError(reason.into())
}

/// One challenge as written: a scheme (lowercased) and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawChallenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Chooses the challenge to answer among every `WWW-Authenticate` header of a response.
pub(crate) fn choose(headers: &[&str]) -> Result<Challenge, ChallengeError> {
    if headers.is_empty() {
        return Err(err("a 401 without a challenge"));
    }
    let mut all = Vec::new();
    let mut total = 0;
    for h in headers {
        total += h.len();
        if total > MAX_HEADER {
            return Err(err(format!("longer than {MAX_HEADER} bytes")));
        }
        all.extend(parse(h)?);
    }
    if let Some(bearer) = all.iter().find(|c| c.scheme == "bearer") {
        let realm = bearer
            .param("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| err("Bearer challenge without a realm"))?;
        return Ok(Challenge::Bearer {
            realm: realm.to_string(),
            service: bearer.param("service").map(str::to_owned),
            scope: bearer.param("scope").map(str::to_owned),
        });
    }
    if all.iter().any(|c| c.scheme == "basic") {
        return Ok(Challenge::Basic);
    }
    let schemes: Vec<&str> = all.iter().map(|c| c.scheme.as_str()).take(5).collect();
    Err(err(format!(
        "no Bearer or Basic challenge (got {})",
        if schemes.is_empty() {
            "nothing".to_string()
        } else {
            schemes.join(", ")
        }
    )))
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&what) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.skip(is_tchar);
        // tchar is ASCII, so this slice is valid UTF-8.
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()
            .filter(|t| !t.is_empty())
    }

    /// A quoted string, the cursor on its opening quote.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(err("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self
                        .peek()
                        .ok_or_else(|| err("unterminated quoted string"))?;
                    out.push(c);
                    self.pos += 1;
                }
                Some(c) if c < 0x20 && c != b'\t' || c == 0x7f => {
                    return Err(err("control character in a quoted string"));
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| err("quoted string is not UTF-8"))
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses one header value into its challenges.
fn parse(header: &str) -> Result<Vec<RawChallenge>, ChallengeError> {
    if header.len() > MAX_HEADER {
        return Err(err(format!("longer than {MAX_HEADER} bytes")));
    }
    let mut c = Cursor {
        s: header.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        c.skip(|b| is_ws(b) || b == b',');
        if c.peek().is_none() {
            break;
        }
        let scheme = c
            .token()
            .ok_or_else(|| err(format!("expected an auth scheme at byte {}", c.pos)))?;
        let mut challenge = RawChallenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        loop {
            c.skip(|b| is_ws(b) || b == b',');
            let start = c.pos;
            if c.peek().is_none() {
                break;
            }
            let name = c
                .token()
                .ok_or_else(|| err(format!("expected a parameter at byte {}", c.pos)))?;
            c.skip(is_ws);
            if c.peek() != Some(b'=') {
                // Not a parameter: the next challenge's scheme.
                c.pos = start;
                break;
            }
            c.pos += 1;
            c.skip(is_ws);
            let value = match c.peek() {
                Some(b'"') => c.quoted()?,
                // token68 (`Negotiate abc==`): the padding is not a parameter value.
                Some(b'=') | Some(b',') | None => {
                    c.skip(|b| b == b'=');
                    continue;
                }
                _ => c
                    .token()
                    .ok_or_else(|| err(format!("bad parameter value at byte {}", c.pos)))?
                    .to_string(),
            };
            let name = name.to_ascii_lowercase();
            if challenge.param(&name).is_some() {
                return Err(err(format!("parameter {name} given twice")));
            }
            challenge.params.push((name, value));
        }
        out.push(challenge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn docker_hub_challenge_parses() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        assert_eq!(
            choose(&[h]),
            Ok(bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/nginx:pull")
            ))
        );
    }

    #[test]
    fn quoted_commas_escapes_and_tokens_parse() {
        let h = r#"bearer  realm = "https://a/t?x=1,y=2" , service=reg.io,scope="repository:a/b:pull,push" , error="say \"hi\"\\""#;
        let parsed = parse(h).expect("parse");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].param("realm"), Some("https://a/t?x=1,y=2"));
        assert_eq!(parsed[0].param("service"), Some("reg.io"));
        assert_eq!(parsed[0].param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(parsed[0].param("error"), Some(r#"say "hi"\"#));
    }

    #[test]
    fn several_challenges_prefer_bearer() {
        let h = r#"Negotiate abc==, Basic realm="r, with comma", Bearer realm="https://t""#;
        assert_eq!(parse(h).expect("parse").len(), 3);
        assert_eq!(choose(&[h]), Ok(bearer("https://t", None, None)));
        assert_eq!(
            choose(&[r#"Basic realm="Registry Realm""#]),
            Ok(Challenge::Basic)
        );
        assert_eq!(choose(&["Basic"]), Ok(Challenge::Basic));
        assert_eq!(
            choose(&["Negotiate", r#"Bearer realm="https://t""#]),
            Ok(bearer("https://t", None, None))
        );
    }

    #[test]
    fn hostile_challenges_are_refused() {
        let long_ok = format!(r#"Bearer realm="https://t",scope="{}""#, "s".repeat(7000));
        assert!(choose(&[&long_ok]).is_ok());
        let ten_kb = format!(r#"Bearer realm="https://t",scope="{}""#, "s".repeat(10_000));
        let huge = "Bearer ".repeat(100_000);
        let split = vec![r#"Basic realm="x""#; 1000];
        for bad in [
            vec![""],
            vec![],
            vec!["Bearer"],
            vec![r#"Bearer realm="""#],
            vec![r#"Bearer service="x""#],
            vec![r#"Bearer realm="https://t"#],
            vec![r#"Bearer realm="https://t\"#],
            vec![r#"Bearer realm=https://t"#],
            vec![r#"Bearer realm="a", realm="b""#],
            vec!["Bearer realm=\"a\u{1}\""],
            vec!["\"quoted\" scheme"],
            vec!["=== ,,, ==="],
            vec!["Digest realm=x"],
            vec!["\u{fffd}\u{0}\u{7f}"],
            vec![ten_kb.as_str()],
            vec![huge.as_str()],
            split,
        ] {
            assert!(choose(&bad).is_err(), "{:.80?} accepted", bad);
        }
    }
}
