//! Resource types and API messages shared by every part of moor.
//!
//! Owns (from step 3 on): Pod, Deployment, DaemonSet, Job, Service, ConfigMap, Secret,
//! Node and Namespace; manifest parsing and validation; the messages of the client API.
//! Does not own: any IO. No other moor crate is imported here.
//!
//! Nothing lives here yet: the container runtime (step 1) needs no cluster types.
