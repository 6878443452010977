//! The client credential file (`admin.conf`, `~/.moor/config`, `--config FILE`): which
//! controllers to ask, the cluster CA to trust, and the holder's certificate and key —
//! everything a `moor` command needs to reach the cluster, in one file, as a kubeconfig
//! is for kubectl.
//!
//! ```yaml
//! apiVersion: moor/v1
//! kind: ClientConfig
//! controllers:                 # tried in turn; refreshed from the membership
//!   - { name: ctl-1, address: "10.0.0.5:7443" }
//! ca: |                        # the cluster CA certificate (PEM)
//!   -----BEGIN CERTIFICATE-----
//! certificate: |               # the holder's chain, leaf first (PEM)
//! key: |                       # the holder's private key (PEM, PKCS#8)
//! ```
//!
//! Owns: the format, reading it strictly (size limit, unknown keys refused, every
//! certificate parsed, names checked) and writing it atomically with mode 0600 (it holds a
//! private key). Does not own: where it lives or when it is written (the CLI and the
//! controller's `--init` decide), or connecting (see [`crate::client`]).
//!
//! Addresses are `IP:port`: a static binary cannot resolve names through the system's
//! NSS, and controllers are verified by the name in their certificate, not by address.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientOptions, Target};
use crate::clock::TlsClock;
use crate::identity::{CertIdentity, IdentityError, NodeCert, identity_of, validate_name};

/// The largest credential file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
const API_VERSION: &str = "moor/v1";
const KIND: &str = "ClientConfig";

/// Errors reading or writing a credential file. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_CONFIG_BYTES} bytes, not a moor client config")]
    TooLarge { path: PathBuf },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("setting up a client: {reason}")]
    Client { reason: String },
}

/// One controller the file lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerEntry {
    /// Its node name, checked against its certificate.
    pub name: String,
    /// `IP:port` where it listens.
    pub address: SocketAddr,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileForm {
    api_version: String,
    kind: String,
    controllers: Vec<ControllerEntry>,
    ca: String,
    certificate: String,
    key: String,
}

/// A parsed, checked credential file.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The controllers, in the order to try them.
    pub controllers: Vec<ControllerEntry>,
    /// The cluster CA certificate.
    pub ca: CertificateDer<'static>,
    /// The holder's chain and key.
    pub node: NodeCert,
    /// Who the holder's certificate names.
    pub identity: CertIdentity,
}

impl ClientConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let file = std::fs::File::open(path).map_err(|source| ConfigError::Io {
            action: "open",
            path: path.to_owned(),
            source,
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ConfigError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            })?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        ClientConfig::parse(path, &bytes)
    }

    /// Parses and checks `bytes`, naming `path` in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<ClientConfig, ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_string(),
            reason,
        };
        let form: FileForm = serde_yaml_ng::from_slice(bytes).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if form.api_version != API_VERSION || form.kind != KIND {
            return Err(invalid(
                "apiVersion/kind",
                format!(
                    "expected {API_VERSION} {KIND}, found {:.40} {:.40}",
                    form.api_version, form.kind
                ),
            ));
        }
        if form.controllers.is_empty() {
            return Err(invalid("controllers", "lists no controller".into()));
        }
        for (i, c) in form.controllers.iter().enumerate() {
            validate_name(&c.name)
                .map_err(|e| invalid(&format!("controllers[{i}].name"), e.to_string()))?;
        }
        let ca = one_cert(&form.ca).ok_or_else(|| invalid("ca", "no PEM certificate".into()))?;
        let chain = CertificateDer::pem_slice_iter(form.certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("certificate", "not a PEM certificate chain".into()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| invalid("certificate", "no PEM certificate".into()))?;
        let identity =
            identity_of(leaf).map_err(|e: IdentityError| invalid("certificate", e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(form.key.as_bytes())
            .map_err(|_| invalid("key", "no PEM private key".into()))?;
        Ok(ClientConfig {
            controllers: form.controllers,
            ca,
            node: NodeCert { chain, key },
            identity,
        })
    }

    /// Writes the file atomically, mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let form = FileForm {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            controllers: self.controllers.clone(),
            ca: crate::identity::pem_encode("CERTIFICATE", self.ca.as_ref()),
            certificate: self
                .node
                .chain
                .iter()
                .map(|c| crate::identity::pem_encode("CERTIFICATE", c.as_ref()))
                .collect(),
            key: crate::identity::pem_encode("PRIVATE KEY", self.node.key.secret_der()),
        };
        let text = serde_yaml_ng::to_string(&form).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        crate::fsutil::write_atomic(path, text.as_bytes(), 0o600).map_err(|source| {
            ConfigError::Io {
                action: "write",
                path: path.to_owned(),
                source,
            }
        })
    }

    /// A client for the listed controllers with this file's certificate. Call inside a
    /// tokio runtime (the QUIC endpoint is bound to it).
    pub fn client(
        &self,
        options: ClientOptions,
        transport: &crate::endpoint::TransportOptions,
    ) -> Result<Client, ConfigError> {
        let fail = |reason: String| ConfigError::Client { reason };
        let tls = crate::tls::client_config(
            &self.ca,
            Some(&self.node),
            TlsClock::new(crate::clock::build_time(), None),
        )
        .map_err(|e| fail(e.to_string()))?;
        let bind = crate::endpoint::unspecified_like(
            self.controllers
                .first()
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.address),
        );
        let endpoint = crate::endpoint::client_endpoint(bind, tls, transport)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Client::new(endpoint, self.targets(), options))
    }

    /// Replaces the controller list of the file at `path` with `controllers`, and returns
    /// whether it wrote. Nothing is written when the file already lists the same
    /// controllers (in any order), so a client that learns nothing new leaves the file
    /// alone. The file is read again first and only its controller list changes, so
    /// credentials replaced since this process loaded it are kept; a symlink is followed and
    /// its target replaced atomically, mode 0600.
    pub fn save_controllers(
        path: &Path,
        controllers: &[ControllerEntry],
    ) -> Result<bool, ConfigError> {
        if controllers.is_empty() {
            return Ok(false);
        }
        let target = std::fs::canonicalize(path).map_err(|source| ConfigError::Io {
            action: "resolve",
            path: path.to_owned(),
            source,
        })?;
        let mut current = ClientConfig::load(&target)?;
        if same_controllers(&current.controllers, controllers) {
            return Ok(false);
        }
        current.controllers = controllers.to_vec();
        current.save(&target)?;
        Ok(true)
    }

    /// The controllers as client targets, each checked by its name.
    pub fn targets(&self) -> Vec<Target> {
        self.controllers
            .iter()
            .map(|c| Target {
                addr: c.address,
                name: Some(c.name.clone()),
            })
            .collect()
    }
}

/// Whether two controller lists name the same controllers at the same addresses, in any
/// order.
pub fn same_controllers(a: &[ControllerEntry], b: &[ControllerEntry]) -> bool {
    let key = |c: &ControllerEntry| (c.name.clone(), c.address);
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

fn one_cert(pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ClusterCa, Role};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    fn sample() -> (ClusterCa, ClientConfig) {
        let now = SystemTime::now();
        let ca = ClusterCa::create(now, Duration::from_secs(86400)).unwrap();
        let node = ca
            .issue(Role::Admin, "admin", now, Duration::from_secs(3600))
            .unwrap();
        let identity = node.identity().unwrap();
        let config = ClientConfig {
            controllers: vec![
                ControllerEntry {
                    name: "ctl-1".into(),
                    address: "10.0.0.5:7443".parse().unwrap(),
                },
                ControllerEntry {
                    name: "ctl-2".into(),
                    address: "[fd00::2]:7443".parse().unwrap(),
                },
            ],
            ca: ca.cert().clone(),
            node,
            identity,
        };
        (ca, config)
    }

    #[test]
    fn saved_files_load_back_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.conf");
        let (_, config) = sample();
        config.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = ClientConfig::load(&path).unwrap();
        assert_eq!(back.controllers, config.controllers);
        assert_eq!(back.ca, config.ca);
        assert_eq!(back.node.chain, config.node.chain);
        assert_eq!(back.identity.role, Role::Admin);
        assert_eq!(back.identity.name, "admin");
        let targets = back.targets();
        assert_eq!(targets[1].name.as_deref(), Some("ctl-2"));
        assert_eq!(targets[1].addr, "[fd00::2]:7443".parse().unwrap());
    }

    #[test]
    fn controller_lists_are_saved_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.conf");
        let (_, config) = sample();
        config.save(&path).unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();

        // The same controllers in another order: nothing is written.
        let mut reordered = config.controllers.clone();
        reordered.reverse();
        assert!(!ClientConfig::save_controllers(&link, &reordered).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        assert!(!ClientConfig::save_controllers(&link, &[]).unwrap());

        let mut more = config.controllers.clone();
        more.push(ControllerEntry {
            name: "ctl-3".into(),
            address: "10.0.0.7:7443".parse().unwrap(),
        });
        assert!(ClientConfig::save_controllers(&link, &more).unwrap());
        // The link still points at the file, which was replaced whole and stays private.
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = ClientConfig::load(&path).unwrap();
        assert_eq!(back.controllers, more);
        assert_eq!(back.node.chain, config.node.chain);
        assert!(!ClientConfig::save_controllers(&path, &more).unwrap());
    }

    #[test]
    fn hostile_or_wrong_files_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let (_, config) = sample();
        config.save(&path).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (good.replace("moor/v1", "v1"), "apiVersion/kind"),
            (
                good.replace("10.0.0.5:7443", "ctl.example:7443"),
                "controllers",
            ),
            (
                good.replace("name: ctl-1", "name: Ctl_1"),
                "controllers[0].name",
            ),
            (
                good.replacen("-----BEGIN CERTIFICATE-----", "-----BEGIN NOPE-----", 1),
                "ca",
            ),
            (good.replace("PRIVATE KEY", "PUBLIC KEY"), "key"),
            (format!("{good}extra: 1\n"), "unknown field"),
            ("[[[[[[[[".into(), ""),
            ("\u{0}\u{1}\u{2}".into(), ""),
            (String::new(), ""),
        ];
        for (text, needle) in cases {
            std::fs::write(&path, &text).unwrap();
            let err = ClientConfig::load(&path).unwrap_err().to_string();
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        let no_controllers = {
            let start = good.find("controllers:").unwrap();
            let end = good.find("ca:").unwrap();
            format!("{}controllers: []\n{}", &good[..start], &good[end..])
        };
        std::fs::write(&path, no_controllers).unwrap();
        let err = ClientConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("lists no controller"), "{err}");
        std::fs::write(&path, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert!(matches!(
            ClientConfig::load(&path),
            Err(ConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            ClientConfig::load(&dir.path().join("absent")),
            Err(ConfigError::Io { action: "open", .. })
        ));
    }
}
