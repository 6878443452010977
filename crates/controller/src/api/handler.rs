//! The API on the wire: `impl wire::Handler for ApiService`.
//!
//! Owns: decoding the request frame, answering a call with one `Response` frame, pumping a
//! watch's events as frames until the watch ends or the client stops reading, and what a
//! watch that cannot start looks like on the wire. Does not own: what the calls do
//! (`service`), the framing and its limits (`wire`).
//!
//! ```text
//! request bytes ─► decode Request ─┬─ garbage ─► Response::Error(Invalid)
//!                                  ├─ Watch ───► WatchEvent, WatchEvent, … (until TooOld,
//!                                  │             or the client stops the stream)
//!                                  │   refused ─► stream reset: FORBIDDEN or MALFORMED
//!                                  └─ other ───► one Response frame
//! ```
//!
//! A watch answers with `WatchEvent` frames only, so a watch refused before its first event
//! (a forbidden kind, a bad selector) is a stream reset with [`wire::frame::codes`]
//! `FORBIDDEN` or `MALFORMED` rather than a `Response` the client would not decode.

use bytes::Bytes;
use proto::api::{ApiError, ErrorCode, Request, Response};
use tracing::debug;
use wire::frame::{FrameError, FramedStream, codes};
use wire::{Handler, Peer};

use super::access::Caller;
use super::cluster::Cluster;
use super::service::ApiService;
use super::watch::WatchStream;

impl<C: Cluster> Handler for ApiService<C> {
    async fn call(
        &self,
        peer: Peer,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        {
            let caller = Caller::from(&peer);
            let request = match wire::frame::decode::<Request>(&request) {
                Ok(request) => request,
                Err(err) => {
                    debug!(caller = %caller, %err, "malformed api request");
                    let answer =
                        ApiError::new(ErrorCode::Invalid, format!("malformed request: {err}"));
                    return stream.send(&Response::Error(answer)).await;
                }
            };
            match request {
                Request::Watch {
                    kind,
                    namespace,
                    selector,
                    from_revision,
                } => {
                    match self.watch(&caller, kind, namespace, selector.as_deref(), from_revision) {
                        Ok(watch) => pump(watch, stream).await,
                        Err(err) => {
                            debug!(caller = %caller, %err, "watch refused");
                            stream.reset(match err.code {
                                ErrorCode::Forbidden => codes::FORBIDDEN,
                                ErrorCode::Invalid => codes::MALFORMED,
                                _ => codes::HANDLER,
                            });
                            Ok(())
                        }
                    }
                }
                call => {
                    let response = self.handle(&caller, call).await;
                    send_response(stream, &response).await
                }
            }
        }
    }
}

/// Sends `response`, or a `TooLarge` error in its place when it exceeds the frame limit.
async fn send_response(stream: &mut FramedStream, response: &Response) -> Result<(), FrameError> {
    match stream.send(response).await {
        Err(FrameError::TooLarge { len, max }) => {
            let answer = ApiError::new(
                ErrorCode::TooLarge,
                format!("answer of {len} bytes exceeds the frame limit of {max}: narrow the list"),
            );
            stream.send(&Response::Error(answer)).await
        }
        other => other,
    }
}

/// Sends the watch's events until it ends or the client stops reading.
async fn pump(mut watch: WatchStream, stream: &mut FramedStream) -> Result<(), FrameError> {
    loop {
        let event = tokio::select! {
            event = watch.next() => event,
            _ = stream.stopped() => return Ok(()),
        };
        match event {
            Some(event) => stream.send(&event).await?,
            None => return Ok(()),
        }
    }
}
