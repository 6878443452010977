//! Authentication: bearer tokens from a token server, Basic, and redirects that must
//! not carry credentials.

use super::*;
use crate::image::registry::RegistryError;

const BASIC_UP: &str = "Basic dTpw"; // u:p

/// A registry that wants `Bearer good-token`, pointing at `realm` for it.
fn bearer_registry(realm: String) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let routes = registry_routes("app");
    move |req: &Request| {
        if req.header("authorization") == Some("Bearer good-token") {
            return routes(req);
        }
        let challenge = format!(
            r#"Bearer realm="{realm}",service="fake.registry",scope="repository:app:pull""#
        );
        Reply::new(
            401,
            &[
                ("WWW-Authenticate", &challenge),
                ("Content-Type", "application/json"),
            ],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
    }
}

/// A token server that hands out `good-token` to anyone (or only to u:p when `basic`).
fn token_server(basic: bool) -> Server {
    serve(move |req: &Request| {
        if req.path() != "/token" {
            return Reply::status(404);
        }
        if basic && req.header("authorization") != Some(BASIC_UP) {
            return Reply::new(401, &[], r#"{"details":"incorrect username or password"}"#);
        }
        Reply::new(
            200,
            &[],
            r#"{"token":"good-token","access_token":"ignored","expires_in":300}"#,
        )
    })
}

#[test]
fn bearer_tokens_come_from_the_realm_and_are_cached() {
    let tokens = token_server(false);
    let registry = serve(bearer_registry(format!(
        "http://{}/token",
        tokens.authority()
    )));
    let reg = client(&registry, "");
    let r = reference(&registry, "app:v1");
    assert_eq!(reg.fetch_manifest(&r).expect("fetch").bytes, MANIFEST);
    assert_eq!(reg.resolve(&r).expect("resolve").digest, manifest_digest());
    let blob = reg
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect("blob");
    assert_eq!(read_all(blob).expect("read"), BLOB);

    let asked = tokens.requests();
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
    let seen = registry.requests();
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
    let registry = serve(bearer_registry(format!(
        "http://{}/token",
        tokens.authority()
    )));
    let creds = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: p }}\n",
        registry.authority()
    );
    client(&registry, &creds)
        .fetch_manifest(&reference(&registry, "app:v1"))
        .expect("fetch");
    assert_eq!(tokens.requests()[0].header("authorization"), Some(BASIC_UP));
    assert!(
        registry
            .requests()
            .iter()
            .all(|s| s.header("authorization") != Some(BASIC_UP)),
        "credentials went to the registry"
    );

    let wrong = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: nope }}\n",
        registry.authority()
    );
    let e = client(&registry, &wrong)
        .fetch_manifest(&reference(&registry, "app:v1"))
        .expect_err("refused");
    assert_eq!(e.status(), Some(401));
    assert_eq!(
        e.to_string(),
        format!(
            "fetch token at {}: HTTP 401: incorrect username or password",
            tokens.authority()
        )
    );
}

#[test]
fn an_identity_token_is_exchanged_by_post() {
    let tokens = serve(|req: &Request| {
        let form = String::from_utf8_lossy(&req.body).into_owned();
        if req.method == "POST"
            && form.contains("grant_type=refresh_token")
            && form.contains("refresh_token=secret%2Fone")
        {
            Reply::new(200, &[], r#"{"access_token":"good-token"}"#)
        } else {
            Reply::status(400)
        }
    });
    let registry = serve(bearer_registry(format!(
        "http://{}/token",
        tokens.authority()
    )));
    let yaml = format!(
        "configs:\n  \"{}\":\n    auth: {{ identity_token: secret/one }}\n",
        registry.authority()
    );
    client(&registry, &yaml)
        .fetch_manifest(&reference(&registry, "app:v1"))
        .expect("fetch");
    let form = String::from_utf8_lossy(&tokens.requests()[0].body).into_owned();
    assert!(
        form.contains("scope=repository%3Aapp%3Apull") && form.contains("service=fake.registry"),
        "{form}"
    );
}

#[test]
fn hostile_token_servers_and_challenges_are_errors() {
    for answer in [&b"not json"[..], b"{}", br#"{"token":"a\nb"}"#, b"[1,2]"] {
        let tokens = serve(move |_: &Request| Reply::new(200, &[], answer));
        let registry = serve(bearer_registry(format!(
            "http://{}/token",
            tokens.authority()
        )));
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
    let huge = serve(|_: &Request| Reply::endless_chunks(8 << 20));
    let registry = serve(bearer_registry(format!(
        "http://{}/token",
        huge.authority()
    )));
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
            serve(move |_: &Request| Reply::new(401, &[("WWW-Authenticate", challenge)], ""));
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
    let registry = serve(move |req: &Request| {
        if req.header("authorization") == Some(BASIC_UP) {
            routes(req)
        } else {
            Reply::new(
                401,
                &[("WWW-Authenticate", r#"Basic realm="Registry Realm""#)],
                "",
            )
        }
    });
    let creds = format!(
        "configs:\n  \"{}\":\n    auth: {{ auth: dTpw }}\n",
        registry.authority()
    );
    let reg = client(&registry, &creds);
    reg.ping().expect("ping");
    reg.fetch_manifest(&reference(&registry, "app:v1"))
        .expect("fetch");
    let unauthenticated = registry
        .requests()
        .iter()
        .filter(|s| s.header("authorization").is_none())
        .count();
    assert_eq!(
        unauthenticated, 1,
        "credentials are sent up front once the host asked"
    );

    let wrong = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: bad }}\n",
        registry.authority()
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
    let cdn = serve(|req: &Request| {
        if req.path() == "/storage/blob" && req.target.contains("sig=abc") {
            Reply::new(200, &[], BLOB)
        } else {
            Reply::status(403)
        }
    });
    let tokens = token_server(false);
    let cdn_host = cdn.authority();
    let routes = bearer_registry(format!("http://{}/token", tokens.authority()));
    let registry = serve(move |req: &Request| {
        if req.path().contains("/blobs/")
            && req.header("authorization") == Some("Bearer good-token")
        {
            // Relative first, then absolute to another host.
            return if req.target.ends_with("?hop=2") {
                Reply::new(
                    302,
                    &[("Location", &format!("//{cdn_host}/storage/blob?sig=abc"))],
                    "",
                )
            } else {
                Reply::new(307, &[("Location", "./x?hop=2")], "")
            };
        }
        routes(req)
    });
    let reg = client(&registry, "");
    let blob = reg
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect("blob");
    assert_eq!(blob.host(), cdn.authority());
    assert_eq!(read_all(blob).expect("read"), BLOB);
    assert!(
        registry
            .requests()
            .iter()
            .any(|s| s.path() == "/v2/app/blobs/x")
    );
    let at_cdn = cdn.requests();
    assert_eq!(at_cdn.len(), 1);
    assert!(
        at_cdn[0].header("authorization").is_none(),
        "{:?}",
        at_cdn[0]
    );

    let looping = serve(|_: &Request| Reply::new(302, &[("Location", "/again")], ""));
    let e = client(&looping, "")
        .fetch_blob("app", &Digest::sha256(BLOB), None)
        .expect_err("loop");
    assert!(matches!(e, RegistryError::TooManyRedirects { .. }), "{e}");
    for location in ["file:///etc/passwd", "http://u:p@evil/x", ""] {
        let bad = serve(move |_: &Request| Reply::new(302, &[("Location", location)], ""));
        let e = client(&bad, "")
            .fetch_blob("app", &Digest::sha256(BLOB), None)
            .expect_err("bad location");
        assert!(
            matches!(e, RegistryError::Protocol { .. }),
            "{location:?}: {e}"
        );
    }
}
