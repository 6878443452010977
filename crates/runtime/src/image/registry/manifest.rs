//! Manifests: resolve a tag to a digest, fetch one (verified), push one.
//!
//! A manifest is read whole and bounded by [`MANIFEST_LIMIT`] (the distribution spec's
//! 4 MiB): a larger `Content-Length` is refused before the body is read, and a body
//! without one is cut off at the limit. The bytes are verified against the digest the
//! reference names or, for a tag, the `Docker-Content-Digest` the registry sends.

use ureq::Body;
use ureq::http::{self, Method, Response};

use super::body::{header, read_limited, status_error};
use super::client::{Payload, Request};
use super::endpoint::Endpoint;
use super::error::RegistryError;
use super::{Registry, pull_scope, push_scope};
use crate::image::digest::{Algorithm, Digest, Hasher};
use crate::image::reference::Reference;

/// The largest manifest read or pushed.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// The manifest media types asked for, indexes first.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

const DIGEST_HEADER: &str = "docker-content-digest";

/// What a registry says a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest's bytes, verified against `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

fn accept() -> (http::HeaderName, String) {
    (http::header::ACCEPT, MANIFEST_MEDIA_TYPES.join(", "))
}

/// `Content-Type` without parameters, lowercased; empty if absent.
fn content_type(response: &Response<Body>) -> String {
    header(response, http::header::CONTENT_TYPE)
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// The `Docker-Content-Digest` header, if sent; a malformed one is an error.
fn header_digest(
    step: &'static str,
    host: &str,
    response: &Response<Body>,
) -> Result<Option<Digest>, RegistryError> {
    let Some(value) = response.headers().get(DIGEST_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    text.parse().map(Some).map_err(|e| RegistryError::Protocol {
        step,
        host: host.to_string(),
        reason: format!("Docker-Content-Digest: {e}"),
    })
}

/// The media type of a manifest: the header's, unless it is missing or generic, then
/// the document's own `mediaType`, else guessed from its shape.
pub(crate) fn media_type_of(header: &str, bytes: &[u8]) -> String {
    if !header.is_empty()
        && !matches!(
            header,
            "application/json" | "text/plain" | "application/octet-stream"
        )
    {
        return header.to_string();
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(m),
            ..
        }) if m.len() < 256 => m,
        Ok(Shape {
            manifests: Some(_), ..
        }) => MANIFEST_MEDIA_TYPES[0].to_string(),
        Ok(_) => MANIFEST_MEDIA_TYPES[2].to_string(),
        Err(_) => header.to_string(),
    }
}

impl Registry {
    fn manifest_request<'a>(
        &self,
        step: &'static str,
        ep: &Endpoint,
        method: Method,
        object: &str,
        host: &'a str,
        scope: &'a str,
    ) -> Request<'a> {
        Request {
            step,
            method,
            url: ep
                .api
                .with_path(&format!("/{}/manifests/{object}", ep.repository)),
            auth_host: host,
            scope,
            headers: vec![accept()],
            payload: Payload::Empty,
        }
    }

    /// The digest, media type and size of the manifest `reference` names (HEAD, or GET
    /// when the registry does not answer HEAD with a digest).
    pub fn resolve(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        self.check_reference(reference)?;
        let step = "resolve manifest";
        self.on_pull_endpoints(step, &reference.repository, |ep| {
            let host = ep.api.authority().to_string();
            let scope = pull_scope(&ep.repository);
            let req =
                self.manifest_request(step, ep, Method::HEAD, &reference.object(), &host, &scope);
            let (response, url) = self.follow(req)?;
            let answered = url.authority();
            match response.status().as_u16() {
                200 => {}
                404 => return Err(status_error(step, answered, response)),
                status if status == 401 || status == 403 || status == 429 || status >= 500 => {
                    return Err(status_error(step, answered, response));
                }
                // 405 and other oddities: a GET may still work.
                _ => return self.resolve_by_get(ep, reference),
            }
            let Some(digest) = header_digest(step, answered, &response)? else {
                return self.resolve_by_get(ep, reference);
            };
            if let Some(want) = &reference.digest
                && *want != digest
            {
                return Err(RegistryError::DigestMismatch {
                    step,
                    host: answered.to_string(),
                    expected: want.clone(),
                    actual: digest,
                });
            }
            // A HEAD has no body, so the length is the header's, not the body's.
            let size = header(&response, http::header::CONTENT_LENGTH)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| RegistryError::Protocol {
                    step,
                    host: answered.to_string(),
                    reason: "HEAD without Content-Length".into(),
                })?;
            if size > MANIFEST_LIMIT {
                return Err(RegistryError::TooLarge {
                    step,
                    host: answered.to_string(),
                    limit: MANIFEST_LIMIT,
                });
            }
            let media_type = content_type(&response);
            if media_type.is_empty() {
                return self.resolve_by_get(ep, reference);
            }
            Ok(Descriptor {
                digest,
                media_type,
                size,
            })
        })
    }

    fn resolve_by_get(
        &self,
        ep: &Endpoint,
        reference: &Reference,
    ) -> Result<Descriptor, RegistryError> {
        let f = self.fetch_from(ep, reference)?;
        Ok(Descriptor {
            digest: f.digest,
            media_type: f.media_type,
            size: f.bytes.len() as u64,
        })
    }

    /// The manifest `reference` names, verified against its digest (the reference's or
    /// the registry's `Docker-Content-Digest`).
    pub fn fetch_manifest(&self, reference: &Reference) -> Result<Fetched, RegistryError> {
        self.check_reference(reference)?;
        self.on_pull_endpoints("fetch manifest", &reference.repository, |ep| {
            self.fetch_from(ep, reference)
        })
    }

    fn fetch_from(&self, ep: &Endpoint, reference: &Reference) -> Result<Fetched, RegistryError> {
        let step = "fetch manifest";
        let host = ep.api.authority().to_string();
        let scope = pull_scope(&ep.repository);
        let req = self.manifest_request(step, ep, Method::GET, &reference.object(), &host, &scope);
        let (response, url) = self.follow(req)?;
        let answered = url.authority();
        if response.status() != 200 {
            return Err(status_error(step, answered, response));
        }
        let announced = header_digest(step, answered, &response)?;
        let header_type = content_type(&response);
        let bytes = read_limited(step, answered, response, MANIFEST_LIMIT)?;
        let expected = reference.digest.clone().or(announced);
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let mut hasher = Hasher::new(algorithm);
        hasher.update(&bytes);
        let digest = hasher.finish();
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                step,
                host: answered.to_string(),
                expected,
                actual: digest,
            });
        }
        let media_type = media_type_of(&header_type, &bytes);
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// Pushes a manifest under the reference's tag (or digest); returns its digest.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.check_reference(reference)?;
        let step = "push manifest";
        let ep = self.push_endpoint(step, &reference.repository)?;
        let host = ep.api.authority().to_string();
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(RegistryError::TooLarge {
                step,
                host,
                limit: MANIFEST_LIMIT,
            });
        }
        let digest = Digest::sha256(bytes);
        if let Some(want) = &reference.digest
            && *want != digest
        {
            return Err(RegistryError::DigestMismatch {
                step,
                host,
                expected: want.clone(),
                actual: digest,
            });
        }
        let scope = push_scope(&ep.repository);
        let mut req = Request {
            step,
            method: Method::PUT,
            url: ep.api.with_path(&format!(
                "/{}/manifests/{}",
                ep.repository,
                reference.object()
            )),
            auth_host: &host,
            scope: &scope,
            headers: vec![(http::header::CONTENT_TYPE, media_type.to_string())],
            payload: Payload::Bytes(bytes),
        };
        let response = self.send(&mut req)?;
        let answered = req.url.authority();
        if response.status() != 201 && response.status() != 200 {
            return Err(status_error(step, answered, response));
        }
        if let Some(said) = header_digest(step, answered, &response)?
            && said != digest
        {
            return Err(RegistryError::DigestMismatch {
                step,
                host: answered.to_string(),
                expected: digest,
                actual: said,
            });
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_come_from_the_header_or_the_document() {
        let oci = "application/vnd.oci.image.manifest.v1+json";
        assert_eq!(media_type_of(oci, b"{}"), oci);
        assert_eq!(media_type_of("", br#"{"mediaType":"x/y"}"#), "x/y");
        assert_eq!(
            media_type_of("application/json", br#"{"manifests":[]}"#),
            MANIFEST_MEDIA_TYPES[0]
        );
        assert_eq!(
            media_type_of("", br#"{"layers":[]}"#),
            MANIFEST_MEDIA_TYPES[2]
        );
        // Hostile documents: wrong types, garbage, huge media types.
        assert_eq!(media_type_of("", br#"{"mediaType":5}"#), "");
        assert_eq!(media_type_of("text/plain", b"\xff\xfe"), "text/plain");
        let long = format!(r#"{{"mediaType":"{}"}}"#, "a".repeat(1000));
        assert_eq!(media_type_of("", long.as_bytes()), MANIFEST_MEDIA_TYPES[2]);
    }
}
