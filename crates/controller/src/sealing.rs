//! Secrets encrypted at rest: every Secret's stored bytes are sealed with the cluster's
//! secrets key (AES-256-GCM) before they enter the Raft log, so the log, the state
//! machine, snapshots and backups all hold ciphertext.
//!
//! Owns: the key file (32 random bytes, 0600, `DATA_DIR/pki/secrets.key` or
//! `--secrets-key PATH`), the sealed layout, and the process's installed key. Does not
//! own: which objects are sealed (`api::codec` seals Secrets) or handing the key to a
//! joining controller (`join`, with the CA key).
//!
//! ```text
//! sealed = [ key id: 4 bytes = SHA-256(key)[..4] ][ nonce: 12 random bytes ][ AES-256-GCM ]
//!          associated data: "Kind/namespace/name" of the object, so a sealed value moved
//!          to another object's key does not open
//! ```
//!
//! What it protects: the controller's state files (`controller/raft.redb`, snapshots)
//! copied off the box — a disk image, a pulled SD card, a file copied for debugging —
//! hold no readable secret as long as the key file is not copied with them; keep it on
//! another partition or in a sealed store with `--secrets-key`. What it does not: an
//! attacker who is root on a running controller can read the key and every secret (so
//! can the API's admins and the agents a secret is for). Backups carry the key, which is
//! why they are encrypted with a passphrase.
//!
//! The key is process-wide (one cluster per process) and installed once at start: the
//! object codec is called from many places that have no other way to reach it.

use std::path::Path;
use std::sync::OnceLock;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The key file's name under `pki/`.
pub const KEY_FILE: &str = "secrets.key";
const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 4;

/// Why a key could not be made, read, or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the system random generator failed")]
    Random,
    #[error("{path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("sealed with key {found}, this controller holds key {held}")]
    OtherKey { found: String, held: String },
    #[error("sealed but no secrets key is installed on this controller")]
    NoKey,
    #[error("sealed value does not open: damaged, or moved from another object")]
    Damaged,
}

/// The cluster's secrets key.
pub struct SecretsKey {
    raw: [u8; KEY_LEN],
    key: LessSafeKey,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &hex(&self.id))
            .finish_non_exhaustive()
    }
}

static INSTALLED: OnceLock<SecretsKey> = OnceLock::new();

/// Makes `key` the process's key; a second call keeps the first (and says so).
pub fn install(key: SecretsKey) -> bool {
    INSTALLED.set(key).is_ok()
}

/// The process's key, if one was installed.
pub fn installed() -> Option<&'static SecretsKey> {
    INSTALLED.get()
}

impl SecretsKey {
    /// A new random key.
    pub fn generate() -> Result<SecretsKey, SealError> {
        let mut raw = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| SealError::Random)?;
        SecretsKey::from_bytes(&raw).ok_or(SealError::Random)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<SecretsKey> {
        let raw: [u8; KEY_LEN] = bytes.try_into().ok()?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).ok()?);
        let digest = ring::digest::digest(&ring::digest::SHA256, &raw);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        Some(SecretsKey { raw, key, id })
    }

    /// The 32 bytes, to hand to a joining controller or put in a backup.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The key's id as sealed values carry it (hex), for messages.
    pub fn id(&self) -> String {
        hex(&self.id)
    }

    /// Reads a key file, or `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<SecretsKey>, SealError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(key_file(path, e.to_string())),
        };
        SecretsKey::from_bytes(&bytes)
            .map(Some)
            .ok_or_else(|| key_file(path, format!("{} bytes, expected {KEY_LEN}", bytes.len())))
    }

    /// Writes the key file (0600, atomically); refuses to replace an existing one.
    pub fn save(&self, path: &Path) -> Result<(), SealError> {
        if path.exists() {
            return Err(key_file(
                path,
                "exists; refusing to replace a secrets key".into(),
            ));
        }
        crate::bootstrap::write_file(path, &self.raw).map_err(|e| key_file(path, e.to_string()))
    }

    /// Seals `plain` for the object named by `aad`.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut body,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + body.len());
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made for the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < KEY_ID_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Damaged);
        }
        let (id, rest) = sealed.split_at(KEY_ID_LEN);
        if id != self.id {
            return Err(SealError::OtherKey {
                found: hex(id),
                held: self.id(),
            });
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
            .map_err(|_| SealError::Damaged)?;
        Ok(plain.to_vec())
    }
}

fn key_file(path: &Path, reason: String) -> SealError {
    SealError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_with_the_key_and_the_object_they_were_made_for() {
        let key = SecretsKey::generate().unwrap();
        let sealed = key.seal("Secret/default/db", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open("Secret/default/db", &sealed).unwrap(), b"hunter2");
        // Two seals of the same value differ (random nonce).
        assert_ne!(sealed, key.seal("Secret/default/db", b"hunter2").unwrap());
        assert_eq!(
            key.open("Secret/default/other", &sealed),
            Err(SealError::Damaged)
        );
        let other = SecretsKey::generate().unwrap();
        assert!(matches!(
            other.open("Secret/default/db", &sealed),
            Err(SealError::OtherKey { .. })
        ));
        for cut in 0..sealed.len() {
            assert!(key.open("Secret/default/db", &sealed[..cut]).is_err());
        }
        for i in 0..sealed.len() {
            let mut bent = sealed.clone();
            bent[i] ^= 1;
            assert!(key.open("Secret/default/db", &bent).is_err(), "byte {i}");
        }
    }

    #[test]
    fn key_files_round_trip_and_bad_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        assert!(SecretsKey::load(&path).unwrap().is_none());
        let key = SecretsKey::generate().unwrap();
        key.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(SecretsKey::load(&path).unwrap().unwrap().id(), key.id());
        let err = SecretsKey::generate().unwrap().save(&path).unwrap_err();
        assert!(err.to_string().contains("refusing to replace"), "{err}");
        std::fs::write(&path, b"short").unwrap();
        let err = SecretsKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("5 bytes, expected 32"), "{err}");
    }
}
