//! Tests of the Raft storage that need a whole store: openraft's suite, power cuts, corrupted
//! records, disk writes.

mod corrupt;
mod disk;
mod durability;
mod power_cut;
mod reads;
pub(crate) mod single_node;
mod suite;

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;

use super::Entry;
use super::LogId;
use super::LogStore;
use super::ObjectKey;
use super::Request;
use super::StateMachine;
use super::Vote;

pub(crate) type LeaderId = <super::TypeConfig as openraft::RaftTypeConfig>::LeaderId;

pub(crate) fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(LeaderId::new_committed(term, 1), index)
}

pub(crate) fn vote(term: u64) -> Vote {
    Vote::new(term, 1)
}

pub(crate) fn pod(index: u64) -> ObjectKey {
    ObjectKey::new("Pod", "default", format!("pod-{index}"))
}

/// Entry `index` puts `pod(index)` with the index as its value.
pub(crate) fn put_entry(term: u64, index: u64) -> Entry {
    let request = Request::Put {
        key: pod(index),
        value: index.to_le_bytes().to_vec(),
        expected: None,
    };
    Entry::new_normal(log_id(term, index), request)
}

/// Appends and waits for the flush callback, as openraft would before acknowledging.
pub(crate) async fn append(log: &mut LogStore, entries: Vec<Entry>) -> std::io::Result<()> {
    let (tx, rx) = super::TypeConfig::oneshot();
    log.append(entries, IOFlushed::signal(tx)).await?;
    rx.await.map_err(std::io::Error::other)?
}

pub(crate) async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) -> std::io::Result<()> {
    let stream = futures_util::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await
}
