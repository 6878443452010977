//! A token server for registries that use bearer tokens (Docker's token
//! authentication): it checks a user's Basic credentials and answers with a JWT that
//! grants the scopes asked for, signed ES256 with a key of its own.
//!
//! ```text
//! client ─GET realm?service=S&scope=repository:NAME:pull,push (Basic user:pass)─▶ TokenServer
//!        ◀─ {"token": JWT, "expires_in": 300}
//! JWT: header {alg: ES256, typ: JWT, x5c: [the issuer's certificate]}
//!      claims {iss, sub, aud: S, exp, nbf, iat, jti, access: [{type, name, actions}]}
//! ```
//!
//! The registry trusts the token because the certificate in `x5c` is the one in its
//! `rootcertbundle` ([`TokenIssuer::cert_pem`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::SigningKey as _;
use serde_json::json;

use crate::http::{Reply, Request, Server};

/// Signs tokens: an ECDSA P-256 key and a self-signed certificate for it.
#[derive(Debug)]
pub struct TokenIssuer {
    key: rcgen::KeyPair,
    cert_der: Vec<u8>,
    cert_pem: String,
    issuer: String,
    service: String,
    next_id: AtomicU64,
}

impl TokenIssuer {
    /// A new key and certificate; tokens name `issuer` and are for `service`.
    pub fn new(issuer: &str, service: &str) -> TokenIssuer {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|e| panic!("token key: {e}"));
        let mut params = CertificateParams::new(vec!["moor-test-token-issuer".to_string()])
            .unwrap_or_else(|e| panic!("certificate params: {e}"));
        params
            .distinguished_name
            .push(DnType::CommonName, "moor test token issuer");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("self-signed certificate: {e}"));
        TokenIssuer {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key,
            issuer: issuer.to_string(),
            service: service.to_string(),
            next_id: AtomicU64::new(0),
        }
    }

    /// The certificate the registry must trust (its `rootcertbundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// A JWT for `subject` granting `scopes` (`repository:NAME:ACTION,ACTION`).
    pub fn token(&self, subject: &str, scopes: &[String]) -> String {
        let access: Vec<_> = scopes
            .iter()
            .filter_map(|s| {
                // The name may itself hold a ':' (registry:catalog:*): actions come last.
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({
                    "type": kind,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let header = json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now.saturating_sub(60),
            "iat": now,
            "jti": format!("moor-test-{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let der = self
            .key
            .sign(signing_input.as_bytes())
            .unwrap_or_else(|e| panic!("sign token: {e}"));
        let raw = ecdsa_der_to_fixed(&der, 32)
            .unwrap_or_else(|| panic!("ECDSA signature is not DER: {der:02x?}"));
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw))
    }
}

/// An ECDSA signature as DER (`SEQUENCE { INTEGER r, INTEGER s }`) to JWS's fixed
/// form, `r || s`, each `width` bytes.
fn ecdsa_der_to_fixed(der: &[u8], width: usize) -> Option<Vec<u8>> {
    fn integer(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&len, rest) = rest.split_first()?;
        if tag != 0x02 || len >= 0x80 || rest.len() < len as usize {
            return None;
        }
        Some(rest.split_at(len as usize))
    }
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, mut rest) = rest.split_first()?;
    if len >= 0x80 || rest.len() != len as usize {
        return None;
    }
    let mut out = Vec::with_capacity(2 * width);
    for _ in 0..2 {
        let (value, after) = integer(rest)?;
        rest = after;
        let trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
        if trimmed.len() > width {
            return None;
        }
        out.extend(std::iter::repeat_n(0, width - trimmed.len()));
        out.extend(trimmed);
    }
    rest.is_empty().then_some(out)
}

/// A token server over plain HTTP on 127.0.0.1: `GET /token` with the right Basic
/// credentials answers a token for the asked scopes; anything else is 401.
#[derive(Debug)]
pub struct TokenServer {
    server: Server,
    issuer: Arc<TokenIssuer>,
}

impl TokenServer {
    /// Serves tokens for the single user `user` with `password`.
    pub fn start(issuer: TokenIssuer, user: &str, password: &str) -> TokenServer {
        let issuer = Arc::new(issuer);
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{password}").as_bytes())
        );
        let user = user.to_string();
        let signer = issuer.clone();
        let server = Server::start(move |req: &Request| {
            if req.path() != "/token" {
                return Reply::status(404);
            }
            if req.header("authorization") != Some(expected.as_str()) {
                return Reply::json(
                    401,
                    &json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
                );
            }
            if req.query("service").first().map(String::as_str) != Some(signer.service()) {
                return Reply::json(400, &json!({"details": "unknown service"}));
            }
            let token = signer.token(&user, &req.query("scope"));
            Reply::json(200, &json!({"token": token, "expires_in": 300}))
        });
        TokenServer { server, issuer }
    }

    /// The realm to configure the registry with.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.authority())
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.server.authority()
    }

    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Every request the server has seen.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_signatures_become_fixed_width() {
        // r = 0x00ff (a leading zero for the sign), s = 0x01
        let der = [0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x01];
        let fixed = ecdsa_der_to_fixed(&der, 4).expect("fixed");
        assert_eq!(fixed, [0, 0, 0, 0xff, 0, 0, 0, 1]);
        assert_eq!(ecdsa_der_to_fixed(&[0x30, 0x00, 0x01], 4), None);
    }

    #[test]
    fn tokens_are_three_parts_with_the_certificate_in_the_header() {
        let issuer = TokenIssuer::new("iss", "svc");
        let token = issuer.token("me", &["repository:a/b:pull,push".to_string()]);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "ES256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["access"][0]["name"], "a/b");
        assert_eq!(claims["access"][0]["actions"], json!(["pull", "push"]));
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).expect("b64").len(), 64);
    }
}
