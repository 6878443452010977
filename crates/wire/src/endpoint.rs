//! QUIC endpoints: quinn server and client endpoints over the TLS configs of `tls`.
//!
//! Owns: the transport settings every moor connection uses (keep-alive, idle timeout,
//! stream counts) and binding endpoints. Does not own: accepting connections (`server`)
//! or choosing which controller to dial (`client`).
//!
//! ```text
//! tls::server_config ─► server_endpoint(addr) ─► server::serve
//! tls::client_config ─► client_endpoint(addr) ─► client::Client
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, IdleTimeout, TransportConfig, VarInt};

/// Errors creating endpoints.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The rustls config is unusable for QUIC (e.g. no TLS 1.3 or no initial suite).
    #[error("rustls config unusable for QUIC: {0}")]
    Crypto(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The idle timeout does not fit QUIC's encoding.
    #[error("idle timeout {0:?} out of range")]
    IdleTimeout(Duration),
    /// The UDP socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Transport settings, the same on both sides.
#[derive(Debug, Clone, Copy)]
pub struct TransportOptions {
    /// Send a keep-alive when idle this long (quinn's default is none at all).
    pub keep_alive: Duration,
    /// Close a connection that heard nothing this long. The smaller of both sides wins.
    pub idle_timeout: Duration,
    /// Concurrent bidirectional streams a peer may open (calls plus watches).
    pub max_streams: u32,
}

impl TransportOptions {
    /// For a long-lived client (an agent): a controller that died without closing is
    /// noticed within seconds, not after the 30 s idle timeout.
    pub const LONG_LIVED_CLIENT: TransportOptions = TransportOptions {
        keep_alive: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        max_streams: 128,
    };
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_streams: 128,
        }
    }
}

impl TransportOptions {
    fn transport(&self) -> Result<Arc<TransportConfig>, EndpointError> {
        let mut transport = TransportConfig::default();
        transport.keep_alive_interval(Some(self.keep_alive));
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| EndpointError::IdleTimeout(self.idle_timeout))?;
        transport.max_idle_timeout(Some(idle));
        transport.max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams));
        // moor uses bidirectional streams only.
        transport.max_concurrent_uni_streams(VarInt::from_u32(0));
        // quinn's default (333 ms) makes a lost first handshake packet cost about a second
        // before it is sent again, the whole connect timeout: a burst of traffic filling
        // the server's socket buffer was enough to fail a command. Sending it again early
        // costs one small packet.
        transport.initial_rtt(Duration::from_millis(100));
        Ok(Arc::new(transport))
    }
}

/// A quinn client config from a rustls client config (see `tls::client_config`).
pub fn quic_client_config(
    tls: rustls::ClientConfig,
    options: &TransportOptions,
) -> Result<quinn::ClientConfig, EndpointError> {
    let crypto = QuicClientConfig::try_from(Arc::new(tls))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(options.transport()?);
    Ok(config)
}

/// A quinn server config from a rustls server config (see `tls::server_config`).
pub fn quic_server_config(
    tls: rustls::ServerConfig,
    options: &TransportOptions,
) -> Result<quinn::ServerConfig, EndpointError> {
    let crypto = QuicServerConfig::try_from(Arc::new(tls))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(options.transport()?);
    Ok(config)
}

/// A server endpoint bound to `addr` (port 0 picks one; see `Endpoint::local_addr`).
pub fn server_endpoint(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    options: &TransportOptions,
) -> Result<Endpoint, EndpointError> {
    let config = quic_server_config(tls, options)?;
    Endpoint::server(config, addr).map_err(|source| EndpointError::Bind { addr, source })
}

/// A client-only endpoint bound to `addr` whose connections use `tls`.
pub fn client_endpoint(
    addr: SocketAddr,
    tls: rustls::ClientConfig,
    options: &TransportOptions,
) -> Result<Endpoint, EndpointError> {
    let config = quic_client_config(tls, options)?;
    let mut endpoint =
        Endpoint::client(addr).map_err(|source| EndpointError::Bind { addr, source })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// The wildcard address of `addr`'s family, port 0: where a dialling endpoint binds.
pub fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}
