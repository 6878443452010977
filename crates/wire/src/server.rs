//! Serving calls: accept connections, identify the peer, run the handler per stream.
//!
//! Owns: the accept loop (`serve(endpoint, handler, options, shutdown)`, the
//! `run(listener, shutdown)` shape), peer identification from the verified certificate,
//! the revocation hook, reading each stream's request frame under the limits, and turning
//! a failed stream into a stream reset (never a closed connection or a panic). Does not
//! own: what requests mean (the [`Handler`]).
//!
//! ```text
//! endpoint.accept ─► handshake ─► peer_identity ─► identity_of ─► is_revoked? ─► registry
//!                                      │ none: join ALPN? ─► Handler::join
//!   per bidirectional stream:          ▼
//!   read request frame (limits) ─► Handler::call(peer, request, stream) ─► response frames
//!        bad/oversized/late frame ─► reset that stream with a code
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use quinn::{Connection, Endpoint, Incoming};
use rustls::pki_types::CertificateDer;
use tokio::task::JoinSet;
use tracing::debug;

use crate::connections::Connections;
use crate::frame::{FrameError, FramedStream, Limits, codes, read_frame};
use crate::identity::{CertIdentity, Role, identity_of};
use crate::tls::JOIN_ALPN;

/// An authenticated peer, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Role from the peer's certificate.
    pub role: Role,
    /// Node name from the peer's certificate.
    pub name: String,
    /// Serial of the peer's certificate.
    pub serial: Vec<u8>,
    /// Where the connection comes from (informational: identity is the certificate).
    pub addr: SocketAddr,
}

/// Serves the requests of one kind of server (controller API, Raft, ...).
pub trait Handler: Send + Sync + 'static {
    /// Answers one call: `request` is the stream's first frame; write the response
    /// frame(s) on `stream` (one for a call, many for a watch). When it returns `Ok` the
    /// stream is finished; on an error it is reset with the error's code.
    fn call(
        &self,
        peer: Peer,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> impl Future<Output = Result<(), FrameError>> + Send;

    /// Answers a call of a box without a certificate on the join ALPN. Refused unless
    /// overridden.
    fn join(
        &self,
        addr: SocketAddr,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> impl Future<Output = Result<(), FrameError>> + Send {
        let _ = (addr, request);
        stream.reset(codes::FORBIDDEN);
        async { Ok(()) }
    }
}

/// Says whether a certificate is revoked; consulted after every handshake.
pub type RevocationHook = Arc<dyn Fn(&CertIdentity) -> bool + Send + Sync>;

/// How `serve` treats connections and streams.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Frame limits on every stream.
    pub limits: Limits,
    /// Revocation check (by serial or by name) at each handshake; none means nothing is
    /// revoked. Connections already open are closed through `connections`.
    pub is_revoked: Option<RevocationHook>,
    /// Where open member connections are registered (keep a clone to list or close them).
    pub connections: Connections,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeOptions")
            .field("limits", &self.limits)
            .field("is_revoked", &self.is_revoked.is_some())
            .field("connections", &self.connections.peers().len())
            .finish()
    }
}

/// Who is on the other end of an accepted connection.
#[derive(Clone)]
enum Caller {
    Member(Peer),
    Joiner(SocketAddr),
}

/// Accepts connections on `endpoint` until `shutdown` resolves, then closes the endpoint
/// and waits for open connections to go.
pub async fn serve<H: Handler>(
    endpoint: Endpoint,
    handler: Arc<H>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    connections.spawn(connection(incoming, handler.clone(), options.clone()));
                }
                None => break,
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    endpoint.close(codes::CLOSED, b"shutting down");
    connections.shutdown().await;
    // Waiting lets the close reach the peers; it is bounded because a connection whose
    // peer is gone drains for three probe timeouts, which back off toward the idle
    // timeout (30 s was seen for a controller restarted on its own port).
    let _ = tokio::time::timeout(DRAIN_LIMIT, endpoint.wait_idle()).await;
}

/// How long `serve` waits for closed connections to drain before it returns.
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

async fn connection<H: Handler>(incoming: Incoming, handler: Arc<H>, options: ServeOptions) {
    let addr = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(err) => {
            debug!(%addr, %err, "handshake failed");
            return;
        }
    };
    let caller = match identify(&conn, &options) {
        Ok(caller) => caller,
        Err(code) => {
            let reason: &[u8] = if code == codes::REVOKED {
                b"certificate revoked"
            } else {
                b"member certificate required"
            };
            conn.close(code, reason);
            return;
        }
    };
    if let Caller::Member(peer) = &caller {
        options.connections.insert(peer.clone(), conn.clone());
    }
    serve_streams(&conn, &caller, handler, &options).await;
    options.connections.remove(&conn);
}

async fn serve_streams<H: Handler>(
    conn: &Connection,
    caller: &Caller,
    handler: Arc<H>,
    options: &ServeOptions,
) {
    let addr = conn.remote_address();
    let mut streams = JoinSet::new();
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(pair) => pair,
            Err(err) => {
                debug!(%addr, %err, "connection ended");
                break;
            }
        };
        let handler = handler.clone();
        let limits = options.limits;
        let caller = caller.clone();
        streams.spawn(async move {
            let mut recv = recv;
            let mut stream_send = send;
            let request = match read_frame(&mut recv, &limits, Some(limits.frame_timeout)).await {
                Ok(Some(request)) => request,
                Ok(None) => {
                    let _ = stream_send.finish();
                    return;
                }
                Err(err) => {
                    debug!(%err, "bad request frame");
                    FramedStream::new(stream_send, recv, limits).reset(err.code());
                    return;
                }
            };
            let mut stream = FramedStream::new(stream_send, recv, limits);
            let result = match caller {
                Caller::Member(peer) => handler.call(peer, request, &mut stream).await,
                Caller::Joiner(addr) => handler.join(addr, request, &mut stream).await,
            };
            match result {
                // Already finished or reset by the handler: nothing left to do.
                Ok(()) => {
                    let _ = stream.finish();
                }
                Err(err) => {
                    debug!(%err, "call failed");
                    stream.reset(err.code());
                }
            }
        });
        while streams.try_join_next().is_some() {}
    }
    streams.shutdown().await;
}

/// Decides who the peer is, or the close code to refuse it with.
fn identify(conn: &Connection, options: &ServeOptions) -> Result<Caller, quinn::VarInt> {
    let addr = conn.remote_address();
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let chain = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok());
    if alpn.as_deref() == Some(JOIN_ALPN) {
        return Ok(Caller::Joiner(addr));
    }
    let Some(leaf) = chain.as_ref().and_then(|chain| chain.first()) else {
        debug!(%addr, "member connection without a certificate");
        return Err(codes::UNAUTHORIZED);
    };
    let identity = identity_of(leaf).map_err(|err| {
        debug!(%addr, %err, "certificate names no moor identity");
        codes::UNAUTHORIZED
    })?;
    if options
        .is_revoked
        .as_ref()
        .is_some_and(|is_revoked| is_revoked(&identity))
    {
        debug!(%addr, name = %identity.name, "revoked certificate");
        return Err(codes::REVOKED);
    }
    Ok(Caller::Member(Peer {
        role: identity.role,
        name: identity.name,
        serial: identity.serial,
        addr,
    }))
}
