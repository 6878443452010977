//! Authentication: bearer tokens from a token server, Basic, and redirects that must
//! not carry credentials.

use super::*;
use crate::image::registry::RegistryError;

const BASIC_UP: &str = "Basic dTpw"; // u:p

/// A registry that wants `Bearer good-token`, pointing at `realm` for it.
fn bearer_registry(realm: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let routes = registry_routes("app");
    move |req: &Seen| {
        if req.header("authorization") == Some("Bearer good-token") {
            return routes(req);
        }
        let challenge = format!(
            r#"Bearer realm="{realm}",service="fake.registry",scope="repository:app:pull""#
        );
        Reply::with(
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            &[
                ("WWW-Authenticate", &challenge),
                ("Content-Type", "application/json"),
            ],
        )
    }
}

/// A token server that hands out `good-token` to anyone (or only to u:p when `basic`).
fn token_server(basic: bool) -> Server {
    Server::start(move |req: &Seen| {
        if req.path() != "/token" {
            return Reply::status(404);
        }
        if basic && req.header("authorization") != Some(BASIC_UP) {
            return Reply::with(401, r#"{"details":"incorrect username or password"}"#, &[]);
        }
        Reply::ok(
            r#"{"token":"good-token","access_token":"ignored","expires_in":300}"#,
            &[],
        )
    })
}

#[test]
fn bearer_tokens_come_from_the_realm_and_are_cached() {
    let tokens = token_server(false);
    let registry = Server::start(bearer_registry(format!("http://{}/token", tokens.host())));
    let reg = client(&registry, "");
    let r = reference(&registry, "app:v1");
    assert_eq!(reg.fetch_manifest(&r).expect("fetch").bytes, MANIFEST);
    assert_eq!(reg.resolve(&r).expect("resolve").digest, manifest_digest());
    let blob = reg
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect("blob");
    assert_eq!(read_all(blob).expect("read"), BLOB);

    let asked = tokens.seen();
    assert_eq!(asked.len(), 1, "one token for one scope: {asked:?}");
    assert!(
        asked[0].target.contains("service=fake.registry"),
        "{}",
        asked[0].target
    );
    assert!(
        asked[0].target.contains("scope=repository%3Aapp%3Apull"),
        "{}",
        asked[0].target
    );
    assert!(asked[0].header("authorization").is_none());
    let seen = registry.seen();
    assert_eq!(
        seen.iter()
            .filter(|s| s.header("authorization").is_none())
            .count(),
        1,
        "only the first request goes without"
    );
}

#[test]
fn configured_credentials_go_to_the_token_server() {
    let tokens = token_server(true);
    let registry = Server::start(bearer_registry(format!("http://{}/token", tokens.host())));
    let creds = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: p }}\n",
        registry.host()
    );
    client(&registry, &creds)
        .fetch_manifest(&reference(&registry, "app:v1"))
        .expect("fetch");
    assert_eq!(tokens.seen()[0].header("authorization"), Some(BASIC_UP));
    assert!(
        registry
            .seen()
            .iter()
            .all(|s| s.header("authorization") != Some(BASIC_UP)),
        "credentials went to the registry"
    );

    let wrong = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: nope }}\n",
        registry.host()
    );
    let e = client(&registry, &wrong)
        .fetch_manifest(&reference(&registry, "app:v1"))
        .expect_err("refused");
    assert_eq!(e.status(), Some(401));
    assert_eq!(
        e.to_string(),
        format!(
            "fetch token at {}: HTTP 401: incorrect username or password",
            tokens.host()
        )
    );
}

#[test]
fn an_identity_token_is_exchanged_by_post() {
    let tokens = Server::start(|req: &Seen| {
        let form = String::from_utf8_lossy(&req.body).into_owned();
        if req.method == "POST"
            && form.contains("grant_type=refresh_token")
            && form.contains("refresh_token=secret%2Fone")
        {
            Reply::ok(r#"{"access_token":"good-token"}"#, &[])
        } else {
            Reply::status(400)
        }
    });
    let registry = Server::start(bearer_registry(format!("http://{}/token", tokens.host())));
    let yaml = format!(
        "configs:\n  \"{}\":\n    auth: {{ identity_token: secret/one }}\n",
        registry.host()
    );
    client(&registry, &yaml)
        .fetch_manifest(&reference(&registry, "app:v1"))
        .expect("fetch");
    let form = String::from_utf8_lossy(&tokens.seen()[0].body).into_owned();
    assert!(
        form.contains("scope=repository%3Aapp%3Apull") && form.contains("service=fake.registry"),
        "{form}"
    );
}

#[test]
fn hostile_token_servers_and_challenges_are_errors() {
    for answer in [&b"not json"[..], b"{}", br#"{"token":"a\nb"}"#, b"[1,2]"] {
        let tokens = Server::start(move |_: &Seen| Reply::ok(answer, &[]));
        let registry = Server::start(bearer_registry(format!("http://{}/token", tokens.host())));
        let e = client(&registry, "").ping().expect_err("bad token answer");
        assert!(
            matches!(
                e,
                RegistryError::Auth {
                    step: "fetch token",
                    ..
                }
            ),
            "{e}"
        );
    }
    let huge = Server::start(|_: &Seen| Reply::EndlessChunks {
        headers: Vec::new(),
        total: 8 << 20,
    });
    let registry = Server::start(bearer_registry(format!("http://{}/token", huge.host())));
    assert!(matches!(
        client(&registry, "").ping(),
        Err(RegistryError::TooLarge { .. })
    ));
    for challenge in [
        "Bearer service=\"x\"",
        "Bearer realm=\"ftp://x/\"",
        "Digest realm=x",
        "\"garbage",
        "",
    ] {
        let registry =
            Server::start(move |_: &Seen| Reply::with(401, "", &[("WWW-Authenticate", challenge)]));
        let e = client(&registry, "").ping().expect_err("bad challenge");
        assert!(
            matches!(e, RegistryError::Auth { .. }),
            "{challenge:?}: {e}"
        );
    }
    // A realm over plain HTTP for a registry spoken to over HTTPS is refused: that is
    // checked before any connection, so a registry that never answers TLS is enough.
}

#[test]
fn basic_auth_sends_the_configured_credentials() {
    let routes = registry_routes("app");
    let registry = Server::start(move |req: &Seen| {
        if req.header("authorization") == Some(BASIC_UP) {
            routes(req)
        } else {
            Reply::with(
                401,
                "",
                &[("WWW-Authenticate", r#"Basic realm="Registry Realm""#)],
            )
        }
    });
    let creds = format!(
        "configs:\n  \"{}\":\n    auth: {{ auth: dTpw }}\n",
        registry.host()
    );
    let reg = client(&registry, &creds);
    reg.ping().expect("ping");
    reg.fetch_manifest(&reference(&registry, "app:v1"))
        .expect("fetch");
    let unauthenticated = registry
        .seen()
        .iter()
        .filter(|s| s.header("authorization").is_none())
        .count();
    assert_eq!(
        unauthenticated, 1,
        "credentials are sent up front once the host asked"
    );

    let wrong = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: bad }}\n",
        registry.host()
    );
    let e = client(&registry, &wrong)
        .ping()
        .expect_err("wrong password");
    assert_eq!(e.status(), Some(401), "{e}");
    let e = client(&registry, "").ping().expect_err("no credentials");
    assert!(
        e.to_string().contains("asks for a user name and password"),
        "{e}"
    );
}

#[test]
fn blob_redirects_to_another_host_carry_no_authorization() {
    let cdn = Server::start(|req: &Seen| {
        if req.path() == "/storage/blob" && req.target.contains("sig=abc") {
            Reply::ok(BLOB, &[])
        } else {
            Reply::status(403)
        }
    });
    let tokens = token_server(false);
    let cdn_host = cdn.host();
    let routes = bearer_registry(format!("http://{}/token", tokens.host()));
    let registry = Server::start(move |req: &Seen| {
        if req.path().contains("/blobs/")
            && req.header("authorization") == Some("Bearer good-token")
        {
            // Relative first, then absolute to another host.
            return if req.target.ends_with("?hop=2") {
                Reply::with(
                    302,
                    "",
                    &[("Location", &format!("//{cdn_host}/storage/blob?sig=abc"))],
                )
            } else {
                Reply::with(307, "", &[("Location", "./x?hop=2")])
            };
        }
        routes(req)
    });
    let reg = client(&registry, "");
    let blob = reg
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect("blob");
    assert_eq!(blob.host(), cdn.host());
    assert_eq!(read_all(blob).expect("read"), BLOB);
    assert!(
        registry
            .seen()
            .iter()
            .any(|s| s.path() == "/v2/app/blobs/x")
    );
    let at_cdn = cdn.seen();
    assert_eq!(at_cdn.len(), 1);
    assert!(
        at_cdn[0].header("authorization").is_none(),
        "{:?}",
        at_cdn[0]
    );

    let looping = Server::start(|_: &Seen| Reply::with(302, "", &[("Location", "/again")]));
    let e = client(&looping, "")
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect_err("loop");
    assert!(matches!(e, RegistryError::TooManyRedirects { .. }), "{e}");
    for location in ["file:///etc/passwd", "http://u:p@evil/x", ""] {
        let bad = Server::start(move |_: &Seen| Reply::with(302, "", &[("Location", location)]));
        let e = client(&bad, "")
            .fetch_blob("app", &Digest::sha256(BLOB), None)
            .expect_err("bad location");
        assert!(
            matches!(e, RegistryError::Protocol { .. }),
            "{location:?}: {e}"
        );
    }
}
