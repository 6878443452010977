use super::*;
use crate::identity::ClusterCa;

const DAY: Duration = Duration::from_secs(86400);

fn now() -> UnixTime {
    UnixTime::now()
}

fn name(s: &str) -> ServerName<'static> {
    ServerName::try_from(s.to_owned()).unwrap()
}

#[test]
fn expectation_reads_role_and_optional_name() {
    assert_eq!(
        expectation(&name("controller.moor.invalid")),
        Some((Role::Controller, None))
    );
    assert_eq!(
        expectation(&name("c1.controller.moor.invalid")),
        Some((Role::Controller, Some("c1".into())))
    );
    assert_eq!(expectation(&name("c1.boss.moor.invalid")), None);
    assert_eq!(expectation(&name("example.com")), None);
}

#[test]
fn join_verifier_accepts_only_the_tokens_ca() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let other = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let server = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let any = name("controller.moor.invalid");

    let good = JoinVerifier::new(ca.fingerprint());
    good.verify_server_cert(&server.chain[0], &server.chain[1..], &any, &[], now())
        .unwrap();

    let wrong = JoinVerifier::new(other.fingerprint());
    assert!(
        wrong
            .verify_server_cert(&server.chain[0], &server.chain[1..], &any, &[], now())
            .is_err()
    );

    // A chain that names the right CA but whose leaf another CA signed.
    let forged = other
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    assert!(
        good.verify_server_cert(&forged.chain[0], &[ca.cert().clone()], &any, &[], now())
            .is_err()
    );

    // The right CA, but an agent's certificate: joins go to controllers only.
    let agent = ca.issue(Role::Agent, "a1", SystemTime::now(), DAY).unwrap();
    assert!(
        good.verify_server_cert(&agent.chain[0], &agent.chain[1..], &any, &[], now())
            .is_err()
    );
}

#[test]
fn role_verifier_checks_role_and_name() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let verifier = role_verifier(ca.cert(), &provider()).unwrap();
    let c1 = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let agent = ca.issue(Role::Agent, "c1", SystemTime::now(), DAY).unwrap();
    let check = |cert: &NodeCert, server: &str| {
        verifier
            .verify_server_cert(&cert.chain[0], &cert.chain[1..], &name(server), &[], now())
            .is_ok()
    };
    assert!(check(&c1, "c1.controller.moor.invalid"));
    assert!(check(&c1, "controller.moor.invalid"));
    assert!(!check(&c1, "c2.controller.moor.invalid"));
    assert!(!check(&agent, "controller.moor.invalid"));
    assert!(!check(&agent, "c1.controller.moor.invalid"));
}

#[test]
fn verify_cert_rejects_expired_and_foreign() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let other = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let long_ago = SystemTime::now() - 10 * DAY;
    let expired = ca.issue(Role::Agent, "a1", long_ago, DAY).unwrap();
    assert!(verify_cert(ca.cert(), &expired.chain[0], SystemTime::now()).is_err());
    // The same certificate was fine back then (notBefore backdated an hour).
    verify_cert(ca.cert(), &expired.chain[0], long_ago).unwrap();
    let foreign = other
        .issue(Role::Agent, "a1", SystemTime::now(), DAY)
        .unwrap();
    assert!(verify_cert(ca.cert(), &foreign.chain[0], SystemTime::now()).is_err());
}
