//! Timing profiles and the snapshot and purge policy of the controller group.
//!
//! Owns the openraft [`Config`] the controller runs with, built from a named profile, and the
//! size and time limits of snapshot transfer. Does not own the network or the node: both take
//! a [`RaftOptions`] from here.
//!
//! ```text
//! Profile::Lan / Profile::SlowDisk ─► RaftOptions { heartbeat, election, snapshots, … }
//!                                         │
//!                       openraft::Config ◄┘ (validated)   SnapshotLimits ─► network
//! ```
//!
//! # Failover
//!
//! A follower that hears nothing from the leader waits out its election timeout (a random
//! value between min and max) and then asks for (pre-)votes. The other followers refuse while
//! the lease of the leader they know runs, and the lease equals the maximum election timeout:
//! a first attempt that comes before the lease ran out fails, and the next one comes one
//! more election timeout later. A failover therefore takes between `election_timeout_max`
//! and about twice it, plus a round trip. With `lan` (150 ms heartbeats, 500–800 ms
//! elections) that is 0.8–1.7 s, under the 2 s target (`tests/raft_group.rs` prints it: 1.3–1.55 s
//! on loopback beside the other tests, against 1.5–1.9 s with 500–1,000 ms elections);
//! `slow-disk` (500 ms heartbeats, 1.5–3 s elections) tolerates fsyncs of several hundred
//! milliseconds on SD cards, at the price of 3–6 s failovers.
//!
//! Pre-vote is on in both profiles: a node that was partitioned or restarted asks first
//! whether it could win before raising its term, so it does not depose a healthy leader
//! when it comes back.
//!
//! # Snapshots and purging
//!
//! A snapshot is built every [`RaftOptions::snapshot_every`] applied entries (10,000 by
//! default). Entries already in a snapshot are purged, but [`RaftOptions::keep_after_snapshot`]
//! of them (1,000) stay, so a follower that is only a little behind still catches up from the
//! log instead of receiving the whole state. A follower further behind than
//! `replication_lag_threshold` gets the snapshot.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use openraft::SnapshotPolicy;

/// A named set of timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Controllers on a LAN with ordinary disks: failover in 0.8–1.7 s.
    #[default]
    Lan,
    /// Disks with slow fsyncs (SD cards, eMMC): longer timeouts, failover in 3–6 s.
    SlowDisk,
}

impl FromStr for Profile {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lan" => Ok(Self::Lan),
            "slow-disk" => Ok(Self::SlowDisk),
            other => Err(ConfigError::UnknownProfile {
                name: other.to_string(),
            }),
        }
    }
}

/// Errors of the Raft configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown timing profile {name:?} (expected lan or slow-disk)")]
    UnknownProfile { name: String },
    #[error("invalid raft timings")]
    Invalid(#[source] openraft::ConfigError),
}

/// Limits of one snapshot transfer, enforced by the receiving side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// The largest snapshot a follower accepts, in bytes.
    pub max_size: u64,
    /// How long the whole transfer may take, from the header to the last byte.
    pub timeout: Duration,
    /// The size of each data frame sent (below the wire's frame limit).
    pub chunk_size: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_size: 512 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            chunk_size: 1024 * 1024,
        }
    }
}

/// Everything tunable about the controller's Raft node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftOptions {
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// The shortest election timeout.
    pub election_min: Duration,
    /// The longest election timeout, which is also the leader lease.
    pub election_max: Duration,
    /// Whether a follower runs a pre-vote before raising its term.
    pub pre_vote: bool,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_every: u64,
    /// Entries already in a snapshot kept in the log for followers slightly behind.
    pub keep_after_snapshot: u64,
    /// A follower this far behind gets a snapshot instead of log entries.
    pub replication_lag_threshold: u64,
    /// Snapshot transfer limits.
    pub snapshot: SnapshotLimits,
    /// How long a client write may take, forwarding and leader changes included.
    pub write_timeout: Duration,
    /// How long adding or removing a member may take (a learner catches up first).
    pub membership_timeout: Duration,
}

impl RaftOptions {
    /// The options of a profile.
    pub fn profile(profile: Profile) -> Self {
        let (heartbeat, election_min, election_max) = match profile {
            Profile::Lan => (150, 500, 800),
            Profile::SlowDisk => (500, 1500, 3000),
        };
        Self {
            heartbeat: Duration::from_millis(heartbeat),
            election_min: Duration::from_millis(election_min),
            election_max: Duration::from_millis(election_max),
            pre_vote: true,
            snapshot_every: 10_000,
            keep_after_snapshot: 1_000,
            replication_lag_threshold: 20_000,
            snapshot: SnapshotLimits::default(),
            // Below the client's 10 s call timeout, so a controller that cannot reach the
            // leader answers "unavailable" while the client still has time to ask another.
            write_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(60),
        }
    }

    /// The openraft configuration, validated.
    pub fn openraft_config(&self) -> Result<Arc<Config>, ConfigError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "moor".to_string(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_min),
            election_timeout_max: millis(self.election_max),
            enable_pre_vote: Some(self.pre_vote),
            install_snapshot_timeout: millis(self.snapshot.timeout),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            replication_lag_threshold: self.replication_lag_threshold,
            // Purge as soon as anything is purgeable: entries are small and a purge is one
            // commit either way.
            purge_batch_size: 1,
            ..Default::default()
        };
        Ok(Arc::new(config.validate().map_err(ConfigError::Invalid)?))
    }
}

impl Default for RaftOptions {
    fn default() -> Self {
        Self::profile(Profile::Lan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_profiles_validate_and_keep_failover_in_budget() {
        for (profile, budget) in [
            (Profile::Lan, Duration::from_secs(2)),
            (Profile::SlowDisk, Duration::from_secs(7)),
        ] {
            let options = RaftOptions::profile(profile);
            let config = options.openraft_config().unwrap();
            assert_eq!(config.enable_pre_vote, Some(true));
            assert!(options.heartbeat * 3 <= options.election_min);
            // Worst case: a first (pre-)vote refused under the lease, then one more timeout.
            assert!(options.election_max * 2 + options.heartbeat <= budget);
        }
    }

    #[test]
    fn profiles_parse_by_name() {
        assert_eq!("lan".parse::<Profile>().unwrap(), Profile::Lan);
        assert_eq!("slow-disk".parse::<Profile>().unwrap(), Profile::SlowDisk);
        assert!(matches!(
            "fast".parse::<Profile>(),
            Err(ConfigError::UnknownProfile { .. })
        ));
    }
}
