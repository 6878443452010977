//! The few URL forms the registry client meets: endpoints from `registries.yaml`, token
//! realms from a challenge, and `Location` headers (absolute, scheme-relative,
//! absolute-path or relative) from upload and redirect responses.
//!
//! Deliberately narrow: `http`/`https` only, no user-info (credentials in a URL are
//! refused, never sent), printable ASCII only, bounded length. Anything else is an
//! error naming what was wrong, so a hostile header cannot smuggle a request line,
//! a header or a credential.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest URL accepted (pre-signed blob URLs are long, but not this long).
const MAX_URL: usize = 8 * 1024;

/// What may stay unescaped in a query value: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError(pub &'static str);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An absolute `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Url {
    https: bool,
    /// `host`, `host:port` or `[v6]:port`, lowercase.
    authority: String,
    /// Starts with `/`; may hold a query; never a fragment.
    path_and_query: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    pub(crate) fn parse(text: &str) -> Result<Url, UrlError> {
        check_chars(text)?;
        let (https, rest) = if let Some(rest) = strip_prefix_ci(text, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(text, "http://") {
            (false, rest)
        } else {
            return Err(UrlError("expected an http:// or https:// URL"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = parse_authority(&rest[..end])?;
        let mut path_and_query = strip_fragment(&rest[end..]).to_string();
        if !path_and_query.starts_with('/') {
            path_and_query.insert(0, '/');
        }
        Ok(Url {
            https,
            authority,
            path_and_query,
        })
    }

    /// Resolves a `Location` header (or any URL reference) against this URL.
    pub(crate) fn join(&self, reference: &str) -> Result<Url, UrlError> {
        check_chars(reference)?;
        if reference.is_empty() {
            return Err(UrlError("empty location"));
        }
        if let Some(colon) = reference.find(':') {
            // A scheme is letters before the first ':' that comes before any '/', '?'.
            let before = &reference[..colon];
            if !before.contains(['/', '?', '#']) {
                return if before.eq_ignore_ascii_case("http")
                    || before.eq_ignore_ascii_case("https")
                {
                    Url::parse(reference)
                } else {
                    Err(UrlError("only http and https locations are followed"))
                };
            }
        }
        if let Some(rest) = reference.strip_prefix("//") {
            let scheme = if self.https { "https://" } else { "http://" };
            return Url::parse(&format!("{scheme}{rest}"));
        }
        let reference = strip_fragment(reference);
        let joined = if reference.starts_with('/') {
            reference.to_string()
        } else if reference.starts_with('?') {
            format!("{}{reference}", self.path())
        } else {
            let path = self.path();
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{reference}")
        };
        let (path, query) = match joined.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (joined.as_str(), None),
        };
        let mut path_and_query = remove_dot_segments(path);
        if let Some(q) = query {
            path_and_query = format!("{path_and_query}?{q}");
        }
        Ok(Url {
            https: self.https,
            authority: self.authority.clone(),
            path_and_query,
        })
    }

    /// This URL with `key=value` added to its query (the value percent-encoded).
    pub(crate) fn with_query(&self, key: &str, value: &str) -> Url {
        let sep = if self.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut out = self.clone();
        out.path_and_query = format!(
            "{}{sep}{key}={}",
            self.path_and_query,
            utf8_percent_encode(value, QUERY_VALUE)
        );
        out
    }

    /// This URL with `suffix` appended to its path (which has no query here).
    pub(crate) fn with_path(&self, suffix: &str) -> Url {
        let mut out = self.clone();
        let path = self.path().trim_end_matches('/');
        out.path_and_query = format!("{path}{suffix}");
        out
    }

    pub(crate) fn is_https(&self) -> bool {
        self.https
    }

    /// `host[:port]`, lowercase: what credentials, TLS settings and tokens are keyed by.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    fn path(&self) -> &str {
        match self.path_and_query.find('?') {
            Some(i) => &self.path_and_query[..i],
            None => &self.path_and_query,
        }
    }

    /// `scheme://authority`, the key of a connection pool.
    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.authority,
            self.path_and_query
        )
    }
}

/// RFC 3986's remove_dot_segments, for a path that starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

/// `k=v&k=v`, values percent-encoded: a form body or a query.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn strip_fragment(text: &str) -> &str {
    text.split('#').next().unwrap_or_default()
}

fn check_chars(text: &str) -> Result<(), UrlError> {
    if text.len() > MAX_URL {
        return Err(UrlError("URL longer than 8192 bytes"));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UrlError(
            "URL holds a space, a control or a non-ASCII character",
        ));
    }
    Ok(())
}

/// Validates `host[:port]` and lowercases it. User-info (`user:pass@`) is refused.
pub(crate) fn parse_authority(text: &str) -> Result<String, UrlError> {
    if text.contains('@') {
        return Err(UrlError("credentials in a URL are not accepted"));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or(UrlError("unclosed [ in the host"))?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| UrlError("invalid IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(UrlError("junk after the IPv6 address"))?,
            ),
        };
        (&text[..addr.len() + 2], port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError("empty host"));
    }
    if !host.starts_with('[')
        && !host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err(UrlError("invalid host name"));
    }
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u16>().is_err())
    {
        return Err(UrlError("invalid port"));
    }
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn locations_resolve_in_every_form() {
        let base = url("https://Reg.Example:5000/v2/a/blobs/uploads/");
        assert_eq!(base.authority(), "reg.example:5000");
        let cases = [
            (
                "/v2/a/blobs/uploads/u1?_state=x",
                "https://reg.example:5000/v2/a/blobs/uploads/u1?_state=x",
            ),
            ("http://other:1/p?q=1#frag", "http://other:1/p?q=1"),
            ("//cdn.example/blob", "https://cdn.example/blob"),
            ("u2", "https://reg.example:5000/v2/a/blobs/uploads/u2"),
            ("?x=1", "https://reg.example:5000/v2/a/blobs/uploads/?x=1"),
            ("HTTPS://CDN.example", "https://cdn.example/"),
            (
                "./u3?a=./b",
                "https://reg.example:5000/v2/a/blobs/uploads/u3?a=./b",
            ),
            ("../../../../../etc/x", "https://reg.example:5000/etc/x"),
            ("/v2/a/./b/..", "https://reg.example:5000/v2/a/"),
            ("..", "https://reg.example:5000/v2/a/blobs/"),
            ("https://[::1]:8443/x", "https://[::1]:8443/x"),
        ];
        for (loc, want) in cases {
            assert_eq!(
                base.join(loc).map(|u| u.to_string()),
                Ok(want.into()),
                "{loc}"
            );
        }
    }

    #[test]
    fn hostile_locations_are_refused() {
        let base = url("https://reg/v2/");
        let long = format!("/{}", "a".repeat(MAX_URL));
        for bad in [
            "",
            "ftp://x/y",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@evil/x",
            "https://reg/x\r\nX-Injected: 1",
            "https://reg/x y",
            "https://reg:99999/x",
            "https://reg:/x",
            "https://[zz]/x",
            "https://[::1/x",
            "https:///x",
            "https://a..b/x",
            "https://ho_st/x",
            "//",
            "/ünïcode",
            long.as_str(),
        ] {
            assert!(base.join(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        let u = url("http://h/v2/x/blobs/uploads/u?_state=a%3D")
            .with_query("digest", "sha256:ab&c=d e");
        assert_eq!(
            u.to_string(),
            "http://h/v2/x/blobs/uploads/u?_state=a%3D&digest=sha256%3Aab%26c%3Dd%20e"
        );
        assert_eq!(
            url("http://h/token")
                .with_query("scope", "repository:a/b:pull,push")
                .to_string(),
            "http://h/token?scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(
            url("https://h").with_path("/v2/").to_string(),
            "https://h/v2/"
        );
        assert_eq!(url("https://h/v2/").origin(), "https://h");
    }
}
