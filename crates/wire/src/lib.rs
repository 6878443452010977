//! moor's transport: QUIC with mutual TLS between controllers, agents and clients.
//!
//! Owns (from step 3 on): endpoints, length-prefixed framing and its size limits, the
//! reconnecting multi-controller client, cluster identity (CA, certificates, join
//! tokens, the clock rules for boxes without a real-time clock).
//! Does not own: what the messages mean (that is `proto`).
//!
//! Nothing lives here yet: the container runtime (step 1) has no network side.
