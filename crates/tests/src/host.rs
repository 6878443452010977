//! Looking at the host from a test, to check what the runtime left there: a group's
//! directories in every cgroup hierarchy, processes and their PID namespaces, and the
//! kernel's freezer state. Read-only: nothing here changes the host.

use std::path::{Path, PathBuf};

/// The mount points of every cgroup hierarchy (v1 and cgroup2), from mountinfo.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if !matches!(fields.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            continue;
        }
        if let Some(mountpoint) = fields.get(4) {
            found.push(PathBuf::from(mountpoint));
        }
    }
    found
}

/// The directories of the group `group` (`/moor-test/<prefix>/c1`) that exist, in any
/// hierarchy.
pub fn cgroup_dirs(group: &str) -> Vec<PathBuf> {
    let relative = group.trim_start_matches('/');
    if relative.is_empty() {
        return Vec::new(); // never a hierarchy's root
    }
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(relative))
        .filter(|d| d.is_dir())
        .collect()
}

/// Whether any hierarchy's copy of `group` says the kernel has frozen it: `frozen 1` in
/// a cgroup2 group's `cgroup.events`, or `FROZEN` in a v1 `freezer.state`. `None` when
/// no copy of the group has a freezer.
pub fn cgroup_frozen(group: &str) -> Option<bool> {
    let mut answer = None;
    for dir in cgroup_dirs(group) {
        if let Ok(events) = std::fs::read_to_string(dir.join("cgroup.events")) {
            let frozen = events.lines().any(|l| l.trim() == "frozen 1");
            answer = Some(answer.unwrap_or(false) || frozen);
        }
        if let Ok(state) = std::fs::read_to_string(dir.join("freezer.state")) {
            let frozen = state.trim() == "FROZEN";
            answer = Some(answer.unwrap_or(false) || frozen);
        }
    }
    answer
}

/// The processes in `group`, from the first hierarchy that lists any (the cgroup2 group
/// on a hybrid host, the freezer on v1).
pub fn cgroup_pids(group: &str) -> Vec<i32> {
    for dir in cgroup_dirs(group) {
        let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
            continue;
        };
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if !pids.is_empty() {
            return pids;
        }
    }
    Vec::new()
}

/// A field of `/proc/PID/status` (`State`, `NSpid`), trimmed.
pub fn proc_status(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let value = l.strip_prefix(field)?.strip_prefix(':')?;
        Some(value.trim().to_string())
    })
}

/// A process's PID in each PID namespace it is in, the host's first, its own last
/// (`NSpid`).
pub fn ns_pids(pid: i32) -> Option<Vec<i32>> {
    let line = proc_status(pid, "NSpid")?;
    line.split_whitespace().map(|p| p.parse().ok()).collect()
}

/// Whether `pid` is running (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    proc_status(pid, "State").is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
}

/// Live processes (other than this one) whose command line contains `text`: a runtime
/// process, or a container init that is still the runtime's code, for a root or an id.
pub fn processes_mentioning(text: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = text.as_bytes();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.windows(needle.len().max(1)).any(|w| w == needle))
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// Every path under `dir` (relative, sorted), not descending into `skip`s.
pub fn tree(dir: &Path, skip: &[&Path]) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, skip: &[&Path], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if skip.iter().any(|s| *s == path) {
                continue;
            }
            out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &path, skip, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, skip, &mut out);
    out.sort();
    out
}
