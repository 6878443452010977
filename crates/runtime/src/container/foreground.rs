//! A container process run in the foreground (`run`, `exec` without `--detach`): the
//! runtime forwards the signals it receives, relays a terminal if the process has one
//! and no console socket took it, and ends with the process's exit code.
//!
//! Signals are blocked before the clone and read from a signalfd, so none is lost in the
//! window before the container process exists; the child unblocks them first thing.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::init::console;
use crate::sys;

/// Signals a foreground runtime passes on (all but those that only make sense for the
/// runtime itself: child status, and the synchronous faults).
fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGTRAP,
        Signal::SIGKILL,
        Signal::SIGSTOP,
    ] {
        set.remove(sig);
    }
    set
}

/// Blocks the forwarded signals and returns a signalfd that reads them.
pub fn block_signals() -> io::Result<SignalFd> {
    let set = forwarded();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(io::Error::from)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(io::Error::from)
}

/// Waits for the process behind `pidfd` to exit and reaps it; the result describes how.
pub fn reap(pidfd: &OwnedFd) -> io::Result<String> {
    let code = wait_code(pidfd)?;
    Ok(if code > 128 {
        format!("killed by signal {}", code - 128)
    } else {
        format!("exit code {code}")
    })
}

/// `waitid(P_PIDFD)`: the shell's convention, 128+N for death by signal N.
fn wait_code(pidfd: &OwnedFd) -> io::Result<i32> {
    loop {
        // SAFETY: zeroed siginfo is a valid buffer for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on a pidfd of our own child with a live siginfo buffer.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid succeeded for WEXITED, so si_status is the exit status or signal.
        let status = unsafe { info.si_status() };
        return Ok(if info.si_code == libc::CLD_EXITED {
            status
        } else {
            128 + status
        });
    }
}

/// The runtime's end of a terminal nobody else took: it copies between its own stdio
/// and the terminal, with its own terminal (if any) in raw mode meanwhile.
#[derive(Debug)]
pub struct Proxy {
    master: OwnedFd,
    saved: Option<nix::sys::termios::Termios>,
}

impl Proxy {
    /// Receives the terminal from the container process over the socket pair.
    pub fn receive(socket: OwnedFd) -> io::Result<Self> {
        let (master, _) = console::recv_fd(socket.as_fd())?;
        let stdin = io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(orig) = &saved {
            let mut raw = orig.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(
                stdin.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &raw,
            );
            resize_from(stdin.as_fd(), master.as_fd());
        }
        Ok(Self { master, saved })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(orig) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                orig,
            );
        }
    }
}

fn resize_from(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    // SAFETY: zeroed winsize is valid; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a pointer to a live winsize.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = console::set_size(to, ws.ws_row, ws.ws_col);
    }
}

/// Forwards signals (and relays the terminal) until the process exits; returns its code.
pub fn wait(pidfd: &OwnedFd, signals: Option<SignalFd>, proxy: Option<Proxy>) -> io::Result<i32> {
    let mut stdin_open = proxy.is_some();
    let mut master_open = proxy.is_some();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if let Some(sfd) = &signals {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        let stdin = io::stdin();
        if let Some(p) = &proxy {
            if master_open {
                fds.push(PollFd::new(p.master.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut idx = 1;
        if let Some(sfd) = &signals {
            if ready[idx] {
                while let Ok(Some(info)) = sfd.read_signal() {
                    let signo = info.ssi_signo as i32;
                    if signo == libc::SIGWINCH
                        && let Some(p) = &proxy
                    {
                        resize_from(stdin.as_fd(), p.master.as_fd());
                        continue;
                    }
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), signo);
                }
            }
            idx += 1;
        }
        if let Some(p) = &proxy {
            if master_open {
                if ready[idx] {
                    match nix::unistd::read(&p.master, &mut buf) {
                        Ok(0) | Err(_) => master_open = false,
                        Ok(n) => {
                            let mut out = io::stdout();
                            let _ = out.write_all(&buf[..n]);
                            let _ = out.flush();
                        }
                    }
                }
                idx += 1;
            }
            if stdin_open && ready[idx] {
                match stdin.lock().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(&p.master, &buf[..n]);
                    }
                }
            }
        }
        if ready[0] {
            // Drain what the terminal still holds before reporting the exit.
            if let Some(p) = &proxy {
                let _ = nix::fcntl::fcntl(
                    &p.master,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                while let Ok(n) = nix::unistd::read(&p.master, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let _ = io::stdout().write_all(&buf[..n]);
                }
                let _ = io::stdout().flush();
            }
            return wait_code(pidfd);
        }
    }
}
