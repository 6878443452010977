//! The runtime's error type, gathering each module's.

use std::io;
use std::path::PathBuf;

use crate::cgroups::CgroupError;
use crate::container::Status;
use crate::spec::SpecError;
use crate::state::StateError;

/// Everything a runtime verb can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("container {id:?} is {status}: cannot {verb} it")]
    WrongState {
        id: String,
        status: Status,
        verb: &'static str,
    },
    #[error("container {id:?}: {message}")]
    Setup { id: String, message: String },
    #[error("container {id:?}: process exited during set-up ({status})")]
    SetupDied { id: String, status: String },
    #[error("container {id:?}: {step}: {source}")]
    Io {
        id: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("--preserve-fds {count}: descriptor {fd} is not open")]
    PreserveFds { count: u32, fd: i32 },
    #[error("console socket {path}: {source}")]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "process.terminal is true but no --console-socket was given (and the process is not run in the foreground)"
    )]
    ConsoleSocketRequired,
    #[error("--console-socket given but process.terminal is false")]
    ConsoleSocketUnused,
    #[error("{kind} namespace {path}: {source}")]
    NamespacePath {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the container has no mount namespace: moor needs one (new or joined by path)")]
    NoMountNamespace,
    #[error("protect the runtime binary before entering a container: {step}: {source}")]
    SelfExe {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: StateError,
    },
    #[error("container {id:?}: timed out waiting for {what}")]
    Timeout { id: String, what: &'static str },
}

impl RuntimeError {
    pub(crate) fn io<'a>(
        id: &'a str,
        step: &'static str,
    ) -> impl FnOnce(io::Error) -> RuntimeError + 'a {
        move |source| RuntimeError::Io {
            id: id.to_string(),
            step,
            source,
        }
    }
}
