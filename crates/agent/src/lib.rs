//! The node agent: one box of the fleet.
//!
//! Owns (from step 4 on): the link to the controllers, the local copy of desired state,
//! pod workers, probes, logs and exec, pod networking, the service proxy and DNS.
//! Does not own: deciding where pods run (that is the controller's scheduler).
//!
//! Nothing lives here yet; pods will run on the `runtime` crate.
