//! Framing: length-prefixed frames on QUIC streams, their limits, and payload encoding.
//!
//! Owns: the frame format (u32 big-endian length, then that many bytes), the per-stream
//! maximum frame size, timeouts for frames left half-written, the stream error codes,
//! and the postcard helpers. Does not own: what a frame means.
//!
//! ```text
//! ┌──────────────┬──────────────────────┐
//! │ len: u32 BE  │ len bytes (postcard)  │  … repeated until the sender finishes
//! └──────────────┴──────────────────────┘
//! len > max_frame ─► stream reset with TOO_LARGE; the connection lives on
//! ```

use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, SendStream, VarInt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default largest frame: 4 MiB.
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

/// Application error codes on streams and connections.
pub mod codes {
    use quinn::VarInt;
    /// Normal close (e.g. server shutting down).
    pub const CLOSED: VarInt = VarInt::from_u32(0);
    /// A frame that could not be read or decoded.
    pub const MALFORMED: VarInt = VarInt::from_u32(1);
    /// A frame larger than the stream's limit.
    pub const TOO_LARGE: VarInt = VarInt::from_u32(2);
    /// A frame or request that did not arrive in time.
    pub const TIMEOUT: VarInt = VarInt::from_u32(3);
    /// The handler failed.
    pub const HANDLER: VarInt = VarInt::from_u32(4);
    /// This call is not allowed for this peer.
    pub const FORBIDDEN: VarInt = VarInt::from_u32(5);
    /// Connection: the peer presented no usable certificate.
    pub const UNAUTHORIZED: VarInt = VarInt::from_u32(0x10);
    /// Connection: the peer's certificate is revoked.
    pub const REVOKED: VarInt = VarInt::from_u32(0x11);
}

/// Limits applied to one stream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame accepted.
    pub max_frame: usize,
    /// How long a frame may take once its first byte arrived, and how long a server
    /// waits for the request frame of a new stream.
    pub frame_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            frame_timeout: Duration::from_secs(10),
        }
    }
}

/// Errors of framing and encoding.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A length prefix larger than the limit.
    #[error("frame of {len} bytes exceeds limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// A frame did not complete in time.
    #[error("frame not complete within {after:?}")]
    Timeout { after: Duration },
    /// The peer reset its side of the stream.
    #[error("peer reset the stream with code {code}")]
    Reset { code: VarInt },
    /// The connection under the stream went away.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Reading failed otherwise.
    #[error("reading frame: {0}")]
    Read(quinn::ReadError),
    /// Writing failed.
    #[error("writing frame: {0}")]
    Write(quinn::WriteError),
    /// The stream was already finished or reset.
    #[error("stream already closed")]
    ClosedStream,
    /// A payload that postcard could not encode.
    #[error("encoding payload: {0}")]
    Encode(postcard::Error),
    /// A payload that postcard could not decode as the expected type.
    #[error("decoding payload: {0}")]
    Decode(postcard::Error),
}

impl FrameError {
    /// The stream error code to send back for this failure.
    pub fn code(&self) -> VarInt {
        match self {
            FrameError::TooLarge { .. } => codes::TOO_LARGE,
            FrameError::Timeout { .. } => codes::TIMEOUT,
            _ => codes::MALFORMED,
        }
    }

    /// Whether the same call might succeed if tried again (on this or another server).
    pub fn is_retryable(&self) -> bool {
        match self {
            FrameError::Connection(err) => connection_retryable(err),
            FrameError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Whether a lost connection is an outage (retry, maybe elsewhere) rather than a refusal
/// (bad or revoked certificate, wrong server), which retrying cannot fix.
pub fn connection_retryable(err: &quinn::ConnectionError) -> bool {
    use quinn::ConnectionError as E;
    match err {
        E::ApplicationClosed(close) => {
            close.error_code != codes::UNAUTHORIZED && close.error_code != codes::REVOKED
        }
        E::ConnectionClosed(close) => !is_tls_alert(close.error_code),
        E::TransportError(err) => !is_tls_alert(err.code),
        E::VersionMismatch => false,
        E::Reset | E::TimedOut | E::LocallyClosed | E::CidsExhausted => true,
    }
}

/// QUIC carries TLS alerts as transport codes 0x100..0x200 (RFC 9001 section 4.8).
fn is_tls_alert(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

impl From<quinn::WriteError> for FrameError {
    fn from(err: quinn::WriteError) -> Self {
        match err {
            quinn::WriteError::ConnectionLost(e) => FrameError::Connection(e),
            other => FrameError::Write(other),
        }
    }
}

impl From<quinn::ReadError> for FrameError {
    fn from(err: quinn::ReadError) -> Self {
        match err {
            quinn::ReadError::Reset(code) => FrameError::Reset { code },
            quinn::ReadError::ConnectionLost(e) => FrameError::Connection(e),
            other => FrameError::Read(other),
        }
    }
}

/// Encodes a payload with postcard.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    postcard::to_allocvec(value).map_err(FrameError::Encode)
}

/// Decodes a postcard payload; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(postcard::Error::DeserializeBadEncoding));
    }
    Ok(value)
}

/// Reads as many bytes as `buf` holds; `Ok(false)` if the stream ended before any.
async fn fill(recv: &mut RecvStream, buf: &mut [u8]) -> Result<bool, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match recv.read(&mut buf[filled..]).await? {
            Some(n) => filled += n,
            None if filled == 0 => return Ok(false),
            None => return Err(FrameError::Truncated),
        }
    }
    Ok(true)
}

/// Reads one frame. `Ok(None)` when the sender finished the stream between frames.
///
/// Waits for the first byte for as long as `wait` says (`None`: forever, for watches
/// that are idle for hours); once a frame began, it must complete within
/// `limits.frame_timeout`.
pub async fn read_frame(
    recv: &mut RecvStream,
    limits: &Limits,
    wait: Option<Duration>,
) -> Result<Option<Bytes>, FrameError> {
    let mut first = [0u8; 1];
    let started = match wait {
        Some(after) => tokio::time::timeout(after, fill(recv, &mut first))
            .await
            .map_err(|_| FrameError::Timeout { after })??,
        None => fill(recv, &mut first).await?,
    };
    if !started {
        return Ok(None);
    }
    let after = limits.frame_timeout;
    tokio::time::timeout(after, async {
        let mut rest = [0u8; 3];
        if !fill(recv, &mut rest).await? {
            return Err(FrameError::Truncated);
        }
        let len = u32::from_be_bytes([first[0], rest[0], rest[1], rest[2]]) as usize;
        if len > limits.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: limits.max_frame,
            });
        }
        let mut body = vec![0u8; len];
        if len > 0 && !fill(recv, &mut body).await? {
            return Err(FrameError::Truncated);
        }
        Ok(Some(Bytes::from(body)))
    })
    .await
    .map_err(|_| FrameError::Timeout { after })?
}

/// Writes one frame. Frames above `limits.max_frame` are refused before sending.
pub async fn write_frame(
    send: &mut SendStream,
    limits: &Limits,
    payload: &[u8],
) -> Result<(), FrameError> {
    if payload.len() > limits.max_frame {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max: limits.max_frame,
        });
    }
    // The check above keeps `len` within u32, as max_frame is far below 4 GiB in any
    // sane configuration; refuse rather than truncate if someone configures more.
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len(),
        max: u32::MAX as usize,
    })?;
    send.write_all(&len.to_be_bytes()).await?;
    send.write_all(payload).await?;
    Ok(())
}

/// One bidirectional stream carrying frames: a call, or a long-lived watch.
#[derive(Debug)]
pub struct FramedStream {
    send: SendStream,
    recv: RecvStream,
    limits: Limits,
}

impl FramedStream {
    /// Wraps the two halves of a bidirectional stream.
    pub fn new(send: SendStream, recv: RecvStream, limits: Limits) -> Self {
        FramedStream { send, recv, limits }
    }

    /// The next frame, waiting as long as it takes for it to begin; `None` at a clean end.
    pub async fn recv_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        read_frame(&mut self.recv, &self.limits, None).await
    }

    /// The next frame, which must begin within `wait`.
    pub async fn recv_frame_within(&mut self, wait: Duration) -> Result<Option<Bytes>, FrameError> {
        read_frame(&mut self.recv, &self.limits, Some(wait)).await
    }

    /// The next frame decoded as `T`; `None` at a clean end.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.recv_frame().await? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        write_frame(&mut self.send, &self.limits, payload).await
    }

    /// Sends `value` encoded with postcard as one frame.
    pub async fn send<T: Serialize>(&mut self, value: &T) -> Result<(), FrameError> {
        let bytes = encode(value)?;
        self.send_frame(&bytes).await
    }

    /// Ends our sending side cleanly: the peer reads `None` after the last frame.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        self.send.finish().map_err(|_| FrameError::ClosedStream)
    }

    /// Abandons the stream in both directions with `code`.
    pub fn reset(&mut self, code: VarInt) {
        // Either side may already be closed; nothing more to do then.
        let _ = self.send.reset(code);
        let _ = self.recv.stop(code);
    }

    /// Resolves when the peer stops reading (e.g. a watcher went away), with its code.
    pub async fn stopped(&mut self) -> Option<VarInt> {
        self.send.stopped().await.ok().flatten()
    }

    /// The two halves, for a watch that reads and writes concurrently.
    pub fn into_parts(self) -> (SendStream, RecvStream, Limits) {
        (self.send, self.recv, self.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Msg {
        a: u32,
        b: String,
    }

    #[test]
    fn postcard_round_trips_and_rejects_trailing_bytes() {
        let msg = Msg {
            a: 7,
            b: "x".into(),
        };
        let mut bytes = encode(&msg).unwrap();
        assert_eq!(decode::<Msg>(&bytes).unwrap(), msg);
        bytes.push(0);
        assert!(matches!(decode::<Msg>(&bytes), Err(FrameError::Decode(_))));
        assert!(matches!(decode::<Msg>(&[0xff]), Err(FrameError::Decode(_))));
    }

    #[test]
    fn codes_follow_the_failure() {
        assert_eq!(
            FrameError::TooLarge { len: 9, max: 1 }.code(),
            codes::TOO_LARGE
        );
        let timeout = FrameError::Timeout {
            after: Duration::from_secs(1),
        };
        assert_eq!(timeout.code(), codes::TIMEOUT);
        assert!(timeout.is_retryable());
        assert_eq!(FrameError::Truncated.code(), codes::MALFORMED);
        assert!(!FrameError::Truncated.is_retryable());
    }
}
