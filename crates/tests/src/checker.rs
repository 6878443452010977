//! The in-container checker: where its static binary is, and a typed reader for what
//! it prints. Running containers is not this module's business; tests copy
//! [`checker_path`] into a root filesystem, run it there and parse its stdout.
//!
//! ```text
//!  test ── copies checker_path() into the rootfs ──▶ container
//!                                                     │ moor-checker report | expect | probe
//!  Report::parse(stdout) ◀── key=value lines ─────────┘
//!        └─▶ get / caps_effective / fds / mount / rlimit / probe ...
//! ```
//!
//! Output format: one `key=value` per line, split at the first `=`. Both sides are
//! escaped with `\\`, `\n`, `\r`, `\t` and `\xNN`; keys also write `=` as `\x3d`. A
//! value the checker could not read is `?error:<ERRNO or message>`. Commands chained
//! with `--` print one after another; a key printed twice keeps its last value.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

/// The checker binary, built static by this crate's build script.
pub fn checker_path() -> &'static Path {
    Path::new(env!("MOOR_CHECKER"))
}

/// Why checker output could not be read, or a key could not be typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("line {line}: no '=' in {text:?}")]
    MissingEquals { line: usize, text: String },
    #[error("line {line}: bad escape sequence in {text:?}")]
    BadEscape { line: usize, text: String },
    #[error("key {key} is not in the report")]
    MissingKey { key: String },
    #[error("key {key}: {value:?} is not {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// One `mount.<destination>` entry: the last mount at that destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub fstype: String,
    /// Per-mount options, e.g. `ro`, `nosuid`, `relatime`.
    pub options: Vec<String>,
    /// Filesystem-wide options, e.g. `size=65536k`, `mode=755`.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether the per-mount options include `option`.
    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// The parsed output of `moor-checker report` (and of any probes chained with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    entries: BTreeMap<String, String>,
}

impl Report {
    /// Parses checker stdout. Blank lines are skipped; any other line without `=` or
    /// with a bad escape is an error naming the line.
    pub fn parse(stdout: &str) -> Result<Report, ReportError> {
        let mut entries = BTreeMap::new();
        for (index, text) in stdout.lines().enumerate() {
            if text.is_empty() {
                continue;
            }
            let line = index + 1;
            let Some((key, value)) = text.split_once('=') else {
                let text = text.to_string();
                return Err(ReportError::MissingEquals { line, text });
            };
            let (Some(key), Some(value)) = (unescape(key), unescape(value)) else {
                let text = text.to_string();
                return Err(ReportError::BadEscape { line, text });
            };
            entries.insert(key, value);
        }
        Ok(Report { entries })
    }

    /// The unescaped value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Like [`Report::get`], but a missing key is an error.
    pub fn require(&self, key: &str) -> Result<&str, ReportError> {
        self.get(key).ok_or_else(|| ReportError::MissingKey {
            key: key.to_string(),
        })
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The message of a `?error:` value, if `key` holds one.
    pub fn error(&self, key: &str) -> Option<&str> {
        self.get(key)?.strip_prefix("?error:")
    }

    /// A decimal value such as `uid`, `pid` or `root.ino`.
    pub fn number<T: FromStr>(&self, key: &str) -> Result<T, ReportError> {
        let value = self.require(key)?;
        value
            .parse()
            .map_err(|_| bad_value(key, value, "a decimal number"))
    }

    pub fn uid(&self) -> Result<u32, ReportError> {
        self.number("uid")
    }

    pub fn gid(&self) -> Result<u32, ReportError> {
        self.number("gid")
    }

    pub fn caps_effective(&self) -> Result<u64, ReportError> {
        self.caps("cap.eff")
    }

    pub fn caps_permitted(&self) -> Result<u64, ReportError> {
        self.caps("cap.prm")
    }

    pub fn caps_bounding(&self) -> Result<u64, ReportError> {
        self.caps("cap.bnd")
    }

    pub fn caps_inheritable(&self) -> Result<u64, ReportError> {
        self.caps("cap.inh")
    }

    pub fn caps_ambient(&self) -> Result<u64, ReportError> {
        self.caps("cap.amb")
    }

    fn caps(&self, key: &str) -> Result<u64, ReportError> {
        let value = self.require(key)?;
        u64::from_str_radix(value, 16).map_err(|_| bad_value(key, value, "a hex capability mask"))
    }

    /// The open file descriptors, ascending.
    pub fn fds(&self) -> Result<Vec<i32>, ReportError> {
        let value = self.require("fds")?;
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let fds: Result<Vec<i32>, _> = value.split(',').map(str::parse).collect();
        fds.map_err(|_| bad_value("fds", value, "a comma list of fds"))
    }

    /// What an open fd points at, e.g. `/dev/null` or `pipe:[1234]`.
    pub fn fd_target(&self, fd: i32) -> Option<&str> {
        self.get(&format!("fd.{fd}"))
    }

    /// The mount at `destination` (as seen inside the container).
    pub fn mount(&self, destination: &str) -> Option<MountInfo> {
        let value = self.get(&format!("mount.{destination}"))?;
        let mut parts = value.splitn(3, ' ');
        let list = |s: Option<&str>| -> Vec<String> {
            let s = s.unwrap_or("");
            s.split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect()
        };
        Some(MountInfo {
            fstype: parts.next()?.to_string(),
            options: list(parts.next()),
            super_options: list(parts.next()),
        })
    }

    /// Every mount destination in the report.
    pub fn mount_points(&self) -> Vec<&str> {
        self.iter()
            .filter_map(|(k, _)| k.strip_prefix("mount."))
            .collect()
    }

    /// (soft, hard) for a limit named `NOFILE` or `RLIMIT_NOFILE`; `unlimited` stays a
    /// word.
    pub fn rlimit(&self, name: &str) -> Option<(String, String)> {
        let name = name.strip_prefix("RLIMIT_").unwrap_or(name);
        let (soft, hard) = self.get(&format!("rlimit.{name}"))?.split_once(':')?;
        Some((soft.to_string(), hard.to_string()))
    }

    pub fn env(&self, name: &str) -> Option<&str> {
        self.get(&format!("env.{name}"))
    }

    /// The namespace link for `kind` (`pid`, `net`, ...), e.g. `net:[4026531840]`.
    pub fn namespace(&self, kind: &str) -> Option<&str> {
        self.get(&format!("ns.{kind}"))
    }

    /// A probe's outcome: `ok`, an errno name like `EPERM`, or a count.
    pub fn probe(&self, kind: &str) -> Option<&str> {
        self.get(&format!("probe.{kind}"))
    }
}

fn bad_value(key: &str, value: &str, expected: &'static str) -> ReportError {
    ReportError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// Reverses the checker's escaping; `None` on a malformed sequence. Bytes that are not
/// UTF-8 come back as U+FFFD.
fn unescape(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        out.push(match bytes.next()? {
            b'\\' => b'\\',
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'x' => {
                let hex = [bytes.next()?, bytes.next()?];
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            _ => return None,
        });
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Output, Stdio};

    const SAMPLE: &str = "\
cap.amb=0000000000000000
cap.eff=00000000a80425fb
cap.prm=00000000a80425fb
env.GREETING=hello\\nworld \\\\o/
env.ODD\\x3dKEY=x
fd.0=/dev/null
fds=0,1,2
mount./=ext4 ro,relatime rw,errors=remount-ro
mount./my dir=tmpfs rw,nosuid,nodev size=64k,mode=755
mount./proc=proc rw,nosuid,nodev,noexec,relatime rw
ns.net=net:[4026531840]
rlimit.NOFILE=1024:4096
rlimit.CPU=unlimited:unlimited
uid=0
cwd=(unreachable)
hostname=?error:EPERM
probe.open=ENOENT

";

    #[test]
    fn parse_reads_typed_values_from_sample() -> Result<(), ReportError> {
        let report = Report::parse(SAMPLE)?;
        assert_eq!(report.caps_effective()?, 0xa804_25fb);
        assert_eq!(report.caps_ambient()?, 0);
        assert_eq!(report.fds()?, vec![0, 1, 2]);
        assert_eq!(report.fd_target(0), Some("/dev/null"));
        assert_eq!(report.uid()?, 0);
        assert_eq!(report.namespace("net"), Some("net:[4026531840]"));
        assert_eq!(report.get("cwd"), Some("(unreachable)"));
        assert_eq!(report.probe("open"), Some("ENOENT"));
        assert_eq!(report.error("hostname"), Some("EPERM"));
        assert_eq!(report.error("uid"), None);
        Ok(())
    }

    #[test]
    fn parse_unescapes_keys_and_values() -> Result<(), ReportError> {
        let report = Report::parse(SAMPLE)?;
        assert_eq!(report.env("GREETING"), Some("hello\nworld \\o/"));
        assert_eq!(report.env("ODD=KEY"), Some("x"));
        Ok(())
    }

    #[test]
    fn mount_splits_fstype_and_both_option_lists() -> Result<(), ReportError> {
        let report = Report::parse(SAMPLE)?;
        let root = report.mount("/").ok_or(ReportError::MissingKey {
            key: "mount./".into(),
        })?;
        assert_eq!(root.fstype, "ext4");
        assert!(root.has_option("ro"));
        assert_eq!(root.super_options, vec!["rw", "errors=remount-ro"]);
        let spaced = report.mount("/my dir").map(|m| m.super_options);
        assert_eq!(
            spaced,
            Some(vec!["size=64k".to_string(), "mode=755".into()])
        );
        assert_eq!(report.mount("/nowhere"), None);
        assert_eq!(report.mount_points(), vec!["/", "/my dir", "/proc"]);
        Ok(())
    }

    #[test]
    fn rlimit_accepts_both_name_forms_and_keeps_unlimited() -> Result<(), ReportError> {
        let report = Report::parse(SAMPLE)?;
        let nofile = Some(("1024".to_string(), "4096".to_string()));
        assert_eq!(report.rlimit("NOFILE"), nofile);
        assert_eq!(report.rlimit("RLIMIT_NOFILE"), nofile);
        let cpu = report.rlimit("CPU").map(|(soft, _)| soft);
        assert_eq!(cpu.as_deref(), Some("unlimited"));
        assert_eq!(report.rlimit("AS"), None);
        Ok(())
    }

    #[test]
    fn parse_rejects_lines_without_equals_and_bad_escapes() {
        let missing = Report::parse("uid=0\nok\n");
        assert!(matches!(
            missing,
            Err(ReportError::MissingEquals { line: 2, .. })
        ));
        for bad in ["k=a\\q", "k=\\x4", "k=\\xzz", "k=trailing\\"] {
            let err = Report::parse(bad);
            assert!(
                matches!(err, Err(ReportError::BadEscape { line: 1, .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn typed_accessors_report_missing_and_malformed_values() -> Result<(), ReportError> {
        let report = Report::parse("cap.eff=?error:EACCES\nfds=\nuid=x\n")?;
        assert!(matches!(
            report.caps_effective(),
            Err(ReportError::BadValue { .. })
        ));
        assert!(matches!(
            report.caps_bounding(),
            Err(ReportError::MissingKey { .. })
        ));
        assert!(matches!(report.uid(), Err(ReportError::BadValue { .. })));
        assert_eq!(report.fds()?, Vec::<i32>::new());
        Ok(())
    }

    #[test]
    fn later_values_win_when_output_is_chained() -> Result<(), ReportError> {
        let report = Report::parse("probe.open=ENOENT\nprobe.open=ok\n")?;
        assert_eq!(report.probe("open"), Some("ok"));
        assert_eq!(report.len(), 1);
        Ok(())
    }

    // The checker run directly on the host, as a process of this test.

    fn run(args: &[&str]) -> Output {
        Command::new(checker_path())
            .args(args)
            .env("MOOR_CHECKER_TEST", "line one\nline=two \\ end")
            .stdin(Stdio::null())
            .output()
            .expect("running the checker binary")
    }

    fn stdout_report(output: &Output) -> Report {
        let stdout = String::from_utf8_lossy(&output.stdout);
        Report::parse(&stdout).expect("checker output parses")
    }

    /// The `e_type`s of an ELF file's program headers (32- or 64-bit, either byte order).
    fn program_header_types(elf: &[u8]) -> Option<Vec<u32>> {
        if elf.get(..4)? != b"\x7fELF" {
            return None;
        }
        let (wide, little) = (*elf.get(4)? == 2, *elf.get(5)? == 1);
        let int = |at: usize, len: usize| -> Option<u64> {
            let bytes = elf.get(at..at + len)?;
            let fold = |acc: u64, b: &u8| acc << 8 | u64::from(*b);
            Some(if little {
                bytes.iter().rev().fold(0, fold)
            } else {
                bytes.iter().fold(0, fold)
            })
        };
        let (phoff, phentsize, phnum) = if wide {
            (int(0x20, 8)?, int(0x36, 2)?, int(0x38, 2)?)
        } else {
            (int(0x1c, 4)?, int(0x2a, 2)?, int(0x2c, 2)?)
        };
        (0..phnum)
            .map(|i| int(usize::try_from(phoff + i * phentsize).ok()?, 4).map(|t| t as u32))
            .collect()
    }

    #[test]
    fn checker_binary_is_static() {
        const PT_LOAD: u32 = 1;
        const PT_INTERP: u32 = 3;
        let elf = std::fs::read(checker_path()).expect("reading the checker binary");
        let types = program_header_types(&elf).expect("checker is an ELF file");
        assert!(types.contains(&PT_LOAD), "no loadable segment: {types:?}");
        assert!(
            !types.contains(&PT_INTERP),
            "checker asks for a dynamic loader"
        );
    }

    #[test]
    fn report_on_host_has_identity_caps_and_mounts() -> Result<(), ReportError> {
        let output = run(&["report"]);
        assert!(output.status.success(), "{output:?}");
        let report = stdout_report(&output);
        let own_uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Uid:")?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
            });
        assert_eq!(Some(report.uid()?), own_uid);
        report.caps_effective()?;
        report.caps_bounding()?;
        let root = report.mount("/").expect("a root mount on the host");
        assert!(!root.fstype.is_empty());
        assert!(
            report
                .namespace("mnt")
                .is_some_and(|ns| ns.starts_with("mnt:["))
        );
        assert!(report.rlimit("NOFILE").is_some());
        assert_eq!(report.get("tty.stdin"), Some("no"));
        let fds = report.fds()?;
        assert!(fds.starts_with(&[0, 1, 2]), "{fds:?}");
        for fd in fds {
            let target = report.fd_target(fd).unwrap_or("");
            assert!(!target.ends_with("/fd"), "fd {fd} is the listing itself");
        }
        assert_eq!(report.fd_target(0), Some("/dev/null"));
        Ok(())
    }

    #[test]
    fn report_escapes_newlines_and_equals_in_env() {
        let output = run(&["report"]);
        let value = stdout_report(&output)
            .env("MOOR_CHECKER_TEST")
            .map(str::to_string);
        assert_eq!(value.as_deref(), Some("line one\nline=two \\ end"));
    }

    #[test]
    fn expect_passes_on_own_values_and_fails_on_others() -> Result<(), ReportError> {
        let report = stdout_report(&run(&["report"]));
        let uid = format!("uid={}", report.uid()?);
        let env = "env.MOOR_CHECKER_TEST=line one\nline=two \\ end";
        let ok = run(&[
            "expect",
            &uid,
            env,
            "env.MOOR_CHECKER_TEST~two",
            "nothing!",
            "pid?",
        ]);
        assert!(ok.status.success(), "{ok:?}");
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok\n");

        let bad = run(&["expect", "uid=12345", "uid!", "nothing?"]);
        assert_eq!(bad.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            stderr.contains("expect uid: wanted =12345, got ="),
            "{stderr}"
        );
        assert!(
            stderr.contains("expect nothing: wanted present, got absent"),
            "{stderr}"
        );
        assert_eq!(run(&["expect", "no-operator"]).status.code(), Some(2));
        Ok(())
    }

    #[test]
    fn probes_report_errno_names_and_counts() {
        let report = stdout_report(&run(&["probe", "open", "/nonexistent", "r"]));
        assert_eq!(report.probe("open"), Some("ENOENT"));
        let report = stdout_report(&run(&["probe", "fork", "3"]));
        assert_eq!(report.probe("fork"), Some("3"));
        let report = stdout_report(&run(&["probe", "exe-write", "self"]));
        assert_eq!(report.probe("exe-write"), Some("ETXTBSY"));
        assert_eq!(report.probe("exe-read"), Some("ok"));
        assert_eq!(run(&["probe", "open", "/", "x"]).status.code(), Some(2));
        assert_eq!(run(&["probe", "no-such-probe"]).status.code(), Some(2));
    }

    #[test]
    fn commands_chain_until_one_fails_or_exits() -> Result<(), ReportError> {
        let chained = run(&[
            "probe",
            "open",
            "/dev/null",
            "r",
            "--",
            "probe",
            "chdir",
            "/",
            "--",
            "report",
        ]);
        assert!(chained.status.success(), "{chained:?}");
        let report = stdout_report(&chained);
        assert_eq!(report.probe("open"), Some("ok"));
        assert_eq!(report.probe("chdir.cwd"), Some("/"));
        assert_eq!(report.get("cwd"), Some("/"));
        report.caps_effective()?;

        let stopped = run(&["probe", "exit", "7", "--", "report"]);
        assert_eq!(stopped.status.code(), Some(7));
        assert!(stopped.stdout.is_empty());
        Ok(())
    }

    #[test]
    fn signal_wait_names_the_signal_it_got() {
        let mut waiter = Command::new(checker_path())
            .args(["probe", "signal-wait"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the checker");
        let mut lines = BufReader::new(waiter.stdout.take().expect("piped stdout")).lines();
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(ready.as_deref(), Some("probe.signal-wait=ready"));
        let pid = waiter.id().to_string();
        let kill = stdout_report(&run(&["probe", "kill", &pid, "TERM"]));
        assert_eq!(kill.probe("kill"), Some("ok"));
        let got = lines.next().and_then(Result::ok);
        assert_eq!(got.as_deref(), Some("probe.signal=SIGTERM"));
        assert!(waiter.wait().expect("waiting for the checker").success());
    }

    #[test]
    fn exe_hold_and_write_cannot_write_a_running_binary() {
        let dir = std::env::temp_dir().join(format!("moor-checker-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        let copy = dir.join("moor-checker");
        std::fs::copy(checker_path(), &copy).expect("copying the checker");
        // Another test thread forking while the copy's write fd was open holds that fd
        // until it execs, and exec of the copy fails with ETXTBSY meanwhile.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut target = loop {
            let spawned = Command::new(&copy)
                .args(["probe", "signal-wait"])
                .stdout(Stdio::piped())
                .spawn();
            match spawned {
                Err(e) if e.raw_os_error() == Some(26) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                spawned => break spawned.expect("starting the copy"),
            }
        };
        let mut lines = BufReader::new(target.stdout.take().expect("piped stdout")).lines();
        assert!(
            lines
                .next()
                .is_some_and(|l| l.is_ok_and(|l| l.ends_with("ready")))
        );
        let pid = target.id().to_string();
        let attack = stdout_report(&run(&["probe", "exe-hold-and-write", &pid, "0"]));
        let _ = run(&["probe", "kill", &pid, "KILL"]);
        let _ = target.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(attack.probe("exe-hold"), Some("ok"));
        assert_eq!(attack.probe("exe-hold-and-write"), Some("ETXTBSY"));
    }
}
