//! moor's transport: QUIC with mutual TLS between controllers, agents and clients, and
//! the cluster identity behind it.
//!
//! Owns: endpoints, length-prefixed framing and its size limits, the reconnecting
//! multi-controller client, cluster identity (CA, certificates, join tokens, the clock
//! rules for boxes without a real-time clock). Does not own: what the messages mean
//! (that is `proto`); payloads are bytes or any serde type.
//!
//! Layout:
//!
//! ```text
//! identity  CA, node certificates, <name>.<role>.moor.invalid names, PEM files
//! join      the joiner's key and its call on the join ALPN
//! validity  notBefore/notAfter of a certificate, when to renew
//! token     join tokens moor1.<id>.<secret>.<ca-fp> and their stored records
//! clock     effective_now = max(system, build, last seen); last-seen file
//! tls       rustls configs (ring), role/name and join verifiers
//! endpoint  quinn endpoints, keep-alive and idle timeout
//! frame     u32 BE length + bytes, limits, postcard helpers, stream error codes
//! server    serve(endpoint, handler, options, shutdown), Peer, revocation hook
//! connections  open member connections of a server: list, close the revoked
//! client    Client: controller list, failover, call/open, is_retryable
//! config    the client credential file (admin.conf, ~/.moor/config)
//! ```

pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod endpoint;
pub mod frame;
mod fsutil;
pub mod identity;
pub mod join;
pub mod server;
pub mod tls;
pub mod token;
pub mod validity;

pub use client::{Client, ClientError, ClientOptions, Target};
pub use clock::{ClockError, TlsClock, effective_now};
pub use config::{ClientConfig, ConfigError, ControllerEntry};
pub use connections::Connections;
pub use endpoint::{
    EndpointError, TransportOptions, client_endpoint, server_endpoint, unspecified_like,
};
pub use frame::{FrameError, FramedStream, Limits};
pub use identity::{CertIdentity, ClusterCa, Fingerprint, IdentityError, NodeCert, Role};
pub use server::{Handler, Peer, RevocationHook, ServeOptions, serve};
pub use tls::TlsError;
pub use token::{JoinToken, TokenError, TokenRecord};

/// Every error of this crate, for callers that want one type.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// See [`IdentityError`].
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// See [`TokenError`].
    #[error(transparent)]
    Token(#[from] TokenError),
    /// See [`ClockError`].
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// See [`ConfigError`].
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// See [`TlsError`].
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// See [`EndpointError`].
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// See [`FrameError`].
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// See [`ClientError`].
    #[error(transparent)]
    Client(#[from] ClientError),
}
