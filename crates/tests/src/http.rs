//! A small HTTP/1.1 server for tests that play a registry, a token server or a storage
//! host: it listens on 127.0.0.1, port 0, runs one thread per connection, answers each
//! request with what a handler returns, and records every request it saw. Dropping the
//! [`Server`] stops accepting and ends answers that hang.
//!
//! By default a connection carries one exchange (answers say `Connection: close`), so
//! an answer without `Content-Length` ends where the connection does. [`Options`] can
//! keep connections alive, as real registries do, so that a client's reuse of pooled
//! connections is exercised; and can speak HTTPS with certificates from a [`Pki`]
//! (rustls on the ring provider, optionally demanding a client certificate).
//!
//! Besides complete answers, a handler can stream an answer slowly or stop half-way
//! ([`Reply::Stream`]), which is how tests interrupt a download at a point they choose
//! instead of after a time; send bytes that are not HTTP at all ([`Reply::Raw`]); or
//! never answer ([`Reply::Hang`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The largest request body read (the tests' uploads are small images).
const MAX_BODY: usize = 64 << 20;

/// How long a connection may stay silent before its thread gives up on it, so that a
/// client that keeps a pooled connection open does not hold a thread forever.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest a [`Reply::Hang`] lasts when the server is not dropped first.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Every value of the query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Vec<String> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| percent_decode(k) == name)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

/// Decodes `%XX` escapes and `+` (a form's space).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the body of a [`Reply::Stream`]; an error ends the connection.
pub type StreamBody = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// What the server answers.
pub enum Reply {
    /// A complete answer; `Content-Length` is added from the body unless `headers`
    /// has one (a HEAD answer carries the length of what a GET would send).
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The status and headers (which should say `Content-Length`, or chunked), then
    /// whatever `body` writes; then the connection closes, since the body may have
    /// stopped short.
    Stream {
        status: u16,
        headers: Vec<(String, String)>,
        body: StreamBody,
    },
    /// These bytes and nothing else (no status line of the server's own), then the
    /// connection closes: for answers that are cut short or are not HTTP at all.
    Raw(Vec<u8>),
    /// Nothing, ever: the connection stays open and silent until the server is dropped
    /// (or 30 s have passed, so that a leaked server's threads still end).
    Hang,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Full { status, body, .. } => f
                .debug_struct("Full")
                .field("status", status)
                .field("body_len", &body.len())
                .finish_non_exhaustive(),
            Reply::Stream { status, .. } => f
                .debug_struct("Stream")
                .field("status", status)
                .finish_non_exhaustive(),
            Reply::Raw(bytes) => f.debug_struct("Raw").field("len", &bytes.len()).finish(),
            Reply::Hang => f.write_str("Hang"),
        }
    }
}

impl Reply {
    /// An answer with a body and headers.
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    /// An empty answer.
    pub fn status(status: u16) -> Reply {
        Reply::new(status, &[], Vec::new())
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(
            status,
            &[("Content-Type", "application/json")],
            value.to_string(),
        )
    }

    /// A 200 answer whose chunked body has no end: 64 KiB chunks until `total` bytes
    /// were sent or the client went away, then the connection closes without the last
    /// chunk. For clients that must cap what they read rather than trust the server.
    pub fn endless_chunks(total: usize) -> Reply {
        const CHUNK: usize = 64 * 1024;
        Reply::Stream {
            status: 200,
            headers: vec![("Transfer-Encoding".into(), "chunked".into())],
            body: Box::new(move |out: &mut dyn Write| {
                let chunk = format!("{CHUNK:x}\r\n{}\r\n", "x".repeat(CHUNK));
                let mut sent = 0;
                while sent < total {
                    out.write_all(chunk.as_bytes())?;
                    sent += CHUNK;
                }
                Ok(())
            }),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// How a [`Server`] speaks. The default: plain HTTP, one exchange a connection.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// HTTPS with this configuration (see [`Pki::server_config`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Read further requests on a connection after a [`Reply::Full`], without
    /// `Connection: close`, as a real registry does.
    pub keep_alive: bool,
}

/// A running server; stops accepting, and ends hanging answers, when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Request>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Starts a plain HTTP server on 127.0.0.1 and a free port, answering with
    /// `handler`, one exchange a connection.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_with(Options::default(), handler)
    }

    /// Starts a server on 127.0.0.1 and a free port, speaking as `options` say.
    pub fn start_with(
        options: Options,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (handler, seen, stop) = (handler.clone(), seen.clone(), stop.clone());
                    let options = options.clone();
                    std::thread::spawn(move || {
                        let _ = tcp.set_read_timeout(Some(READ_TIMEOUT));
                        let Some(conn) = Conn::accept(tcp, options.tls) else {
                            return;
                        };
                        serve(conn, &*handler, &seen, &stop, options.keep_alive);
                    });
                }
            })
        };
        Server {
            addr,
            stop,
            seen,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far, in the order they were read.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// One accepted connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    // Boxed: a TLS connection's state is much larger than a socket.
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    /// The connection over `tcp`; the TLS handshake happens on the first read.
    fn accept(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) -> Option<Conn> {
        Some(match tls {
            Some(config) => {
                let session = rustls::ServerConnection::new(config).ok()?;
                Conn::Tls(Box::new(rustls::StreamOwned::new(session, tcp)))
            }
            None => Conn::Plain(tcp),
        })
    }

    /// Ends the connection; over TLS with a close_notify first, so that a body that
    /// ends with the connection reads as complete rather than truncated.
    fn close(mut self) {
        let _ = self.flush();
        let tcp = match &mut self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                &tls.sock
            }
        };
        let _ = tcp.shutdown(Shutdown::Both);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn serve(
    conn: Conn,
    handler: &Handler,
    seen: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
    keep_alive: bool,
) {
    let mut reader = BufReader::new(conn);
    while let Some(request) = read_request(&mut reader) {
        if let Ok(mut s) = seen.lock() {
            s.push(request.clone());
        }
        let reply = handler(&request);
        let head_only = request.method == "HEAD";
        let out = reader.get_mut();
        let open = write_reply(out, reply, head_only, keep_alive, stop);
        if !matches!(open, Ok(true)) || out.flush().is_err() {
            break;
        }
    }
    reader.into_inner().close();
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    // Chunked first: a `Transfer-Encoding` overrides any `Content-Length`.
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).ok()?;
                break;
            }
            if body.len() + n > MAX_BODY {
                return None;
            }
            let start = body.len();
            body.resize(start + n, 0);
            reader.read_exact(&mut body[start..]).ok()?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        // Refused rather than cut: the rest would be read as the next request.
        if len > MAX_BODY {
            return None;
        }
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes `reply`; `Ok(true)` when the connection can carry another exchange.
fn write_reply(
    out: &mut Conn,
    reply: Reply,
    head_only: bool,
    keep_alive: bool,
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    let has_length = |headers: &[(String, String)]| {
        headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    };
    match reply {
        Reply::Full {
            status,
            mut headers,
            body,
        } => {
            if !has_length(&headers) {
                headers.push(("Content-Length".into(), body.len().to_string()));
            }
            write_head(out, status, &headers, !keep_alive)?;
            if !head_only {
                out.write_all(&body)?;
            }
            Ok(keep_alive)
        }
        Reply::Stream {
            status,
            headers,
            body,
        } => {
            write_head(out, status, &headers, true)?;
            if !head_only {
                body(out)?;
            }
            Ok(false)
        }
        Reply::Raw(bytes) => {
            out.write_all(&bytes)?;
            Ok(false)
        }
        Reply::Hang => {
            let deadline = Instant::now() + HANG_LIMIT;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(false)
        }
    }
}

fn write_head(
    out: &mut Conn,
    status: u16,
    headers: &[(String, String)],
    close: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

/// A CA, a server certificate for 127.0.0.1 and localhost signed by it, and a client
/// certificate signed by it; the CA and the client's pair as PEM files in a directory,
/// for clients to be configured with.
pub struct Pki {
    pub ca_file: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

// By hand: the derived form would print the server's private key.
impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Makes the CA and both certificates, writing `ca.pem`, `client.pem` and
    /// `client.key` into `dir`.
    pub fn new(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("generate the CA's key");
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("the CA's parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().expect("generate a leaf key");
            let cert = CertificateParams::new(names)
                .expect("a leaf's parameters")
                .signed_by(&key, &issuer)
                .expect("sign a leaf with the CA");
            (cert, key)
        };
        let (server, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client, client_key) = leaf(vec!["client.moor.test".into()]);
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        Pki {
            ca_file: write("ca.pem", ca.pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            server_chain: vec![server.der().clone()],
            server_key: server_key.serialize_der(),
            ca_der: ca.der().clone(),
        }
    }

    /// A server configuration for [`Options::tls`]; `require_client` demands a client
    /// certificate signed by the CA. The ring provider is passed explicitly, as the
    /// runtime does, so that no process-wide default is installed.
    pub fn server_config(&self, require_client: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions");
        let builder = if require_client {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.ca_der.clone())
                .expect("the CA as a client root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("a client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(self.server_key.clone().into());
        Arc::new(
            builder
                .with_single_cert(self.server_chain.clone(), key)
                .expect("the server certificate and its key"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_garbage() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull%2Cpush"),
            "repository:a/b:pull,push"
        );
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    /// Sends `requests` on one connection and reads until the server closes it.
    fn exchange(server: &Server, requests: &str) -> String {
        let mut tcp = TcpStream::connect(server.authority()).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        tcp.write_all(requests.as_bytes()).expect("send");
        tcp.shutdown(Shutdown::Write).expect("shut down writing");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).expect("read the answers");
        answer
    }

    #[test]
    fn connections_carry_one_exchange_unless_kept_alive() {
        let two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let answer = |req: &Request| Reply::new(200, &[], req.path().to_string());

        let once = Server::start(answer);
        let text = exchange(&once, two);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert_eq!(once.requests().len(), 1);

        let kept = Server::start_with(
            Options {
                keep_alive: true,
                ..Options::default()
            },
            answer,
        );
        let text = exchange(&kept, two);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        assert!(!text.contains("Connection: close"), "{text}");
        assert!(text.ends_with("\r\n\r\n/b"), "{text}");
        let paths: Vec<String> = kept.requests().iter().map(|r| r.path().into()).collect();
        assert_eq!(paths, ["/a", "/b"]);
    }
}
