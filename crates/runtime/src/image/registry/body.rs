//! Bodies, both ways: bounded reads of responses (and the errors they turn into), and
//! the exact-length body of an upload, which tells a failing source apart from a
//! failing connection.

use std::io::Read;

use ureq::Body;
use ureq::http::{self, Response};

use super::error::{ERROR_BODY_LIMIT, RegistryError, describe_error_body};

/// A response header as text, if present and printable.
pub(crate) fn header(response: &Response<Body>, name: http::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads a whole body, refusing one longer than `limit`.
pub(crate) fn read_limited(
    step: &'static str,
    host: &str,
    response: Response<Body>,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    if response.body().content_length().is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge {
            step,
            host: host.to_string(),
            limit,
        });
    }
    // ureq's limit refuses a body of exactly the limit, hence one more and a check.
    let bytes = response
        .into_body()
        .into_with_config()
        .limit(limit.saturating_add(1))
        .read_to_vec()
        .map_err(|e| body_error(step, host, e, limit))?;
    if bytes.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            step,
            host: host.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

/// A failure while reading a body, classified.
pub(crate) fn body_error(
    step: &'static str,
    host: &str,
    e: ureq::Error,
    limit: u64,
) -> RegistryError {
    let host = host.to_string();
    match e {
        ureq::Error::BodyExceedsLimit(_) => RegistryError::TooLarge { step, host, limit },
        ureq::Error::Io(source) => RegistryError::Body { step, host, source },
        ureq::Error::Timeout(t) => RegistryError::Body {
            step,
            host,
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, t.to_string()),
        },
        other => RegistryError::Connect {
            step,
            host,
            source: Box::new(other),
        },
    }
}

/// The error for a response whose status the step does not accept, with what the
/// registry said (a bounded read of its body).
pub(crate) fn status_error(
    step: &'static str,
    host: &str,
    response: Response<Body>,
) -> RegistryError {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .into_with_config()
        .limit(ERROR_BODY_LIMIT)
        .read_to_vec()
        .unwrap_or_default();
    RegistryError::Status {
        step,
        host: host.to_string(),
        status,
        message: describe_error_body(&body),
    }
}

/// A reader that yields exactly `left` bytes of `inner` and remembers why it failed, so
/// that a failing source is told apart from a failing connection.
pub(crate) struct ExactReader<'a> {
    pub inner: &'a mut dyn Read,
    pub left: u64,
    pub failure: Option<std::io::Error>,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let fail = |this: &mut Self, e: std::io::Error| {
            let copy = std::io::Error::new(e.kind(), e.to_string());
            this.failure = Some(e);
            Err(copy)
        };
        if self.left == 0 {
            // Look one byte further: a source longer than announced is an error too.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => fail(
                    self,
                    std::io::Error::other("the data is longer than the size given"),
                ),
                Err(e) => fail(self, e),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => fail(
                self,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the data ended {} bytes short of the size given", self.left),
                ),
            ),
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => fail(self, e),
        }
    }
}
