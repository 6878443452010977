//! The client API: what `moor` and agents call on a controller, over any replicated store.
//!
//! Owns: answering `proto::api` requests — apply (validate, authorize, fill the
//! controller's metadata, all objects in one Raft batch), get, list, delete, and watches
//! from an in-memory history — and serving them on the wire. Does not own: how writes
//! reach the leader or how reads are made linearizable (the Raft node implements
//! [`Cluster`]), the message shapes (`proto::api`), the transport (`wire`).
//!
//! ```text
//!             wire::serve ─► handler (decode, frames) ─► ApiService ─► access (role rules)
//!                                                          │  plan (pure apply decision)
//!                                                          ▼
//!   Cluster::write / read_barrier / reader ◄──────── service (IO) ──► codec (keys, values)
//!   Cluster::subscribe ─► watch feed ─► WatchHub (history ring) ─► WatchStream per watcher
//! ```
//!
//! Layout: `cluster` (the trait the Raft node implements), `codec`, `plan`, `access`,
//! `watch`, `service`, `handler`; tests under `tests/` run the service over a real
//! single-node openraft group and over QUIC.
//!
//! The daemon wires it up as: implement [`Cluster`] on the Raft node (its state machine
//! sends an [`Applied`] per applied write, with old and new values, after the commit), then
//! `ApiService::start(cluster, options)` and serve it: on the controller's one endpoint, a
//! handler sends calls whose first byte is the Raft tag (`raft::message::is_raft_call`) to
//! the Raft service and every other call to `<ApiService as wire::Handler>::call` (an API
//! request never starts with that byte; if one did, it would be answered as malformed).

mod access;
mod cluster;
pub mod codec;
mod handler;
mod plan;
mod service;
mod watch;

#[cfg(test)]
pub(crate) mod tests;

pub use access::{Caller, Scope};
pub use cluster::{Applied, Change, Cluster, ClusterError};
pub use codec::{OBJECT_FORMAT, ObjectCodecError};
pub use plan::DEFAULT_NAMESPACE;
pub use service::{ApiOptions, ApiService};
pub use watch::{WatchOptions, WatchStream};
