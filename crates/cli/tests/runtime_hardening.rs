//! Attacks on the runtime from inside a container (and from its image), each checked
//! from the host and with the checker from inside. Every attack is shown to be real
//! first: the malicious file is in place, the symlink points at the host path, the probe
//! ran and, where it makes sense, the same action succeeds once the defence is out of
//! the way; so a test that stopped attacking would fail rather than pass.
//!
//! ```text
//! runtime binary    #!/proc/self/exe scripts (run, exec), a hunter holding every exe it
//!                   can see, the mount the runtime runs from   (CVE-2019-5736)
//! descriptors       fds reaching the container, cwd through /proc/self/fd/N (CVE-2024-21626)
//! symlinks          mount, device, console and mask targets pointing at host paths
//!                   (CVE-2021-30465, CVE-2025-31133, CVE-2025-52565)
//! capabilities      inheritable and ambient empty unless asked, bounding exact
//! masks             masked and read-only paths, also with CAP_SYS_ADMIN
//! devices           mknod and smuggled nodes against deny-all rules
//! set-up child      not dumpable, not charged to the container
//! processes         PID namespace, signals to a recycled PID
//! ```
//!
//! The tests that attack the runtime binary drive a copy of it, never the binary under
//! test. What they assert goes beyond "the binary is not written": the runtime is not
//! executed inside the container at all (a `#!/proc/self/exe` script is refused with
//! EACCES, since the runtime runs from a noexec mount), and if a regression let it run
//! there, the hunter would hold it and the write would still have to fail.
//!
//! Not covered, and why:
//! - a container process with `CAP_SYS_ADMIN` unmounting or remounting the masks: it
//!   may, as with any runtime; that capability is not confinement. The masks are checked
//!   to hold against plain reads and writes with it.
//! - timing an attack on the set-up child of `exec` exactly: the hunter races it (and
//!   catches it when it is left dumpable), and the created-but-not-started init, which
//!   runs the runtime's code until `start`, is attacked deterministically instead.
//! - the memory charge test can only bound the container's peak, which busybox's pages
//!   dominate; it catches the runtime's heap and copied pages landing in the group, not
//!   a few pages of them.

use std::ffi::CString;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tests::bundle::{Bundle, CHECKER};
use tests::checker::{Report, checker_path};
use tests::moor::{Moor, Ran, finish};
use tests::scratch::Scratch;
use tests::{prereq, wait};

/// How long a container may take to reach a state a test waits for.
const DEADLINE: Duration = Duration::from_secs(20);

const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_MKNOD: u32 = 27;
const CAP_AUDIT_WRITE: u32 = 29;

/// The capabilities of the base configuration (`runc spec`'s).
const BASE_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << c)
}

// ---------------------------------------------------------------------------------
// Harness for this file.

/// A copy of the runtime binary, the one the attacks on the binary are aimed at.
#[derive(Debug)]
struct RuntimeCopy {
    path: PathBuf,
    digest: u64,
    len: u64,
}

/// One test's runtime (`moor`, or a copy of it), scratch directory and busybox. Fields
/// drop in order: containers are deleted before the directory holding the root goes.
#[derive(Debug)]
struct Env {
    moor: Moor,
    scratch: Scratch,
    busybox: PathBuf,
    copy: Option<RuntimeCopy>,
}

impl Env {
    /// The binary under test; `None` (after saying why) when this host cannot run
    /// privileged tests, which `MOOR_TEST_STRICT=1` turns into a failure.
    fn new(test: &str) -> Option<Env> {
        if !prereq::root() {
            return None;
        }
        let busybox = prereq::busybox()?;
        let scratch = Scratch::new(test);
        let moor = Moor::new(Path::new(env!("CARGO_BIN_EXE_moor")), &scratch);
        Some(Env {
            moor,
            scratch,
            busybox,
            copy: None,
        })
    }

    /// Like [`Env::new`], driving a fresh copy of the binary instead.
    fn with_copy(test: &str) -> Option<Env> {
        let mut env = Env::new(test)?;
        let copy = copy_runtime(&env.scratch);
        env.moor = Moor::new(&copy.path, &env.scratch);
        env.copy = Some(copy);
        Some(env)
    }

    fn copy(&self) -> &RuntimeCopy {
        self.copy.as_ref().expect("this test drives a copy")
    }

    fn bundle(&self, name: &str, args: &[&str]) -> Bundle {
        let mut bundle = Bundle::busybox(&self.scratch, &self.busybox, name);
        bundle.args(args);
        bundle.save();
        bundle
    }

    fn id(&self, name: &str) -> String {
        self.scratch.name(name)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.dir().join(name)
    }

    /// Runs a verb whose container outlives it (`run -d`, `create`, `exec -d`): its
    /// stdout and stderr go to `<stem>.out` and `<stem>.err`, since a pipe would stay
    /// open as long as the container runs.
    fn to_files(&self, args: &[&str], stem: &str) -> Ran {
        let stem = self.path(stem);
        let (out, err) = (stem.with_extension("out"), stem.with_extension("err"));
        let file = |p: &Path| fs::File::create(p).expect("create an output file");
        let child = self
            .moor
            .command(args)
            .stdout(file(&out))
            .stderr(file(&err))
            .spawn()
            .expect("spawn moor");
        let mut ran = finish(child, &format!("moor {}", args.join(" ")));
        ran.stdout = fs::read_to_string(&out).unwrap_or_default();
        ran.stderr = fs::read_to_string(&err).unwrap_or_default();
        ran
    }

    /// `run -d`, which must succeed.
    fn detach(&self, bundle: &Bundle, id: &str) {
        let ran = self.to_files(&["run", "--detach", "--bundle", dir(bundle), id], id);
        assert!(ran.status.success(), "run --detach {id}: {ran:?}");
    }

    /// A foreground run that must succeed, its checker output parsed.
    fn report(&self, bundle: &Bundle, id: &str) -> Report {
        let ran = self.moor.ok(&["run", "--bundle", dir(bundle), id]);
        report(&ran.stdout)
    }

    /// `exec ID ARGS…`, which must succeed, its checker output parsed.
    fn exec_report(&self, flags: &[&str], id: &str, args: &[&str]) -> Report {
        let mut all = vec!["exec"];
        all.extend_from_slice(flags);
        all.push(id);
        all.extend_from_slice(args);
        report(&self.moor.ok(&all).stdout)
    }

    /// The host PID of a container's init, from `state`.
    fn pid(&self, id: &str) -> i32 {
        let pid = self.moor.state(id)["pid"].as_i64().unwrap_or_default();
        i32::try_from(pid).expect("a PID")
    }
}

fn dir(bundle: &Bundle) -> &str {
    bundle.dir.to_str().expect("a UTF-8 bundle path")
}

fn report(stdout: &str) -> Report {
    Report::parse(stdout).unwrap_or_else(|e| panic!("checker output: {e}\n{stdout}"))
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Copies the binary under test into the scratch directory, executable, and waits until
/// it can be executed: another test thread that forked while the copy was open for
/// writing holds it open until that child execs, and meanwhile exec fails with ETXTBSY.
fn copy_runtime(scratch: &Scratch) -> RuntimeCopy {
    let path = scratch.dir().join("moor-copy");
    fs::copy(env!("CARGO_BIN_EXE_moor"), &path).expect("copy the runtime");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod the copy");
    wait::wait_until("the copy of the runtime to be executable", DEADLINE, || {
        let status = Command::new(&path)
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => false,
            Err(e) => panic!("run {}: {e}", path.display()),
            Ok(_) => true,
        }
    });
    let len = fs::metadata(&path).expect("stat the copy").len();
    RuntimeCopy {
        digest: digest(&path),
        path,
        len,
    }
}

fn digest(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    hasher.finish()
}

/// Copies the shared libraries and loader of a dynamically linked `binary` into
/// `rootfs`, so that the binary would run there if anything executed it.
fn add_libraries(rootfs: &Path, binary: &Path) {
    if prereq::is_static(binary) {
        return;
    }
    let ldd = prereq::program("ldd").expect("ldd, to list the runtime's libraries");
    let out = Command::new(ldd).arg(binary).output().expect("run ldd");
    assert!(out.status.success(), "ldd {}: {out:?}", binary.display());
    let listing = String::from_utf8_lossy(&out.stdout);
    let libraries = listing
        .split_whitespace()
        .filter(|word| word.starts_with('/'));
    for library in libraries {
        let inside = rootfs.join(library.trim_start_matches('/'));
        if let Some(parent) = inside.parent() {
            fs::create_dir_all(parent).expect("make a library directory");
        }
        fs::copy(library, &inside).unwrap_or_else(|e| panic!("copy {library}: {e}"));
    }
}

/// Replaces whatever is at `path` with an executable script, and checks it is there.
fn plant_script(path: &Path, script: &str) {
    let _ = fs::remove_file(path);
    fs::write(path, script).expect("write the script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod the script");
    let meta = fs::symlink_metadata(path).expect("stat the script");
    assert!(
        meta.is_file() && meta.mode() & 0o111 != 0,
        "{path:?} is not in place"
    );
    assert_eq!(fs::read_to_string(path).ok().as_deref(), Some(script));
}

/// A pipe whose buffer is full: a process writing to it blocks until it is read.
fn full_pipe() -> (io::PipeReader, io::PipeWriter) {
    let (reader, mut writer) = io::pipe().expect("make a pipe");
    let fd = writer.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, toggling O_NONBLOCK only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let chunk = [b'.'; 4096];
    loop {
        match writer.write(&chunk) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill the pipe: {e}"),
        }
    }
    // SAFETY: as above.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    (reader, writer)
}

/// Gives the spawned command `files` as its descriptors 3, 4, … (besides stdio). The
/// returned descriptors must stay open until the command is spawned.
#[must_use]
fn pass_fds(cmd: &mut Command, files: &[&fs::File]) -> Vec<OwnedFd> {
    // Out of the way of 3.. first, so no dup2 below overwrites a source.
    let sources: Vec<OwnedFd> = files
        .iter()
        .map(|f| {
            // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one we own.
            let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
            assert!(fd >= 0, "dup: {}", io::Error::last_os_error());
            // SAFETY: fd was just returned by fcntl and nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect();
    let raw: Vec<i32> = sources.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: between fork and exec the closure only calls dup2, which is
    // async-signal-safe, and touches no lock or allocation.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    sources
}

/// Mount points in the host's (this process's) mount namespace under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let prefix = text(dir);
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| point.replace("\\040", " "))
        .filter(|point| point.starts_with(prefix))
        .collect()
}

/// A relative symlink target that climbs out of any rootfs and names `host` from `/`:
/// on the host it resolves to `host` itself.
fn climbing(host: &Path) -> PathBuf {
    Path::new(&"../".repeat(16)).join(host.strip_prefix("/").expect("an absolute path"))
}

/// `path` (absolute, a host path) as a path inside `rootfs`.
fn inside(rootfs: &Path, path: &Path) -> PathBuf {
    rootfs.join(path.strip_prefix("/").expect("an absolute path"))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn errno_of(result: io::Result<fs::File>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

/// What `probe rdev` must say of a masked file: the null device, or (for a file this
/// kernel does not have, such as `/proc/kcore` without `CONFIG_PROC_KCORE`) nothing.
fn masked(path: &str) -> &'static str {
    if Path::new(path).exists() {
        "1:3"
    } else {
        "ENOENT"
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn kill_and_reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------
// 1. The runtime binary (CVE-2019-5736 class).

/// How a refused `#!/proc/self/exe` looks: the command fails with EACCES from the
/// kernel (the runtime's copy is on a noexec mount) and no usage text of the runtime
/// is printed, which a runtime binary started with a path as its first argument prints.
fn assert_runtime_not_run(ran: &Ran, what: &str) {
    let printed = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        !printed.contains("Usage:"),
        "{what}: the runtime binary ran inside the container: {ran:?}"
    );
    assert!(
        ran.code().is_some_and(|c| c != 0),
        "{what}: expected the exec to be refused: {ran:?}"
    );
    assert!(
        ran.stderr.contains("Permission denied"),
        "{what}: expected the kernel to refuse executing the runtime (EACCES): {ran:?}"
    );
}

#[test]
fn exec_through_proc_self_exe_neither_runs_nor_changes_the_runtime() {
    let Some(env) = Env::with_copy("selfexe-script") else {
        return;
    };
    let copy = env.copy();
    let mut bundle = env.bundle("c", &["/bin/sh"]);
    add_libraries(&bundle.rootfs, &copy.path);
    // The control: the runtime does run in this image when something executes it.
    fs::copy(&copy.path, bundle.rootfs.join("bin/moor-decoy")).expect("copy the decoy");
    plant_script(&bundle.rootfs.join("bin/sh"), "#!/proc/self/exe\n");

    // The container's own program is the script.
    let ran = env
        .moor
        .run(&["run", "--bundle", dir(&bundle), &env.id("run")]);
    assert_runtime_not_run(&ran, "run /bin/sh");

    // And a process run into a running container, by path and through PATH.
    bundle.args(&["sleep", "1000"]);
    bundle.save();
    let id = env.id("exec");
    env.detach(&bundle, &id);
    for program in ["/bin/sh", "sh"] {
        let ran = env.moor.run(&["exec", &id, program]);
        assert_runtime_not_run(&ran, &format!("exec {program}"));
    }
    let control = env.moor.run(&["exec", &id, "/bin/moor-decoy", "--help"]);
    assert!(
        control.status.success() && control.stdout.contains("Usage:"),
        "a copy of the runtime in the image should run there: {control:?}"
    );
    assert_eq!(digest(&copy.path), copy.digest, "the runtime was changed");
}

/// One `probe.exe-hunt.held.N` line, with what became of the attempts to write it.
#[derive(Debug)]
struct Held {
    ino: u64,
    size: u64,
    write: String,
}

/// The binaries the hunter holds so far (complete lines only).
fn held(output: &str) -> Vec<Held> {
    let complete = &output[..output.rfind('\n').map_or(0, |i| i + 1)];
    let report = report(complete);
    (0..)
        .map_while(|n| {
            let value = report.get(&format!("probe.exe-hunt.held.{n}"))?;
            let mut words = value.split(' ').skip(1);
            let ino = words.next()?.parse().ok()?;
            let size = words.next()?.parse().ok()?;
            let write = report.get(&format!("probe.exe-hunt.write.{n}"));
            Some(Held {
                ino,
                size,
                write: write.unwrap_or("(not yet)").to_string(),
            })
        })
        .collect()
}

#[test]
fn a_hunter_in_the_container_finds_no_runtime_binary_it_can_write() {
    let Some(env) = Env::with_copy("selfexe-hunt") else {
        return;
    };
    let copy = env.copy();
    // A writable binary the hunter can reach: the control.
    let decoys = env.path("decoys");
    fs::create_dir_all(&decoys).expect("make the decoy dir");
    let decoy = decoys.join("busybox");
    fs::copy(&env.busybox, &decoy).expect("copy the decoy");
    let decoy_ino = fs::metadata(&decoy).expect("stat the decoy").ino();
    let stop = decoys.join("stop");

    let mut bundle = env.bundle("c", &[CHECKER, "probe", "exe-hunt", "/decoys/stop"]);
    // With CAP_DAC_OVERRIDE (in Docker's default set) file modes do not stop a write:
    // only the mount can.
    with_caps(&mut bundle, &["CAP_DAC_OVERRIDE"]);
    add_libraries(&bundle.rootfs, &copy.path);
    // `--help`: a runtime binary started by it prints to stdout, which is a full pipe
    // below, and so stays alive for the hunter to find.
    plant_script(&bundle.rootfs.join("bin/evil"), "#!/proc/self/exe --help\n");
    fs::create_dir_all(bundle.rootfs.join("decoys")).expect("mkdir /decoys");
    bundle.push(
        "/mounts",
        json!({"destination": "/decoys", "type": "bind", "source": text(&decoys),
               "options": ["rbind", "rw"]}),
    );
    bundle.save();
    let id = env.id("c");
    env.detach(&bundle, &id);
    let out = env.path(&id).with_extension("out");
    let hunt = || fs::read_to_string(&out).unwrap_or_default();
    wait::wait_until("the hunter's first pass", DEADLINE, || {
        hunt().contains("probe.exe-hunt=ready")
    });

    // The control: the hunter holds a binary that runs in the container and writes it
    // once it no longer runs.
    let pid_file = env.path("decoy.pid");
    let decoy_args = [
        "exec",
        "--detach",
        "--pid-file",
        text(&pid_file),
        &id,
        "/decoys/busybox",
        "sleep",
        "1000",
    ];
    let ran = env.to_files(&decoy_args, "decoy-exec");
    assert!(ran.status.success(), "exec the decoy: {ran:?}");
    wait::wait_until("the hunter to hold the decoy", DEADLINE, || {
        held(&hunt()).iter().any(|h| h.ino == decoy_ino)
    });
    let decoy_pid: i32 = fs::read_to_string(&pid_file)
        .expect("read the decoy's pid file")
        .trim()
        .parse()
        .expect("a PID");
    // SAFETY: kill(2) of the process the test just started in its container.
    unsafe { libc::kill(decoy_pid, libc::SIGKILL) };
    wait::wait_until("the hunter to overwrite the decoy", DEADLINE, || {
        fs::read(&decoy).is_ok_and(|b| b.starts_with(b"PWNED"))
    });

    // The attack: the set-up child of an exec runs a script naming /proc/self/exe.
    let (mut reader, writer) = full_pipe();
    let mut cmd = env.moor.command(&["exec", &id, "/bin/evil"]);
    cmd.stdout(writer);
    let mut attack = cmd.spawn().expect("spawn moor exec");
    drop(cmd); // our end of the full pipe
    wait::wait_until(
        "the exec to end, or the hunter to hold a binary of the runtime's size",
        DEADLINE,
        || {
            matches!(attack.try_wait(), Ok(Some(_)))
                || held(&hunt()).iter().any(|h| h.size == copy.len)
        },
    );
    let drained = std::thread::spawn(move || {
        let mut printed = Vec::new();
        let _ = reader.read_to_end(&mut printed);
        printed
    });
    let attack = finish(attack, "moor exec /bin/evil");
    let printed = drained.join().expect("drain the pipe");
    let printed = String::from_utf8_lossy(&printed);

    fs::write(&stop, "").expect("tell the hunter to stop");
    wait::wait_until("the hunter's last pass", DEADLINE, || {
        hunt().contains("probe.exe-hunt=done")
    });
    let held = held(&hunt());
    for binary in held.iter().filter(|h| h.size == copy.len) {
        assert_ne!(
            binary.write, "ok",
            "the container wrote a binary of the runtime's size: {binary:?}"
        );
    }
    assert_eq!(digest(&copy.path), copy.digest, "the runtime was changed");
    assert!(
        !held.iter().any(|h| h.size == copy.len),
        "a process running the runtime's binary was reachable from the container (run by \
         the script, or a set-up child left dumpable): {held:?}"
    );
    assert!(
        !printed.contains("Usage:"),
        "the runtime binary ran inside the container and printed: {printed}"
    );
    assert!(
        attack.code().is_some_and(|c| c != 0) && attack.stderr.contains("Permission denied"),
        "expected the kernel to refuse executing the runtime: {attack:?}"
    );
    let control = held.iter().find(|h| h.ino == decoy_ino);
    assert_eq!(
        control.map(|h| h.write.as_str()),
        Some("ok"),
        "the hunter should have written the writable decoy: {held:?}"
    );
}

fn statvfs_flags(path: &Path) -> u64 {
    let c = CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: zeroed statvfs is a valid buffer for statvfs to fill.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a live buffer.
    let ret = unsafe { libc::statvfs(c.as_ptr(), &mut buf) };
    assert_eq!(
        ret,
        0,
        "statvfs {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
    buf.f_flag
}

#[test]
fn the_runtime_runs_from_a_read_only_noexec_mount_and_exec_leaves_only_the_program() {
    let Some(env) = Env::with_copy("selfexe-mount") else {
        return;
    };
    let copy = env.copy();
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.id("c");
    env.detach(&bundle, &id);
    let pid_file = env.path("exec.pid");
    let mut cmd = env
        .moor
        .command(&["exec", "--pid-file", text(&pid_file), &id, "sleep", "1000"]);
    let runtime = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moor exec");
    let runtime_pid = runtime.id();

    // Once the program runs, the exec'd process is the program, not the runtime.
    let program: i32 = wait::wait_for("the exec's pid file", DEADLINE, || {
        fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    let busybox = fs::metadata(bundle.rootfs.join("bin/busybox")).expect("stat busybox");
    let program_exe = PathBuf::from(format!("/proc/{program}/exe"));
    wait::wait_until("the exec'd process to run the program", DEADLINE, || {
        fs::metadata(&program_exe)
            .is_ok_and(|m| (m.dev(), m.ino()) == (busybox.dev(), busybox.ino()))
    });

    // The runtime, still running (waiting for the program), runs from a copy of the
    // binary on a read-only, noexec mount.
    let exe = PathBuf::from(format!("/proc/{runtime_pid}/exe"));
    let meta = fs::metadata(&exe).expect("stat the runtime's exe");
    let original = fs::metadata(&copy.path).expect("stat the copy");
    assert_eq!(meta.len(), copy.len, "{} is not the runtime", exe.display());
    assert_ne!(
        (meta.dev(), meta.ino()),
        (original.dev(), original.ino()),
        "the runtime runs from the very file it was started as"
    );
    let flags = statvfs_flags(&exe);
    assert!(
        flags & libc::ST_RDONLY != 0,
        "the runtime's mount is writable"
    );
    assert!(
        flags & libc::ST_NOEXEC != 0,
        "the runtime's mount allows exec"
    );
    let truncate = fs::OpenOptions::new().write(true).truncate(true).open(&exe);
    assert_eq!(errno_of(truncate), Some(libc::EROFS));
    let write = fs::OpenOptions::new().write(true).open(&exe);
    assert!(
        matches!(errno_of(write), Some(libc::EROFS | libc::ETXTBSY)),
        "the running runtime's binary opened for writing"
    );
    // The control: the file the host started is writable; the mount is the defence.
    let host_side = fs::OpenOptions::new().write(true).open(&copy.path);
    assert!(
        host_side.is_ok(),
        "the copy itself should be writable: {host_side:?}"
    );

    // SAFETY: kill(2) of the program the test started.
    unsafe { libc::kill(program, libc::SIGKILL) };
    let ran = finish(runtime, "moor exec sleep");
    assert_eq!(ran.code(), Some(128 + 9), "{ran:?}");
    assert_eq!(digest(&copy.path), copy.digest);
}

// ---------------------------------------------------------------------------------
// 2. Descriptors and the working directory (CVE-2024-21626 class).

#[test]
fn only_stdio_and_preserved_descriptors_reach_the_container() {
    let Some(env) = Env::new("fds") else { return };
    let first = env.path("first");
    let second = env.path("second");
    fs::write(&first, "1").expect("write a file");
    fs::write(&second, "2").expect("write a file");
    let open = |p: &Path| fs::File::open(p).expect("open");
    // 3 and 4 are files, 5 a host directory: what a runtime must never hand over.
    let (a, b) = (open(&first), open(&second));
    let host_dir = open(env.scratch.dir());

    let bundle = env.bundle("c", &[CHECKER, "report"]);
    let run = |preserve: &str, id: &str| {
        let mut cmd = env.moor.command(&[
            "run",
            "--preserve-fds",
            preserve,
            "--bundle",
            dir(&bundle),
            id,
        ]);
        let passed = pass_fds(&mut cmd, &[&a, &b, &host_dir]);
        let child = cmd.spawn().expect("spawn moor run");
        drop(passed);
        let ran = finish(child, "moor run");
        assert!(ran.status.success(), "{ran:?}");
        report(&ran.stdout)
    };
    let none = run("0", &env.id("none"));
    assert_eq!(none.fds().expect("fds"), vec![0, 1, 2], "{none:?}");
    let two = run("2", &env.id("two"));
    assert_eq!(two.fds().expect("fds"), vec![0, 1, 2, 3, 4], "{two:?}");
    assert_eq!(two.fd_target(3), Some(text(&first)));
    assert_eq!(two.fd_target(4), Some(text(&second)));

    let sleeper = env.bundle("s", &["sleep", "1000"]);
    let id = env.id("s");
    env.detach(&sleeper, &id);
    let exec = |preserve: &str| {
        let mut cmd =
            env.moor
                .command(&["exec", "--preserve-fds", preserve, &id, CHECKER, "report"]);
        let passed = pass_fds(&mut cmd, &[&a, &b, &host_dir]);
        let child = cmd.spawn().expect("spawn moor exec");
        drop(passed);
        let ran = finish(child, "moor exec");
        assert!(ran.status.success(), "{ran:?}");
        report(&ran.stdout)
    };
    let none = exec("0");
    assert_eq!(none.fds().expect("fds"), vec![0, 1, 2], "{none:?}");
    let two = exec("2");
    assert_eq!(two.fds().expect("fds"), vec![0, 1, 2, 3, 4], "{two:?}");
    assert_eq!(two.fd_target(4), Some(text(&second)));
}

/// What became of a working directory given as `/proc/self/fd/N`.
#[derive(Debug, PartialEq, Eq)]
enum Cwd {
    /// Refused because it resolved outside the root: the runtime held a host directory
    /// there, and the check caught it.
    Outside,
    /// Refused for another reason (no such descriptor, not a directory).
    Refused,
    /// Accepted; the process's working directory as the checker saw it.
    Inside(String),
}

fn classify(ran: &Ran) -> Cwd {
    if ran.status.success() {
        return Cwd::Inside(report(&ran.stdout).get("cwd").unwrap_or("").to_string());
    }
    assert!(
        ran.code() == Some(1),
        "expected a clean refusal of the working directory: {ran:?}"
    );
    refusal(&ran.stderr)
}

fn refusal(stderr: &str) -> Cwd {
    assert!(
        stderr.contains("working directory"),
        "expected a refusal of the working directory: {stderr}"
    );
    if stderr.contains("outside the container's root") {
        Cwd::Outside
    } else {
        Cwd::Refused
    }
}

#[test]
fn a_working_directory_through_a_descriptor_never_lands_outside_the_root() {
    let Some(env) = Env::new("cwd") else { return };
    let mut outcomes: Vec<(String, Cwd)> = Vec::new();
    let fds = 3..=10;
    for fd in fds.clone() {
        let cwd = format!("/proc/self/fd/{fd}");
        // run; run with an oom_score_adj (the set-up child then holds a procfs of its
        // own); create and start (the same, held until start).
        for how in ["run", "oom", "create"] {
            let name = format!("{how}{fd}");
            let mut bundle = env.bundle(&name, &[CHECKER, "report"]);
            bundle.set("/process/cwd", json!(cwd));
            if how == "oom" {
                bundle.set("/process/oomScoreAdj", json!(100));
            }
            bundle.save();
            let id = env.id(&name);
            let outcome = if how == "create" {
                let created = env.to_files(&["create", "--bundle", dir(&bundle), &id], &id);
                if created.status.success() {
                    // Checked again after start, as the user: then a refusal goes to the
                    // container's stderr.
                    env.moor.ok(&["start", &id]);
                    wait::wait_until("the container to finish", DEADLINE, || {
                        env.moor.status(&id) == "stopped"
                    });
                    let read = |ext| fs::read_to_string(env.path(&id).with_extension(ext));
                    let stdout = read("out").unwrap_or_default();
                    if stdout.contains("uid=") {
                        Cwd::Inside(report(&stdout).get("cwd").unwrap_or("").to_string())
                    } else {
                        refusal(&read("err").unwrap_or_default())
                    }
                } else {
                    classify(&created)
                }
            } else {
                classify(&env.moor.run(&["run", "--bundle", dir(&bundle), &id]))
            };
            outcomes.push((format!("{how} {cwd}"), outcome));
        }
    }
    let sleeper = env.bundle("s", &["sleep", "1000"]);
    let id = env.id("s");
    env.detach(&sleeper, &id);
    for fd in fds {
        let cwd = format!("/proc/self/fd/{fd}");
        let ran = env
            .moor
            .run(&["exec", "--cwd", &cwd, &id, CHECKER, "report"]);
        outcomes.push((format!("exec {cwd}"), classify(&ran)));
    }
    for (what, outcome) in &outcomes {
        if let Cwd::Inside(cwd) = outcome {
            assert!(
                cwd.starts_with('/') && !cwd.contains("unreachable"),
                "{what}: the process started in {cwd:?}, outside its root"
            );
        }
    }
    // The precondition: some descriptor the runtime held was a directory outside the
    // root, so the check above had something to refuse.
    assert!(
        outcomes.iter().any(|(_, o)| *o == Cwd::Outside),
        "no /proc/self/fd/N reached a host directory, so nothing was attacked: {outcomes:?}"
    );
}

// ---------------------------------------------------------------------------------
// 3. Symlinks in the image (CVE-2021-30465, CVE-2025-31133, CVE-2025-52565 classes).

/// Host directories and files the image's symlinks point at, all empty or holding
/// known text; [`HostTargets::assert_untouched`] checks that they still are.
struct HostTargets {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, String)>,
}

impl HostTargets {
    fn new(env: &Env, name: &str) -> HostTargets {
        let root = env.path(&format!("{name}-host"));
        fs::create_dir_all(&root).expect("make the host targets");
        HostTargets {
            root,
            dirs: Vec::new(),
            files: Vec::new(),
        }
    }

    fn dir(&mut self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).expect("make a host dir");
        self.dirs.push(dir.clone());
        dir
    }

    fn file(&mut self, name: &str) -> PathBuf {
        let file = self.root.join(name);
        let content = format!("host file {name}\n");
        fs::write(&file, &content).expect("write a host file");
        self.files.push((file.clone(), content));
        file
    }

    fn assert_untouched(&self, what: &str) {
        for dir in &self.dirs {
            assert_eq!(
                entries(dir),
                Vec::<String>::new(),
                "{what}: {} changed",
                dir.display()
            );
        }
        for (file, content) in &self.files {
            let meta = fs::symlink_metadata(file).expect("stat a host file");
            assert!(meta.is_file(), "{what}: {} replaced", file.display());
            assert_eq!(
                fs::read_to_string(file).ok().as_ref(),
                Some(content),
                "{what}: {} changed",
                file.display()
            );
        }
        assert_eq!(
            host_mounts_under(&self.root),
            Vec::<String>::new(),
            "{what}: mounts on the host targets"
        );
    }
}

/// Replaces `path` in the image by a symlink to `target`, and checks it.
fn plant_link(path: &Path, target: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(path).expect("remove the image's dir");
    } else {
        let _ = fs::remove_file(path);
    }
    symlink(target, path).expect("make the symlink");
    assert_eq!(fs::read_link(path).ok().as_deref(), Some(target));
}

/// Removes the mounts at `destinations` from a bundle's configuration.
fn drop_mounts(bundle: &mut Bundle, destinations: &[&str]) {
    if let Some(Value::Array(mounts)) = bundle.config.pointer_mut("/mounts") {
        mounts.retain(|m| !destinations.contains(&m["destination"].as_str().unwrap_or("")));
    }
}

#[test]
fn symlinked_mount_destinations_land_inside_the_rootfs() {
    let Some(env) = Env::new("links-inside") else {
        return;
    };
    let mut host = HostTargets::new(&env, "inside");
    let mut bundle = env.bundle(
        "c",
        &[CHECKER, "probe", "stat", "/data/marker", "--", "report"],
    );
    let rootfs = bundle.rootfs.clone();
    let data = bundle.dir.join("data");
    fs::create_dir_all(&data).expect("make the bind source");
    fs::write(data.join("marker"), "bound").expect("write the marker");
    bundle.push(
        "/mounts",
        json!({"destination": "/data", "type": "bind", "source": text(&data),
               "options": ["rbind", "ro"]}),
    );
    bundle.push(
        "/mounts",
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"}),
    );
    bundle.save();
    // Absolute and climbing relative links to host directories; each target also exists
    // inside the rootfs, where the mount must land.
    let links = [
        ("proc", host.dir("proc"), false),
        ("sys", host.dir("sys"), true),
        ("dev", host.dir("dev"), false),
        ("data", host.dir("data"), true),
        ("scratch", host.dir("scratch"), false),
    ];
    for (name, target, relative) in &links {
        let link = if *relative {
            climbing(target)
        } else {
            target.clone()
        };
        plant_link(&rootfs.join(name), &link);
        fs::create_dir_all(inside(&rootfs, target)).expect("make the target in the rootfs");
    }
    let report = env.report(&bundle, &env.id("c"));
    host.assert_untouched("after the run");

    let fstype = |target: &Path| report.mount(text(target)).map(|m| m.fstype);
    let at = |name: &str| &links.iter().find(|l| l.0 == name).expect("a link").1;
    assert_eq!(fstype(at("proc")).as_deref(), Some("proc"), "{report:?}");
    assert_eq!(fstype(at("sys")).as_deref(), Some("sysfs"));
    assert_eq!(fstype(at("dev")).as_deref(), Some("tmpfs"));
    assert_eq!(fstype(&at("dev").join("pts")).as_deref(), Some("devpts"));
    assert_eq!(fstype(at("scratch")).as_deref(), Some("tmpfs"));
    assert!(
        fstype(at("data")).is_some(),
        "the bind is not inside: {report:?}"
    );
    assert_eq!(report.probe("stat"), Some("ok"), "the bind is not at /data");
    // The devices were made in the /dev the link leads to, inside the rootfs.
    assert!(report.mount(text(&at("dev").join("shm"))).is_some());
}

#[test]
fn dangling_symlinks_to_host_paths_fail_cleanly_and_touch_nothing() {
    let Some(env) = Env::new("links-dangling") else {
        return;
    };
    // (name, link in the image, relative?, mounts to drop, terminal)
    let cases: [(&str, &str, bool, &[&str], bool); 8] = [
        ("proc", "proc", false, &[], false),
        ("sys", "sys", true, &[], false),
        ("dev", "dev", false, &[], false),
        ("pts", "dev/pts", true, &["/dev"], false),
        ("bind", "data", false, &[], false),
        ("tmpfs", "scratch", true, &[], false),
        // No /dev mounts at all: the device nodes are made in the image's /dev.
        (
            "nodes",
            "dev",
            true,
            &["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"],
            false,
        ),
        ("console", "dev/console", false, &["/dev"], true),
    ];
    for (name, link, relative, dropped, terminal) in cases {
        let mut host = HostTargets::new(&env, name);
        let target = if link == "dev/console" {
            host.file("console")
        } else {
            host.dir(name)
        };
        let mut bundle = env.bundle(name, &[CHECKER, "report"]);
        let data = bundle.dir.join("data");
        fs::create_dir_all(&data).expect("make the bind source");
        bundle.push(
            "/mounts",
            json!({"destination": "/data", "type": "bind", "source": text(&data),
                   "options": ["rbind", "ro"]}),
        );
        bundle.push(
            "/mounts",
            json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"}),
        );
        drop_mounts(&mut bundle, dropped);
        bundle.set("/process/terminal", json!(terminal));
        bundle.save();
        let image_path = bundle.rootfs.join(link);
        fs::create_dir_all(image_path.parent().expect("a parent")).expect("mkdir");
        let pointer = if relative {
            climbing(&target)
        } else {
            target.clone()
        };
        plant_link(&image_path, &pointer);
        // The precondition: on the host, the link leads to the host target.
        assert_eq!(
            fs::canonicalize(&image_path).ok(),
            Some(target.clone()),
            "{name}: the image's link does not lead to the host target"
        );

        let ran = env
            .moor
            .run(&["run", "--bundle", dir(&bundle), &env.id(name)]);
        if ran.status.success() {
            // Acceptable only if what the link named was made inside the rootfs.
            let report = report(&ran.stdout);
            assert!(
                report.mount(text(&target)).is_some() || inside(&bundle.rootfs, &target).exists(),
                "{name}: the run succeeded, but not inside the rootfs: {ran:?}"
            );
        } else {
            assert_eq!(ran.code(), Some(1), "{name}: not a clean failure: {ran:?}");
            assert!(
                ran.stderr.contains(&format!("/{link}")),
                "{name}: the error does not name /{link}: {ran:?}"
            );
        }
        host.assert_untouched(name);
    }
}

#[test]
fn device_and_console_links_in_the_image_never_reach_host_files() {
    let Some(env) = Env::new("links-devices") else {
        return;
    };
    let mut host = HostTargets::new(&env, "devices");
    let null = host.file("null");
    let zero = host.file("zero");
    let console = host.file("console");
    let args = [
        CHECKER,
        "probe",
        "rdev",
        "/dev/null",
        "--",
        "probe",
        "rdev",
        "/dev/zero",
        "--",
        "probe",
        "rdev",
        "/dev/console",
        "--",
        "report",
    ];
    let mut bundle = env.bundle("c", &args);
    // The image's own /dev gets the nodes, and the terminal is bound on its console.
    drop_mounts(&mut bundle, &["/dev"]);
    bundle.set("/process/terminal", json!(true));
    bundle.save();
    let rootfs = bundle.rootfs.clone();
    plant_link(&rootfs.join("dev/null"), &null);
    plant_link(&rootfs.join("dev/zero"), &climbing(&zero));
    plant_link(&rootfs.join("dev/console"), &console);
    // The console's target exists inside the rootfs too, so the bind has somewhere to go.
    let console_inside = inside(&rootfs, &console);
    fs::create_dir_all(console_inside.parent().expect("a parent")).expect("mkdir");
    fs::write(&console_inside, "").expect("make the console target in the rootfs");

    let report = env.report(&bundle, &env.id("c"));
    host.assert_untouched("after the run");
    assert_eq!(
        report.get("probe.rdev./dev/null"),
        Some("1:3"),
        "{report:?}"
    );
    assert_eq!(report.get("probe.rdev./dev/zero"), Some("1:5"));
    let pty = report.get("probe.rdev./dev/console").unwrap_or("");
    assert!(
        pty.starts_with("136:"),
        "/dev/console is not the terminal: {pty}"
    );
    assert_eq!(report.get("tty.stdin"), Some("yes"));
}

#[test]
fn a_null_device_link_in_the_image_is_never_bound_over_masked_paths() {
    let Some(env) = Env::new("links-mask") else {
        return;
    };
    let mut host = HostTargets::new(&env, "mask");
    let secret = host.file("secret");
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").ok();
    let masked_files = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/etc/masked",
    ];
    let mut args = vec![CHECKER, "probe", "readlink", "/dev/null"];
    for file in masked_files {
        args.extend_from_slice(&["--", "probe", "rdev", file]);
    }
    args.extend_from_slice(&["--", "report"]);
    // The image's /dev/null points at a host file, then at a sysctl the container's
    // /proc would expose (the CVE-2025-31133 attack).
    let targets = [
        secret.clone(),
        PathBuf::from("/proc/sys/kernel/core_pattern"),
    ];
    for (n, target) in targets.iter().enumerate() {
        let name = format!("c{n}");
        let mut bundle = env.bundle(&name, &args);
        let image_dev = bundle.dir.join("image-dev");
        fs::create_dir_all(&image_dev).expect("make the image's /dev");
        symlink(target, image_dev.join("null")).expect("link /dev/null");
        drop_mounts(
            &mut bundle,
            &["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"],
        );
        bundle.push(
            "/mounts",
            json!({"destination": "/dev", "type": "bind", "source": text(&image_dev),
                   "options": ["rbind", "ro"]}),
        );
        bundle.push("/linux/maskedPaths", json!("/etc/masked"));
        bundle.save();
        fs::write(bundle.rootfs.join("etc/masked"), "visible").expect("write /etc/masked");

        let report = env.report(&bundle, &env.id(&name));
        // The precondition: the container's /dev/null is the image's link.
        assert_eq!(
            report.get("probe.readlink.target"),
            Some(text(target)),
            "{report:?}"
        );
        for file in masked_files {
            let expected = if file == "/etc/masked" {
                "1:3"
            } else {
                masked(file)
            };
            assert_eq!(
                report.get(&format!("probe.rdev.{file}")),
                Some(expected),
                "{name}: {file} is not masked with the null device: {report:?}"
            );
        }
    }
    host.assert_untouched("after the runs");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").ok(),
        core_pattern
    );
}

// ---------------------------------------------------------------------------------
// 4. Capabilities.

#[test]
fn inheritable_and_ambient_capabilities_stay_empty_unless_configured() {
    let Some(env) = Env::new("caps") else { return };
    let Some(setpriv) = prereq::program("setpriv") else {
        return;
    };
    let base = mask(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE]);
    // The precondition: the runtime itself runs with inheritable and ambient
    // capabilities, so a leak would show.
    let raised = [
        "--inh-caps",
        "+kill,+sys_admin",
        "--ambient-caps",
        "+kill,+sys_admin",
    ];
    let status = Command::new(&setpriv)
        .args(raised)
        .args(["grep", "^CapAmb", "/proc/self/status"])
        .output()
        .expect("run setpriv");
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && !shown.contains("0000000000000000"),
        "setpriv did not raise ambient capabilities: {status:?}"
    );
    let under_setpriv = |args: &[&str]| -> Report {
        let child = Command::new(&setpriv)
            .args(raised)
            .arg(env.moor.bin())
            .arg("runtime")
            .arg("--root")
            .arg(env.moor.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn setpriv moor");
        let ran = finish(child, &format!("setpriv … moor {}", args.join(" ")));
        assert!(ran.status.success(), "{ran:?}");
        report(&ran.stdout)
    };
    let check = |r: &Report, what: &str, eff: u64| {
        assert_eq!(r.caps_inheritable().ok(), Some(0), "{what}: inheritable");
        assert_eq!(r.caps_ambient().ok(), Some(0), "{what}: ambient");
        assert_eq!(r.caps_bounding().ok(), Some(base), "{what}: bounding");
        assert_eq!(r.caps_effective().ok(), Some(eff), "{what}: effective");
        assert_eq!(r.caps_permitted().ok(), Some(eff), "{what}: permitted");
    };
    let root = env.bundle("root", &[CHECKER, "report"]);
    check(
        &under_setpriv(&["run", "--bundle", dir(&root), &env.id("root")]),
        "root",
        base,
    );
    let mut user = env.bundle("user", &[CHECKER, "report"]);
    user.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    user.save();
    // A user other than root keeps no capabilities across execve without ambient ones.
    check(
        &under_setpriv(&["run", "--bundle", dir(&user), &env.id("user")]),
        "uid 1000",
        0,
    );
    let sleeper = env.bundle("s", &["sleep", "1000"]);
    let id = env.id("s");
    env.detach(&sleeper, &id);
    check(
        &under_setpriv(&["exec", &id, CHECKER, "report"]),
        "exec",
        base,
    );
    let as_user = under_setpriv(&["exec", "--user", "1000:1000", &id, CHECKER, "report"]);
    check(&as_user, "exec as 1000", 0);

    // Asked for: exactly what the configuration says, bounding included.
    let mut asked = env.bundle("asked", &[CHECKER, "report"]);
    asked.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    asked.set(
        "/process/capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        }),
    );
    asked.save();
    let r = under_setpriv(&["run", "--bundle", dir(&asked), &env.id("asked")]);
    let bind = mask(&[CAP_NET_BIND_SERVICE]);
    assert_eq!(
        r.caps_bounding().ok(),
        Some(mask(&[CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE]))
    );
    assert_eq!(
        r.caps_inheritable().ok(),
        Some(mask(&[CAP_KILL, CAP_NET_BIND_SERVICE]))
    );
    assert_eq!(r.caps_ambient().ok(), Some(bind));
    assert_eq!(r.caps_effective().ok(), Some(bind));
    assert_eq!(r.caps_permitted().ok(), Some(bind));
}

// ---------------------------------------------------------------------------------
// 5. Masked and read-only paths.

fn with_caps(bundle: &mut Bundle, extra: &[&str]) {
    let caps: Vec<&str> = BASE_CAPS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    for set in ["bounding", "effective", "permitted"] {
        bundle.set(&format!("/process/capabilities/{set}"), json!(caps));
    }
}

/// What a write under a read-only path must meet: EROFS, or ENOENT where this kernel
/// lacks the file (`/proc/sysrq-trigger` without `CONFIG_MAGIC_SYSRQ`).
fn read_only(path: &str) -> &'static str {
    if Path::new(path).exists() {
        "EROFS"
    } else {
        "ENOENT"
    }
}

/// A regular file under `dir` (a few levels down) that nobody may write: a write to it
/// fails with EACCES on a writable mount and with EROFS (checked first) on a read-only
/// one, and changes nothing either way.
fn unwritable_file_under(dir: &Path) -> Option<PathBuf> {
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(list) = fs::read_dir(&dir) else {
            continue;
        };
        let mut list: Vec<PathBuf> = list.flatten().map(|e| e.path()).collect();
        list.sort();
        for path in list {
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file() && meta.mode() & 0o222 == 0 {
                return Some(path);
            }
            if meta.is_dir() && depth < 3 {
                dirs.push((path, depth + 1));
            }
        }
    }
    None
}

#[test]
fn masked_and_read_only_paths_hold_with_and_without_cap_sys_admin() {
    let Some(env) = Env::new("masks") else { return };
    // One container per set of capabilities (and one without masks: the control),
    // probed with exec.
    let container = |name: &str, extra: &[&str], edit: &dyn Fn(&mut Bundle)| {
        let mut bundle = env.bundle(name, &["sleep", "1000"]);
        with_caps(&mut bundle, extra);
        edit(&mut bundle);
        bundle.save();
        let id = env.id(name);
        env.detach(&bundle, &id);
        id
    };
    let probe = |id: &str, args: &[&str]| {
        let mut all = vec![CHECKER, "probe"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "report"]);
        env.exec_report(&[], id, &all)
    };
    let masks = [
        "rdev",
        "/proc/kcore",
        "--",
        "probe",
        "rdev",
        "/proc/keys",
        "--",
        "probe",
        "rdev",
        "/proc/timer_list",
        "--",
        "probe",
        "ls",
        "/sys/firmware",
        "--",
        "probe",
        "mkdir",
        "/sys/firmware/x",
    ];
    // A write that would change the container's hostname, one that would reach the
    // kernel, and one into each other read-only path.
    let mut writes: Vec<(String, &str)> = vec![
        ("/proc/sys/kernel/hostname".into(), "changed"),
        ("/proc/sysrq-trigger".into(), "h"),
    ];
    for dir in ["/proc/bus", "/proc/fs", "/proc/irq"] {
        if let Some(file) = unwritable_file_under(Path::new(dir)) {
            writes.push((text(&file).to_string(), "x"));
        }
    }
    for (name, extra) in [("plain", &[][..]), ("admin", &["CAP_SYS_ADMIN"][..])] {
        let id = container(name, extra, &|_| {});
        let r = probe(&id, &masks);
        let admin = r.caps_effective().expect("caps") & mask(&[CAP_SYS_ADMIN]) != 0;
        assert_eq!(
            admin,
            !extra.is_empty(),
            "{name}: CAP_SYS_ADMIN as configured"
        );
        for file in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
            let got = r.get(&format!("probe.rdev.{file}"));
            assert_eq!(got, Some(masked(file)), "{name}: {file}: {r:?}");
        }
        assert_eq!(
            r.probe("ls"),
            Some("0"),
            "{name}: /sys/firmware is not empty"
        );
        let firmware = r.mount("/sys/firmware").expect("a mount on /sys/firmware");
        assert!(firmware.has_option("ro"), "{name}: {firmware:?}");
        assert_eq!(r.probe("mkdir"), Some("EROFS"), "{name}: /sys/firmware");
        for (path, value) in &writes {
            let r = probe(&id, &["write", path, value]);
            assert_eq!(
                r.probe("write"),
                Some(read_only(path)),
                "{name}: write {path}"
            );
            assert_eq!(r.get("hostname"), Some("moor-test"), "{name}");
        }
    }

    // The control: with neither masks nor read-only paths, the same probes see the
    // host's files, the hostname write goes through (to the container's own UTS
    // namespace) and the other writes fail for want of permission, not for a read-only
    // mount. The sysrq trigger is left alone: writing it would reach the host.
    let id = container("control", &[], &|bundle| {
        bundle.set("/linux/maskedPaths", json!([]));
        bundle.set("/linux/readonlyPaths", json!([]));
    });
    let r = probe(&id, &masks);
    assert_eq!(r.get("probe.rdev./proc/timer_list"), Some("0:0"), "{r:?}");
    assert_ne!(r.probe("ls"), Some("0"));
    assert!(
        writes.len() > 2,
        "no unwritable file under /proc/bus, /proc/fs or /proc/irq"
    );
    for (path, value) in writes.iter().filter(|w| !w.0.contains("sysrq")) {
        let r = probe(&id, &["write", path, value]);
        if path.ends_with("hostname") {
            assert_eq!(r.probe("write"), Some("ok"), "control: {path}");
            assert_eq!(r.get("hostname"), Some("changed"));
        } else {
            assert_eq!(r.probe("write"), Some("EACCES"), "control: {path}");
        }
    }
}

// ---------------------------------------------------------------------------------
// 6. Devices.

/// Major and minor of the block device holding the host's `/`.
fn root_disk() -> (u64, u64) {
    let dev = fs::metadata("/").expect("stat /").dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

#[test]
fn device_rules_refuse_host_devices_even_with_cap_mknod() {
    let Some(env) = Env::new("devices") else {
        return;
    };
    let (disk_major, disk_minor) = root_disk();
    let (major, minor) = (disk_major.to_string(), disk_minor.to_string());
    let mut bundle = env.bundle("c", &["sleep", "1000"]);
    with_caps(&mut bundle, &["CAP_MKNOD"]);
    bundle.save();
    // Nodes smuggled into the image: the host's memory, its root disk, and (the control)
    // the null device, which the rules allow.
    let smuggled = bundle.rootfs.join("dev2");
    fs::create_dir_all(&smuggled).expect("mkdir dev2");
    for (name, kind, maj, min) in [
        ("mem", "c", "1", "1"),
        ("disk", "b", major.as_str(), minor.as_str()),
        ("null", "c", "1", "3"),
    ] {
        let node = smuggled.join(name);
        let made = Command::new(&env.busybox)
            .args(["mknod", text(&node), kind, maj, min])
            .output()
            .expect("run mknod");
        assert!(made.status.success(), "mknod {name}: {made:?}");
    }
    let id = env.id("c");
    env.detach(&bundle, &id);

    let probe = |args: &[&str]| -> Report {
        let mut all = vec![CHECKER, "probe"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "report"]);
        env.exec_report(&[], &id, &all)
    };
    let r = probe(&["mknod", "/dev/sda", "b", "8", "0"]);
    assert_ne!(
        r.caps_effective().expect("caps") & mask(&[CAP_MKNOD]),
        0,
        "the process should have CAP_MKNOD"
    );
    assert_eq!(r.probe("mknod"), Some("EPERM"), "/dev/sda");
    let r = probe(&["mknod", "/dev/mem", "c", "1", "1"]);
    assert_eq!(r.probe("mknod"), Some("EPERM"), "/dev/mem");
    let r = probe(&["mknod", "/dev/disk", "b", &major, &minor]);
    assert_eq!(r.probe("mknod"), Some("EPERM"), "the host's root disk");
    // The control: the same capability makes a node the rules allow.
    let r = probe(&["mknod", "/dev/null2", "c", "1", "3"]);
    assert_eq!(r.probe("mknod"), Some("ok"), "a node the rules allow");

    for (name, expected) in [("mem", "1:1"), ("disk", &format!("{major}:{minor}")[..])] {
        let path = format!("/dev2/{name}");
        let r = probe(&["rdev", &path, "--", "probe", "open", &path, "r"]);
        assert_eq!(
            r.get(&format!("probe.rdev.{path}")),
            Some(expected),
            "{r:?}"
        );
        assert_eq!(r.probe("open"), Some("EPERM"), "{path} opened");
    }
    let r = probe(&["open", "/dev2/null", "r"]);
    assert_eq!(r.probe("open"), Some("ok"), "the allowed smuggled node");
}

// ---------------------------------------------------------------------------------
// 7. The set-up child.

#[test]
fn a_created_init_still_running_runtime_code_cannot_be_traced_or_opened() {
    let Some(env) = Env::new("undumpable") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.id("c");
    let created = env.to_files(&["create", "--bundle", dir(&bundle), &id], &id);
    assert!(created.status.success(), "{created:?}");
    let init = env.pid(&id);
    let runtime_len = fs::metadata(env.moor.bin()).expect("stat moor").len();
    let probes = [
        CHECKER,
        "probe",
        "ptrace",
        "1",
        "--",
        "probe",
        "exe-hold-and-write",
        "1",
        "0",
        "--",
        "probe",
        "readlink",
        "/proc/1/exe",
        "--",
        "probe",
        "open",
        "/proc/1/environ",
        "r",
    ];
    // The precondition: PID 1 in there is the runtime's code, waiting for start.
    let exe_len = fs::metadata(format!("/proc/{init}/exe"))
        .map(|m| m.len())
        .ok();
    assert_eq!(
        exe_len,
        Some(runtime_len),
        "the created init is not the runtime"
    );
    let r = env.exec_report(&[], &id, &probes);
    assert_eq!(r.probe("ptrace"), Some("EPERM"), "{r:?}");
    assert_eq!(r.probe("exe-hold"), Some("EACCES"));
    assert_eq!(r.probe("readlink"), Some("EACCES"));
    assert_eq!(r.probe("open"), Some("EACCES"));

    // The control: once PID 1 is the program, the same probes reach it.
    env.moor.ok(&["start", &id]);
    let busybox = fs::metadata(bundle.rootfs.join("bin/busybox")).expect("stat busybox");
    wait::wait_until("the init to run the program", DEADLINE, || {
        fs::metadata(format!("/proc/{init}/exe")).is_ok_and(|m| m.ino() == busybox.ino())
    });
    let r = env.exec_report(&[], &id, &probes);
    assert_eq!(r.probe("ptrace"), Some("ok"), "{r:?}");
    assert_eq!(r.probe("exe-hold"), Some("ok"));
    assert_eq!(r.probe("exe-hold-and-write"), Some("EROFS"));
    assert_eq!(r.get("probe.readlink.target"), Some("/bin/busybox"));
    assert_eq!(r.probe("open"), Some("ok"));
}

/// The v1 memory group's peak, or the cgroup2 group's, of the group `group`.
fn memory_peak(group: &str) -> Option<u64> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let relative = group.trim_start_matches('/');
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let point = Path::new(fields.get(4)?).join(relative);
        let file = match *fields.get(sep + 1)? {
            "cgroup" if fields.get(sep + 3)?.split(',').any(|o| o == "memory") => {
                point.join("memory.max_usage_in_bytes")
            }
            "cgroup2" => point.join("memory.peak"),
            _ => return None,
        };
        fs::read_to_string(file).ok()?.trim().parse().ok()
    })
}

#[test]
fn the_container_is_not_charged_for_the_runtime() {
    let Some(env) = Env::new("charge") else {
        return;
    };
    let mut bundle = env.bundle("c", &["sleep", "1000"]);
    bundle.set("/linux/resources/memory", json!({"limit": 256 << 20}));
    bundle.save();
    let id = env.id("c");
    env.detach(&bundle, &id);
    env.moor.ok(&["exec", &id, "true"]);
    let group = format!("/moor-test/{}/c", env.scratch.prefix());
    let peak = memory_peak(&group).expect("a memory group with a peak for the container");
    let runtime = fs::metadata(env.moor.bin()).expect("stat moor").len();
    // Busybox's pages are the container's; the runtime's heap, stacks and copied pages
    // would come on top. A quarter of the binary is far above the one and far below
    // what a runtime charged to the container would use.
    assert!(
        peak < runtime / 4,
        "the container's memory peaked at {peak} bytes (the runtime is {runtime})"
    );
    assert!(
        peak > 0,
        "nothing charged at all: is {group} the container's group?"
    );
}

// ---------------------------------------------------------------------------------
// 8. Processes.

#[test]
fn a_container_sees_and_signals_only_its_own_processes() {
    let Some(env) = Env::new("pidns") else { return };
    let victim = Command::new(&env.busybox)
        .args(["sleep", "1000"])
        .spawn()
        .expect("start a host process");
    let pid = victim.id().to_string();
    // The control: from the host's namespace, the probe reaches it.
    let host = Command::new(checker_path())
        .args(["probe", "kill", &pid, "0"])
        .output()
        .expect("run the checker on the host");
    let host = report(&String::from_utf8_lossy(&host.stdout));
    assert_eq!(host.probe("kill"), Some("ok"));

    let bundle = env.bundle(
        "c",
        &[
            CHECKER, "probe", "ls-proc", "--", "probe", "kill", &pid, "KILL",
        ],
    );
    let r = env.report(&bundle, &env.id("c"));
    let seen: Vec<&str> = r
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("proc.")?.strip_suffix(".exe"))
        .collect();
    assert_eq!(seen, vec!["1"], "the container sees other processes: {r:?}");
    assert_eq!(r.probe("kill"), Some("ESRCH"), "{r:?}");
    assert!(alive(victim.id() as i32), "the host process was signalled");
    kill_and_reap(victim);
}

/// Rewrites the recorded init of a container in its `state.json`.
fn forge_init(env: &Env, id: &str, pid: i32, start_time: Option<u64>) {
    let path = env.moor.root().join(id).join("state.json");
    let mut state: Value =
        serde_json::from_str(&fs::read_to_string(&path).expect("read state.json"))
            .expect("parse state.json");
    state["init"]["pid"] = json!(pid);
    if let Some(start) = start_time {
        state["init"]["start_time"] = json!(start);
    }
    fs::write(&path, serde_json::to_vec(&state).expect("serialize")).expect("write state");
}

fn start_time(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let (_, rest) = stat.rsplit_once(") ").expect("a stat line");
    rest.split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .expect("a start time")
}

#[test]
fn kill_never_signals_a_process_that_took_the_init_pid() {
    let Some(env) = Env::new("kill-recycled") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.id("c");
    env.detach(&bundle, &id);
    let init = env.pid(&id);
    // SAFETY: kill(2) of the container's init, which the test made.
    unsafe { libc::kill(init, libc::SIGKILL) };
    wait::wait_until("the init to be gone", DEADLINE, || !alive(init));
    assert_eq!(env.moor.status(&id), "stopped");
    let refused = env.moor.fails(&["kill", &id, "KILL"]);
    assert!(refused.stderr.contains("stopped"), "{refused:?}");

    // A host process now holds the init's PID (as a recycled PID would): the state is
    // pointed at it, with the dead init's start time.
    let victim = Command::new(&env.busybox)
        .args(["sleep", "1000"])
        .spawn()
        .expect("start a host process");
    let victim_pid = victim.id() as i32;
    forge_init(&env, &id, victim_pid, None);
    assert_eq!(env.moor.status(&id), "stopped");
    let refused = env.moor.fails(&["kill", &id, "KILL"]);
    assert!(refused.stderr.contains("stopped"), "{refused:?}");
    assert!(
        alive(victim_pid),
        "kill signalled a process that took the PID"
    );

    // The control: with the victim's own start time, the runtime takes it for the init
    // and does signal it, so the start time is all that stood in the way.
    forge_init(&env, &id, victim_pid, Some(start_time(victim_pid)));
    env.moor.ok(&["kill", &id, "KILL"]);
    let mut victim = victim;
    let status = victim.wait().expect("reap the victim");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    forge_init(&env, &id, init, None);
}
