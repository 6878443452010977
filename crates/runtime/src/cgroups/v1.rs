//! Resource limits as cgroup v1 files, one controller at a time.
//!
//! Owns what goes into `cpu.*`, `cpuset.*`, `memory.*`, `pids.max` and
//! `devices.{allow,deny}` of a v1 group, and the order of the writes. The decisions are
//! pure functions ([`memory_writes`], [`device_writes`]) so they are tested without a
//! kernel; [`apply`] is the thin part that reads the little it needs and writes. It does
//! not make or remove directories (except copying cpuset values into new levels, see
//! [`prepare_cpuset_level`]).

use std::path::Path;

use crate::config::{CpuResources, DeviceRule, DeviceRuleKind, MemoryResources, Resources};

use super::error::{CgroupError, Result};
use super::files::{self, FileWrite};
use super::resources::{cpus, mems};

const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
const MEMORY_LIMIT: &str = "memory.limit_in_bytes";

/// Writes the limits `resources` sets for `controller` into the v1 group `dir`.
/// `freezer` has nothing to write.
pub fn apply(controller: &str, dir: &Path, resources: &Resources) -> Result<()> {
    match controller {
        "cpu" => apply_cpu(dir, &resources.cpu),
        "cpuset" => {
            if let Some(list) = cpus(&resources.cpu) {
                files::write(dir, "cpuset.cpus", list)?;
            }
            if let Some(list) = mems(&resources.cpu) {
                files::write(dir, "cpuset.mems", list)?;
            }
            Ok(())
        }
        "memory" => {
            let m = &resources.memory;
            let current = if m.limit.is_some() && m.swap.is_some() {
                let text = files::read(dir, MEMORY_LIMIT)?;
                text.trim()
                    .parse()
                    .map_err(|_| CgroupError::UnexpectedContent {
                        path: dir.join(MEMORY_LIMIT),
                        content: text.clone(),
                    })?
            } else {
                u64::MAX
            };
            let writes = memory_writes(dir, m, current, files::exists(dir, MEMSW_LIMIT))?;
            files::write_all(dir, &writes)
        }
        "pids" => match resources.pids_limit {
            Some(limit) => files::write(dir, "pids.max", &pids_max(limit)),
            None => Ok(()),
        },
        "devices" => {
            let writes =
                device_writes(&resources.devices).map_err(|reason| CgroupError::DeviceRule {
                    path: dir.to_path_buf(),
                    reason,
                })?;
            files::write_all(dir, &writes)
        }
        _ => Ok(()),
    }
}

/// A new v1 cpuset group starts with empty `cpuset.cpus` and `cpuset.mems`, and a
/// process cannot join a group with no CPUs; copy the parent's values into every level
/// that is still empty, top down.
pub fn prepare_cpuset_level(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if files::read(dir, file)?.trim().is_empty() {
            let value = files::read(parent, file)?;
            files::write(dir, file, value.trim())?;
        }
    }
    Ok(())
}

/// Period first, so a quota is always checked against the period it belongs to; if the
/// kernel refuses the new period with the old quota (the ratio would exceed the
/// parent's), write it again after the quota, as runc does.
fn apply_cpu(dir: &Path, cpu: &CpuResources) -> Result<()> {
    if let Some(shares) = cpu.shares {
        files::write(dir, "cpu.shares", &shares.to_string())?;
    }
    let mut period_pending = None;
    if let Some(period) = cpu.period {
        let value = period.to_string();
        match files::write(dir, "cpu.cfs_period_us", &value) {
            Ok(()) => {}
            Err(CgroupError::Write { ref source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && cpu.quota.is_some() =>
            {
                period_pending = Some(value);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(quota) = cpu.quota {
        files::write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        if let Some(value) = period_pending {
            files::write(dir, "cpu.cfs_period_us", &value)?;
        }
    }
    Ok(())
}

/// `pids.max`: `max` for -1.
pub fn pids_max(limit: i64) -> String {
    if limit < 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

/// The memory writes, in an order where `memory.limit_in_bytes` never exceeds
/// `memory.memsw.limit_in_bytes` (the kernel refuses either write that would):
/// memory+swap first when it grows past the current limit, last otherwise.
/// `current_limit` is the group's limit now; `memsw_present` whether swap accounting is
/// on. A swap limit without swap accounting is an error, except -1 (nothing to limit).
pub fn memory_writes(
    dir: &Path,
    m: &MemoryResources,
    current_limit: u64,
    memsw_present: bool,
) -> Result<Vec<FileWrite>> {
    let mut swap = m.swap;
    if swap.is_some_and(|s| s >= 0) && !memsw_present {
        return Err(CgroupError::SwapUnsupported {
            path: dir.join(MEMSW_LIMIT),
        });
    }
    if !memsw_present {
        swap = None;
    } else if m.limit == Some(-1) && swap.is_none() {
        // An unlimited memory limit under a lower memory+swap limit would be refused.
        swap = Some(-1);
    }
    let limit = m.limit.map(|v| FileWrite::new(MEMORY_LIMIT, v.to_string()));
    let memsw = swap.map(|v| FileWrite::new(MEMSW_LIMIT, v.to_string()));
    let swap_first = match swap {
        Some(-1) => true,
        Some(s) => u64::try_from(s).is_ok_and(|s| current_limit < s),
        None => false,
    };
    let mut writes = Vec::new();
    if swap_first {
        writes.extend(memsw);
        writes.extend(limit);
    } else {
        writes.extend(limit);
        writes.extend(memsw);
    }
    if let Some(reservation) = m.reservation {
        writes.push(FileWrite::new(
            "memory.soft_limit_in_bytes",
            reservation.to_string(),
        ));
    }
    Ok(writes)
}

/// A v1 device exception as the kernel keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    kind: char,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

impl Exception {
    fn same_device(&self, other: &Exception) -> bool {
        self.kind == other.kind && self.major == other.major && self.minor == other.minor
    }

    /// True when every device `other` names is one this names too.
    fn covers(&self, other: &Exception) -> bool {
        self.kind == other.kind
            && (self.major.is_none() || self.major == other.major)
            && (self.minor.is_none() || self.minor == other.minor)
    }

    /// `c 1:3 rwm`, with `*` for an absent number.
    fn text(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let mut letters = String::new();
        for (bit, letter) in [(1, 'r'), (2, 'w'), (4, 'm')] {
            if self.access & bit != 0 {
                letters.push(letter);
            }
        }
        format!(
            "{} {}:{} {letters}",
            self.kind,
            num(self.major),
            num(self.minor)
        )
    }

    fn overlaps(&self, other: &Exception) -> bool {
        let num = |a: Option<u32>, b: Option<u32>| a.is_none() || b.is_none() || a == b;
        self.kind == other.kind
            && num(self.major, other.major)
            && num(self.minor, other.minor)
            && self.access & other.access != 0
    }
}

/// The writes that give a v1 devices group `rules`: deny everything, then each rule in
/// order. A rule for type `a` with numbers or partial access is written as a `c` and a
/// `b` rule (the kernel reads any `a` line as "all devices, all access").
///
/// v1 keeps a default and a list of exceptions, and a rule that agrees with the default
/// only removes an exception with exactly the same type and numbers. So a wide rule that
/// takes back narrower ones (`deny c *:* w` after `allow c 1:3 rw`) is followed by one
/// write per narrower exception, and a narrow rule that would have to carve a hole in a
/// wider exception (`deny c 1:5` after `allow c *:*`) cannot be expressed: it is refused
/// rather than silently ignored.
pub fn device_writes(rules: &[DeviceRule]) -> std::result::Result<Vec<FileWrite>, &'static str> {
    let mut writes = vec![FileWrite::new("devices.deny", "a")];
    let mut default_allow = false;
    let mut exceptions: Vec<Exception> = Vec::new();
    for rule in rules {
        let access = rule.access;
        let bits =
            u8::from(access.read) | u8::from(access.write) << 1 | u8::from(access.mknod) << 2;
        if bits == 0 {
            continue;
        }
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let everything = rule.kind == DeviceRuleKind::All
            && rule.major.is_none()
            && rule.minor.is_none()
            && bits == 0b111;
        if everything {
            default_allow = rule.allow;
            exceptions.clear();
            writes.push(FileWrite::new(file, "a"));
            continue;
        }
        let kinds: &[char] = match rule.kind {
            DeviceRuleKind::All => &['c', 'b'],
            DeviceRuleKind::Char => &['c'],
            DeviceRuleKind::Block => &['b'],
        };
        for &kind in kinds {
            let ex = Exception {
                kind,
                major: rule.major,
                minor: rule.minor,
                access: bits,
            };
            if rule.allow != default_allow {
                match exceptions.iter_mut().find(|e| e.same_device(&ex)) {
                    Some(e) => e.access |= bits,
                    None => exceptions.push(ex),
                }
            } else {
                // Agreeing with the default only removes exceptions with the same key:
                // remove the narrower ones one by one, and refuse when a wider one
                // would still let part of this rule's devices through.
                if exceptions.iter().any(|e| e.overlaps(&ex) && !ex.covers(e)) {
                    return Err(
                        "v1 devices cannot take back part of an earlier, wider rule; \
                         list the narrower rule first or use the same numbers",
                    );
                }
                for e in exceptions.iter_mut().filter(|e| e.overlaps(&ex)) {
                    if !e.same_device(&ex) {
                        let narrower = Exception {
                            access: e.access & bits,
                            ..*e
                        };
                        writes.push(FileWrite::new(file, narrower.text()));
                    }
                    e.access &= !bits;
                }
                exceptions.retain(|e| e.access != 0);
            }
            writes.push(FileWrite::new(file, ex.text()));
        }
    }
    Ok(writes)
}

#[cfg(test)]
mod tests;
