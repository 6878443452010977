//! `moor get KIND [NAME] --watch`: the list, then every change as it commits, as kubectl
//! prints them, until interrupted.
//!
//! Owns: following one kind across dropped connections, failovers and expired history
//! without missing or repeating a change, and printing each change (a table row, a YAML
//! document, a JSON line or a name). Does not own: the columns (`print`), the connection
//! and its failover (`wire::Client`), or what the controller keeps (`WatchEvent`).
//!
//! ```text
//! list (or get NAME) ─► print ─► Watch { from: list revision } ─► event ─► print ─┐
//!      ▲                                 ▲                              ◄────────┘
//!      │ TooOld: list again, print all   │ stream lost (controller gone, failover):
//!      └─────────────────────────────────┤ wait a jittered moment, watch again from
//!                                        └ the last complete revision on any controller
//! ends: SIGINT/SIGTERM, stdout closed, stdin (a pipe or socket) closed ─► exit 0
//!       forbidden, malformed, a refused certificate ─► exit 1
//! ```
//!
//! A revision's events (one apply of several objects) arrive one by one, so a stream lost
//! in the middle of one resumes from the revision before it, and the events of it already
//! printed are skipped when they come again ([`Cursor`]).
//!
//! Layout: this file has the loop and its IO (signals, stdin and stdout watchers, the
//! streams); `cursor.rs` the pure resume and retry decisions; `print.rs` the output.

mod cursor;
mod print;

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use proto::api::{Consistency, ObjectKey, Request, Response, WatchEvent};
use proto::{Kind, Object};
use wire::frame::codes;
use wire::{ClientError, FrameError};

use super::{Failure, Session, unexpected};
use cursor::{Backoff, Cursor};
pub(crate) use print::{Change, Printer, Style};

/// A watch's transport: keep-alives every 2 s and a 10 s idle timeout, so a controller
/// that died without closing (power cut, kill -9) is noticed within seconds rather than
/// the 30 s of one-shot commands, which never wait that long anyway.
pub(crate) const TRANSPORT: wire::TransportOptions = wire::TransportOptions {
    keep_alive: Duration::from_secs(2),
    idle_timeout: Duration::from_secs(10),
    max_streams: 128,
};

/// What one watch follows.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub kind: Kind,
    /// One object by name (the controller filters by kind, namespace and selector only).
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub selector: Option<String>,
    pub consistency: Consistency,
}

/// How one watch stream ended.
enum Ended {
    /// The history no longer reaches back: list again.
    TooOld,
    /// The stream or its connection went away: watch again, maybe elsewhere.
    Lost(String),
    /// Nothing more can be printed: stop quietly.
    OutputClosed,
    /// A refusal that trying again will not change.
    Failed(Failure),
}

/// Runs a watch until it is interrupted, its output or input closes, or it is refused.
pub(crate) fn run(session: &Session, spec: &Spec, style: Style) -> Result<(), Failure> {
    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel::<()>();
    watch_stdio(&tx);
    let mut printer = Printer::new(std::io::stdout(), spec.kind, style);
    session.runtime().block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt =
            signal(SignalKind::interrupt()).map_err(|e| anyhow!("listen for SIGINT: {e}"))?;
        let mut terminate =
            signal(SignalKind::terminate()).map_err(|e| anyhow!("listen for SIGTERM: {e}"))?;
        tokio::select! {
            result = follow(session, spec, &mut printer) => result,
            _ = interrupt.recv() => Ok(()),
            _ = terminate.recv() => Ok(()),
            _ = closed.recv() => Ok(()),
        }
    })
}

/// Reports on `tx` when stdout's reader goes away while nothing is being printed, or
/// stdin (when it is a pipe or a socket, as under ssh) reaches its end. A terminal, a file
/// or /dev/null is left alone: it never says "closed".
fn watch_stdio(tx: &tokio::sync::mpsc::UnboundedSender<()>) {
    if is_pipe_or_socket(libc::STDIN_FILENO) {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            loop {
                match std::io::Read::read(&mut stdin, &mut sink) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
    }
    if is_pipe_or_socket(libc::STDOUT_FILENO) {
        let tx = tx.clone();
        std::thread::spawn(move || {
            loop {
                // Asks for no events: poll still reports POLLERR (a pipe whose reader
                // closed) and POLLHUP (a socket or terminal hung up).
                let mut fd = libc::pollfd {
                    fd: libc::STDOUT_FILENO,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                let n = unsafe { libc::poll(&mut fd, 1, -1) };
                if n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                    break;
                }
                if n < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    return;
                }
            }
            let _ = tx.send(());
        });
    }
}

fn is_pipe_or_socket(fd: libc::c_int) -> bool {
    // SAFETY: fstat fills a zeroed stat of the right type; fd is one of the standard ones.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return false;
    }
    matches!(stat.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
}

async fn follow<W: Write>(
    session: &Session,
    spec: &Spec,
    printer: &mut Printer<W>,
) -> Result<(), Failure> {
    let mut backoff = Backoff::new();
    // The first list fails as `get` would: a wrong config or a dead cluster says so now.
    let (objects, revision) = match session.answer(first_list(session, spec).await)? {
        Response::Object { object, revision } => (vec![*object], revision),
        Response::List { objects, revision } => (objects, revision),
        other => return Err(unexpected(&other)),
    };
    let mut cursor = Cursor::new(revision);
    if let Err(e) = printer.show(Change::Listed, &objects, SystemTime::now()) {
        return output_closed(e);
    }
    let mut failed_over = false;
    loop {
        match stream(
            session,
            spec,
            &mut cursor,
            printer,
            &mut backoff,
            failed_over,
        )
        .await
        {
            Ended::TooOld => {
                failed_over = false;
                tokio::time::sleep(backoff.delay()).await;
                let (objects, revision) = relist(session, spec, &mut backoff).await?;
                cursor = Cursor::new(revision);
                if let Err(e) = printer.show(Change::Listed, &objects, SystemTime::now()) {
                    return output_closed(e);
                }
            }
            Ended::Lost(why) => {
                failed_over = true;
                let wait = backoff.delay();
                eprintln!(
                    "moor: watch interrupted ({why}); resuming after revision {} in {}ms",
                    cursor.resume_from(),
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
            Ended::OutputClosed => return Ok(()),
            Ended::Failed(failure) => return Err(failure),
        }
    }
}

fn output_closed(e: std::io::Error) -> Result<(), Failure> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Failure::Refused(anyhow!("write to standard output: {e}")))
    }
}

/// The starting point: the named object (not found is an error, as with `get`), or the list.
async fn first_list(session: &Session, spec: &Spec) -> Result<Response, ClientError> {
    match &spec.name {
        Some(name) => {
            let key = ObjectKey {
                kind: spec.kind,
                namespace: spec.namespace.clone(),
                name: name.clone(),
            };
            session
                .call_raw(&Request::Get {
                    key,
                    consistency: spec.consistency,
                })
                .await
        }
        None => session.call_raw(&list_request(spec)).await,
    }
}

fn list_request(spec: &Spec) -> Request {
    Request::List {
        kind: spec.kind,
        namespace: spec.namespace.clone(),
        selector: spec.selector.clone(),
        consistency: spec.consistency,
    }
}

/// Lists again after the history ran out, waiting out outages; a named watch lists the
/// kind and keeps the one object (which may be gone by now: then nothing is printed).
async fn relist(
    session: &Session,
    spec: &Spec,
    backoff: &mut Backoff,
) -> Result<(Vec<Object>, u64), Failure> {
    loop {
        match session.answer(session.call_raw(&list_request(spec)).await) {
            Ok(Response::List { objects, revision }) => {
                let objects = objects.into_iter().filter(|o| wanted(spec, o)).collect();
                return Ok((objects, revision));
            }
            Ok(other) => return Err(unexpected(&other)),
            Err(Failure::Unreachable(e)) => {
                let wait = backoff.delay();
                eprintln!("moor: {e:#}; listing again in {}ms", wait.as_millis());
                tokio::time::sleep(wait).await;
            }
            Err(refused) => return Err(refused),
        }
    }
}

fn wanted(spec: &Spec, object: &Object) -> bool {
    spec.name
        .as_deref()
        .is_none_or(|name| object.metadata().name == name)
}

/// Follows one watch stream until it ends.
async fn stream<W: Write>(
    session: &Session,
    spec: &Spec,
    cursor: &mut Cursor,
    printer: &mut Printer<W>,
    backoff: &mut Backoff,
    failed_over: bool,
) -> Ended {
    let request = Request::Watch {
        kind: spec.kind,
        namespace: spec.namespace.clone(),
        selector: spec.selector.clone(),
        from_revision: cursor.resume_from(),
    };
    let bytes = match wire::frame::encode(&request) {
        Ok(bytes) => bytes,
        Err(e) => return Ended::Failed(Failure::Refused(anyhow!("encode the watch: {e}"))),
    };
    let mut stream = match session.client().open(&bytes).await {
        Ok(stream) => stream,
        Err(e) if e.is_retryable() => {
            return Ended::Lost(format!(
                "no controller answered ({}): {e}",
                session.described()
            ));
        }
        Err(e) => return Ended::Failed(Failure::Refused(anyhow!("{e}"))),
    };
    // The request is all this side sends.
    let _ = stream.finish();
    if failed_over {
        // Another controller may answer now; the group may have changed meanwhile.
        session.refresh().await;
    }
    loop {
        let event = match stream.recv::<WatchEvent>().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ended::Lost("the controller ended the watch".into()),
            Err(e) => return stream_error(spec.kind, e),
        };
        let (change, object, revision) = match event {
            WatchEvent::Added { object, revision } => (Change::Added, object, revision),
            WatchEvent::Modified { object, revision } => (Change::Modified, object, revision),
            WatchEvent::Deleted { object, revision } => (Change::Deleted, object, revision),
            WatchEvent::Bookmark { revision } => {
                backoff.reset();
                cursor.bookmark(revision);
                continue;
            }
            WatchEvent::TooOld { .. } => return Ended::TooOld,
        };
        backoff.reset();
        if !cursor.accept(revision, ObjectKey::of(&object)) || !wanted(spec, &object) {
            continue;
        }
        if let Err(e) = printer.show(change, std::slice::from_ref(&*object), SystemTime::now()) {
            return match output_closed(e) {
                Ok(()) => Ended::OutputClosed,
                Err(failure) => Ended::Failed(failure),
            };
        }
    }
}

/// What a failed stream means: refusals end the command, the rest is an outage.
fn stream_error(kind: Kind, e: FrameError) -> Ended {
    match e {
        FrameError::Reset { code } if code == codes::FORBIDDEN => {
            Ended::Failed(Failure::Refused(anyhow!(
                "this certificate may not watch {} objects (the controller refused the watch)",
                kind.name()
            )))
        }
        FrameError::Reset { code } if code == codes::MALFORMED => Ended::Failed(Failure::Refused(
            anyhow!("the controller refused the watch as malformed (a moor version mismatch?)"),
        )),
        FrameError::Decode(e) => Ended::Failed(Failure::Refused(anyhow!(
            "a watch event did not decode (a moor version mismatch?): {e}"
        ))),
        FrameError::Connection(c) if !wire::frame::connection_retryable(&c) => Ended::Failed(
            Failure::Refused(anyhow!("the controller refused the connection: {c}")),
        ),
        other => Ended::Lost(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
