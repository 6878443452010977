//! Clock rules for boxes without a real-time clock.
//!
//! Owns: the rule "now is the latest of the system clock, the build time and the last
//! time this box saw", and a tiny store for that last-seen time. Does not own: when the
//! caller records it (a daemon stores it now and then, e.g. hourly, so the SD card is
//! not worn).
//!
//! ```text
//! system clock ─┐
//! build time   ─┼─► max ─► effective now ─► certificate checks, notBefore/notAfter
//! last seen    ─┘                 └──────► store_last_seen (atomic file)
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fsutil::write_atomic;

/// Errors of the last-seen store.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The file could not be read.
    #[error("reading last-seen time {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// The file could not be written.
    #[error("writing last-seen time {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// The file does not hold a decimal count of seconds since the Unix epoch.
    #[error("last-seen time {path} is not a number of seconds: {content:?}")]
    Malformed { path: PathBuf, content: String },
}

/// The latest of the system clock, the build time and the last time seen.
///
/// A box that boots with its clock at 1970 must not think every certificate is "not yet
/// valid", nor accept one that had already expired the last time it was up.
pub fn effective_now(
    system_now: SystemTime,
    build_time: SystemTime,
    last_seen: Option<SystemTime>,
) -> SystemTime {
    let mut now = system_now.max(build_time);
    if let Some(seen) = last_seen {
        now = now.max(seen);
    }
    now
}

/// The clock TLS uses to check certificate validity, following [`effective_now`].
///
/// Made once at start-up from the build time and the stored last-seen time. If the
/// system clock is behind that floor (a box without a real-time clock, booted at 1970),
/// the gap is remembered and added to the system clock from then on, so time still moves
/// forward and certificates still expire.
#[derive(Debug, Clone, Copy)]
pub struct TlsClock {
    floor: SystemTime,
    ahead: Duration,
}

impl TlsClock {
    /// A clock that is never earlier than `build_time` or `last_seen`.
    pub fn new(build_time: SystemTime, last_seen: Option<SystemTime>) -> Self {
        let system = SystemTime::now();
        let floor = effective_now(system, build_time, last_seen);
        let ahead = floor.duration_since(system).unwrap_or(Duration::ZERO);
        TlsClock { floor, ahead }
    }

    /// The system clock alone (for boxes with a real-time clock, and tests).
    pub fn system() -> Self {
        TlsClock {
            floor: UNIX_EPOCH,
            ahead: Duration::ZERO,
        }
    }

    /// Now, by this clock.
    pub fn now(&self) -> SystemTime {
        (SystemTime::now() + self.ahead).max(self.floor)
    }
}

impl Default for TlsClock {
    fn default() -> Self {
        TlsClock::system()
    }
}

impl rustls::time_provider::TimeProvider for TlsClock {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        let since = self.now().duration_since(UNIX_EPOCH).ok()?;
        Some(rustls::pki_types::UnixTime::since_unix_epoch(since))
    }
}

/// When this binary was built (SOURCE_DATE_EPOCH, or the time of the first build).
pub fn build_time() -> SystemTime {
    let secs = env!("MOOR_BUILD_UNIX").parse::<u64>().unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl TlsClock {
    /// The clock of a daemon starting now: never earlier than the build time, the time
    /// stored at `last_seen` by an earlier start, or this start. The new "now" is stored
    /// there (once per start: an idle daemon writes nothing). A missing or broken file
    /// only loses that floor; it is said in the log.
    pub fn at_start(last_seen: &Path) -> TlsClock {
        let seen = load_last_seen(last_seen).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the stored last-seen time");
            None
        });
        let clock = TlsClock::new(build_time(), seen);
        if let Err(e) = store_last_seen(last_seen, clock.now()) {
            tracing::warn!(error = %e, "storing the last-seen time");
        }
        clock
    }
}

/// Reads the last-seen time stored at `path`; `None` when the file does not exist.
pub fn load_last_seen(path: &Path) -> Result<Option<SystemTime>, ClockError> {
    let content = match std::fs::read_to_string(path) {
        Ok(content) => content,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ClockError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let secs: u64 = content.trim().parse().map_err(|_| ClockError::Malformed {
        path: path.to_owned(),
        content: content.chars().take(64).collect(),
    })?;
    Ok(UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
}

/// Stores `seen` at `path` atomically (whole seconds since the Unix epoch, as text).
pub fn store_last_seen(path: &Path, seen: SystemTime) -> Result<(), ClockError> {
    let secs = seen
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    write_atomic(path, format!("{secs}\n").as_bytes(), 0o644).map_err(|source| ClockError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_start_never_reads_earlier_than_the_last_one_or_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-seen");
        // A later start than this one was recorded (the clock has since gone back).
        let future = SystemTime::now() + Duration::from_secs(86400 * 3);
        store_last_seen(&path, future).unwrap();
        let clock = TlsClock::at_start(&path);
        assert!(clock.now() >= future - Duration::from_secs(1));
        assert!(load_last_seen(&path).unwrap().unwrap() >= future - Duration::from_secs(1));
        assert!(build_time() > at(1_600_000_000), "{:?}", build_time());
        // A broken file is no floor, and is replaced.
        std::fs::write(&path, "garbage").unwrap();
        let clock = TlsClock::at_start(&path);
        assert!(clock.now() >= build_time());
        assert!(load_last_seen(&path).unwrap().is_some());
    }

    #[test]
    fn effective_now_takes_the_latest() {
        assert_eq!(effective_now(at(10), at(5), None), at(10));
        assert_eq!(effective_now(at(0), at(5), None), at(5));
        assert_eq!(effective_now(at(0), at(5), Some(at(7))), at(7));
        assert_eq!(effective_now(at(9), at(5), Some(at(7))), at(9));
    }

    #[test]
    fn tls_clock_moves_from_the_floor() {
        let ahead = SystemTime::now() + Duration::from_secs(30 * 86400);
        let clock = TlsClock::new(at(0), Some(ahead));
        let first = clock.now();
        assert!(first >= ahead);
        let later = clock.now();
        assert!(later >= first);
        let system = TlsClock::system().now();
        assert!(system < ahead);
    }

    #[test]
    fn last_seen_round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-seen");
        assert_eq!(load_last_seen(&path).unwrap(), None);
        store_last_seen(&path, at(1_700_000_000)).unwrap();
        assert_eq!(load_last_seen(&path).unwrap(), Some(at(1_700_000_000)));
    }

    #[test]
    fn last_seen_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-seen");
        std::fs::write(&path, "yesterday").unwrap();
        assert!(matches!(
            load_last_seen(&path),
            Err(ClockError::Malformed { .. })
        ));
    }
}
