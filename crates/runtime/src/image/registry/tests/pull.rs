//! Pulling: manifests, blobs, mirrors, rewrites and servers that misbehave.

use super::*;
use crate::image::registry::RegistryError;

#[test]
fn anonymous_registry_serves_manifests_and_blobs() {
    let server = serve(registry_routes("app"));
    let reg = client(&server, "");
    reg.ping().expect("ping");
    let r = reference(&server, "app:v1");
    let d = reg.resolve(&r).expect("resolve");
    assert_eq!(
        (d.digest.clone(), d.media_type.as_str(), d.size),
        (manifest_digest(), OCI_MANIFEST, MANIFEST.len() as u64)
    );
    let f = reg.fetch_manifest(&r).expect("fetch");
    assert_eq!(
        (f.bytes.as_slice(), f.digest),
        (MANIFEST, manifest_digest())
    );
    let by_digest = reference(&server, &format!("app@{}", manifest_digest()));
    assert_eq!(
        reg.fetch_manifest(&by_digest).expect("by digest").bytes,
        MANIFEST
    );
    let blob = reg
        .fetch_blob("app", &Digest::sha256(BLOB), Some(BLOB.len() as u64))
        .expect("blob");
    assert_eq!(blob.content_length(), Some(BLOB.len() as u64));
    assert_eq!(read_all(blob).expect("read"), BLOB);

    let seen = server.requests();
    let head = seen.iter().find(|s| s.method == "HEAD").expect("a HEAD");
    let accept = head.header("accept").expect("accept");
    for t in crate::image::registry::MANIFEST_MEDIA_TYPES {
        assert!(accept.contains(t), "{accept}");
    }
    assert!(seen.iter().all(|s| s.header("authorization").is_none()));
    assert!(seen.iter().all(|s| {
        s.header("user-agent")
            .is_some_and(|u| u.starts_with("moor/"))
    }));
}

#[test]
fn registry_errors_carry_the_step_host_status_and_message() {
    let server = serve(registry_routes("app"));
    let reg = client(&server, "");
    let e = reg
        .fetch_manifest(&reference(&server, "app:nope"))
        .expect_err("404");
    assert!(e.is_not_found() && !e.is_retryable());
    let text = e.to_string();
    assert_eq!(
        text,
        format!(
            "fetch manifest at {}: HTTP 404: MANIFEST_UNKNOWN: manifest unknown",
            server.authority()
        )
    );
    let other = reference(&server, "app:v1");
    let wrong = Registry::new("elsewhere:5000", options("", true)).expect("client");
    assert!(matches!(
        wrong.fetch_manifest(&other),
        Err(RegistryError::WrongRegistry { .. })
    ));
    for bad in ["../x", "a?b=c", "a/../../v2", "A", "", "a b", "a#b"] {
        let e = reg
            .fetch_blob(bad, &Digest::sha256(BLOB), None)
            .expect_err("bad repository");
        assert!(
            matches!(e, RegistryError::InvalidName { .. }),
            "{bad:?}: {e}"
        );
        assert!(matches!(
            reg.mount_blob("app", &Digest::sha256(BLOB), bad),
            Err(RegistryError::InvalidName { .. })
        ));
    }
    assert!(server.requests().iter().all(|s| !s.target.contains("..")));
    assert!(Registry::new("not a host", options("", true)).is_err());
}

#[test]
fn resolve_falls_back_to_get_when_head_has_no_digest() {
    let server = serve(|req: &Request| {
        if req.method == "HEAD" {
            Reply::status(405)
        } else {
            Reply::new(200, &[("Content-Type", OCI_MANIFEST)], MANIFEST)
        }
    });
    let d = client(&server, "")
        .resolve(&reference(&server, "app:v1"))
        .expect("resolve");
    assert_eq!(
        (d.digest, d.size),
        (manifest_digest(), MANIFEST.len() as u64)
    );
}

#[test]
fn a_mirror_that_404s_falls_back_to_the_origin() {
    let mirror = serve(|_: &Request| not_found());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let origin = serve(registry_routes("app"));
    let yaml = format!(
        "mirrors:\n  \"{}\":\n    endpoint: [\"http://{}\", \"http://{}\"]\n",
        origin.authority(),
        dead_addr,
        mirror.authority()
    );
    let reg = client(&origin, &yaml);
    let f = reg
        .fetch_manifest(&reference(&origin, "app:v1"))
        .expect("fetch");
    assert_eq!(f.bytes, MANIFEST);
    assert!(
        mirror
            .requests()
            .iter()
            .any(|s| s.path() == "/v2/app/manifests/v1")
    );
    assert!(
        origin
            .requests()
            .iter()
            .any(|s| s.path() == "/v2/app/manifests/v1")
    );
    let blob = reg
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect("blob");
    assert_eq!(read_all(blob).expect("read"), BLOB);
}

#[test]
fn a_mirror_with_a_rewrite_is_asked_for_the_rewritten_name() {
    let mirror = serve(registry_routes("edge/app"));
    let origin = serve(|_: &Request| Reply::status(500));
    let yaml = format!(
        "mirrors:\n  \"{}\":\n    endpoint: [\"http://{}\"]\n    rewrite:\n      \"^(app)$\": \"edge/$1\"\n",
        origin.authority(),
        mirror.authority()
    );
    let reg = client(&origin, &yaml);
    let r = reference(&origin, "app:v1");
    assert_eq!(reg.fetch_manifest(&r).expect("fetch").bytes, MANIFEST);
    assert_eq!(reg.resolve(&r).expect("resolve").digest, manifest_digest());
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
    assert!(
        mirror
            .requests()
            .iter()
            .all(|s| s.path().starts_with("/v2/edge/app/"))
    );
}

#[test]
fn a_mirror_with_a_wrong_digest_falls_back_and_the_origin_is_checked() {
    let liar = |req: &Request| {
        let wrong = Digest::sha256(b"something else").to_string();
        let _ = req;
        Reply::new(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", &wrong),
            ],
            MANIFEST,
        )
    };
    let mirror = serve(liar);
    let origin = serve(registry_routes("app"));
    let yaml = format!(
        "mirrors:\n  \"{}\":\n    endpoint: [\"http://{}\"]\n",
        origin.authority(),
        mirror.authority()
    );
    let reg = client(&origin, &yaml);
    assert_eq!(
        reg.fetch_manifest(&reference(&origin, "app:v1"))
            .expect("fetch")
            .bytes,
        MANIFEST
    );

    let lying_origin = serve(liar);
    let e = client(&lying_origin, "")
        .fetch_manifest(&reference(&lying_origin, "app:v1"))
        .expect_err("mismatch");
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    let by_digest = reference(&origin, &format!("app@{}", Digest::sha256(b"other")));
    let e = reg
        .fetch_manifest(&by_digest)
        .expect_err("content is not the digest asked for");
    assert!(
        e.is_not_found() || matches!(e, RegistryError::DigestMismatch { .. }),
        "{e}"
    );
    let served_anything =
        serve(|_: &Request| Reply::new(200, &[("Content-Type", OCI_MANIFEST)], MANIFEST));
    let r = reference(
        &served_anything,
        &format!("app@{}", Digest::sha256(b"other")),
    );
    let e = client(&served_anything, "")
        .fetch_manifest(&r)
        .expect_err("mismatch");
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    let garbage_digest = serve(|_: &Request| {
        Reply::new(
            200,
            &[("Docker-Content-Digest", "sha256:../../etc")],
            MANIFEST,
        )
    });
    let e = client(&garbage_digest, "")
        .fetch_manifest(&reference(&garbage_digest, "a:b"))
        .expect_err("bad header");
    assert!(matches!(e, RegistryError::Protocol { .. }), "{e}");
}

#[test]
fn huge_manifests_are_refused_without_reading_them() {
    let announced = serve(|_: &Request| Reply::Full {
        status: 200,
        headers: vec![("Content-Length".into(), (1u64 << 40).to_string())],
        body: b"{".to_vec(),
    });
    let e = client(&announced, "")
        .fetch_manifest(&reference(&announced, "a:b"))
        .expect_err("huge");
    assert!(
        matches!(e, RegistryError::TooLarge { limit, .. } if limit == 4 << 20),
        "{e}"
    );
    let streamed = serve(|_: &Request| Reply::endless_chunks(64 << 20));
    let e = client(&streamed, "")
        .fetch_manifest(&reference(&streamed, "a:b"))
        .expect_err("huge");
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
    let blob = client(&announced, "")
        .fetch_blob("a", &Digest::sha256(BLOB), Some(10))
        .expect_err("blob larger than hinted");
    assert!(matches!(blob, RegistryError::TooLarge { .. }), "{blob}");
    let cut = client(&streamed, "")
        .fetch_blob("a", &Digest::sha256(BLOB), Some(100_000))
        .expect("stream");
    assert!(
        read_all(cut).is_err(),
        "a blob past its size hint must fail"
    );
}

#[test]
fn a_half_finished_response_is_a_retryable_error() {
    let server = serve(|_: &Request| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/json\r\n\r\n{\"schema".to_vec())
    });
    let reg = client(&server, "");
    let e = reg
        .fetch_manifest(&reference(&server, "a:b"))
        .expect_err("cut");
    assert!(e.is_retryable(), "{e:?}");
    let blob = reg
        .fetch_blob("a", &Digest::sha256(BLOB), None)
        .expect("headers arrived");
    let e = read_all(blob).expect_err("cut mid-body");
    assert!(e.to_string().contains(&server.authority()), "{e}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let server = serve(|_: &Request| Reply::Hang);
    let mut opts = options("", true);
    opts.timeouts.read = Duration::from_millis(300);
    let reg = Registry::new(&server.authority(), opts).expect("client");
    let e = reg
        .fetch_manifest(&reference(&server, "a:b"))
        .expect_err("timeout");
    assert!(
        matches!(e, RegistryError::Connect { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("fetch manifest at 127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn random_bytes_instead_of_http_are_an_error() {
    let mut noise = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push((x & 0xff) as u8);
    }
    for bytes in [
        noise,
        b"HTTP/1.1 999999999999 \r\n\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        Vec::new(),
    ] {
        let server = serve(move |_: &Request| Reply::Raw(bytes.clone()));
        let e = client(&server, "")
            .fetch_manifest(&reference(&server, "a:b"))
            .expect_err("noise");
        assert!(
            matches!(
                e,
                RegistryError::Connect { .. } | RegistryError::Body { .. }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let server = serve(registry_routes("app"));
    // No --plain-http, nothing in the file: https is spoken to a plain server and fails.
    let reg = Registry::new(&server.authority(), options("", false)).expect("client");
    assert!(reg.ping().is_err());
    let insecure = format!(
        "configs:\n  \"{}\":\n    insecure: true\n",
        server.authority()
    );
    let reg = Registry::new(&server.authority(), options(&insecure, false)).expect("client");
    reg.ping().expect("insecure host speaks http");
    // A redirect to plain HTTP elsewhere is refused when only the registry is insecure.
    let cdn = serve(|_: &Request| Reply::new(200, &[], BLOB));
    let cdn_url = format!("http://{}/blob", cdn.authority());
    let redirecting = serve(move |_: &Request| Reply::new(307, &[("Location", &cdn_url)], ""));
    let insecure = format!(
        "configs:\n  \"{}\":\n    insecure: true\n",
        redirecting.authority()
    );
    let reg = Registry::new(&redirecting.authority(), options(&insecure, false)).expect("client");
    let e = reg
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect_err("plain redirect");
    assert!(matches!(e, RegistryError::PlainHttp { .. }), "{e}");
    assert!(cdn.requests().is_empty());
}
