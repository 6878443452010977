//! `moor image push` and `pull` against a real registry (Debian's `docker-registry`,
//! distribution 2.8) on 127.0.0.1: plain HTTP allowed by registries.yaml or by
//! `--plain-http`, Basic auth with credentials from registries.yaml, bearer tokens
//! from a token server the test runs, and a Docker Hub mirror with a repository
//! rewrite, all without the internet. What is pulled into a fresh data directory has
//! the digest that was pushed, and runs.

#[path = "common/image_util.rs"]
mod image_util;

use base64::Engine as _;
use image_util::{Env, printed_digest};
use tests::registry::{self, Auth, DockerRegistry};
use tests::token::{TokenIssuer, TokenServer};

/// The registry program, or `None` after saying the test is skipped (a failure under
/// `MOOR_TEST_STRICT=1`).
fn program() -> Option<std::path::PathBuf> {
    registry::program()
}

/// `configs: {"HOST": {insecure: true, <extra>}}` for each host.
fn insecure_hosts(hosts: &[(&str, &str)]) -> String {
    let mut yaml = String::from("configs:\n");
    for (host, extra) in hosts {
        yaml.push_str(&format!("  \"{host}\":\n    insecure: true\n{extra}"));
    }
    yaml
}

fn auth_yaml(user: &str, password: &str) -> String {
    format!("    auth:\n      username: {user:?}\n      password: {password:?}\n")
}

#[test]
fn push_and_pull_over_plain_http_keep_the_digest_and_the_image_runs() {
    let Some(env) = Env::new("reg-plain") else {
        return;
    };
    let Some(program) = program() else {
        return;
    };
    let reg = DockerRegistry::start(&program, &env.path("registry"), &Auth::None);
    let host = reg.authority();
    let (_, hello) = env.build_base(&env.data);

    // Plain HTTP because registries.yaml marks the host insecure.
    env.write_registries(&insecure_hosts(&[(&host, "")]));
    let target = format!("{host}/moor/hello:1");
    env.ok(&["tag", "moor.local/hello:latest", &target]);
    let pushed = env.ok(&["push", &target]);
    assert_eq!(printed_digest(&pushed.stdout, &target), hello);
    let again = env.ok(&["push", &target]);
    assert!(
        again.stderr.contains("already there"),
        "a second push sends nothing: {}",
        again.stderr
    );
    let fresh = env.path("pulled-yaml");
    let pulled = env.ok_in(&fresh, &["pull", &target]);
    assert_eq!(printed_digest(&pulled.stdout, &target), hello);
    assert_eq!(env.listed(&fresh), [(target.clone(), hello.clone())]);
    let answer = env.run_hello(&fresh, &target, "from-yaml");
    assert!(answer.contains("hello from moor"), "{answer}");
    env.assert_store_sane(&fresh);

    // Plain HTTP because the command line says so; push under another name (REF TARGET).
    let _ = std::fs::remove_file(&env.registries);
    let target = format!("{host}/plain/hello:2");
    let pushed = env.ok(&["push", "--plain-http", "moor.local/hello:latest", &target]);
    assert_eq!(printed_digest(&pushed.stdout, &target), hello);
    let fresh = env.path("pulled-flag");
    // Without either, moor speaks TLS to the plain-HTTP registry, which fails.
    let refused = env.fails_in(&fresh, &["pull", &target], &host);
    assert!(refused.stdout.is_empty());
    assert!(env.ls(&fresh).is_empty(), "a failed pull tagged something");
    let pulled = env.ok_in(&fresh, &["pull", "--plain-http", &target]);
    assert_eq!(printed_digest(&pulled.stdout, &target), hello);
    let answer = env.run_hello(&fresh, &target, "from-flag");
    assert!(answer.contains("hello from moor"), "{answer}");
    env.assert_store_sane(&fresh);

    // A tag the registry does not have: a clear error naming what is missing.
    env.fails_in(
        &fresh,
        &["pull", "--plain-http", &format!("{host}/plain/hello:nope")],
        "404",
    );
    assert_eq!(env.ls(&fresh).len(), 1);
}

#[test]
fn basic_auth_uses_the_credentials_of_registries_yaml() {
    let Some(env) = Env::new("reg-basic") else {
        return;
    };
    let Some(program) = program() else {
        return;
    };
    let password = "s3cret pass:word";
    let users = vec![("moor".to_string(), password.to_string())];
    let reg = DockerRegistry::start(&program, &env.path("registry"), &Auth::Htpasswd(users));
    let host = reg.authority();
    let (_, hello) = env.build_base(&env.data);
    let target = format!("{host}/auth/hello:1");

    // Without credentials: refused, saying what is missing.
    env.write_registries(&insecure_hosts(&[(&host, "")]));
    env.fails(
        &["push", "moor.local/hello:latest", &target],
        "registries.yaml has none for this host",
    );

    env.write_registries(&insecure_hosts(&[(&host, &auth_yaml("moor", password))]));
    let pushed = env.ok(&["push", "moor.local/hello:latest", &target]);
    assert_eq!(printed_digest(&pushed.stdout, &target), hello);
    let fresh = env.path("pulled");
    let pulled = env.ok_in(&fresh, &["pull", &target]);
    assert_eq!(printed_digest(&pulled.stdout, &target), hello);
    assert_eq!(env.listed(&fresh), [(target.clone(), hello.clone())]);

    // The same credentials as `auth: base64(user:password)`.
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("moor:{password}"));
    env.write_registries(&insecure_hosts(&[(
        &host,
        &format!("    auth:\n      auth: {encoded}\n"),
    )]));
    let other = env.path("pulled-b64");
    env.ok_in(&other, &["pull", &target]);
    assert_eq!(env.listed(&other), [(target.clone(), hello.clone())]);

    // A wrong password: HTTP 401, and nothing tagged or left half-made.
    env.write_registries(&insecure_hosts(&[(&host, &auth_yaml("moor", "wrong"))]));
    let wrong = env.path("wrong");
    env.fails_in(&wrong, &["pull", &target], "HTTP 401");
    assert!(env.ls(&wrong).is_empty());
    env.assert_store_sane(&wrong);
    env.fails(
        &[
            "push",
            "moor.local/hello:latest",
            &format!("{host}/auth/other:1"),
        ],
        "HTTP 401",
    );
}

#[test]
fn bearer_tokens_come_from_the_token_server_the_registry_names() {
    let Some(env) = Env::new("reg-token") else {
        return;
    };
    let Some(program) = program() else {
        return;
    };
    let issuer = TokenIssuer::new("moor-test-issuer", "moor-test-registry");
    let tokens = TokenServer::start(issuer, "robot", "t0ken-pass");
    let auth = Auth::Token {
        realm: tokens.realm(),
        service: tokens.issuer().service().to_string(),
        issuer: tokens.issuer().issuer().to_string(),
        root_cert_pem: tokens.issuer().cert_pem().to_string(),
    };
    let reg = DockerRegistry::start(&program, &env.path("registry"), &auth);
    let host = reg.authority();
    let (_, hello) = env.build_base(&env.data);
    let target = format!("{host}/tok/hello:1");
    let token_host = tokens.authority();

    env.write_registries(&insecure_hosts(&[
        (&host, &auth_yaml("robot", "t0ken-pass")),
        (&token_host, ""),
    ]));
    let pushed = env.ok(&["push", "moor.local/hello:latest", &target]);
    assert_eq!(
        printed_digest(&pushed.stdout, &target),
        hello,
        "registry log:\n{}",
        reg.log()
    );
    let fresh = env.path("pulled");
    let pulled = env.ok_in(&fresh, &["pull", &target]);
    assert_eq!(printed_digest(&pulled.stdout, &target), hello);
    let answer = env.run_hello(&fresh, &target, "tok");
    assert!(answer.contains("hello from moor"), "{answer}");

    let asked: Vec<(Vec<String>, Vec<String>)> = tokens
        .requests()
        .iter()
        .map(|r| (r.query("service"), r.query("scope")))
        .collect();
    assert!(
        asked.contains(&(
            vec!["moor-test-registry".into()],
            vec!["repository:tok/hello:pull,push".into()]
        )),
        "push asked for {asked:?}"
    );
    assert!(
        asked.contains(&(
            vec!["moor-test-registry".into()],
            vec!["repository:tok/hello:pull".into()]
        )),
        "pull asked for {asked:?}"
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("robot:t0ken-pass")
    );
    assert!(
        tokens
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(basic.as_str())),
        "credentials go to the token server"
    );

    // A wrong password: the token server refuses, and the error says where.
    env.write_registries(&insecure_hosts(&[
        (&host, &auth_yaml("robot", "nope")),
        (&token_host, ""),
    ]));
    let wrong = env.path("wrong");
    let ran = env.fails_in(&wrong, &["pull", &target], "fetch token");
    assert!(ran.stderr.contains("401"), "{}", ran.stderr);
    assert!(env.ls(&wrong).is_empty());
    env.assert_store_sane(&wrong);
}

#[test]
fn a_docker_hub_mirror_with_a_rewrite_serves_short_names_offline() {
    let Some(env) = Env::new("reg-mirror") else {
        return;
    };
    let Some(program) = program() else {
        return;
    };
    let reg = DockerRegistry::start(&program, &env.path("registry"), &Auth::None);
    let host = reg.authority();
    let (busybox, _) = env.build_base(&env.data);
    let mirrored = format!("{host}/mirror/busybox:latest");
    env.ok(&[
        "push",
        "--plain-http",
        "moor.local/busybox:latest",
        &mirrored,
    ]);

    env.write_registries(&format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{host}\"]\n    rewrite:\n      \"^library/(.*)\": \"mirror/$1\"\n"
    ));
    let fresh = env.path("pulled");
    let pulled = env.ok_in(&fresh, &["pull", "busybox"]);
    let name = "docker.io/library/busybox:latest";
    assert_eq!(printed_digest(&pulled.stdout, name), busybox);
    assert_eq!(env.listed(&fresh), [(name.to_string(), busybox.clone())]);

    let bundle = env.bundle(&fresh, "busybox", "mirrored");
    bundle.edit_config(|c| c["process"]["args"] = serde_json::json!(["sh", "-c", "echo mirrored"]));
    let ran = bundle.run("mirrored");
    assert_eq!(ran.code(), Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "mirrored\n");
    bundle.remove();
    env.assert_store_sane(&fresh);
}
