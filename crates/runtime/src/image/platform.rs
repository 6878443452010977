//! Platforms (`linux/amd64`, `linux/arm64`, `linux/arm/v7`) and choosing one from an
//! index or manifest list, variant-aware as containerd does it.

use std::fmt;
use std::str::FromStr;

/// Errors parsing a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {text:?}: expected OS/ARCH[/VARIANT] such as linux/arm/v7")]
pub struct PlatformError {
    pub text: String,
}

/// An OS, architecture and (for arm) variant, in OCI's names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in OCI's names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "riscv64" => ("riscv64", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// How well an image for (`os`, `arch`, `variant`) runs here: `None` if it does not,
    /// lower is better. arm64 accepts a missing variant or v8; arm/v7 also runs v6 and v5
    /// images (after v7 ones); a missing variant on arm counts as the lowest match.
    pub fn rank(&self, os: &str, arch: &str, variant: Option<&str>) -> Option<u8> {
        if os != self.os || normalize_arch(arch) != self.architecture {
            return None;
        }
        let want = self.variant.as_deref();
        let have = variant.filter(|v| !v.is_empty());
        match self.architecture.as_str() {
            "arm64" => match have {
                None | Some("v8") => Some(0),
                _ => None,
            },
            "arm" => {
                let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u8>().ok());
                let want_level = want.and_then(level).unwrap_or(7);
                match have {
                    None => Some(10),
                    Some(v) => {
                        let l = level(v)?;
                        (l <= want_level).then(|| want_level - l)
                    }
                }
            }
            _ => match (want, have) {
                (_, None) => Some(0),
                (Some(w), Some(h)) if w == h => Some(0),
                (None, Some(_)) => Some(1),
                _ => None,
            },
        }
    }
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "armhf" | "armel" => "arm",
        other => other,
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || PlatformError {
            text: text.chars().take(100).collect(),
        };
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(err());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: normalize_arch(parts[1]).to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().expect("platform")
    }

    #[test]
    fn arm_variants_rank_newest_compatible_first() {
        let v7 = p("linux/arm/v7");
        assert_eq!(v7.rank("linux", "arm", Some("v7")), Some(0));
        assert_eq!(v7.rank("linux", "arm", Some("v6")), Some(1));
        assert_eq!(v7.rank("linux", "arm", Some("v8")), None);
        assert!(v7.rank("linux", "arm", None) > v7.rank("linux", "arm", Some("v5")));
        assert_eq!(v7.rank("linux", "arm64", None), None);
    }

    #[test]
    fn amd64_and_arm64_match_their_own() {
        let amd = p("linux/amd64");
        assert_eq!(amd.rank("linux", "amd64", None), Some(0));
        assert_eq!(amd.rank("linux", "x86_64", None), Some(0));
        assert_eq!(amd.rank("windows", "amd64", None), None);
        let arm64 = p("linux/arm64/v8");
        assert_eq!(arm64.rank("linux", "arm64", None), Some(0));
        assert_eq!(arm64.rank("linux", "arm64", Some("v8")), Some(0));
        assert_eq!(arm64.rank("linux", "arm64", Some("v9")), None);
    }

    #[test]
    fn bad_platform_strings_are_refused() {
        for bad in [
            "",
            "linux",
            "linux/",
            "a/b/c/d",
            "linux/../x",
            "linux/amd 64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }
}
