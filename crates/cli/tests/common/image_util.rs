//! What the `image_*` suites share: a test's moor with private data directories and
//! runtime root, running `moor image …` as a user would, building the repository's
//! busybox and hello images, bundles that are always unbundled, and the checks that a
//! store is consistent after whatever a test did to it.

#![allow(dead_code)] // each test binary uses a different part

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::moor::{Moor, Ran, finish};
use tests::scratch::Scratch;
use tests::{oci, prereq};

/// How long a container or a server may take to reach a state a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The repository's image recipes.
pub fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images")
}

/// One test's moor: a scratch directory, a runtime root in it, and a default data
/// directory and registries file in it. Fields drop in order: containers are deleted
/// before the directory holding everything goes.
#[derive(Debug)]
pub struct Env {
    pub moor: Moor,
    pub scratch: Scratch,
    /// The default data directory (`<scratch>/data`).
    pub data: PathBuf,
    /// The registries file every command is given (absent: no mirrors, no credentials,
    /// and never the host's `/etc/moor/registries.yaml`).
    pub registries: PathBuf,
}

impl Env {
    /// `None` (after saying why) when this host lacks root or a static busybox; under
    /// `MOOR_TEST_STRICT=1` that is a failure instead.
    pub fn new(test: &str) -> Option<Env> {
        if !prereq::root() {
            return None;
        }
        prereq::busybox()?;
        let scratch = Scratch::new(test);
        let moor = Moor::new(Path::new(env!("CARGO_BIN_EXE_moor")), &scratch);
        Some(Env {
            data: scratch.dir().join("data"),
            registries: scratch.dir().join("registries.yaml"),
            moor,
            scratch,
        })
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.dir().join(name)
    }

    /// Writes the registries file every later command is given.
    pub fn write_registries(&self, yaml: &str) {
        std::fs::write(&self.registries, yaml).expect("write registries.yaml");
    }

    /// `moor --data-dir DATA --registries R image ARGS…`, ready to spawn; the
    /// environment holds nothing that changes what moor does (no proxies, no data dir,
    /// no registries file, no build epoch).
    pub fn command(&self, data: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.moor.bin());
        for var in [
            "MOOR_DATA_DIR",
            "MOOR_REGISTRIES",
            "SOURCE_DATE_EPOCH",
            "ALL_PROXY",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "all_proxy",
            "https_proxy",
            "http_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.arg("--data-dir")
            .arg(data)
            .arg("--registries")
            .arg(&self.registries)
            .arg("image")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `moor image ARGS…` on `data` to completion.
    pub fn run_in(&self, data: &Path, args: &[&str]) -> Ran {
        let child = self
            .command(data, args)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn moor: {e}"));
        finish(child, &format!("moor image {}", args.join(" ")))
    }

    /// Runs `moor image ARGS…` on `data`; it must succeed.
    pub fn ok_in(&self, data: &Path, args: &[&str]) -> Ran {
        let ran = self.run_in(data, args);
        assert!(
            ran.status.success(),
            "expected success: moor image {}\n  status: {}\n  stdout: {}\n  stderr: {}",
            args.join(" "),
            ran.status,
            ran.stdout.trim_end(),
            ran.stderr.trim_end()
        );
        ran
    }

    /// Runs `moor image ARGS…` on `data`; it must fail cleanly saying `needle`.
    pub fn fails_in(&self, data: &Path, args: &[&str], needle: &str) -> Ran {
        let ran = self.run_in(data, args);
        assert_clean_failure(&ran, needle, &format!("moor image {}", args.join(" ")));
        ran
    }

    /// [`Env::ok_in`] on the default data directory.
    pub fn ok(&self, args: &[&str]) -> Ran {
        self.ok_in(&self.data, args)
    }

    /// [`Env::fails_in`] on the default data directory.
    pub fn fails(&self, args: &[&str], needle: &str) -> Ran {
        self.fails_in(&self.data, args, needle)
    }

    /// Builds images/busybox as `moor.local/busybox:latest` and images/hello as
    /// `moor.local/hello:latest` into `data`; returns their manifest digests.
    pub fn build_base(&self, data: &Path) -> (String, String) {
        let busybox = self.build(data, "busybox", &[]);
        let hello = self.build(data, "hello", &[]);
        (busybox, hello)
    }

    /// `moor image build images/NAME -t moor.local/NAME:latest` with extra environment.
    pub fn build(&self, data: &Path, name: &str, env: &[(&str, &str)]) -> String {
        let dir = images_dir().join(name);
        let tag = format!("moor.local/{name}:latest");
        let args = ["build", dir.to_str().expect("utf-8 path"), "-t", &tag];
        let mut cmd = self.command(data, &args);
        cmd.envs(env.iter().copied());
        let ran = finish(cmd.spawn().expect("spawn moor"), "moor image build");
        assert!(ran.status.success(), "build {name}: {ran:?}");
        printed_digest(&ran.stdout, &tag)
    }

    /// `ls --format json` of `data`.
    pub fn ls(&self, data: &Path) -> Vec<Value> {
        let ran = self.ok_in(data, &["ls", "--format", "json"]);
        match serde_json::from_str(&ran.stdout) {
            Ok(Value::Array(rows)) => rows,
            other => panic!("ls --format json: {other:?}: {}", ran.stdout),
        }
    }

    /// The references `ls` shows in `data`, with their digests.
    pub fn listed(&self, data: &Path) -> Vec<(String, String)> {
        self.ls(data)
            .iter()
            .map(|r| {
                (
                    r["reference"].as_str().unwrap_or_default().to_string(),
                    r["digest"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// `inspect REF` of `data`, parsed.
    pub fn inspect(&self, data: &Path, reference: &str) -> Value {
        let ran = self.ok_in(data, &["inspect", reference]);
        serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("inspect {reference}: {e}: {}", ran.stdout))
    }

    /// `bundle REF DIR` of `data` at `<scratch>/<name>`; the bundle is unbundled (and
    /// its containers deleted) when the guard is dropped.
    pub fn bundle<'a>(&'a self, data: &Path, reference: &str, name: &str) -> ImageBundle<'a> {
        let dir = self.path(name);
        self.ok_in(
            data,
            &["bundle", reference, dir.to_str().expect("utf-8 path")],
        );
        let bundle = ImageBundle {
            env: self,
            data: data.to_path_buf(),
            dir,
            containers: RefCell::new(Vec::new()),
            removed: false,
        };
        // A cgroup under the test's prefix, which the harness removes whatever happens.
        bundle.edit_config(|c| {
            c["linux"]["cgroupsPath"] = json!(self.group(name));
        });
        bundle
    }

    /// The cgroup of the bundle named `name`.
    pub fn group(&self, name: &str) -> String {
        format!("/moor-test/{}/{name}", self.scratch.prefix())
    }

    /// Bundles the hello image `reference` of `data`, runs it detached, and returns what
    /// its web server answers from inside; the container and bundle are gone after.
    pub fn run_hello(&self, data: &Path, reference: &str, name: &str) -> String {
        let bundle = self.bundle(data, reference, name);
        let id = bundle.run_detached(name);
        let answer = bundle.fetch(&id, "http://127.0.0.1:8080/");
        bundle.remove();
        answer
    }

    /// Asserts the store in `data` is consistent: `ls` works, nothing is left in
    /// `tmp/`, every blob's content has the digest it is named by, and every unpacked
    /// layer has its record and every record its layer.
    pub fn assert_store_sane(&self, data: &Path) {
        self.ls(data);
        let root = data.join("images");
        let tmp: Vec<_> = read_names(&root.join("tmp"));
        assert!(tmp.is_empty(), "tmp/ holds leftovers: {tmp:?}");
        for name in read_names(&root.join("blobs/sha256")) {
            let bytes = std::fs::read(root.join("blobs/sha256").join(&name)).expect("read blob");
            assert_eq!(oci::hex(&bytes), name, "blob {name} has other content");
        }
        let layers = read_names(&root.join("layers/sha256"));
        for name in &layers {
            match name.strip_suffix(".json") {
                Some(hex) => assert!(
                    layers.iter().any(|n| n == hex),
                    "layer record {name} without its directory"
                ),
                None => assert!(
                    layers.contains(&format!("{name}.json")),
                    "layer {name} without its record (incomplete)"
                ),
            }
        }
    }

    /// The chain ids (hex) of the layers unpacked in `data`.
    pub fn unpacked_layers(&self, data: &Path) -> Vec<String> {
        read_names(&data.join("images/layers/sha256"))
            .into_iter()
            .filter(|n| !n.ends_with(".json"))
            .collect()
    }

    /// The blobs (hex) in `data`.
    pub fn blobs(&self, data: &Path) -> Vec<String> {
        read_names(&data.join("images/blobs/sha256"))
    }

    /// The lease holders in `data`.
    pub fn leases(&self, data: &Path) -> Vec<String> {
        read_names(&data.join("images/leases"))
    }
}

/// `path` as the `&str` an argument list needs.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The Go architecture name of this machine, as image configs write it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        other => panic!("no image architecture name for {other}"),
    }
}

/// The sorted names in `dir` (none if it is missing).
pub fn read_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The digest `moor` printed after `reference` (`REF DIGEST` lines).
pub fn printed_digest(stdout: &str, reference: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            let (r, d) = l.split_once(' ')?;
            (r == reference).then(|| d.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no line for {reference} in {stdout:?}"))
}

/// Asserts a command failed cleanly: exit code 1 (not a panic's 101, not a signal), a
/// `moor: …` message naming the problem (`needle`), no panic message.
pub fn assert_clean_failure(ran: &Ran, needle: &str, what: &str) {
    assert_eq!(
        ran.code(),
        Some(1),
        "{what}: expected exit code 1, got {} (stderr: {})",
        ran.status,
        ran.stderr.trim_end()
    );
    assert!(
        !ran.stderr.contains("panicked"),
        "{what}: panicked: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("moor: ") && ran.stderr.contains(needle),
        "{what}: stderr does not say {needle:?}: {}",
        ran.stderr.trim_end()
    );
    for line in ran.stderr.lines().filter(|l| l.starts_with("moor: ")) {
        assert_says_once(line, what);
    }
}

/// Asserts no part of an error line (between `: `) is said twice: a cause repeated
/// by its wrapper reads as two failures.
pub fn assert_says_once(line: &str, what: &str) {
    let parts: Vec<&str> = line.split(": ").filter(|p| p.len() >= 12).collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{what}: the error repeats {part:?}: {line}"
        );
    }
}

/// Whether anything is mounted at or below `dir`.
pub fn mounted_below(dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

/// A bundle made by `moor image bundle`: its containers are deleted and it is
/// unbundled when dropped, so a failing test leaves no mount and no lease.
#[derive(Debug)]
pub struct ImageBundle<'a> {
    env: &'a Env,
    data: PathBuf,
    pub dir: PathBuf,
    containers: RefCell<Vec<String>>,
    removed: bool,
}

impl ImageBundle<'_> {
    /// Changes the bundle's `config.json`.
    pub fn edit_config(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.dir.join("config.json");
        let text = std::fs::read_to_string(&path).expect("read config.json");
        let mut config: Value = serde_json::from_str(&text).expect("config.json is JSON");
        edit(&mut config);
        std::fs::write(&path, config.to_string()).expect("write config.json");
    }

    /// The bundle's `config.json`.
    pub fn config(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("config.json")).expect("config.json");
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    /// `moor runtime run --detach` of the bundle as `<prefix>-<stem>`; returns the id.
    pub fn run_detached(&self, stem: &str) -> String {
        let id = self.env.scratch.name(stem);
        self.containers.borrow_mut().push(id.clone());
        let log = self.env.path(&format!("{stem}-log"));
        let dir = self.dir.to_str().expect("utf-8 path");
        let ran = self
            .env
            .moor
            .run_detached(&["run", "--detach", "--bundle", dir, &id], &log);
        assert!(ran.status.success(), "run --detach {id}: {ran:?}");
        id
    }

    /// `moor runtime run` of the bundle in the foreground; returns what it printed.
    pub fn run(&self, stem: &str) -> Ran {
        let id = self.env.scratch.name(stem);
        self.containers.borrow_mut().push(id.clone());
        let dir = self.dir.to_str().expect("utf-8 path");
        self.env.moor.run(&["run", "--bundle", dir, &id])
    }

    /// Waits until `wget URL` inside container `id` answers; returns the answer.
    pub fn fetch(&self, id: &str, url: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let ran = self
                .env
                .moor
                .run(&["exec", id, "wget", "-q", "-O", "-", url]);
            if ran.status.success() {
                return ran.stdout;
            }
            assert!(
                Instant::now() < end,
                "{url} did not answer in {id} within {DEADLINE:?}: {}",
                ran.stderr.trim_end()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The name of the lease `moor image bundle` holds for this bundle.
    pub fn lease(&self) -> String {
        format!(
            "bundle-{}",
            &oci::hex(self.dir.as_os_str().as_encoded_bytes())[..32]
        )
    }

    /// Deletes the containers and unbundles, asserting that nothing is left: no
    /// directory, no mount, no lease.
    pub fn remove(mut self) {
        self.delete_containers();
        let dir = self.dir.to_str().expect("utf-8 path").to_string();
        self.env.ok_in(&self.data, &["unbundle", &dir]);
        self.removed = true;
        assert!(!self.dir.exists(), "{dir} is left after unbundle");
        let mounts = mounted_below(&self.dir);
        assert!(mounts.is_empty(), "mounts left after unbundle: {mounts:?}");
        let leases = self.env.leases(&self.data);
        assert!(
            !leases.contains(&self.lease()),
            "the lease {} is left after unbundle: {leases:?}",
            self.lease()
        );
    }

    fn delete_containers(&self) {
        for id in self.containers.borrow_mut().drain(..) {
            let _ = self.env.moor.run(&["delete", "--force", &id]);
        }
    }
}

impl Drop for ImageBundle<'_> {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.delete_containers();
        let dir = self.dir.to_string_lossy().into_owned();
        let _ = self.env.run_in(&self.data, &["unbundle", &dir]);
        if !mounted_below(&self.dir).is_empty() {
            // Unbundle failed: do not leave an overlay behind on the host.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.join("rootfs"))
                .status();
        }
    }
}
