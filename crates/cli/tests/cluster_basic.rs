//! One controller as a real process: `moor controller --init` makes the cluster and the
//! admin credentials; `moor apply`, `get` and `delete` use them; state survives a restart;
//! bad manifests, missing credentials and a stopped controller give clear errors and the
//! documented exit codes.

#[path = "common/cluster_util.rs"]
mod cluster_util;

use std::path::{Path, PathBuf};

use cluster_util::{Controller, Site};
use tests::moor::Ran;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/fixtures");

/// One controller, ctl-1, and the site around it; killed when dropped.
struct OneController {
    site: Site,
    ctl: Controller,
}

impl OneController {
    fn init(test: &str) -> OneController {
        let site = Site::new(test);
        let ctl = site.init_controller(&[]);
        OneController { site, ctl }
    }

    /// Starts it again from its data directory, with `extra`.
    fn start(&mut self, extra: &[&str]) {
        self.ctl.start(&self.site, extra);
        self.site.wait_answering();
    }

    fn stop(&mut self) {
        self.ctl.kill();
    }

    fn admin_conf(&self) -> PathBuf {
        self.ctl.data.join("admin.conf")
    }

    /// `moor ARGS` as the admin (HOME's ~/.moor/config, written by --init).
    fn moor(&self, args: &[&str]) -> Ran {
        self.site.moor(args)
    }

    fn moor_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Ran {
        self.site.moor_with(args, stdin)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.site
            .ok_beside(args, &format!("controller log:\n{}", self.log()))
    }

    /// What the controller printed since it was last started.
    fn log(&self) -> String {
        self.ctl.output()
    }
}

fn fixture(name: &str) -> String {
    Path::new(FIXTURES).join(name).display().to_string()
}

#[test]
fn apply_get_delete_and_state_survives_a_restart() {
    let mut c = OneController::init("cluster-basic");
    assert!(c.admin_conf().is_file());
    assert!(
        c.site.home.join(".moor/config").is_file(),
        "--init copies the admin config"
    );
    let namespaces = c.ok(&["get", "namespaces", "-o", "name"]);
    assert_eq!(
        namespaces, "namespace/default\n",
        "a new cluster has default"
    );

    let deploy = fixture("nginx-deployment.yaml");
    let out = c.ok(&["apply", "-f", &deploy]);
    assert_eq!(out, "deployment.apps/nginx-deployment created\n");
    let out = c.ok(&["apply", "-f", &deploy]);
    assert_eq!(out, "deployment.apps/nginx-deployment unchanged\n");

    let table = c.ok(&["get", "deployments"]);
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap_or_default().starts_with("NAME"),
        "{table}"
    );
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("nginx-deployment"),
        "{table}"
    );
    let yaml = c.ok(&["get", "deploy", "nginx-deployment", "-o", "yaml"]);
    assert!(yaml.contains("resourceVersion:"), "{yaml}");
    assert!(yaml.contains("uid:"), "{yaml}");
    assert!(yaml.contains("image: nginx:1.14.2"), "{yaml}");
    let json = c.ok(&["get", "deploy", "-o", "json", "-l", "app=nginx"]);
    assert!(json.contains("\"nginx-deployment\""), "{json}");
    let none = c.moor(&["get", "deploy", "-l", "app=other"]);
    assert!(none.status.success());
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );

    // A ConfigMap from stdin, in another namespace.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: site, namespace: edge}\ndata: {region: north}\n";
    let ran = c.moor_with(&["apply", "-f", "-"], Some(ns.as_bytes()));
    assert!(ran.status.success(), "{}", ran.stderr);
    let all = c.ok(&["get", "configmaps", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains("edge") && all.contains("site"), "{all}");

    // Restart: everything is still there.
    c.stop();
    c.start(&[]);
    let yaml_again = c.ok(&["get", "deploy", "nginx-deployment", "-o", "yaml"]);
    assert_eq!(yaml_again, yaml);
    assert!(c.ok(&["get", "cm", "site", "-n", "edge"]).contains("site"));

    let out = c.ok(&["delete", "deployment", "nginx-deployment"]);
    assert_eq!(out, "deployment.apps/nginx-deployment deleted\n");
    let gone = c.moor(&["get", "deploy", "nginx-deployment"]);
    assert_eq!(gone.code(), Some(1), "{}", gone.stderr);
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);
}

#[test]
fn bad_manifests_missing_credentials_and_a_stopped_controller_are_clear() {
    let mut c = OneController::init("cluster-errors");
    let bad = c.site.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: three\n",
    )
    .expect("write");
    let ran = c.moor(&["apply", "-f", &bad.display().to_string()]);
    assert_eq!(ran.code(), Some(1));
    assert!(ran.stderr.contains("bad.yaml:5:"), "{}", ran.stderr);
    assert!(ran.stderr.contains("spec.replicas"), "{}", ran.stderr);

    let ran = c.moor(&[
        "--config",
        &c.site.dir().join("nothing").display().to_string(),
        "get",
        "pods",
    ]);
    assert_eq!(ran.code(), Some(1));
    assert!(ran.stderr.contains("nothing"), "{}", ran.stderr);

    c.stop();
    let ran = c.moor(&["get", "pods"]);
    assert_eq!(ran.code(), Some(3), "{}", ran.stderr);
    assert!(ran.stderr.contains("ctl-1"), "{}", ran.stderr);

    // A second --init over the same data directory refuses.
    let listen = c.ctl.listen.clone();
    let out = c
        .site
        .controller_command(
            &c.ctl.data,
            &["--init", "--name", "ctl-1", "--listen", &listen],
        )
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already initialised"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_and_config_maps_are_made_from_files_and_literals() {
    let c = OneController::init("cluster-data");
    let dir = c.site.dir();
    let password = dir.join("db-password");
    std::fs::write(&password, b"s3cr3t-value\n").expect("write");
    let out = c.ok(&["secret", "create", "db", &password.display().to_string()]);
    assert_eq!(out, "secret/db created\n");
    // From stdin, under a key of our choosing.
    let ran = c.moor_with(
        &["secret", "create", "api", "-", "--key", "token"],
        Some(b"t0ken"),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    let listed = c.ok(&["secret", "ls"]);
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(listed.contains("db") && listed.contains("api"), "{listed}");
    assert!(!listed.contains("s3cr3t"), "a value was listed: {listed}");
    let yaml = c.ok(&["get", "secret", "db", "-o", "yaml"]);
    // Base64 of the file, under the file's name.
    assert!(yaml.contains("db-password: czNjcjN0LXZhbHVlCg=="), "{yaml}");
    assert_eq!(c.ok(&["secret", "rm", "api"]), "secret/api deleted\n");
    assert!(!c.ok(&["secret", "ls"]).contains("api"));

    let conf = dir.join("app.conf");
    std::fs::write(&conf, "mode=edge\n").expect("write");
    let out = c.ok(&[
        "configmap",
        "create",
        "app",
        "--from-file",
        &conf.display().to_string(),
        "--from-file",
        &format!("renamed.conf={}", conf.display()),
        "--from-literal",
        "region=north",
    ]);
    assert_eq!(out, "configmap/app created\n");
    let yaml = c.ok(&["get", "cm", "app", "-o", "yaml"]);
    for line in ["app.conf: |", "renamed.conf: |", "region: north"] {
        assert!(yaml.contains(line), "{line:?} missing:\n{yaml}");
    }

    // Refused before anything is sent: a bad key, a key twice, nothing at all.
    let ran = c.moor(&["configmap", "create", "bad", "--from-literal", "no/slash=1"]);
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("data"), "{}", ran.stderr);
    let ran = c.moor(&[
        "configmap",
        "create",
        "twice",
        "--from-literal",
        "k=1",
        "--from-literal",
        "k=2",
    ]);
    assert!(ran.stderr.contains("given twice"), "{}", ran.stderr);
    let ran = c.moor(&["configmap", "create", "empty"]);
    assert!(ran.stderr.contains("at least one"), "{}", ran.stderr);
    let big = dir.join("big");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).expect("write");
    let ran = c.moor(&["secret", "create", "big", &big.display().to_string()]);
    assert!(ran.stderr.contains("larger than"), "{}", ran.stderr);
    assert!(!c.ok(&["get", "cm"]).contains("bad"));
}

/// Whether `needle` appears anywhere under `dir` (every file, whole).
fn found_under(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                hits.push(path);
            }
        }
    }
    hits
}

#[test]
fn secrets_are_encrypted_at_rest_and_read_back() {
    let mut c = OneController::init("cluster-sealed");
    let key = c.ctl.data.join("pki/secrets.key");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&key).expect("a secrets key made at --init");
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let value = "correct-horse-battery-staple-5d41402a";
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: {value}}}\n"
    );
    let applied = c.moor_with(&["apply", "-f", "-"], Some(manifest.as_bytes()));
    assert!(applied.status.success(), "{}", applied.stderr);
    let shown = c.ok(&["get", "secret", "db", "-o", "json"]);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value);
    assert!(shown.contains(&encoded), "{shown}");
    // Neither the log nor the state machine holds it in clear, after a restart either
    // (which replays and applies the log again).
    c.stop();
    let state = c.ctl.data.join("controller");
    assert_eq!(found_under(&state, value.as_bytes()), Vec::<PathBuf>::new());
    c.start(&[]);
    assert!(
        c.ok(&["get", "secret", "db", "-o", "json"])
            .contains(&encoded)
    );
    c.stop();
    assert_eq!(found_under(&state, value.as_bytes()), Vec::<PathBuf>::new());
    // Without its key the controller cannot read them, and says so.
    let moved = c.site.dir().join("secrets.key.elsewhere");
    std::fs::rename(&key, &moved).expect("move the key away");
    let moved_arg = moved.display().to_string();
    c.start(&["--secrets-key", &moved_arg]);
    assert!(
        c.ok(&["get", "secret", "db", "-o", "json"])
            .contains(&encoded)
    );
    c.stop();
    c.start(&[]);
    let unreadable = c.moor(&["get", "secret", "db"]);
    assert!(!unreadable.status.success(), "read without the key");
    assert!(
        unreadable.stderr.contains("no secrets key"),
        "{}",
        unreadable.stderr
    );
    assert!(
        c.log().contains("secrets are stored unencrypted"),
        "{}",
        c.log()
    );
}

#[test]
fn a_credential_near_its_end_renews_itself_on_the_next_command() {
    let c = OneController::init("cluster-renew");
    let pki = c.ctl.data.join("pki");
    let ca = wire::ClusterCa::load(&pki).expect("the cluster CA");
    // An admin certificate of 30 days with 5 left: less than a third of its life.
    let issued = std::time::SystemTime::now() - std::time::Duration::from_secs(25 * 86400);
    let short = ca
        .issue(
            wire::Role::Admin,
            "ops",
            issued,
            std::time::Duration::from_secs(30 * 86400),
        )
        .expect("a short admin certificate");
    let mut config = wire::ClientConfig::load(&c.admin_conf()).expect("admin.conf");
    config.identity = short.identity().expect("identity");
    config.node = short;
    let path = c.site.dir().join("short.conf");
    config.save(&path).expect("save");
    let old_serial = config.identity.serial.clone();

    let path_arg = path.display().to_string();
    let ran = c.moor(&["--config", &path_arg, "get", "ns"]);
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("renewed the certificate"),
        "{}",
        ran.stderr
    );
    let renewed = wire::ClientConfig::load(&path).expect("the renewed file");
    assert_ne!(renewed.identity.serial, old_serial);
    assert_eq!(renewed.identity.name, "ops");
    let leaf = renewed.node.chain[0].as_ref().to_vec();
    let validity = wire::validity::validity(&leaf).expect("validity");
    assert!(!validity.due_for_renewal(std::time::SystemTime::now()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("mode").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The renewed file works, and a fresh one is left alone.
    let again = c.moor(&["--config", &path_arg, "get", "ns"]);
    assert!(again.status.success(), "{}", again.stderr);
    assert!(!again.stderr.contains("renewed"), "{}", again.stderr);
}
