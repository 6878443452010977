//! The controller group under faults, as real processes on their own network namespaces
//! (see `common/group_util.rs`): the leader killed again and again under a stream of
//! writes, a minority cut off, one-way partitions, the wall clock of the leader stepped a
//! day forward and two back, and every controller restarted. In each, no acknowledged
//! write is lost and the members agree afterwards.
//!
//! Nothing here asserts how long anything took: failover times and the like are printed
//! (`cargo test --test cluster_faults -- --nocapture`), and deadlines only bound failures.

#[path = "common/group_util.rs"]
mod group_util;

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use group_util::{
    DEADLINE, Group, Writer, check_writes, describe_difference, leader_in, seconds, tail,
};
use tests::scratch::Scratch;
use tests::{prereq, wait};

/// How many times the kill test kills the leader.
const ROUNDS: usize = 20;

#[test]
fn killing_the_leader_twenty_times_loses_no_acknowledged_write() {
    let Some(mut group) = Group::form("faults-kill", |_| Vec::new()) else {
        return;
    };
    // One writer per member it asks first, so one write stuck on a dead member (a call
    // timeout) does not hide when the group took writes again.
    let writers = Writers::start(&group, "w");
    let mut failovers = Vec::new();
    for round in 1..=ROUNDS {
        let leader = group.leader();
        let name = group.members[leader].name.clone();
        writers.wait_acked_after(Instant::now(), "writes to go through before the kill");
        let killed = Instant::now();
        group.members[leader].kill();
        let resumed = writers.wait_acked_after(killed, &format!("a write after killing {name}"));
        let next = group.leader();
        failovers.push(resumed - killed);
        eprintln!(
            "round {round}: killed leader {name}; writes acknowledged again after {}, new leader {}",
            seconds(resumed - killed),
            group.members[next].name
        );
        group.start(leader);
        group.wait_back(leader);
    }
    let results = writers.stop();

    let held = group.committed();
    let mut total = group_util::Tally::default();
    let mut codes = std::collections::BTreeMap::new();
    for (prefix, attempts) in &results {
        let tally = check_writes(attempts, prefix, &held);
        total.acked += tally.acked;
        total.unknown += tally.unknown;
        total.unknown_applied += tally.unknown_applied;
        for a in attempts.iter().filter(|a| !a.acked) {
            let first = a.stderr.lines().next().unwrap_or_default().to_string();
            *codes.entry((a.code, first)).or_insert(0) += 1;
        }
    }
    group.wait_converged(&held);
    assert!(total.acked > 0, "no write was ever acknowledged");

    failovers.sort();
    eprintln!(
        "leader kills: {ROUNDS} rounds, {} writes acknowledged (all present), {} failed or timed out \
         ({} of those applied anyway); writes acknowledged again after a kill in {} to {} (median {})",
        total.acked,
        total.unknown,
        total.unknown_applied,
        seconds(failovers[0]),
        seconds(failovers[failovers.len() - 1]),
        seconds(failovers[failovers.len() / 2]),
    );
    for ((code, message), count) in codes {
        eprintln!("  {count} x exit {code:?}: {message}");
    }
}

/// One [`Writer`] per member, each asking that member first (and the others after it):
/// ConfigMaps `<prefix>1-…`, `<prefix>2-…`, `<prefix>3-…`.
struct Writers(Vec<(String, Writer)>);

impl Writers {
    fn start(group: &Group, prefix: &str) -> Writers {
        Writers(
            group
                .rotations()
                .into_iter()
                .enumerate()
                .map(|(i, config)| {
                    let prefix = format!("{prefix}{}", i + 1);
                    let writer = Writer::start(group.client.clone(), vec![config], &prefix);
                    (prefix, writer)
                })
                .collect(),
        )
    }

    fn acked(&self) -> usize {
        self.0
            .iter()
            .map(|(_, w)| w.attempts().iter().filter(|a| a.acked).count())
            .sum()
    }

    /// When the first write that started at or after `since` was acknowledged, by any of
    /// the writers.
    fn wait_acked_after(&self, since: Instant, what: &str) -> Instant {
        wait::wait_for(what, DEADLINE, || {
            self.0
                .iter()
                .flat_map(|(_, w)| w.attempts())
                .filter(|a| a.acked && a.started >= since)
                .map(|a| a.ended)
                .min()
        })
    }

    /// Stops them all; each prefix with its attempts.
    fn stop(self) -> Vec<(String, Vec<group_util::Attempt>)> {
        self.0
            .into_iter()
            .map(|(prefix, w)| (prefix, w.stop()))
            .collect()
    }
}

#[test]
fn a_cut_off_minority_refuses_writes_and_catches_up_after_heal() {
    let Some(group) = Group::form("faults-minority", |_| Vec::new()) else {
        return;
    };
    group.client.write_eventually(&group.all, "before", "0");

    // The leader alone: the other two must elect one of themselves.
    let leader = group.leader();
    minority_refuses_and_catches_up(&group, leader, "a");
    // A follower alone: the leader keeps its majority.
    let leader = group.leader();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    minority_refuses_and_catches_up(&group, follower, "b");
}

/// Cuts member `alone` off from the other two (the client host still reaches all three),
/// then: writes through the majority go on; a write and a linearizable read through
/// `alone` are refused; its own copy lags; after the heal it catches up and the refused
/// write is nowhere.
fn minority_refuses_and_catches_up(group: &Group, alone: usize, prefix: &str) {
    let majority: Vec<usize> = (0..3).filter(|&i| i != alone).collect();
    let lonely = &group.members[alone];
    let was_leader = group.agreed_leader(&[0, 1, 2]) == Some(alone);
    for &o in &majority {
        group.lab.cut(&lonely.host, &group.members[o].host);
    }
    let cut = Instant::now();
    let majority_config = group.config_for(&majority);
    for k in 1..=5 {
        group
            .client
            .write_eventually(&majority_config, &format!("{prefix}-major-{k}"), "1");
    }
    let resumed = cut.elapsed();
    let leader = wait::wait_for("the majority to agree on a leader", DEADLINE, || {
        group.agreed_leader(&majority)
    });
    assert_ne!(leader, alone, "the cut-off member still leads the majority");

    let started = Instant::now();
    let refused = group
        .client
        .write(&lonely.config, &format!("{prefix}-minor"), "1");
    let refused_after = started.elapsed();
    assert!(
        refused.code().is_some_and(|c| c != 0),
        "a write through the cut-off {} was not refused: {refused:?}",
        lonely.name
    );
    // A lease must not let a deposed leader answer for the group.
    let read = group.client.run(&lonely.config, &["get", "cm"], None);
    assert!(
        !read.status.success(),
        "a linearizable read through the cut-off {} succeeded:\n{}",
        lonely.name,
        read.stdout
    );
    let own = group
        .client
        .configmaps(&lonely.config, true)
        .expect("a stale read works on a minority");
    assert!(
        !own.contains_key(&format!("{prefix}-major-1")),
        "the cut-off member holds a write made after the cut"
    );
    let lonely_view = group.client.view(&lonely.config);

    group.lab.heal();
    let committed = group.committed();
    for k in 1..=5 {
        let name = format!("{prefix}-major-{k}");
        assert!(committed.contains_key(&name), "{name} is lost");
    }
    // At most the cut-off member had the refused write in its log (a deposed leader
    // appends it, a follower cannot even forward it); the later term's leader has
    // overwritten that entry, so it is never applied.
    assert!(
        !committed.contains_key(&format!("{prefix}-minor")),
        "the write refused by the minority was applied"
    );
    group.wait_converged(&committed);
    eprintln!(
        "minority {} ({}): majority writes went on {} after the cut (leader {}); the minority \
         refused a write in {} (exit {:?}: {}); it saw the leader as {:?}; caught up after the heal",
        lonely.name,
        if was_leader { "was leader" } else { "follower" },
        seconds(resumed),
        group.members[leader].name,
        seconds(refused_after),
        refused.code(),
        refused.stderr.lines().next().unwrap_or_default(),
        lonely_view.as_deref().and_then(leader_in),
    );
}

#[test]
fn one_way_partitions_do_not_stop_writes_and_all_agree_after_heal() {
    let Some(group) = Group::form("faults-one-way", |_| Vec::new()) else {
        return;
    };
    for (phase, leader_sends) in [("lf", true), ("fl", false)] {
        let leader = group.leader();
        let follower = (0..3).find(|&i| i != leader).expect("a follower");
        let (l, f) = (&group.members[leader], &group.members[follower]);
        let (from, to) = if leader_sends { (l, f) } else { (f, l) };
        group.lab.cut_one_way(&from.host, &to.host);
        let cut = Instant::now();
        // One writer per member it asks first: a client whose first choice is the member
        // that lost the leader waits out its call timeout, and must not hold up the others.
        let writers = Writers::start(&group, phase);
        // Long enough for the cut-off side to time out its leader several times over.
        let went_on = wait::holds_within(DEADLINE, || {
            writers.acked() >= 20 && cut.elapsed() >= Duration::from_secs(4)
        });
        let results = writers.stop();
        let all: Vec<group_util::Attempt> = results
            .iter()
            .flat_map(|(_, a)| a.iter().cloned())
            .collect();
        assert!(
            went_on,
            "writes stalled with {} -> {} cut (leader {}): {} acknowledged of {}; last errors:\n{}\n{}",
            from.name,
            to.name,
            l.name,
            all.iter().filter(|a| a.acked).count(),
            all.len(),
            failures(&all, 5),
            group.logs()
        );
        let views: Vec<String> = group
            .members
            .iter()
            .map(|m| {
                let seen = group.client.view(&m.config);
                format!("{}: {:?}", m.name, seen.as_deref().and_then(leader_in))
            })
            .collect();
        group.lab.heal();

        let held = group.committed();
        let mut lines = Vec::new();
        for (i, (prefix, attempts)) in results.iter().enumerate() {
            let tally = check_writes(attempts, prefix, &held);
            lines.push(format!(
                "  through {} first: {} acknowledged, {} failed ({} applied anyway){}",
                group.members[i].name,
                tally.acked,
                tally.unknown,
                tally.unknown_applied,
                attempts
                    .iter()
                    .rev()
                    .find(|a| !a.acked)
                    .map(|a| format!(
                        "; last error: {}",
                        a.stderr.lines().next().unwrap_or_default()
                    ))
                    .unwrap_or_default()
            ));
        }
        group.wait_converged(&held);
        let after = group.leader();
        eprintln!(
            "one-way cut {} -> {} (leader {}), leaders seen during the cut: {}; leader after the heal: {}\n{}",
            from.name,
            to.name,
            l.name,
            views.join(", "),
            group.members[after].name,
            lines.join("\n")
        );
    }
}

/// The first line of what the last `n` failed attempts printed.
fn failures(attempts: &[group_util::Attempt], n: usize) -> String {
    let failed: Vec<String> = attempts
        .iter()
        .filter(|a| !a.acked)
        .map(|a| {
            format!(
                "{} exit {:?}: {}",
                a.name,
                a.code,
                a.stderr.lines().next().unwrap_or_default()
            )
        })
        .collect();
    failed[failed.len().saturating_sub(n)..].join("\n")
}

/// Debian's libfaketime, the thread-safe build (the controller is multi-threaded).
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[test]
fn a_wall_clock_step_on_the_leader_loses_nothing() {
    let lib = Path::new(FAKETIME_LIB);
    if !prereq::require("libfaketime (apt-get install faketime)", lib.is_file()) {
        return;
    }
    // Every member runs under libfaketime at offset +0; the test rewrites one member's
    // offset file to step its wall clock (as an NTP step would). Monotonic time is left
    // alone, so only what reads the wall clock (TLS validity, timestamps) sees the step.
    let clocks = Scratch::new("faults-clock-offsets");
    let offset_file = |name: &str| clocks.dir().join(format!("{name}.faketime"));
    for name in ["ctl-1", "ctl-2", "ctl-3"] {
        std::fs::write(offset_file(name), "+0\n").expect("write a clock offset");
    }
    let Some(mut group) = Group::form("faults-clock", |name| {
        vec![
            ("LD_PRELOAD".into(), lib.into()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                offset_file(name).into_os_string(),
            ),
            // Not FAKETIME_NO_CACHE: reading the file at every clock call costs the
            // controllers most of this machine's CPU.
            ("FAKETIME_CACHE_DURATION".into(), OsString::from("1")),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), OsString::from("1")),
        ]
    }) else {
        return;
    };
    let stepped = group.leader();
    let name = group.members[stepped].name.clone();
    let writers = Writers::start(&group, "t");
    writers.wait_acked_after(Instant::now(), "writes before the step");

    for (offset, days) in [("+1d", 1i64), ("-2d", -2)] {
        std::fs::write(offset_file(&name), format!("{offset}\n")).expect("step the clock");
        let stepped_at = Instant::now();
        writers.wait_acked_after(stepped_at, &format!("writes after stepping {offset}"));

        // Fresh connections to and from the stepped member: restart another member, which
        // has to handshake with it again (both ways) to rejoin.
        let other = (0..3).find(|&i| i != stepped).expect("another member");
        group.members[other].kill();
        group.start(other);
        group.wait_back(other);
        writers.wait_acked_after(
            Instant::now(),
            &format!("writes after restarting {}", group.members[other].name),
        );

        // The stepped member stamps creationTimestamp with its wall clock: proof that the
        // step reached the process, and that clients still get through to it. libfaketime
        // reads the offset file again only every second, so a stamp may predate the step.
        let config = group.members[stepped].config.clone();
        let mut skew = 0;
        let mut attempt = 0;
        let mut last = None;
        let stamped = wait::holds_within(DEADLINE, || {
            attempt += 1;
            let stamp = format!("stamp{days}-{attempt}");
            let ran = group.client.write(&config, &stamp, "0");
            let ok = ran.status.success();
            last = Some(ran);
            ok && {
                skew = creation_skew(&group, &stamp);
                (skew - days * 86400).abs() < 3600
            }
        });
        assert!(
            stamped,
            "{name} after stepping its clock {offset}: no write through it was stamped with \
             the stepped time (last skew {skew} s); last write: {last:?}"
        );
        let leader = group.leader();
        eprintln!(
            "clock of {name} stepped {offset}: it stamped a write {skew} s off after {}; {} \
             rejoined; leader {}",
            seconds(stepped_at.elapsed()),
            group.members[other].name,
            group.members[leader].name
        );
    }
    std::fs::write(offset_file(&name), "+0\n").expect("step the clock back");
    writers.wait_acked_after(Instant::now(), "writes after the clock is right again");
    let results = writers.stop();

    let held = group.committed();
    for (prefix, attempts) in &results {
        let tally = check_writes(attempts, prefix, &held);
        eprintln!(
            "clock steps, writer {prefix}: {} acknowledged (all present), {} failed \
             ({} applied anyway)",
            tally.acked, tally.unknown, tally.unknown_applied
        );
    }
    group.wait_converged(&held);
}

/// How far (seconds, signed) the creationTimestamp of ConfigMap `name` is from now.
fn creation_skew(group: &Group, name: &str) -> i64 {
    let json = group
        .client
        .ok(&group.all, &["get", "cm", name, "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let stamp = value["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("no creationTimestamp: {json}"));
    let at = humantime::parse_rfc3339(stamp).expect("an RFC 3339 timestamp");
    let now = SystemTime::now();
    match at.duration_since(now) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

#[test]
fn restarting_every_controller_keeps_all_state() {
    let Some(mut group) = Group::form("faults-restart", |_| Vec::new()) else {
        return;
    };
    for k in 1..=20 {
        group
            .client
            .write_eventually(&group.all, &format!("r-{k:02}"), &k.to_string());
    }
    let before = group.committed();
    assert_eq!(before.len(), 20, "{before:?}");
    assert!(
        before
            .values()
            .all(|s| !s.uid.is_empty() && !s.resource_version.is_empty()),
        "objects without uid or resourceVersion: {before:?}"
    );
    group.wait_converged(&before);

    for i in 0..3 {
        let status = group.members[i].stop();
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            group.members[i].name,
            tail(&group.members[i].log(), 30)
        );
    }
    for i in 0..3 {
        group.start(i);
    }
    let started = Instant::now();
    let leader = group.leader();
    let after = group.committed();
    assert!(
        after == before,
        "the state changed across the restart:\n{}",
        describe_difference(&before, Some(&after))
    );
    group.wait_converged(&before);
    group.client.write_eventually(&group.all, "r-new", "21");
    let last = group.committed();
    assert_eq!(last.len(), 21, "{last:?}");
    group.wait_converged(&last);
    eprintln!(
        "full restart: the group re-formed under {} in {}; 20 objects kept their uid and \
         resourceVersion; new writes work",
        group.members[leader].name,
        seconds(started.elapsed())
    );
}
