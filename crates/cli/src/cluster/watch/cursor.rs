//! Where a watch stands: [`Cursor`] (the revision to resume from, without repeating or
//! missing an event) and [`Backoff`] (how long to wait before trying again). Pure: no
//! clocks but the durations they hand out, no IO.

use std::collections::BTreeSet;
use std::time::Duration;

use proto::api::ObjectKey;

/// Shortest and longest wait before watching or listing again.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(200);
pub(crate) const LAST_RETRY: Duration = Duration::from_secs(5);

/// Where a watch resumes: after the newest revision all of whose events were seen. The
/// events of a revision seen only in part are remembered by key, so when they come again
/// after a resume they are not printed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    complete: u64,
    partial: Option<(u64, BTreeSet<ObjectKey>)>,
}

impl Cursor {
    /// A cursor after a list answered at `revision`.
    pub(crate) fn new(revision: u64) -> Cursor {
        Cursor {
            complete: revision,
            partial: None,
        }
    }

    /// Records an event; false when it was seen already (a replay after a resume).
    pub(crate) fn accept(&mut self, revision: u64, key: ObjectKey) -> bool {
        if revision <= self.complete {
            return false;
        }
        match &mut self.partial {
            Some((partial, seen)) if *partial == revision => seen.insert(key),
            // Events come in revision order; an older one is a replay.
            Some((partial, _)) if *partial > revision => false,
            _ => {
                if let Some((done, _)) = self.partial.take() {
                    self.complete = done;
                }
                self.partial = Some((revision, BTreeSet::from([key])));
                true
            }
        }
    }

    /// Nothing more happened up to `revision`.
    pub(crate) fn bookmark(&mut self, revision: u64) {
        if self
            .partial
            .as_ref()
            .is_some_and(|(partial, _)| *partial <= revision)
        {
            self.partial = None;
        }
        self.complete = self.complete.max(revision);
    }

    /// The revision to watch from (exclusive) after losing the stream.
    pub(crate) fn resume_from(&self) -> u64 {
        self.complete
    }
}

/// Jittered, doubling waits between attempts, back to the shortest once events flow.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    state: u64,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        use std::hash::{BuildHasher, Hasher};
        // A per-process random seed, so many clients cut off together do not retry together.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Backoff {
            next: FIRST_RETRY,
            state: hasher.finish() | 1,
        }
    }

    /// The next wait: between half and all of the current step, which then doubles.
    pub(crate) fn delay(&mut self) -> Duration {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let step = self.next;
        self.next = (self.next * 2).min(LAST_RETRY);
        let half = step / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.state % spread)
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}
