//! The controller group: Raft-replicated cluster state and the client API.
//!
//! Owns: Raft (openraft) with log and state machine in redb (`raft`), the client API
//! (`api`), join tokens and certificates for joining nodes (`tokens`, `join`, `joiner`),
//! node liveness from agent heartbeats (`liveness`), backups (`backup`), and, in later
//! steps, the scheduler and the reconcilers.
//! Does not own: running containers (agents do, over the wire).

pub mod api;
pub mod backup;
pub mod bootstrap;
pub mod daemon;
pub mod join;
pub mod joiner;
pub mod liveness;
pub mod raft;
pub mod sealing;
pub mod tokens;
