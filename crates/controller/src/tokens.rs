//! Join tokens and name reservations as the controller group stores them, and the pure
//! decisions of a join: is this token good for this request, is the name free, which Raft
//! id comes next.
//!
//! Owns: the reserved store keys (kinds starting with `moor.`, which no API kind has, so
//! the object API and its watches never see them), the record layout (a format byte, then
//! postcard), and the checks. Does not own: the token string and the secret's hash
//! (`wire::token`), the IO of a join (`join`), or certificates (`wire::identity`).
//!
//! ```text
//! ("moor.Token",    "",            <token id>)  TokenRecord: secret hash, role, expiry, uses left
//! ("moor.Identity", "controller",  <name>)      IdentityRecord: who took the name, its Raft id
//! ("moor.Identity", "agent",       <name>)
//! ("moor.RaftId",   "",            <id, 20 digits>)  taken Raft ids
//! ("moor.Issued",   "agent/<name>", <serial, hex>)   IssuedRecord: a certificate given out
//! ("moor.Revoked",  "",            <serial, hex>)   RevokedRecord: refused at handshakes
//!
//! join = one Raft batch: token (expected its revision, uses_left - 1)
//!                      + identity (expected absent) [+ raft id (expected absent)]
//! ```
//!
//! The batch's expected revisions make a one-use token good for one join and a name good
//! for one holder, whichever controllers the racing joiners reach: the loser's batch is
//! refused whole by the state machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::api::{ApiError, ErrorCode, JoinRequest, JoinRole, TokenInfo};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wire::{Role, TokenError, TokenRecord};

use crate::raft::{NodeId, ObjectKey};

/// The store kind of join tokens.
pub const TOKEN_KIND: &str = "moor.Token";
/// The store kind of name reservations; the namespace is the role.
pub const IDENTITY_KIND: &str = "moor.Identity";
/// The store kind of taken Raft ids.
pub const RAFT_ID_KIND: &str = "moor.RaftId";
/// The store kind of certificates given out (join, renewal); the namespace is
/// `role/name`, so a node's certificates list together when it is removed.
pub const ISSUED_KIND: &str = "moor.Issued";
/// The store kind of revoked certificate serials, looked up at every handshake.
pub const REVOKED_KIND: &str = "moor.Revoked";
/// The record layout written today; a reader refuses any other.
pub const RECORD_FORMAT: u8 = 1;
/// The longest a token may live.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86400);

/// Why a stored record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("stored record {key} is empty")]
    Empty { key: ObjectKey },
    #[error("stored record {key} has format {found}, this build reads {RECORD_FORMAT}")]
    UnknownFormat { key: ObjectKey, found: u8 },
    #[error("stored record {key} does not decode")]
    Decode {
        key: ObjectKey,
        #[source]
        source: postcard::Error,
    },
    #[error("record {key} does not encode")]
    Encode {
        key: ObjectKey,
        #[source]
        source: postcard::Error,
    },
}

/// Why a join is refused. Each says what failed and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinRefusal {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("token {id} admits role {token_role}, but the joiner asked for {asked}")]
    WrongRole {
        id: String,
        token_role: Role,
        asked: Role,
    },
    #[error("{role} name {name} is already taken by another {role}")]
    NameTaken { role: Role, name: String },
    #[error("invalid join request: {reason}")]
    Invalid { reason: String },
}

impl JoinRefusal {
    /// The answer the joiner gets.
    pub fn to_api(&self) -> ApiError {
        let code = match self {
            JoinRefusal::Invalid { .. } => ErrorCode::Invalid,
            JoinRefusal::NameTaken { .. } => ErrorCode::Conflict { current: 0 },
            JoinRefusal::Token(_) | JoinRefusal::WrongRole { .. } => ErrorCode::Forbidden,
        };
        ApiError::new(code, self.to_string())
    }
}

/// Who took a (role, name), with the Raft id reserved for a controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub role: Role,
    pub name: String,
    pub raft_id: Option<NodeId>,
    /// The token it joined with (its public id).
    pub token_id: String,
    /// The public key its certificate was issued for: a joiner that lost the answer asks
    /// again with the same key and gets the same reservation (see [`is_repeat`]).
    pub public_key: Vec<u8>,
}

/// A certificate the controllers gave out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    pub role: Role,
    pub name: String,
    /// Seconds since the Unix epoch, by the issuing controller's clock.
    pub issued_at: u64,
}

/// A revoked certificate: whose it was and when it was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub role: Role,
    pub name: String,
    /// Seconds since the Unix epoch, by the revoking controller's clock.
    pub revoked_at: u64,
}

/// The certificate role of a join role.
pub fn role_of(role: JoinRole) -> Role {
    match role {
        JoinRole::Controller => Role::Controller,
        JoinRole::Agent => Role::Agent,
    }
}

/// The join role of a certificate role; admins do not join.
pub fn join_role(role: Role) -> Option<JoinRole> {
    match role {
        Role::Controller => Some(JoinRole::Controller),
        Role::Agent => Some(JoinRole::Agent),
        Role::Admin => None,
    }
}

/// The key of a token's record.
pub fn token_key(id: &str) -> ObjectKey {
    ObjectKey::new(TOKEN_KIND, "", id)
}

/// The key of a (role, name) reservation.
pub fn identity_key(role: Role, name: &str) -> ObjectKey {
    ObjectKey::new(IDENTITY_KIND, role.as_str(), name)
}

/// The namespace of (role, name)'s issued certificates.
pub fn issued_namespace(role: Role, name: &str) -> String {
    format!("{}/{name}", role.as_str())
}

/// The key of one issued certificate.
pub fn issued_key(role: Role, name: &str, serial: &[u8]) -> ObjectKey {
    ObjectKey::new(
        ISSUED_KIND,
        issued_namespace(role, name),
        serial_hex(serial),
    )
}

/// The key of a revoked serial.
pub fn revoked_key(serial: &[u8]) -> ObjectKey {
    ObjectKey::new(REVOKED_KIND, "", serial_hex(serial))
}

/// A serial as lowercase hex, as keys and messages show it.
pub fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch of `at` (0 before it).
pub fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The key of a taken Raft id; zero-padded so keys sort by id.
pub fn raft_id_key(id: NodeId) -> ObjectKey {
    ObjectKey::new(RAFT_ID_KIND, "", format!("{id:020}"))
}

/// The stored bytes of a record.
pub fn encode<T: Serialize>(key: &ObjectKey, record: &T) -> Result<Vec<u8>, RecordError> {
    let mut bytes = vec![RECORD_FORMAT];
    postcard::to_io(record, &mut bytes).map_err(|source| RecordError::Encode {
        key: key.clone(),
        source,
    })?;
    Ok(bytes)
}

/// The record in stored `bytes`.
pub fn decode<T: DeserializeOwned>(key: &ObjectKey, bytes: &[u8]) -> Result<T, RecordError> {
    let (&format, body) = bytes
        .split_first()
        .ok_or_else(|| RecordError::Empty { key: key.clone() })?;
    if format != RECORD_FORMAT {
        return Err(RecordError::UnknownFormat {
            key: key.clone(),
            found: format,
        });
    }
    postcard::from_bytes(body).map_err(|source| RecordError::Decode {
        key: key.clone(),
        source,
    })
}

/// What `moor token ls` shows of a record: no secret, not even its hash.
pub fn info(record: &TokenRecord) -> Option<TokenInfo> {
    Some(TokenInfo {
        id: record.id.clone(),
        role: join_role(record.role)?,
        // Rounded up: a listing must not show a token as expired while it still works.
        expires_at: record
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        uses_left: record.uses_left,
    })
}

/// Checks a join request against its token's record (`None`: no such token) at `now`, by
/// the controller's clock. The token's own checks come first, so a wrong secret learns
/// nothing about the role.
pub fn check_token(
    record: Option<&TokenRecord>,
    request: &JoinRequest,
    now: SystemTime,
) -> Result<(), JoinRefusal> {
    let Some(record) = record else {
        return Err(TokenError::Unknown {
            id: request.token_id.chars().take(32).collect(),
        }
        .into());
    };
    record.verify(&request.token_id, &request.secret, now)?;
    let asked = role_of(request.role);
    if record.role != asked {
        return Err(JoinRefusal::WrongRole {
            id: record.id.clone(),
            token_role: record.role,
            asked,
        });
    }
    Ok(())
}

/// Checks that (`role`, `name`) is free: no reservation, and for a controller no member of
/// the group (the first controller, made by `--init`, has no reservation) with the name.
pub fn check_name(
    role: Role,
    name: &str,
    reserved: Option<&IdentityRecord>,
    member_names: &[String],
) -> Result<(), JoinRefusal> {
    wire::identity::validate_name(name).map_err(|e| JoinRefusal::Invalid {
        reason: e.to_string(),
    })?;
    let taken =
        reserved.is_some() || (role == Role::Controller && member_names.iter().any(|m| m == name));
    if taken {
        return Err(JoinRefusal::NameTaken {
            role,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Whether `request` repeats the join that made `reserved` (same token, secret, role, name
/// and public key; the answer was lost on the way): it is answered again, without using
/// the token again. Only the holder of the secret and of the key's private half gains from
/// it, and a certificate for the same key is what it already had.
pub fn is_repeat(
    reserved: &IdentityRecord,
    record: &TokenRecord,
    request: &JoinRequest,
    now: SystemTime,
) -> bool {
    let again = TokenRecord {
        uses_left: 1,
        ..record.clone()
    };
    reserved.token_id == request.token_id
        && reserved.role == role_of(request.role)
        && reserved.name == request.name
        && reserved.public_key == request.public_key
        && again
            .verify(&request.token_id, &request.secret, now)
            .is_ok()
}

/// The next Raft id: above every member's and every reserved one, so an id is never used
/// for a second controller (even one that joined and never came up).
pub fn next_raft_id(members: &[NodeId], reserved: &[NodeId]) -> NodeId {
    members
        .iter()
        .chain(reserved)
        .copied()
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

/// The record after one more join with it.
pub fn used_once(record: &TokenRecord) -> TokenRecord {
    TokenRecord {
        uses_left: record.uses_left.saturating_sub(1),
        ..record.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{Fingerprint, JoinToken};

    const HOUR: Duration = Duration::from_secs(3600);

    fn token(role: Role, uses: u32) -> (JoinToken, TokenRecord, SystemTime) {
        let now = SystemTime::now();
        let (token, record) =
            JoinToken::generate(Fingerprint([1; 32]), role, now, HOUR, uses).unwrap();
        (token, record, now)
    }

    fn request(token: &JoinToken, role: JoinRole, name: &str) -> JoinRequest {
        JoinRequest {
            token_id: token.id.clone(),
            secret: token.secret().to_vec(),
            role,
            name: name.into(),
            public_key: vec![4; 65],
            advertise: None,
        }
    }

    #[test]
    fn a_good_token_admits_its_role_only() {
        let (token, record, now) = token(Role::Controller, 1);
        let ok = request(&token, JoinRole::Controller, "ctl-2");
        check_token(Some(&record), &ok, now).unwrap();
        let agent = request(&token, JoinRole::Agent, "edge-1");
        let err = check_token(Some(&record), &agent, now).unwrap_err();
        assert!(matches!(err, JoinRefusal::WrongRole { .. }), "{err}");
        assert!(err.to_string().contains("admits role controller"), "{err}");
        assert_eq!(err.to_api().code, ErrorCode::Forbidden);
    }

    #[test]
    fn unknown_wrong_secret_expired_and_used_up_tokens_are_refused() {
        let (token, record, now) = token(Role::Agent, 1);
        let req = request(&token, JoinRole::Agent, "edge-1");
        assert!(matches!(
            check_token(None, &req, now),
            Err(JoinRefusal::Token(TokenError::Unknown { .. }))
        ));
        let mut wrong = req.clone();
        wrong.secret[0] ^= 1;
        assert!(matches!(
            check_token(Some(&record), &wrong, now),
            Err(JoinRefusal::Token(TokenError::Mismatch { .. }))
        ));
        let err = check_token(Some(&record), &req, now + 2 * HOUR).unwrap_err();
        assert_eq!(err.to_string(), format!("token {} expired", token.id));
        let used = used_once(&record);
        assert_eq!(used.uses_left, 0);
        let err = check_token(Some(&used), &req, now).unwrap_err();
        assert!(err.to_string().contains("no uses left"), "{err}");
        // Saturates instead of wrapping around to four billion uses.
        assert_eq!(used_once(&used).uses_left, 0);
        // A hostile, long id is cut in the answer.
        let mut long = req;
        long.token_id = "x".repeat(10_000);
        let err = check_token(None, &long, now).unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
    }

    #[test]
    fn names_taken_by_a_reservation_or_a_member_are_refused() {
        let members = vec!["ctl-1".to_string()];
        check_name(Role::Controller, "ctl-2", None, &members).unwrap();
        let err = check_name(Role::Controller, "ctl-1", None, &members).unwrap_err();
        assert_eq!(
            err.to_string(),
            "controller name ctl-1 is already taken by another controller"
        );
        // Agents and controllers have separate names.
        check_name(Role::Agent, "ctl-1", None, &members).unwrap();
        let reserved = IdentityRecord {
            role: Role::Agent,
            name: "edge-1".into(),
            raft_id: None,
            token_id: "00".into(),
            public_key: vec![4; 65],
        };
        assert!(matches!(
            check_name(Role::Agent, "edge-1", Some(&reserved), &members),
            Err(JoinRefusal::NameTaken { .. })
        ));
        let err = check_name(Role::Agent, "Bad_Name", None, &members).unwrap_err();
        assert_eq!(err.to_api().code, ErrorCode::Invalid);
    }

    #[test]
    fn only_the_same_joiner_repeats_a_join() {
        let (token, record, now) = token(Role::Controller, 1);
        let req = request(&token, JoinRole::Controller, "ctl-2");
        let reserved = IdentityRecord {
            role: Role::Controller,
            name: "ctl-2".into(),
            raft_id: Some(2),
            token_id: token.id.clone(),
            public_key: req.public_key.clone(),
        };
        let used = used_once(&record);
        assert!(is_repeat(&reserved, &used, &req, now));
        let mut other_key = req.clone();
        other_key.public_key[1] ^= 1;
        assert!(!is_repeat(&reserved, &used, &other_key, now));
        let mut wrong_secret = req.clone();
        wrong_secret.secret[0] ^= 1;
        assert!(!is_repeat(&reserved, &used, &wrong_secret, now));
        assert!(!is_repeat(&reserved, &used, &req, now + 2 * HOUR));
    }

    #[test]
    fn raft_ids_are_never_reused() {
        assert_eq!(next_raft_id(&[], &[]), 1);
        assert_eq!(next_raft_id(&[1], &[]), 2);
        assert_eq!(next_raft_id(&[1, 2], &[5]), 6);
        assert_eq!(next_raft_id(&[u64::MAX], &[]), u64::MAX);
        assert!(raft_id_key(2) < raft_id_key(10));
    }

    #[test]
    fn records_round_trip_and_garbage_is_an_error_naming_the_key() {
        let (_, record, _) = token(Role::Agent, 3);
        let key = token_key(&record.id);
        let bytes = encode(&key, &record).unwrap();
        assert_eq!(decode::<TokenRecord>(&key, &bytes).unwrap(), record);
        assert!(matches!(
            decode::<TokenRecord>(&key, b""),
            Err(RecordError::Empty { .. })
        ));
        assert!(matches!(
            decode::<TokenRecord>(&key, b"\x09"),
            Err(RecordError::UnknownFormat { found: 9, .. })
        ));
        let err = decode::<TokenRecord>(&key, b"\x01\xff").unwrap_err();
        assert!(err.to_string().contains("moor.Token"), "{err}");
        let shown = info(&record).unwrap();
        assert_eq!(shown.uses_left, 3);
        assert_eq!(shown.role, JoinRole::Agent);
    }
}
