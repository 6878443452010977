//! One controller as a real process: `moor controller --init` makes the cluster and the
//! admin credentials; `moor apply`, `get` and `delete` use them; state survives a restart;
//! bad manifests, missing credentials and a stopped controller give clear errors and the
//! documented exit codes.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::moor::{Ran, finish};
use tests::scratch::Scratch;
use tests::wait;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/fixtures");
const DEADLINE: Duration = Duration::from_secs(30);

/// A controller process and the files around it; killed when dropped.
struct OneController {
    scratch: Scratch,
    data: PathBuf,
    home: PathBuf,
    listen: String,
    child: Option<Child>,
}

impl OneController {
    fn init(test: &str) -> OneController {
        let scratch = Scratch::new(test);
        let data = scratch.dir().join("data");
        let home = scratch.dir().join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        let listen = format!("127.0.0.1:{}", free_udp_port());
        let mut c = OneController {
            scratch,
            data,
            home,
            listen,
            child: None,
        };
        let listen = c.listen.clone();
        c.start(&["--init", "--name", "ctl-1", "--listen", &listen]);
        c
    }

    fn start(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(self.scratch.dir().join("controller.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_moor"))
            .arg("--data-dir")
            .arg(&self.data)
            .arg("controller")
            .args(extra)
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn moor controller");
        self.child = Some(child);
        // Serving once a read goes through.
        wait::wait_until("the controller to answer", DEADLINE, || {
            self.moor(&["get", "namespaces"]).status.success()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn admin_conf(&self) -> PathBuf {
        self.data.join("admin.conf")
    }

    /// `moor ARGS` as the admin (HOME's ~/.moor/config, written by --init).
    fn moor(&self, args: &[&str]) -> Ran {
        self.moor_with(args, None)
    }

    fn moor_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_moor"));
        cmd.args(args)
            .env("HOME", &self.home)
            .env_remove("MOOR_CONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn moor");
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(bytes).expect("write stdin");
        }
        finish(child, &format!("moor {}", args.join(" ")))
    }

    fn ok(&self, args: &[&str]) -> String {
        let ran = self.moor(args);
        assert!(
            ran.status.success(),
            "moor {}: {}\n{}\ncontroller log:\n{}",
            args.join(" "),
            ran.stdout,
            ran.stderr,
            self.log()
        );
        ran.stdout
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.dir().join("controller.log")).unwrap_or_default()
    }
}

impl Drop for OneController {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a free port");
    socket.local_addr().expect("local addr").port()
}

fn fixture(name: &str) -> String {
    Path::new(FIXTURES).join(name).display().to_string()
}

#[test]
fn apply_get_delete_and_state_survives_a_restart() {
    let mut c = OneController::init("cluster-basic");
    assert!(c.admin_conf().is_file());
    assert!(
        c.home.join(".moor/config").is_file(),
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
    let bad = c.scratch.dir().join("bad.yaml");
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
        &c.scratch.dir().join("nothing").display().to_string(),
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
    let listen = c.listen.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_moor"))
        .arg("--data-dir")
        .arg(&c.data)
        .args([
            "controller",
            "--init",
            "--name",
            "ctl-1",
            "--listen",
            &listen,
        ])
        .env("HOME", &c.home)
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
    let dir = c.scratch.dir();
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
    let key = c.data.join("pki/secrets.key");
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
    let state = c.data.join("controller");
    assert_eq!(found_under(&state, value.as_bytes()), Vec::<PathBuf>::new());
    c.start(&[]);
    assert!(
        c.ok(&["get", "secret", "db", "-o", "json"])
            .contains(&encoded)
    );
    c.stop();
    assert_eq!(found_under(&state, value.as_bytes()), Vec::<PathBuf>::new());
    // Without its key the controller cannot read them, and says so.
    let moved = c.scratch.dir().join("secrets.key.elsewhere");
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
