//! The joining controller's side of `moor controller --join`: make a key, prove the token
//! to a running controller, save what comes back, and later ask the group to add it.
//!
//! Owns: the key (P-256, made here and never sent), the join call on the join ALPN (the
//! server must hold the CA whose fingerprint the token carries, `wire::tls::JoinVerifier`),
//! the files a joined controller starts from, and the admission loop the daemon runs until
//! the group has added it. Does not own: the checks on the controller's side (`join`), or
//! running the controller (`daemon`).
//!
//! ```text
//! token ─► key pair (ring) ─► JoinRequest ──join ALPN──► controller ─► Joined
//!   save pki/ca.pem, ca.key, controller.pem, .key ─► controller/join.json (group)
//!   ─► controller/member.json (last: its presence means the rest is complete)
//! daemon start (no initialize) ─► join.json present? ─► AddController{id, address}
//!   with its own certificate, until a member answers ─► remove join.json
//! ```
//!
//! The key and the call itself are `wire::join`'s, shared with agents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::api::{GroupMember, JoinRequest, JoinResponse, JoinRole, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use wire::{ClusterCa, JoinToken, Role};

use crate::bootstrap::{self, BootstrapError, MEMBER_FILE, Member};

const PENDING_FILE: &str = "join.json";
/// How long the join may be tried again while the server does not answer.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a join failed. Each names the step and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum JoinerError {
    #[error("--join: {0}")]
    Token(#[from] wire::TokenError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Call(#[from] wire::join::JoinCallError),
    #[error("{server} refused the join: {message}")]
    Refused { server: SocketAddr, message: String },
    #[error("{server} answered the join with {what}, expected {expected}")]
    BadAnswer {
        server: SocketAddr,
        what: String,
        expected: &'static str,
    },
}

/// What `--join` was given.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub data_dir: PathBuf,
    /// The token as `moor token create` printed it.
    pub token: String,
    /// A controller of the group to join through.
    pub server: SocketAddr,
    pub name: String,
    pub listen: SocketAddr,
    /// Defaults to `listen` (which must then be a specific address).
    pub advertise: Option<SocketAddr>,
    /// Where to keep the secrets key the group hands over.
    pub secrets_key: PathBuf,
}

/// The group as the join answer listed it, kept until this controller is a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// Where to ask to be added: the server joined through first.
    pub controllers: Vec<PendingController>,
}

/// One controller to ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingController {
    pub name: String,
    pub address: SocketAddr,
}

/// Joins the group through `options.server` and writes this controller's files. The
/// daemon then starts without initialising and asks to be added (see [`admit`]).
pub async fn join(options: &JoinOptions) -> Result<Member, JoinerError> {
    let token: JoinToken = options.token.parse()?;
    let data_dir = &options.data_dir;
    let member_path = bootstrap::raft_dir(data_dir).join(MEMBER_FILE);
    for existing in [member_path.clone(), bootstrap::pki(data_dir).join("ca.pem")] {
        if existing.exists() {
            return Err(BootstrapError::AlreadyInitialised { path: existing }.into());
        }
    }
    wire::identity::validate_name(&options.name).map_err(BootstrapError::from)?;
    let advertise = options.advertise.unwrap_or(options.listen);
    if advertise.ip().is_unspecified() {
        return Err(BootstrapError::Unspecified { addr: advertise }.into());
    }
    let key = wire::join::NewKey::generate()?;
    let request = JoinRequest {
        token_id: token.id.clone(),
        secret: token.secret().to_vec(),
        role: JoinRole::Controller,
        name: options.name.clone(),
        public_key: key.public_key().to_vec(),
        advertise: Some(advertise.to_string()),
    };
    let server = options.server;
    // An outage, or an answer lost on the way, is tried again with the same request (the
    // same key): the controller answers a repeated join again without using the token
    // twice (`tokens::is_repeat`).
    let answer = wire::join::call(
        &token,
        server,
        &request,
        |answer: &JoinResponse| matches!(answer, JoinResponse::Refused(e) if e.is_retryable()),
        JOIN_TIMEOUT,
    )
    .await?;
    let joined = match answer {
        JoinResponse::Joined(joined) => joined,
        JoinResponse::Refused(err) => {
            return Err(JoinerError::Refused {
                server,
                message: err.message,
            });
        }
    };
    let bad = |what: &str, expected| JoinerError::BadAnswer {
        server,
        what: what.to_owned(),
        expected,
    };
    let (Some(id), Some(ca_key)) = (joined.raft_id, &joined.ca_key_pem) else {
        return Err(bad("no raft id or CA key", "both, for a controller"));
    };
    // Everything is checked before anything is written: a bad answer leaves the data
    // directory as it was.
    let accepted = wire::join::accept(
        &token,
        &joined.ca_pem,
        &joined.chain,
        key,
        Role::Controller,
        &options.name,
    )
    .map_err(|e| bad(&e.what, e.expected))?;
    ClusterCa::from_pem(&joined.ca_pem, ca_key)
        .map_err(|_| bad("a CA key that does not load", "the CA's key"))?;
    let secrets_key = match &joined.secrets_key {
        Some(bytes) => Some(
            crate::sealing::SecretsKey::from_bytes(bytes)
                .ok_or_else(|| bad("a secrets key of the wrong size", "32 bytes"))?,
        ),
        None => None,
    };
    let node = accepted.node;
    let pki = bootstrap::pki(data_dir);
    for dir in [pki.clone(), bootstrap::raft_dir(data_dir)] {
        bootstrap::create_private_dir(&dir)?;
    }
    bootstrap::write_file(&pki.join("ca.pem"), joined.ca_pem.as_bytes())?;
    bootstrap::write_file(&pki.join("ca.key"), ca_key.as_bytes())?;
    if let Some(key) = secrets_key {
        if let Some(dir) = options.secrets_key.parent() {
            bootstrap::create_private_dir(dir)?;
        }
        key.save(&options.secrets_key).map_err(|e| {
            bad(
                &format!("a secrets key that cannot be saved ({e})"),
                "one saved",
            )
        })?;
    }
    node.save(&pki, "controller")
        .map_err(BootstrapError::from)?;
    let pending = Pending {
        controllers: pending_targets(server, &joined.members),
    };
    save_json(&pending_path(data_dir), &pending)?;
    let member = Member {
        id,
        name: options.name.clone(),
        listen: options.listen,
        advertise,
    };
    // Written last: its presence means the rest is complete.
    save_json(&member_path, &member)?;
    Ok(member)
}

/// The server joined through first, then the other members with a usable address.
fn pending_targets(server: SocketAddr, members: &[GroupMember]) -> Vec<PendingController> {
    let mut targets: Vec<PendingController> = Vec::new();
    let listed = members
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.address.parse::<SocketAddr>().ok()?)));
    let mut rest = Vec::new();
    for (name, address) in listed {
        if address == server {
            targets.push(PendingController { name, address });
        } else {
            rest.push(PendingController { name, address });
        }
    }
    targets.extend(rest);
    targets
}

fn pending_path(data_dir: &Path) -> PathBuf {
    bootstrap::raft_dir(data_dir).join(PENDING_FILE)
}

fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BootstrapError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| BootstrapError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    bootstrap::write_file(path, &text)
}

/// The group this controller still has to be added to, if it joined and is not a member
/// yet.
pub fn pending(data_dir: &Path) -> Result<Option<Pending>, BootstrapError> {
    let path = pending_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BootstrapError::Io {
                action: "read",
                path,
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| BootstrapError::Corrupt {
            path,
            reason: e.to_string(),
        })
}

/// Asks the group, with this controller's own certificate, to add it, until a member says
/// it is done; then forgets the pending join. Safe to repeat: adding a member twice is a
/// no-op. Runs until done (the daemon drops it at shutdown).
pub async fn admit(data_dir: PathBuf, member: Member, pending: Pending, client: wire::Client) {
    let request = Request::AddController {
        id: member.id,
        address: member.advertise.to_string(),
    };
    let targets = pending
        .controllers
        .iter()
        .map(|c| wire::Target {
            addr: c.address,
            name: Some(c.name.clone()),
        })
        .collect();
    client.set_targets(targets).await;
    let mut pause = Duration::from_millis(200);
    loop {
        match client.call::<Request, Response>(&request).await {
            Ok(Response::ControllerAdded { id }) => {
                info!(id, "this controller is a member of the group");
                if let Err(e) = std::fs::remove_file(pending_path(&data_dir)) {
                    warn!(error = %e, "could not remove the pending join record");
                }
                client.close().await;
                return;
            }
            Ok(Response::Error(e)) => {
                warn!(error = %e, "the group did not add this controller yet")
            }
            Ok(_) => warn!("the group answered the admission with something else"),
            Err(e) => warn!(error = %e, "asking the group to add this controller"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_joined_through_is_asked_first() {
        let members = vec![
            GroupMember {
                id: 1,
                name: "ctl-1".into(),
                address: "10.0.0.1:7443".into(),
            },
            GroupMember {
                id: 2,
                name: "ctl-2".into(),
                address: "10.0.0.2:7443".into(),
            },
            GroupMember {
                id: 3,
                name: "ctl-3".into(),
                address: "not an address".into(),
            },
        ];
        let server: SocketAddr = "10.0.0.2:7443".parse().unwrap();
        let targets = pending_targets(server, &members);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ctl-2", "ctl-1"]);
    }

    #[test]
    fn pending_joins_round_trip_and_a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pending(dir.path()).unwrap(), None);
        std::fs::create_dir_all(bootstrap::raft_dir(dir.path())).unwrap();
        let saved = Pending {
            controllers: vec![PendingController {
                name: "ctl-1".into(),
                address: "10.0.0.1:7443".parse().unwrap(),
            }],
        };
        save_json(&pending_path(dir.path()), &saved).unwrap();
        assert_eq!(pending(dir.path()).unwrap(), Some(saved));
        std::fs::write(pending_path(dir.path()), b"{nope").unwrap();
        let err = pending(dir.path()).unwrap_err().to_string();
        assert!(err.contains(PENDING_FILE), "{err}");
    }

    #[tokio::test]
    async fn a_bad_token_or_an_initialised_directory_is_refused_before_any_call() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = JoinOptions {
            data_dir: dir.path().join("data"),
            token: "moor1.nope".into(),
            server: "127.0.0.1:9".parse().unwrap(),
            name: "ctl-2".into(),
            listen: "127.0.0.1:7443".parse().unwrap(),
            advertise: None,
            secrets_key: dir.path().join("data/pki/secrets.key"),
        };
        let err = join(&options).await.unwrap_err().to_string();
        assert!(err.starts_with("--join: token has 2 parts"), "{err}");
        options.token = format!(
            "moor1.{}.{}.{}",
            "ab".repeat(6),
            "cd".repeat(16),
            "ef".repeat(32)
        );
        let pki = bootstrap::pki(&options.data_dir);
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(pki.join("ca.pem"), b"x").unwrap();
        let err = join(&options).await.unwrap_err().to_string();
        assert!(err.contains("already initialised"), "{err}");
    }
}
