//! A container's resources through the real `moor` binary, read back on the host from
//! the kernel's own files: where the groups go (`linux.cgroupsPath`), the v1 limits of a
//! hybrid host, the cgroup2 group's membership, freezing, killing and `populated`, the
//! device rules (checked from inside with the checker), and that `delete` leaves no
//! group behind.
//!
//! ```text
//!   moor runtime create|run -d ──▶ /sys/fs/cgroup/<hierarchy>/<group>/…   read here
//!                        └──────▶ container: moor-checker probe …         parsed here
//! ```
//!
//! cgroup v2 resource files are tested against a fake root in the runtime crate; here
//! v2 is the hybrid host's controller-less tree. Every test needs root and the static
//! busybox, and the hierarchy it reads; without them it says so and skips (or fails
//! under `MOOR_TEST_STRICT=1`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tests::bundle::{Bundle, CHECKER};
use tests::checker::Report;
use tests::moor::{Moor, Ran, remove_cgroup_everywhere};
use tests::scratch::Scratch;
use tests::{host, prereq, wait};

const MOOR: &str = env!("CARGO_BIN_EXE_moor");
const DEADLINE: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

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

    /// `create` or `run --detach` (`verb`) of the bundle as container `name`; what the
    /// container prints goes to `<scratch>/<name>.out`.
    fn launch(&self, verb: &[&str], bundle: &Bundle, name: &str) -> Ran {
        bundle.save();
        let dir = bundle.dir.to_string_lossy();
        let id = self.id(name);
        let mut args = verb.to_vec();
        args.extend(["--bundle", &dir, &id]);
        let stem = self.scratch.dir().join(name);
        self.moor.run_detached(&args, &stem)
    }

    /// Runs the bundle in the foreground as container `name`.
    fn run(&self, bundle: &Bundle, name: &str) -> Ran {
        bundle.save();
        let dir = bundle.dir.to_string_lossy();
        self.moor.run(&["run", "--bundle", &dir, &self.id(name)])
    }

    fn create(&self, bundle: &Bundle, name: &str) {
        let ran = self.launch(&["create"], bundle, name);
        assert!(ran.status.success(), "create {name}: {ran:?}");
    }

    fn start_detached(&self, bundle: &Bundle, name: &str) {
        let ran = self.launch(&["run", "--detach"], bundle, name);
        assert!(ran.status.success(), "run --detach {name}: {ran:?}");
    }

    /// What container `name` has printed so far.
    fn output(&self, name: &str) -> String {
        let path = self.scratch.dir().join(format!("{name}.out"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The host pid of container `name`'s init, which must be running.
    fn init_pid(&self, name: &str) -> i32 {
        let id = self.id(name);
        let pid = self.moor.state(&id)["pid"].as_i64().unwrap_or_default();
        assert!(pid > 0, "state of {id} has no pid");
        i32::try_from(pid).unwrap_or_default()
    }

    fn wait_stopped(&self, name: &str) {
        let id = self.id(name);
        wait::wait_until(&format!("{id} to stop"), DEADLINE, || {
            self.moor.status(&id) == "stopped"
        });
    }
}

/// Removes a group outside `moor-test/<prefix>` when the test ends, however it ends.
struct GroupGuard(PathBuf);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        remove_cgroup_everywhere(&self.0);
    }
}

/// Checker arguments written as one line (none of them holds a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Every value of `key` in checker output, in the order printed.
fn values(stdout: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The mount point of the cgroup2 tree, or of the v1 hierarchy `controller` is bound to.
fn mount_of(controller: Option<&str>) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let fstype = *fields.get(sep + 1)?;
        let options = fields.get(sep + 3)?;
        let is_it = match controller {
            None => fstype == "cgroup2",
            Some(c) => fstype == "cgroup" && options.split(',').any(|o| o == c),
        };
        is_it.then(|| PathBuf::from(fields[4]))
    })
}

/// The hierarchy's mount point, or a loud skip naming it.
fn hierarchy(controller: Option<&str>) -> Option<PathBuf> {
    let what = match controller {
        None => "a cgroup2 tree (hybrid or unified host)".to_string(),
        Some(c) => format!("a v1 {c} hierarchy (hybrid host)"),
    };
    let found = mount_of(controller);
    if !prereq::require(&what, found.is_some()) {
        return None;
    }
    found
}

/// `group`'s directory in the hierarchy mounted at `mount`.
fn dir_in(mount: &Path, group: &str) -> PathBuf {
    mount.join(group.trim_start_matches('/'))
}

fn procs(dir: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The value of `key` in a flat-keyed file such as `cgroup.events`.
fn key_of(dir: &Path, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// The runtime's own cgroup2 group (this test's, which the `moor` it spawns inherits).
fn own_unified_group() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = text.lines().find_map(|l| l.strip_prefix("0::"));
    PathBuf::from(own.unwrap_or("/"))
}

// ---- where the groups go ------------------------------------------------------------

#[test]
fn absolute_cgroups_path_names_the_group_in_every_hierarchy_it_needs() {
    let Some(env) = setup("abspath") else { return };
    let (Some(unified), Some(memory), Some(pids)) = (
        hierarchy(None),
        hierarchy(Some("memory")),
        hierarchy(Some("pids")),
    ) else {
        return;
    };
    let group = format!("/moor-test/{}/abs/deeper", env.scratch.prefix());
    let mut b = env.bundle("abspath");
    b.args(&["sleep", "600"]);
    b.set("/linux/cgroupsPath", json!(group));
    b.set("/linux/resources/memory", json!({"limit": 64 * MIB}));
    b.set("/linux/resources/pids", json!({"limit": 100}));
    env.start_detached(&b, "abspath");
    let pid = env.init_pid("abspath");
    for mount in [&unified, &memory, &pids] {
        let dir = dir_in(mount, &group);
        assert_eq!(procs(&dir), [pid], "{}", dir.display());
    }
    // On a hybrid host a v1 group is made only for a controller the limits ask for.
    let dirs = host::cgroup_dirs(&group);
    let mut wanted = [&unified, &memory, &pids]
        .map(|m| dir_in(m, &group))
        .to_vec();
    wanted.sort();
    let mut got = dirs.clone();
    got.sort();
    assert_eq!(got, wanted, "groups in hierarchies nobody asked for");
    env.moor.ok(&["delete", "--force", &env.id("abspath")]);
    assert_eq!(host::cgroup_dirs(&group), Vec::<PathBuf>::new());
}

#[test]
fn default_cgroups_path_is_moor_slash_id() {
    let Some(env) = setup("dfltpath") else { return };
    let Some(unified) = hierarchy(None) else {
        return;
    };
    let id = env.id("dfltpath");
    let group = format!("/moor/{id}");
    let _guard = GroupGuard(PathBuf::from(&group));
    let mut b = env.bundle("dfltpath");
    b.args(&["sleep", "600"]);
    b.remove("/linux/cgroupsPath");
    env.start_detached(&b, "dfltpath");
    let pid = env.init_pid("dfltpath");
    assert_eq!(procs(&dir_in(&unified, &group)), [pid]);
    env.moor.ok(&["delete", "--force", &id]);
    assert_eq!(host::cgroup_dirs(&group), Vec::<PathBuf>::new());
}

#[test]
fn relative_cgroups_path_is_resolved_against_the_runtimes_own_group() {
    let Some(env) = setup("relpath") else { return };
    let Some(unified) = hierarchy(None) else {
        return;
    };
    let own = own_unified_group();
    let relative = format!("moor-test/{}/rel", env.scratch.prefix());
    let group = own.join(&relative).to_string_lossy().into_owned();
    let _guard = GroupGuard(own.join(format!("moor-test/{}", env.scratch.prefix())));
    let mut b = env.bundle("relpath");
    b.args(&["sleep", "600"]);
    b.set("/linux/cgroupsPath", json!(relative));
    env.start_detached(&b, "relpath");
    let pid = env.init_pid("relpath");
    assert_eq!(procs(&dir_in(&unified, &group)), [pid], "group {group}");
    env.moor.ok(&["delete", "--force", &env.id("relpath")]);
    assert_eq!(host::cgroup_dirs(&group), Vec::<PathBuf>::new());
}

// ---- v1 limits --------------------------------------------------------------------------

#[test]
fn cpu_shares_quota_and_period_are_written() {
    let Some(env) = setup("cpu") else { return };
    let Some(cpu) = hierarchy(Some("cpu")) else {
        return;
    };
    let mut b = env.bundle("cpu");
    b.set(
        "/linux/resources/cpu",
        json!({"shares": 512, "quota": 125_000, "period": 250_000}),
    );
    env.create(&b, "cpu");
    let dir = dir_in(&cpu, &env.group("cpu"));
    assert_eq!(read_trimmed(dir.join("cpu.shares")), "512");
    assert_eq!(read_trimmed(dir.join("cpu.cfs_quota_us")), "125000");
    assert_eq!(read_trimmed(dir.join("cpu.cfs_period_us")), "250000");
    env.moor.ok(&["delete", &env.id("cpu")]);
    assert!(!dir.exists());
}

#[test]
fn cpuset_cpus_and_mems_confine_the_container() {
    let Some(env) = setup("cpuset") else { return };
    let Some(cpuset) = hierarchy(Some("cpuset")) else {
        return;
    };
    // The host's last CPU and first memory node: a set the container would not get by
    // inheriting its parent's (unless the host has one CPU).
    let cpus = read_trimmed(cpuset.join("cpuset.cpus"));
    let mems = read_trimmed(cpuset.join("cpuset.mems"));
    let last = |list: &str| -> String {
        let item = list.rsplit(',').next().unwrap_or(list);
        item.rsplit('-').next().unwrap_or(item).to_string()
    };
    let first = |list: &str| -> String {
        let item = list.split(',').next().unwrap_or(list);
        item.split('-').next().unwrap_or(item).to_string()
    };
    let (cpu, mem) = (last(&cpus), first(&mems));
    let mut b = env.bundle("cpuset");
    b.args(&["sleep", "600"]);
    b.set("/linux/resources/cpu", json!({"cpus": cpu, "mems": mem}));
    env.start_detached(&b, "cpuset");
    let dir = dir_in(&cpuset, &env.group("cpuset"));
    assert_eq!(read_trimmed(dir.join("cpuset.cpus")), cpu);
    assert_eq!(read_trimmed(dir.join("cpuset.mems")), mem);
    let pid = env.init_pid("cpuset");
    assert_eq!(procs(&dir), [pid]);
    assert_eq!(
        host::proc_status(pid, "Cpus_allowed_list").as_deref(),
        Some(cpu.as_str())
    );
}

#[test]
fn memory_limit_reservation_and_swap_are_written() {
    let Some(env) = setup("memory") else { return };
    let Some(memory) = hierarchy(Some("memory")) else {
        return;
    };
    let memsw = memory.join("memory.memsw.limit_in_bytes").exists();
    let mut b = env.bundle("memory");
    b.set(
        "/linux/resources/memory",
        json!({"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 96 * MIB}),
    );
    if !memsw {
        // No swap accounting on this host: the limit cannot be kept, so it is refused.
        let ran = env.launch(&["create"], &b, "memory");
        assert_eq!(ran.code(), Some(1), "{ran:?}");
        assert!(
            ran.stderr.contains("swap accounting is off"),
            "{}",
            ran.stderr
        );
        return;
    }
    env.create(&b, "memory");
    let dir = dir_in(&memory, &env.group("memory"));
    let value = |file: &str| read_trimmed(dir.join(file));
    assert_eq!(value("memory.limit_in_bytes"), (64 * MIB).to_string());
    assert_eq!(value("memory.soft_limit_in_bytes"), (32 * MIB).to_string());
    // The OCI swap value is memory plus swap, as memsw is.
    assert_eq!(value("memory.memsw.limit_in_bytes"), (96 * MIB).to_string());
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let Some(env) = setup("pids") else { return };
    let Some(pids) = hierarchy(Some("pids")) else {
        return;
    };
    let mut b = env.bundle("pids");
    b.args(&[CHECKER, "probe", "fork", "50"]);
    b.set("/linux/resources/pids", json!({"limit": 10}));
    env.create(&b, "pids");
    let dir = dir_in(&pids, &env.group("pids"));
    assert_eq!(read_trimmed(dir.join("pids.max")), "10");
    env.moor.ok(&["start", &env.id("pids")]);
    env.wait_stopped("pids");
    let out = env.output("pids");
    let r = Report::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let forked: u32 = r.number("probe.fork").expect("probe.fork");
    // The checker itself is one of the ten.
    assert!(forked < 10, "forked {forked} children under pids.max 10");
    assert_eq!(r.get("probe.fork.error"), Some("EAGAIN"));
}

#[test]
fn memory_limit_oom_kills_an_allocation_beyond_it() {
    let Some(env) = setup("oom") else { return };
    let Some(memory) = hierarchy(Some("memory")) else {
        return;
    };
    let mut b = env.bundle("oom");
    b.args(&[CHECKER, "probe", "alloc", "64"]);
    let mut limits = json!({"limit": 16 * MIB});
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        // Memory plus swap equal to memory: no swapping out of the OOM killer's way.
        limits["swap"] = json!(16 * MIB);
    }
    b.set("/linux/resources/memory", limits);
    let ran = env.run(&b, "oom");
    // The shell's convention for death by SIGKILL: 128 + 9.
    assert_eq!(ran.code(), Some(137), "{ran:?}");
    assert!(!ran.stdout.contains("probe.alloc=ok"), "{}", ran.stdout);
}

// ---- the cgroup2 group: membership, freeze, kill, populated ------------------------

#[test]
fn pause_freezes_through_cgroup_freeze_and_resume_thaws() {
    let Some(env) = setup("freeze") else { return };
    let Some(unified) = hierarchy(None) else {
        return;
    };
    let id = env.id("freeze");
    let mut b = env.bundle("freeze");
    b.args(&["sleep", "600"]);
    env.start_detached(&b, "freeze");
    let dir = dir_in(&unified, &env.group("freeze"));
    let pid = env.init_pid("freeze");
    assert_eq!(procs(&dir), [pid]);

    env.moor.ok(&["pause", &id]);
    assert_eq!(read_trimmed(dir.join("cgroup.freeze")), "1");
    assert_eq!(
        key_of(&dir, "cgroup.events", "frozen").as_deref(),
        Some("1")
    );
    assert_eq!(env.moor.status(&id), "paused");

    env.moor.ok(&["resume", &id]);
    assert_eq!(read_trimmed(dir.join("cgroup.freeze")), "0");
    assert_eq!(
        key_of(&dir, "cgroup.events", "frozen").as_deref(),
        Some("0")
    );
    assert_eq!(env.moor.status(&id), "running");
}

#[test]
fn kill_all_reaches_every_process_and_delete_removes_every_group() {
    let Some(env) = setup("killall") else { return };
    let Some(unified) = hierarchy(None) else {
        return;
    };
    let id = env.id("killall");
    let group = env.group("killall");
    let mut b = env.bundle("killall");
    // No pid namespace, so killing the init alone would leave the two sleeps running.
    b.set(
        "/linux/namespaces",
        json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    b.args(&["sh", "-c", "sleep 600 & sleep 600 & wait"]);
    b.set("/linux/resources/pids", json!({"limit": 20}));
    env.start_detached(&b, "killall");
    let dir = dir_in(&unified, &group);
    let members = wait::wait_for("the init and its two sleeps", DEADLINE, || {
        let found = procs(&dir);
        (found.len() == 3).then_some(found)
    });
    assert!(dir.join("cgroup.kill").exists(), "Linux 5.14 or newer");
    assert_eq!(
        key_of(&dir, "cgroup.events", "populated").as_deref(),
        Some("1")
    );

    env.moor.ok(&["kill", "--all", &id, "KILL"]);
    wait::wait_until("the group to empty", DEADLINE, || {
        key_of(&dir, "cgroup.events", "populated").as_deref() == Some("0")
    });
    assert!(members.iter().all(|pid| !host::alive(*pid)), "{members:?}");
    assert_eq!(env.moor.status(&id), "stopped");

    assert_eq!(
        host::cgroup_dirs(&group).len(),
        2,
        "cgroup2 and pids groups"
    );
    env.moor.ok(&["delete", &id]);
    assert_eq!(host::cgroup_dirs(&group), Vec::<PathBuf>::new());
}

#[test]
fn populated_drops_to_zero_when_the_container_exits() {
    let Some(env) = setup("populated") else {
        return;
    };
    let Some(unified) = hierarchy(None) else {
        return;
    };
    let id = env.id("populated");
    let group = env.group("populated");
    let mut b = env.bundle("populated");
    b.args(&["true"]);
    env.start_detached(&b, "populated");
    let dir = dir_in(&unified, &group);
    wait::wait_until("populated 0", DEADLINE, || {
        key_of(&dir, "cgroup.events", "populated").as_deref() == Some("0")
    });
    assert_eq!(env.moor.status(&id), "stopped");
    assert!(dir.is_dir(), "the group stays until delete");
    env.moor.ok(&["delete", &id]);
    assert_eq!(host::cgroup_dirs(&group), Vec::<PathBuf>::new());
}

// ---- device rules ---------------------------------------------------------------------

/// The base capabilities plus CAP_MKNOD, so that the device cgroup is what decides.
fn with_mknod(b: &mut Bundle) {
    let set = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_MKNOD"
    ]);
    for name in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{name}"), set.clone());
    }
}

#[test]
fn default_deny_refuses_a_block_device_and_allows_dev_null() {
    let Some(env) = setup("devdeny") else { return };
    let mut b = env.bundle("devdeny");
    with_mknod(&mut b);
    let mut args = vec![CHECKER];
    args.extend(words(
        "probe mknod /dev/sda b 8 0 -- probe open /dev/null r -- probe open /dev/zero r",
    ));
    b.args(&args);
    let ran = env.run(&b, "devdeny");
    assert!(ran.status.success(), "{ran:?}");
    assert_eq!(values(&ran.stdout, "probe.mknod"), ["EPERM"]);
    assert_eq!(values(&ran.stdout, "probe.open"), ["ok", "ok"]);
}

#[test]
fn read_only_device_rule_allows_reading_and_refuses_writing() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Some(env) = setup("devread") else { return };
    // A character device that reads a little without side effects, is not one of the
    // defaults (those are allowed after the configuration's rules, as in runc, so
    // /dev/zero stays writable whatever the rules say) and is not listed in
    // linux.devices (allowed the same way): bound in from the host instead.
    let node = Path::new("/dev/cpu_dma_latency");
    let meta = std::fs::metadata(node)
        .ok()
        .filter(|m| m.file_type().is_char_device());
    if !prereq::require("the character device /dev/cpu_dma_latency", meta.is_some()) {
        return;
    }
    let Some(meta) = meta else { return };
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let mut b = env.bundle("devread");
    with_mknod(&mut b);
    b.push(
        "/mounts",
        json!({"destination": "/dev/cpu_dma_latency", "type": "bind",
               "source": "/dev/cpu_dma_latency", "options": ["bind"]}),
    );
    b.push(
        "/linux/resources/devices",
        json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "r"}),
    );
    let (major_s, minor_s) = (major.to_string(), minor.to_string());
    let mut args = vec![CHECKER];
    args.extend(words(
        "probe open /dev/cpu_dma_latency r -- probe open /dev/cpu_dma_latency w -- \
         probe mknod /dev/again c",
    ));
    args.extend([major_s.as_str(), minor_s.as_str()]);
    b.args(&args);
    let ran = env.run(&b, "devread");
    assert!(ran.status.success(), "{ran:?}");
    assert_eq!(values(&ran.stdout, "probe.open"), ["ok", "EPERM"]);
    assert_eq!(
        values(&ran.stdout, "probe.mknod"),
        ["EPERM"],
        "no m in the rule"
    );
}

#[test]
fn allow_all_device_rule_lets_mknod_through() {
    let Some(env) = setup("devall") else { return };
    let mut b = env.bundle("devall");
    with_mknod(&mut b);
    b.set(
        "/linux/resources/devices",
        json!([{"allow": true, "access": "rwm"}]),
    );
    let mut args = vec![CHECKER];
    args.extend(words("probe mknod /dev/sda b 8 0 -- probe stat /dev/sda"));
    b.args(&args);
    let ran = env.run(&b, "devall");
    assert!(ran.status.success(), "{ran:?}");
    assert_eq!(values(&ran.stdout, "probe.mknod"), ["ok"]);
    assert_eq!(values(&ran.stdout, "probe.stat.mode"), ["60600"]);
}
