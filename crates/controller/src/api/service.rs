//! The client API service: one `Request` in, one `Response` (or a watch stream) out.
//!
//! Owns: the IO around the pure parts — reading stored objects for a plan, writing it as
//! one Raft batch, retrying a plan that lost a race, reads with or without a barrier, the
//! namespace rules, turning cluster and storage errors into `ApiError`s, and starting the
//! feed of the watch hub. Does not own: the decisions (`plan`, `access`), the history
//! (`watch`), or the transport (`handler`).
//!
//! ```text
//! call(caller, Request)
//!   Apply  ─► access ─► read keys + namespaces ─► plan_apply ─► write(Batch)
//!                       ▲  (this copy first)          │ writes nothing  │ lost a race
//!                       │                             │ or refused      │ (bounded)
//!                       └──── read_barrier ◄──────────┴─────────────────┘
//!   Get/List ─► access ─► [read_barrier] ─► StateReader ─► scope filter
//!   Delete ─► access ─► namespace empty? ─► Cluster::write(Delete)
//! watch(caller, …) ─► access ─► WatchHub::watch ─► WatchStream
//! ```
//!
//! Namespace rules: a namespaced object needs its Namespace to exist (or to be in the
//! same apply), except in `default`; a Namespace holding objects cannot be deleted. Both
//! are checked against the state read before the write, so a create racing a namespace
//! delete can leave an object in a deleted namespace; a reconciler will have to clean
//! those up. Secrets are never logged: this module logs no object.
//!
//! Reads run inline on the async worker: a redb read transaction is short and mostly
//! served from its cache. Listings of many thousands of objects may want
//! `spawn_blocking` later (measure first).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use proto::Object;
use proto::api::{
    ApiError, Applied as AppliedLine, Consistency, ErrorCode, ObjectKey, Request, Response,
};
use proto::resources::Kind;
use proto::selector::Selector;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::broadcast;

use super::access::{self, Caller, ReadRule, Scope};
use super::cluster::{Applied, Cluster, ClusterError};
use super::codec;
use super::plan::{self, Current};
use super::watch::{WatchFilter, WatchHub, WatchOptions, WatchStream};
use crate::raft;
use crate::raft::StoreError;

/// Settings of the service.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiOptions {
    pub watch: WatchOptions,
}

/// How many times an apply is planned again after losing a race to another write.
const APPLY_ATTEMPTS: usize = 5;

/// The client API of one controller, over any [`Cluster`].
#[derive(Debug)]
pub struct ApiService<C: Cluster> {
    cluster: Arc<C>,
    hub: Arc<WatchHub>,
    random: SystemRandom,
    /// The task feeding the watch history; stopped with the service.
    feed: tokio::task::AbortHandle,
}

impl<C: Cluster> Drop for ApiService<C> {
    fn drop(&mut self) {
        self.feed.abort();
    }
}

impl<C: Cluster> ApiService<C> {
    /// Starts the service: subscribes to the cluster's changes and spawns the task that
    /// feeds the watch history (until the service is dropped or the cluster closes its
    /// feed). Call within a tokio runtime.
    pub fn start(cluster: Arc<C>, options: ApiOptions) -> Result<Self, StoreError> {
        // Subscribe before reading the revision: an entry applied in between arrives on
        // the feed and is skipped by revision, none is lost.
        let feed = cluster.subscribe();
        let revision = cluster.reader().revision()?;
        let hub = Arc::new(WatchHub::new(revision, options.watch));
        let feed = tokio::spawn(run_feed(Arc::clone(&hub), feed, cluster.reader()));
        Ok(ApiService {
            cluster,
            hub,
            random: SystemRandom::new(),
            feed: feed.abort_handle(),
        })
    }

    /// The newest revision in the watch history. It follows the store's revision shortly
    /// after each write, as the feed delivers it.
    pub fn history_revision(&self) -> u64 {
        self.hub.latest()
    }

    /// How many watch streams are open.
    pub fn watchers(&self) -> usize {
        self.hub.watchers()
    }

    /// Answers one call that is not a watch.
    pub async fn handle(&self, caller: &Caller, request: Request) -> Response {
        let result = match request {
            Request::Apply { objects, dry_run } => self.apply(caller, objects, dry_run).await,
            Request::Get { key, consistency } => self.get(caller, key, consistency).await,
            Request::List {
                kind,
                namespace,
                selector,
                consistency,
            } => {
                self.list(caller, kind, namespace, selector.as_deref(), consistency)
                    .await
            }
            Request::Delete {
                key,
                resource_version,
            } => self.delete(caller, key, resource_version).await,
            Request::Watch { .. } => Err(ApiError::new(
                ErrorCode::Invalid,
                "a watch is answered with a stream of events, not one response",
            )),
            // Answered by the daemon's join service (`crate::join`) before a call gets here.
            Request::CreateToken { .. }
            | Request::ListTokens
            | Request::DeleteToken { .. }
            | Request::AddController { .. }
            | Request::ListControllers
            | Request::RemoveController { .. }
            | Request::Heartbeat { .. }
            | Request::RenewCertificate { .. }
            | Request::RemoveNode { .. } => Err(ApiError::new(
                ErrorCode::Invalid,
                "token, membership and node calls are not answered by the object api",
            )),
            // Streamed by the daemon's backup service (`crate::backup`).
            Request::Backup => Err(ApiError::new(
                ErrorCode::Invalid,
                "a backup is answered with a stream by the backup service, not the object api",
            )),
        };
        result.unwrap_or_else(Response::Error)
    }

    /// Opens a watch of `kind` after `from_revision` (exclusive). A history that no
    /// longer reaches back that far gives a stream of one `TooOld`; a forbidden kind or a
    /// bad selector is an error before any event.
    pub fn watch(
        &self,
        caller: &Caller,
        kind: Kind,
        namespace: Option<String>,
        selector: Option<&str>,
        from_revision: u64,
    ) -> Result<WatchStream, ApiError> {
        let scope = access::watch_scope(caller, kind)?;
        let filter = WatchFilter {
            kind,
            namespace: namespace.filter(|_| kind.is_namespaced()),
            selector: parse_selector(selector)?,
            scope,
        };
        Ok(self.hub.watch(from_revision, filter))
    }

    async fn apply(
        &self,
        caller: &Caller,
        objects: Vec<Object>,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        access::can_call(caller)?;
        for object in &objects {
            access::can_write(caller, &ObjectKey::of(object))?;
        }
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let uids = self.uids(objects.len())?;
        // The first plan reads this controller's copy without a barrier: every write it
        // makes expects the revision it read, so a copy that lags can only make Raft answer
        // `Conflict`, never overwrite a newer object. An answer that writes nothing
        // (unchanged, a dry run, a refusal) comes only from a copy read after a barrier:
        // otherwise a lagging follower could answer Unchanged for an object the leader has
        // since changed. On the leader the copy is current, and a write saves the round
        // to a majority that a barrier costs.
        let mut fresh = false;
        let mut attempt = 0;
        loop {
            let (stored, revision) = self.stored_for(&objects)?;
            let plan = match plan::plan_apply(&objects, &stored, &now, &uids) {
                Ok(plan) if fresh || !(dry_run || plan.ops.is_empty()) => plan,
                Err(err) if fresh => return Err(err),
                Ok(_) | Err(_) => {
                    self.barrier(Consistency::Linearizable).await?;
                    fresh = true;
                    continue;
                }
            };
            attempt += 1;
            if dry_run || plan.ops.is_empty() {
                let results = plan
                    .items
                    .iter()
                    .map(|item| line(item, item.current_revision))
                    .collect();
                return Ok(Response::Applied { results, revision });
            }
            let answer = self
                .cluster
                .write(raft::Request::Batch(plan.ops.clone()))
                .await
                .map_err(cluster_error)?;
            match answer {
                raft::Response::Written { revision } => {
                    let results = plan
                        .items
                        .iter()
                        .map(|item| match item.op_index {
                            Some(_) => line(item, revision),
                            None => line(item, item.current_revision),
                        })
                        .collect();
                    return Ok(Response::Applied { results, revision });
                }
                raft::Response::Conflict {
                    op_index, current, ..
                } => {
                    let item = plan.items.iter().find(|i| i.op_index == Some(op_index));
                    let Some(item) = item else {
                        return Err(internal("raft named a write the apply did not make"));
                    };
                    if item.client_revision || attempt >= APPLY_ATTEMPTS {
                        return Err(plan::conflict(&item.key, item.current_revision, current));
                    }
                    // Plan again from a copy that has seen the write that won.
                    self.barrier(Consistency::Linearizable).await?;
                    fresh = true;
                }
                raft::Response::NotFound { .. } | raft::Response::Unchanged { .. } => {
                    return Err(internal("raft answered a batch of puts with no write"));
                }
            }
        }
    }

    /// The stored objects among the objects' keys and the Namespaces they use, and the
    /// revision of the read.
    fn stored_for(
        &self,
        objects: &[Object],
    ) -> Result<(BTreeMap<ObjectKey, Current>, u64), ApiError> {
        let reader = self.cluster.reader();
        let revision = reader.revision().map_err(store_error)?;
        let mut keys: Vec<ObjectKey> = objects.iter().map(ObjectKey::of).collect();
        let namespaces: Vec<ObjectKey> = keys
            .iter()
            .filter_map(|key| key.namespace.as_deref())
            .filter(|ns| *ns != plan::DEFAULT_NAMESPACE)
            .map(plan::namespace_key)
            .collect();
        keys.extend(namespaces);
        let mut stored = BTreeMap::new();
        for key in keys {
            if stored.contains_key(&key) {
                continue;
            }
            if let Some(current) = self.read(&key)? {
                stored.insert(key, current);
            }
        }
        Ok((stored, revision))
    }

    fn read(&self, key: &ObjectKey) -> Result<Option<Current>, ApiError> {
        let store_key = codec::store_key(key);
        let Some(found) = self.cluster.reader().get(&store_key).map_err(store_error)? else {
            return Ok(None);
        };
        let object = codec::decode(&store_key, &found).map_err(|err| internal(&err.to_string()))?;
        Ok(Some(Current {
            object,
            mod_revision: found.mod_revision,
        }))
    }

    async fn get(
        &self,
        caller: &Caller,
        key: ObjectKey,
        consistency: Consistency,
    ) -> Result<Response, ApiError> {
        let key = codec::normalized(&key);
        let rule = access::read_rule(caller, key.kind, &key.to_string())?;
        self.barrier(consistency).await?;
        let revision = self.cluster.reader().revision().map_err(store_error)?;
        let Some(current) = self.read(&key)? else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{key}: not found"),
            ));
        };
        let scope = self.scope(caller, key.kind, rule)?;
        if !scope.allows(&current.object) {
            return Err(access::out_of_scope(caller, &key));
        }
        Ok(Response::Object {
            object: Box::new(current.object),
            revision: revision.max(current.mod_revision),
        })
    }

    async fn list(
        &self,
        caller: &Caller,
        kind: Kind,
        namespace: Option<String>,
        selector: Option<&str>,
        consistency: Consistency,
    ) -> Result<Response, ApiError> {
        let namespace = namespace.filter(|_| kind.is_namespaced());
        let what = match &namespace {
            Some(ns) => format!("{} in {ns}", kind.name()),
            None => kind.name().to_string(),
        };
        let rule = access::read_rule(caller, kind, &what)?;
        let selector = parse_selector(selector)?;
        self.barrier(consistency).await?;
        let scope = self.scope(caller, kind, rule)?;
        let (objects, revision) = self.list_objects(kind, namespace.as_deref())?;
        let objects = objects
            .into_iter()
            .filter(|o| {
                selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&o.metadata().labels))
            })
            .filter(|o| scope.allows(o))
            .collect();
        Ok(Response::List { objects, revision })
    }

    fn list_objects(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), ApiError> {
        let listing = self
            .cluster
            .reader()
            .list(kind.name(), namespace)
            .map_err(store_error)?;
        let objects = listing
            .objects
            .iter()
            .map(|(key, stored)| codec::decode(key, stored))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| internal(&err.to_string()))?;
        Ok((objects, listing.revision))
    }

    /// The caller's scope for `kind`; for an agent's Secrets and ConfigMaps, what the pods
    /// bound to its node use.
    fn scope(&self, caller: &Caller, kind: Kind, rule: ReadRule) -> Result<Scope, ApiError> {
        match rule {
            ReadRule::Scoped => Ok(access::scope(caller, kind)),
            ReadRule::NeedsNodePods => {
                let (pods, _) = self.list_objects(Kind::Pod, None)?;
                let node = access::scope(caller, Kind::Pod);
                let mine = pods.iter().filter(|p| node.allows(p));
                Ok(access::referenced_scope(kind, mine))
            }
        }
    }

    async fn delete(
        &self,
        caller: &Caller,
        key: ObjectKey,
        resource_version: Option<u64>,
    ) -> Result<Response, ApiError> {
        let key = codec::normalized(&key);
        access::can_delete(caller, &key)?;
        if key.kind == Kind::Namespace {
            self.barrier(Consistency::Linearizable).await?;
            self.check_namespace_empty(&key.name)?;
        }
        let answer = self
            .cluster
            .write(raft::Request::Delete {
                key: codec::store_key(&key),
                expected: resource_version,
            })
            .await
            .map_err(cluster_error)?;
        match answer {
            raft::Response::Written { revision } => Ok(Response::Deleted { key, revision }),
            raft::Response::NotFound { .. } => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{key}: not found"),
            )),
            raft::Response::Conflict {
                expected, current, ..
            } => Err(plan::conflict(&key, expected, current)),
            raft::Response::Unchanged { .. } => {
                Err(internal("raft answered a delete with no write"))
            }
        }
    }

    /// A Namespace may go only once nothing is left in it.
    fn check_namespace_empty(&self, namespace: &str) -> Result<(), ApiError> {
        let mut left = Vec::new();
        for kind in Kind::ALL.into_iter().filter(|k| k.is_namespaced()) {
            let listing = self
                .cluster
                .reader()
                .list(kind.name(), Some(namespace))
                .map_err(store_error)?;
            if !listing.objects.is_empty() {
                left.push(format!("{} {}", listing.objects.len(), kind.name()));
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::Invalid,
            format!(
                "namespace/{namespace}: still holds {}; delete them first",
                left.join(", ")
            ),
        ))
    }

    async fn barrier(&self, consistency: Consistency) -> Result<(), ApiError> {
        match consistency {
            Consistency::Linearizable => self.cluster.read_barrier().await.map_err(cluster_error),
            Consistency::Stale => Ok(()),
        }
    }

    /// `n` random 128-bit uids, in hex.
    fn uids(&self, n: usize) -> Result<Vec<String>, ApiError> {
        (0..n)
            .map(|_| {
                let mut bytes = [0u8; 16];
                self.random
                    .fill(&mut bytes)
                    .map_err(|_| internal("the system random source failed"))?;
                Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
            })
            .collect()
    }
}

/// Feeds the hub from the cluster until the cluster closes its feed. A feed that lost
/// entries restarts the history at the current revision (live watchers get `TooOld`).
async fn run_feed(
    hub: Arc<WatchHub>,
    mut feed: broadcast::Receiver<Applied>,
    reader: raft::StateReader,
) {
    loop {
        match feed.recv().await {
            Ok(applied) => hub.record(applied),
            Err(broadcast::error::RecvError::Lagged(missed)) => match reader.revision() {
                Ok(revision) => {
                    tracing::warn!(missed, revision, "watch feed lagged: history restarts");
                    hub.reset(revision);
                }
                Err(err) => {
                    tracing::error!(%err, "watch feed lagged and the revision is unreadable");
                    hub.reset(hub.latest() + 1);
                }
            },
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn line(item: &plan::PlannedItem, resource_version: u64) -> AppliedLine {
    AppliedLine {
        key: item.key.clone(),
        outcome: item.outcome,
        resource_version,
    }
}

fn parse_selector(selector: Option<&str>) -> Result<Option<Selector>, ApiError> {
    selector
        .map(|text| {
            Selector::parse(text)
                .map_err(|err| ApiError::new(ErrorCode::Invalid, format!("selector: {err}")))
        })
        .transpose()
}

fn internal(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Internal, message)
}

fn store_error(err: StoreError) -> ApiError {
    tracing::error!(%err, "store read failed");
    internal(&format!("controller storage: {err}"))
}

fn cluster_error(err: ClusterError) -> ApiError {
    let code = match &err {
        ClusterError::NotLeader { leader } => ErrorCode::NotLeader {
            leader: leader.clone(),
        },
        ClusterError::NoQuorum | ClusterError::Timeout { .. } | ClusterError::Stopped => {
            ErrorCode::Unavailable
        }
        ClusterError::Storage(_) => {
            tracing::error!(%err, "cluster storage failed");
            ErrorCode::Internal
        }
    };
    ApiError::new(code, err.to_string())
}
