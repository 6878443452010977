//! Waiting on conditions with deadlines. Tests never sleep a fixed time to decide
//! anything: they poll a condition until it holds or the deadline passes, and the
//! deadline only bounds a failure.

use std::time::{Duration, Instant};

/// Polls `condition` until it returns true; panics naming `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, condition: impl FnMut() -> bool) {
    if !holds_within(deadline, condition) {
        panic!("timed out after {deadline:?} waiting for {what}");
    }
}

/// Polls `condition` until it returns true (then true) or `deadline` passes (then false),
/// for callers that explain a failure themselves (with what they saw last, say).
pub fn holds_within(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Like [`wait_until`], for a value.
pub fn wait_for<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_until(what, deadline, || {
        found = probe();
        found.is_some()
    });
    match found {
        Some(v) => v,
        None => unreachable!("wait_until returned without a value"),
    }
}
