//! The registry of open member connections of a server.
//!
//! Owns: knowing which authenticated peers are connected now, and closing some of them
//! (a node removed with `moor node rm` must lose the connection it already has, not only
//! be refused the next one). Does not own: deciding who is revoked (the caller's
//! predicate) or liveness bookkeeping (the controller reads [`Connections::peers`]).
//!
//! ```text
//! serve ── handshake ok ─► insert(id, peer, conn) ── connection ends ─► remove(id)
//! controller ── close_where(|peer| revoked) ─► conn.close(REVOKED) ─► client: not retryable
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use quinn::{Connection, VarInt};

use crate::frame::codes;
use crate::server::Peer;

/// Open member connections of one server; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<HashMap<usize, (Peer, Connection)>>>,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<usize, (Peer, Connection)>> {
        // The map is only inserted into and removed from under the lock; a panic while
        // holding it cannot leave an entry half-written, so a poisoned map is usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn insert(&self, peer: Peer, conn: Connection) {
        self.lock().insert(conn.stable_id(), (peer, conn));
    }

    pub(crate) fn remove(&self, conn: &Connection) {
        self.lock().remove(&conn.stable_id());
    }

    /// The peers connected now.
    pub fn peers(&self) -> Vec<Peer> {
        self.lock().values().map(|(peer, _)| peer.clone()).collect()
    }

    /// Closes every connection whose peer matches with `code`; returns how many.
    pub fn close_where(&self, matches: impl Fn(&Peer) -> bool, code: VarInt) -> usize {
        let doomed: Vec<Connection> = self
            .lock()
            .values()
            .filter(|(peer, _)| matches(peer))
            .map(|(_, conn)| conn.clone())
            .collect();
        for conn in &doomed {
            let reason: &[u8] = if code == codes::REVOKED {
                b"certificate revoked"
            } else {
                b"closed by server"
            };
            conn.close(code, reason);
        }
        doomed.len()
    }

    /// Closes the connections of revoked peers (see `ServeOptions::is_revoked`).
    pub fn close_revoked(&self, is_revoked: impl Fn(&Peer) -> bool) -> usize {
        self.close_where(is_revoked, codes::REVOKED)
    }
}
