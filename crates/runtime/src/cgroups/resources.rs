//! Which controllers a container's resources need, and whether the values make sense.
//!
//! Owns [`Controllers`] and [`check`], shared by the v1 and v2 writers. Checking happens
//! before any directory is made, so a bad value never leaves a half-made group behind.
//! It does not write anything ([`super::v1`], [`super::v2`]).

use crate::config::{CpuResources, Resources};

use super::error::{CgroupError, Result};

/// The lowest and highest `cpu.shares` the kernel honours.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;

/// The resource controllers a container's limits need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controllers {
    pub cpu: bool,
    pub cpuset: bool,
    pub memory: bool,
    pub pids: bool,
}

impl Controllers {
    /// The controllers `resources` ask for. Device rules need none: v1 hosts always get a
    /// devices group, the others a BPF filter.
    pub fn needed_by(resources: &Resources) -> Self {
        let cpu = &resources.cpu;
        let memory = &resources.memory;
        Controllers {
            cpu: cpu.shares.is_some() || cpu.quota.is_some() || cpu.period.is_some(),
            cpuset: cpus(cpu).is_some() || mems(cpu).is_some(),
            memory: memory.limit.is_some() || memory.reservation.is_some() || memory.swap.is_some(),
            pids: resources.pids_limit.is_some(),
        }
    }

    /// The names of the controllers asked for, in the order groups are made.
    pub fn names(self) -> Vec<&'static str> {
        [
            ("cpu", self.cpu),
            ("cpuset", self.cpuset),
            ("memory", self.memory),
            ("pids", self.pids),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

/// The cpuset CPU list, an empty string counting as not given.
pub fn cpus(cpu: &CpuResources) -> Option<&str> {
    cpu.cpus.as_deref().filter(|s| !s.is_empty())
}

/// The cpuset memory-node list, an empty string counting as not given.
pub fn mems(cpu: &CpuResources) -> Option<&str> {
    cpu.mems.as_deref().filter(|s| !s.is_empty())
}

fn invalid(field: &'static str, value: impl ToString, reason: &'static str) -> CgroupError {
    CgroupError::InvalidResource {
        field,
        value: value.to_string(),
        reason,
    }
}

/// Refuses values no kernel would take, with the field named.
pub fn check(resources: &Resources) -> Result<()> {
    let cpu = &resources.cpu;
    if let Some(shares) = cpu.shares
        && !(MIN_SHARES..=MAX_SHARES).contains(&shares)
    {
        return Err(invalid(
            "cpu.shares",
            shares,
            "must be between 2 and 262144",
        ));
    }
    if let Some(quota) = cpu.quota
        && quota != -1
        && quota <= 0
    {
        return Err(invalid(
            "cpu.quota",
            quota,
            "must be positive, or -1 for no limit",
        ));
    }
    if cpu.period == Some(0) {
        return Err(invalid("cpu.period", 0, "must be positive"));
    }
    if let Some(period) = cpu.period
        && i64::try_from(period).is_err()
    {
        return Err(invalid("cpu.period", period, "is too large"));
    }
    for (field, list) in [("cpu.cpus", cpus(cpu)), ("cpu.mems", mems(cpu))] {
        if let Some(list) = list
            && !list
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
        {
            return Err(invalid(field, list, "must be a list such as 0-2,4"));
        }
    }
    let memory = &resources.memory;
    for (field, value) in [
        ("memory.limit", memory.limit),
        ("memory.reservation", memory.reservation),
        ("memory.swap", memory.swap),
    ] {
        if let Some(v) = value
            && v < -1
        {
            return Err(invalid(
                field,
                v,
                "must not be negative, except -1 for no limit",
            ));
        }
    }
    if memory.limit == Some(0) {
        return Err(invalid(
            "memory.limit",
            0,
            "must be positive, or -1 for no limit",
        ));
    }
    if let Some(swap) = memory.swap
        && swap >= 0
    {
        match memory.limit {
            None | Some(-1) => {
                return Err(invalid(
                    "memory.swap",
                    swap,
                    "a memory+swap limit needs a memory limit",
                ));
            }
            Some(limit) if swap < limit => {
                return Err(invalid(
                    "memory.swap",
                    swap,
                    "memory+swap must be at least the memory limit",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(pids) = resources.pids_limit
        && pids < -1
    {
        return Err(invalid(
            "pids.limit",
            pids,
            "must not be negative, except -1 for no limit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_asked_needs_no_controller() {
        assert_eq!(
            Controllers::needed_by(&Resources::default()),
            Controllers::default()
        );
    }

    #[test]
    fn each_field_asks_for_its_controller() {
        let mut r = Resources::default();
        r.cpu.period = Some(100_000);
        r.cpu.mems = Some("0".into());
        r.pids_limit = Some(-1);
        let needed = Controllers::needed_by(&r);
        assert_eq!(needed.names(), vec!["cpu", "cpuset", "pids"]);
        r.memory.reservation = Some(1);
        assert!(Controllers::needed_by(&r).memory);
    }

    #[test]
    fn empty_cpuset_list_counts_as_absent() {
        let mut r = Resources::default();
        r.cpu.cpus = Some(String::new());
        assert!(!Controllers::needed_by(&r).cpuset);
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        type Case = (fn(&mut Resources), &'static str);
        let cases: Vec<Case> = vec![
            (|r| r.cpu.shares = Some(1), "cpu.shares"),
            (|r| r.cpu.shares = Some(300_000), "cpu.shares"),
            (|r| r.cpu.quota = Some(0), "cpu.quota"),
            (|r| r.cpu.quota = Some(-2), "cpu.quota"),
            (|r| r.cpu.period = Some(0), "cpu.period"),
            (|r| r.cpu.cpus = Some("0-1\n".into()), "cpu.cpus"),
            (|r| r.cpu.mems = Some("all".into()), "cpu.mems"),
            (|r| r.memory.limit = Some(-5), "memory.limit"),
            (|r| r.memory.limit = Some(0), "memory.limit"),
            (|r| r.memory.reservation = Some(-2), "memory.reservation"),
            (|r| r.memory.swap = Some(1 << 20), "memory.swap"),
            (
                |r| {
                    r.memory.limit = Some(2 << 20);
                    r.memory.swap = Some(1 << 20);
                },
                "memory.swap",
            ),
            (|r| r.pids_limit = Some(-3), "pids.limit"),
        ];
        for (set, field) in cases {
            let mut r = Resources::default();
            set(&mut r);
            match check(&r) {
                Err(CgroupError::InvalidResource { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn unlimited_values_are_accepted() {
        let mut r = Resources::default();
        r.cpu.quota = Some(-1);
        r.memory.limit = Some(-1);
        r.memory.swap = Some(-1);
        r.memory.reservation = Some(-1);
        r.pids_limit = Some(-1);
        check(&r).expect("unlimited values are valid");
    }
}
