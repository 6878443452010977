//! What `moor controller --init` writes before the first controller starts, and what
//! every later start reads back: the cluster CA, this controller's identity, the admin
//! credential file.
//!
//! ```text
//! DATA_DIR/
//!   pki/ca.pem, ca.key            the cluster CA (key 0600; controllers only)
//!   pki/controller.pem, .key      this controller's chain and key
//!   controller/member.json        its Raft id, name, listen and advertised addresses
//!   controller/raft.redb          Raft log and state (see `raft`)
//!   admin.conf                    an admin credential file (0600), also copied to
//!                                 ~/.moor/config when that does not exist
//! ```
//!
//! Owns: making and reading those files, refusing to initialise over an existing
//! cluster. Does not own: Raft (the caller initialises the group), joining (a later
//! `--join` gets its certificate from a running controller).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use wire::{ClientConfig, ClusterCa, ControllerEntry, NodeCert, Role};

/// How long the cluster CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86400);
/// How long member and admin certificates are valid (renewed long before, later).
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 86400);
pub(crate) const MEMBER_FILE: &str = "member.json";
const MAX_MEMBER_FILE: u64 = 64 * 1024;

/// Errors of bootstrapping. Each names the file or the setting.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "{path}: a cluster is already initialised here (remove the data directory to start a new one)"
    )]
    AlreadyInitialised { path: PathBuf },
    #[error("{path}: not initialised (run `moor controller --init` or `--join` first)")]
    NotInitialised { path: PathBuf },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "--advertise {addr}: an unspecified address cannot be dialled; give the address other boxes reach this one at"
    )]
    Unspecified { addr: SocketAddr },
    #[error(transparent)]
    Identity(#[from] wire::IdentityError),
    #[error(transparent)]
    Config(#[from] wire::ConfigError),
}

/// Who this controller is in the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Its Raft node id.
    pub id: u64,
    /// Its node name (in its certificate).
    pub name: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Where the others dial it.
    pub advertise: SocketAddr,
}

/// What `--init` was given.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub name: String,
    pub listen: SocketAddr,
    /// Defaults to `listen` (which must then be a specific address).
    pub advertise: Option<SocketAddr>,
    /// Where to copy the admin credentials if nothing is there (`~/.moor/config`).
    pub user_config: Option<PathBuf>,
    pub now: SystemTime,
}

/// What `--init` wrote.
#[derive(Debug, Clone)]
pub struct Initialised {
    pub member: Member,
    pub admin_config: PathBuf,
    /// The user config written, if there was none.
    pub user_config: Option<PathBuf>,
}

/// A controller's files, read at start.
#[derive(Debug)]
pub struct Identity {
    pub member: Member,
    pub ca: ClusterCa,
    pub node: NodeCert,
}

/// The directory of the CA and this controller's certificate.
pub fn pki(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

/// The default place of the secrets key (`--secrets-key` moves it).
pub fn secrets_key(data_dir: &Path) -> PathBuf {
    pki(data_dir).join(crate::sealing::KEY_FILE)
}

/// The directory of this controller's Raft storage.
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("controller")
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let path = path.to_path_buf();
    move |source| BootstrapError::Io {
        action,
        path,
        source,
    }
}

/// Makes the CA, this controller's identity (Raft id 1) and the admin credentials.
pub fn init(options: &InitOptions) -> Result<Initialised, BootstrapError> {
    let member_path = raft_dir(&options.data_dir).join(MEMBER_FILE);
    for existing in [member_path.clone(), pki(&options.data_dir).join("ca.pem")] {
        if existing.exists() {
            return Err(BootstrapError::AlreadyInitialised { path: existing });
        }
    }
    wire::identity::validate_name(&options.name)?;
    let advertise = options.advertise.unwrap_or(options.listen);
    if advertise.ip().is_unspecified() {
        return Err(BootstrapError::Unspecified { addr: advertise });
    }
    for dir in [pki(&options.data_dir), raft_dir(&options.data_dir)] {
        create_private_dir(&dir)?;
    }
    let ca = ClusterCa::create(options.now, CA_VALIDITY)?;
    let node = ca.issue(Role::Controller, &options.name, options.now, CERT_VALIDITY)?;
    let admin = ca.issue(Role::Admin, "admin", options.now, CERT_VALIDITY)?;
    let member = Member {
        id: 1,
        name: options.name.clone(),
        listen: options.listen,
        advertise,
    };
    ca.save(&pki(&options.data_dir))?;
    node.save(&pki(&options.data_dir), "controller")?;
    let admin_config = options.data_dir.join("admin.conf");
    let config = ClientConfig {
        controllers: vec![ControllerEntry {
            name: member.name.clone(),
            address: advertise,
        }],
        ca: ca.cert().clone(),
        identity: admin.identity()?,
        node: admin,
    };
    config.save(&admin_config)?;
    let user_config = match &options.user_config {
        Some(path) if !path.exists() => {
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            config.save(path)?;
            Some(path.clone())
        }
        _ => None,
    };
    // Written last: its presence means the rest is complete.
    let text = serde_json::to_vec_pretty(&member).unwrap_or_default();
    write_file(&member_path, &text)?;
    Ok(Initialised {
        member,
        admin_config,
        user_config,
    })
}

/// Reads a controller's identity at start.
pub fn load(data_dir: &Path) -> Result<Identity, BootstrapError> {
    let member_path = raft_dir(data_dir).join(MEMBER_FILE);
    let bytes = match std::fs::metadata(&member_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BootstrapError::NotInitialised { path: member_path });
        }
        Err(e) => return Err(io("inspect", &member_path)(e)),
        Ok(m) if m.len() > MAX_MEMBER_FILE => {
            return Err(BootstrapError::Corrupt {
                path: member_path,
                reason: format!("{} bytes, larger than a member record can be", m.len()),
            });
        }
        Ok(_) => std::fs::read(&member_path).map_err(io("read", &member_path))?,
    };
    let member: Member = serde_json::from_slice(&bytes).map_err(|e| BootstrapError::Corrupt {
        path: member_path.clone(),
        reason: e.to_string(),
    })?;
    let ca = ClusterCa::load(&pki(data_dir))?;
    let node = NodeCert::load(&pki(data_dir), "controller")?;
    let identity = node.identity()?;
    if identity.role != Role::Controller || identity.name != member.name {
        return Err(BootstrapError::Corrupt {
            path: pki(data_dir).join("controller.pem"),
            reason: format!(
                "names {} {}, but {} says this is controller {}",
                identity.role,
                identity.name,
                member_path.display(),
                member.name
            ),
        });
    }
    Ok(Identity { member, ca, node })
}

/// The CA as the join service hands it out: the stored files' text with the loaded CA.
pub fn ca_files(
    data_dir: &Path,
    ca: ClusterCa,
    secrets_key: Option<Vec<u8>>,
) -> Result<crate::join::CaFiles, BootstrapError> {
    let read = |file: &str| {
        let path = pki(data_dir).join(file);
        std::fs::read_to_string(&path).map_err(io("read", &path))
    };
    Ok(crate::join::CaFiles {
        cert_pem: read("ca.pem")?,
        key_pem: read("ca.key")?,
        secrets_key,
        ca,
    })
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), BootstrapError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BootstrapError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn options(dir: &Path) -> InitOptions {
        InitOptions {
            data_dir: dir.join("data"),
            name: "ctl-1".into(),
            listen: "0.0.0.0:7443".parse().unwrap(),
            advertise: Some("10.0.0.5:7443".parse().unwrap()),
            user_config: Some(dir.join("home/.moor/config")),
            now: SystemTime::now(),
        }
    }

    #[test]
    fn init_writes_what_a_start_and_an_admin_need() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let done = init(&opts).unwrap();
        assert_eq!(done.member.id, 1);
        assert_eq!(done.member.advertise, "10.0.0.5:7443".parse().unwrap());
        let identity = load(&opts.data_dir).unwrap();
        assert_eq!(identity.member, done.member);
        assert_eq!(identity.node.identity().unwrap().role, Role::Controller);
        let admin = ClientConfig::load(&done.admin_config).unwrap();
        assert_eq!(admin.identity.role, Role::Admin);
        assert_eq!(admin.controllers[0].name, "ctl-1");
        assert_eq!(admin.ca, *identity.ca.cert());
        let user = done.user_config.unwrap();
        assert_eq!(
            std::fs::read(&user).unwrap(),
            std::fs::read(&done.admin_config).unwrap()
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&opts.data_dir.join("pki")), 0o700);
        assert_eq!(mode(&opts.data_dir.join("pki/ca.key")), 0o600);
        assert_eq!(mode(&done.admin_config), 0o600);
        // A second init refuses and changes nothing.
        let before = std::fs::read(opts.data_dir.join("pki/ca.pem")).unwrap();
        assert!(matches!(
            init(&opts),
            Err(BootstrapError::AlreadyInitialised { .. })
        ));
        assert_eq!(
            std::fs::read(opts.data_dir.join("pki/ca.pem")).unwrap(),
            before
        );
    }

    #[test]
    fn an_existing_user_config_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let user = opts.user_config.clone().unwrap();
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(&user, "mine").unwrap();
        let done = init(&opts).unwrap();
        assert_eq!(done.user_config, None);
        assert_eq!(std::fs::read_to_string(&user).unwrap(), "mine");
    }

    #[test]
    fn bad_settings_and_broken_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.advertise = None;
        let err = init(&opts).unwrap_err().to_string();
        assert!(err.contains("unspecified"), "{err}");
        opts.advertise = Some("10.0.0.5:7443".parse().unwrap());
        opts.name = "Not_A_Name".into();
        assert!(
            init(&opts)
                .unwrap_err()
                .to_string()
                .contains("invalid node name")
        );
        assert!(
            !opts.data_dir.join("pki").exists(),
            "a refused init wrote files"
        );

        let opts = options(dir.path());
        let err = load(&opts.data_dir).unwrap_err();
        assert!(
            matches!(err, BootstrapError::NotInitialised { .. }),
            "{err}"
        );
        init(&opts).unwrap();
        let member = raft_dir(&opts.data_dir).join(MEMBER_FILE);
        std::fs::write(&member, b"\xff{garbage").unwrap();
        let err = load(&opts.data_dir).unwrap_err().to_string();
        assert!(err.starts_with(&member.display().to_string()), "{err}");
        std::fs::write(&member, vec![b' '; MAX_MEMBER_FILE as usize + 1]).unwrap();
        assert!(
            load(&opts.data_dir)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
        std::fs::write(
            &member,
            br#"{"id":1,"name":"other","listen":"0.0.0.0:1","advertise":"10.0.0.1:1"}"#,
        )
        .unwrap();
        let err = load(&opts.data_dir).unwrap_err().to_string();
        assert!(err.contains("says this is controller other"), "{err}");
    }
}
