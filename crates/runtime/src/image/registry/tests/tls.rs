//! HTTPS: a CA from `ca_file`, client certificates, `insecure_skip_verify`.

use ::tests::http::Pki;

use super::*;
use crate::image::registry::RegistryError;

fn https_client(server: &Server, yaml: &str) -> Registry {
    Registry::new(&server.authority(), options(yaml, false)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn https_needs_the_ca_from_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let server = serve_with(Some(pki.server_config(false)), registry_routes("app"));

    let e = https_client(&server, "").ping().expect_err("unknown CA");
    assert!(
        matches!(e, RegistryError::Connect { .. }) && !e.is_retryable(),
        "{e:?}"
    );

    let yaml = format!(
        "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
        server.authority(),
        pki.ca_file.display()
    );
    let reg = https_client(&server, &yaml);
    reg.ping().expect("ping over https");
    assert_eq!(
        reg.fetch_manifest(&reference(&server, "app:v1"))
            .expect("fetch")
            .bytes,
        MANIFEST
    );

    let skip = format!(
        "configs:\n  \"{}\":\n    tls: {{ insecure_skip_verify: true }}\n",
        server.authority()
    );
    https_client(&server, &skip)
        .ping()
        .expect("verification skipped when asked");
}

#[test]
fn client_certificates_are_sent_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let server = serve_with(Some(pki.server_config(true)), registry_routes("app"));
    let ca_only = format!(
        "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
        server.authority(),
        pki.ca_file.display()
    );
    assert!(
        https_client(&server, &ca_only).ping().is_err(),
        "the server demands a certificate"
    );
    let with_cert = format!(
        "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
        server.authority(),
        pki.ca_file.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    https_client(&server, &with_cert)
        .ping()
        .expect("ping with a client certificate");
    // A key that does not go with the certificate's file is an error naming the files.
    let swapped = format!(
        "configs:\n  \"{}\":\n    tls:\n      cert_file: {}\n      key_file: {}\n",
        server.authority(),
        pki.client_cert.display(),
        pki.ca_file.display()
    );
    let e = https_client(&server, &swapped).ping().expect_err("no key");
    assert!(
        matches!(e, RegistryError::Tls { .. }) && e.to_string().contains("key_file"),
        "{e}"
    );
}
