//! Join tokens: what `moor token create` prints and what a controller keeps of it.
//!
//! Owns: the token string format, parsing it from hostile input, the stored record (only
//! a hash of the secret), and the constant-time check. Does not own: where records are
//! stored (the controller's state) or the join conversation itself.
//!
//! Format, version 1 (all hex lowercase, ASCII, at most 256 bytes):
//!
//! ```text
//! moor1.<id: 12 hex>.<secret: 32 hex>.<ca fingerprint: 64 hex>
//!
//! joiner                                   controller
//!   parse token ─► dial join ALPN, check server CA == fingerprint (tls::JoinVerifier)
//!   send (id, secret) ───────────────────► record = records[id]
//!                                          record.verify(secret, now) ─► sign certificate
//! ```
//!
//! The secret is 128 random bits, so a plain SHA-256 is enough to store it: there is
//! nothing to brute-force that a slow hash would protect.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use subtle::ConstantTimeEq;

use crate::identity::{Fingerprint, Role, random_bytes};

const PREFIX: &str = "moor1";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const MAX_TOKEN_LEN: usize = 256;

/// Errors of join tokens.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than any token we make.
    #[error("token is {len} bytes, longer than {MAX_TOKEN_LEN}")]
    TooLong { len: usize },
    /// Not four dot-separated parts.
    #[error("token has {parts} parts, expected 4: moor1.<id>.<secret>.<ca-fingerprint>")]
    Parts { parts: usize },
    /// A version we do not know.
    #[error("token version {version:?} is not supported, expected {PREFIX:?}")]
    Version { version: String },
    /// A part that is not lowercase hex of the right length.
    #[error("token {part} is not {len} lowercase hex digits")]
    Field { part: &'static str, len: usize },
    /// No record with this id.
    #[error("unknown token {id}")]
    Unknown { id: String },
    /// The secret does not match.
    #[error("token {id} secret does not match")]
    Mismatch { id: String },
    /// The token expired.
    #[error("token {id} expired")]
    Expired { id: String },
    /// The token has been used up.
    #[error("token {id} has no uses left")]
    UsedUp { id: String },
    /// The system random generator failed while generating a token.
    #[error("generating token: system random generator failed")]
    Random,
}

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Public id (hex), the key of the stored record.
    pub id: String,
    secret: [u8; SECRET_LEN],
    /// The cluster CA the joiner must find on the server.
    pub ca_fingerprint: Fingerprint,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}",
            self.id,
            hex(&self.secret),
            self.ca_fingerprint
        )
    }
}

impl JoinToken {
    /// Makes a new token for `role`, and the record the controller stores for it.
    pub fn generate(
        ca_fingerprint: Fingerprint,
        role: Role,
        now: SystemTime,
        ttl: Duration,
        uses: u32,
    ) -> Result<(JoinToken, TokenRecord), TokenError> {
        let mut id = [0u8; ID_LEN];
        random_bytes(&mut id).map_err(|_| TokenError::Random)?;
        let mut secret = [0u8; SECRET_LEN];
        random_bytes(&mut secret).map_err(|_| TokenError::Random)?;
        let token = JoinToken {
            id: hex(&id),
            secret,
            ca_fingerprint,
        };
        let record = TokenRecord {
            id: token.id.clone(),
            role,
            secret_hash: hash_secret(&secret),
            expires_at: now + ttl,
            uses_left: uses,
        };
        Ok((token, record))
    }

    /// The secret, to send to the controller over the verified join connection.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong { len: s.len() });
        }
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 4 {
            return Err(TokenError::Parts { parts: parts.len() });
        }
        if parts[0] != PREFIX {
            return Err(TokenError::Version {
                version: parts[0].chars().take(16).collect(),
            });
        }
        let id = parse_hex::<ID_LEN>(parts[1], "id")?;
        let secret = parse_hex::<SECRET_LEN>(parts[2], "secret")?;
        let fp = parse_hex::<32>(parts[3], "ca fingerprint")?;
        Ok(JoinToken {
            id: hex(&id),
            secret,
            ca_fingerprint: Fingerprint(fp),
        })
    }
}

/// What a controller stores for a token: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRecord {
    /// The token's public id.
    pub id: String,
    /// The role a certificate issued with this token gets.
    pub role: Role,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// When the token stops working (compare with `clock::effective_now`).
    pub expires_at: SystemTime,
    /// How many more joins this token allows.
    pub uses_left: u32,
}

impl TokenRecord {
    /// Checks a presented (id, secret) against this record at `now`.
    ///
    /// The secret comparison takes the same time whatever the secret; the caller
    /// decrements `uses_left` in the same write that issues the certificate.
    pub fn verify(&self, id: &str, secret: &[u8], now: SystemTime) -> Result<(), TokenError> {
        if id != self.id {
            return Err(TokenError::Unknown {
                id: id.chars().take(32).collect(),
            });
        }
        let presented = hash_secret(secret);
        if !bool::from(presented.ct_eq(&self.secret_hash)) {
            return Err(TokenError::Mismatch {
                id: self.id.clone(),
            });
        }
        if now >= self.expires_at {
            return Err(TokenError::Expired {
                id: self.id.clone(),
            });
        }
        if self.uses_left == 0 {
            return Err(TokenError::UsedUp {
                id: self.id.clone(),
            });
        }
        Ok(())
    }
}

fn hash_secret(secret: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex<const N: usize>(s: &str, part: &'static str) -> Result<[u8; N], TokenError> {
    let err = TokenError::Field { part, len: N * 2 };
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return Err(err);
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
            _ => return Err(err),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn fp() -> Fingerprint {
        Fingerprint([7u8; 32])
    }

    #[test]
    fn token_round_trips_through_its_string() {
        let now = SystemTime::now();
        let (token, record) = JoinToken::generate(fp(), Role::Agent, now, HOUR, 1).unwrap();
        let text = token.to_string();
        assert!(text.starts_with("moor1."));
        let parsed: JoinToken = text.parse().unwrap();
        assert_eq!(parsed, token);
        record.verify(&parsed.id, parsed.secret(), now).unwrap();
        assert!(!format!("{token:?}").contains(&hex(token.secret())));
    }

    #[test]
    fn verify_rejects_wrong_secret_expired_and_used_up() {
        let now = SystemTime::now();
        let (token, mut record) = JoinToken::generate(fp(), Role::Agent, now, HOUR, 1).unwrap();
        let mut wrong = token.secret().to_vec();
        wrong[0] ^= 1;
        assert!(matches!(
            record.verify(&token.id, &wrong, now),
            Err(TokenError::Mismatch { .. })
        ));
        assert!(matches!(
            record.verify("000000000000", token.secret(), now),
            Err(TokenError::Unknown { .. })
        ));
        assert!(matches!(
            record.verify(&token.id, token.secret(), now + 2 * HOUR),
            Err(TokenError::Expired { .. })
        ));
        record.uses_left = 0;
        assert!(matches!(
            record.verify(&token.id, token.secret(), now),
            Err(TokenError::UsedUp { .. })
        ));
    }

    #[test]
    fn hostile_strings_get_clear_errors() {
        let good_fp = "ab".repeat(32);
        let secret = "cd".repeat(16);
        let cases: Vec<(String, TokenError)> = vec![
            ("".into(), TokenError::Parts { parts: 1 }),
            ("moor1".into(), TokenError::Parts { parts: 1 }),
            ("a.b.c.d.e".into(), TokenError::Parts { parts: 5 }),
            (
                format!("moor2.0123456789ab.{secret}.{good_fp}"),
                TokenError::Version {
                    version: "moor2".into(),
                },
            ),
            (
                format!("moor1.0123.{secret}.{good_fp}"),
                TokenError::Field {
                    part: "id",
                    len: 12,
                },
            ),
            (
                format!("moor1.0123456789AB.{secret}.{good_fp}"),
                TokenError::Field {
                    part: "id",
                    len: 12,
                },
            ),
            (
                format!("moor1.0123456789ab.{}.{good_fp}", "zz".repeat(16)),
                TokenError::Field {
                    part: "secret",
                    len: 32,
                },
            ),
            (
                format!("moor1.0123456789ab.{secret}.{}", "é".repeat(32)),
                TokenError::Field {
                    part: "ca fingerprint",
                    len: 64,
                },
            ),
            ("x".repeat(10_000), TokenError::TooLong { len: 10_000 }),
            ("....".into(), TokenError::Parts { parts: 5 }),
        ];
        for (input, expected) in cases {
            assert_eq!(
                input.parse::<JoinToken>().unwrap_err(),
                expected,
                "{input:?}"
            );
        }
        let ok = format!("  moor1.0123456789ab.{secret}.{good_fp}\n");
        assert_eq!(ok.parse::<JoinToken>().unwrap().id, "0123456789ab");
        // Multi-byte characters must not cause a panic on slicing.
        for s in ["moor1.é.é.é", "\u{0}.\u{0}.\u{0}.\u{0}", "moor1...."] {
            assert!(s.parse::<JoinToken>().is_err());
        }
    }

    #[test]
    fn record_serializes_with_postcard() {
        let (_, record) =
            JoinToken::generate(fp(), Role::Controller, SystemTime::now(), HOUR, 3).unwrap();
        let bytes = crate::frame::encode(&record).unwrap();
        let back: TokenRecord = crate::frame::decode(&bytes).unwrap();
        assert_eq!(back, record);
    }
}
