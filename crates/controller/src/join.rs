//! The controller's side of joining: `moor token create|ls|rm`, the join call on the join
//! ALPN, and adding a joined controller to the Raft group.
//!
//! Owns: the IO around the decisions in `tokens` — reading records after a read barrier,
//! writing a join as one Raft batch (token use, name reservation, Raft id), signing the
//! joiner's public key, answering. Does not own: the token format (`wire::token`), the
//! TLS that lets a box without a certificate in (`wire::tls`, `wire::server`), or the
//! joiner's side (`joiner`). Renewals and node removal are in `join::nodes`.
//!
//! ```text
//! joiner ── JoinRequest (join ALPN, no cert) ──► handle_join
//!   barrier ─► token record, reservation ─► same joiner again (answer lost)? answer again
//!   ─► check_token ─► check_name ─► [next Raft id]
//!   sign public key ─► write Batch(token uses-1 @rev, identity @absent, raft id @absent)
//!      conflict on the token or the id: read again (bounded); on the name: taken
//!   ◄── Joined { chain, CA, [CA key, Raft id], members }
//! joined controller ── AddController{id, address} (its own cert) ──► handle_member
//!   reservation (controller, cert name) has that id? ─► RaftNode::add_member
//! ```
//!
//! # The CA key goes to joining controllers
//!
//! A joining controller receives the CA key with its certificate, over the join connection
//! (TLS, the server checked against the token's CA fingerprint, and only after the token's
//! secret is proven). So every controller can answer joins, including when the first one
//! is gone. The alternative — one key holder, others forwarding joins to it — makes that
//! box a single point of failure for joins and adds a forwarding path, and buys little: a
//! controller already holds the whole replicated state and can write anything to it,
//! including the tokens that admit new controllers. Agents never get the key.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::api::{
    ApiError, ControllerInfo, ErrorCode, GroupMember, JoinRequest, JoinResponse, JoinRole, Joined,
    Request, Response,
};
use quinn::rustls::pki_types::CertificateDer;
use tracing::{debug, info};
use wire::{ClusterCa, JoinToken, Role, TlsClock, TokenRecord};

use crate::api::{Caller, Cluster, ClusterError};
use crate::bootstrap::CERT_VALIDITY;
use crate::raft::{self, NodeId, NodeInfo, WriteOp};
use crate::tokens::{self, IdentityRecord, JoinRefusal};

/// How many times a join is tried again after losing a race on the token or a Raft id.
const JOIN_ATTEMPTS: usize = 5;

/// The controller group as joins need it: the replicated store and its membership.
pub trait Group: Cluster {
    /// The members (voters and learners) as this controller knows them.
    fn members(&self) -> Vec<raft::Member>;

    /// Adds a controller as a learner, waits until it has caught up, promotes it.
    fn add_member(
        &self,
        id: NodeId,
        info: NodeInfo,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Takes a member out of the group.
    fn remove_member(&self, id: NodeId) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

/// What a joiner may take with it: the CA, as files.
#[derive(Debug)]
pub struct CaFiles {
    pub ca: ClusterCa,
    /// `ca.pem` as stored.
    pub cert_pem: String,
    /// `ca.key` as stored (sent to joining controllers only).
    pub key_pem: String,
    /// The secrets key's bytes, if the cluster has one (sent to joining controllers only).
    pub secrets_key: Option<Vec<u8>>,
}

/// Answers token calls, joins, and the admission of joined controllers.
#[derive(Debug)]
pub struct JoinService<G: Group> {
    group: Arc<G>,
    ca: CaFiles,
    clock: TlsClock,
}

impl<G: Group> JoinService<G> {
    pub fn new(group: Arc<G>, ca: CaFiles, clock: TlsClock) -> Self {
        JoinService { group, ca, clock }
    }

    /// Whether this service answers `request` (rather than the object API).
    pub fn answers(request: &Request) -> bool {
        matches!(
            request,
            Request::CreateToken { .. }
                | Request::ListTokens
                | Request::DeleteToken { .. }
                | Request::AddController { .. }
                | Request::ListControllers
                | Request::RemoveController { .. }
                | Request::RenewCertificate { .. }
                | Request::RemoveNode { .. }
        )
    }

    /// Answers a token call or an admission from a member certificate.
    pub async fn handle_member(&self, caller: &Caller, request: Request) -> Response {
        let result = match request {
            Request::CreateToken {
                role,
                ttl_secs,
                uses,
            } => self.create_token(caller, role, ttl_secs, uses).await,
            Request::ListTokens => self.list_tokens(caller).await,
            Request::DeleteToken { id } => self.delete_token(caller, id).await,
            Request::AddController { id, address } => {
                self.add_controller(caller, id, address).await
            }
            // Every member certificate may ask: agents will refresh their controller list
            // from it.
            Request::ListControllers => Ok(Response::Controllers(
                self.group
                    .members()
                    .into_iter()
                    .map(|m| ControllerInfo {
                        id: m.id,
                        name: m.info.name,
                        address: m.info.address,
                        voter: m.voter,
                        leader: m.leader,
                    })
                    .collect(),
            )),
            Request::RemoveController { name } => self.remove_controller(caller, name).await,
            Request::RenewCertificate { public_key } => self.renew(caller, public_key).await,
            Request::RemoveNode { name } => self.remove_node(caller, name).await,
            _ => Err(ApiError::new(
                ErrorCode::Invalid,
                "not a token or membership call",
            )),
        };
        result.unwrap_or_else(Response::Error)
    }

    async fn remove_controller(&self, caller: &Caller, name: String) -> Result<Response, ApiError> {
        admin_only(caller, "remove controllers")?;
        let members = self.group.members();
        let Some(member) = members.iter().find(|m| m.info.name == name) else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("controller {name:.64} is not a member of the group"),
            ));
        };
        if member.voter && members.iter().filter(|m| m.voter).count() == 1 {
            return Err(invalid(format!(
                "controller {name} is the only voter: the group cannot go on without it"
            )));
        }
        let id = member.id;
        self.group.remove_member(id).await.map_err(cluster_error)?;
        info!(id, name = %name, "controller removed from the group");
        Ok(Response::ControllerRemoved { id, name })
    }

    async fn create_token(
        &self,
        caller: &Caller,
        role: JoinRole,
        ttl_secs: u64,
        uses: u32,
    ) -> Result<Response, ApiError> {
        admin_only(caller, "create join tokens")?;
        let ttl = Duration::from_secs(ttl_secs);
        if ttl.is_zero() || ttl > tokens::MAX_TTL {
            return Err(invalid(format!(
                "token lifetime of {ttl_secs} s: expected 1 s to {} days",
                tokens::MAX_TTL.as_secs() / 86400
            )));
        }
        if uses == 0 {
            return Err(invalid("token uses: expected at least 1".into()));
        }
        let (token, record) = JoinToken::generate(
            self.ca.ca.fingerprint(),
            tokens::role_of(role),
            self.clock.now(),
            ttl,
            uses,
        )
        .map_err(|e| internal(e.to_string()))?;
        let key = tokens::token_key(&record.id);
        let value = tokens::encode(&key, &record).map_err(|e| internal(e.to_string()))?;
        let answer = self
            .group
            .write(raft::Request::Put {
                key,
                value,
                expected: Some(0),
            })
            .await
            .map_err(cluster_error)?;
        match answer {
            raft::Response::Written { .. } => {
                info!(id = %record.id, %role, uses, "join token created");
                Ok(Response::Token {
                    token: token.to_string(),
                })
            }
            // 48 random bits of id colliding: the caller may simply ask again.
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                "a token with the same id exists; try again",
            )),
        }
    }

    async fn list_tokens(&self, caller: &Caller) -> Result<Response, ApiError> {
        admin_only(caller, "list join tokens")?;
        self.group.read_barrier().await.map_err(cluster_error)?;
        let listing = self
            .group
            .reader()
            .list(tokens::TOKEN_KIND, Some(""))
            .map_err(|e| internal(e.to_string()))?;
        let mut shown = Vec::with_capacity(listing.objects.len());
        for (key, stored) in &listing.objects {
            let record: TokenRecord =
                tokens::decode(key, &stored.value).map_err(|e| internal(e.to_string()))?;
            shown.extend(tokens::info(&record));
        }
        Ok(Response::Tokens(shown))
    }

    async fn delete_token(&self, caller: &Caller, id: String) -> Result<Response, ApiError> {
        admin_only(caller, "delete join tokens")?;
        let answer = self
            .group
            .write(raft::Request::Delete {
                key: tokens::token_key(&id),
                expected: None,
            })
            .await
            .map_err(cluster_error)?;
        match answer {
            raft::Response::Written { .. } => {
                info!(%id, "join token deleted");
                Ok(Response::TokenDeleted { id })
            }
            _ => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("token {}: not found", clip(&id)),
            )),
        }
    }

    async fn add_controller(
        &self,
        caller: &Caller,
        id: NodeId,
        address: String,
    ) -> Result<Response, ApiError> {
        if caller.role != Role::Controller {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("{caller} may not add controllers: only a joined controller adds itself"),
            ));
        }
        let addr: SocketAddr = address
            .parse()
            .map_err(|_| invalid(format!("address {:?}: expected IP:port", clip(&address))))?;
        if addr.ip().is_unspecified() {
            return Err(invalid(format!(
                "address {addr}: an unspecified address cannot be dialled"
            )));
        }
        if self.group.members().iter().any(|m| m.id == id && m.voter) {
            return Ok(Response::ControllerAdded { id });
        }
        self.group.read_barrier().await.map_err(cluster_error)?;
        let key = tokens::identity_key(Role::Controller, &caller.name);
        let reserved: Option<IdentityRecord> = self.read(&key)?;
        if reserved.and_then(|r| r.raft_id) != Some(id) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("{caller} did not join with raft id {id}"),
            ));
        }
        let info = NodeInfo {
            name: caller.name.clone(),
            address: addr.to_string(),
        };
        self.group
            .add_member(id, info)
            .await
            .map_err(cluster_error)?;
        info!(id, name = %caller.name, %addr, "controller added to the group");
        Ok(Response::ControllerAdded { id })
    }

    /// Answers the join call of a box without a certificate. Hostile bytes are a refusal.
    pub async fn handle_join(&self, addr: SocketAddr, request: &[u8]) -> JoinResponse {
        let request = match wire::frame::decode::<JoinRequest>(request) {
            Ok(request) => request,
            Err(err) => {
                debug!(%addr, %err, "malformed join request");
                return JoinResponse::Refused(invalid(format!("malformed join request: {err}")));
            }
        };
        match self.join(&request).await {
            Ok(joined) => {
                info!(%addr, role = %request.role, name = %request.name, "node joined");
                JoinResponse::Joined(Box::new(joined))
            }
            Err(err) => {
                info!(%addr, role = %request.role, name = %clip(&request.name), error = %err.message, "join refused");
                JoinResponse::Refused(err)
            }
        }
    }

    async fn join(&self, request: &JoinRequest) -> Result<Joined, ApiError> {
        let role = tokens::role_of(request.role);
        let advertise = match request.role {
            JoinRole::Controller => Some(advertise_of(request)?),
            JoinRole::Agent => None,
        };
        for _ in 0..JOIN_ATTEMPTS {
            self.group.read_barrier().await.map_err(cluster_error)?;
            let now = self.clock.now();
            let token_key = tokens::token_key(&request.token_id);
            let stored = self.stored(&token_key)?;
            let record = stored
                .as_ref()
                .map(|(_, bytes)| tokens::decode::<TokenRecord>(&token_key, bytes))
                .transpose()
                .map_err(|e| internal(e.to_string()))?;
            let identity_key = tokens::identity_key(role, &request.name);
            let reserved: Option<IdentityRecord> = self.read(&identity_key)?;
            let members = self.group.members();
            if let (Some(reserved), Some(record)) = (&reserved, &record)
                && tokens::is_repeat(reserved, record, request, now)
            {
                let chain = self.sign(role, request, now)?;
                let issued = issued_op(role, &request.name, &chain, now)?;
                self.write_issued(issued).await?;
                return Ok(self.joined(chain, reserved.raft_id, members));
            }
            tokens::check_token(record.as_ref(), request, now).map_err(|e| e.to_api())?;
            let (Some(record), Some((token_revision, _))) = (record, stored) else {
                return Err(internal("token record vanished between checks".into()));
            };
            let names: Vec<String> = members.iter().map(|m| m.info.name.clone()).collect();
            tokens::check_name(role, &request.name, reserved.as_ref(), &names)
                .map_err(|e| e.to_api())?;
            let raft_id = match advertise {
                Some(_) => {
                    let ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
                    Some(tokens::next_raft_id(&ids, &self.reserved_ids()?))
                }
                None => None,
            };
            let chain = self.sign(role, request, now)?;
            let identity = IdentityRecord {
                role,
                name: request.name.clone(),
                raft_id,
                token_id: record.id.clone(),
                public_key: request.public_key.clone(),
            };
            let mut ops = vec![
                put(&token_key, &tokens::used_once(&record), token_revision)?,
                put(&identity_key, &identity, 0)?,
                issued_op(role, &request.name, &chain, now)?,
            ];
            if let Some(id) = raft_id {
                ops.push(put(&tokens::raft_id_key(id), &identity, 0)?);
            }
            let answer = self
                .group
                .write(raft::Request::Batch(ops))
                .await
                .map_err(cluster_error)?;
            match answer {
                raft::Response::Written { .. } => return Ok(self.joined(chain, raft_id, members)),
                // Another joiner took the name between our read and our write.
                raft::Response::Conflict { op_index: 1, .. } => {
                    return Err(JoinRefusal::NameTaken {
                        role,
                        name: request.name.clone(),
                    }
                    .to_api());
                }
                // The token was used, or the Raft id taken, meanwhile: check again.
                raft::Response::Conflict { .. } => continue,
                _ => return Err(internal("raft answered a join batch with no write".into())),
            }
        }
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "too many concurrent joins; try again",
        ))
    }

    fn sign(
        &self,
        role: Role,
        request: &JoinRequest,
        now: std::time::SystemTime,
    ) -> Result<Vec<CertificateDer<'static>>, ApiError> {
        self.sign_key(role, &request.name, &request.public_key, now)
    }

    fn sign_key(
        &self,
        role: Role,
        name: &str,
        public_key: &[u8],
        now: std::time::SystemTime,
    ) -> Result<Vec<CertificateDer<'static>>, ApiError> {
        self.ca
            .ca
            .issue_for_public_key(role, name, public_key, now, CERT_VALIDITY)
            .map_err(|e| {
                JoinRefusal::Invalid {
                    reason: e.to_string(),
                }
                .to_api()
            })
    }

    fn joined(
        &self,
        chain: Vec<CertificateDer<'static>>,
        raft_id: Option<NodeId>,
        members: Vec<raft::Member>,
    ) -> Joined {
        Joined {
            chain: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
            ca_pem: self.ca.cert_pem.clone(),
            ca_key_pem: raft_id.map(|_| self.ca.key_pem.clone()),
            secrets_key: raft_id.and_then(|_| self.ca.secrets_key.clone()),
            raft_id,
            members: members
                .into_iter()
                .map(|m| GroupMember {
                    id: m.id,
                    name: m.info.name,
                    address: m.info.address,
                })
                .collect(),
        }
    }

    /// The stored bytes at `key` and their revision.
    fn stored(&self, key: &raft::ObjectKey) -> Result<Option<(u64, Vec<u8>)>, ApiError> {
        let found = self
            .group
            .reader()
            .get(key)
            .map_err(|e| internal(e.to_string()))?;
        Ok(found.map(|s| (s.mod_revision, s.value)))
    }

    fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &raft::ObjectKey,
    ) -> Result<Option<T>, ApiError> {
        self.stored(key)?
            .map(|(_, bytes)| tokens::decode(key, &bytes))
            .transpose()
            .map_err(|e| internal(e.to_string()))
    }

    fn reserved_ids(&self) -> Result<Vec<NodeId>, ApiError> {
        let listing = self
            .group
            .reader()
            .list(tokens::RAFT_ID_KIND, Some(""))
            .map_err(|e| internal(e.to_string()))?;
        Ok(listing
            .objects
            .iter()
            .filter_map(|(key, _)| key.name.parse().ok())
            .collect())
    }
}

fn advertise_of(request: &JoinRequest) -> Result<SocketAddr, ApiError> {
    let Some(text) = &request.advertise else {
        return Err(invalid(
            "a joining controller must give the address the others reach it at".into(),
        ));
    };
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| invalid(format!("advertise {:?}: expected IP:port", clip(text))))?;
    if addr.ip().is_unspecified() {
        return Err(invalid(format!(
            "advertise {addr}: an unspecified address cannot be dialled"
        )));
    }
    Ok(addr)
}

fn put<T: serde::Serialize>(
    key: &raft::ObjectKey,
    record: &T,
    expected: u64,
) -> Result<WriteOp, ApiError> {
    Ok(WriteOp::Put {
        key: key.clone(),
        value: tokens::encode(key, record).map_err(|e| internal(e.to_string()))?,
        expected: Some(expected),
    })
}

fn admin_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!("{caller} may not {what}: admin only"),
    ))
}

/// At most 64 characters of a peer's string, for messages.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}

fn internal(message: String) -> ApiError {
    tracing::error!(%message, "join service failed");
    ApiError::new(ErrorCode::Internal, message)
}

fn cluster_error(err: ClusterError) -> ApiError {
    let code = if err.is_retryable() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    ApiError::new(code, err.to_string())
}

mod nodes;

use nodes::issued_op;

pub use nodes::is_revoked;

#[cfg(test)]
mod tests;
