//! The client against the real thing: Debian's `docker-registry` (distribution 2.8),
//! started here on 127.0.0.1 with its own configuration and storage in a temp dir
//! (never its packaged configuration, which listens on every interface).
//!
//! Needs `/usr/bin/docker-registry` (apt package `docker-registry`): without it the
//! tests say `skipped: needs docker-registry`, or fail when `MOOR_TEST_STRICT=1`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::*;
use crate::image::registry::{BlobPush, RegistryError};

const BINARY: &str = "/usr/bin/docker-registry";

/// The binary, or `None` after saying the test is skipped (a failure when strict).
fn docker_registry() -> Option<PathBuf> {
    let path = Path::new(BINARY);
    if path.is_file() {
        return Some(path.into());
    }
    if std::env::var("MOOR_TEST_STRICT").is_ok_and(|v| v == "1") {
        panic!(
            "missing prerequisite: docker-registry at {BINARY} (apt-get install docker-registry); MOOR_TEST_STRICT=1 makes this a failure"
        );
    }
    eprintln!("skipped: needs docker-registry (apt-get install docker-registry)");
    None
}

/// A running registry, killed when dropped.
struct Distribution {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Distribution {
    /// Starts one; with `htpasswd`, Basic auth against that file's content.
    fn start(binary: &Path, htpasswd: Option<&str>) -> Distribution {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let auth = match htpasswd {
            Some(content) => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, content).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: moor-test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: moor-test-secret\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut d = Distribution { child, host, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(&d.host).is_ok() {
                return d;
            }
            let exited = d.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(d.dir.path().join("log")).unwrap_or_default();
                panic!(
                    "docker-registry did not start on {} ({exited:?}):\n{log}",
                    d.host
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self, yaml: &str) -> Registry {
        Registry::new(&self.host, options(yaml, true)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reference(&self, rest: &str) -> Reference {
        format!("{}/{rest}", self.host)
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A config blob, a layer blob and an OCI manifest naming them.
fn image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        Digest::sha256(&config),
        config.len(),
        Digest::sha256(&layer),
        layer.len()
    );
    (config, layer, manifest.into_bytes())
}

/// Pushes the image to `moor/test:v1` and reads it back.
fn round_trip(d: &Distribution, reg: &Registry) {
    let (config, layer, manifest) = image();
    for blob in [&config, &layer] {
        let digest = Digest::sha256(blob);
        let mut last = 0;
        let pushed = reg
            .push_blob(
                "moor/test",
                &digest,
                blob.len() as u64,
                &mut blob.as_slice(),
                &mut |n| last = n,
            )
            .unwrap_or_else(|e| panic!("push blob: {e}"));
        assert_eq!((pushed, last), (BlobPush::Uploaded, blob.len() as u64));
        assert!(reg.blob_exists("moor/test", &digest).expect("exists"));
    }
    let tag = d.reference("moor/test:v1");
    let pushed = reg
        .push_manifest(&tag, &manifest, OCI_MANIFEST)
        .expect("push manifest");
    assert_eq!(pushed, Digest::sha256(&manifest));

    let resolved = reg.resolve(&tag).expect("resolve");
    assert_eq!(
        (
            resolved.digest.clone(),
            resolved.media_type.as_str(),
            resolved.size
        ),
        (pushed.clone(), OCI_MANIFEST, manifest.len() as u64)
    );
    let fetched = reg.fetch_manifest(&tag).expect("fetch manifest");
    assert_eq!(
        (fetched.bytes.as_slice(), fetched.digest.clone()),
        (manifest.as_slice(), pushed.clone())
    );
    let by_digest = reg
        .fetch_manifest(&d.reference(&format!("moor/test@{pushed}")))
        .expect("by digest");
    assert_eq!(by_digest.bytes, manifest);
    let digest = Digest::sha256(&layer);
    let blob = reg
        .fetch_blob("moor/test", &digest, Some(layer.len() as u64))
        .expect("fetch blob");
    assert_eq!(read_all(blob).expect("read blob"), layer);
    let again = reg
        .push_blob(
            "moor/test",
            &digest,
            layer.len() as u64,
            &mut layer.as_slice(),
            &mut |_| {},
        )
        .expect("again");
    assert_eq!(again, BlobPush::Existed);
    assert!(
        reg.mount_blob("moor/other", &digest, "moor/test")
            .expect("mount")
    );
    assert!(reg.blob_exists("moor/other", &digest).expect("mounted"));
    let e = reg
        .fetch_manifest(&d.reference("moor/test:absent"))
        .expect_err("absent tag");
    assert!(
        e.is_not_found() && e.to_string().contains("MANIFEST_UNKNOWN"),
        "{e}"
    );
    let e = reg
        .fetch_blob("moor/test", &Digest::sha256(b"absent"), None)
        .expect_err("absent blob");
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn docker_registry_round_trip() {
    let Some(binary) = docker_registry() else {
        return;
    };
    let d = Distribution::start(&binary, None);
    let reg = d.client("");
    reg.ping().expect("ping");
    round_trip(&d, &reg);
}

#[test]
fn docker_registry_basic_auth() {
    let Some(binary) = docker_registry() else {
        return;
    };
    let hash = bcrypt::hash("s3cret:with colon", 4).expect("bcrypt");
    let d = Distribution::start(&binary, Some(&format!("moor:{hash}\n")));
    let creds = |password: &str| {
        format!(
            "configs:\n  \"{}\":\n    auth: {{ username: moor, password: \"{password}\" }}\n",
            d.host
        )
    };
    let reg = d.client(&creds("s3cret:with colon"));
    reg.ping().expect("ping with the right password");
    round_trip(&d, &reg);

    let e = d
        .client(&creds("wrong"))
        .ping()
        .expect_err("wrong password");
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("ping at {}: HTTP 401", d.host)),
        "{e}"
    );
    let e = d
        .client("")
        .fetch_manifest(&d.reference("moor/test:v1"))
        .expect_err("no credentials");
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");
}
