//! What controllers say to each other about Raft, as it travels on the wire.
//!
//! Owns the request ([`RaftMessage`]) and answer ([`RaftReply`]) of every call between
//! controllers, the tag that marks a Raft call's first frame, and the errors a controller
//! answers with ([`RemoteError`]), each saying whether it is retryable. Does not own sending
//! ([`network`](super::network)) or answering ([`service`](super::service)).
//!
//! ```text
//! frame 1: [RAFT_TAG] postcard(RaftMessage)
//! frames 2..: snapshot bytes (InstallSnapshot only), then finish
//! reply:   postcard(RaftReply)
//! ```
//!
//! The tag lets the controller's one wire handler tell Raft calls from API calls: postcard
//! writes an enum's variant index as a varint, and 0xff as a first byte would mean an API
//! enum of more than 127 variants.

use serde::Deserialize;
use serde::Serialize;

use super::types::NodeId;
use super::types::NodeInfo;
use super::types::Request;
use super::types::Response;
use super::types::SnapshotMeta;
use super::types::TypeConfig;
use super::types::Vote;

/// The first byte of every Raft call's request frame.
pub const RAFT_TAG: u8 = 0xff;

/// Whether a call's first frame is a Raft call (see [`RAFT_TAG`]).
pub fn is_raft_call(request: &[u8]) -> bool {
    request.first() == Some(&RAFT_TAG)
}

/// A call from one controller to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftMessage {
    /// Log entries, or a heartbeat (no entries), from the leader.
    AppendEntries(openraft::raft::AppendEntriesRequest<TypeConfig>),
    /// A candidate asks for a vote.
    Vote(openraft::raft::VoteRequest<TypeConfig>),
    /// A follower asks whether it would get a vote, without raising its term.
    PreVote(openraft::raft::VoteRequest<TypeConfig>),
    /// A whole snapshot of `size` bytes, which follow in data frames.
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        size: u64,
    },
    /// Something only the leader can do, sent by a follower to the node it believes leads.
    Forward(Forward),
}

/// Operations a follower forwards to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    /// A client write.
    Write(Request),
    /// Add a controller as a learner, wait until it caught up, then make it a voter.
    AddMember { id: NodeId, info: NodeInfo },
    /// Remove a controller from the group.
    RemoveMember { id: NodeId },
    /// The log index a linearizable read must see applied.
    ReadIndex,
    /// An agent's heartbeat for `node`, recorded in the leader's memory only.
    Heartbeat { node: String },
}

/// The answer to a [`RaftMessage`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftReply {
    /// The answer to [`RaftMessage::AppendEntries`].
    AppendEntries(openraft::raft::AppendEntriesResponse<TypeConfig>),
    /// The answer to [`RaftMessage::Vote`] and [`RaftMessage::PreVote`].
    Vote(openraft::raft::VoteResponse<TypeConfig>),
    /// The answer to [`RaftMessage::InstallSnapshot`], once installed.
    InstallSnapshot(openraft::raft::SnapshotResponse<TypeConfig>),
    /// The answer to [`RaftMessage::Forward`].
    Forwarded(Forwarded),
    /// The call was refused or failed on the receiving controller.
    Failed(RemoteError),
}

/// The answer to a [`Forward`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forwarded {
    /// The write's answer from the state machine.
    Written(Response),
    /// The membership change is committed.
    MembershipChanged,
    /// Reads are linearizable once this index is applied.
    ReadIndex(u64),
    /// The receiver is not the leader; it names the leader it knows of.
    NotLeader { leader: Option<(NodeId, NodeInfo)> },
    /// The leader recorded the heartbeat.
    HeartbeatSeen,
}

/// Why a controller refused or failed a call, as the caller learns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    #[error("raft calls need a controller certificate, not a {role} one")]
    Forbidden { role: String },
    #[error("the raft node of the receiving controller is not running")]
    Stopped,
    #[error("snapshot of {size} bytes exceeds the limit of {limit} bytes")]
    SnapshotTooLarge { size: u64, limit: u64 },
    #[error("snapshot ended after {received} of {expected} bytes")]
    SnapshotIncomplete { expected: u64, received: u64 },
    #[error("snapshot not received within {millis} ms")]
    SnapshotTimeout { millis: u64 },
    #[error("snapshot bytes do not decode: {reason}")]
    SnapshotCorrupted { reason: String },
    #[error("snapshot at {snapshot} contradicts the sender's leadership {vote} or this node's log")]
    SnapshotInconsistent { snapshot: String, vote: String },
    #[error("a leader cannot confirm its leadership: no quorum")]
    NoQuorum,
    #[error("the write was rejected by the leader: {reason}")]
    WriteRejected {
        reason: String,
        /// Whether the leader said trying again may work (a leader change).
        retryable: bool,
    },
    #[error("the membership change failed: {reason}")]
    Membership { reason: String, retryable: bool },
}

impl RemoteError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Stopped
            | Self::SnapshotIncomplete { .. }
            | Self::SnapshotTimeout { .. }
            | Self::NoQuorum => true,
            Self::WriteRejected { retryable, .. } | Self::Membership { retryable, .. } => {
                *retryable
            }
            Self::Forbidden { .. }
            | Self::SnapshotTooLarge { .. }
            | Self::SnapshotCorrupted { .. }
            | Self::SnapshotInconsistent { .. } => false,
        }
    }
}

/// Encodes a call's first frame: the tag, then the message.
pub fn encode_message(message: &RaftMessage) -> Result<Vec<u8>, wire::FrameError> {
    let mut frame = vec![RAFT_TAG];
    frame.extend_from_slice(&wire::frame::encode(message)?);
    Ok(frame)
}

/// Decodes a call's first frame; a missing tag or bad bytes are a decode error.
pub fn decode_message(frame: &[u8]) -> Result<RaftMessage, wire::FrameError> {
    match frame.split_first() {
        Some((&RAFT_TAG, body)) => wire::frame::decode(body),
        _ => Err(wire::FrameError::Decode(
            postcard::Error::DeserializeBadEncoding,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_their_tag() {
        let message = RaftMessage::Forward(Forward::RemoveMember { id: 3 });
        let frame = encode_message(&message).unwrap();
        assert!(is_raft_call(&frame));
        assert!(matches!(
            decode_message(&frame).unwrap(),
            RaftMessage::Forward(Forward::RemoveMember { id: 3 })
        ));
    }

    #[test]
    fn garbage_and_untagged_frames_are_decode_errors() {
        for frame in [
            &[][..],
            &[0x01, 0x02],
            &[RAFT_TAG, 0xff, 0xff, 0xff],
            &[RAFT_TAG],
        ] {
            assert!(matches!(
                decode_message(frame),
                Err(wire::FrameError::Decode(_))
            ));
        }
        assert!(!is_raft_call(&[0x00]));
    }
}
