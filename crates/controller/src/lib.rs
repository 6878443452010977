//! The controller group: Raft-replicated cluster state and the client API.
//!
//! Owns: Raft (openraft) with log and state machine in redb (`raft`), and, in later steps,
//! the API, watches, the scheduler, the reconcilers, certificates for joining nodes, backups.
//! Does not own: running containers (agents do, over the wire).

pub mod api;
pub mod bootstrap;
pub mod daemon;
pub mod raft;
