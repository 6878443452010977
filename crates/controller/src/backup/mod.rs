//! Backups of a cluster: `moor backup save FILE` and `moor backup restore FILE`.
//!
//! A backup is everything needed to start the cluster again on new boxes: every record of
//! the replicated state (objects, join token hashes, name reservations, taken Raft ids,
//! revocations — whatever the state machine holds) at one applied index and revision, and
//! the cluster CA (`ca.pem`, `ca.key`) and secrets key (`secrets.key`, when present) of
//! the controller that answered. It holds the CA key, so it is always encrypted with a
//! passphrase, and only an admin certificate may take one.
//!
//! ```text
//! moor backup save FILE                          controller (any member)
//!   Request::Backup ─────────────────────────────► service: admin? ─► read barrier
//!   ◄── BackupStarted, Data…, End{bytes, sha256} ── one read txn ─► archive (stream)
//!   save: check ─► format: encrypt ─► FILE (atomic, 0600)
//!
//! moor backup restore FILE --data-dir D --name N --listen A
//!   restore: format: decrypt + authenticate ─► archive: check ─► D/pki, D/controller
//!   (raft::seed: a one-voter group at the backup's revision), D/admin.conf
//! moor controller --data-dir D ─► serves the restored state; others join with tokens
//! ```
//!
//! Layout: `archive` (the plaintext entries), `format` (the encrypted file), `service`
//! (the controller's side), `save` (the client's side), `restore` (a new data directory).

pub mod archive;
pub mod format;
pub mod restore;
pub mod save;
pub mod service;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

pub use format::{BackupFileError, BackupReader, BackupWriter, Params};
pub use restore::{RestoreError, RestoreOptions, Restored, restore};
pub use save::{SaveError, Saved, save};
pub use service::BackupService;

/// The CA certificate in `DATA_DIR/pki`.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key in `DATA_DIR/pki`.
pub const CA_KEY_FILE: &str = "ca.key";
/// The key that encrypts Secrets at rest, in `DATA_DIR/pki`, when the cluster has one.
pub const SECRETS_KEY_FILE: &str = "secrets.key";
/// The largest `pki` file a backup carries.
pub const MAX_PKI_FILE: u64 = 1024 * 1024;
