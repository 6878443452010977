//! The controller group: Raft-replicated cluster state and the client API.
//!
//! Owns (from step 3 on): Raft (openraft) with log and state machine in redb, the API,
//! watches, the scheduler, the reconcilers, certificates for joining nodes, backups.
//! Does not own: running containers (agents do, over the wire).
//!
//! Nothing lives here yet.
