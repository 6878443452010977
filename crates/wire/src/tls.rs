//! TLS configurations for moor's QUIC connections, and the certificate verifiers.
//!
//! Owns: rustls server and client configs (TLS 1.3 only, ring passed explicitly, no
//! process-wide provider), verifying servers by the role and name in their certificate,
//! and the join verifier that trusts a server only if its chain holds the CA whose
//! fingerprint the join token carries. Does not own: revocation (a hook in `server`,
//! consulted after the handshake) or which names may join (the controller).
//!
//! ALPN: `moor/1` for members (client certificate required); `moor-join/1` for a box
//! that has no certificate yet. A server that takes joins lets the TLS layer accept
//! clients without a certificate, and `server` then refuses every such connection that
//! did not negotiate `moor-join/1` and sends its calls to the handler's `join` only.
//!
//! ```text
//! member client ── ALPN moor/1, cert ──────► server: WebPkiClientVerifier (cluster CA)
//!   RoleVerifier: chain to CA + SAN role/name = expected
//! joiner ───────── ALPN moor-join/1, no cert ► server (allow_join = true)
//!   JoinVerifier: chain root fingerprint == token, leaf role = controller
//! ```
//!
//! Time: every config checks validity by a [`TlsClock`] (see `clock`), so a box without
//! a real-time clock does not reject every certificate as "not yet valid".
//!
//! Server names: a client dials `<name>.controller.moor.invalid` to require one
//! controller, or `controller.moor.invalid` (see [`any_name`]) to accept any controller
//! of the cluster; the address plays no part.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::clock::TlsClock;
use crate::identity::{
    CertIdentity, Fingerprint, IdentityError, NAME_SUFFIX, NodeCert, Role, dns_name, identity_of,
};

/// ALPN of member connections.
pub const ALPN: &[u8] = b"moor/1";
/// ALPN of join connections (no client certificate).
pub const JOIN_ALPN: &[u8] = b"moor-join/1";

/// Errors building TLS configurations or verifying certificates outside a handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA certificate could not be used as a trust anchor.
    #[error("adding cluster CA as trust anchor: {0}")]
    TrustAnchor(rustls::Error),
    /// A certificate verifier could not be built.
    #[error("building certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration (protocol versions, certificate or key).
    #[error("building {side} TLS config: {source}")]
    Config {
        side: &'static str,
        source: rustls::Error,
    },
    /// A certificate did not verify.
    #[error("verifying certificate: {0}")]
    Verify(rustls::Error),
    /// A certificate verified but names no moor identity.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// The ring provider every config is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(TlsError::TrustAnchor)?;
    Ok(Arc::new(roots))
}

/// The server name that accepts any holder of `role`, e.g. `controller.moor.invalid`.
pub fn any_name(role: Role) -> String {
    format!("{role}.{NAME_SUFFIX}")
}

/// The server name a client dials to reach (`role`, `name`), or any holder of `role`.
pub fn server_name_for(role: Role, name: Option<&str>) -> Result<String, IdentityError> {
    match name {
        Some(name) => dns_name(role, name),
        None => Ok(any_name(role)),
    }
}

/// A node certificate that can be replaced while the TLS configs built on it are in use:
/// a renewed certificate takes effect at the next handshake, in both directions, with no
/// endpoint rebuilt and no connection dropped.
#[derive(Debug)]
pub struct CertSlot {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl CertSlot {
    /// A slot holding `node`.
    pub fn new(node: &NodeCert) -> Result<Arc<CertSlot>, TlsError> {
        Ok(Arc::new(CertSlot {
            current: std::sync::RwLock::new(certified(node)?),
        }))
    }

    /// Presents `node` from the next handshake on.
    pub fn replace(&self, node: &NodeCert) -> Result<(), TlsError> {
        let next = certified(node)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok(())
    }

    /// The leaf certificate presented now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.get().cert.first().cloned()
    }

    fn get(&self) -> Arc<rustls::sign::CertifiedKey> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

fn certified(node: &NodeCert) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let key = provider()
        .key_provider
        .load_private_key(node.key.clone_key())
        .map_err(|source| TlsError::Config {
            side: "certificate",
            source,
        })?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        node.chain.clone(),
        key,
    )))
}

impl rustls::server::ResolvesServerCert for CertSlot {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.get())
    }
}

impl rustls::client::ResolvesClientCert for CertSlot {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A server config: presents `node`, requires client certificates from `ca`; with
/// `allow_join`, also lets clients without a certificate finish the handshake (the
/// server then only lets them speak `moor-join/1`).
pub fn server_config(
    ca: &CertificateDer<'static>,
    node: &NodeCert,
    allow_join: bool,
    clock: TlsClock,
) -> Result<rustls::ServerConfig, TlsError> {
    server_config_with(ca, CertSlot::new(node)?, allow_join, clock)
}

/// [`server_config`] presenting whatever `slot` holds at each handshake.
pub fn server_config_with(
    ca: &CertificateDer<'static>,
    slot: Arc<CertSlot>,
    allow_join: bool,
    clock: TlsClock,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let builder = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone());
    let verifier = if allow_join {
        builder.allow_unauthenticated().build()?
    } else {
        builder.build()?
    };
    let config_err = |source| TlsError::Config {
        side: "server",
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_details(provider, Arc::new(clock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(slot);
    config.alpn_protocols = vec![ALPN.to_vec()];
    if allow_join {
        config.alpn_protocols.push(JOIN_ALPN.to_vec());
    }
    Ok(config)
}

/// A member client config: trusts only `ca`, checks the server's role and name (from
/// the server name dialled, see [`server_name_for`]), presents `node` if given.
pub fn client_config(
    ca: &CertificateDer<'static>,
    node: Option<&NodeCert>,
    clock: TlsClock,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = role_verifier(ca, &provider)?;
    finish_client(provider, clock, verifier, node, ALPN)
}

/// [`client_config`] presenting whatever `slot` holds at each handshake.
pub fn client_config_with(
    ca: &CertificateDer<'static>,
    slot: Arc<CertSlot>,
    clock: TlsClock,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = role_verifier(ca, &provider)?;
    let config_err = |source| TlsError::Config {
        side: "client",
        source,
    };
    let mut config = rustls::ClientConfig::builder_with_details(provider, Arc::new(clock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(slot);
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

fn role_verifier(
    ca: &CertificateDer<'static>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<RoleVerifier>, TlsError> {
    let inner =
        WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider.clone()).build()?;
    Ok(Arc::new(RoleVerifier {
        inner,
        algorithms: provider.signature_verification_algorithms,
    }))
}

/// A join client config: no client certificate, and the server must present a chain
/// holding the CA with `fingerprint` and a controller certificate issued by it.
pub fn join_client_config(
    fingerprint: Fingerprint,
    clock: TlsClock,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(JoinVerifier {
        fingerprint,
        provider: provider.clone(),
    });
    finish_client(provider, clock, verifier, None, JOIN_ALPN)
}

fn finish_client(
    provider: Arc<CryptoProvider>,
    clock: TlsClock,
    verifier: Arc<dyn ServerCertVerifier>,
    node: Option<&NodeCert>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let config_err = |source| TlsError::Config {
        side: "client",
        source,
    };
    let builder = rustls::ClientConfig::builder_with_details(provider, Arc::new(clock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match node {
        Some(node) => builder
            .with_client_auth_cert(node.chain.clone(), node.key.clone_key())
            .map_err(config_err)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// Checks `leaf` (with optional intermediates) against `ca` as a client certificate at
/// `now`, and returns who it names. For use outside a handshake (e.g. renewals).
pub fn verify_cert(
    ca: &CertificateDer<'static>,
    leaf: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<CertIdentity, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider()).build()?;
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    verifier
        .verify_client_cert(leaf, &[], UnixTime::since_unix_epoch(since))
        .map_err(TlsError::Verify)?;
    Ok(identity_of(leaf)?)
}

#[cfg(test)]
pub(crate) fn check_chain(
    ca: &crate::identity::ClusterCa,
    leaf: &CertificateDer<'_>,
) -> Result<CertIdentity, TlsError> {
    verify_cert(ca.cert(), leaf, SystemTime::now())
}

/// What a server name asks of the certificate: a role, and maybe one name.
fn expectation(server_name: &ServerName<'_>) -> Option<(Role, Option<String>)> {
    let ServerName::DnsName(dns) = server_name else {
        return None;
    };
    let dns = dns.as_ref();
    let rest = dns.strip_suffix(NAME_SUFFIX)?.strip_suffix('.')?;
    match rest.split_once('.') {
        None => Some((rest.parse().ok()?, None)),
        Some((name, role)) => Some((role.parse().ok()?, Some(name.to_owned()))),
    }
}

fn bad_cert(why: &str) -> rustls::Error {
    rustls::Error::General(why.to_owned())
}

/// Verifies a server by the cluster CA and by the role (and name) in its certificate.
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RoleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (role, name) =
            expectation(server_name).ok_or_else(|| bad_cert("server name is not a moor name"))?;
        let presented =
            identity_of(end_entity).map_err(|_| bad_cert("server certificate has no moor name"))?;
        if presented.role != role {
            return Err(bad_cert("server certificate has the wrong role"));
        }
        if name.as_ref().is_some_and(|n| *n != presented.name) {
            return Err(bad_cert("server certificate has the wrong name"));
        }
        // The chain and validity check by WebPKI, against the name the certificate holds
        // (already compared with what we expect above).
        let own = dns_name(presented.role, &presented.name)
            .map_err(|_| bad_cert("server certificate has no moor name"))?;
        let own = ServerName::try_from(own).map_err(|_| bad_cert("invalid server name"))?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &own, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verifies a server for a joiner that has no CA yet: the presented chain must hold a
/// certificate whose SHA-256 is the token's fingerprint, and the leaf must chain to it
/// and be a controller's.
#[derive(Debug)]
pub struct JoinVerifier {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl JoinVerifier {
    /// A verifier for the CA with `fingerprint`.
    pub fn new(fingerprint: Fingerprint) -> Self {
        JoinVerifier {
            fingerprint,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for JoinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| Fingerprint::of(cert) == self.fingerprint)
            .ok_or_else(|| bad_cert("server chain has no CA with the token's fingerprint"))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|_| bad_cert("building join verifier"))?;
        let presented =
            identity_of(end_entity).map_err(|_| bad_cert("server certificate has no moor name"))?;
        if presented.role != Role::Controller {
            return Err(bad_cert("join server is not a controller"));
        }
        let own = dns_name(presented.role, &presented.name)
            .map_err(|_| bad_cert("server certificate has no moor name"))?;
        let own = ServerName::try_from(own).map_err(|_| bad_cert("invalid server name"))?;
        inner.verify_server_cert(end_entity, &[], &own, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
