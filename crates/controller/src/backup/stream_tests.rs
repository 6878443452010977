//! `save` against a controller over real QUIC with mutual TLS: the backup service over a
//! single-node group, and a scripted server that breaks the stream in each way it can.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use proto::api::{ApiError, BackupInfo, BackupPart, ErrorCode, Request, Response};
use wire::frame::{FrameError, FramedStream};
use wire::{Client, ClientOptions, ClusterCa, Handler, Peer, Role, ServeOptions, Target};

use super::archive::{self, ARCHIVE_FORMAT, ArchiveHeader, ArchiveParser, Entry};
use super::format::{BackupReader, Params};
use super::*;
use crate::api::tests::RaftCluster;
use crate::api::{Caller, Cluster};
use crate::raft::{ObjectKey, Request as RaftRequest};

const DAY: Duration = Duration::from_secs(86400);
const PASS: &[u8] = b"stream test passphrase";
const FAST: Params = Params {
    iterations: 10,
    chunk_size: 4096,
};

/// Serves `handler` on 127.0.0.1 until the returned sender is dropped.
fn serve(
    ca: &ClusterCa,
    handler: Arc<impl Handler>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let cert = ca
        .issue(Role::Controller, "c1", SystemTime::now(), DAY)
        .unwrap();
    let tls = wire::tls::server_config(ca.cert(), &cert, false, wire::TlsClock::system()).unwrap();
    let endpoint = wire::server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        &wire::TransportOptions::default(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(wire::serve(
        endpoint,
        handler,
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

fn client(ca: &ClusterCa, addr: SocketAddr, role: Role, name: &str) -> Client {
    let cert = ca.issue(role, name, SystemTime::now(), DAY).unwrap();
    let tls = wire::tls::client_config(ca.cert(), Some(&cert), wire::TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        &wire::TransportOptions::default(),
    )
    .unwrap();
    let target = Target {
        addr,
        name: Some("c1".into()),
    };
    Client::new(endpoint, vec![target], ClientOptions::default())
}

/// The backup service as the daemon routes it.
struct Backups(BackupService<RaftCluster>);

impl Handler for Backups {
    async fn call(
        &self,
        peer: Peer,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        assert_eq!(
            wire::frame::decode::<Request>(&request).unwrap(),
            Request::Backup
        );
        self.0.handle(&Caller::from(&peer), stream).await
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_carries_every_record_and_the_pki_files_in_many_frames() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    for (name, data) in [
        (CA_CERT_FILE, &b"cert"[..]),
        (CA_KEY_FILE, b"key"),
        (SECRETS_KEY_FILE, &[7; 32]),
    ] {
        std::fs::write(pki.join(name), data).unwrap();
    }
    let cluster = RaftCluster::start().await;
    // More than a megabyte: several frames of the stream, many chunks of the file.
    let writes = 300u64;
    for i in 0..writes {
        let put = RaftRequest::Put {
            key: ObjectKey::new("ConfigMap", "default", format!("cm-{i:04}")),
            value: vec![(i % 251) as u8; 4000],
            expected: Some(0),
        };
        cluster.write(put).await.unwrap();
    }
    let service = BackupService::new(Arc::clone(&cluster), pki, "c1".into());
    let (addr, _stop) = serve(&ca, Arc::new(Backups(service)));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let file = out.join("cluster.backup");

    let admin = client(&ca, addr, Role::Admin, "ops");
    let saved = save(&admin, &file, PASS, FAST).await.unwrap();
    assert_eq!(saved.info.revision, writes);
    assert_eq!(saved.info.records, writes);
    assert_eq!(saved.info.controller, "c1");
    assert!(saved.archive_bytes > 1_200_000, "{}", saved.archive_bytes);
    assert_eq!(files_in(&out), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let mut reader = BackupReader::open(std::fs::File::open(&file).unwrap(), PASS).unwrap();
    let mut parser = ArchiveParser::new();
    let mut entries = Vec::new();
    while let Some(chunk) = reader.next_chunk().unwrap() {
        entries.extend(parser.feed(chunk).unwrap());
    }
    parser.finish().unwrap();
    let files: Vec<(&str, usize)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::File { name, data } => Some((name.as_str(), data.len())),
            _ => None,
        })
        .collect();
    assert_eq!(files, [("ca.pem", 4), ("ca.key", 3), ("secrets.key", 32)]);
    let Some(Entry::Header(header)) = entries.first() else {
        panic!("no header first")
    };
    assert_eq!(header.revision, writes);
    assert_eq!(header.members.len(), 1);
    assert_eq!(parser.records(), writes);

    // An agent is refused; the file already there stays as it was.
    let before = std::fs::read(&file).unwrap();
    let agent = client(&ca, addr, Role::Agent, "edge-1");
    let err = save(&agent, &file, PASS, FAST).await.unwrap_err();
    assert!(
        matches!(&err, SaveError::Refused(e) if e.code == ErrorCode::Forbidden),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("agent edge-1 may not take a backup"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(files_in(&out), 1);

    // Without a quorum there is no read barrier, and no backup: worth trying again.
    cluster.cut_off.store(true, Ordering::SeqCst);
    let err = save(&admin, &out.join("later"), PASS, FAST)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(files_in(&out), 1);
}

/// How the scripted server breaks the stream.
#[derive(Debug, Clone, Copy)]
enum Break {
    /// Stops sending after part of the archive.
    Truncate,
    /// Ends with the wrong digest.
    Digest,
    /// Ends with the wrong size.
    Size,
    /// Fails midway.
    Fail,
    /// Declares more records than it sends (its archive is consistent otherwise).
    Records,
    /// Answers something that is not a backup.
    Unexpected,
}

struct Scripted(Break);

impl Handler for Scripted {
    async fn call(
        &self,
        _peer: Peer,
        _request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        let entries = [
            Entry::Header(ArchiveHeader {
                format: ARCHIVE_FORMAT,
                revision: 3,
                applied_index: 5,
                taken_at: 0,
                controller: "c1".into(),
                members: Vec::new(),
                records: 0,
            }),
            Entry::End {
                records: 0,
                files: 0,
            },
        ];
        let archive: Vec<u8> = entries
            .iter()
            .flat_map(|e| archive::encode(e).unwrap())
            .collect();
        let sha256 = ring::digest::digest(&ring::digest::SHA256, &archive)
            .as_ref()
            .to_vec();
        let info = BackupInfo {
            revision: 3,
            applied_index: 5,
            records: u64::from(matches!(self.0, Break::Records)),
            controller: "c1".into(),
        };
        if matches!(self.0, Break::Unexpected) {
            return stream.send(&Response::Tokens(Vec::new())).await;
        }
        stream.send(&Response::BackupStarted(info)).await?;
        let half = archive.len() / 2;
        stream
            .send(&BackupPart::Data(archive[..half].to_vec()))
            .await?;
        match self.0 {
            Break::Truncate => return Ok(()),
            Break::Fail => {
                let error = ApiError::new(ErrorCode::Internal, "the disk is on fire");
                return stream.send(&BackupPart::Failed(error)).await;
            }
            _ => {}
        }
        stream
            .send(&BackupPart::Data(archive[half..].to_vec()))
            .await?;
        let (bytes, sha256) = match self.0 {
            Break::Digest => (archive.len() as u64, vec![0; 32]),
            Break::Size => (archive.len() as u64 + 1, sha256),
            _ => (archive.len() as u64, sha256),
        };
        stream.send(&BackupPart::End { bytes, sha256 }).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_leaves_no_file_behind() {
    let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (script, expected) in [
        (Break::Truncate, "without its end: truncated"),
        (Break::Digest, "the SHA-256 digest is"),
        (Break::Size, "the size is"),
        (Break::Fail, "the disk is on fire"),
        (
            Break::Records,
            "the number of records is 0, the controller sent 1",
        ),
        (Break::Unexpected, "not a backup"),
    ] {
        let (addr, _stop) = serve(&ca, Arc::new(Scripted(script)));
        let admin = client(&ca, addr, Role::Admin, "ops");
        let err = save(&admin, &dir.path().join("cluster.backup"), PASS, FAST)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{script:?}: {err}");
        assert!(!err.is_retryable(), "{script:?}: {err}");
        assert_eq!(files_in(dir.path()), 0, "{script:?} left a file");
    }
}
