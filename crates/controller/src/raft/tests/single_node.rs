//! The store under a real openraft node: one voter, no peers. Checks that client writes get
//! the state machine's responses and that a restarted node comes back with its state.
//! (The network and multi-node wiring are not part of the storage; this only drives it.)

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use openraft::Raft;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;

use super::*;
use crate::raft::NodeInfo;
use crate::raft::Response;
use crate::raft::Snapshot;
use crate::raft::Storage;
use crate::raft::StorageOptions;
use crate::raft::TypeConfig;

/// A network with nobody on it: a single voter never calls it (also used by the API's
/// tests).
#[derive(Debug)]
pub(crate) struct NoPeers;

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: u64, _node: &NodeInfo) -> NoPeers {
        NoPeers
    }
}

impl RaftNetworkV2<TypeConfig> for NoPeers {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(Unreachable::from_string("no peers")))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(Unreachable::from_string("no peers")))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(Unreachable::from_string(
            "no peers",
        )))
    }
}

async fn start(storage: &Storage) -> Raft<TypeConfig, crate::raft::StateMachine> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    };
    let config = Arc::new(config.validate().unwrap());
    Raft::new(
        1,
        config,
        NoPeers,
        storage.log_store(),
        storage.state_machine(),
    )
    .await
    .unwrap()
}

/// Opens the store again once the stopped node's tasks have let go of it: `shutdown`
/// returns before every task openraft spawned has dropped its handle, and redb refuses a
/// second open of a file that is still open.
async fn reopen_when_released(dir: &std::path::Path) -> Storage {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Storage::open(dir, &StorageOptions::default()) {
            Ok(storage) => return storage,
            Err(crate::raft::StoreError::Open(redb::DatabaseError::DatabaseAlreadyOpen))
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("store does not reopen: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_writes_answer_with_revisions_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let web = ObjectKey::new("Pod", "default", "web");
    {
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        let raft = start(&storage).await;
        let me = NodeInfo {
            name: "controller-1".into(),
            address: "127.0.0.1:7000".into(),
        };
        raft.initialize(BTreeMap::from([(1, me)])).await.unwrap();
        raft.wait(Some(Duration::from_secs(10)))
            .current_leader(1, "single voter leads")
            .await
            .unwrap();

        let create = Request::Put {
            key: web.clone(),
            value: b"v1".to_vec(),
            expected: Some(0),
        };
        let written = raft.client_write(create.clone()).await.unwrap();
        assert_eq!(written.data, Response::Written { revision: 1 });
        let conflict = raft.client_write(create).await.unwrap();
        assert_eq!(
            conflict.data,
            Response::Conflict {
                op_index: 0,
                key: web.clone(),
                expected: 0,
                current: 1,
                revision: 1
            }
        );
        let update = Request::Put {
            key: web.clone(),
            value: b"v2".to_vec(),
            expected: Some(1),
        };
        let written = raft.client_write(update).await.unwrap();
        assert_eq!(written.data, Response::Written { revision: 2 });
        raft.shutdown().await.unwrap();
    }

    let storage = reopen_when_released(dir.path()).await;
    let raft = start(&storage).await;
    raft.wait(Some(Duration::from_secs(10)))
        .current_leader(1, "leads again after restart")
        .await
        .unwrap();
    let object = storage.reader().get(&web).unwrap().unwrap();
    assert_eq!(
        (object.value.as_slice(), object.mod_revision),
        (&b"v2"[..], 2)
    );
    let delete = Request::Delete {
        key: web.clone(),
        expected: Some(2),
    };
    let deleted = raft.client_write(delete).await.unwrap();
    assert_eq!(deleted.data, Response::Written { revision: 3 });
    assert_eq!(storage.reader().get(&web).unwrap(), None);
    raft.shutdown().await.unwrap();
}
