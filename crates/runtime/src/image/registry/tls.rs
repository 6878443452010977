//! TLS settings for one host: the system's roots plus the host's `ca_file`, a client
//! certificate when configured, and `insecure_skip_verify` only when set.
//!
//! rustls on the ring provider, passed explicitly (never the process-wide default). The
//! system roots are read once per client from the OS store (`rustls-native-certs`:
//! `/etc/ssl/certs`, `SSL_CERT_FILE`…), not compiled in. Files named by the
//! configuration are read and checked here, so a bad CA, certificate or key is an error
//! naming the host and the file, not a failed handshake.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use super::config::TlsFiles;
use super::error::RegistryError;

/// The largest PEM file read.
const MAX_PEM: u64 = 4 * 1024 * 1024;

/// The crypto provider every TLS connection of the client uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the OS's trusted roots. Unreadable entries are logged and skipped; none at all
/// is allowed (a host with a `ca_file` still works).
pub(crate) fn system_roots() -> Arc<Vec<Certificate<'static>>> {
    let found = rustls_native_certs::load_native_certs();
    for e in found.errors.iter().take(5) {
        tracing::warn!(error = %e, "reading the system's trusted certificates");
    }
    Arc::new(
        found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    )
}

/// The ureq TLS configuration for `host`.
pub(crate) fn tls_config(
    host: &str,
    files: Option<&TlsFiles>,
    system: &[Certificate<'static>],
) -> Result<TlsConfig, RegistryError> {
    let tls_error = |reason: String| RegistryError::Tls {
        host: host.to_string(),
        reason,
    };
    let mut roots: Vec<Certificate<'static>> = system.to_vec();
    let mut builder = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider());
    let Some(files) = files else {
        return Ok(builder.root_certs(RootCerts::from(roots)).build());
    };
    if let Some(path) = &files.ca_file {
        let certs = read_pem(host, path)?;
        if certs.is_empty() {
            return Err(tls_error(format!(
                "ca_file {}: no certificate in it",
                path.display()
            )));
        }
        let mut store = RootCertStore::empty();
        for c in &certs {
            store
                .add(CertificateDer::from(c.der().to_vec()))
                .map_err(|e| tls_error(format!("ca_file {}: {e}", path.display())))?;
        }
        roots.extend(certs);
    }
    if let (Some(cert_path), Some(key_path)) = (&files.cert_file, &files.key_file) {
        let chain = read_pem(host, cert_path)?;
        if chain.is_empty() {
            return Err(tls_error(format!(
                "cert_file {}: no certificate in it",
                cert_path.display()
            )));
        }
        let key_bytes = read_file(host, key_path)?;
        let no_key = || {
            tls_error(format!(
                "key_file {}: no private key in it",
                key_path.display()
            ))
        };
        let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| no_key())?;
        let key = PrivateKey::from_pem(&key_bytes).map_err(|_| no_key())?;
        check_client_cert(&chain, key_der).map_err(|e| {
            tls_error(format!(
                "cert_file {} with key_file {}: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    if files.insecure_skip_verify {
        tracing::warn!(
            host,
            "insecure_skip_verify: the server's certificate is not checked"
        );
        builder = builder.disable_verification(true);
    }
    Ok(builder.root_certs(RootCerts::from(roots)).build())
}

/// Builds a rustls client configuration with the pair, as ureq will, so that a key that
/// does not load is an error here rather than a panic inside the HTTP client.
fn check_client_cert(
    chain: &[Certificate<'static>],
    key: PrivateKeyDer<'static>,
) -> Result<(), rustls::Error> {
    let chain: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_root_certificates(RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map(|_| ())
}

/// A file named by the configuration, bounded.
fn read_file(host: &str, path: &Path) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM + 1).read_to_end(&mut bytes))
        .map_err(|source| RegistryError::File {
            step: "read TLS file",
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(RegistryError::Tls {
            host: host.into(),
            reason: format!("{}: larger than {MAX_PEM} bytes", path.display()),
        });
    }
    Ok(bytes)
}

/// The certificates of a PEM file (other items are skipped).
fn read_pem(host: &str, path: &Path) -> Result<Vec<Certificate<'static>>, RegistryError> {
    let bytes = read_file(host, path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(RegistryError::Tls {
                    host: host.into(),
                    reason: format!("{}: {e}", path.display()),
                });
            }
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_tls_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, b"\xff\xfe not pem at all").expect("write");
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let not_a_cert = dir.path().join("not-a-cert.pem");
        std::fs::write(
            &not_a_cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let missing = dir.path().join("missing.pem");
        for path in [&garbage, &broken, &not_a_cert, &missing] {
            let files = TlsFiles {
                ca_file: Some(path.clone()),
                ..TlsFiles::default()
            };
            let e = tls_config("h:1", Some(&files), &[]).expect_err("bad ca_file");
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
            let files = TlsFiles {
                cert_file: Some(path.clone()),
                key_file: Some(garbage.clone()),
                ..TlsFiles::default()
            };
            assert!(tls_config("h:1", Some(&files), &[]).is_err());
        }
        assert!(tls_config("h:1", None, &[]).is_ok());
    }
}
