//! Image references: `[registry[:port]/]repository[:tag][@digest]`, as Docker writes
//! them, normalised the way Docker does (`nginx` is `docker.io/library/nginx:latest`).

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

/// The registry names without a dot or port that still mean a host.
const DOCKER_HUB: &str = "docker.io";

/// Errors parsing a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference {text:?}: {reason}")]
    Invalid { text: String, reason: &'static str },
    #[error("invalid image reference {text:?}: {source}")]
    Digest {
        text: String,
        #[source]
        source: super::digest::DigestError,
    },
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `registry.local:5000`, `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// `library/nginx`, `team/app`.
    pub repository: String,
    /// `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn invalid(text: &str, reason: &'static str) -> ReferenceError {
    ReferenceError::Invalid {
        text: text.chars().take(300).collect(),
        reason,
    }
}

fn is_path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == b.len() || !alnum(b[i]) || i == start {
            return false;
        }
    }
    true
}

fn is_registry(c: &str) -> bool {
    if let Some(rest) = c.strip_prefix('[') {
        // [ipv6]:port?
        let Some((addr, port)) = rest.split_once(']') else {
            return false;
        };
        return addr.parse::<std::net::Ipv6Addr>().is_ok()
            && (port.is_empty() || port.strip_prefix(':').is_some_and(is_port));
    }
    let (host, port) = match c.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (c, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    host_ok && port.is_none_or(is_port)
}

fn is_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok()
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > 512 {
            return Err(invalid(text, "expected 1 to 512 characters"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((name, d)) => (
                name,
                Some(
                    d.parse::<Digest>()
                        .map_err(|source| ReferenceError::Digest {
                            text: text.to_string(),
                            source,
                        })?,
                ),
            ),
            None => (text, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !is_tag(t)
        {
            return Err(invalid(
                text,
                "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
            ));
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let first = parts[0];
        let has_registry = parts.len() > 1
            && (first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.starts_with('['));
        let mut registry = if has_registry {
            let r = parts.remove(0);
            if !is_registry(r) {
                return Err(invalid(text, "the registry is not a valid host[:port]"));
            }
            r.to_string()
        } else {
            DOCKER_HUB.to_string()
        };
        if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            registry = DOCKER_HUB.to_string();
        }
        if parts.is_empty() || !parts.iter().all(|p| is_path_component(p)) {
            return Err(invalid(
                text,
                "repository components are lowercase letters and digits, separated by '.', '_', '__' or '-'",
            ));
        }
        let mut repository = parts.join("/");
        if registry == DOCKER_HUB && parts.len() == 1 {
            repository = format!("library/{repository}");
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid(text, "the name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same image by digest (used once a tag has been resolved).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(parse("nginx").to_string(), "docker.io/library/nginx:latest");
        assert_eq!(
            parse("nginx:1.25").to_string(),
            "docker.io/library/nginx:1.25"
        );
        assert_eq!(parse("team/app").to_string(), "docker.io/team/app:latest");
        assert_eq!(
            parse("index.docker.io/library/busybox:1").to_string(),
            "docker.io/library/busybox:1"
        );
    }

    #[test]
    fn registries_with_ports_and_digests_parse() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = parse(&format!("127.0.0.1:5000/a/b-c__d.e:v1.2@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b-c__d.e");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        assert_eq!(r.object(), d);
        let r = parse(&format!("localhost/x@{d}"));
        assert_eq!((r.registry.as_str(), r.tag), ("localhost", None));
        assert_eq!(parse("[::1]:5000/x").registry, "[::1]:5000");
        assert_eq!(parse("registry.local/x:y").repository, "x");
    }

    #[test]
    fn hostile_references_are_refused() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "a/../b",
            "../x",
            "x:",
            "x:-tag",
            "x@sha256:../../x",
            "x@sha256:abc",
            "reg:99999/x",
            "reg:port/x",
            "-reg.io/x",
            "a/b_-c",
            "x y",
            "x\0",
            "[zz]:1/x",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        assert!(
            format!("x:{}", "t".repeat(129))
                .parse::<Reference>()
                .is_err()
        );
        assert!("a/".repeat(300).parse::<Reference>().is_err());
    }
}
