//! The service behind `wire::serve`: real QUIC with mutual TLS on 127.0.0.1, certificates
//! from a fresh `ClusterCa`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use proto::api::{Consistency, ErrorCode, ObjectKey, Request, Response, WatchEvent};
use proto::resources::Kind;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wire::frame::{FrameError, FramedStream, codes};
use wire::{
    Client, ClientOptions, ClusterCa, Limits, ServeOptions, Target, TlsClock, TransportOptions,
};

use super::*;

const DAY: Duration = Duration::from_secs(86400);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn serve(ca: &ClusterCa, service: Arc<ApiService<RaftCluster>>) -> Server {
    serve_with(ca, service, ServeOptions::default())
}

fn serve_with(
    ca: &ClusterCa,
    service: Arc<ApiService<RaftCluster>>,
    options: ServeOptions,
) -> Server {
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let tls = wire::tls::server_config(ca.cert(), &cert, false, TlsClock::system()).unwrap();
    let endpoint = wire::server_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(wire::serve(endpoint, service, options, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

fn client(ca: &ClusterCa, server: &Server, role: Role, name: &str) -> Client {
    let cert = ca.issue(role, name, SystemTime::now(), DAY).unwrap();
    let tls = wire::tls::client_config(ca.cert(), Some(&cert), TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        call_timeout: DEADLINE,
        limits: Limits::default(),
    };
    let target = Target {
        addr: server.addr,
        name: Some("c1".into()),
    };
    Client::new(endpoint, vec![target], options)
}

async fn stop(server: Server) {
    let _ = server.stop.send(());
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .expect("server stops in time")
        .unwrap();
}

async fn recv(stream: &mut FramedStream) -> WatchEvent {
    tokio::time::timeout(DEADLINE, stream.recv::<WatchEvent>())
        .await
        .expect("a frame in time")
        .unwrap()
        .expect("the watch goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_and_a_watch_round_trip_over_quic() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let (_cluster, service) = super::service().await;
    let api = Arc::new(service);
    let server = serve(&ca, Arc::clone(&api));
    let ops = client(&ca, &server, Role::Admin, "ops");

    let request = wire::frame::encode(&Request::Watch {
        kind: Kind::ConfigMap,
        namespace: None,
        selector: Some("app=web".into()),
        from_revision: 0,
    })
    .unwrap();
    let mut watch = ops.open(&request).await.unwrap();

    let apply = Request::Apply {
        objects: vec![config_map("a", "default", "web", "1")],
        dry_run: false,
    };
    let response: Response = ops.call(&apply).await.unwrap();
    let Response::Applied { revision, .. } = response else {
        panic!("applied: {response:?}")
    };
    let WatchEvent::Added {
        object,
        revision: seen,
    } = recv(&mut watch).await
    else {
        panic!("added")
    };
    assert_eq!((object.metadata().name.as_str(), seen), ("a", revision));

    let get = Request::Get {
        key: ObjectKey {
            kind: Kind::ConfigMap,
            namespace: None,
            name: "a".into(),
        },
        consistency: Consistency::Linearizable,
    };
    let response: Response = ops.call(&get).await.unwrap();
    let Response::Object { object, .. } = response else {
        panic!("object: {response:?}")
    };
    assert_eq!(
        object.metadata().resource_version,
        Some(revision.to_string())
    );
    drop(watch);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_requests_get_an_error_answer_and_refused_watches_a_reset() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let (_cluster, service) = super::service().await;
    let server = serve(&ca, Arc::new(service));
    let ops = client(&ca, &server, Role::Admin, "ops");
    for garbage in [&b""[..], b"\xff\xff\xff\xff", b"\x09\x01\x02"] {
        let bytes = ops.call_bytes(garbage).await.unwrap();
        let response: Response = wire::frame::decode(&bytes).unwrap();
        let Response::Error(err) = response else {
            panic!("error answer for {garbage:?}")
        };
        assert_eq!(err.code, ErrorCode::Invalid);
        assert!(
            err.message.starts_with("malformed request"),
            "{}",
            err.message
        );
    }
    // The connection serves on after garbage.
    let list = Request::List {
        kind: Kind::Pod,
        namespace: None,
        selector: None,
        consistency: Consistency::Stale,
    };
    let response: Response = ops.call(&list).await.unwrap();
    assert!(matches!(response, Response::List { .. }), "{response:?}");

    let agent = client(&ca, &server, Role::Agent, "n1");
    let request = wire::frame::encode(&Request::Watch {
        kind: Kind::Secret,
        namespace: None,
        selector: None,
        from_revision: 0,
    })
    .unwrap();
    let mut watch = agent.open(&request).await.unwrap();
    let refused = tokio::time::timeout(DEADLINE, watch.recv_frame())
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(FrameError::Reset { code }) if code == codes::FORBIDDEN),
        "{refused:?}"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_frame_limit_is_a_too_large_error() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let (_cluster, service) = super::service().await;
    let options = ServeOptions {
        limits: Limits {
            max_frame: 4096,
            ..Limits::default()
        },
        ..ServeOptions::default()
    };
    let server = serve_with(&ca, Arc::new(service), options);
    let ops = client(&ca, &server, Role::Admin, "ops");
    let big = "x".repeat(1500);
    for name in ["a", "b", "c"] {
        let apply = Request::Apply {
            objects: vec![config_map(name, "default", "web", &big)],
            dry_run: false,
        };
        let response: Response = ops.call(&apply).await.unwrap();
        assert!(matches!(response, Response::Applied { .. }), "{response:?}");
    }
    let list = Request::List {
        kind: Kind::ConfigMap,
        namespace: None,
        selector: None,
        consistency: Consistency::Stale,
    };
    let response: Response = ops.call(&list).await.unwrap();
    let Response::Error(err) = response else {
        panic!("too large: {response:?}")
    };
    assert_eq!(err.code, ErrorCode::TooLarge);
    stop(server).await;
}
