//! A real registry for tests: Debian's `docker-registry` (distribution 2.8), started on
//! 127.0.0.1 and a free port with a configuration file and storage of its own in the
//! test's directory (never the packaged configuration, which listens on every
//! interface), and killed when the guard is dropped.
//!
//! ```text
//! DockerRegistry::start(dir, Auth::None | Htpasswd | Token)
//!   dir/config.yml   what it was told      dir/storage/   what was pushed
//!   dir/log          what it said          dir/htpasswd   Basic auth users (bcrypt)
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::prereq;
use crate::wait;

/// Where Debian's package puts the registry.
pub const DOCKER_REGISTRY: &str = "docker-registry";

/// How long the registry may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// Basic auth against these users and passwords (stored bcrypt-hashed).
    Htpasswd(Vec<(String, String)>),
    /// Bearer tokens from a token server: the registry sends clients to `realm`, and
    /// accepts JWTs for `service` from `issuer` signed by a key whose certificate
    /// (PEM) is `root_cert_pem`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert_pem: String,
    },
}

/// A running `docker-registry`, killed when dropped.
#[derive(Debug)]
pub struct DockerRegistry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The registry program, or `None` after saying why the test is skipped (a failure
/// under `MOOR_TEST_STRICT=1`).
pub fn program() -> Option<PathBuf> {
    prereq::program(DOCKER_REGISTRY)
}

/// A port nobody listens on now (the registry binds it itself, so another process may
/// take it first; [`DockerRegistry::start`] tries again then).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("find a free port: {e}"))
}

/// One `htpasswd` line, the password hashed with bcrypt (the only hash the registry
/// accepts).
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, 4).unwrap_or_else(|e| panic!("bcrypt: {e}"));
    format!("{user}:{hash}\n")
}

fn yaml_quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl DockerRegistry {
    /// Starts `program` (from [`program`]) with its files under `dir`.
    pub fn start(program: &Path, dir: &Path, auth: &Auth) -> DockerRegistry {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd(users) => {
                let path = dir.join("htpasswd");
                let lines: String = users.iter().map(|(u, p)| htpasswd_line(u, p)).collect();
                std::fs::write(&path, lines).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: moor-test\n    path: {}\n",
                    yaml_quote(&path.to_string_lossy())
                )
            }
            Auth::Token {
                realm,
                service,
                issuer,
                root_cert_pem,
            } => {
                let path = dir.join("token-root.pem");
                std::fs::write(&path, root_cert_pem).expect("write the token root certificate");
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    yaml_quote(realm),
                    yaml_quote(service),
                    yaml_quote(issuer),
                    yaml_quote(&path.to_string_lossy())
                )
            }
        };
        let mut last_log = String::new();
        // A port found free may be taken before the registry binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: moor-test-secret\n{auth_yaml}",
                yaml_quote(&dir.join("storage").to_string_lossy()),
            );
            let config_path = dir.join("config.yml");
            std::fs::write(&config_path, config).expect("write the registry's config");
            let log_path = dir.join("log");
            let log = std::fs::File::create(&log_path).expect("create the registry's log");
            let child = Command::new(program)
                .arg("serve")
                .arg(&config_path)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
            let mut registry = DockerRegistry {
                child,
                port,
                dir: dir.to_path_buf(),
            };
            let up = wait::wait_for("docker-registry to listen or exit", START_DEADLINE, || {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    Some(true)
                } else if registry.child.try_wait().ok().flatten().is_some() {
                    Some(false)
                } else {
                    None
                }
            });
            if up {
                return registry;
            }
            last_log = registry.log();
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the registry wrote to its log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
