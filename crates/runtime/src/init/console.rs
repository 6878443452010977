//! The container's terminal: a pseudo-terminal from the container's own devpts, whose
//! controlling side is handed to whoever listens on the console socket.
//!
//! The multiplexer is opened inside the container (so the terminal belongs to its devpts
//! instance), the other side with `TIOCGPTPEER` (no path lookup at all), and that side is
//! bound onto `/dev/console` resolved inside the root (CVE-2025-52565 class: an image's
//! `/dev/console` symlink must not redirect the bind).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Both sides of a new pseudo-terminal.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// N of `/dev/pts/N`.
    pub number: u32,
}

nix::ioctl_write_ptr_bad!(tiocsptlck, libc::TIOCSPTLCK, libc::c_int);
nix::ioctl_read_bad!(tiocgptn, libc::TIOCGPTN, libc::c_uint);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Makes a pseudo-terminal from an open multiplexer (`/dev/ptmx` or `pts/ptmx`). Fails
/// if the file is not a multiplexer.
pub fn open_pty(master: OwnedFd) -> io::Result<Pty> {
    let unlock: libc::c_int = 0;
    let mut number: libc::c_uint = 0;
    // SAFETY: ioctls on an open descriptor with pointers to live locals of the right type.
    unsafe {
        tiocsptlck(master.as_raw_fd(), &unlock).map_err(io::Error::from)?;
        tiocgptn(master.as_raw_fd(), &mut number).map_err(io::Error::from)?;
    }
    // SAFETY: TIOCGPTPEER takes open flags as its integer argument and returns a new fd.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Pty {
        master,
        // SAFETY: the kernel just returned this descriptor.
        slave: unsafe { OwnedFd::from_raw_fd(slave) },
        number,
    })
}

/// Sets a terminal's size.
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ioctl with a pointer to a live winsize.
    unsafe { tiocswinsz(fd.as_raw_fd(), &ws) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Sends `fd` over a connected Unix socket with `name` as the message body (runc sends
/// the terminal's path; consumers such as containerd read the descriptor only).
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Receives one descriptor sent by [`send_fd`], with its name.
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<(OwnedFd, String)> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut received = None;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: SCM_RIGHTS handed us a new descriptor that nothing else owns.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if received.is_none() {
                    received = Some(owned);
                }
            }
        }
    }
    let len = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    received
        .map(|fd| (fd, name))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor in message"))
}

/// Makes `slave` the calling process's controlling terminal and its stdio, in a new
/// session.
pub fn make_controlling(slave: OwnedFd) -> io::Result<()> {
    nix::unistd::setsid().map_err(io::Error::from)?;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the stdio numbers; the old ones are replaced atomically.
        if unsafe { libc::dup2(slave.as_fd().as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
