//! Tests of the join service over a real single-node openraft group: tokens made, listed
//! and removed by admins only; joins that race for one use or one name; hostile bytes;
//! admission only under the reserved id.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use proto::api::{ErrorCode, JoinRequest, JoinResponse, JoinRole, Joined, Request, Response};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use tokio::sync::broadcast;
use wire::{ClusterCa, JoinToken, Role, TlsClock};

use super::{CaFiles, Group, JoinService};
use crate::api::tests::RaftCluster;
use crate::api::{Applied, Caller, Cluster, ClusterError};
use crate::raft::{self, Member, NodeId, NodeInfo, StateReader};

/// The test group: one real Raft node, and a membership list the test controls.
struct TestGroup {
    inner: Arc<RaftCluster>,
    members: Mutex<Vec<Member>>,
    added: Mutex<Vec<(NodeId, NodeInfo)>>,
}

impl Cluster for TestGroup {
    async fn write(&self, request: raft::Request) -> Result<raft::Response, ClusterError> {
        self.inner.write(request).await
    }
    async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.inner.read_barrier().await
    }
    fn reader(&self) -> StateReader {
        self.inner.reader()
    }
    fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.inner.subscribe()
    }
}

impl Group for TestGroup {
    fn members(&self) -> Vec<Member> {
        self.members.lock().unwrap().clone()
    }
    async fn add_member(&self, id: NodeId, info: NodeInfo) -> Result<(), ClusterError> {
        self.added.lock().unwrap().push((id, info.clone()));
        self.members.lock().unwrap().push(Member {
            id,
            info,
            voter: true,
            leader: false,
        });
        Ok(())
    }
    async fn remove_member(&self, id: NodeId) -> Result<(), ClusterError> {
        self.members.lock().unwrap().retain(|m| m.id != id);
        Ok(())
    }
}

fn member(id: NodeId, name: &str) -> Member {
    Member {
        id,
        info: NodeInfo {
            name: name.into(),
            address: format!("127.0.0.1:{}", 7000 + id),
        },
        voter: true,
        leader: id == 1,
    }
}

async fn service() -> (Arc<TestGroup>, Arc<JoinService<TestGroup>>) {
    let group = Arc::new(TestGroup {
        inner: RaftCluster::start().await,
        members: Mutex::new(vec![member(1, "ctl-1")]),
        added: Mutex::new(Vec::new()),
    });
    let ca = ClusterCa::create(SystemTime::now(), Duration::from_secs(86400)).unwrap();
    let files = CaFiles {
        ca,
        cert_pem: "ca pem".into(),
        key_pem: "ca key".into(),
        secrets_key: Some(vec![9; 32]),
    };
    let service = JoinService::new(Arc::clone(&group), files, TlsClock::system());
    (group, Arc::new(service))
}

fn admin() -> Caller {
    Caller {
        role: Role::Admin,
        name: "admin".into(),
    }
}

async fn create(service: &JoinService<TestGroup>, role: JoinRole, uses: u32) -> JoinToken {
    let request = Request::CreateToken {
        role,
        ttl_secs: 3600,
        uses,
    };
    match service.handle_member(&admin(), request).await {
        Response::Token { token } => token.parse().unwrap(),
        other => panic!("{other:?}"),
    }
}

fn public_key() -> Vec<u8> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    pair.public_key().as_ref().to_vec()
}

fn request(token: &JoinToken, role: JoinRole, name: &str) -> JoinRequest {
    JoinRequest {
        token_id: token.id.clone(),
        secret: token.secret().to_vec(),
        role,
        name: name.into(),
        public_key: public_key(),
        advertise: (role == JoinRole::Controller).then(|| "127.0.0.1:7443".into()),
    }
}

async fn join(service: &JoinService<TestGroup>, request: &JoinRequest) -> Result<Joined, String> {
    let bytes = wire::frame::encode(request).unwrap();
    match service
        .handle_join("127.0.0.1:1".parse().unwrap(), &bytes)
        .await
    {
        JoinResponse::Joined(joined) => Ok(*joined),
        JoinResponse::Refused(e) => Err(e.message),
    }
}

#[tokio::test]
async fn a_controller_joins_with_a_certificate_an_id_and_the_ca() {
    let (_, service) = service().await;
    let token = create(&service, JoinRole::Controller, 1).await;
    let first = request(&token, JoinRole::Controller, "ctl-2");
    let joined = join(&service, &first).await.unwrap();
    assert_eq!(joined.raft_id, Some(2));
    // The same joiner again (its answer was lost): the same id, the token not used twice.
    let again = join(&service, &first).await.unwrap();
    assert_eq!(again.raft_id, Some(2));
    // Another key for the same name is another joiner.
    let mut other = first.clone();
    other.public_key = public_key();
    let err = join(&service, &other).await.unwrap_err();
    assert!(err.contains("no uses left"), "{err}");
    assert_eq!(joined.ca_key_pem.as_deref(), Some("ca key"));
    assert_eq!(joined.members.len(), 1);
    let leaf = rustls::pki_types::CertificateDer::from(joined.chain[0].clone());
    let identity = wire::identity::identity_of(&leaf).unwrap();
    assert_eq!(
        (identity.role, identity.name.as_str()),
        (Role::Controller, "ctl-2")
    );
    // The token is used up, and ls says so without a secret.
    let Response::Tokens(listed) = service.handle_member(&admin(), Request::ListTokens).await
    else {
        panic!("no listing");
    };
    assert_eq!(listed[0].uses_left, 0);
    let err = join(&service, &request(&token, JoinRole::Controller, "ctl-3"))
        .await
        .unwrap_err();
    assert!(err.contains("no uses left"), "{err}");
}

#[tokio::test]
async fn agents_get_no_ca_key_and_no_raft_id() {
    let (_, service) = service().await;
    let token = create(&service, JoinRole::Agent, 2).await;
    let joined = join(&service, &request(&token, JoinRole::Agent, "edge-1"))
        .await
        .unwrap();
    assert_eq!(joined.ca_key_pem, None);
    assert_eq!(joined.raft_id, None);
    let err = join(&service, &request(&token, JoinRole::Agent, "edge-1"))
        .await
        .unwrap_err();
    assert_eq!(err, "agent name edge-1 is already taken by another agent");
}

#[tokio::test]
async fn racing_joins_share_one_use_and_one_name() {
    let (_, service) = service().await;
    let one_use = create(&service, JoinRole::Controller, 1).await;
    let racers = (0..4).map(|i| {
        let service = Arc::clone(&service);
        let request = request(&one_use, JoinRole::Controller, &format!("ctl-{}", i + 10));
        tokio::spawn(async move { join(&service, &request).await })
    });
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(e.contains("no uses left"), "{e}"),
        }
    }
    assert_eq!(won, 1);

    let many = create(&service, JoinRole::Controller, 10).await;
    let racers = (0..4).map(|_| {
        let service = Arc::clone(&service);
        let request = request(&many, JoinRole::Controller, "ctl-same");
        tokio::spawn(async move { join(&service, &request).await })
    });
    let mut ids = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(joined) => ids.push(joined.raft_id),
            Err(e) => assert!(e.contains("already taken"), "{e}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    // Ids are never handed out twice: the next controller gets a fresh one.
    let next = join(&service, &request(&many, JoinRole::Controller, "ctl-next"))
        .await
        .unwrap();
    assert!(next.raft_id > ids[0], "{next:?} after {ids:?}");
}

#[tokio::test]
async fn bad_requests_are_clear_refusals() {
    let (_, service) = service().await;
    let token = create(&service, JoinRole::Controller, 5).await;
    for bytes in [&b""[..], b"\xff\xff\xff", &[0u8; 300][..]] {
        let answer = service
            .handle_join("127.0.0.1:1".parse().unwrap(), bytes)
            .await;
        let JoinResponse::Refused(e) = answer else {
            panic!("garbage joined");
        };
        assert_eq!(e.code, ErrorCode::Invalid, "{e}");
    }
    let mut req = request(&token, JoinRole::Controller, "ctl-2");
    req.public_key = vec![1, 2, 3];
    let err = join(&service, &req).await.unwrap_err();
    assert!(err.contains("P-256"), "{err}");
    let mut req = request(&token, JoinRole::Controller, "ctl-2");
    req.advertise = Some("0.0.0.0:7443".into());
    let err = join(&service, &req).await.unwrap_err();
    assert!(err.contains("unspecified"), "{err}");
    let mut req = request(&token, JoinRole::Controller, "ctl-2");
    req.advertise = None;
    assert!(join(&service, &req).await.is_err());
    let mut req = request(&token, JoinRole::Controller, "ctl-2");
    req.secret[0] ^= 1;
    let err = join(&service, &req).await.unwrap_err();
    assert!(err.contains("secret does not match"), "{err}");
    let mut req = request(&token, JoinRole::Controller, "ctl-2");
    req.token_id = "ffffffffffff".into();
    let err = join(&service, &req).await.unwrap_err();
    assert_eq!(err, "unknown token ffffffffffff");
    // None of that used the token.
    let Response::Tokens(listed) = service.handle_member(&admin(), Request::ListTokens).await
    else {
        panic!("no listing");
    };
    assert_eq!(listed[0].uses_left, 5);
}

#[tokio::test]
async fn only_admins_manage_tokens_and_only_the_joiner_adds_itself() {
    let (group, service) = service().await;
    let agent = Caller {
        role: Role::Agent,
        name: "edge-1".into(),
    };
    for request in [
        Request::ListTokens,
        Request::CreateToken {
            role: JoinRole::Agent,
            ttl_secs: 60,
            uses: 1,
        },
        Request::DeleteToken { id: "00".into() },
    ] {
        let Response::Error(e) = service.handle_member(&agent, request).await else {
            panic!("an agent managed tokens");
        };
        assert_eq!(e.code, ErrorCode::Forbidden);
    }
    let token = create(&service, JoinRole::Controller, 2).await;
    let joined = join(&service, &request(&token, JoinRole::Controller, "ctl-2"))
        .await
        .unwrap();
    let id = joined.raft_id.unwrap();
    let add = |id| Request::AddController {
        id,
        address: "127.0.0.1:7443".into(),
    };
    let ctl = |name: &str| Caller {
        role: Role::Controller,
        name: name.into(),
    };
    // Another controller, another id, an admin: refused.
    for (caller, id) in [(ctl("ctl-1"), id), (ctl("ctl-2"), id + 1), (admin(), id)] {
        let Response::Error(e) = service.handle_member(&caller, add(id)).await else {
            panic!("{caller} added {id}");
        };
        assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    }
    assert!(group.added.lock().unwrap().is_empty());
    let answer = service.handle_member(&ctl("ctl-2"), add(id)).await;
    assert_eq!(answer, Response::ControllerAdded { id });
    // Asking again is a no-op.
    let answer = service.handle_member(&ctl("ctl-2"), add(id)).await;
    assert_eq!(answer, Response::ControllerAdded { id });
    let added = group.added.lock().unwrap().clone();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].1.name, "ctl-2");
    // Token ids are deleted once.
    let rm = Request::DeleteToken {
        id: token.id.clone(),
    };
    assert!(matches!(
        service.handle_member(&admin(), rm.clone()).await,
        Response::TokenDeleted { .. }
    ));
    let Response::Error(e) = service.handle_member(&admin(), rm).await else {
        panic!("deleted twice");
    };
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn controllers_are_listed_and_removed_by_admins_but_never_the_last_voter() {
    let (group, service) = service().await;
    let remove = |name: &str| Request::RemoveController { name: name.into() };
    // The only voter stays.
    let Response::Error(e) = service.handle_member(&admin(), remove("ctl-1")).await else {
        panic!("removed the only voter");
    };
    assert!(e.message.contains("only voter"), "{e}");
    group.members.lock().unwrap().push(member(2, "ctl-2"));
    let Response::Controllers(listed) = service
        .handle_member(&admin(), Request::ListControllers)
        .await
    else {
        panic!("no controller list");
    };
    assert_eq!(listed.len(), 2);
    // Agents may list but not remove; unknown names are not found.
    let agent = Caller {
        role: Role::Agent,
        name: "edge-1".into(),
    };
    let Response::Error(e) = service.handle_member(&agent, remove("ctl-2")).await else {
        panic!("an agent removed a controller");
    };
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(matches!(
        service
            .handle_member(&agent, Request::ListControllers)
            .await,
        Response::Controllers(_)
    ));
    let Response::Error(e) = service.handle_member(&admin(), remove("ctl-9")).await else {
        panic!("removed a controller that is not there");
    };
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
    assert_eq!(
        service.handle_member(&admin(), remove("ctl-2")).await,
        Response::ControllerRemoved {
            id: 2,
            name: "ctl-2".into()
        }
    );
    assert_eq!(group.members().len(), 1);
}

fn agent(name: &str) -> Caller {
    Caller {
        role: Role::Agent,
        name: name.into(),
    }
}

fn serial_of(chain: &[Vec<u8>]) -> Vec<u8> {
    let leaf = rustls::pki_types::CertificateDer::from(chain[0].clone());
    wire::identity::identity_of(&leaf).unwrap().serial
}

#[tokio::test]
async fn removing_a_node_revokes_every_certificate_it_was_given() {
    let (group, service) = service().await;
    let token = create(&service, JoinRole::Agent, 2).await;
    let joined = join(&service, &request(&token, JoinRole::Agent, "edge-1"))
        .await
        .unwrap();
    let first = serial_of(&joined.chain);
    let Response::Certificate { chain } = service
        .handle_member(
            &agent("edge-1"),
            Request::RenewCertificate {
                public_key: public_key(),
            },
        )
        .await
    else {
        panic!("no renewal");
    };
    let renewed = serial_of(&chain);
    assert_ne!(first, renewed);
    let leaf = rustls::pki_types::CertificateDer::from(chain[0].clone());
    let identity = wire::identity::identity_of(&leaf).unwrap();
    assert_eq!(
        (identity.role, identity.name.as_str()),
        (Role::Agent, "edge-1")
    );
    // Another node's certificates are not touched by the removal.
    let other = join(&service, &request(&token, JoinRole::Agent, "edge-2"))
        .await
        .unwrap();
    let reader = group.reader();
    assert!(!super::is_revoked(&reader, &first));

    // Only an admin removes nodes.
    let refused = service
        .handle_member(
            &agent("edge-2"),
            Request::RemoveNode {
                name: "edge-1".into(),
            },
        )
        .await;
    assert!(
        matches!(&refused, Response::Error(e) if e.code == ErrorCode::Forbidden),
        "{refused:?}"
    );
    let removed = service
        .handle_member(
            &admin(),
            Request::RemoveNode {
                name: "edge-1".into(),
            },
        )
        .await;
    assert_eq!(
        removed,
        Response::NodeRemoved {
            name: "edge-1".into(),
            revoked: 2
        }
    );
    assert!(super::is_revoked(&reader, &first));
    assert!(super::is_revoked(&reader, &renewed));
    assert!(!super::is_revoked(&reader, &serial_of(&other.chain)));
    // Gone: a second removal is NotFound, and a renewal by the old agent is refused.
    let again = service
        .handle_member(
            &admin(),
            Request::RemoveNode {
                name: "edge-1".into(),
            },
        )
        .await;
    assert!(
        matches!(&again, Response::Error(e) if e.code == ErrorCode::NotFound),
        "{again:?}"
    );
    let renewal = service
        .handle_member(
            &agent("edge-1"),
            Request::RenewCertificate {
                public_key: public_key(),
            },
        )
        .await;
    assert!(
        matches!(&renewal, Response::Error(e) if e.code == ErrorCode::Forbidden && e.message.contains("join again")),
        "{renewal:?}"
    );
    // The name is free again for a new join (with new certificates, not revoked).
    let token = create(&service, JoinRole::Agent, 1).await;
    let back = join(&service, &request(&token, JoinRole::Agent, "edge-1"))
        .await
        .unwrap();
    assert!(!super::is_revoked(&reader, &serial_of(&back.chain)));
}

#[tokio::test]
async fn a_renewal_needs_a_good_key_and_keeps_the_callers_role() {
    let (_, service) = service().await;
    let bad = service
        .handle_member(
            &admin(),
            Request::RenewCertificate {
                public_key: vec![4; 10],
            },
        )
        .await;
    assert!(
        matches!(&bad, Response::Error(e) if e.code == ErrorCode::Invalid),
        "{bad:?}"
    );
    let Response::Certificate { chain } = service
        .handle_member(
            &admin(),
            Request::RenewCertificate {
                public_key: public_key(),
            },
        )
        .await
    else {
        panic!("no renewal for the admin");
    };
    let leaf = rustls::pki_types::CertificateDer::from(chain[0].clone());
    let identity = wire::identity::identity_of(&leaf).unwrap();
    assert_eq!(
        (identity.role, identity.name.as_str()),
        (Role::Admin, "admin")
    );
}
