//! The `report` command: everything the runtime set up that the process can see about
//! itself, as sorted `key=value` lines. A key whose source cannot be read holds
//! `?error:<ERRNO or message>` instead of failing the whole report.

use crate::{error_value, escape, link, raw, show, sys};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

const NAMESPACES: [&str; 8] = ["pid", "net", "mnt", "ipc", "uts", "cgroup", "user", "time"];
const SYSCTLS: [&str; 4] = [
    "net.ipv4.ip_forward",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "kernel.shmmax",
];

/// Escaped keys to escaped values.
#[derive(Debug, Default)]
pub struct Report {
    entries: BTreeMap<String, String>,
}

impl Report {
    fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.entries
            .insert(escape(key.as_ref(), true), escape(value.as_ref(), false));
    }

    fn set_result<V: AsRef<[u8]>>(&mut self, key: impl AsRef<[u8]>, value: io::Result<V>) {
        self.set(key, show(value));
    }

    /// The escaped value for an unescaped key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .get(&escape(key.as_bytes(), true))
            .map(String::as_str)
    }

    pub fn print(&self) {
        let text: String = self
            .entries
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        raw(text.as_bytes());
    }
}

pub fn collect() -> Report {
    let mut r = Report::default();
    // First, while no file of ours is open.
    fds(&mut r);
    identity(&mut r);
    limits(&mut r);
    for ns in NAMESPACES {
        r.set_result(format!("ns.{ns}"), link(format!("/proc/self/ns/{ns}")));
    }
    r.set_result("cwd", cwd());
    for (k, v) in std::env::vars_os() {
        r.set([b"env.", k.as_bytes()].concat(), v.as_bytes());
    }
    mounts(&mut r);
    let adj = fs::read_to_string("/proc/self/oom_score_adj");
    r.set_result("oom_score_adj", adj.map(|s| s.trim().to_string()));
    let cgroup = fs::read_to_string("/proc/self/cgroup");
    r.set_result(
        "cgroup",
        cgroup.map(|s| s.lines().collect::<Vec<_>>().join(";")),
    );
    r.set_result("root.ino", fs::metadata("/").map(|m| m.ino().to_string()));
    for name in SYSCTLS {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        if let Ok(value) = fs::read_to_string(path) {
            r.set(format!("sysctl.{name}"), value.trim());
        }
    }
    tty(&mut r);
    r
}

/// The working directory, or "(unreachable)" when it lies outside our root.
pub fn cwd() -> io::Result<Vec<u8>> {
    let cwd = sys::getcwd_raw()?;
    if cwd.starts_with(b"(unreachable)") {
        return Ok(b"(unreachable)".to_vec());
    }
    Ok(cwd)
}

fn fds(r: &mut Report) {
    let dir = fs::read_dir("/proc/self/fd");
    let names = dir.and_then(|dir| {
        dir.map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()
    });
    let mut fds: Vec<i32> = match names {
        Ok(names) => names
            .iter()
            .filter_map(|n| n.to_str()?.parse().ok())
            .collect(),
        Err(e) => return r.set("fds", error_value(&e)),
    };
    fds.sort_unstable();
    let mut open = Vec::new();
    for fd in fds {
        match link(format!("/proc/self/fd/{fd}")) {
            // The directory's own fd, closed again by now.
            Err(e) if e.raw_os_error() == Some(sys::ENOENT) => continue,
            target => r.set_result(format!("fd.{fd}"), target),
        }
        open.push(fd.to_string());
    }
    r.set("fds", open.join(","));
}

/// Ids, groups, umask, capabilities and the prctl flags.
fn identity(r: &mut Report) {
    let status = fs::read_to_string("/proc/self/status").map_err(|e| error_value(&e));
    // A field of /proc/self/status (or its `word`th word), else the value to show instead.
    let field = |name: &str, word: Option<usize>| -> String {
        let text = match &status {
            Ok(text) => text,
            Err(e) => return e.clone(),
        };
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'));
        let value = match (value.map(str::trim), word) {
            (Some(v), Some(i)) => v.split_whitespace().nth(i),
            (value, _) => value,
        };
        value.map_or_else(
            || format!("?error:no {name} in /proc/self/status"),
            str::to_string,
        )
    };
    for (prefix, ids) in [("u", sys::resuid()), ("g", sys::resgid())] {
        for (i, which) in ["", "e", "s"].into_iter().enumerate() {
            let id = ids.as_ref().map(|ids| ids[i].to_string());
            r.set(format!("{which}{prefix}id"), id.unwrap_or_else(error_value));
        }
    }
    r.set("fsuid", field("Uid", Some(3)));
    r.set("fsgid", field("Gid", Some(3)));
    let groups = field("Groups", None);
    r.set(
        "groups",
        if groups.starts_with('?') {
            groups
        } else {
            groups.replace(' ', ",")
        },
    );
    r.set("umask", field("Umask", None));
    r.set("seccomp", field("Seccomp", None));
    for (key, name) in [
        ("bnd", "Bnd"),
        ("eff", "Eff"),
        ("inh", "Inh"),
        ("prm", "Prm"),
        ("amb", "Amb"),
    ] {
        r.set(format!("cap.{key}"), field(&format!("Cap{name}"), None));
    }
    const PR_GET_DUMPABLE: i32 = 3;
    const PR_GET_NO_NEW_PRIVS: i32 = 39;
    let flag = |option| sys::prctl_get(option).map(|v| v.to_string());
    r.set_result("no_new_privs", flag(PR_GET_NO_NEW_PRIVS));
    r.set_result("dumpable", flag(PR_GET_DUMPABLE));
    r.set("pid", std::process::id().to_string());
    r.set("ppid", std::os::unix::process::parent_id().to_string());
    match sys::names() {
        Ok((host, domain)) => {
            r.set("hostname", host);
            r.set("domainname", domain);
        }
        Err(e) => {
            r.set("hostname", error_value(&e));
            r.set("domainname", error_value(&e));
        }
    }
}

/// `/proc/self/limits` names, less their "Max ", to RLIMIT_* suffixes.
const RLIMITS: &str = "cpu time:CPU,file size:FSIZE,data size:DATA,stack size:STACK,\
    core file size:CORE,resident set:RSS,processes:NPROC,open files:NOFILE,\
    locked memory:MEMLOCK,address space:AS,file locks:LOCKS,pending signals:SIGPENDING,\
    msgqueue size:MSGQUEUE,nice priority:NICE,realtime priority:RTPRIO,realtime timeout:RTTIME";

fn limits(r: &mut Report) {
    let text = match fs::read_to_string("/proc/self/limits") {
        Ok(text) => text,
        Err(e) => return r.set("rlimit", error_value(&e)),
    };
    for line in text.lines().skip(1) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let is_value = |w: &&str| *w == "unlimited" || w.bytes().all(|b| b.is_ascii_digit());
        let Some(at) = words.iter().position(is_value) else {
            r.set("rlimit.?", format!("?error:unparsed line {line:?}"));
            continue;
        };
        let name = words[..at].join(" ");
        let mut known = RLIMITS.split(',').filter_map(|pair| pair.split_once(':'));
        let suffix = match known.find(|(n, _)| Some(*n) == name.strip_prefix("Max ")) {
            Some((_, suffix)) => suffix.to_string(),
            None => name.replace(' ', "_"),
        };
        let hard = words.get(at + 1).copied().unwrap_or("?");
        r.set(format!("rlimit.{suffix}"), format!("{}:{hard}", words[at]));
    }
}

fn mounts(r: &mut Report) {
    let text = match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(e) => return r.set("mountinfo", error_value(&e)),
    };
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6);
        match (dash, fields.get(4), fields.get(5)) {
            (Some(dash), Some(dest), Some(options)) if fields.len() > dash + 1 => {
                let fstype = fields[dash + 1];
                let super_options = fields.get(dash + 3).copied().unwrap_or("");
                let key = [b"mount.".as_slice(), &unescape_octal(dest)].concat();
                r.set(key, format!("{fstype} {options} {super_options}"));
            }
            _ => r.set("mountinfo", format!("?error:unparsed line {}", n + 1)),
        }
    }
}

/// Undoes the kernel's `\ooo` escaping of spaces, tabs, newlines and backslashes.
fn unescape_octal(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let digits = tail.get(..3).and_then(|d| std::str::from_utf8(d).ok());
        match digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
            Some(code) if b == b'\\' && digits.is_some_and(|d| !d.starts_with('+')) => {
                out.push(code);
                rest = &tail[3..];
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    out
}

fn tty(r: &mut Report) {
    let mut name = None;
    for (fd, stream) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        let yes = sys::is_tty(fd);
        r.set(format!("tty.{stream}"), if yes { "yes" } else { "no" });
        if yes && name.is_none() {
            name = Some(fd);
        }
    }
    if let Some(fd) = name {
        r.set_result("tty.name", link(format!("/proc/self/fd/{fd}")));
    }
}
