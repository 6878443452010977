//! End-to-end tests of the wire crate over real QUIC on 127.0.0.1 (port 0 everywhere).

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use quinn::VarInt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wire::frame::{FrameError, FramedStream, Limits, codes};
use wire::identity::{ClusterCa, NodeCert, Role};
use wire::server::{Handler, Peer, ServeOptions, serve};
use wire::tls;
use wire::{Client, ClientError, ClientOptions, Target, TlsClock, TransportOptions};

const DAY: Duration = Duration::from_secs(86400);
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
enum Req {
    Echo(String),
    Watch(u32),
    /// Never answered, like a call to a controller that vanished without closing.
    Hang,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Resp {
    server: String,
    peer_role: Role,
    peer_name: String,
    echo: String,
}

/// Answers `Echo` with who it is and who asked; `Watch(n)` with frames 0..n.
struct TestHandler {
    name: String,
}

impl Handler for TestHandler {
    fn call(
        &self,
        peer: Peer,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> impl Future<Output = Result<(), FrameError>> + Send {
        let server = self.name.clone();
        async move {
            match wire::frame::decode::<Req>(&request)? {
                Req::Echo(echo) => {
                    stream
                        .send(&Resp {
                            server,
                            peer_role: peer.role,
                            peer_name: peer.name,
                            echo,
                        })
                        .await
                }
                Req::Watch(n) => {
                    for i in 0..n {
                        stream.send(&i).await?;
                    }
                    Ok(())
                }
                Req::Hang => std::future::pending().await,
            }
        }
    }

    fn join(
        &self,
        addr: SocketAddr,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> impl Future<Output = Result<(), FrameError>> + Send {
        let _ = addr;
        async move {
            let mut reply = b"joined:".to_vec();
            reply.extend_from_slice(&request);
            stream.send_frame(&reply).await
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("server stops in time")
            .unwrap();
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn start_server(
    ca: &ClusterCa,
    cert: &NodeCert,
    allow_join: bool,
    options: ServeOptions,
) -> TestServer {
    let tls = tls::server_config(ca.cert(), cert, allow_join, TlsClock::system()).unwrap();
    let endpoint = wire::server_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let name = cert.identity().unwrap().name;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        endpoint,
        Arc::new(TestHandler { name }),
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    TestServer {
        addr,
        stop: Some(stop),
        task,
    }
}

fn controller(ca: &ClusterCa, name: &str) -> TestServer {
    let cert = ca
        .issue(Role::Controller, name, SystemTime::now(), DAY)
        .unwrap();
    start_server(ca, &cert, false, ServeOptions::default())
}

fn client_with(
    ca_cert: &rustls::pki_types::CertificateDer<'static>,
    cert: Option<&NodeCert>,
    targets: Vec<Target>,
) -> Client {
    let tls = tls::client_config(ca_cert, cert, TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let options = ClientOptions {
        connect_timeout: Duration::from_millis(500),
        call_timeout: Duration::from_secs(5),
        limits: Limits::default(),
    };
    Client::new(endpoint, targets, options)
}

fn admin_client(ca: &ClusterCa, name: &str, targets: Vec<Target>) -> Client {
    let cert = ca.issue(Role::Admin, name, SystemTime::now(), DAY).unwrap();
    client_with(ca.cert(), Some(&cert), targets)
}

fn target(server: &TestServer, name: Option<&str>) -> Target {
    Target {
        addr: server.addr,
        name: name.map(str::to_owned),
    }
}

async fn echo(client: &Client, text: &str) -> Result<Resp, ClientError> {
    client.call(&Req::Echo(text.to_owned())).await
}

/// Reads the stream until it ends; returns the reset code if the server reset it.
async fn reset_code(stream: &mut FramedStream) -> Option<VarInt> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "stream neither ended nor reset");
        match tokio::time::timeout(DEADLINE, stream.recv_frame()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return None,
            Ok(Err(FrameError::Reset { code })) => return Some(code),
            Ok(Err(err)) => panic!("unexpected stream error: {err}"),
            Err(_) => panic!("no reset within {DEADLINE:?}"),
        }
    }
}

/// Writes raw bytes as a new stream on the client's connection.
async fn raw_stream(client: &Client, bytes: &[u8], finish: bool) -> FramedStream {
    let conn = client.connection().await.unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    if finish {
        send.finish().unwrap();
    }
    FramedStream::new(send, recv, Limits::default())
}

#[tokio::test]
async fn call_round_trips_with_mutual_tls_and_server_sees_peer() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let server = controller(&ca, "c1");
    let client = admin_client(&ca, "ops", vec![target(&server, Some("c1"))]);
    let resp = echo(&client, "hello").await.unwrap();
    assert_eq!(
        resp,
        Resp {
            server: "c1".into(),
            peer_role: Role::Admin,
            peer_name: "ops".into(),
            echo: "hello".into(),
        }
    );
    // The same connection carries the next call.
    let first = client.connection().await.unwrap().stable_id();
    echo(&client, "again").await.unwrap();
    assert_eq!(client.connection().await.unwrap().stable_id(), first);
    server.stop().await;
}

#[tokio::test]
async fn client_without_certificate_connects_but_first_request_fails() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    for allow_join in [false, true] {
        let cert = ca
            .issue(Role::Controller, "c1", SystemTime::now(), DAY)
            .unwrap();
        let server = start_server(&ca, &cert, allow_join, ServeOptions::default());
        let client = client_with(ca.cert(), None, vec![target(&server, None)]);
        // TLS 1.3: the handshake completes on the client before the server checks.
        client.connection().await.unwrap();
        let err = echo(&client, "x").await.unwrap_err();
        assert!(!err.is_retryable(), "allow_join={allow_join}: {err}");
        server.stop().await;
    }
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let other = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let server = controller(&ca, "c1");
    let stranger = other
        .issue(Role::Admin, "ops", SystemTime::now(), DAY)
        .unwrap();
    let client = client_with(ca.cert(), Some(&stranger), vec![target(&server, None)]);
    let err = echo(&client, "x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let ca = ClusterCa::create(SystemTime::now() - 30 * DAY, 60 * DAY).unwrap();
    let server = controller(&ca, "c1");
    let expired = ca
        .issue(Role::Agent, "n1", SystemTime::now() - 10 * DAY, DAY)
        .unwrap();
    let client = client_with(ca.cert(), Some(&expired), vec![target(&server, None)]);
    let err = echo(&client, "x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn revoked_certificate_is_refused() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let revoked_node = ca
        .issue(Role::Agent, "gone", SystemTime::now(), DAY)
        .unwrap();
    let revoked_serial = revoked_node.identity().unwrap().serial;
    let options = ServeOptions {
        is_revoked: Some(Arc::new(move |id| id.serial == revoked_serial)),
        ..ServeOptions::default()
    };
    let server = start_server(&ca, &cert, false, options);

    let revoked = client_with(ca.cert(), Some(&revoked_node), vec![target(&server, None)]);
    let err = echo(&revoked, "x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");

    // A fresh certificate for another node is still served.
    let fine = ca.issue(Role::Agent, "n2", SystemTime::now(), DAY).unwrap();
    let client = client_with(ca.cert(), Some(&fine), vec![target(&server, None)]);
    assert_eq!(echo(&client, "x").await.unwrap().peer_name, "n2");
    server.stop().await;
}

#[tokio::test]
async fn client_rejects_server_from_another_ca_or_with_wrong_role_or_name() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let other = ClusterCa::create(SystemTime::now(), DAY).unwrap();

    let impostor = controller(&other, "c1");
    let client = admin_client(&ca, "ops", vec![target(&impostor, Some("c1"))]);
    let err = echo(&client, "x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    impostor.stop().await;

    let agent_cert = ca.issue(Role::Agent, "c1", SystemTime::now(), DAY).unwrap();
    let agent = start_server(&ca, &agent_cert, false, ServeOptions::default());
    let client = admin_client(&ca, "ops", vec![target(&agent, None)]);
    let err = echo(&client, "x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    agent.stop().await;

    let c1 = controller(&ca, "c1");
    let client = admin_client(&ca, "ops", vec![target(&c1, Some("c2"))]);
    assert!(echo(&client, "x").await.is_err());
    c1.stop().await;
}

#[tokio::test]
async fn joiner_checks_server_by_token_fingerprint() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let other = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let server = start_server(&ca, &cert, true, ServeOptions::default());
    let joiner = |fp| {
        let tls = tls::join_client_config(fp, TlsClock::system()).unwrap();
        let endpoint =
            wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
        Client::new(
            endpoint,
            vec![target(&server, None)],
            ClientOptions::default(),
        )
    };
    let good = joiner(ca.fingerprint());
    let reply = good.call_bytes(b"secret").await.unwrap();
    assert_eq!(&reply[..], b"joined:secret");

    let bad = joiner(other.fingerprint());
    let err = bad.call_bytes(b"secret").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_close_only_their_stream() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let server = controller(&ca, "c1");
    let client = admin_client(&ca, "ops", vec![target(&server, None)]);
    echo(&client, "warm up").await.unwrap();

    // Random bytes (a fixed xorshift sequence; its first word is a huge length).
    let mut x: u32 = 0x9e37_79b9;
    let noise: Vec<u8> = (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut noisy = noise.clone();
    noisy[0] = 0xf3;
    let mut stream = raw_stream(&client, &noisy, true).await;
    assert_eq!(reset_code(&mut stream).await, Some(codes::TOO_LARGE));

    // A well-framed request whose payload is noise: the handler cannot decode it.
    let mut framed = (noise.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&noise);
    let mut stream = raw_stream(&client, &framed, true).await;
    assert_eq!(reset_code(&mut stream).await, Some(codes::MALFORMED));

    // An oversized length prefix with no body.
    let mut stream = raw_stream(&client, &u32::MAX.to_be_bytes(), false).await;
    assert_eq!(reset_code(&mut stream).await, Some(codes::TOO_LARGE));

    // A stream that ends inside a frame.
    let mut stream = raw_stream(&client, &[0, 0, 0, 50, 1, 2, 3], true).await;
    assert_eq!(reset_code(&mut stream).await, Some(codes::MALFORMED));

    // The connection and the server survived all of it.
    assert_eq!(
        echo(&client, "still here").await.unwrap().echo,
        "still here"
    );
    server.stop().await;
}

#[tokio::test]
async fn frame_over_the_configured_limit_is_refused() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let options = ServeOptions {
        limits: Limits {
            max_frame: 1024,
            ..Limits::default()
        },
        ..ServeOptions::default()
    };
    let server = start_server(&ca, &cert, false, options);
    let client = admin_client(&ca, "ops", vec![target(&server, None)]);
    let err = echo(&client, &"x".repeat(2000)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Frame(FrameError::Reset { code }) if code == codes::TOO_LARGE),
        "{err}"
    );
    assert_eq!(echo(&client, "small").await.unwrap().echo, "small");
    server.stop().await;
}

#[tokio::test]
async fn half_finished_stream_times_out_and_server_serves_others() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let options = ServeOptions {
        limits: Limits {
            frame_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..ServeOptions::default()
    };
    let server = start_server(&ca, &cert, false, options);
    let slow = admin_client(&ca, "slow", vec![target(&server, None)]);
    // Announces 100 bytes, sends 10, never finishes.
    let mut bytes = vec![0, 0, 0, 100];
    bytes.extend_from_slice(&[7; 10]);
    let mut stream = raw_stream(&slow, &bytes, false).await;

    // Meanwhile another client is served.
    let other = admin_client(&ca, "other", vec![target(&server, None)]);
    assert_eq!(echo(&other, "meanwhile").await.unwrap().peer_name, "other");

    assert_eq!(reset_code(&mut stream).await, Some(codes::TIMEOUT));
    assert_eq!(echo(&other, "after").await.unwrap().echo, "after");
    assert_eq!(echo(&slow, "recovered").await.unwrap().echo, "recovered");
    server.stop().await;
}

#[tokio::test]
async fn watch_delivers_frames_in_order_and_ends_cleanly() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let server = controller(&ca, "c1");
    let client = admin_client(&ca, "ops", vec![target(&server, None)]);
    let request = wire::frame::encode(&Req::Watch(500)).unwrap();
    let mut stream = client.open(&request).await.unwrap();
    let mut next = 0u32;
    while let Some(value) = tokio::time::timeout(DEADLINE, stream.recv::<u32>())
        .await
        .unwrap()
        .unwrap()
    {
        assert_eq!(value, next);
        next += 1;
    }
    assert_eq!(next, 500);
    server.stop().await;
}

#[tokio::test]
async fn client_fails_over_to_the_next_controller() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let first = controller(&ca, "c1");
    let second = controller(&ca, "c2");
    let client = admin_client(
        &ca,
        "ops",
        vec![target(&first, Some("c1")), target(&second, Some("c2"))],
    );
    assert_eq!(echo(&client, "x").await.unwrap().server, "c1");
    first.stop().await;

    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "client never reached c2");
        match echo(&client, "x").await {
            Ok(resp) => {
                assert_eq!(resp.server, "c2");
                break;
            }
            Err(err) => assert!(err.is_retryable(), "{err}"),
        }
    }
    assert_eq!(client.connected_to().await.unwrap().addr, second.addr);
    for _ in 0..5 {
        assert_eq!(echo(&client, "x").await.unwrap().server, "c2");
    }
    second.stop().await;
}

#[tokio::test]
async fn a_call_that_times_out_moves_the_client_to_the_next_controller() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let first = controller(&ca, "c1");
    let second = controller(&ca, "c2");
    let cert = ca
        .issue(Role::Admin, "ops", SystemTime::now(), DAY)
        .unwrap();
    let tls = tls::client_config(ca.cert(), Some(&cert), TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let options = ClientOptions {
        connect_timeout: Duration::from_millis(500),
        call_timeout: Duration::from_millis(300),
        limits: Limits::default(),
    };
    let client = Client::new(
        endpoint,
        vec![target(&first, Some("c1")), target(&second, Some("c2"))],
        options,
    );
    assert_eq!(echo(&client, "x").await.unwrap().server, "c1");
    let hung = client.call::<Req, Resp>(&Req::Hang).await.unwrap_err();
    assert!(matches!(hung, ClientError::Timeout { .. }), "{hung}");
    assert!(hung.is_retryable());
    // The connection to c1 still looks open; the client must not keep using it.
    assert_eq!(echo(&client, "x").await.unwrap().server, "c2");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn replaced_targets_take_effect() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let first = controller(&ca, "c1");
    let second = controller(&ca, "c2");
    let client = admin_client(&ca, "ops", vec![target(&first, None)]);
    assert_eq!(echo(&client, "x").await.unwrap().server, "c1");
    client.set_targets(vec![target(&second, Some("c2"))]).await;
    assert_eq!(echo(&client, "x").await.unwrap().server, "c2");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn unreachable_controllers_give_a_retryable_error() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind(localhost()).unwrap();
    let addr = silent.local_addr().unwrap();
    let client = admin_client(&ca, "ops", vec![Target { addr, name: None }]);
    let err = echo(&client, "x").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable { tried: 1, .. }),
        "{err}"
    );
    assert!(err.is_retryable());

    let empty = admin_client(&ca, "ops", vec![]);
    let err = echo(&empty, "x").await.unwrap_err();
    assert!(matches!(err, ClientError::NoTargets));
}

#[tokio::test]
async fn box_without_rtc_accepts_certificates_by_last_seen() {
    // Certificates issued 20 days "ahead" of the system clock stand for a box whose
    // clock restarted behind the time it last saw.
    let ahead = SystemTime::now() + 20 * DAY;
    let ca = ClusterCa::create(SystemTime::now(), 60 * DAY).unwrap();
    let clock = TlsClock::new(SystemTime::UNIX_EPOCH, Some(ahead));
    let server_cert = ca.issue(Role::Controller, "c1", ahead, DAY).unwrap();
    let tls = tls::server_config(ca.cert(), &server_cert, false, clock).unwrap();
    let endpoint = wire::server_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        endpoint,
        Arc::new(TestHandler { name: "c1".into() }),
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let server = TestServer {
        addr,
        stop: Some(stop),
        task,
    };

    let agent_cert = ca.issue(Role::Agent, "n1", ahead, DAY).unwrap();
    let tls = tls::client_config(ca.cert(), Some(&agent_cert), clock).unwrap();
    let endpoint = wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let client = Client::new(
        endpoint,
        vec![target(&server, None)],
        ClientOptions::default(),
    );
    assert_eq!(echo(&client, "x").await.unwrap().peer_name, "n1");

    // The same server certificate is "not yet valid" by the bare system clock.
    let plain = admin_client(&ca, "ops", vec![target(&server, None)]);
    let err = echo(&plain, "x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn join_alpn_is_refused_when_the_server_takes_no_joins() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let server = controller(&ca, "c1");
    let tls = tls::join_client_config(ca.fingerprint(), TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let joiner = Client::new(
        endpoint,
        vec![target(&server, None)],
        ClientOptions::default(),
    );
    let err = joiner.call_bytes(b"secret").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    server.stop().await;
}

/// A handler that leaves `join` to the default.
struct NoJoin;

impl Handler for NoJoin {
    async fn call(
        &self,
        _peer: Peer,
        _request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        stream.send_frame(b"member").await
    }
}

#[tokio::test]
async fn default_join_handler_refuses_the_call() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let tls = tls::server_config(ca.cert(), &cert, true, TlsClock::system()).unwrap();
    let endpoint = wire::server_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        endpoint,
        Arc::new(NoJoin),
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let tls = tls::join_client_config(ca.fingerprint(), TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
    let joiner = Client::new(
        endpoint,
        vec![Target { addr, name: None }],
        ClientOptions::default(),
    );
    let err = joiner.call_bytes(b"secret").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Frame(FrameError::Reset { code }) if code == codes::FORBIDDEN),
        "{err}"
    );
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn revoking_closes_an_open_connection() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let options = ServeOptions::default();
    let connections = options.connections.clone();
    let server = start_server(&ca, &cert, false, options);
    let gone = admin_client(&ca, "gone", vec![target(&server, None)]);
    let kept = admin_client(&ca, "kept", vec![target(&server, None)]);
    echo(&gone, "x").await.unwrap();
    echo(&kept, "x").await.unwrap();
    let mut names: Vec<String> = connections.peers().into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(names, ["gone", "kept"]);

    let conn = gone.connection().await.unwrap();
    assert_eq!(connections.close_revoked(|peer| peer.name == "gone"), 1);
    let reason = tokio::time::timeout(DEADLINE, conn.closed()).await.unwrap();
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == codes::REVOKED),
        "{reason}"
    );
    let err = ClientError::Connection {
        addr: server.addr,
        source: reason,
    };
    assert!(!err.is_retryable());
    assert_eq!(echo(&kept, "still").await.unwrap().echo, "still");
    server.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_presented_at_the_next_handshake_both_ways() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let issue = |role, name| ca.issue(role, name, SystemTime::now(), DAY).unwrap();
    let server_slot = tls::CertSlot::new(&issue(Role::Controller, "c1")).unwrap();
    let tls_config = tls::server_config_with(
        ca.cert(),
        Arc::clone(&server_slot),
        false,
        TlsClock::system(),
    )
    .unwrap();
    let endpoint =
        wire::server_endpoint(localhost(), tls_config, &TransportOptions::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        endpoint,
        Arc::new(TestHandler { name: "c1".into() }),
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client_slot = tls::CertSlot::new(&issue(Role::Admin, "ops")).unwrap();
    // A client of its own per connection: a second connection of one client resumes the
    // TLS session and exchanges no certificates.
    let client_from_slot = || {
        let tls = tls::client_config_with(ca.cert(), Arc::clone(&client_slot), TlsClock::system())
            .unwrap();
        let endpoint =
            wire::client_endpoint(localhost(), tls, &TransportOptions::default()).unwrap();
        Client::new(
            endpoint,
            vec![Target {
                addr,
                name: Some("c1".into()),
            }],
            ClientOptions::default(),
        )
    };
    let served_by = |conn: &quinn::Connection| {
        let certs = conn
            .peer_identity()
            .unwrap()
            .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .unwrap();
        wire::identity::identity_of(&certs[0]).unwrap().serial
    };
    let client = client_from_slot();
    let first = served_by(&client.connection().await.unwrap());
    assert_eq!(echo(&client, "x").await.unwrap().peer_name, "ops");
    let presented = server_slot.leaf().unwrap();
    assert_eq!(
        wire::identity::identity_of(&presented).unwrap().serial,
        first
    );

    server_slot.replace(&issue(Role::Controller, "c1")).unwrap();
    client_slot
        .replace(&issue(Role::Admin, "ops-renewed"))
        .unwrap();
    // The open connection goes on; a new handshake sees both new certificates.
    assert_eq!(echo(&client, "x").await.unwrap().peer_name, "ops");
    let renewed = client_from_slot();
    assert_ne!(served_by(&renewed.connection().await.unwrap()), first);
    assert_eq!(echo(&renewed, "x").await.unwrap().peer_name, "ops-renewed");
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
}
