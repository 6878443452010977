//! Blobs: stream one down, check one exists, push one up (or mount it from another
//! repository of the same registry).
//!
//! ```text
//! fetch   GET /v2/<name>/blobs/<digest>  (-> redirects, often to a CDN: no Authorization there)
//! exists  HEAD /v2/<name>/blobs/<digest>
//! push    POST /v2/<name>/blobs/uploads/            -> 202, Location (relative or absolute)
//!         PUT  <Location>&digest=<digest>, the bytes -> 201
//! mount   POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other> -> 201
//! ```
//!
//! A fetched blob is not verified here: the store hashes it as it writes, and refuses
//! it there. The upload is monolithic (one PUT): chunked uploads would allow resuming,
//! which nothing needs yet.

use std::io::{self, Read};

use ureq::BodyReader;
use ureq::http::{self, Method};

use super::body::{header, status_error};
use super::client::{Payload, Request};
use super::error::RegistryError;
use super::{Registry, pull_scope, push_scope};
use crate::image::digest::Digest;

/// A blob being downloaded. Reading it fails (with the host in the message) if the
/// connection breaks, stalls past the read timeout, or sends more than the size hint.
pub struct BlobReader {
    inner: BodyReader<'static>,
    host: String,
    length: Option<u64>,
    limit: u64,
    read: u64,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("host", &self.host)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// The size the server announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.length
    }

    /// The host the bytes come from (after redirects).
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("fetch blob at {}: {e}", self.host)))?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "fetch blob at {}: more than the {} bytes expected",
                    self.host, self.limit
                ),
            ));
        }
        Ok(n)
    }
}

/// What `push_blob` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry had it already; nothing was sent.
    Existed,
    Uploaded,
}

/// Counts bytes for a progress callback as they are read.
struct Progress<'a, R> {
    inner: R,
    done: u64,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.report)(self.done);
        Ok(n)
    }
}

impl Registry {
    /// Streams a blob from the first endpoint that has it. `size_hint` (the size the
    /// manifest gives) refuses a larger `Content-Length` up front and cuts the stream
    /// beyond it; the caller verifies the digest while storing.
    pub fn fetch_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size_hint: Option<u64>,
    ) -> Result<BlobReader, RegistryError> {
        let step = "fetch blob";
        self.check_repository(repository)?;
        self.on_pull_endpoints(step, repository, |ep| {
            let host = ep.api.authority().to_string();
            let scope = pull_scope(&ep.repository);
            let req = Request {
                step,
                method: Method::GET,
                url: ep
                    .api
                    .with_path(&format!("/{}/blobs/{digest}", ep.repository)),
                auth_host: &host,
                scope: &scope,
                headers: Vec::new(),
                payload: Payload::Empty,
            };
            let (response, url) = self.follow(req)?;
            let answered = url.authority().to_string();
            if response.status() != 200 {
                return Err(status_error(step, &answered, response));
            }
            let length = response.body().content_length();
            let limit = size_hint.unwrap_or(u64::MAX);
            if length.is_some_and(|n| n > limit) {
                return Err(RegistryError::TooLarge {
                    step,
                    host: answered,
                    limit,
                });
            }
            // One byte past the hint is read, to be refused below rather than by ureq
            // (whose limit also refuses a body of exactly the limit).
            let inner = response
                .into_body()
                .into_with_config()
                .limit(limit.saturating_add(1))
                .reader();
            Ok(BlobReader {
                inner,
                host: answered,
                length,
                limit,
                read: 0,
            })
        })
    }

    /// Whether the registry (the origin, not a mirror) has the blob in `repository`.
    pub fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let step = "check blob";
        self.check_repository(repository)?;
        let ep = self.push_endpoint(step, repository)?;
        let host = ep.api.authority().to_string();
        let scope = pull_scope(repository);
        let mut req = Request {
            step,
            method: Method::HEAD,
            url: ep.api.with_path(&format!("/{repository}/blobs/{digest}")),
            auth_host: &host,
            scope: &scope,
            headers: Vec::new(),
            payload: Payload::Empty,
        };
        let response = self.send(&mut req)?;
        match response.status().as_u16() {
            200 => Ok(true),
            // A redirect to storage means the registry has it; following it with HEAD
            // could fail on URLs signed for GET.
            301 | 302 | 303 | 307 | 308 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(step, &host, response)),
        }
    }

    /// Uploads a blob of `size` bytes read from `data` (unless the registry has it),
    /// calling `progress` with the number of bytes sent so far. The registry checks the
    /// digest; data shorter or longer than `size` is an error.
    pub fn push_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<BlobPush, RegistryError> {
        if self.blob_exists(repository, digest)? {
            return Ok(BlobPush::Existed);
        }
        let location =
            self.start_upload(repository, None)?
                .ok_or_else(|| RegistryError::Protocol {
                    step: "start upload",
                    host: self.registry.clone(),
                    reason: "the upload completed before any data was sent".into(),
                })?;
        let step = "upload blob";
        let ep = self.push_endpoint(step, repository)?;
        let host = ep.api.authority().to_string();
        let scope = push_scope(repository);
        let mut reader = Progress {
            inner: data,
            done: 0,
            report: progress,
        };
        let mut req = Request {
            step,
            method: Method::PUT,
            url: location.with_query("digest", &digest.to_string()),
            auth_host: &host,
            scope: &scope,
            headers: vec![(
                http::header::CONTENT_TYPE,
                "application/octet-stream".into(),
            )],
            payload: Payload::Reader(&mut reader, size),
        };
        let response = self.send(&mut req)?;
        let answered = req.url.authority().to_string();
        if response.status() != 201 {
            return Err(status_error(step, &answered, response));
        }
        Ok(BlobPush::Uploaded)
    }

    /// Asks the registry to link a blob it holds in `from` into `repository`, without
    /// sending it. `false` when it would not (the blob must then be pushed).
    pub fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, RegistryError> {
        Ok(self
            .start_upload(repository, Some((digest, from)))?
            .is_none())
    }

    /// POSTs an upload (or a mount). `None` when the registry completed it (a mount), else
    /// the URL to send the data to. An upload started for a refused mount is cancelled.
    fn start_upload(
        &self,
        repository: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Option<super::url::Url>, RegistryError> {
        self.check_repository(repository)?;
        if let Some((_, from)) = mount {
            self.check_repository(from)?;
        }
        let step = if mount.is_some() {
            "mount blob"
        } else {
            "start upload"
        };
        let ep = self.push_endpoint(step, repository)?;
        let host = ep.api.authority().to_string();
        let mut url = ep.api.with_path(&format!("/{repository}/blobs/uploads/"));
        let mut scope = push_scope(repository);
        if let Some((digest, from)) = mount {
            url = url
                .with_query("mount", &digest.to_string())
                .with_query("from", from);
            scope = format!("{scope} {}", pull_scope(from));
        }
        let mut req = Request {
            step,
            method: Method::POST,
            url,
            auth_host: &host,
            scope: &scope,
            headers: Vec::new(),
            payload: Payload::Empty,
        };
        let response = self.send(&mut req)?;
        let answered = req.url.authority().to_string();
        match response.status().as_u16() {
            201 if mount.is_some() => Ok(None),
            202 => {
                let location = header(&response, http::header::LOCATION).ok_or_else(|| {
                    RegistryError::Protocol {
                        step,
                        host: answered.clone(),
                        reason: "HTTP 202 without a Location".into(),
                    }
                })?;
                let upload = req
                    .url
                    .join(&location)
                    .map_err(|e| RegistryError::Protocol {
                        step,
                        host: answered.clone(),
                        reason: format!("Location {location:.200?}: {e}"),
                    })?;
                if mount.is_none() {
                    return Ok(Some(upload));
                }
                self.cancel_upload(&upload, &host, &scope);
                Ok(Some(upload))
            }
            _ => Err(status_error(step, &answered, response)),
        }
    }

    /// Best effort: the registry expires abandoned uploads anyway.
    fn cancel_upload(&self, upload: &super::url::Url, host: &str, scope: &str) {
        let mut req = Request {
            step: "cancel upload",
            method: Method::DELETE,
            url: upload.clone(),
            auth_host: host,
            scope,
            headers: Vec::new(),
            payload: Payload::Empty,
        };
        if let Err(e) = self.send(&mut req) {
            tracing::debug!(error = %e, "cancelling an upload");
        }
    }
}
