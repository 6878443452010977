//! The test harness for moor's end-to-end suites (which live in `crates/cli/tests/`,
//! where Cargo hands integration tests the path of the `moor` binary).
//!
//! Layout:
//!
//! ```text
//! prereq    a privileged test's prerequisites: skip loudly, or fail under MOOR_TEST_STRICT=1
//! scratch   per-test names and directories, removed afterwards
//! wait      waiting on a condition with a deadline (never a bare sleep)
//! bundle    busybox bundles with the checker inside, and their config.json
//! moor      running the real `moor` binary, and cleaning up its containers
//! daemon    long-running processes killed when dropped, their output in a log file; free ports
//! checker   the static program that reports from inside a container
//! console   the test's end of a console socket: the terminal, received over SCM_RIGHTS
//! host      what the runtime left on the host: cgroup dirs, processes, freezer state
//! http      a small HTTP/1.1 server on 127.0.0.1, plain or TLS, that records requests (fake services)
//! registry  a real docker-registry on 127.0.0.1 with its own config, killed when dropped
//! token     a token server issuing ES256 JWTs for a registry's bearer-token auth
//! fake_registry  a read-only registry that serves what a real one refuses, or holds blobs
//! oci       hand-made image content: raw tars, OCI layouts, docker save archives
//! net       test hosts: network namespaces on a private switch, cuts one or both ways
//! ```
//!
//! Tests spawn the binary; nothing here forks, unshares or mounts in the test process.

pub mod bundle;
pub mod checker;
pub mod console;
pub mod daemon;
pub mod fake_registry;
pub mod host;
pub mod http;
pub mod moor;
pub mod net;
pub mod oci;
pub mod prereq;
pub mod registry;
pub mod scratch;
pub mod token;
pub mod wait;
