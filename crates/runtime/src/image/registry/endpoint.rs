//! Which servers to ask, in which order, for a repository of a registry: a pure
//! decision from the configuration, no IO.
//!
//! ```text
//! pull:  mirrors[registry] (or mirrors["*"]) endpoints, rewritten names  ->  origin
//! push:  origin only (mirrors are read-only caches)
//! origin: https://<registry>/v2   (docker.io -> registry-1.docker.io)
//!         http:// when the host is `insecure: true` or the caller asked for plain HTTP
//! ```

use super::config::RegistriesConfig;
use super::url::Url;
use crate::image::reference::Reference;

/// Docker Hub's name in references, and the host that serves its API.
const HUB: &str = "docker.io";
const HUB_API: &str = "registry-1.docker.io";

/// One server to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The API root, `…/v2`.
    pub api: Url,
    /// The repository as this server names it (after a mirror's rewrite).
    pub repository: String,
    /// A mirror (its failures fall back to the next endpoint) rather than the origin.
    pub mirror: bool,
}

/// The registry's own API root.
pub(crate) fn origin(
    config: &RegistriesConfig,
    registry: &str,
    plain_http: bool,
) -> Result<Url, super::url::UrlError> {
    let host = if registry == HUB { HUB_API } else { registry };
    let plain = plain_http || config.host(host).is_some_and(|h| h.insecure);
    let scheme = if plain { "http" } else { "https" };
    Url::parse(&format!("{scheme}://{host}/v2"))
}

/// The endpoints to try for pulling `repository` from `registry`, mirrors first.
///
/// A mirror whose rewrite yields an invalid repository name is skipped (and logged): a
/// bad rewrite must not send a request for a name the user never wrote.
pub(crate) fn pull_endpoints(
    config: &RegistriesConfig,
    registry: &str,
    repository: &str,
    plain_http: bool,
) -> Result<Vec<Endpoint>, super::url::UrlError> {
    let origin = origin(config, registry, plain_http)?;
    let mut out: Vec<Endpoint> = Vec::new();
    if let Some(mirror) = config.mirror(registry) {
        let rewritten = mirror.rewrite(repository);
        if is_repository(&rewritten) {
            for api in mirror.endpoints() {
                if out.iter().any(|e| &e.api == api) {
                    continue;
                }
                out.push(Endpoint {
                    api: api.clone(),
                    repository: rewritten.clone(),
                    mirror: *api != origin,
                });
            }
        } else {
            tracing::warn!(
                registry,
                repository,
                rewritten = rewritten.as_str(),
                "mirror rewrite gives an invalid repository name; skipping the mirrors"
            );
        }
    }
    if !out.iter().any(|e| e.api == origin) {
        out.push(Endpoint {
            api: origin,
            repository: repository.to_string(),
            mirror: false,
        });
    }
    Ok(out)
}

/// Whether `name` is a repository name a reference could hold.
pub(crate) fn is_repository(name: &str) -> bool {
    !name.contains([':', '@'])
        && format!("mirror.invalid/{name}")
            .parse::<Reference>()
            .is_ok_and(|r| r.repository == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(yaml: &str) -> RegistriesConfig {
        RegistriesConfig::from_yaml(yaml, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn urls(eps: &[Endpoint]) -> Vec<(String, String, bool)> {
        eps.iter()
            .map(|e| (e.api.to_string(), e.repository.clone(), e.mirror))
            .collect()
    }

    #[test]
    fn mirrors_come_first_then_the_origin() {
        let c = config(
            r#"
mirrors:
  docker.io:
    endpoint: ["https://m1:5000", "http://10.0.0.5:5000", "https://m1:5000"]
    rewrite: { "^library/(.*)": "edge/$1" }
"#,
        );
        let eps = pull_endpoints(&c, "docker.io", "library/nginx", false).expect("endpoints");
        assert_eq!(
            urls(&eps),
            [
                ("https://m1:5000/v2".into(), "edge/nginx".into(), true),
                ("http://10.0.0.5:5000/v2".into(), "edge/nginx".into(), true),
                (
                    "https://registry-1.docker.io/v2".into(),
                    "library/nginx".into(),
                    false
                ),
            ]
        );
        let eps = pull_endpoints(&c, "ghcr.io", "a/b", false).expect("endpoints");
        assert_eq!(
            urls(&eps),
            [("https://ghcr.io/v2".into(), "a/b".into(), false)]
        );
    }

    #[test]
    fn plain_http_only_when_allowed() {
        let c = config("configs:\n  \"local:5000\":\n    insecure: true\n");
        assert_eq!(
            origin(&c, "local:5000", false).map(|u| u.to_string()),
            Ok("http://local:5000/v2".into())
        );
        assert_eq!(
            origin(&c, "other:5000", false).map(|u| u.to_string()),
            Ok("https://other:5000/v2".into())
        );
        assert_eq!(
            origin(&c, "other:5000", true).map(|u| u.to_string()),
            Ok("http://other:5000/v2".into())
        );
    }

    #[test]
    fn an_origin_listed_as_mirror_is_tried_once() {
        let c = config("mirrors:\n  reg.io:\n    endpoint: [\"https://reg.io\", \"https://m\"]\n");
        let eps = pull_endpoints(&c, "reg.io", "a", false).expect("endpoints");
        assert_eq!(
            urls(&eps),
            [
                ("https://reg.io/v2".into(), "a".into(), false),
                ("https://m/v2".into(), "a".into(), true),
            ]
        );
    }

    #[test]
    fn hostile_rewrites_skip_the_mirror() {
        for replacement in ["../../etc", "a:b", "A/B", "", "x@sha256", "a//b", "$2$3"] {
            let c = config(&format!(
                "mirrors:\n  r.io:\n    endpoint: [\"https://m\"]\n    rewrite: {{ \"^(.*)$\": \"{replacement}\" }}\n"
            ));
            let eps = pull_endpoints(&c, "r.io", "a/b", false).expect("endpoints");
            assert_eq!(
                urls(&eps),
                [("https://r.io/v2".into(), "a/b".into(), false)],
                "{replacement}"
            );
        }
    }
}
