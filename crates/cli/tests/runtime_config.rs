//! Every `config.json` feature the runtime implements, run through the real `moor`
//! binary and checked from inside the container by the checker (`moor-checker report`,
//! `probe …`), and from the host where the kernel state is only visible there (the
//! host's own sysctls and hostname, the memory charged to a cgroup).
//!
//! ```text
//!  test ── Bundle (busybox + checker, config.json edited) ──▶ moor runtime run
//!                                                              │ moor-checker …
//!  Report::parse(stdout) ◀─────────── key=value lines ────────┘
//! ```
//!
//! Every test needs root and the static busybox (one also `script`, to give moor a
//! controlling terminal); without them it says so and skips (or fails under
//! `MOOR_TEST_STRICT=1`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tests::bundle::{Bundle, CHECKER};
use tests::checker::Report;
use tests::moor::{Moor, Ran};
use tests::scratch::Scratch;
use tests::{host, prereq, wait};

const MOOR: &str = env!("CARGO_BIN_EXE_moor");
const DEADLINE: Duration = Duration::from_secs(20);

/// One test's runtime, scratch space and busybox. `moor` is declared first so that it is
/// dropped first: it deletes the test's containers, whose state lives in the scratch dir.
struct Env {
    moor: Moor,
    scratch: Scratch,
    busybox: PathBuf,
}

fn setup(test: &str) -> Option<Env> {
    if !prereq::root() {
        return None;
    }
    let busybox = prereq::busybox()?;
    let scratch = Scratch::new(test);
    let moor = Moor::new(Path::new(MOOR), &scratch);
    Some(Env {
        moor,
        scratch,
        busybox,
    })
}

impl Env {
    fn bundle(&self, name: &str) -> Bundle {
        Bundle::busybox(&self.scratch, &self.busybox, name)
    }

    fn id(&self, name: &str) -> String {
        self.scratch.name(name)
    }

    /// The bundle's group path, as the base config sets it.
    fn group(&self, name: &str) -> String {
        format!("/moor-test/{}/{name}", self.scratch.prefix())
    }

    /// Saves the bundle and runs it in the foreground as container `name`.
    fn run(&self, bundle: &Bundle, name: &str) -> Ran {
        bundle.save();
        let dir = bundle.dir.to_string_lossy();
        self.moor.run(&["run", "--bundle", &dir, &self.id(name)])
    }

    /// Runs `args` (checker arguments after the program) and returns stdout, which must
    /// come from a successful run.
    fn checker(&self, bundle: &mut Bundle, name: &str, args: &[&str]) -> String {
        let mut full = vec![CHECKER];
        full.extend_from_slice(args);
        bundle.args(&full);
        let ran = self.run(bundle, name);
        assert!(
            ran.status.success(),
            "container {name} failed: {}\nstdout: {}\nstderr: {}",
            ran.status,
            ran.stdout,
            ran.stderr
        );
        ran.stdout
    }

    /// Runs the checker with `args` and parses what it printed.
    fn report(&self, bundle: &mut Bundle, name: &str, args: &[&str]) -> Report {
        let stdout = self.checker(bundle, name, args);
        Report::parse(&stdout).unwrap_or_else(|e| panic!("{e}\nstdout:\n{stdout}"))
    }

    /// Starts the bundle detached as container `name`.
    fn start_detached(&self, bundle: &Bundle, name: &str) {
        bundle.save();
        let dir = bundle.dir.to_string_lossy();
        let id = self.id(name);
        let stem = self.scratch.dir().join(name);
        let ran = self
            .moor
            .run_detached(&["run", "--detach", "--bundle", &dir, &id], &stem);
        assert!(ran.status.success(), "run --detach {id}: {ran:?}");
    }

    /// The host pid of container `name`'s init, which must be running.
    fn init_pid(&self, name: &str) -> i32 {
        let id = self.id(name);
        let pid = self.moor.state(&id)["pid"].as_i64().unwrap_or_default();
        assert!(pid > 0, "state of {id} has no pid");
        i32::try_from(pid).unwrap_or_default()
    }
}

/// Checker arguments written as one line (none of them holds a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Every value of `key` in checker output, in the order printed (chained probes of one
/// kind print the same key more than once; a [`Report`] keeps only the last).
fn values(stdout: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// The capability mask of `names`, by the numbers of `linux/capability.h`.
fn caps(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| match *n {
            "CAP_CHOWN" => 0,
            "CAP_KILL" => 5,
            "CAP_SETUID" => 7,
            "CAP_NET_BIND_SERVICE" => 10,
            "CAP_NET_RAW" => 13,
            "CAP_AUDIT_WRITE" => 29,
            other => panic!("no number for {other} in this test"),
        })
        .fold(0, |mask, n| mask | 1 << n)
}

fn host_ns(kind: &str) -> String {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}"));
    link.map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{kind}: {e}"))
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The mount point of the v1 hierarchy `controller` is bound to.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let is_it = fields.get(sep + 1) == Some(&"cgroup")
            && fields.get(sep + 3)?.split(',').any(|o| o == controller);
        is_it.then(|| PathBuf::from(fields[4]))
    })
}

// ---- process ----------------------------------------------------------------------

#[test]
fn args_reach_the_program_and_a_bare_name_is_found_on_path() {
    let Some(env) = setup("args") else { return };
    let mut b = env.bundle("args");
    // No slash in args[0]: found through the PATH of process.env, as execvp would.
    b.args(&[
        "moor-checker",
        "probe",
        "echo",
        "first=one  two",
        "",
        "three",
        "--",
        "probe",
        "echo",
        "second=x\\y",
    ]);
    let ran = env.run(&b, "args");
    assert!(ran.status.success(), "{ran:?}");
    assert_eq!(ran.stdout, "first=one  two  three\nsecond=x\\y\n");
}

#[test]
fn env_is_passed_exactly_as_configured() {
    let Some(env) = setup("env") else { return };
    let mut b = env.bundle("env");
    let wanted = [
        "PATH=/bin",
        "GREETING=hello world",
        "EMPTY=",
        "EQUALS=a=b=c",
        "MULTI=line1\nline2",
    ];
    b.set("/process/env", json!(wanted));
    let r = env.report(&mut b, "env", &["report"]);
    assert_eq!(r.env("PATH"), Some("/bin"));
    assert_eq!(r.env("GREETING"), Some("hello world"));
    assert_eq!(r.env("EMPTY"), Some(""));
    assert_eq!(r.env("EQUALS"), Some("a=b=c"));
    assert_eq!(r.env("MULTI"), Some("line1\nline2"));
    let names: Vec<&str> = r
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("env."))
        .collect();
    assert_eq!(
        names,
        ["EMPTY", "EQUALS", "GREETING", "MULTI", "PATH"],
        "the runtime added or dropped variables"
    );
}

#[test]
fn cwd_is_the_programs_working_directory() {
    let Some(env) = setup("cwd") else { return };
    let mut b = env.bundle("cwd");
    b.set("/process/cwd", json!("/home/user"));
    let r = env.report(&mut b, "cwd", &["report"]);
    assert_eq!(r.get("cwd"), Some("/home/user"));
}

#[test]
fn missing_cwd_fails_with_an_error_naming_it() {
    let Some(env) = setup("nocwd") else { return };
    let mut b = env.bundle("nocwd");
    // The runtime does not make a missing working directory (a read-only root could not
    // hold it anyway): it refuses to start the program, naming the directory.
    b.set("/process/cwd", json!("/no/such/dir"));
    b.args(&[CHECKER, "report"]);
    let ran = env.run(&b, "nocwd");
    assert_eq!(ran.code(), Some(1), "{ran:?}");
    assert!(
        ran.stderr.contains("working directory /no/such/dir")
            && ran.stderr.contains("no such file or directory"),
        "unclear error: {}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "the program ran: {}", ran.stdout);
    let listed = env.moor.ok(&["list", "-q"]);
    assert!(!listed.stdout.contains(&env.id("nocwd")), "left behind");
    assert!(host::cgroup_dirs(&env.group("nocwd")).is_empty());
}

#[test]
fn user_ids_supplementary_groups_and_umask_are_applied() {
    let Some(env) = setup("user") else { return };
    let mut b = env.bundle("user");
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 100], "umask": 0o027}),
    );
    let r = env.report(&mut b, "user", &["report"]);
    for key in ["uid", "euid", "suid", "fsuid"] {
        assert_eq!(r.get(key), Some("1000"), "{key}");
    }
    for key in ["gid", "egid", "sgid", "fsgid"] {
        assert_eq!(r.get(key), Some("1000"), "{key}");
    }
    assert_eq!(r.get("groups"), Some("5,100"));
    assert_eq!(r.get("umask"), Some("0027"));
}

#[test]
fn rlimits_are_lowered_as_configured() {
    let Some(env) = setup("rlimits") else { return };
    let mut b = env.bundle("rlimits");
    // Lowered only: this machine gives no CAP_SYS_RESOURCE to raise a hard limit.
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_STACK", "soft": 4_194_304u64, "hard": 8_388_608u64},
            {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
            {"type": "RLIMIT_CPU", "soft": 100, "hard": 200}
        ]),
    );
    let r = env.report(&mut b, "rlimits", &["report"]);
    let limit = |name: &str| r.rlimit(name).map(|(s, h)| format!("{s}:{h}"));
    assert_eq!(limit("NOFILE").as_deref(), Some("256:512"));
    assert_eq!(limit("CORE").as_deref(), Some("0:0"));
    assert_eq!(limit("STACK").as_deref(), Some("4194304:8388608"));
    assert_eq!(limit("MSGQUEUE").as_deref(), Some("4096:8192"));
    assert_eq!(limit("CPU").as_deref(), Some("100:200"));
}

#[test]
fn root_gets_the_bounding_set_and_empty_inheritable_and_ambient_sets() {
    let Some(env) = setup("rootcaps") else { return };
    let mut b = env.bundle("rootcaps");
    let r = env.report(&mut b, "rootcaps", &["report"]);
    // For uid 0 the kernel makes permitted and effective the bounding set at execve.
    let configured = caps(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(r.caps_bounding().ok(), Some(configured));
    assert_eq!(r.caps_effective().ok(), Some(configured));
    assert_eq!(r.caps_permitted().ok(), Some(configured));
    assert_eq!(
        r.caps_inheritable().ok(),
        Some(0),
        "inheritable not configured"
    );
    assert_eq!(r.caps_ambient().ok(), Some(0), "ambient not configured");
}

#[test]
fn non_root_user_gets_exactly_the_configured_capability_sets() {
    let Some(env) = setup("usercaps") else { return };
    let mut b = env.bundle("usercaps");
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set(
        "/process/capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
            "permitted": ["CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
            "effective": ["CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
            "inheritable": ["CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
            "ambient": ["CAP_KILL", "CAP_NET_RAW"]
        }),
    );
    let r = env.report(&mut b, "usercaps", &["report"]);
    assert_eq!(r.uid().ok(), Some(1000));
    let ambient = caps(&["CAP_KILL", "CAP_NET_RAW"]);
    assert_eq!(
        r.caps_bounding().ok(),
        Some(caps(&[
            "CAP_CHOWN",
            "CAP_KILL",
            "CAP_NET_RAW",
            "CAP_SETUID"
        ]))
    );
    assert_eq!(
        r.caps_inheritable().ok(),
        Some(caps(&["CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"]))
    );
    assert_eq!(r.caps_ambient().ok(), Some(ambient));
    // A non-root execve of a file without capabilities keeps only the ambient set as
    // permitted and effective: CAP_SETUID is dropped by the kernel, not the runtime.
    assert_eq!(r.caps_permitted().ok(), Some(ambient));
    assert_eq!(r.caps_effective().ok(), Some(ambient));
}

#[test]
fn no_new_privileges_follows_the_config() {
    let Some(env) = setup("nnp") else { return };
    for (name, flag, want) in [("nnp-on", true, "1"), ("nnp-off", false, "0")] {
        let mut b = env.bundle(name);
        b.set("/process/noNewPrivileges", json!(flag));
        let r = env.report(&mut b, name, &["report"]);
        assert_eq!(r.get("no_new_privs"), Some(want), "noNewPrivileges {flag}");
    }
}

#[test]
fn oom_score_adj_is_applied() {
    let Some(env) = setup("oomadj") else { return };
    let mut b = env.bundle("oomadj");
    // Positive: lowering it below the runtime's needs CAP_SYS_RESOURCE, absent here.
    b.set("/process/oomScoreAdj", json!(500));
    let r = env.report(&mut b, "oomadj", &["report"]);
    assert_eq!(r.get("oom_score_adj"), Some("500"));
}

#[test]
fn terminal_false_gives_the_program_no_tty() {
    let Some(env) = setup("notty") else { return };
    let mut b = env.bundle("notty");
    b.set("/process/terminal", json!(false));
    let r = env.report(&mut b, "notty", &["report"]);
    for stream in ["stdin", "stdout", "stderr"] {
        assert_eq!(r.get(&format!("tty.{stream}")), Some("no"), "{stream}");
    }
    assert_eq!(r.get("tty.name"), None);
}

#[test]
fn terminal_false_container_cannot_open_the_callers_terminal() {
    let Some(env) = setup("session") else { return };
    let Some(script) = prereq::program("script") else {
        return;
    };
    let mut b = env.bundle("session");
    b.args(&[CHECKER, "probe", "open", "/dev/tty", "rw"]);
    b.save();
    // `script` runs moor with a new pseudo-terminal as its controlling terminal, the way
    // an interactive shell would; the container's stdio are files, so /dev/tty is its only
    // way to that terminal, and only while it shares the caller's session.
    let out = env.scratch.dir().join("session.out");
    let command = format!(
        "'{}' runtime --root '{}' run --bundle '{}' '{}' </dev/null >'{}' 2>&1",
        MOOR,
        env.moor.root().display(),
        b.dir.display(),
        env.id("session"),
        out.display()
    );
    let child = std::process::Command::new(script)
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    let ran = tests::moor::finish(child, "script -c moor runtime run");
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(ran.status.success(), "{ran:?}\ncontainer: {printed}");
    assert_eq!(
        printed, "probe.open=ENXIO\n",
        "the container reached the caller's terminal"
    );
}

// ---- uts, root ------------------------------------------------------------------------

#[test]
fn hostname_and_domainname_are_set_in_the_new_uts_namespace() {
    let Some(env) = setup("uts") else { return };
    let host_name = read_trimmed("/proc/sys/kernel/hostname");
    let host_domain = read_trimmed("/proc/sys/kernel/domainname");
    let mut b = env.bundle("uts");
    b.set("/hostname", json!("cfg-host"));
    b.set("/domainname", json!("cfg.example"));
    let r = env.report(&mut b, "uts", &["report"]);
    assert_eq!(r.get("hostname"), Some("cfg-host"));
    assert_eq!(r.get("domainname"), Some("cfg.example"));
    assert_eq!(read_trimmed("/proc/sys/kernel/hostname"), host_name);
    assert_eq!(read_trimmed("/proc/sys/kernel/domainname"), host_domain);
}

#[test]
fn readonly_root_refuses_writes() {
    let Some(env) = setup("roroot") else { return };
    let mut b = env.bundle("roroot");
    b.set("/root/readonly", json!(true));
    let r = env.report(&mut b, "roroot", &words("probe write /x hi -- report"));
    assert_eq!(r.probe("write"), Some("EROFS"));
    assert!(r.mount("/").is_some_and(|m| m.has_option("ro")));
    assert!(!b.rootfs.join("x").exists());
}

#[test]
fn writable_root_accepts_writes_seen_on_the_host() {
    let Some(env) = setup("rwroot") else { return };
    let mut b = env.bundle("rwroot");
    b.set("/root/readonly", json!(false));
    let r = env.report(
        &mut b,
        "rwroot",
        &["probe", "write", "/written", "from inside", "--", "report"],
    );
    assert_eq!(r.probe("write"), Some("ok"));
    assert!(r.mount("/").is_some_and(|m| m.has_option("rw")));
    let written = std::fs::read_to_string(b.rootfs.join("written")).unwrap_or_default();
    assert_eq!(written, "from inside");
}

#[test]
fn root_path_may_be_relative_or_absolute() {
    use std::os::unix::fs::MetadataExt;
    let Some(env) = setup("rootpath") else { return };
    let mut b = env.bundle("rootpath");
    let ino = std::fs::metadata(&b.rootfs)
        .map(|m| m.ino().to_string())
        .unwrap_or_default();
    let absolute = b.rootfs.to_string_lossy().into_owned();
    for (name, path) in [("rel", "rootfs"), ("abs", absolute.as_str())] {
        b.set("/root/path", json!(path));
        let r = env.report(&mut b, name, &["report"]);
        assert_eq!(r.get("root.ino"), Some(ino.as_str()), "root.path {path}");
    }
}

// ---- mounts -----------------------------------------------------------------------

#[test]
fn bind_mounts_of_files_and_directories_honour_ro() {
    let Some(env) = setup("bind") else { return };
    let share = env.scratch.dir().join("share");
    std::fs::create_dir_all(&share).expect("share dir");
    std::fs::write(share.join("data"), "x").expect("share/data");
    let file = env.scratch.dir().join("host.txt");
    // Printed by `probe cat`, so it is a key=value line the report parser takes.
    std::fs::write(&file, "hostfile=from the host\n").expect("host.txt");
    let mut b = env.bundle("bind");
    let (share_s, file_s) = (share.to_string_lossy(), file.to_string_lossy());
    b.push(
        "/mounts",
        json!({"destination": "/mnt/ro", "type": "bind", "source": share_s,
               "options": ["bind", "ro"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/mnt/rw", "type": "none", "source": share_s,
               "options": ["bind"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/etc/host.txt", "type": "bind", "source": file_s,
               "options": ["bind", "ro"]}),
    );
    let out = env.checker(
        &mut b,
        "bind",
        &words(
            "probe cat /etc/host.txt -- \
             probe write /etc/host.txt y -- \
             probe write /mnt/ro/new x -- \
             probe write /mnt/rw/new hello -- \
             probe open /mnt/ro/data r -- \
             report",
        ),
    );
    assert_eq!(values(&out, "probe.write"), ["EROFS", "EROFS", "ok"]);
    let r = Report::parse(&out).expect("report");
    assert_eq!(r.get("hostfile"), Some("from the host"));
    assert_eq!(r.probe("open"), Some("ok"));
    assert!(r.mount("/mnt/ro").is_some_and(|m| m.has_option("ro")));
    assert!(r.mount("/mnt/rw").is_some_and(|m| m.has_option("rw")));
    assert!(r.mount("/etc/host.txt").is_some_and(|m| m.has_option("ro")));
    assert_eq!(
        std::fs::read_to_string(share.join("new")).ok().as_deref(),
        Some("hello")
    );
}

#[test]
fn rbind_brings_submounts_and_bind_does_not() {
    let Some(env) = setup("rbind") else { return };
    // A host directory with mounts below it, and nothing this test has to mount:
    // /sys/fs/cgroup holds the cgroup hierarchies (read-only in the container).
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let sub = host_mounts.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let name = fields.get(4)?.strip_prefix("/sys/fs/cgroup/")?;
        let sep = fields.iter().position(|f| *f == "-")?;
        let fstype = fields.get(sep + 1)?;
        (!name.contains('/')).then(|| (name.to_string(), fstype.to_string()))
    });
    if !prereq::require("a mount below /sys/fs/cgroup on the host", sub.is_some()) {
        return;
    }
    let Some((name, fstype)) = sub else { return };
    let mut b = env.bundle("rbind");
    b.push(
        "/mounts",
        json!({"destination": "/mnt/r", "type": "bind", "source": "/sys/fs/cgroup",
               "options": ["rbind", "ro"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/mnt/b", "type": "bind", "source": "/sys/fs/cgroup",
               "options": ["bind", "ro"]}),
    );
    let r = env.report(&mut b, "rbind", &["report"]);
    let below = r.mount(&format!("/mnt/r/{name}"));
    assert_eq!(
        below.as_ref().map(|m| m.fstype.as_str()),
        Some(fstype.as_str())
    );
    assert!(below.is_some_and(|m| m.has_option("ro")), "ro is recursive");
    assert!(r.mount("/mnt/b").is_some());
    assert_eq!(r.mount(&format!("/mnt/b/{name}")), None);
}

#[test]
fn tmpfs_options_and_mount_flags_reach_the_kernel() {
    let Some(env) = setup("tmpfs") else { return };
    let mut b = env.bundle("tmpfs");
    b.push(
        "/mounts",
        json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "noexec", "size=2m", "mode=1770"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/mnt/ro", "type": "tmpfs", "source": "tmpfs",
               "options": ["ro", "noatime"]}),
    );
    let r = env.report(
        &mut b,
        "tmpfs",
        &words("probe write /mnt/ro/x x -- probe stat /mnt/t -- report"),
    );
    let t = r.mount("/mnt/t").expect("mount /mnt/t");
    assert_eq!(t.fstype, "tmpfs");
    for flag in ["nosuid", "nodev", "noexec", "rw"] {
        assert!(t.has_option(flag), "{flag} in {:?}", t.options);
    }
    assert!(t.super_options.iter().any(|o| o == "size=2048k"), "{t:?}");
    assert!(t.super_options.iter().any(|o| o == "mode=1770"), "{t:?}");
    assert_eq!(r.get("probe.stat.mode"), Some("41770"));
    let ro = r.mount("/mnt/ro").expect("mount /mnt/ro");
    assert!(ro.has_option("ro") && ro.has_option("noatime"), "{ro:?}");
    assert_eq!(r.probe("write"), Some("EROFS"));
}

#[test]
fn proc_sysfs_mqueue_devpts_and_shm_are_mounted_as_configured() {
    let Some(env) = setup("specialfs") else {
        return;
    };
    let mut b = env.bundle("specialfs");
    let r = env.report(
        &mut b,
        "specialfs",
        &words("probe write /sys/kernel/uevent_helper x -- report"),
    );
    let fstype = |dest: &str| r.mount(dest).map(|m| m.fstype);
    assert_eq!(fstype("/proc").as_deref(), Some("proc"));
    assert_eq!(fstype("/dev/mqueue").as_deref(), Some("mqueue"));
    assert_eq!(fstype("/dev/shm").as_deref(), Some("tmpfs"));
    let sys = r.mount("/sys").expect("mount /sys");
    assert_eq!(sys.fstype, "sysfs");
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.has_option(flag), "/sys {flag}: {sys:?}");
    }
    assert_eq!(r.probe("write"), Some("EROFS"));
    let pts = r.mount("/dev/pts").expect("mount /dev/pts");
    assert_eq!(pts.fstype, "devpts");
    assert!(
        pts.has_option("nosuid") && pts.has_option("noexec"),
        "{pts:?}"
    );
    for opt in ["gid=5", "mode=620", "ptmxmode=666"] {
        assert!(pts.super_options.iter().any(|o| o == opt), "{opt}: {pts:?}");
    }
    let mq = r.mount("/dev/mqueue").expect("mount /dev/mqueue");
    assert!(mq.has_option("nodev") && mq.has_option("noexec"), "{mq:?}");
}

/// The optional fields (`shared:N`, `master:N`, `unbindable`) of each mount point in a
/// mountinfo text.
fn propagation_fields(mountinfo: &str) -> Vec<(String, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let optional = fields.get(6..sep)?.iter().map(|f| f.to_string()).collect();
            Some((fields.get(4)?.to_string(), optional))
        })
        .collect()
}

#[test]
fn mount_propagation_options_are_applied() {
    let Some(env) = setup("propagation") else {
        return;
    };
    let share = env.scratch.dir().join("share");
    std::fs::create_dir_all(&share).expect("share dir");
    let share = share.to_string_lossy().into_owned();
    let mut b = env.bundle("propagation");
    for (dest, option) in [
        ("/mnt/shared", "rshared"),
        ("/mnt/unbindable", "runbindable"),
        ("/mnt/private", "rprivate"),
        ("/mnt/slave", "rslave"),
    ] {
        b.push(
            "/mounts",
            json!({"destination": dest, "type": "bind", "source": share,
                   "options": ["bind", option]}),
        );
    }
    let out = env.checker(
        &mut b,
        "propagation",
        &["probe", "cat", "/proc/self/mountinfo"],
    );
    let fields = propagation_fields(&out);
    let of = |dest: &str| -> Vec<String> {
        let found = fields.iter().rev().find(|(d, _)| d == dest);
        found
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no mount at {dest} in:\n{out}"))
    };
    assert!(of("/mnt/shared").iter().any(|f| f.starts_with("shared:")));
    assert_eq!(of("/mnt/unbindable"), ["unbindable"]);
    assert_eq!(of("/mnt/private"), Vec::<String>::new());
    // A slave of a mount with no peers is private (the bind is a fresh clone).
    assert!(!of("/mnt/slave").iter().any(|f| f.starts_with("shared:")));
}

#[test]
fn cgroup_mount_shows_the_containers_own_groups_read_only() {
    let Some(env) = setup("cgmount") else { return };
    let mut b = env.bundle("cgmount");
    // 65 MiB: a value only this container's memory group has.
    b.set("/linux/resources/memory", json!({"limit": 68_157_440}));
    let out = env.checker(
        &mut b,
        "cgmount",
        &words(
            "probe cat /sys/fs/cgroup/memory/memory.limit_in_bytes -- \
             probe cat /sys/fs/cgroup/unified/cgroup.procs -- \
             probe write /sys/fs/cgroup/memory/memory.limit_in_bytes 1 -- \
             report",
        ),
    );
    // The two `cat`s print raw lines: the limit, then the group's only process (the
    // checker, pid 1 in its namespace). The report follows.
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("68157440"), "{out}");
    assert_eq!(lines.next(), Some("1"), "{out}");
    let r = Report::parse(&lines.collect::<Vec<_>>().join("\n")).expect("report");
    assert_eq!(r.probe("write"), Some("EROFS"));
    let memory = r.mount("/sys/fs/cgroup/memory").expect("memory group");
    assert_eq!(memory.fstype, "cgroup");
    assert!(memory.has_option("ro"), "{memory:?}");
    let unified = r.mount("/sys/fs/cgroup/unified").expect("cgroup2 group");
    assert_eq!(unified.fstype, "cgroup2");
    assert!(unified.has_option("ro"), "{unified:?}");
    for absent in ["cpu", "cpuset", "pids", "devices", "freezer", "systemd"] {
        let dest = format!("/sys/fs/cgroup/{absent}");
        assert_eq!(r.mount(&dest), None, "{dest}: no limit asked for it");
    }
}

// ---- namespaces -------------------------------------------------------------------

#[test]
fn new_namespaces_differ_from_the_hosts() {
    let Some(env) = setup("newns") else { return };
    let mut b = env.bundle("newns");
    b.push("/linux/namespaces", json!({"type": "cgroup"}));
    let r = env.report(&mut b, "newns", &["report"]);
    for kind in ["pid", "net", "mnt", "ipc", "uts", "cgroup"] {
        let inside = r.namespace(kind).expect("namespace in report");
        assert!(inside.starts_with(&format!("{kind}:[")), "{inside}");
        assert_ne!(inside, host_ns(kind), "{kind} namespace is the host's");
    }
    assert_eq!(r.namespace("user"), Some(host_ns("user").as_str()));
    assert_eq!(r.get("pid"), Some("1"));
}

#[test]
fn namespaces_joined_by_path_are_shared_with_another_container() {
    let Some(env) = setup("joinns") else { return };
    let mut a = env.bundle("ns-a");
    a.args(&["sleep", "600"]);
    a.set("/hostname", json!("ns-a"));
    env.start_detached(&a, "ns-a");
    let pid = env.init_pid("ns-a");

    let mut b = env.bundle("ns-b");
    b.remove("/hostname");
    let path = |kind: &str| format!("/proc/{pid}/ns/{kind}");
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "pid", "path": path("pid")},
            {"type": "network", "path": path("net")},
            {"type": "ipc", "path": path("ipc")},
            {"type": "uts", "path": path("uts")},
            {"type": "mount"}
        ]),
    );
    let r = env.report(&mut b, "ns-b", &words("probe ls-proc -- report"));
    for kind in ["pid", "net", "ipc", "uts"] {
        let a_ns = std::fs::read_link(path(kind))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_eq!(r.namespace(kind), Some(a_ns.as_str()), "{kind}");
    }
    assert_ne!(r.namespace("mnt").map(str::to_string), Some(host_ns("mnt")));
    assert_eq!(r.get("hostname"), Some("ns-a"));
    // B sees A's init as pid 1 and is not pid 1 itself.
    assert_eq!(r.get("proc.1.comm"), Some("sleep"));
    assert_ne!(r.get("pid"), Some("1"));
}

#[test]
fn cgroup_namespace_roots_proc_self_cgroup_at_the_group() {
    let Some(env) = setup("cgns") else { return };
    let mut with = env.bundle("cgns");
    with.push("/linux/namespaces", json!({"type": "cgroup"}));
    with.set("/linux/resources/pids", json!({"limit": 100}));
    let r = env.report(&mut with, "cgns", &["report"]);
    let lines = r.get("cgroup").expect("cgroup in report").to_string();
    for line in lines.split(';') {
        assert!(
            line.ends_with(":/"),
            "not rooted at the group: {line} in {lines}"
        );
    }

    let mut without = env.bundle("nocgns");
    let r = env.report(&mut without, "nocgns", &["report"]);
    let lines = r.get("cgroup").expect("cgroup in report").to_string();
    let unified = format!("0::{}", env.group("nocgns"));
    assert!(
        lines.split(';').any(|l| l == unified),
        "{unified} not in {lines}"
    );
}

// ---- devices ----------------------------------------------------------------------

#[test]
fn configured_device_nodes_get_their_type_mode_and_owner() {
    let Some(env) = setup("devnodes") else { return };
    let mut b = env.bundle("devnodes");
    b.set(
        "/linux/devices",
        json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
             "fileMode": 0o640, "uid": 1000, "gid": 5},
            {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200,
             "fileMode": 0o600, "uid": 0, "gid": 0}
        ]),
    );
    let out = env.checker(
        &mut b,
        "devnodes",
        &words("probe stat /dev/fuse -- probe stat /dev/net/tun -- probe open /dev/net/tun w"),
    );
    assert_eq!(values(&out, "probe.stat"), ["ok", "ok"]);
    assert_eq!(values(&out, "probe.stat.mode"), ["20640", "20600"]);
    assert_eq!(values(&out, "probe.stat.uid"), ["1000", "0"]);
    assert_eq!(values(&out, "probe.stat.gid"), ["5", "0"]);
    // A configured node is also allowed by the device cgroup.
    assert_eq!(values(&out, "probe.open"), ["ok"]);
}

#[test]
fn default_devices_exist_and_work() {
    let Some(env) = setup("devdefault") else {
        return;
    };
    let mut b = env.bundle("devdefault");
    let nodes = ["null", "zero", "full", "random", "urandom", "tty"].map(|n| format!("/dev/{n}"));
    let mut args = Vec::new();
    for node in &nodes {
        args.extend(["probe", "stat", node.as_str(), "--"]);
    }
    args.extend([
        "probe",
        "write",
        "/dev/null",
        "x",
        "--",
        "probe",
        "write",
        "/dev/full",
        "x",
        "--",
        "probe",
        "open",
        "/dev/zero",
        "r",
        "--",
        "probe",
        "open",
        "/dev/random",
        "r",
        "--",
        "probe",
        "open",
        "/dev/urandom",
        "r",
        "--",
        "probe",
        "open",
        "/dev/tty",
        "rw",
    ]);
    let out = env.checker(&mut b, "devdefault", &args);
    assert_eq!(values(&out, "probe.stat.mode"), ["20666"; 6]);
    assert_eq!(values(&out, "probe.stat.uid"), ["0"; 6]);
    assert_eq!(values(&out, "probe.write"), ["ok", "ENOSPC"]);
    // /dev/tty opens (ENXIO: no controlling terminal), so the cgroup let it through.
    assert_eq!(values(&out, "probe.open"), ["ok", "ok", "ok", "ENXIO"]);
}

#[test]
fn dev_links_and_ptmx_point_where_expected() {
    let Some(env) = setup("devlinks") else { return };
    let mut b = env.bundle("devlinks");
    let links = [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    let mut args = Vec::new();
    for (link, _) in links {
        args.extend(["probe", "readlink", link, "--"]);
    }
    args.extend(["probe", "open", "/dev/ptmx", "rw"]);
    let out = env.checker(&mut b, "devlinks", &args);
    let targets: Vec<&str> = links.iter().map(|(_, t)| *t).collect();
    assert_eq!(values(&out, "probe.readlink.target"), targets);
    assert_eq!(
        values(&out, "probe.open"),
        ["ok"],
        "a new pty from /dev/ptmx"
    );
}

// ---- sysctl, masked and read-only paths, propagation, annotations -----------------

#[test]
fn sysctls_apply_inside_and_leave_the_host_alone() {
    let Some(env) = setup("sysctl") else { return };
    let forward = "/proc/sys/net/ipv4/ip_forward";
    let shmmax = "/proc/sys/kernel/shmmax";
    let (host_forward, host_shmmax) = (read_trimmed(forward), read_trimmed(shmmax));
    let mut b = env.bundle("sysctl");
    let value = if host_forward == "1" { "0" } else { "1" };
    b.set(
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": value, "kernel.shmmax": "123456789"}),
    );
    let r = env.report(&mut b, "sysctl", &["report"]);
    assert_eq!(r.get("sysctl.net.ipv4.ip_forward"), Some(value));
    assert_eq!(r.get("sysctl.kernel.shmmax"), Some("123456789"));
    assert_eq!(read_trimmed(forward), host_forward);
    assert_eq!(read_trimmed(shmmax), host_shmmax);
}

#[test]
fn masked_paths_hide_files_and_directories() {
    let Some(env) = setup("masked") else { return };
    let mut b = env.bundle("masked");
    // If it leaked, `probe cat` would print it as a key=value line.
    std::fs::write(b.rootfs.join("etc/secret"), "secret=leaked\n").expect("secret");
    std::fs::create_dir_all(b.rootfs.join("etc/secretdir")).expect("secretdir");
    std::fs::write(b.rootfs.join("etc/secretdir/inner"), "x").expect("inner");
    b.push("/linux/maskedPaths", json!("/etc/secret"));
    b.push("/linux/maskedPaths", json!("/etc/secretdir"));
    let r = env.report(
        &mut b,
        "masked",
        &words(
            "probe cat /etc/secret -- \
             probe open /etc/secretdir/inner r -- \
             probe write /etc/secretdir/new x -- \
             probe stat /proc/keys -- \
             report",
        ),
    );
    assert_eq!(r.get("secret"), None, "masked file was readable");
    assert_eq!(r.probe("open"), Some("ENOENT"));
    assert_eq!(r.probe("write"), Some("EROFS"));
    let dir = r.mount("/etc/secretdir").expect("mask over the directory");
    assert_eq!(dir.fstype, "tmpfs");
    assert!(dir.has_option("ro"));
    // From the base bundle: a file under the null device, a directory under a tmpfs.
    if Path::new("/proc/keys").exists() {
        assert_eq!(r.get("probe.stat.mode"), Some("20666"), "/proc/keys");
    }
    if Path::new("/sys/firmware").is_dir() {
        let firmware = r.mount("/sys/firmware").expect("mask over /sys/firmware");
        assert!(firmware.fstype == "tmpfs" && firmware.has_option("ro"));
    }
}

#[test]
fn readonly_paths_refuse_writes_in_a_writable_root() {
    let Some(env) = setup("ropaths") else { return };
    let mut b = env.bundle("ropaths");
    b.set("/root/readonly", json!(false));
    b.push("/linux/readonlyPaths", json!("/etc"));
    let out = env.checker(
        &mut b,
        "ropaths",
        &words(
            "probe write /etc/new x -- \
             probe write /proc/sys/kernel/hostname x -- \
             probe write /tmp/new y",
        ),
    );
    assert_eq!(values(&out, "probe.write"), ["EROFS", "EROFS", "ok"]);
}

#[test]
fn rootfs_propagation_is_applied_to_the_containers_root() {
    let Some(env) = setup("rootprop") else { return };
    for (mode, wanted) in [
        ("private", None),
        ("rslave", None),
        ("shared", Some("shared:")),
        ("unbindable", Some("unbindable")),
    ] {
        let mut b = env.bundle(mode);
        b.set("/linux/rootfsPropagation", json!(mode));
        let out = env.checker(&mut b, mode, &["probe", "cat", "/proc/self/mountinfo"]);
        let fields = propagation_fields(&out);
        let root = fields
            .iter()
            .find(|(d, _)| d == "/")
            .map(|(_, f)| f.clone());
        let root = root.unwrap_or_else(|| panic!("{mode}: no / in:\n{out}"));
        match wanted {
            Some(field) => assert!(
                root.iter().any(|f| f.starts_with(field)),
                "{mode}: / has {root:?}"
            ),
            // No peer on this host to be a slave of: private either way.
            None => assert!(
                !root.iter().any(|f| f.starts_with("shared:")),
                "{mode}: / has {root:?}"
            ),
        }
    }
}

#[test]
fn annotations_appear_in_state() {
    let Some(env) = setup("annotations") else {
        return;
    };
    let mut b = env.bundle("annotations");
    let annotations = json!({"org.example.key": "value", "moor.test/other": "a b=c"});
    b.set("/annotations", annotations.clone());
    b.args(&["true"]);
    b.save();
    let id = env.id("annotations");
    let stem = env.scratch.dir().join("annotations");
    let dir = b.dir.to_string_lossy();
    let ran = env
        .moor
        .run_detached(&["create", "--bundle", &dir, &id], &stem);
    assert!(ran.status.success(), "{ran:?}");
    let state = env.moor.state(&id);
    assert_eq!(state["annotations"], annotations);
    assert_eq!(state["status"], Value::from("created"));
    env.moor.ok(&["delete", "--force", &id]);
}

// ---- memory -------------------------------------------------------------------------

#[test]
fn container_runs_true_under_a_one_mib_memory_limit() {
    let Some(env) = setup("onemib") else { return };
    let mut b = env.bundle("onemib");
    b.args(&["true"]);
    b.set("/linux/resources/memory", json!({"limit": 1_048_576}));
    let ran = env.run(&b, "onemib");
    assert_eq!(ran.code(), Some(0), "{ran:?}");
}

#[test]
fn runtime_memory_is_not_charged_to_the_container() {
    let Some(env) = setup("charge") else { return };
    let Some(memory) = v1_mount("memory") else {
        prereq::require("a v1 memory hierarchy", false);
        return;
    };
    let mut b = env.bundle("charge");
    b.args(&["true"]);
    // Generous, so that reclaim hides nothing: whatever was charged shows in the peak.
    b.set("/linux/resources/memory", json!({"limit": 67_108_864}));
    let id = env.id("charge");
    env.start_detached(&b, "charge");
    wait::wait_until("the container to exit", DEADLINE, || {
        env.moor.status(&id) == "stopped"
    });
    let group = memory.join(env.group("charge").trim_start_matches('/'));
    let peak: u64 = read_trimmed(group.join("memory.max_usage_in_bytes"))
        .parse()
        .expect("a number");
    // Measured on this machine: `true` alone peaks at 256 or 512 KiB (page tables,
    // stacks, kernel objects, charged in per-CPU batches of 64 pages); the moor binary
    // alone, executed in a fresh group (`moor runtime list`), peaks at 1 MiB, even with
    // its file pages already cached and charged elsewhere. A runtime that executed
    // itself inside the group to set the container up (as `runc init` does), or moved
    // its own process in, would put the peak above 1 MiB; moor clones its child without
    // executing anything and joins just before the user's execve. At most 1 MiB leaves
    // two more batches of room for scheduling noise.
    assert!(
        peak <= 1 << 20,
        "peak {peak} bytes charged to the container"
    );
    env.moor.ok(&["delete", &id]);
    assert!(host::cgroup_dirs(&env.group("charge")).is_empty());
}

#[test]
fn a_new_network_namespace_has_its_loopback_up() {
    let Some(env) = setup("loopback") else { return };
    let mut b = env.bundle("lo");
    // IFF_UP is bit 0 of the interface flags the kernel shows in sysfs.
    b.args(&["cat", "/sys/class/net/lo/flags"]);
    let ran = env.run(&b, "lo");
    assert!(ran.status.success(), "{ran:?}");
    let flags = u32::from_str_radix(ran.stdout.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("flags {:?}: {e}", ran.stdout));
    assert_eq!(flags & 1, 1, "lo is down: flags {flags:#x}");
}
