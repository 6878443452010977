//! The parent's side of starting a container process, shared by `create`, `run` and
//! `exec`: clone the child, wait for it to be set up, wait for it to execute the user's
//! program (see [`crate::init::sync`] for the messages).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::RuntimeError;
use crate::init::sync::{self, Message};
use crate::init::{self, InitContext};
use crate::sys;

use super::foreground::{self, Proxy};

/// Clones the container process, which runs `ctx` and never returns; the parent gets its
/// PID and pidfd.
pub(crate) fn spawn(
    id: &str,
    flags: u64,
    birth: Option<BorrowedFd<'_>>,
    ctx: InitContext<'_>,
) -> Result<(libc::pid_t, OwnedFd), RuntimeError> {
    // SAFETY: the runtime's verbs run on a single thread (nothing in this crate or the
    // command line starts one), which is what fork semantics need.
    let forked = unsafe { sys::clone3(flags, birth) }
        .map_err(RuntimeError::io(id, "clone the container process"))?;
    match forked {
        // The parent's end of the sync pair goes with every other inherited descriptor
        // the child does not need (`init::close_inherited`).
        sys::Forked::Child => init::child_main(ctx),
        sys::Forked::Parent { pid, pidfd } => {
            drop(ctx);
            Ok((pid, pidfd))
        }
    }
}

/// Waits for the child to report its set-up done; on failure reaps it and says why.
pub(crate) fn await_ready(id: &str, sock: &OwnedFd, child: &OwnedFd) -> Result<(), RuntimeError> {
    match sync::recv(sock.as_fd()).map_err(RuntimeError::io(id, "wait for set-up"))? {
        Message::Ready => Ok(()),
        Message::Error(message) => {
            let _ = foreground::reap(child);
            Err(RuntimeError::Setup {
                id: id.to_string(),
                message,
            })
        }
        _ => {
            let status = foreground::reap(child).unwrap_or_else(|e| format!("unknown: {e}"));
            Err(RuntimeError::SetupDied {
                id: id.to_string(),
                status,
            })
        }
    }
}

/// Waits until the child has executed the user's program (its end of the socket closes
/// on exec) or reports why it could not.
pub(crate) fn await_exec(id: &str, sock: &OwnedFd, child: &OwnedFd) -> Result<(), RuntimeError> {
    match sync::recv(sock.as_fd()).map_err(RuntimeError::io(id, "wait for exec"))? {
        Message::Closed => Ok(()),
        Message::Error(message) => {
            let _ = foreground::reap(child);
            Err(RuntimeError::Setup {
                id: id.to_string(),
                message,
            })
        }
        other => Err(RuntimeError::Setup {
            id: id.to_string(),
            message: format!("unexpected message {other:?} from the container process"),
        }),
    }
}

/// Takes the terminal the child sent over the socket pair, when the runtime relays it.
pub(crate) fn receive_proxy(id: &str, end: Option<OwnedFd>) -> Result<Option<Proxy>, RuntimeError> {
    end.map(|sock| Proxy::receive(sock).map_err(RuntimeError::io(id, "receive the terminal")))
        .transpose()
}
