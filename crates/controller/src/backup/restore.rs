//! `moor backup restore`: a new data directory for the first controller of a new group,
//! holding the backed-up state, like `etcdutl snapshot restore`.
//!
//! Owns: reading and checking the whole backup before anything is written, what of the
//! old group is kept and what is not, and moving the result into place. Does not own: the
//! store's layout (`raft::seed`), the file format (`format`, `archive`), running the
//! controller (`moor controller --data-dir D` afterwards, as after `--init`).
//!
//! ```text
//! D holds no pki/, controller/, admin.conf? ─► decrypt + check everything (in memory)
//!   ─► D/.restore.tmp/ pki/ca.pem, ca.key [, secrets.key]   (the backed-up files)
//!                      pki/controller.pem, .key              (new, for --name)
//!                      controller/raft.redb, snapshot.bin    (state at the revision)
//!                      controller/member.json                (written last)
//!                      admin.conf                            (new admin certificate)
//!   ─► rename pki/, admin.conf, controller/ into D ─► ~/.moor/config if absent
//! ```
//!
//! # What survives
//!
//! Every record, byte for byte with its revisions: objects keep their uid,
//! resourceVersion and creationTimestamp, and the revision counter goes on from the
//! backup's. Join tokens survive (a token made before the backup still joins until it
//! expires or is used up; `moor token rm` what should not), and so do agents' name
//! reservations and every taken Raft id. The CA survives, so agents' certificates stay
//! valid.
//!
//! The controller group does not: the new group is this one controller, under a Raft id
//! above every id the old group used, and the old controllers' name reservations are
//! dropped so they (or new boxes) can join again under their names with new tokens. An
//! old controller that still runs holds a valid certificate of the same CA: stop the old
//! group before restoring.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wire::{ClientConfig, ClusterCa, ControllerEntry, Role};

use super::archive::{ArchiveError, ArchiveHeader, ArchiveParser, Entry};
use super::format::{BackupFileError, BackupReader};
use super::{CA_CERT_FILE, CA_KEY_FILE, SECRETS_KEY_FILE};
use crate::bootstrap::{self, BootstrapError, CERT_VALIDITY, MEMBER_FILE, Member};
use crate::raft::{self, NodeInfo, ObjectKey, StoredObject};
use crate::tokens::{self, IDENTITY_KIND, RAFT_ID_KIND};

/// The staging directory inside the data directory.
const STAGING: &str = ".restore.tmp";

/// What `moor backup restore` was given.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub file: PathBuf,
    pub passphrase: Vec<u8>,
    pub data_dir: PathBuf,
    pub name: String,
    pub listen: SocketAddr,
    /// Defaults to `listen` (which must then be a specific address).
    pub advertise: Option<SocketAddr>,
    /// `~/.moor/config`, written if absent.
    pub user_config: Option<PathBuf>,
    pub now: SystemTime,
}

/// What the restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    pub member: Member,
    pub admin_config: PathBuf,
    pub user_config: Option<PathBuf>,
    /// The backup's header: revision, when, from which controller.
    pub header: ArchiveHeader,
    /// Records restored.
    pub records: u64,
    /// The old group's controller names (members and reservations), free again; sorted.
    pub released: Vec<String>,
    /// Whether a secrets encryption key was restored.
    pub secrets_key: bool,
}

/// Why a restore failed. Nothing is left in the data directory when it does.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "{path} exists: the data directory already holds a controller (restore into an empty or new directory)"
    )]
    Occupied { path: PathBuf },
    #[error(
        "--advertise {addr}: an unspecified address cannot be dialled; give the address other boxes reach this one at"
    )]
    Unspecified { addr: SocketAddr },
    #[error("--name: {0}")]
    Name(#[source] wire::IdentityError),
    #[error("open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: BackupFileError,
    },
    #[error("{path}: the backup's content is damaged: {source}")]
    Archive {
        path: PathBuf,
        #[source]
        source: ArchiveError,
    },
    #[error("{path}: the backup holds no {name}")]
    Missing { path: PathBuf, name: &'static str },
    #[error("{path}: the backup holds a file {name:?} this moor does not know")]
    UnknownFile { path: PathBuf, name: String },
    #[error("{path}: the backed-up cluster CA does not load: {source}")]
    Ca {
        path: PathBuf,
        #[source]
        source: wire::IdentityError,
    },
    #[error("write the restored state into {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: Box<raft::SeedError>,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Identity(#[from] wire::IdentityError),
    #[error(transparent)]
    Config(#[from] wire::ConfigError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.to_path_buf();
    move |source| RestoreError::Io {
        action,
        path,
        source,
    }
}

/// A checked backup, held in memory.
#[derive(Debug)]
struct Contents {
    header: ArchiveHeader,
    files: BTreeMap<String, Vec<u8>>,
    records: Vec<(ObjectKey, StoredObject)>,
    released: Vec<String>,
    /// The highest Raft id the old group used or reserved.
    max_raft_id: u64,
}

/// Restores the backup `options.file` into `options.data_dir`.
pub fn restore(options: &RestoreOptions) -> Result<Restored, RestoreError> {
    let data_dir = &options.data_dir;
    for taken in [
        bootstrap::pki(data_dir),
        bootstrap::raft_dir(data_dir),
        data_dir.join("admin.conf"),
    ] {
        if taken.exists() {
            return Err(RestoreError::Occupied { path: taken });
        }
    }
    wire::identity::validate_name(&options.name).map_err(RestoreError::Name)?;
    let advertise = options.advertise.unwrap_or(options.listen);
    if advertise.ip().is_unspecified() {
        return Err(RestoreError::Unspecified { addr: advertise });
    }
    let contents = read(&options.file, &options.passphrase)?;
    let created = !data_dir.exists();
    bootstrap::create_private_dir(data_dir)?;
    let staging = data_dir.join(STAGING);
    if staging.exists() {
        // Left by a restore that was interrupted: ours to remove.
        std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
    }
    let mut moved = Vec::new();
    let result = write(options, contents, advertise, &staging, &mut moved);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        for path in &moved {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
        if created {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    result
}

/// Decrypts and checks the whole file; nothing is written.
fn read(path: &Path, passphrase: &[u8]) -> Result<Contents, RestoreError> {
    let input = File::open(path).map_err(|source| RestoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let file_error = |source| RestoreError::File {
        path: path.to_path_buf(),
        source,
    };
    let archive_error = |source| RestoreError::Archive {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BackupReader::open(input, passphrase).map_err(file_error)?;
    let mut parser = ArchiveParser::new();
    let mut header = None;
    let mut files = BTreeMap::new();
    let mut records = Vec::new();
    let mut released = Vec::new();
    let mut max_raft_id = 0u64;
    while let Some(chunk) = reader.next_chunk().map_err(file_error)? {
        for entry in parser.feed(chunk).map_err(archive_error)? {
            match entry {
                Entry::Header(h) => {
                    max_raft_id = h.members.iter().map(|m| m.id).fold(max_raft_id, u64::max);
                    header = Some(h);
                }
                Entry::File { name, data } => {
                    if ![CA_CERT_FILE, CA_KEY_FILE, SECRETS_KEY_FILE].contains(&name.as_str()) {
                        return Err(RestoreError::UnknownFile {
                            path: path.to_path_buf(),
                            name: name.chars().take(64).collect(),
                        });
                    }
                    files.insert(name, data);
                }
                Entry::Record(r) => {
                    let key = ObjectKey::new(r.kind, r.namespace, r.name);
                    if key.kind == RAFT_ID_KIND
                        && let Ok(id) = key.name.parse::<u64>()
                    {
                        max_raft_id = max_raft_id.max(id);
                    }
                    if key.kind == IDENTITY_KIND && key.namespace == Role::Controller.as_str() {
                        if let Ok(record) = tokens::decode::<tokens::IdentityRecord>(&key, &r.value)
                        {
                            max_raft_id = max_raft_id.max(record.raft_id.unwrap_or(0));
                        }
                        released.push(key.name);
                        continue;
                    }
                    records.push((
                        key,
                        StoredObject {
                            value: r.value,
                            create_revision: r.create_revision,
                            mod_revision: r.mod_revision,
                        },
                    ));
                }
                Entry::End { .. } => {}
            }
        }
    }
    parser.finish().map_err(archive_error)?;
    let header = header.ok_or(RestoreError::Archive {
        path: path.to_path_buf(),
        source: ArchiveError::Incomplete,
    })?;
    for name in [CA_CERT_FILE, CA_KEY_FILE] {
        if !files.contains_key(name) {
            return Err(RestoreError::Missing {
                path: path.to_path_buf(),
                name,
            });
        }
    }
    Ok(Contents {
        header,
        files,
        records,
        released,
        max_raft_id,
    })
}

fn write(
    options: &RestoreOptions,
    contents: Contents,
    advertise: SocketAddr,
    staging: &Path,
    moved: &mut Vec<PathBuf>,
) -> Result<Restored, RestoreError> {
    let pki = staging.join("pki");
    let raft_dir = staging.join("controller");
    for dir in [&pki, &raft_dir] {
        bootstrap::create_private_dir(dir)?;
    }
    for (name, data) in &contents.files {
        bootstrap::write_file(&pki.join(name), data)?;
    }
    let ca = ClusterCa::load(&pki).map_err(|source| RestoreError::Ca {
        path: options.file.clone(),
        source,
    })?;
    let member = Member {
        id: contents.max_raft_id.saturating_add(1),
        name: options.name.clone(),
        listen: options.listen,
        advertise,
    };
    let records = contents.records.len() as u64;
    let header_names: Vec<String> = contents
        .header
        .members
        .iter()
        .map(|m| m.name.clone())
        .collect();
    raft::seed(
        &raft_dir,
        raft::SeedState {
            objects: contents.records,
            revision: contents.header.revision,
            id: member.id,
            info: NodeInfo {
                name: member.name.clone(),
                address: advertise.to_string(),
            },
        },
    )
    .map_err(|source| RestoreError::Store {
        path: raft_dir.clone(),
        source: Box::new(source),
    })?;
    let node = ca.issue(Role::Controller, &member.name, options.now, CERT_VALIDITY)?;
    node.save(&pki, "controller")?;
    let admin = ca.issue(Role::Admin, "admin", options.now, CERT_VALIDITY)?;
    let config = ClientConfig {
        controllers: vec![ControllerEntry {
            name: member.name.clone(),
            address: advertise,
        }],
        ca: ca.cert().clone(),
        identity: admin.identity()?,
        node: admin,
    };
    config.save(&staging.join("admin.conf"))?;
    // Last: its presence means the rest is complete (as after `--init`).
    let text = serde_json::to_vec_pretty(&member).unwrap_or_default();
    bootstrap::write_file(&raft_dir.join(MEMBER_FILE), &text)?;

    let data_dir = &options.data_dir;
    for name in ["pki", "admin.conf", "controller"] {
        let to = data_dir.join(name);
        std::fs::rename(staging.join(name), &to).map_err(io("move into place", &to))?;
        moved.push(to);
    }
    std::fs::remove_dir(staging).map_err(io("remove", staging))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", data_dir))?;

    let user_config = match &options.user_config {
        Some(path) if !path.exists() => {
            if let Some(parent) = path.parent() {
                bootstrap::create_private_dir(parent)?;
            }
            config.save(path)?;
            Some(path.clone())
        }
        _ => None,
    };
    let mut released: Vec<String> = contents
        .released
        .into_iter()
        .chain(header_names)
        .filter(|name| *name != member.name)
        .collect();
    released.sort();
    released.dedup();
    Ok(Restored {
        member,
        admin_config: data_dir.join("admin.conf"),
        user_config,
        header: contents.header,
        records,
        released,
        secrets_key: contents.files.contains_key(SECRETS_KEY_FILE),
    })
}
