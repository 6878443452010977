//! Watches: an in-memory history of recent changes, and streams of events per watcher.
//!
//! Owns: the history ring (bounded by revisions and by bytes; never on disk), the hub that
//! feeds it from the cluster's applied changes and fans them out, and [`WatchStream`]
//! (replay from a revision, then live events, filtered by kind, namespace, selector and
//! the caller's scope, with bookmarks). Does not own: access rules (`access`) or the
//! transport (`handler`).
//!
//! ```text
//! Cluster::subscribe ─► feed ─► WatchHub::record ─┬─► History (ring: revisions, bytes)
//!                                                 └─► broadcast (per-watcher buffer)
//! watch(from) ─► lock: replay = history after `from`, subscribe ─► WatchStream::next
//!     each change of the watched kind decoded for the watcher ─► filter ─► event
//!     from older than the history ─► TooOld { oldest }
//!     watcher overflows its buffer, or the state is reset ─► TooOld, end of stream
//! ```
//!
//! One revision is one unit everywhere: the ring evicts whole revisions, the broadcast
//! carries whole revisions and a bookmark is only sent between two, so a client resuming
//! from a bookmark misses nothing. The writer never waits for a watcher: the broadcast
//! overwrites, and a watcher that lagged ends with `TooOld`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::Object;
use proto::api::WatchEvent;
use proto::resources::Kind;
use proto::selector::Selector;
use tokio::sync::broadcast;
use tracing::error;

use super::access::Scope;
use super::cluster::{Applied, Change};
use super::codec;

/// Limits of the history and of each watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Most revisions kept in the history.
    pub history_revisions: usize,
    /// Most bytes of stored keys and values (old and new) kept in the history.
    pub history_bytes: usize,
    /// Revisions a watcher may fall behind the newest before it gets `TooOld`.
    pub watcher_buffer: usize,
    /// How often a watcher gets a bookmark.
    pub bookmark_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            // Sized for edge boxes: each revision is held as stored (keys, old and new
            // values), which this limit counts; 10,000 revisions and 64 MiB could keep tens
            // of MB on every controller. 2,000 revisions still cover minutes of an agent's
            // reconnect at the write rates of a small cluster; older is `TooOld`, and the
            // watcher lists again.
            history_revisions: 2_000,
            history_bytes: 4 * 1024 * 1024,
            watcher_buffer: 1024,
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// One key's change, as stored: the values stay encoded (and a Secret's sealed) in the
/// history, and are decoded for each watcher the kind concerns. Decoded, an object takes
/// several times its stored size (two `Option<Object>` alone are 3.9 KB): 2,000 revisions
/// held about 9 MB that way, about 1 MB like this.
#[derive(Debug)]
pub struct ObjectChange {
    pub key: crate::raft::ObjectKey,
    pub old: Option<Vec<u8>>,
    pub new: Option<Vec<u8>>,
}

impl ObjectChange {
    /// The change of `old` into `new`, encoded as the store holds them. At least one of
    /// them is given, and both are the same object.
    #[cfg(test)]
    pub fn of(old: Option<&Object>, new: Option<&Object>) -> Self {
        let any = old.or(new).expect("a change of something");
        let key = codec::store_key(&proto::api::ObjectKey::of(any));
        let encode = |o: Option<&Object>| o.map(|o| codec::encode(o).expect("encodes"));
        Self {
            key,
            old: encode(old),
            new: encode(new),
        }
    }

    /// Bytes held, for the history's byte limit.
    fn size(&self) -> usize {
        self.key.kind.len()
            + self.key.namespace.len()
            + self.key.name.len()
            + self.old.as_ref().map_or(0, Vec::len)
            + self.new.as_ref().map_or(0, Vec::len)
    }

    /// One side, decoded at `revision`; `None` if absent or undecodable (logged by key:
    /// the state machine stores only what this API encoded).
    fn decode(&self, value: Option<&Vec<u8>>, revision: u64) -> Option<Object> {
        match codec::decode_at(&self.key, value?, revision) {
            Ok(object) => Some(object),
            Err(err) => {
                error!(%err, "a watch skips an undecodable object");
                None
            }
        }
    }
}

/// Every change of one revision.
#[derive(Debug)]
pub struct RevisionChanges {
    pub revision: u64,
    pub changes: Vec<ObjectChange>,
    /// Bytes of stored keys and values, for the history's byte limit.
    pub bytes: usize,
}

/// What the hub sends live watchers.
#[derive(Debug, Clone)]
enum HubMessage {
    Revision(Arc<RevisionChanges>),
    Reset { revision: u64 },
}

/// The ring of recent revisions. Pure: no locks, no channels.
#[derive(Debug)]
pub struct History {
    revisions: VecDeque<Arc<RevisionChanges>>,
    bytes: usize,
    /// The oldest `from_revision` that can be served: every revision after it is here.
    oldest: u64,
    /// The newest revision recorded (or the revision the history started at).
    latest: u64,
    max_revisions: usize,
    max_bytes: usize,
}

impl History {
    /// An empty history of a state at `revision`.
    pub fn new(revision: u64, max_revisions: usize, max_bytes: usize) -> Self {
        History {
            revisions: VecDeque::new(),
            bytes: 0,
            oldest: revision,
            latest: revision,
            max_revisions: max_revisions.max(1),
            max_bytes,
        }
    }

    /// Adds a revision (newer than any before) and evicts the oldest past the limits.
    pub fn push(&mut self, changes: Arc<RevisionChanges>) {
        self.latest = changes.revision;
        self.bytes += changes.bytes;
        self.revisions.push_back(changes);
        while self.revisions.len() > self.max_revisions
            || (self.bytes > self.max_bytes && !self.revisions.is_empty())
        {
            if let Some(evicted) = self.revisions.pop_front() {
                self.bytes -= evicted.bytes;
                self.oldest = evicted.revision;
            }
        }
    }

    /// Forgets everything: the state is now at `revision`.
    pub fn reset(&mut self, revision: u64) {
        self.revisions.clear();
        self.bytes = 0;
        self.oldest = revision;
        self.latest = revision;
    }

    /// The revisions after `from`, or `Err(oldest)` when some of them are gone.
    pub fn since(&self, from: u64) -> Result<Vec<Arc<RevisionChanges>>, u64> {
        if from < self.oldest {
            return Err(self.oldest);
        }
        Ok(self
            .revisions
            .iter()
            .filter(|r| r.revision > from)
            .cloned()
            .collect())
    }

    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    pub fn latest(&self) -> u64 {
        self.latest
    }
}

#[derive(Debug)]
struct HubState {
    history: History,
    live: broadcast::Sender<HubMessage>,
}

/// The history plus the live fan-out. History and broadcast change under one lock, so a
/// new watcher's replay and live stream neither overlap nor leave a gap.
#[derive(Debug)]
pub struct WatchHub {
    state: Mutex<HubState>,
    options: WatchOptions,
}

impl WatchHub {
    /// A hub whose history starts at `revision`.
    pub fn new(revision: u64, options: WatchOptions) -> Self {
        let (live, _) = broadcast::channel(options.watcher_buffer.max(1));
        WatchHub {
            state: Mutex::new(HubState {
                history: History::new(revision, options.history_revisions, options.history_bytes),
                live,
            }),
            options,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves a consistent ring (push and reset do not
        // panic midway), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many watch streams are open.
    pub fn watchers(&self) -> usize {
        self.lock().live.receiver_count()
    }

    /// The newest revision recorded.
    pub fn latest(&self) -> u64 {
        self.lock().history.latest()
    }

    /// Records one applied entry. Entries at or before the newest revision recorded are
    /// already part of the state the history started from, and are skipped.
    pub fn record(&self, applied: Applied) {
        match applied {
            Applied::Reset { revision } => {
                let mut state = self.lock();
                if revision > state.history.latest() {
                    state.history.reset(revision);
                    let _ = state.live.send(HubMessage::Reset { revision });
                }
            }
            Applied::Changes { revision, changes } => {
                // Decode outside the lock: watchers opening meanwhile are not held up.
                let changes = Arc::new(keep(revision, changes));
                let mut state = self.lock();
                if revision > state.history.latest() {
                    state.history.push(Arc::clone(&changes));
                    let _ = state.live.send(HubMessage::Revision(changes));
                }
            }
        }
    }

    /// Forgets the history after the feed lost entries: live watchers get `TooOld`.
    pub fn reset(&self, revision: u64) {
        let mut state = self.lock();
        state.history.reset(revision);
        let _ = state.live.send(HubMessage::Reset { revision });
    }

    /// A stream of the changes after `from` (exclusive) that `filter` lets through. When
    /// the history no longer reaches back to `from`, the stream is one `TooOld`.
    pub fn watch(self: &Arc<Self>, from: u64, filter: WatchFilter) -> WatchStream {
        let state = self.lock();
        match state.history.since(from) {
            Ok(replay) => {
                let live = state.live.subscribe();
                let replayed_to = from.max(state.history.latest());
                drop(state);
                self.stream(filter, replay.into(), live, from, replayed_to)
            }
            Err(oldest) => {
                let live = state.live.subscribe();
                drop(state);
                let mut stream = self.stream(filter, VecDeque::new(), live, from, from);
                let too_old = stream.end(oldest);
                stream.outbox.push_back(too_old);
                stream
            }
        }
    }

    fn stream(
        self: &Arc<Self>,
        filter: WatchFilter,
        replay: VecDeque<Arc<RevisionChanges>>,
        live: broadcast::Receiver<HubMessage>,
        from: u64,
        replayed_to: u64,
    ) -> WatchStream {
        let period = self.options.bookmark_interval;
        let mut bookmarks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        WatchStream {
            hub: Arc::clone(self),
            filter,
            replay,
            live,
            from,
            position: from,
            replayed_to,
            outbox: VecDeque::new(),
            bookmarks,
            done: false,
        }
    }
}

/// One revision's changes as the history keeps them. Join tokens and name reservations
/// (`crate::join`) share the store but are no API objects: watches never see them.
fn keep(revision: u64, changes: Vec<Change>) -> RevisionChanges {
    let changes: Vec<ObjectChange> = changes
        .into_iter()
        .filter(|c| !codec::is_reserved(&c.key))
        .map(|c| ObjectChange {
            key: c.key,
            old: c.old.map(|stored| stored.value),
            new: c.new.map(|stored| stored.value),
        })
        .collect();
    RevisionChanges {
        revision,
        bytes: changes.iter().map(ObjectChange::size).sum(),
        changes,
    }
}

/// Which changes a watcher wants, and may see.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub selector: Option<Selector>,
    pub scope: Scope,
}

impl WatchFilter {
    /// Whether `object` is one the watcher sees.
    pub fn matches(&self, object: &Object) -> bool {
        object.kind() == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object.metadata().namespace_or_default() == ns)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&object.metadata().labels))
            && self.scope.allows(object)
    }

    /// The event this change is for the watcher: an object entering its view is Added,
    /// one leaving it (deleted, or no longer matching) is Deleted.
    pub fn event(&self, change: &ObjectChange, revision: u64) -> Option<WatchEvent> {
        if change.key.kind != self.kind.name() {
            return None;
        }
        let old = change
            .decode(change.old.as_ref(), revision)
            .filter(|o| self.matches(o));
        let new = change.decode(change.new.as_ref(), revision);
        let new_matches = new.as_ref().is_some_and(|o| self.matches(o));
        let event = match (old, new) {
            (None, Some(new)) if new_matches => WatchEvent::Added {
                object: Box::new(new),
                revision,
            },
            (Some(_), Some(new)) if new_matches => WatchEvent::Modified {
                object: Box::new(new),
                revision,
            },
            // Leaving the view: shown as it is now, or as it was if deleted.
            (Some(old), new) => WatchEvent::Deleted {
                object: Box::new(new.unwrap_or(old)),
                revision,
            },
            (None, _) => return None,
        };
        Some(event)
    }
}

/// One watcher's events: the replayed history, then live changes.
#[derive(Debug)]
pub struct WatchStream {
    hub: Arc<WatchHub>,
    filter: WatchFilter,
    replay: VecDeque<Arc<RevisionChanges>>,
    live: broadcast::Receiver<HubMessage>,
    /// Live revisions at or before this were asked to be skipped.
    from: u64,
    /// Every revision up to here has been turned into events (or filtered out).
    position: u64,
    /// The newest revision when the watch began: after the replay, position is at least it.
    replayed_to: u64,
    outbox: VecDeque<WatchEvent>,
    bookmarks: tokio::time::Interval,
    done: bool,
}

impl WatchStream {
    /// The next event; `None` once the stream has ended (after `TooOld`, or when the hub
    /// is gone).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            if let Some(event) = self.outbox.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if let Some(revision) = self.replay.pop_front() {
                self.take(&revision);
                if self.replay.is_empty() {
                    self.position = self.position.max(self.replayed_to);
                }
                continue;
            }
            self.position = self.position.max(self.replayed_to);
            tokio::select! {
                message = self.live.recv() => match message {
                    Ok(HubMessage::Revision(revision)) => {
                        if revision.revision > self.from {
                            self.take(&revision);
                        }
                    }
                    Ok(HubMessage::Reset { revision }) => return Some(self.end(revision)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let oldest = self.hub.lock().history.oldest();
                        return Some(self.end(oldest));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.done = true;
                        return None;
                    }
                },
                _ = self.bookmarks.tick() => {
                    return Some(WatchEvent::Bookmark { revision: self.position });
                }
            }
        }
    }

    fn take(&mut self, revision: &RevisionChanges) {
        for change in &revision.changes {
            self.outbox
                .extend(self.filter.event(change, revision.revision));
        }
        self.position = revision.revision;
    }

    fn end(&mut self, oldest: u64) -> WatchEvent {
        self.done = true;
        self.outbox.clear();
        WatchEvent::TooOld { oldest }
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
