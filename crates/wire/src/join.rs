//! The joiner's half of a join, shared by controllers and agents: a key made on the box
//! (its private half never leaves it), and the one call a box without a certificate may
//! make, on the join ALPN, to a server checked against the CA fingerprint in the token.
//!
//! Owns: key generation and the call with its retries. Does not own: what is asked and
//! answered (the caller's serde types, `proto::api::JoinRequest` in practice), or where
//! the result is saved.
//!
//! The key is made with ring (already linked through rustls) rather than rcgen, which
//! only the CA side needs.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::client::{Client, ClientError, ClientOptions, Target};
use crate::clock::TlsClock;
use crate::endpoint::{EndpointError, TransportOptions, client_endpoint, unspecified_like};
use crate::identity::NodeCert;
use crate::tls::{TlsError, join_client_config};
use crate::token::JoinToken;

/// Why a key could not be made or a join call not be sent.
#[derive(Debug, thiserror::Error)]
pub enum JoinCallError {
    #[error("making a key: the system random generator failed")]
    Key,
    #[error("join tls settings: {0}")]
    Tls(#[from] TlsError),
    #[error("join endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("joining through {server}: {source}")]
    Call {
        server: SocketAddr,
        #[source]
        source: Box<ClientError>,
    },
}

/// A P-256 key made on this box, for a certificate the cluster CA signs.
pub struct NewKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey").finish_non_exhaustive()
    }
}

impl NewKey {
    pub fn generate() -> Result<NewKey, JoinCallError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| JoinCallError::Key)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| JoinCallError::Key)?;
        Ok(NewKey {
            public: pair.public_key().as_ref().to_vec(),
            pkcs8: pkcs8.as_ref().to_vec(),
        })
    }

    /// The public half as an uncompressed point (65 bytes), as join and renewal calls
    /// carry it.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// This key with the chain (DER, leaf first) the CA signed for it.
    pub fn into_node_cert(self, chain: &[Vec<u8>]) -> NodeCert {
        NodeCert {
            chain: chain
                .iter()
                .map(|der| CertificateDer::from(der.clone()))
                .collect(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8)),
        }
    }
}

/// Sends `request` on the join ALPN to `server`, which must present a certificate of the
/// CA `token` names. An outage, or an answer `retry` calls temporary, is tried again with
/// the same request until `patience` has passed.
pub async fn call<Req, Resp>(
    token: &JoinToken,
    server: SocketAddr,
    request: &Req,
    retry: impl Fn(&Resp) -> bool,
    patience: Duration,
) -> Result<Resp, JoinCallError>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let tls = join_client_config(token.ca_fingerprint, TlsClock::system())?;
    let endpoint = client_endpoint(unspecified_like(server), tls, &TransportOptions::default())?;
    let client = Client::new(
        endpoint,
        vec![Target {
            addr: server,
            name: None,
        }],
        ClientOptions::default(),
    );
    let deadline = tokio::time::Instant::now() + patience;
    let answer = loop {
        let answer = client.call::<Req, Resp>(request).await;
        let again = match &answer {
            Ok(resp) => retry(resp),
            Err(e) => e.is_retryable(),
        };
        if !again || tokio::time::Instant::now() >= deadline {
            break answer;
        }
        warn!(%server, "join not answered yet; trying again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    client.close().await;
    answer.map_err(|source| JoinCallError::Call {
        server,
        source: Box::new(source),
    })
}
