//! openraft's own storage conformance suite, run against the redb store.

use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::TypeConfigExt;

use crate::raft::ApplyDurability;
use crate::raft::LogStore;
use crate::raft::StateMachine;
use crate::raft::Storage;
use crate::raft::StorageOptions;
use crate::raft::TypeConfig;

/// Each build is a fresh store in its own temporary directory, removed with the guard.
struct TempStoreBuilder(ApplyDurability);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for TempStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir =
            tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let storage = Storage::open(
            dir.path(),
            &StorageOptions {
                apply_durability: self.0,
                ..StorageOptions::default()
            },
        )
        .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, storage.log_store(), storage.state_machine()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_passes_openraft_storage_suite() {
    Suite::test_all(TempStoreBuilder(ApplyDurability::Deferred))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_with_immediate_applies_passes_openraft_storage_suite() {
    Suite::test_all(TempStoreBuilder(ApplyDurability::Immediate))
        .await
        .unwrap();
}
