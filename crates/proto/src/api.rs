//! The client API's messages: what `moor` (and later agents) send a controller, and
//! what comes back. One [`Request`] per stream, answered by one [`Response`]; a
//! [`Request::Watch`] is answered by a stream of [`WatchEvent`]s instead.
//!
//! ```text
//! client ──Request──► any controller ──(write? forward to the leader)──► Raft
//!        ◄─Response── (revision of the write or of the read)
//! client ──Watch{from}──► controller ──► WatchEvent, WatchEvent, … (until closed)
//!                                     └─► TooOld: re-list, then watch again
//! ```
//!
//! Owns: the message shapes and the error codes, with whether each is worth retrying.
//! Does not own: the transport (the `wire` crate frames and encodes these with postcard),
//! what a controller does with them, or access rules.
//!
//! Every type here is plain serde (no `untagged`, `flatten` or `skip_serializing_if`),
//! so it encodes with postcard like the resources do.

use serde::{Deserialize, Serialize};

use crate::resources::{Kind, Object};

/// Names one object: its kind, its namespace (`None` for Namespace and Node, or
/// `default` when a namespaced object leaves it unset) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of `object`, with an unset namespace read as `default` for namespaced
    /// kinds.
    pub fn of(object: &Object) -> ObjectKey {
        let kind = object.kind();
        let meta = object.metadata();
        let namespace = kind
            .is_namespaced()
            .then(|| meta.namespace_or_default().to_string());
        ObjectKey {
            kind,
            namespace,
            name: meta.name.clone(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    /// `deployment/web in default`, `node/edge-01`: how messages name an object.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.name().to_lowercase(), self.name)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        Ok(())
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// What the leader has committed when the read is served (the default).
    Linearizable,
    /// The answering controller's own copy, which may lag (`--stale`): cheap, and
    /// available from a minority.
    Stale,
}

/// A call to a controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Creates or updates each object, all or nothing. An object that carries
    /// `metadata.resourceVersion` is updated only while that is still its version
    /// (optimistic concurrency); without one the object is written whatever its version.
    Apply { objects: Vec<Object>, dry_run: bool },
    /// One object.
    Get {
        key: ObjectKey,
        consistency: Consistency,
    },
    /// Every object of a kind, in one namespace or (`None`) all, matching a selector in
    /// `kubectl -l` syntax when one is given.
    List {
        kind: Kind,
        namespace: Option<String>,
        selector: Option<String>,
        consistency: Consistency,
    },
    /// Removes an object; with `resource_version`, only while that is still its version.
    Delete {
        key: ObjectKey,
        resource_version: Option<u64>,
    },
    /// Changes after `from_revision` (exclusive), then every change as it commits.
    Watch {
        kind: Kind,
        namespace: Option<String>,
        selector: Option<String>,
        from_revision: u64,
    },
    /// Makes a join token for `role`, valid for `ttl_secs` and `uses` joins (admin only).
    CreateToken {
        role: JoinRole,
        ttl_secs: u64,
        uses: u32,
    },
    /// Every join token, without its secret (admin only).
    ListTokens,
    /// Removes a join token (admin only).
    DeleteToken { id: String },
    /// Adds the calling controller (named by its certificate) to the Raft group under the
    /// id its join reserved, at `address`: the second step of `moor controller --join`.
    AddController { id: u64, address: String },
    /// The members of the controller group as the answering controller knows them, the
    /// leader marked (`moor controller ls`; any member certificate).
    ListControllers,
    /// Takes a controller out of the group (admin only); its data stays on its box.
    RemoveController { name: String },
    /// The calling agent's node is alive (agent certificate for `node` only). Kept in the
    /// leader's memory; only a change of the node's condition is written.
    Heartbeat { node: String },
    /// A new certificate for the caller's own name and role, for `public_key` (an
    /// uncompressed P-256 point): renewal before the old one expires.
    RenewCertificate { public_key: Vec<u8> },
    /// Removes a node (admin only): its Node object goes and every certificate issued for
    /// its name so far is revoked, so its agent can no longer connect.
    RemoveNode { name: String },
    /// A consistent copy of the whole replicated state, with the cluster CA and the
    /// secrets key (admin only), taken after a read barrier. Answered by
    /// [`Response::BackupStarted`], then [`BackupPart`] frames up to
    /// [`BackupPart::End`]; a refusal is a single [`Response::Error`].
    Backup,
}

/// One member of the controller group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerInfo {
    pub id: u64,
    pub name: String,
    pub address: String,
    /// A voter counts for quorums; a learner is still catching up.
    pub voter: bool,
    /// The answering controller believes this one leads.
    pub leader: bool,
}

/// The role a join token admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinRole {
    Controller,
    Agent,
}

impl JoinRole {
    /// `controller` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinRole::Controller => "controller",
            JoinRole::Agent => "agent",
        }
    }
}

impl std::fmt::Display for JoinRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A join token as `moor token ls` shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub role: JoinRole,
    /// Seconds since the Unix epoch, by the controller's clock.
    pub expires_at: u64,
    pub uses_left: u32,
}

/// The one call of a box without a certificate, on the join ALPN: prove the token's
/// secret and ask for a certificate for a public key made by the joiner (its private key
/// never leaves it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token_id: String,
    pub secret: Vec<u8>,
    pub role: JoinRole,
    pub name: String,
    /// An uncompressed P-256 point (65 bytes).
    pub public_key: Vec<u8>,
    /// Where the other controllers reach a joining controller (`IP:port`).
    pub advertise: Option<String>,
}

/// One controller of the group, as a join answer lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub id: u64,
    pub name: String,
    pub address: String,
}

/// What a joiner gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The joiner's certificate chain, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
    /// The cluster CA key (PEM), for a joining controller only: every controller answers
    /// joins.
    pub ca_key_pem: Option<String>,
    /// The Raft id reserved for a joining controller.
    pub raft_id: Option<u64>,
    /// The controller group now.
    pub members: Vec<GroupMember>,
    /// The key Secrets are sealed with at rest (32 bytes), for a joining controller only.
    pub secrets_key: Option<Vec<u8>>,
}

/// The answer to a [`JoinRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinResponse {
    Joined(Box<Joined>),
    Refused(ApiError),
}

/// What `Apply` did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
}

/// One object's line of an `Apply` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub key: ObjectKey,
    pub outcome: ApplyOutcome,
    /// The object's version after the write (its `metadata.resourceVersion`).
    pub resource_version: u64,
}

/// The answer to a call. Every success carries the cluster revision it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Applied {
        results: Vec<Applied>,
        revision: u64,
    },
    Object {
        object: Box<Object>,
        revision: u64,
    },
    List {
        objects: Vec<Object>,
        revision: u64,
    },
    Deleted {
        key: ObjectKey,
        revision: u64,
    },
    Error(ApiError),
    /// A new join token: the only time its secret is shown.
    Token {
        token: String,
    },
    Tokens(Vec<TokenInfo>),
    TokenDeleted {
        id: String,
    },
    ControllerAdded {
        id: u64,
    },
    Controllers(Vec<ControllerInfo>),
    ControllerRemoved {
        id: u64,
        name: String,
    },
    /// The heartbeat is recorded; send the next within `interval_secs`.
    HeartbeatAck {
        interval_secs: u32,
    },
    /// A renewed certificate chain, leaf first (DER).
    Certificate {
        chain: Vec<Vec<u8>>,
    },
    /// The node is gone and `revoked` certificates of its name are revoked.
    NodeRemoved {
        name: String,
        revoked: u32,
    },
    /// A backup follows on this stream as [`BackupPart`] frames.
    BackupStarted(BackupInfo),
}

/// What a backup holds, as the answering controller read it (one read transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The cluster revision of the copy.
    pub revision: u64,
    /// The Raft log index the copy was read at.
    pub applied_index: u64,
    /// How many stored records (objects and internal records) it holds.
    pub records: u64,
    /// The controller that answered.
    pub controller: String,
}

/// One frame of a backup stream, after [`Response::BackupStarted`]. The data is the
/// controller's archive (see `controller::backup::archive`), cut into frames at any byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupPart {
    /// The next bytes of the archive.
    Data(Vec<u8>),
    /// The archive is complete: `bytes` long, with this SHA-256 digest. A stream that
    /// ends without it is truncated.
    End { bytes: u64, sha256: Vec<u8> },
    /// The controller could not finish the backup; the data so far is worthless.
    Failed(ApiError),
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WatchEvent {
    Added {
        object: Box<Object>,
        revision: u64,
    },
    Modified {
        object: Box<Object>,
        revision: u64,
    },
    Deleted {
        object: Box<Object>,
        revision: u64,
    },
    /// Nothing changed for this watch up to `revision` (sent now and then, so a client
    /// that reconnects resumes from there instead of from an older revision).
    Bookmark {
        revision: u64,
    },
    /// The history asked for is gone (compacted, or the controller restarted): list
    /// again and watch from the list's revision. Ends the stream.
    TooOld {
        oldest: u64,
    },
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// No such object (or namespace).
    NotFound,
    /// The object's version is not the one the call named.
    Conflict { current: u64 },
    /// The request or an object in it breaks a rule; the message says which.
    Invalid,
    /// The caller's certificate does not allow this call.
    Forbidden,
    /// This controller cannot answer now (no leader, no quorum, shutting down).
    Unavailable,
    /// This controller is not the leader and could not forward; `leader` is the one it
    /// knows, if any.
    NotLeader { leader: Option<String> },
    /// The request or its answer is larger than the limits.
    TooLarge,
    /// A fault of the controller itself (its storage); not the caller's.
    Internal,
}

impl ErrorCode {
    /// Whether the same call may succeed if made again, to this or another controller.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::NotLeader { .. })
    }
}

/// A failed call: a code a program can act on and a message a person can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// See [`ErrorCode::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    fn object(yaml: &str) -> Object {
        let mut m = parse("t.yaml", yaml.as_bytes()).expect("parse");
        m.objects.remove(0).object
    }

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(v: T) {
        let bytes = postcard::to_allocvec(&v).expect("encode");
        let back: T = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, v);
    }

    #[test]
    fn keys_read_an_unset_namespace_as_default_for_namespaced_kinds_only() {
        let cm = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
        assert_eq!(
            ObjectKey::of(&cm),
            ObjectKey {
                kind: Kind::ConfigMap,
                namespace: Some("default".into()),
                name: "c".into()
            }
        );
        assert_eq!(ObjectKey::of(&cm).to_string(), "configmap/c in default");
        let ns = object("apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n");
        assert_eq!(ObjectKey::of(&ns).namespace, None);
        assert_eq!(ObjectKey::of(&ns).to_string(), "namespace/edge");
    }

    #[test]
    fn every_message_round_trips_through_postcard() {
        let cm = object(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\ndata: {k: v}\n",
        );
        let key = ObjectKey::of(&cm);
        round_trip(Request::Apply {
            objects: vec![cm.clone()],
            dry_run: true,
        });
        round_trip(Request::Get {
            key: key.clone(),
            consistency: Consistency::Stale,
        });
        round_trip(Request::List {
            kind: Kind::Pod,
            namespace: None,
            selector: Some("app in (web),tier!=db".into()),
            consistency: Consistency::Linearizable,
        });
        round_trip(Request::Delete {
            key: key.clone(),
            resource_version: Some(7),
        });
        round_trip(Request::Watch {
            kind: Kind::Service,
            namespace: Some("a".into()),
            selector: None,
            from_revision: 42,
        });
        round_trip(Response::Applied {
            results: vec![Applied {
                key: key.clone(),
                outcome: ApplyOutcome::Configured,
                resource_version: 9,
            }],
            revision: 9,
        });
        round_trip(Response::Object {
            object: Box::new(cm.clone()),
            revision: 9,
        });
        round_trip(Response::List {
            objects: vec![cm.clone(), cm.clone()],
            revision: 10,
        });
        round_trip(Response::Deleted { key, revision: 11 });
        round_trip(Response::Error(ApiError::new(
            ErrorCode::Conflict { current: 3 },
            "configmap/c in a: changed since version 2 (now 3)",
        )));
        round_trip(WatchEvent::Modified {
            object: Box::new(cm),
            revision: 12,
        });
        round_trip(WatchEvent::TooOld { oldest: 100 });
        round_trip(Request::CreateToken {
            role: JoinRole::Controller,
            ttl_secs: 86400,
            uses: 1,
        });
        round_trip(Request::ListTokens);
        round_trip(Request::ListControllers);
        round_trip(Request::RemoveController {
            name: "ctl-3".into(),
        });
        round_trip(Response::ControllerRemoved {
            id: 3,
            name: "ctl-3".into(),
        });
        round_trip(Request::Heartbeat {
            node: "edge-1".into(),
        });
        round_trip(Request::RenewCertificate {
            public_key: vec![4; 65],
        });
        round_trip(Request::RemoveNode {
            name: "edge-1".into(),
        });
        round_trip(Response::HeartbeatAck { interval_secs: 10 });
        round_trip(Response::Certificate {
            chain: vec![vec![0x30, 0x82]],
        });
        round_trip(Response::NodeRemoved {
            name: "edge-1".into(),
            revoked: 2,
        });
        round_trip(Request::Backup);
        round_trip(Response::BackupStarted(BackupInfo {
            revision: 42,
            applied_index: 50,
            records: 7,
            controller: "ctl-1".into(),
        }));
        round_trip(BackupPart::Data(vec![1, 2, 3]));
        round_trip(BackupPart::End {
            bytes: 3,
            sha256: vec![0; 32],
        });
        round_trip(BackupPart::Failed(ApiError::new(
            ErrorCode::Internal,
            "disk",
        )));
        round_trip(Response::Controllers(vec![ControllerInfo {
            id: 2,
            name: "ctl-2".into(),
            address: "10.0.0.6:7443".into(),
            voter: true,
            leader: false,
        }]));
        round_trip(Request::DeleteToken { id: "0a".into() });
        round_trip(Request::AddController {
            id: 2,
            address: "10.0.0.6:7443".into(),
        });
        round_trip(Response::Tokens(vec![TokenInfo {
            id: "0a".into(),
            role: JoinRole::Agent,
            expires_at: 1,
            uses_left: 3,
        }]));
        round_trip(JoinRequest {
            token_id: "0a".into(),
            secret: vec![1, 2],
            role: JoinRole::Controller,
            name: "ctl-2".into(),
            public_key: vec![4; 65],
            advertise: Some("10.0.0.6:7443".into()),
        });
        round_trip(JoinResponse::Joined(Box::new(Joined {
            chain: vec![vec![1]],
            ca_pem: "pem".into(),
            ca_key_pem: None,
            raft_id: Some(2),
            members: vec![GroupMember {
                id: 1,
                name: "ctl-1".into(),
                address: "10.0.0.5:7443".into(),
            }],
            secrets_key: Some(vec![7; 32]),
        })));
        round_trip(JoinResponse::Refused(ApiError::new(
            ErrorCode::Forbidden,
            "token 0a expired",
        )));
    }

    #[test]
    fn only_leadership_and_availability_errors_are_retryable() {
        assert!(ErrorCode::Unavailable.is_retryable());
        assert!(ErrorCode::NotLeader { leader: None }.is_retryable());
        for code in [
            ErrorCode::NotFound,
            ErrorCode::Conflict { current: 1 },
            ErrorCode::Invalid,
            ErrorCode::Forbidden,
            ErrorCode::TooLarge,
            ErrorCode::Internal,
        ] {
            assert!(!code.is_retryable(), "{code:?}");
        }
        let e = ApiError::new(ErrorCode::NotFound, "deployment/web in default: not found");
        assert_eq!(e.to_string(), "deployment/web in default: not found");
    }

    #[test]
    fn garbage_does_not_decode_as_a_request() {
        for bytes in [&b""[..], b"\xff\xff\xff\xff", b"\x00", b"\x7e\x01\x02"] {
            assert!(postcard::from_bytes::<Request>(bytes).is_err(), "{bytes:?}");
        }
    }
}
