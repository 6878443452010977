//! A registry played by the test, for what a real one will not do: serve a manifest
//! larger than the distribution spec allows, lie about content, or send a blob half
//! way and then hold it until the test says go on (to kill a pull mid-download, or to
//! make two pulls overlap, at a point the test chooses rather than after a delay).
//!
//! Read-only (the distribution API's GET and HEAD of manifests and blobs), plain HTTP
//! on 127.0.0.1, anonymous.
//!
//! ```text
//! GET /v2/                                  200 {}
//! GET|HEAD /v2/<repo>/manifests/<tag|digest>   the stored bytes, its media type, Docker-Content-Digest
//! GET|HEAD /v2/<repo>/blobs/<digest>           the stored bytes; blobs of `hold_from` bytes or more:
//!                                              half, then wait for `release`
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::json;

use crate::http::{Reply, Request, Server};
use crate::oci;

/// A manifest as served.
#[derive(Debug, Clone)]
struct Manifest {
    bytes: Arc<Vec<u8>>,
    content_type: String,
    /// Send `Content-Length` (else the body ends when the connection closes).
    sized: bool,
}

#[derive(Debug, Default)]
struct Content {
    /// `repo` → tag or digest → manifest.
    manifests: HashMap<String, HashMap<String, Manifest>>,
    /// digest → bytes (any repository).
    blobs: HashMap<String, Arc<Vec<u8>>>,
}

/// Whether large blobs are held half-sent.
#[derive(Debug, Default)]
struct Gate {
    /// `Some(n)`: blobs of at least n bytes stop half-way until released.
    hold_from: Mutex<Option<usize>>,
    changed: Condvar,
    /// Bytes of held blobs sent before stopping, in total.
    half_sent: AtomicU64,
}

impl Gate {
    fn threshold(&self) -> Option<usize> {
        self.hold_from.lock().map(|h| *h).unwrap_or(None)
    }

    /// Waits until nothing is held any more.
    fn wait_open(&self) {
        let Ok(mut held) = self.hold_from.lock() else {
            return;
        };
        while held.is_some() {
            held = match self.changed.wait(held) {
                Ok(h) => h,
                Err(_) => return,
            };
        }
    }
}

/// The registry; stops serving (and lets held blobs go) when dropped.
#[derive(Debug)]
pub struct FakeRegistry {
    content: Arc<Mutex<Content>>,
    gate: Arc<Gate>,
    server: Option<Server>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let content: Arc<Mutex<Content>> = Arc::default();
        let gate: Arc<Gate> = Arc::default();
        let server = {
            let (content, gate) = (content.clone(), gate.clone());
            Server::start(move |req| answer(req, &content, &gate))
        };
        FakeRegistry {
            content,
            gate,
            server: Some(server),
        }
    }

    fn server(&self) -> &Server {
        match &self.server {
            Some(s) => s,
            None => unreachable!("the server lives as long as the registry"),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.server().authority()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.server().requests()
    }

    /// Serves `bytes` as the manifest `repo:tag` and `repo@digest`, with `Content-Type:
    /// content_type`; `sized: false` leaves out `Content-Length`.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        bytes: Vec<u8>,
        content_type: &str,
        sized: bool,
    ) {
        let m = Manifest {
            bytes: Arc::new(bytes),
            content_type: content_type.to_string(),
            sized,
        };
        let digest = oci::digest(&m.bytes);
        if let Ok(mut c) = self.content.lock() {
            let repo = c.manifests.entry(repo.to_string()).or_default();
            repo.insert(tag.to_string(), m.clone());
            repo.insert(digest, m);
        }
    }

    /// Serves `bytes` as a blob under its digest.
    pub fn put_blob(&self, bytes: Vec<u8>) {
        if let Ok(mut c) = self.content.lock() {
            c.blobs.insert(oci::digest(&bytes), Arc::new(bytes));
        }
    }

    /// From now on, blobs of `min_size` bytes or more are sent half and held.
    pub fn hold_blobs(&self, min_size: usize) {
        if let Ok(mut h) = self.gate.hold_from.lock() {
            *h = Some(min_size);
        }
        self.gate.changed.notify_all();
    }

    /// Lets every held blob go on, and sends blobs whole from now on.
    pub fn release_blobs(&self) {
        if let Ok(mut h) = self.gate.hold_from.lock() {
            *h = None;
        }
        self.gate.changed.notify_all();
    }

    /// Bytes sent of held blobs before they stopped (0: none has reached its half).
    pub fn half_sent(&self) -> u64 {
        self.gate.half_sent.load(Ordering::SeqCst)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.release_blobs();
        self.server.take();
    }
}

fn not_found(what: &str) -> Reply {
    Reply::json(
        404,
        &json!({"errors": [{"code": "NOT_FOUND", "message": format!("{what} not found")}]}),
    )
}

fn answer(req: &Request, content: &Mutex<Content>, gate: &Arc<Gate>) -> Reply {
    if req.method != "GET" && req.method != "HEAD" {
        return Reply::status(405);
    }
    let path = req.path();
    if path == "/v2/" || path == "/v2" {
        return Reply::json(200, &json!({}));
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found("path");
    };
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        let found = content.lock().ok().and_then(|c| {
            c.manifests
                .get(repo)
                .and_then(|m| m.get(reference))
                .cloned()
        });
        let Some(m) = found else {
            return not_found("manifest");
        };
        let digest = oci::digest(&m.bytes);
        let mut headers = vec![
            ("Content-Type".to_string(), m.content_type.clone()),
            ("Docker-Content-Digest".to_string(), digest),
        ];
        if m.sized {
            headers.push(("Content-Length".to_string(), m.bytes.len().to_string()));
        }
        let bytes = m.bytes.clone();
        return Reply::Stream {
            status: 200,
            headers,
            body: Box::new(move |out: &mut dyn Write| out.write_all(&bytes)),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        let found = content
            .lock()
            .ok()
            .and_then(|c| c.blobs.get(digest).cloned());
        let Some(bytes) = found else {
            return not_found("blob");
        };
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/octet-stream".to_string(),
            ),
            ("Content-Length".to_string(), bytes.len().to_string()),
            ("Docker-Content-Digest".to_string(), digest.to_string()),
        ];
        let held = req.method == "GET" && gate.threshold().is_some_and(|min| bytes.len() >= min);
        let gate = gate.clone();
        return Reply::Stream {
            status: 200,
            headers,
            body: Box::new(move |out: &mut dyn Write| {
                if !held {
                    return out.write_all(&bytes);
                }
                let half = bytes.len() / 2;
                out.write_all(&bytes[..half])?;
                out.flush()?;
                gate.half_sent.fetch_add(half as u64, Ordering::SeqCst);
                gate.wait_open();
                out.write_all(&bytes[half..])
            }),
        };
    }
    not_found("path")
}
