//! What the join service does for nodes after they joined: renewing a certificate,
//! and `moor node rm`, which revokes every certificate issued for the node's name.
//!
//! Owns: the `moor.Issued` and `moor.Revoked` records' writes and the revocation check
//! the server runs at each handshake. Does not own: the record layout (`tokens`).

use proto::api::{ApiError, ErrorCode, Response};
use quinn::rustls::pki_types::CertificateDer;
use tracing::info;
use wire::Role;

use super::{Group, JOIN_ATTEMPTS, JoinService, admin_only, cluster_error, internal, put};
use crate::api::Caller;
use crate::raft::{self, WriteOp};
use crate::tokens;

impl<G: Group> JoinService<G> {
    /// Records a certificate given out, before its holder gets it: a certificate the
    /// store does not know of could not be revoked with its node.
    pub(super) async fn write_issued(&self, op: WriteOp) -> Result<(), ApiError> {
        let WriteOp::Put {
            key,
            value,
            expected,
        } = op
        else {
            return Err(internal("an issued record must be a put".into()));
        };
        match self
            .group
            .write(raft::Request::Put {
                key,
                value,
                expected,
            })
            .await
            .map_err(cluster_error)?
        {
            raft::Response::Written { .. } => Ok(()),
            // 128 random bits of serial colliding: the caller may ask again.
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                "a certificate with the same serial was recorded; try again",
            )),
        }
    }

    /// `Request::RenewCertificate`: a new certificate for the caller's own role and name.
    /// An agent must still hold its name (a removed node's agent cannot even connect).
    pub(super) async fn renew(
        &self,
        caller: &Caller,
        public_key: Vec<u8>,
    ) -> Result<Response, ApiError> {
        if caller.role == Role::Agent {
            self.group.read_barrier().await.map_err(cluster_error)?;
            let key = tokens::identity_key(Role::Agent, &caller.name);
            if self.stored(&key)?.is_none() {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("{caller} is no longer a member of the cluster; join again"),
                ));
            }
        }
        let now = self.clock.now();
        let chain = self.sign_key(caller.role, &caller.name, &public_key, now)?;
        self.write_issued(issued_op(caller.role, &caller.name, &chain, now)?)
            .await?;
        info!(role = %caller.role, name = %caller.name, "certificate renewed");
        Ok(Response::Certificate {
            chain: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
        })
    }

    /// `moor node rm`: the Node object, the name's reservation and every certificate
    /// issued for it go in one batch; the serials are recorded as revoked, so handshakes
    /// with them fail on every controller from the moment it applies the batch.
    pub(super) async fn remove_node(
        &self,
        caller: &Caller,
        name: String,
    ) -> Result<Response, ApiError> {
        admin_only(caller, "remove nodes")?;
        for _ in 0..JOIN_ATTEMPTS {
            self.group.read_barrier().await.map_err(cluster_error)?;
            let reader = self.group.reader();
            let issued = reader
                .list(
                    tokens::ISSUED_KIND,
                    Some(&tokens::issued_namespace(Role::Agent, &name)),
                )
                .map_err(|e| internal(e.to_string()))?;
            let node_key = crate::api::codec::store_key(&proto::api::ObjectKey {
                kind: proto::resources::Kind::Node,
                namespace: None,
                name: name.clone(),
            });
            let identity_key = tokens::identity_key(Role::Agent, &name);
            let mut ops = Vec::new();
            for key in [&node_key, &identity_key] {
                if let Some((revision, _)) = self.stored(key)? {
                    ops.push(WriteOp::Delete {
                        key: key.clone(),
                        expected: Some(revision),
                    });
                }
            }
            if ops.is_empty() && issued.objects.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("node {:.64}: not found", name),
                ));
            }
            let revoked_at = tokens::unix_secs(self.clock.now());
            for (key, stored) in &issued.objects {
                let serial = key.name.clone();
                ops.push(WriteOp::Delete {
                    key: key.clone(),
                    expected: Some(stored.mod_revision),
                });
                let revoked = raft::ObjectKey::new(tokens::REVOKED_KIND, "", serial);
                let record = tokens::RevokedRecord {
                    role: Role::Agent,
                    name: name.clone(),
                    revoked_at,
                };
                ops.push(WriteOp::Put {
                    value: tokens::encode(&revoked, &record)
                        .map_err(|e| internal(e.to_string()))?,
                    key: revoked,
                    expected: None,
                });
            }
            let revoked = issued.objects.len() as u32;
            match self
                .group
                .write(raft::Request::Batch(ops))
                .await
                .map_err(cluster_error)?
            {
                raft::Response::Written { .. } => {
                    info!(node = %name, revoked, "node removed, its certificates revoked");
                    return Ok(Response::NodeRemoved { name, revoked });
                }
                // The node changed, or renewed, meanwhile: look again.
                raft::Response::Conflict { .. } => continue,
                _ => {
                    return Err(internal(
                        "raft answered a removal batch with no write".into(),
                    ));
                }
            }
        }
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "the node kept changing while it was being removed; try again",
        ))
    }
}

/// The record of a certificate given out to (role, name): its leaf's serial.
pub(super) fn issued_op(
    role: Role,
    name: &str,
    chain: &[CertificateDer<'static>],
    now: std::time::SystemTime,
) -> Result<WriteOp, ApiError> {
    let leaf = chain
        .first()
        .ok_or_else(|| internal("an issued chain has no certificate".into()))?;
    let identity = wire::identity::identity_of(leaf).map_err(|e| internal(e.to_string()))?;
    let record = tokens::IssuedRecord {
        role,
        name: name.to_owned(),
        issued_at: tokens::unix_secs(now),
    };
    put(
        &tokens::issued_key(role, name, &identity.serial),
        &record,
        0,
    )
}

/// Whether the certificate with `serial` was revoked, by this controller's copy of the
/// state (the server's revocation hook, at every handshake). A store that cannot be read
/// refuses: a controller that cannot tell must not let a removed node in.
pub fn is_revoked(reader: &raft::StateReader, serial: &[u8]) -> bool {
    reader
        .get(&tokens::revoked_key(serial))
        .map_or(true, |found| found.is_some())
}
