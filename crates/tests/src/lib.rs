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
//! checker   the static program that reports from inside a container
//! console   the test's end of a console socket: the terminal, received over SCM_RIGHTS
//! host      what the runtime left on the host: cgroup dirs, processes, freezer state
//! ```
//!
//! Tests spawn the binary; nothing here forks, unshares or mounts in the test process.

pub mod bundle;
pub mod checker;
pub mod console;
pub mod host;
pub mod moor;
pub mod prereq;
pub mod scratch;
pub mod wait;
