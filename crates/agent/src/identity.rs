//! The agent's identity: joining with a token, the credential file it keeps, renewal.
//!
//! Owns: `DATA_DIR/agent/agent.conf` (the client credential format of `wire::config`:
//! controllers, cluster CA, the agent's chain and key; mode 0600), written whole and
//! atomically after a join or a renewal. Does not own: the key and the join call
//! (`wire::join`), or the controller's checks.
//!
//! ```text
//! token ─► NewKey ─► JoinRequest{role: agent} ──join ALPN──► controller ─► Joined
//!   checks: CA is the token's, leaf names this agent ─► agent.conf
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::api::{JoinRequest, JoinResponse, JoinRole};
use wire::{ClientConfig, ControllerEntry, JoinToken, Role};

/// How long a join is tried again while the server does not answer.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);
const CONF_FILE: &str = "agent.conf";

/// Why joining or loading the identity failed; each names the step and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("--join: {0}")]
    Token(#[from] wire::TokenError),
    #[error("node name {name:?}: {source}")]
    Name {
        name: String,
        #[source]
        source: wire::IdentityError,
    },
    #[error(
        "{path} exists: this box already joined a cluster (start `moor agent` without --join, or remove the directory to join anew)"
    )]
    AlreadyJoined { path: PathBuf },
    #[error(
        "{path}: no agent credentials; join first with `moor agent --join TOKEN --server ADDR`"
    )]
    NotJoined { path: PathBuf },
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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] wire::ConfigError),
}

/// Where the credential file lives.
pub fn conf_path(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join(CONF_FILE)
}

/// Joins through `server` with `token` as node `name`, and writes the credential file.
/// Returns its path.
pub async fn join(
    data_dir: &Path,
    token: &str,
    server: SocketAddr,
    name: &str,
) -> Result<PathBuf, IdentityError> {
    let token: JoinToken = token.parse()?;
    let path = conf_path(data_dir);
    if path.exists() {
        return Err(IdentityError::AlreadyJoined { path });
    }
    wire::identity::validate_name(name).map_err(|source| IdentityError::Name {
        name: name.to_owned(),
        source,
    })?;
    let key = wire::join::NewKey::generate()?;
    let request = JoinRequest {
        token_id: token.id.clone(),
        secret: token.secret().to_vec(),
        role: JoinRole::Agent,
        name: name.to_owned(),
        public_key: key.public_key().to_vec(),
        advertise: None,
    };
    let answer = wire::join::call(
        &token,
        server,
        &request,
        |answer: &JoinResponse| matches!(answer, JoinResponse::Refused(e) if e.is_retryable()),
        JOIN_PATIENCE,
    )
    .await?;
    let joined = match answer {
        JoinResponse::Joined(joined) => joined,
        JoinResponse::Refused(e) => {
            return Err(IdentityError::Refused {
                server,
                message: e.message,
            });
        }
    };
    let bad = |what: String, expected| IdentityError::BadAnswer {
        server,
        what,
        expected,
    };
    if joined.ca_key_pem.is_some() || joined.raft_id.is_some() {
        return Err(bad("a controller's answer".into(), "an agent's"));
    }
    let wire::join::Accepted { ca, node, identity } = wire::join::accept(
        &token,
        &joined.ca_pem,
        &joined.chain,
        key,
        Role::Agent,
        name,
    )
    .map_err(|e| bad(e.what, e.expected))?;
    let mut controllers: Vec<ControllerEntry> = joined
        .members
        .iter()
        .filter_map(|m| {
            Some(ControllerEntry {
                name: m.name.clone(),
                address: m.address.parse().ok()?,
            })
        })
        .collect();
    if controllers.is_empty() {
        return Err(bad("no controllers".into(), "the controller group"));
    }
    // The one joined through first: it answered.
    controllers.sort_by_key(|c| c.address != server);
    let config = ClientConfig {
        controllers,
        ca,
        node,
        identity,
    };
    save(data_dir, &config)?;
    Ok(path)
}

/// Writes the credential file (directory 0700, file 0600, atomically).
pub fn save(data_dir: &Path, config: &ClientConfig) -> Result<(), IdentityError> {
    let dir = data_dir.join("agent");
    create_private_dir(&dir)?;
    config.save(&dir.join(CONF_FILE))?;
    Ok(())
}

/// Loads the credential file of a joined agent.
pub fn load(data_dir: &Path) -> Result<ClientConfig, IdentityError> {
    let path = conf_path(data_dir);
    if !path.exists() {
        return Err(IdentityError::NotJoined { path });
    }
    Ok(ClientConfig::load(&path)?)
}

fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| IdentityError::Io {
            path: dir.to_owned(),
            source,
        })
}
