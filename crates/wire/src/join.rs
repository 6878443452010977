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

/// A join answer that does not hold up: what came and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("answered with {what}, expected {expected}")]
pub struct BadAnswer {
    pub what: String,
    pub expected: &'static str,
}

/// What a checked join answer gives: the cluster CA and this box's certificate.
#[derive(Debug)]
pub struct Accepted {
    pub ca: CertificateDer<'static>,
    pub node: NodeCert,
    pub identity: crate::identity::CertIdentity,
}

/// Checks a join answer before anything of it is kept: the CA is the one the token names,
/// and the chain, with this box's `key`, is a certificate of that CA for (`role`, `name`).
pub fn accept(
    token: &JoinToken,
    ca_pem: &str,
    chain: &[Vec<u8>],
    key: NewKey,
    role: crate::identity::Role,
    name: &str,
) -> Result<Accepted, BadAnswer> {
    let bad = |what: String, expected| BadAnswer { what, expected };
    let ca = crate::identity::load_certs_pem(ca_pem.as_bytes())
        .into_iter()
        .next()
        .ok_or_else(|| bad("no CA certificate".into(), "the cluster CA"))?;
    if crate::identity::Fingerprint::of(&ca) != token.ca_fingerprint {
        return Err(bad("a CA other than the token's".into(), "the token's CA"));
    }
    let node = key.into_node_cert(chain);
    let identity = node
        .identity()
        .map_err(|e| bad(format!("an unreadable certificate ({e})"), "a certificate"))?;
    if identity.role != role || identity.name != name {
        return Err(bad(
            format!("a certificate for {} {}", identity.role, identity.name),
            "one for this box's role and name",
        ));
    }
    let leaf = node
        .chain
        .first()
        .ok_or_else(|| bad("an empty chain".into(), "a certificate"))?;
    crate::tls::verify_cert(&ca, leaf, TlsClock::system().now()).map_err(|_| {
        bad(
            "a certificate the CA did not sign".into(),
            "one signed by the CA",
        )
    })?;
    Ok(Accepted { ca, node, identity })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::identity::{ClusterCa, Role, pem_encode};

    const DAY: Duration = Duration::from_secs(86400);

    fn setup() -> (ClusterCa, JoinToken, String) {
        let now = SystemTime::now();
        let ca = ClusterCa::create(now, DAY).unwrap();
        let (token, _) = JoinToken::generate(ca.fingerprint(), Role::Agent, now, DAY, 1).unwrap();
        let pem = pem_encode("CERTIFICATE", ca.cert().as_ref());
        (ca, token, pem)
    }

    fn signed(ca: &ClusterCa, key: &NewKey, role: Role, name: &str) -> Vec<Vec<u8>> {
        ca.issue_for_public_key(role, name, key.public_key(), SystemTime::now(), DAY)
            .unwrap()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    }

    #[test]
    fn a_good_answer_is_accepted() {
        let (ca, token, pem) = setup();
        let key = NewKey::generate().unwrap();
        let chain = signed(&ca, &key, Role::Agent, "edge-1");
        let accepted = accept(&token, &pem, &chain, key, Role::Agent, "edge-1").unwrap();
        assert_eq!(accepted.identity.name, "edge-1");
        assert_eq!(accepted.ca, *ca.cert());
    }

    #[test]
    fn answers_that_do_not_hold_up_are_refused() {
        let (ca, token, pem) = setup();
        let (other, _, other_pem) = setup();
        let check = |pem: &str, chain: &[Vec<u8>], key: NewKey, role, name: &str| {
            accept(&token, pem, chain, key, role, name)
                .unwrap_err()
                .what
        };
        // Another CA than the token's, even with a chain it signed.
        let key = NewKey::generate().unwrap();
        let chain = signed(&other, &key, Role::Agent, "edge-1");
        let what = check(&other_pem, &chain, key, Role::Agent, "edge-1");
        assert!(what.contains("other than the token's"), "{what}");
        // The token's CA, but a chain another CA signed.
        let key = NewKey::generate().unwrap();
        let chain = signed(&other, &key, Role::Agent, "edge-1");
        let what = check(&pem, &chain, key, Role::Agent, "edge-1");
        assert!(what.contains("did not sign"), "{what}");
        // Someone else's name or role.
        let key = NewKey::generate().unwrap();
        let chain = signed(&ca, &key, Role::Agent, "edge-2");
        let what = check(&pem, &chain, key, Role::Agent, "edge-1");
        assert!(what.contains("agent edge-2"), "{what}");
        let key = NewKey::generate().unwrap();
        let chain = signed(&ca, &key, Role::Controller, "edge-1");
        let what = check(&pem, &chain, key, Role::Agent, "edge-1");
        assert!(what.contains("controller edge-1"), "{what}");
        // Garbage.
        let what = check(
            "not pem",
            &[],
            NewKey::generate().unwrap(),
            Role::Agent,
            "e",
        );
        assert!(what.contains("no CA"), "{what}");
        let what = check(&pem, &[], NewKey::generate().unwrap(), Role::Agent, "e");
        assert!(what.contains("unreadable"), "{what}");
        let what = check(
            &pem,
            &[vec![0x30, 0x03, 1, 2, 3]],
            NewKey::generate().unwrap(),
            Role::Agent,
            "e",
        );
        assert!(what.contains("unreadable"), "{what}");
    }
}
