//! Pushing to a canned registry: uploads with relative and absolute locations, bearer
//! tokens with push scope, manifests, data of the wrong size.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::image::registry::{BlobPush, RegistryError};

/// What the canned registry keeps: blobs by digest, manifests by path.
type Store = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A registry that keeps what is pushed. `absolute` makes upload locations absolute
/// URLs; `token` demands `Bearer push-token` (from the realm at `token`) for writes.
fn push_registry(absolute: bool, token: Option<String>) -> (Server, Store) {
    let store: Store = Arc::default();
    let kept = store.clone();
    let own_host: Arc<Mutex<String>> = Arc::default();
    let host = own_host.clone();
    let server = serve(move |req: &Request| {
        let writing = req.method == "POST" || req.method == "PUT";
        if let Some(realm) = &token
            && writing
            && req.header("authorization") != Some("Bearer push-token")
        {
            let challenge = format!(r#"Bearer realm="{realm}",service="s""#);
            return Reply::new(401, &[("WWW-Authenticate", &challenge)], "");
        }
        let mut store = kept.lock().expect("store");
        let path = req.path().to_string();
        match (req.method.as_str(), path.as_str()) {
            ("HEAD", p) if p.contains("/blobs/") => {
                let key = p.rsplit('/').next().unwrap_or_default();
                Reply::status(if store.contains_key(key) { 200 } else { 404 })
            }
            ("POST", "/v2/app/blobs/uploads/") if req.target.contains("mount=") => {
                let from_ok = req.target.contains("from=base");
                Reply::new(
                    if from_ok { 201 } else { 202 },
                    &[("Location", "/v2/app/blobs/uploads/m1")],
                    "",
                )
            }
            ("POST", "/v2/app/blobs/uploads/") => {
                let location = if absolute {
                    format!(
                        "http://{}/upload/session-1?_state=a%3Db",
                        host.lock().expect("host")
                    )
                } else {
                    "session-1?_state=a%3Db".to_string()
                };
                Reply::new(
                    202,
                    &[("Location", &location), ("Docker-Upload-UUID", "1")],
                    "",
                )
            }
            ("PUT", p) if p == "/upload/session-1" || p == "/v2/app/blobs/uploads/session-1" => {
                let Some(digest) = req.target.split("digest=").nth(1) else {
                    return Reply::status(400);
                };
                let digest = digest.replace("%3A", ":");
                if !req.target.contains("_state=a%3Db")
                    || Digest::sha256(&req.body).to_string() != digest
                {
                    return Reply::new(
                        400,
                        &[],
                        r#"{"errors":[{"code":"DIGEST_INVALID","message":"digest did not match"}]}"#,
                    );
                }
                store.insert(digest, req.body.clone());
                Reply::status(201)
            }
            ("PUT", p) if p.starts_with("/v2/app/manifests/") => {
                let digest = Digest::sha256(&req.body).to_string();
                store.insert(p.to_string(), req.body.clone());
                Reply::new(201, &[("Docker-Content-Digest", &digest)], "")
            }
            _ => Reply::status(404),
        }
    });
    *own_host.lock().expect("host") = server.authority();
    (server, store)
}

#[test]
fn blobs_upload_with_relative_and_absolute_locations() {
    for absolute in [false, true] {
        let (server, store) = push_registry(absolute, None);
        let reg = client(&server, "");
        let digest = Digest::sha256(BLOB);
        assert!(!reg.blob_exists("app", &digest).expect("exists"));
        let mut reports = Vec::new();
        let done = reg
            .push_blob(
                "app",
                &digest,
                BLOB.len() as u64,
                &mut &BLOB[..],
                &mut |n| reports.push(n),
            )
            .expect("push");
        assert_eq!(done, BlobPush::Uploaded);
        assert_eq!(reports.last(), Some(&(BLOB.len() as u64)));
        assert_eq!(
            store
                .lock()
                .expect("store")
                .get(&digest.to_string())
                .map(Vec::as_slice),
            Some(BLOB)
        );
        let put = server
            .requests()
            .into_iter()
            .find(|s| s.method == "PUT")
            .expect("a PUT");
        assert_eq!(
            put.header("content-length"),
            Some(BLOB.len().to_string().as_str())
        );
        assert!(put.header("transfer-encoding").is_none());
        assert!(reg.blob_exists("app", &digest).expect("exists"));
        let again = reg
            .push_blob("app", &digest, 1, &mut &b"x"[..], &mut |_| {})
            .expect("push again");
        assert_eq!(again, BlobPush::Existed);
    }
}

#[test]
fn data_of_the_wrong_size_is_a_source_error() {
    let (server, _) = push_registry(false, None);
    let reg = client(&server, "");
    let digest = Digest::sha256(BLOB);
    let e = reg
        .push_blob(
            "app",
            &digest,
            BLOB.len() as u64 + 10,
            &mut &BLOB[..],
            &mut |_| {},
        )
        .expect_err("short data");
    assert!(matches!(e, RegistryError::Source { .. }), "{e:?}");
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let e = reg
        .push_blob("app", &digest, 5, &mut Failing, &mut |_| {})
        .expect_err("failing source");
    assert!(
        e.to_string().contains("disk on fire") && !e.is_retryable(),
        "{e}"
    );
    let wrong = Digest::sha256(b"not the data");
    let e = reg
        .push_blob(
            "app",
            &wrong,
            BLOB.len() as u64,
            &mut &BLOB[..],
            &mut |_| {},
        )
        .expect_err("bad digest");
    assert_eq!(
        e.to_string(),
        format!(
            "upload blob at {}: HTTP 400: DIGEST_INVALID: digest did not match",
            server.authority()
        )
    );
}

#[test]
fn pushes_fetch_a_token_with_push_scope() {
    let tokens = serve(|req: &Request| {
        if req.target.contains("scope=repository%3Aapp%3Apull%2Cpush") {
            Reply::new(200, &[], r#"{"token":"push-token"}"#)
        } else {
            Reply::status(403)
        }
    });
    let (server, store) = push_registry(true, Some(format!("http://{}/token", tokens.authority())));
    let reg = client(&server, "");
    let digest = Digest::sha256(BLOB);
    reg.push_blob(
        "app",
        &digest,
        BLOB.len() as u64,
        &mut &BLOB[..],
        &mut |_| {},
    )
    .expect("push");
    let r = reference(&server, "app:v1");
    assert_eq!(
        reg.push_manifest(&r, MANIFEST, OCI_MANIFEST)
            .expect("manifest"),
        manifest_digest()
    );
    assert_eq!(tokens.requests().len(), 1, "the token is reused");
    let stored = store.lock().expect("store");
    assert_eq!(
        stored.get("/v2/app/manifests/v1").map(Vec::as_slice),
        Some(MANIFEST)
    );
    let put = server
        .requests()
        .into_iter()
        .rfind(|s| s.method == "PUT")
        .expect("PUT");
    assert_eq!(put.header("content-type"), Some(OCI_MANIFEST));
}

#[test]
fn manifests_are_checked_before_they_are_pushed() {
    let (server, _) = push_registry(false, None);
    let reg = client(&server, "");
    let wrong = reference(&server, &format!("app@{}", Digest::sha256(b"x")));
    assert!(matches!(
        reg.push_manifest(&wrong, MANIFEST, OCI_MANIFEST),
        Err(RegistryError::DigestMismatch { .. })
    ));
    let huge = vec![b' '; 5 << 20];
    assert!(matches!(
        reg.push_manifest(&reference(&server, "app:v1"), &huge, OCI_MANIFEST),
        Err(RegistryError::TooLarge { .. })
    ));
    assert!(server.requests().is_empty());
}

#[test]
fn mounts_report_whether_the_registry_linked_the_blob() {
    let (server, _) = push_registry(false, None);
    let reg = client(&server, "");
    let digest = Digest::sha256(BLOB);
    assert!(reg.mount_blob("app", &digest, "base").expect("mount"));
    assert!(
        !reg.mount_blob("app", &digest, "elsewhere")
            .expect("mount refused")
    );
    assert!(
        server.requests().iter().any(|s| s.method == "DELETE"),
        "the started upload is cancelled"
    );
}
