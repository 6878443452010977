//! The client against servers: canned ones whose answers are written here (on the
//! test harness's `tests::http` server), and Debian's `docker-registry` (distribution
//! 2.8) when it is installed (`distribution`).

mod auth;
mod distribution;
mod pull;
mod push;
mod tls;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{RegistriesConfig, Registry, RegistryOptions, Timeouts};
use crate::image::digest::Digest;
use crate::image::reference::Reference;
use ::tests::http::{Options, Reply, Request, Server};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
const BLOB: &[u8] = b"the bytes of a layer";

fn options(yaml: &str, plain_http: bool) -> RegistryOptions {
    let config = RegistriesConfig::from_yaml(yaml, Path::new("test-registries.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    RegistryOptions {
        config: Arc::new(config),
        plain_http,
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(5),
        },
        ..RegistryOptions::default()
    }
}

/// A canned server answering with `handler` over plain HTTP (see [`serve_with`]).
fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
    serve_with(None, handler)
}

/// A canned server answering with `handler`, over HTTPS when `tls` is given.
/// Connections are kept alive between answers, as registries keep them, so that the
/// client may reuse them as it would in use (after reading a refusal's body, say).
fn serve_with(
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> Server {
    let options = Options {
        tls,
        keep_alive: true,
    };
    Server::start_with(options, handler)
}

fn client(server: &Server, yaml: &str) -> Registry {
    Registry::new(&server.authority(), options(yaml, true)).unwrap_or_else(|e| panic!("{e}"))
}

fn reference(server: &Server, rest: &str) -> Reference {
    format!("{}/{rest}", server.authority())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn manifest_digest() -> Digest {
    Digest::sha256(MANIFEST)
}

fn not_found() -> Reply {
    Reply::new(
        404,
        &[("Content-Type", "application/json")],
        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
    )
}

/// An anonymous registry serving `app:v1` (MANIFEST) and BLOB, under `prefix` (a
/// repository name, `app` or a rewritten one).
fn registry_routes(repository: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req: &Request| {
        let manifests = format!("/v2/{repository}/manifests/");
        let blob = format!("/v2/{repository}/blobs/{}", Digest::sha256(BLOB));
        let digest = manifest_digest().to_string();
        let path = req.path();
        if path == "/v2/" {
            Reply::new(200, &[], "{}")
        } else if path == format!("{manifests}v1") || path == format!("{manifests}{digest}") {
            let len = MANIFEST.len().to_string();
            Reply::new(
                200,
                &[
                    ("Content-Type", OCI_MANIFEST),
                    ("Docker-Content-Digest", &digest),
                    ("Content-Length", &len),
                ],
                MANIFEST,
            )
        } else if path == blob {
            Reply::new(200, &[], BLOB)
        } else {
            not_found()
        }
    }
}

fn read_all(mut r: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn the_client_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>() {}
    shared::<Registry>();
    sent::<super::BlobReader>();
    shared::<super::RegistryError>();
}
