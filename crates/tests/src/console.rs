//! The test's end of a console socket (`--console-socket`): accepting the runtime's
//! connection, receiving the terminal's controlling side over `SCM_RIGHTS`, and talking
//! to the program on the other side of it.
//!
//! ```text
//!  test: UnixListener::bind(sock) ◀── connect ── moor (container set-up)
//!        receive_terminal()       ◀── sendmsg(SCM_RIGHTS: pty master, "/dev/pts/N")
//!        Terminal::write / read_until  ◀──▶  the container's shell on /dev/pts/N
//! ```
//!
//! Done with `libc` directly: the harness does not depend on `nix`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Receives one descriptor sent over `socket` with `SCM_RIGHTS`, and the message body
/// that came with it (runc and moor send the terminal's name, `/dev/pts/N`).
pub fn recv_fd(socket: &UnixStream) -> io::Result<(OwnedFd, String)> {
    let mut body = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() * 8;
    // SAFETY: recvmsg on an open socket with buffers that outlive the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut received = None;
    // SAFETY: msg was filled by recvmsg; the CMSG_* macros walk its control buffer.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return a header inside the control buffer.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN only computes a size.
            let data_len = header.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
            // SAFETY: the data of an SCM_RIGHTS message is an array of descriptors.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
            for i in 0..data_len / size_of::<libc::c_int>() {
                // SAFETY: i is within the descriptors the kernel wrote (maybe unaligned).
                let raw = unsafe { data.add(i).read_unaligned() };
                // SAFETY: SCM_RIGHTS gave this process a new descriptor nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                received.get_or_insert(fd);
            }
        }
        // SAFETY: as above, within the buffer recvmsg filled.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let name = String::from_utf8_lossy(&body[..n as usize]).into_owned();
    received
        .map(|fd| (fd, name))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor in message"))
}

/// Accepts the runtime's connection on `listener` and receives the terminal from it;
/// fails after `deadline` if nobody connects (the runtime failed first, say).
pub fn receive_terminal(listener: &UnixListener, deadline: Duration) -> io::Result<Terminal> {
    listener.set_nonblocking(true)?;
    let end = Instant::now() + deadline;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nobody connected to the console socket within {deadline:?}"),
                ));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(deadline))?;
    let (master, name) = recv_fd(&stream)?;
    Ok(Terminal { master, name })
}

/// The controlling side of a container's terminal.
#[derive(Debug)]
pub struct Terminal {
    pub master: OwnedFd,
    /// What the runtime sent with it: the terminal's path inside the container.
    pub name: String,
}

impl Terminal {
    /// Types `text` into the terminal.
    pub fn write(&self, text: &str) -> io::Result<()> {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            // SAFETY: write from a live buffer to an open descriptor.
            let n =
                unsafe { libc::write(self.master.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            rest = &rest[n as usize..];
        }
        Ok(())
    }

    /// Reads until the output so far contains `needle`, the other side is closed, or
    /// `deadline` passes; returns everything read (with the terminal's `\r\n`s).
    pub fn read_until(&self, needle: &str, deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains(needle) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut pfd = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(1000) as libc::c_int;
            // SAFETY: poll on one live pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
            if ready <= 0 {
                continue;
            }
            // SAFETY: read into a live buffer from an open descriptor.
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // EIO: every descriptor of the other side is closed.
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
