//! `start`: lets a created container's init go on to execute the user's program.
//!
//! The init waits in `open(exec.fifo, O_WRONLY)`. Opening the fifo for reading releases
//! it; it writes one byte once it is past the open, and the fifo is removed, which is
//! what marks the container as started. If the init dies instead, its pidfd says so.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::RuntimeError;
use crate::state::StateStore;

use super::locked_status;

pub fn start(store: &StateStore, id: &str) -> Result<(), RuntimeError> {
    let dir = store.open(id)?;
    let (stored, status) = locked_status(&dir)?;
    if !status.can_start() {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "start",
        });
    }
    let Some(pidfd) = stored
        .init
        .open()
        .map_err(RuntimeError::io(id, "open the init process"))?
    else {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: super::Status::Stopped,
            verb: "start",
        });
    };
    let fifo_path = dir.fifo_path();
    let mut fifo = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
        .map_err(RuntimeError::io(id, "open exec fifo"))?;
    loop {
        let mut fds = [
            PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(RuntimeError::io(id, "wait for the init process")(e.into())),
        }
        let fifo_ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let init_died = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ready {
            let mut byte = [0u8; 1];
            match fifo.read(&mut byte) {
                Ok(1) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(RuntimeError::io(id, "read exec fifo")(e)),
            }
        }
        if init_died {
            let _ = std::fs::remove_file(&fifo_path);
            return Err(RuntimeError::Setup {
                id: id.to_string(),
                message: "the init process exited before it was started".into(),
            });
        }
    }
    std::fs::remove_file(&fifo_path).map_err(RuntimeError::io(id, "remove exec fifo"))?;
    Ok(())
}
