use super::*;

const PATH: &str = "/etc/moor/registries.yaml";

fn parse(text: &str) -> Result<RegistriesConfig, RegistryError> {
    RegistriesConfig::from_yaml(text, Path::new(PATH))
}

fn parse_ok(text: &str) -> RegistriesConfig {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted: {text:.200}\n{c:?}"),
        Err(e) => e.to_string(),
    }
}

const EXAMPLE: &str = r#"
mirrors:
  docker.io:
    endpoint: ["https://mirror.site:5000", "http://10.0.0.5:5000", "mirror2.site/proxy", "https://m3/v2/"]
    rewrite:
      "^library/(.*)": "edge/$1"
      "^(.*)$": "all/$1"
  "*":
    endpoint: ["https://catchall"]
configs:
  "mirror.site:5000":
    auth: { username: u, password: p }
    tls: { ca_file: /etc/moor/ca.pem, cert_file: /c.pem, key_file: /k.pem, insecure_skip_verify: false }
  "10.0.0.5:5000":
    auth: { auth: "dTI6cDI6eA==" }
  docker.io:
    auth: { identity_token: tok }
  "plain.local:5000":
    insecure: true
"#;

#[test]
fn k3s_example_parses() {
    let c = parse_ok(EXAMPLE);
    let hub = c.mirror("docker.io").expect("docker.io mirror");
    let endpoints: Vec<String> = hub.endpoints().iter().map(|u| u.to_string()).collect();
    assert_eq!(
        endpoints,
        [
            "https://mirror.site:5000/v2",
            "http://10.0.0.5:5000/v2",
            "https://mirror2.site/proxy/v2",
            "https://m3/v2"
        ]
    );
    assert_eq!(hub.rewrite("library/nginx"), "edge/nginx");
    assert_eq!(hub.rewrite("team/app"), "all/team/app");
    let other = c.mirror("ghcr.io").expect("wildcard");
    assert_eq!(other.endpoints()[0].to_string(), "https://catchall/v2");
    assert_eq!(other.rewrite("a/b"), "a/b");

    let site = c.host("mirror.site:5000").expect("mirror.site");
    assert_eq!(
        site.auth,
        Some(Credentials::Basic {
            username: "u".into(),
            password: "p".into()
        })
    );
    let tls = site.tls.as_ref().expect("tls");
    assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/moor/ca.pem")));
    assert_eq!(
        c.host("10.0.0.5:5000").and_then(|h| h.auth.clone()),
        Some(Credentials::Basic {
            username: "u2".into(),
            password: "p2:x".into()
        })
    );
    for hub in ["registry-1.docker.io", "docker.io", "index.docker.io"] {
        assert_eq!(
            c.host(hub).and_then(|h| h.auth.clone()),
            Some(Credentials::IdentityToken("tok".into())),
            "{hub}"
        );
    }
    assert!(c.host("elsewhere").is_none());
    assert!(c.allows_plain_http("plain.local:5000"));
    assert!(c.allows_plain_http("10.0.0.5:5000"));
    assert!(!c.allows_plain_http("mirror.site:5000"));
    assert!(!c.allows_plain_http("catchall"));
    let debug = format!("{:?}", c.host("mirror.site:5000"));
    assert!(!debug.contains("\"p\""), "secret in Debug: {debug}");
}

#[test]
fn empty_and_missing_files_are_empty_configs() {
    for text in [
        "",
        "# nothing\n",
        "---\n",
        "mirrors:\nconfigs:\n",
        "mirrors: {}\n",
        "mirrors:\n  docker.io:\n",
    ] {
        let c = parse_ok(text);
        assert!(
            c.mirror("docker.io")
                .is_none_or(|m| m.endpoints().is_empty()),
            "{text:?}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let c = RegistriesConfig::load(&dir.path().join("absent.yaml")).expect("missing is empty");
    assert!(c.mirror("docker.io").is_none());
}

#[test]
fn errors_name_the_file_the_line_and_the_field() {
    let e = parse("mirrors:\n  docker.io:\n    endpoint: 5\n").expect_err("wrong type");
    let RegistryError::Config { path, line, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(path, Path::new(PATH));
    assert_eq!(*line, Some(3));
    assert!(reason.contains("mirrors.docker.io.endpoint"), "{reason}");
    assert!(e.to_string().starts_with(PATH), "{e}");

    let e = error("configs:\n  h:\n    tls:\n      ca_fil: /x\n");
    assert!(
        e.contains("configs.h.tls") && e.contains("ca_fil") && e.contains("line 4"),
        "{e}"
    );
    let e = error("mirrors:\n  docker.io:\n    rewrite:\n      \"([a-z\": x\n");
    assert!(
        e.contains("rewrite") && e.contains("line 4") && e.contains("regular expression"),
        "{e}"
    );
}

#[test]
fn hostile_files_are_refused() {
    let deep = format!("mirrors: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let laughs = {
        let mut s = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..12 {
            s += &format!(
                "{}: &{} [*{},*{},*{},*{},*{},*{},*{},*{},*{},*{}]\n",
                (b'a' + i) as char,
                (b'a' + i) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char
            );
        }
        s
    };
    // Aliases where values are expected: refused at the first wrong element, never expanded.
    let laughs_inside = format!(
        "mirrors:\n  a.io:\n    endpoint: &a [{}]\n  b.io:\n    endpoint: &b [{}]\n  c.io:\n    endpoint: [{}]\n",
        vec!["\"https://x\""; 30].join(","),
        vec!["*a"; 30].join(","),
        vec!["*b"; 30].join(",")
    );
    let many_endpoints = format!(
        "mirrors:\n  x:\n    endpoint: [{}]\n",
        vec!["\"https://m\""; MAX_ENDPOINTS + 1].join(",")
    );
    let big_regex = format!(
        "mirrors:\n  x:\n    rewrite:\n      \"{}\": y\n",
        "(a{1000}){1000}"
    );
    let long_pattern = format!(
        "mirrors:\n  x:\n    rewrite:\n      \"{}\": y\n",
        "a".repeat(MAX_PATTERN + 1)
    );
    let nested_regex = format!(
        "mirrors:\n  x:\n    rewrite:\n      \"{}{}\": y\n",
        "(".repeat(200),
        ")".repeat(200)
    );
    for bad in [
        "mirrors: [a, b]",
        "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
        "mirrors:\n  docker.io:\n    endpoint: [\"https://u:p@x\"]\n",
        "mirrors:\n  docker.io:\n    endpoint: [\"https://x/?q=1\"]\n",
        "mirrors:\n  docker.io:\n    endpoint: [\"https://x y\"]\n",
        "mirrors:\n  docker.io:\n    endpoint: [[1]]\n",
        "mirrors:\n  \"bad host!\":\n    endpoint: []\n",
        "mirrors:\n  docker.io:\n    endpoints: [\"https://x\"]\n",
        "mirrors:\n  docker.io:\n    rewrite: [a]\n",
        "mirrors:\n  docker.io:\n    rewrite:\n      \"(\": x\n",
        "mirrors:\n  a: {}\n  a: {}\n",
        "configs:\n  h:\n    auth: { username: u }\n",
        "configs:\n  h:\n    auth: { username: u, password: p, auth: dTpw }\n",
        "configs:\n  h:\n    auth: { auth: \"!!!\" }\n",
        "configs:\n  h:\n    auth: { auth: \"bm9jb2xvbg==\" }\n",
        "configs:\n  h:\n    auth: { identity_token: \"\" }\n",
        "configs:\n  h:\n    auth: { username: \"\", password: p }\n",
        "configs:\n  h:\n    tls: { cert_file: /c.pem }\n",
        "configs:\n  h:\n    tls: { insecure_skip_verify: maybe }\n",
        "configs:\n  h:\n    insecure: [true]\n",
        "configs:\n  h:\n    auth: { username: u, password: p, extra: 1 }\n",
        "mirror:\n  docker.io: {}\n",
        "a: 1\n---\nb: 2\n",
        "\tmirrors: {}",
        "mirrors: *undefined\n",
        "\u{0}\u{1}\u{2}",
        "[1, 2, 3]",
        "just a string",
        deep.as_str(),
        laughs.as_str(),
        laughs_inside.as_str(),
        many_endpoints.as_str(),
        big_regex.as_str(),
        long_pattern.as_str(),
        nested_regex.as_str(),
    ] {
        let e = error(bad);
        assert!(
            e.starts_with(PATH) && e.len() < 2000 && !e.contains('\n'),
            "{bad:.100}: {e}"
        );
    }
}

#[test]
fn huge_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("registries.yaml");
    let line = "# padding padding padding padding padding padding padding\n";
    std::fs::write(&path, line.repeat((MAX_FILE as usize / line.len()) + 2)).expect("write");
    let e = RegistriesConfig::load(&path).expect_err("huge file");
    assert!(e.to_string().contains("larger than"), "{e}");
    std::fs::write(&path, EXAMPLE).expect("write");
    assert!(RegistriesConfig::load(&path).is_ok());
}
