//! The tiny protocol between the runtime and the process it cloned, over a
//! `SOCK_SEQPACKET` socket pair (so each message arrives whole).
//!
//! ```text
//! child  -> parent   R            set-up done, waiting to be started
//! child  -> parent   E<message>   set-up failed (the child exits next)
//! parent -> child    S            start (run); recorded, wait at the exec fifo (create)
//! ```
//!
//! The child's end is close-on-exec: when the user's program starts, the parent reads
//! end-of-file, which is how it learns that `execve` succeeded.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Longest error message carried; longer ones are cut.
const MAX_MESSAGE: usize = 8192;

/// One message from the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ready,
    Start,
    Error(String),
    /// The other side closed its end (or exec'd).
    Closed,
}

/// A connected pair of close-on-exec sequenced-packet sockets.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills the two-element array on success.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends a message; a peer that has gone away is not an error worth reporting.
pub fn send(fd: BorrowedFd<'_>, message: &Message) -> io::Result<()> {
    let bytes: Vec<u8> = match message {
        Message::Ready => b"R".to_vec(),
        Message::Start => b"S".to_vec(),
        Message::Error(text) => {
            let mut b = Vec::with_capacity(text.len() + 1);
            b.push(b'E');
            b.extend_from_slice(&text.as_bytes()[..text.len().min(MAX_MESSAGE)]);
            b
        }
        Message::Closed => return Ok(()),
    };
    // SAFETY: sending from a live buffer on an open socket.
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for the next message.
pub fn recv(fd: BorrowedFd<'_>) -> io::Result<Message> {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        // SAFETY: receiving into a live buffer of the given length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(parse(&buf[..n as usize]));
    }
}

/// Decodes one packet; anything unrecognised is reported as an error message rather than
/// trusted.
pub fn parse(packet: &[u8]) -> Message {
    match packet.split_first() {
        None => Message::Closed,
        Some((b'R', [])) => Message::Ready,
        Some((b'S', [])) => Message::Start,
        Some((b'E', text)) => Message::Error(String::from_utf8_lossy(text).into_owned()),
        Some(_) => Message::Error(format!(
            "unexpected message of {} bytes from the container process",
            packet.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_round_trip_and_close_is_seen() {
        let (a, b) = pair().expect("pair");
        send(a.as_fd(), &Message::Ready).expect("send");
        send(a.as_fd(), &Message::Error("mount /proc: EPERM".into())).expect("send");
        assert_eq!(recv(b.as_fd()).expect("recv"), Message::Ready);
        assert_eq!(
            recv(b.as_fd()).expect("recv"),
            Message::Error("mount /proc: EPERM".into())
        );
        drop(a);
        assert_eq!(recv(b.as_fd()).expect("recv"), Message::Closed);
    }

    #[test]
    fn junk_packets_are_errors_not_commands() {
        assert!(matches!(parse(b"RR"), Message::Error(_)));
        assert!(matches!(parse(b"\xff"), Message::Error(_)));
        assert_eq!(parse(b"E\xff"), Message::Error("\u{fffd}".into()));
    }
}
