use super::*;
use std::os::unix::fs::PermissionsExt;

const DAY: Duration = Duration::from_secs(86400);

#[test]
fn issued_certificate_names_role_and_name() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let node = ca
        .issue(Role::Agent, "edge-01", SystemTime::now(), DAY)
        .unwrap();
    let id = node.identity().unwrap();
    assert_eq!(id.role, Role::Agent);
    assert_eq!(id.name, "edge-01");
    assert!(!id.serial.is_empty());
    assert_eq!(node.chain[1], *ca.cert());
}

#[test]
fn serials_are_random() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let a = ca.issue(Role::Agent, "a", SystemTime::now(), DAY).unwrap();
    let b = ca.issue(Role::Agent, "a", SystemTime::now(), DAY).unwrap();
    assert_ne!(a.identity().unwrap().serial, b.identity().unwrap().serial);
}

#[test]
fn names_are_validated() {
    for bad in ["", "-a", "a-", "A", "a.b", "a b", &"x".repeat(64), "é"] {
        assert!(validate_name(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["a", "edge-01", &"x".repeat(63)] {
        validate_name(good).unwrap();
    }
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    assert!(matches!(
        ca.issue(Role::Admin, "evil.agent", SystemTime::now(), DAY),
        Err(IdentityError::InvalidName { .. })
    ));
}

#[test]
fn dns_names_parse_back_only_when_well_formed() {
    assert_eq!(
        parse_dns_name("c1.controller.moor.invalid"),
        Some((Role::Controller, "c1".to_owned()))
    );
    assert_eq!(parse_dns_name("c1.root.moor.invalid"), None);
    assert_eq!(parse_dns_name("a.b.agent.moor.invalid"), None);
    assert_eq!(parse_dns_name("agent.moor.invalid"), None);
    assert_eq!(parse_dns_name("c1.controller.moor.example"), None);
}

#[test]
fn fingerprint_round_trips_through_hex() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let fp = ca.fingerprint();
    let text = fp.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
    assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    assert!("AB".repeat(32).parse::<Fingerprint>().is_err());
    assert!("ab".parse::<Fingerprint>().is_err());
}

#[test]
fn ca_and_node_cert_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    ca.save(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let loaded = ClusterCa::load(dir.path()).unwrap();
    assert_eq!(loaded.fingerprint(), ca.fingerprint());

    // A certificate issued by the reloaded CA verifies under the original certificate.
    let node = loaded
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    node.save(dir.path(), "node").unwrap();
    let again = NodeCert::load(dir.path(), "node").unwrap();
    assert_eq!(again.chain, node.chain);
    assert_eq!(again.key.secret_der(), node.key.secret_der());
    let mode = std::fs::metadata(dir.path().join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    crate::tls::check_chain(&ca, &again.chain[0]).unwrap();
}

#[test]
fn issue_for_public_key_keeps_the_private_key_on_the_node() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let key = KeyPair::generate().unwrap();
    let chain = ca
        .issue_for_public_key(
            Role::Agent,
            "n1",
            key.public_key_raw(),
            SystemTime::now(),
            DAY,
        )
        .unwrap();
    assert_eq!(identity_of(&chain[0]).unwrap().name, "n1");
    assert!(
        ca.issue_for_public_key(Role::Agent, "n1", b"garbage", SystemTime::now(), DAY)
            .is_err()
    );
}

#[test]
fn pem_encoding_matches_known_base64() {
    let pem = pem_encode("X", b"hello!?");
    assert_eq!(pem, "-----BEGIN X-----\naGVsbG8hPw==\n-----END X-----\n");
}
