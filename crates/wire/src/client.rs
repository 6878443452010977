//! The reconnecting multi-controller client.
//!
//! Owns: a list of controller addresses (each with the controller's expected name, or
//! "any controller"), one connection at a time to one of them, failing over to the next
//! with short timeouts, per-call timeouts, watches, and telling callers whether an error
//! is worth retrying. Does not own: what requests mean, or retrying a call that may have
//! been executed (only the caller knows whether it is idempotent).
//!
//! ```text
//! call(req) ─► connection() ─┬─ cached and open ─────────────► open_bi ─► req ─► resp
//!                            └─ none/closed: targets[next..] ─ connect (1 s each)
//!                                  first that completes TLS (role/name checked) wins
//! open_bi fails on a stale connection ─► drop it, reconnect once (nothing was sent)
//! a call times out ─► drop the connection: the next call dials the next controller
//! ```

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, ConnectionError, Endpoint};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::debug;

use crate::frame::{FrameError, FramedStream, Limits, codes, connection_retryable, decode, encode};
use crate::identity::{IdentityError, Role};
use crate::tls::server_name_for;

/// One controller the client may dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its node name, checked against its certificate; `None` accepts any controller.
    pub name: Option<String>,
}

/// Timeouts and limits of a [`Client`].
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// How long one connection attempt may take before trying the next target.
    pub connect_timeout: Duration,
    /// How long a call may take, connecting included.
    pub call_timeout: Duration,
    /// Frame limits on every stream.
    pub limits: Limits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The target list is empty.
    #[error("no controller addresses known")]
    NoTargets,
    /// A target's name cannot be a certificate name.
    #[error("controller name for {addr}: {source}")]
    TargetName {
        addr: SocketAddr,
        source: IdentityError,
    },
    /// Starting a connection failed locally (e.g. bad address).
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: quinn::ConnectError,
    },
    /// A connection failed or was refused by the server.
    #[error("connection to {addr}: {source}")]
    Connection {
        addr: SocketAddr,
        source: ConnectionError,
    },
    /// A connection attempt took longer than the connect timeout.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    /// Every target failed; carries the last failure.
    #[error("no controller reachable ({tried} tried), last: {last}")]
    Unreachable {
        tried: usize,
        last: Box<ClientError>,
    },
    /// The call took longer than the call timeout.
    #[error("call timed out after {after:?}")]
    Timeout { after: Duration },
    /// The server ended the stream without a response.
    #[error("server closed the call without a response")]
    NoResponse,
    /// Framing, encoding, or the stream itself failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl ClientError {
    /// Whether the same call may succeed later (on this or another controller).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::NoTargets
            | ClientError::TargetName { .. }
            | ClientError::Connect { .. }
            | ClientError::NoResponse => false,
            ClientError::Connection { source, .. } => connection_retryable(source),
            ClientError::ConnectTimeout { .. } | ClientError::Timeout { .. } => true,
            ClientError::Unreachable { last, .. } => last.is_retryable(),
            ClientError::Frame(err) => err.is_retryable(),
        }
    }
}

struct Current {
    conn: Connection,
    target: Target,
}

/// A client of the controller group: one connection at a time, failing over by itself.
#[derive(Debug)]
pub struct Client {
    endpoint: Endpoint,
    options: ClientOptions,
    targets: Mutex<Vec<Target>>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// Where the next search for a controller starts: after the last one that worked,
    /// so a failure moves on instead of retrying the same box first.
    next: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("current", &self.current.as_ref().map(|c| &c.target))
            .field("next", &self.next)
            .finish()
    }
}

impl Client {
    /// A client dialing from `endpoint` (see `endpoint::client_endpoint`).
    pub fn new(endpoint: Endpoint, targets: Vec<Target>, options: ClientOptions) -> Self {
        Client {
            endpoint,
            options,
            targets: Mutex::new(targets),
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Replaces the target list (e.g. refreshed from membership). The current connection
    /// is kept if its target is still listed.
    pub async fn set_targets(&self, targets: Vec<Target>) {
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current
            && !targets.contains(&current.target)
        {
            current.conn.close(codes::CLOSED, b"target removed");
            state.current = None;
        }
        state.next = 0;
        *self.lock_targets() = targets;
    }

    /// The target list now.
    pub fn targets(&self) -> Vec<Target> {
        self.lock_targets().clone()
    }

    fn lock_targets(&self) -> std::sync::MutexGuard<'_, Vec<Target>> {
        // A poisoned lock only means another thread panicked mid-assignment of a Vec,
        // which leaves either the old or the new list: still usable.
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The target of the current connection, if one is open.
    pub async fn connected_to(&self) -> Option<Target> {
        let state = self.state.lock().await;
        state
            .current
            .as_ref()
            .filter(|c| c.conn.close_reason().is_none())
            .map(|c| c.target.clone())
    }

    /// Sends `request` and returns the single response frame.
    pub async fn call_bytes(&self, request: &[u8]) -> Result<Bytes, ClientError> {
        let after = self.options.call_timeout;
        match tokio::time::timeout(after, async {
            let mut stream = self.open(request).await?;
            stream.finish()?;
            stream.recv_frame().await?.ok_or(ClientError::NoResponse)
        })
        .await
        {
            Ok(answer) => answer,
            Err(_) => {
                // A controller killed without closing leaves a connection that looks open
                // until the idle timeout; calls on it would time out one after another.
                // Drop it, so the next call dials the next controller.
                self.drop_current().await;
                Err(ClientError::Timeout { after })
            }
        }
    }

    /// Closes the current connection, if any, so the next call connects afresh,
    /// starting with the controller after it (a caller moving on after an answer that
    /// says "ask another controller").
    pub async fn drop_current(&self) {
        let mut state = self.state.lock().await;
        if let Some(current) = state.current.take() {
            current
                .conn
                .close(codes::CLOSED, b"moving to another controller");
        }
    }

    /// Sends `request` encoded with postcard and decodes the response as `Resp`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let bytes = encode(request)?;
        let response = self.call_bytes(&bytes).await?;
        Ok(decode(&response)?)
    }

    /// Opens a stream and sends `request` as its first frame; the caller reads the
    /// response frames (a watch, a log tail) until `None`, may send more frames (exec
    /// input), and finishes or drops the stream when done. No call timeout applies.
    pub async fn open(&self, request: &[u8]) -> Result<FramedStream, ClientError> {
        let mut stream = self.open_stream().await?;
        stream.send_frame(request).await?;
        Ok(stream)
    }

    async fn open_stream(&self) -> Result<FramedStream, ClientError> {
        // A cached connection may have died without us noticing; opening a stream on it
        // fails before anything is sent, so one fresh attempt is always safe.
        for _ in 0..2 {
            let conn = self.connection().await?;
            match conn.open_bi().await {
                Ok((send, recv)) => return Ok(FramedStream::new(send, recv, self.options.limits)),
                Err(err) => {
                    debug!(%err, "stream on cached connection failed");
                    self.forget(&conn).await;
                }
            }
        }
        let conn = self.connection().await?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|source| ClientError::Connection {
                addr: conn.remote_address(),
                source,
            })?;
        Ok(FramedStream::new(send, recv, self.options.limits))
    }

    /// Drops `conn` as the current connection if it still is.
    async fn forget(&self, conn: &Connection) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.conn.stable_id() == conn.stable_id())
        {
            state.current = None;
        }
    }

    /// The open connection, connecting (with failover) if there is none.
    pub async fn connection(&self) -> Result<Connection, ClientError> {
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current {
            if current.conn.close_reason().is_none() {
                return Ok(current.conn.clone());
            }
            state.current = None;
        }
        let targets = self.targets();
        if targets.is_empty() {
            return Err(ClientError::NoTargets);
        }
        let mut last = None;
        for step in 0..targets.len() {
            let index = (state.next + step) % targets.len();
            let target = &targets[index];
            match self.connect(target).await {
                Ok(conn) => {
                    state.next = (index + 1) % targets.len();
                    state.current = Some(Current {
                        conn: conn.clone(),
                        target: target.clone(),
                    });
                    return Ok(conn);
                }
                Err(err) => {
                    debug!(addr = %target.addr, %err, "controller unreachable");
                    last = Some(err);
                }
            }
        }
        state.next = (state.next + 1) % targets.len();
        match last {
            Some(last) => Err(ClientError::Unreachable {
                tried: targets.len(),
                last: Box::new(last),
            }),
            None => Err(ClientError::NoTargets),
        }
    }

    async fn connect(&self, target: &Target) -> Result<Connection, ClientError> {
        let addr = target.addr;
        let server_name = server_name_for(Role::Controller, target.name.as_deref())
            .map_err(|source| ClientError::TargetName { addr, source })?;
        let connecting = self
            .endpoint
            .connect(addr, &server_name)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let after = self.options.connect_timeout;
        tokio::time::timeout(after, connecting)
            .await
            .map_err(|_| ClientError::ConnectTimeout { addr, after })?
            .map_err(|source| ClientError::Connection { addr, source })
    }

    /// Closes the current connection (e.g. before the process exits).
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        if let Some(current) = state.current.take() {
            current.conn.close(codes::CLOSED, b"client closing");
        }
    }
}
