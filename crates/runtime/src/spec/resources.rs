//! `linux.resources` (oci-spec) to [`Resources`]: device rules, memory, cpu, pids.
//!
//! Checks ranges and formats only; whether this host's cgroups can apply a limit (a v1
//! host without the cpuset controller, say) is the cgroup module's to find out. As in
//! runc, `0` means "not set" for memory limits, cpu shares, period and the pids limit.
//! The fields moor does not implement are refused before this runs (see `unsupported`).

use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};

use super::error::{FieldError, Problem, index, join, quoted};
use crate::config::{
    CpuResources, DeviceAccess, DeviceRule, DeviceRuleKind, MemoryResources, Resources,
};

const BASE: &str = "linux.resources";

/// Converts `linux.resources`; absent means no limits and no device rules.
pub(crate) fn convert(resources: Option<&LinuxResources>) -> Result<Resources, FieldError> {
    let Some(r) = resources else {
        return Ok(Resources::default());
    };
    let pids_limit = match r.pids() {
        None => None,
        Some(pids) => match pids.limit() {
            0 | -1 => None,
            n if n > 0 => Some(n),
            n => {
                return Err(FieldError::invalid(
                    format!("{BASE}.pids.limit"),
                    "a positive number, or 0 or -1 for no limit",
                    n,
                ));
            }
        },
    };
    Ok(Resources {
        cpu: match r.cpu() {
            Some(cpu) => cpu_resources(cpu)?,
            None => CpuResources::default(),
        },
        memory: match r.memory() {
            Some(memory) => memory_resources(memory)?,
            None => MemoryResources::default(),
        },
        pids_limit,
        devices: r
            .devices()
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, rule)| device_rule(rule, &index(&format!("{BASE}.devices"), i)))
            .collect::<Result<_, _>>()?,
    })
}

fn device_rule(rule: &LinuxDeviceCgroup, at: &str) -> Result<DeviceRule, FieldError> {
    let kind = match rule.typ() {
        None | Some(LinuxDeviceType::A) => DeviceRuleKind::All,
        Some(LinuxDeviceType::C) => DeviceRuleKind::Char,
        Some(LinuxDeviceType::B) => DeviceRuleKind::Block,
        Some(other) => {
            return Err(FieldError::invalid(
                join(at, "type"),
                "a device rule type: a, c or b",
                quoted(other.as_str()),
            ));
        }
    };
    let access = match rule.access().as_deref() {
        None => DeviceAccess::ALL,
        Some(letters) => DeviceAccess::parse(letters).ok_or_else(|| {
            FieldError::invalid(
                join(at, "access"),
                "some of r, w and m, each at most once",
                quoted(letters),
            )
        })?,
    };
    Ok(DeviceRule {
        allow: rule.allow(),
        kind,
        major: device_number(rule.major(), &join(at, "major"))?,
        minor: device_number(rule.minor(), &join(at, "minor"))?,
        access,
    })
}

/// `None` or `-1` is a wildcard; anything else must be a device number.
fn device_number(number: Option<i64>, field: &str) -> Result<Option<u32>, FieldError> {
    match number {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            FieldError::invalid(
                field,
                "a device number from 0 to 4294967295, or -1 for any",
                n,
            )
        }),
    }
}

fn memory_resources(memory: &LinuxMemory) -> Result<MemoryResources, FieldError> {
    let base = format!("{BASE}.memory");
    let bytes = |value: Option<i64>, name: &str| -> Result<Option<i64>, FieldError> {
        match value {
            None | Some(0) => Ok(None),
            Some(n) if n >= -1 => Ok(Some(n)),
            Some(n) => Err(FieldError::invalid(
                join(&base, name),
                "a number of bytes, or -1 for no limit",
                n,
            )),
        }
    };
    let limit = bytes(memory.limit(), "limit")?;
    let reservation = bytes(memory.reservation(), "reservation")?;
    let swap = bytes(memory.swap(), "swap")?;
    if let (Some(swap), Some(limit)) = (swap, limit)
        && swap != -1
        && limit != -1
        && swap < limit
    {
        return Err(FieldError::new(
            join(&base, "swap"),
            Problem::SwapBelowLimit { swap, limit },
        ));
    }
    Ok(MemoryResources {
        limit,
        reservation,
        swap,
    })
}

fn cpu_resources(cpu: &LinuxCpu) -> Result<CpuResources, FieldError> {
    let base = format!("{BASE}.cpu");
    let shares = match cpu.shares() {
        None | Some(0) => None,
        Some(n @ 2..=262_144) => Some(n),
        Some(n) => {
            return Err(FieldError::invalid(
                join(&base, "shares"),
                "a weight from 2 to 262144",
                n,
            ));
        }
    };
    let quota = match cpu.quota() {
        None => None,
        Some(n) if n == -1 || n > 0 => Some(n),
        Some(n) => {
            return Err(FieldError::invalid(
                join(&base, "quota"),
                "microseconds per period above 0, or -1 for no limit",
                n,
            ));
        }
    };
    let period = match cpu.period() {
        None | Some(0) => None,
        Some(n @ 1_000..=1_000_000) => Some(n),
        Some(n) => {
            return Err(FieldError::invalid(
                join(&base, "period"),
                "a period from 1000 to 1000000 microseconds",
                n,
            ));
        }
    };
    Ok(CpuResources {
        shares,
        quota,
        period,
        cpus: cpu_list(cpu.cpus().as_deref(), &join(&base, "cpus"))?,
        mems: cpu_list(cpu.mems().as_deref(), &join(&base, "mems"))?,
    })
}

/// A cpuset list such as `0-3,5`; empty means unset.
fn cpu_list(list: Option<&str>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if !is_cpu_list(list) {
        return Err(FieldError::invalid(
            field,
            "a list of numbers and ranges such as 0-3,5",
            quoted(list),
        ));
    }
    Ok(Some(list.to_string()))
}

fn is_cpu_list(list: &str) -> bool {
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    list.split(',').all(|item| match item.split_once('-') {
        Some((low, high)) => matches!((number(low), number(high)), (Some(l), Some(h)) if l <= h),
        None => number(item).is_some(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_accept_numbers_and_ranges_only() {
        for good in ["0", "0-3", "0-3,5", "1,2,3", "7-7"] {
            assert!(is_cpu_list(good), "{good}");
        }
        for bad in [
            "",
            ",",
            "0,",
            "3-1",
            "a",
            "-1",
            "0-",
            "0 - 3",
            "1-2-3",
            "99999999999",
        ] {
            assert!(!is_cpu_list(bad), "{bad}");
        }
    }
}
