//! Cluster identity: the CA, node certificates and how a certificate names its holder.
//!
//! Owns: making the cluster CA, issuing leaf certificates for a role and a node name,
//! reading (role, name, serial) back from a verified certificate, the CA fingerprint,
//! and PEM files on disk. Does not own: who may get which name (the controller's join
//! flow), revocation lists (a hook in `server`), or time (callers pass `now`, see
//! `clock::effective_now`).
//!
//! Naming scheme: a leaf certificate carries exactly one DNS subject alternative name
//! `<name>.<role>.moor.invalid`, e.g. `edge-01.agent.moor.invalid`. `.invalid` is
//! reserved (RFC 2606), so the name can never collide with a real host, and standard
//! WebPKI name checks work on it: a client connects to controller `c1` with the server
//! name `c1.controller.moor.invalid`, whatever its address.
//!
//! ```text
//! ClusterCa::create ──► ca.pem + ca.key (0600)
//!        │ issue(role, name, now, validity)
//!        ▼
//! NodeCert { chain: [leaf, ca], key } ──► node.pem + node.key (0600)
//!        │ TLS handshake (tls.rs)
//!        ▼
//! identity_of(peer leaf) ──► CertIdentity { role, name, serial }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::fsutil::write_atomic;

/// The suffix shared by every name in a moor certificate.
pub const NAME_SUFFIX: &str = "moor.invalid";
/// How far `notBefore` is set back, so a peer whose clock is a little behind accepts it.
pub const BACKDATE: Duration = Duration::from_secs(3600);
const CA_COMMON_NAME: &str = "moor cluster CA";

/// Errors of identity handling.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A node name that is not a lowercase DNS label.
    #[error(
        "invalid node name {name:?}: expected 1-63 of [a-z0-9-], not starting or ending with '-'"
    )]
    InvalidName { name: String },
    /// A role string that is not controller, agent or admin.
    #[error("unknown role {role:?}: expected controller, agent or admin")]
    UnknownRole { role: String },
    /// rcgen refused to make a key or a certificate.
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    /// A certificate could not be parsed as X.509.
    #[error("parsing certificate: {source}")]
    ParseCertificate { source: webpki::Error },
    /// A certificate has no `<name>.<role>.moor.invalid` name, or more than one.
    #[error("certificate carries {found} moor names, expected exactly one")]
    NameCount { found: usize },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A PEM file held no usable item of the expected kind.
    #[error("{path}: no {what} in PEM")]
    Pem { path: PathBuf, what: &'static str },
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
    /// A public key that is not an uncompressed P-256 point.
    #[error("public key of {len} bytes is not an uncompressed P-256 point")]
    PublicKey { len: usize },
    /// A fingerprint string is not 64 hex digits.
    #[error("invalid fingerprint: expected 64 hex digits")]
    InvalidFingerprint,
}

/// What a certificate holder is in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// A member of the controller group.
    Controller,
    /// A node agent.
    Agent,
    /// An operator's `moor` command line.
    Admin,
}

impl Role {
    /// The label used in certificate names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "controller" => Ok(Role::Controller),
            "agent" => Ok(Role::Agent),
            "admin" => Ok(Role::Admin),
            _ => Err(IdentityError::UnknownRole {
                role: s.chars().take(32).collect(),
            }),
        }
    }
}

/// Checks that `name` is a lowercase DNS label (so it fits in a certificate name).
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::InvalidName {
            name: name.chars().take(80).collect(),
        })
    }
}

/// The DNS name a certificate for (`role`, `name`) carries: `<name>.<role>.moor.invalid`.
pub fn dns_name(role: Role, name: &str) -> Result<String, IdentityError> {
    validate_name(name)?;
    Ok(format!("{name}.{role}.{NAME_SUFFIX}"))
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The holder's role.
    pub role: Role,
    /// The holder's node name.
    pub name: String,
    /// The certificate's serial number (big-endian bytes), for revocation.
    pub serial: Vec<u8>,
}

/// Reads (role, name, serial) from a certificate.
///
/// This only parses: call it on a certificate the TLS layer has already verified against
/// the cluster CA (e.g. from `quinn::Connection::peer_identity`).
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<CertIdentity, IdentityError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|source| IdentityError::ParseCertificate { source })?;
    let mut found = Vec::new();
    for dns in parsed.valid_dns_names() {
        if let Some(parsed_name) = parse_dns_name(dns) {
            found.push(parsed_name);
        }
    }
    if found.len() != 1 {
        return Err(IdentityError::NameCount { found: found.len() });
    }
    let (role, name) = found.remove(0);
    Ok(CertIdentity {
        role,
        name,
        serial: parsed.serial().to_vec(),
    })
}

fn parse_dns_name(dns: &str) -> Option<(Role, String)> {
    let rest = dns.strip_suffix(NAME_SUFFIX)?.strip_suffix('.')?;
    let (name, role) = rest.split_once('.')?;
    let role = Role::from_str(role).ok()?;
    validate_name(name).ok()?;
    Some((role, name.to_owned()))
}

/// SHA-256 of a CA certificate's DER encoding; printed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(IdentityError::InvalidFingerprint);
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(IdentityError::InvalidFingerprint)?;
            let lo = hex_value(pair[1]).ok_or(IdentityError::InvalidFingerprint)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Fingerprint(out))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Fills `buf` from the system's secure random generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), IdentityError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| IdentityError::Random)
}

fn random_serial() -> Result<SerialNumber, IdentityError> {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)?;
    // A positive INTEGER with no leading zero byte: clear the sign bit, set the next one.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn generate<T>(what: &'static str, r: Result<T, rcgen::Error>) -> Result<T, IdentityError> {
    r.map_err(|source| IdentityError::Generate { what, source })
}

/// The parameters a CA is issued with. Rebuilt on load to make an `Issuer`: rcgen
/// needs only the subject name, the key-identifier method and the key usages, all fixed
/// here, so the rebuilt issuer matches the stored certificate (the invariant that lets us
/// avoid linking an X.509 parser).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// The cluster certificate authority: its certificate and signing key.
pub struct ClusterCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Makes a new CA valid from `now - BACKDATE` for `validity`.
    pub fn create(now: SystemTime, validity: Duration) -> Result<Self, IdentityError> {
        let key = generate("ca key", KeyPair::generate())?;
        let mut params = ca_params();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + validity).into();
        params.serial_number = Some(random_serial()?);
        let cert = generate("ca certificate", params.self_signed(&key))?;
        Ok(ClusterCa {
            cert: cert.der().clone(),
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate's fingerprint, as carried in join tokens.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// Issues a certificate and a fresh key for (`role`, `name`).
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        now: SystemTime,
        validity: Duration,
    ) -> Result<NodeCert, IdentityError> {
        let key = generate("node key", KeyPair::generate())?;
        let cert = self.sign(role, name, &key, now, validity)?;
        Ok(NodeCert {
            chain: vec![cert, self.cert.clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        })
    }

    /// Issues a certificate for a public key the joining node made itself, so the
    /// private key never leaves the node. `p256_public` is an uncompressed ECDSA P-256
    /// point (65 bytes, as `rcgen::KeyPair::public_key_raw` gives it). Returns the chain
    /// `[leaf, ca]`.
    pub fn issue_for_public_key(
        &self,
        role: Role,
        name: &str,
        p256_public: &[u8],
        now: SystemTime,
        validity: Duration,
    ) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
        if p256_public.len() != 65 || p256_public[0] != 0x04 {
            return Err(IdentityError::PublicKey {
                len: p256_public.len(),
            });
        }
        let public = P256PublicKey(p256_public);
        let cert = self.sign(role, name, &public, now, validity)?;
        Ok(vec![cert, self.cert.clone()])
    }

    fn sign(
        &self,
        role: Role,
        name: &str,
        public: &impl rcgen::PublicKeyData,
        now: SystemTime,
        validity: Duration,
    ) -> Result<CertificateDer<'static>, IdentityError> {
        let dns = dns_name(role, name)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, dns.clone());
        params.distinguished_name = dn;
        let san = generate("certificate name", dns.try_into())?;
        params.subject_alt_names = vec![SanType::DnsName(san)];
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + validity).into();
        params.serial_number = Some(random_serial()?);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every role is both: controllers dial each other for Raft, agents only dial, but
        // one kind of certificate keeps the rules simple.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = generate("node certificate", params.signed_by(public, &self.issuer))?;
        Ok(cert.der().clone())
    }

    /// Saves `ca.pem` (0644) and `ca.key` (0600) under `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        write_file(&dir.join("ca.pem"), pem_cert(&self.cert).as_bytes(), 0o644)?;
        let key = self.issuer.key().serialize_pem();
        write_file(&dir.join("ca.key"), key.as_bytes(), 0o600)
    }

    /// A CA from the text of `ca.pem` and `ca.key` (as a join answer carries them).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, IdentityError> {
        let bad = |what| IdentityError::Pem {
            path: PathBuf::from("(join answer)"),
            what,
        };
        let cert = load_certs_pem(cert_pem.as_bytes())
            .into_iter()
            .next()
            .ok_or(bad("certificate"))?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| bad("private key"))?;
        Ok(ClusterCa {
            cert,
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// Loads a CA saved by [`ClusterCa::save`].
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let cert = load_certs(&cert_path)?
            .into_iter()
            .next()
            .ok_or(IdentityError::Pem {
                path: cert_path,
                what: "certificate",
            })?;
        let key_pem = read_file(&key_path)?;
        let key_text = String::from_utf8_lossy(&key_pem);
        let key = KeyPair::from_pem(&key_text).map_err(|_| IdentityError::Pem {
            path: key_path,
            what: "private key",
        })?;
        Ok(ClusterCa {
            cert,
            issuer: Issuer::new(ca_params(), key),
        })
    }
}

/// A raw P-256 public key, in the shape rcgen signs for.
struct P256PublicKey<'a>(&'a [u8]);

impl rcgen::PublicKeyData for P256PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A node's certificate chain (`[leaf, ca]`) and private key.
pub struct NodeCert {
    /// Leaf first, then the CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identity = self.chain.first().map(identity_of);
        f.debug_struct("NodeCert")
            .field("identity", &identity)
            .finish_non_exhaustive()
    }
}

impl Clone for NodeCert {
    fn clone(&self) -> Self {
        NodeCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeCert {
    /// Who the leaf certificate names.
    pub fn identity(&self) -> Result<CertIdentity, IdentityError> {
        match self.chain.first() {
            Some(leaf) => identity_of(leaf),
            None => Err(IdentityError::NameCount { found: 0 }),
        }
    }

    /// Saves `<stem>.pem` (chain, 0644) and `<stem>.key` (0600) under `dir`, atomically.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(), IdentityError> {
        let chain: String = self.chain.iter().map(pem_cert).collect();
        write_file(&dir.join(format!("{stem}.pem")), chain.as_bytes(), 0o644)?;
        let key = pem_encode("PRIVATE KEY", self.key.secret_der());
        write_file(&dir.join(format!("{stem}.key")), key.as_bytes(), 0o600)
    }

    /// Loads a certificate saved by [`NodeCert::save`].
    pub fn load(dir: &Path, stem: &str) -> Result<Self, IdentityError> {
        let cert_path = dir.join(format!("{stem}.pem"));
        let chain = load_certs(&cert_path)?;
        if chain.is_empty() {
            return Err(IdentityError::Pem {
                path: cert_path,
                what: "certificate",
            });
        }
        let key_path = dir.join(format!("{stem}.key"));
        let key_pem = read_file(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| IdentityError::Pem {
            path: key_path,
            what: "private key",
        })?;
        Ok(NodeCert { chain, key })
    }
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let pem = read_file(path)?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| IdentityError::Pem {
            path: path.to_owned(),
            what: "certificate",
        })
}

/// The certificates in PEM text (unreadable blocks skipped).
pub fn load_certs_pem(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

fn pem_cert(cert: &CertificateDer<'_>) -> String {
    pem_encode("CERTIFICATE", cert.as_ref())
}

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    // Small enough to write here rather than link a base64 crate for it.
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_file(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    write_atomic(path, bytes, mode).map_err(|source| IdentityError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
