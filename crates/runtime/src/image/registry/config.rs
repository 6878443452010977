//! `registries.yaml`, in K3s's format: mirrors (with repository rewrites) per registry,
//! and credentials and TLS settings per host.
//!
//! ```yaml
//! mirrors:
//!   docker.io:                      # or "*" for every registry
//!     endpoint: ["https://mirror.site:5000", "http://10.0.0.5:5000"]
//!     rewrite:
//!       "^library/(.*)": "edge/$1"
//! configs:
//!   "mirror.site:5000":
//!     auth: { username: u, password: p }  # or { auth: base64(u:p) } or { identity_token: t }
//!     tls: { ca_file: /etc/moor/ca.pem, cert_file: c.pem, key_file: k.pem, insecure_skip_verify: false }
//!     insecure: true                      # moor's addition: plain HTTP to this host
//! ```
//!
//! Everything is checked while the YAML is read (endpoints, host names, regexes,
//! credentials), so an error carries the field path and the line from the YAML parser.
//! Unknown fields are errors (a typo should not silently drop a mirror). The file is
//! bounded ([`MAX_FILE`]); the parser bounds nesting and alias expansion itself.
//! Certificate and key files are read when a connection needs them (see `tls`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::error::RegistryError;
use super::url::{Url, parse_authority};

/// Where moor looks for the file when no other path is given.
pub const DEFAULT_PATH: &str = "/etc/moor/registries.yaml";
/// The largest `registries.yaml` read.
pub const MAX_FILE: u64 = 1024 * 1024;
const MAX_PATTERN: usize = 1024;
const MAX_REWRITES: usize = 64;
const MAX_ENDPOINTS: usize = 32;

/// The parsed file: which mirrors to try for a registry, and how to talk to each host.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConfig {
    mirrors: BTreeMap<String, Mirror>,
    configs: BTreeMap<String, HostConfig>,
}

/// The mirrors of one registry (or of every registry, under `"*"`).
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    endpoints: Vec<Url>,
    rewrites: Vec<Rewrite>,
}

/// `pattern → replacement` applied to a repository name when it is pulled from a mirror.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pattern: regex::Regex,
    replacement: String,
}

/// How to talk to one host: credentials, TLS files, plain HTTP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<Credentials>,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Plain HTTP is allowed to this host (and used for it when it is a registry's origin).
    #[serde(default)]
    pub insecure: bool,
}

/// Credentials for a host. `Debug` does not show secrets.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAuth")]
pub enum Credentials {
    /// Sent as Basic auth, to the registry or to its token server.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token, exchanged at the token server.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <hidden> }}")
            }
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<hidden>)"),
        }
    }
}

/// TLS files for a host. Paths are checked when a connection needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Extra CA certificates (PEM), trusted besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Logged on every connection it is used for.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identity_token: Option<String>,
}

impl TryFrom<RawAuth> for Credentials {
    type Error = String;

    fn try_from(raw: RawAuth) -> Result<Self, String> {
        let basic = |username: String, password: String| {
            if username.is_empty() || username.contains(':') {
                Err("username must be non-empty and without ':'".to_string())
            } else {
                Ok(Credentials::Basic { username, password })
            }
        };
        match (raw.username, raw.password, raw.auth, raw.identity_token) {
            (Some(u), Some(p), None, None) => basic(u, p),
            (None, None, Some(encoded), None) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| "auth is not base64".to_string())?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| "auth does not decode to UTF-8 text".to_string())?;
                let (u, p) = text
                    .split_once(':')
                    .ok_or("auth does not decode to username:password")?;
                basic(u.to_string(), p.to_string())
            }
            (None, None, None, Some(t)) if !t.is_empty() => Ok(Credentials::IdentityToken(t)),
            _ => Err(
                "expected username and password, or auth, or identity_token (exactly one form)"
                    .into(),
            ),
        }
    }
}

/// A registry host, `host:port`, or `*`: the keys of both sections.
struct HostKey(String);

impl<'de> Deserialize<'de> for HostKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "*" {
            return Ok(HostKey(s));
        }
        parse_authority(&s).map(HostKey).map_err(|e| {
            de::Error::custom(format!(
                "{:?} is not a host[:port] or \"*\": {e}",
                truncate(&s)
            ))
        })
    }
}

/// A mirror endpoint URL; the registry API lives at `<url>/v2` unless the path already
/// ends in `/v2`. Without a scheme, https.
struct Endpoint(Url);

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = |why: &dyn fmt::Display| {
            de::Error::custom(format!("endpoint {:?}: {why}", truncate(&s)))
        };
        let text = if s.contains("://") {
            s.clone()
        } else {
            format!("https://{s}")
        };
        let url = Url::parse(&text).map_err(|e| bad(&e))?;
        if text.contains(['?', '#']) {
            return Err(bad(&"an endpoint has no query or fragment"));
        }
        let api = if url.to_string().trim_end_matches('/').ends_with("/v2") {
            url.with_path("")
        } else {
            url.with_path("/v2")
        };
        Ok(Endpoint(api))
    }
}

struct Rewrites(Vec<Rewrite>);

impl<'de> Deserialize<'de> for Rewrites {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Rewrites;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of regular expression to replacement")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Rewrites, E> {
                Ok(Rewrites(Vec::new()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rewrites, A::Error> {
                let mut out = Vec::new();
                while let Some((pattern, replacement)) = map.next_entry::<String, String>()? {
                    if out.len() == MAX_REWRITES {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_REWRITES} rewrites"
                        )));
                    }
                    if pattern.len() > MAX_PATTERN || replacement.len() > MAX_PATTERN {
                        return Err(de::Error::custom(format!(
                            "rewrite {:?}: pattern and replacement are at most {MAX_PATTERN} bytes",
                            truncate(&pattern)
                        )));
                    }
                    let regex = regex::RegexBuilder::new(&pattern)
                        .size_limit(1 << 20)
                        .nest_limit(32)
                        .build()
                        .map_err(|e| {
                            // The engine's message draws a caret over the pattern on
                            // several lines; one line reads better in an error.
                            let why = e
                                .to_string()
                                .split_whitespace()
                                .collect::<Vec<_>>()
                                .join(" ");
                            de::Error::custom(format!(
                                "rewrite {:?} is not a valid regular expression: {why}",
                                truncate(&pattern)
                            ))
                        })?;
                    out.push(Rewrite {
                        pattern: regex,
                        replacement,
                    });
                }
                Ok(Rewrites(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    #[serde(default)]
    endpoint: Option<Vec<Endpoint>>,
    #[serde(default)]
    rewrite: Option<Rewrites>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    mirrors: Option<Pairs<HostKey, Option<RawMirror>>>,
    #[serde(default)]
    configs: Option<Pairs<HostKey, Option<HostConfig>>>,
}

/// A YAML map read as a list of pairs, in the file's order, repeated keys kept (so they
/// can be refused by name).
struct Pairs<K, V>(Vec<(K, V)>);

impl<K, V> Default for Pairs<K, V> {
    fn default() -> Self {
        Pairs(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Pairs<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<K, V> {
            type Value = Pairs<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map keyed by host")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Pairs::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

impl RegistriesConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<RegistriesConfig, RegistryError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConfig::default());
            }
            Err(source) => {
                return Err(RegistryError::File {
                    step: "read registries config",
                    path: path.into(),
                    source,
                });
            }
        };
        let mut text = String::new();
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|source| RegistryError::File {
                step: "read registries config",
                path: path.into(),
                source,
            })?;
        if text.len() as u64 > MAX_FILE {
            return Err(RegistryError::Config {
                path: path.into(),
                line: None,
                reason: format!("larger than {MAX_FILE} bytes"),
            });
        }
        RegistriesConfig::from_yaml(&text, path)
    }

    /// Parses the file's text; `path` names it in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<RegistriesConfig, RegistryError> {
        let config_error = |e: serde_yaml_ng::Error| RegistryError::Config {
            path: path.into(),
            line: e.location().map(|l| l.line()),
            reason: e.to_string(),
        };
        // The parser's cost grows with the square of flow nesting: refuse deep nesting
        // before it sees the text (see `image::yaml`).
        if let Some(line) = crate::image::yaml::too_deep(text, crate::image::yaml::MAX_FLOW_DEPTH) {
            return Err(RegistryError::Config {
                path: path.into(),
                line: Some(line),
                reason: format!(
                    "collections nested more than {} deep",
                    crate::image::yaml::MAX_FLOW_DEPTH
                ),
            });
        }
        // A map read as pairs keeps the file's order and refuses repeated keys below.
        let raw: Option<RawFile> = serde_yaml_ng::from_str(text).map_err(config_error)?;
        let raw = raw.unwrap_or(RawFile {
            mirrors: None,
            configs: None,
        });
        let duplicate = |section: &str, key: &str| RegistryError::Config {
            path: path.into(),
            line: None,
            reason: format!("{section}.{key} is given twice"),
        };
        let mut config = RegistriesConfig::default();
        for (HostKey(key), mirror) in raw.mirrors.unwrap_or_default().0 {
            let mirror = mirror.unwrap_or(RawMirror {
                endpoint: None,
                rewrite: None,
            });
            let endpoints: Vec<Url> = mirror
                .endpoint
                .unwrap_or_default()
                .into_iter()
                .map(|Endpoint(u)| u)
                .collect();
            if endpoints.len() > MAX_ENDPOINTS {
                return Err(RegistryError::Config {
                    path: path.into(),
                    line: None,
                    reason: format!("mirrors.{key}.endpoint: more than {MAX_ENDPOINTS} endpoints"),
                });
            }
            let rewrites = mirror.rewrite.map(|Rewrites(r)| r).unwrap_or_default();
            if config
                .mirrors
                .insert(
                    key.clone(),
                    Mirror {
                        endpoints,
                        rewrites,
                    },
                )
                .is_some()
            {
                return Err(duplicate("mirrors", &key));
            }
        }
        for (HostKey(key), host) in raw.configs.unwrap_or_default().0 {
            if let Some(tls) = host.as_ref().and_then(|h| h.tls.as_ref())
                && tls.cert_file.is_some() != tls.key_file.is_some()
            {
                return Err(RegistryError::Config {
                    path: path.into(),
                    line: None,
                    reason: format!("configs.{key}.tls: cert_file and key_file go together"),
                });
            }
            if config
                .configs
                .insert(key.clone(), host.unwrap_or_default())
                .is_some()
            {
                return Err(duplicate("configs", &key));
            }
        }
        Ok(config)
    }

    /// The mirrors for `registry` (as a reference names it: `docker.io`), else those of `*`.
    pub fn mirror(&self, registry: &str) -> Option<&Mirror> {
        self.mirrors.get(registry).or_else(|| self.mirrors.get("*"))
    }

    /// The settings for the host `authority` (`host[:port]`), else those of `*`. Docker
    /// Hub's names (`docker.io`, `index.docker.io`, `registry-1.docker.io`) share one entry.
    pub fn host(&self, authority: &str) -> Option<&HostConfig> {
        const HUB: [&str; 3] = ["docker.io", "registry-1.docker.io", "index.docker.io"];
        self.configs
            .get(authority)
            .or_else(|| {
                HUB.contains(&authority)
                    .then(|| HUB.iter().find_map(|h| self.configs.get(*h)))
                    .flatten()
            })
            .or_else(|| self.configs.get("*"))
    }

    /// Whether the file allows plain HTTP to `authority`: it is marked `insecure`, or a
    /// mirror endpoint names it with `http://`.
    pub fn allows_plain_http(&self, authority: &str) -> bool {
        self.host(authority).is_some_and(|h| h.insecure)
            || self
                .mirrors
                .values()
                .flat_map(|m| &m.endpoints)
                .any(|u| !u.is_https() && u.authority() == authority)
    }
}

impl Mirror {
    /// The API roots (`…/v2`) to try, in order, before the registry itself.
    pub(crate) fn endpoints(&self) -> &[Url] {
        &self.endpoints
    }

    /// The repository name a mirror is asked for: the first rewrite whose pattern
    /// matches, applied, or the name itself.
    pub(crate) fn rewrite(&self, repository: &str) -> String {
        self.rewrites
            .iter()
            .find(|r| r.pattern.is_match(repository))
            .map(|r| {
                r.pattern
                    .replace_all(repository, r.replacement.as_str())
                    .into_owned()
            })
            .unwrap_or_else(|| repository.to_string())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn a_megabyte_of_brackets_is_refused_before_parsing() {
        let text = format!("mirrors: {}\n", "[".repeat(1_000_000));
        let err =
            RegistriesConfig::from_yaml(&text, Path::new("registries.yaml")).expect_err("deep");
        assert!(err.to_string().contains("nested"), "{err}");
    }
}
