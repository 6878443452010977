//! One command's connection to the cluster: the credential file, the QUIC client that
//! fails over between controllers by itself, and keeping the file's controller list in
//! step with the group's membership.
//!
//! Owns: opening the client from the file, turning answers into [`Failure`]s with the
//! right exit code, and the membership refresh. Does not own: what commands ask.
//!
//! # The controller list follows the membership
//!
//! A credential file written when the group had one controller lists only that one; once
//! others joined and it died, a client that trusted the file alone could reach nobody.
//! So the first call of each process also asks `ListControllers`, on the same connection
//! and at the same time as the call itself (one extra stream, no extra round trip before
//! the answer), and from then on the client fails over between the members it was told
//! of. When they differ from the file, the file's list is replaced (atomically, 0600, see
//! `wire::ClientConfig::save_controllers`); when they do not, nothing is written, so
//! commands that learn nothing new leave the file alone. A watch asks again after each
//! failover, since that is when the membership is most likely to have changed.
//!
//! ```text
//! first call ─┬─► request ─────────► answer
//!             └─► ListControllers ─► members ─► client targets ─► changed? save the file
//! ```
//!
//! A failed refresh never fails the command: the command's own call decides.
//!
//! # The credential renews itself
//!
//! When a third of the file's certificate lifetime is left, the first call of a command
//! also asks for a new certificate (a new key made here, `RenewCertificate`) and writes it
//! into the file: an admin who runs any command now and then never meets an expired
//! credential. Like the refresh, a failed renewal is tried again by the next command.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use proto::api::{ApiError, ControllerInfo, Request, Response};
use wire::{ClientConfig, ControllerEntry, TransportOptions};

use super::Failure;

/// A connection to the cluster for one command.
pub(crate) struct Session {
    runtime: tokio::runtime::Runtime,
    client: wire::Client,
    path: PathBuf,
    /// The controllers the file listed, or the membership once learnt.
    controllers: std::cell::RefCell<Vec<ControllerEntry>>,
    /// What the file listed (or was last saved with).
    saved: std::cell::RefCell<Vec<ControllerEntry>>,
    refreshed: Cell<bool>,
    /// The file's certificate is due for renewal.
    renew: Cell<bool>,
}

impl Session {
    /// Opens the file named by `--config` (or `~/.moor/config`) with the default transport.
    pub(crate) fn open(config: Option<&Path>) -> Result<Session, Failure> {
        Session::open_with(config, &TransportOptions::default())
    }

    /// Like [`Session::open`], with other keep-alive and idle settings (a watch notices a
    /// dead controller sooner with a shorter idle timeout).
    pub(crate) fn open_with(
        config: Option<&Path>,
        transport: &TransportOptions,
    ) -> Result<Session, Failure> {
        let path = config_path(config)?;
        let loaded = ClientConfig::load(&path).map_err(|e| {
            let hint = if config.is_none() {
                " (copy admin.conf from a controller's data directory there, or give --config)"
            } else {
                ""
            };
            anyhow!("{e}{hint}")
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the client's event loop")?;
        let tls =
            wire::tls::client_config(&loaded.ca, Some(&loaded.node), wire::TlsClock::system())
                .context("client TLS settings")?;
        let bind = match loaded.controllers.first().map(|c| c.address) {
            Some(SocketAddr::V6(_)) => "[::]:0",
            _ => "0.0.0.0:0",
        };
        let client = runtime.block_on(async {
            let endpoint = wire::client_endpoint(
                bind.parse().map_err(|e| anyhow!("{bind}: {e}"))?,
                tls,
                transport,
            )
            .context("open the client's QUIC endpoint")?;
            anyhow::Ok(wire::Client::new(
                endpoint,
                loaded.targets(),
                wire::ClientOptions::default(),
            ))
        })?;
        Ok(Session {
            runtime,
            client,
            path,
            saved: std::cell::RefCell::new(loaded.controllers.clone()),
            controllers: std::cell::RefCell::new(loaded.controllers),
            refreshed: Cell::new(false),
            renew: Cell::new(due_for_renewal(&loaded.node)),
        })
    }

    /// Makes one call; the first of the process also refreshes the controller list.
    pub(crate) fn call(&self, request: &Request) -> Result<Response, Failure> {
        let answer = self.runtime.block_on(async {
            let answer = self.call_raw(request).await;
            if !worth_another_controller(&answer) || !safe_to_repeat(request) {
                return answer;
            }
            // The controller asked could not get an answer from the group in time (cut
            // off from the leader, say): the next one may be on the majority's side.
            self.client.drop_current().await;
            self.client.call::<Request, Response>(request).await
        });
        self.answer(answer)
    }

    /// [`Session::call`] inside the caller's event loop, the answer as it came.
    pub(crate) async fn call_raw(&self, request: &Request) -> Result<Response, wire::ClientError> {
        if self.refreshed.replace(true) {
            return self.client.call::<Request, Response>(request).await;
        }
        let (answer, members) = tokio::join!(
            self.client.call::<Request, Response>(request),
            self.members()
        );
        if let Some(members) = members {
            self.adopt(&members).await;
            self.save_if_changed();
        }
        if self.renew.replace(false) && answer.is_ok() {
            self.renew_credential().await;
        }
        answer
    }

    /// Replaces the file's certificate and key with new ones for the same name and role.
    async fn renew_credential(&self) {
        let Ok(key) = wire::join::NewKey::generate() else {
            return;
        };
        let request = Request::RenewCertificate {
            public_key: key.public_key().to_vec(),
        };
        let Ok(Response::Certificate { chain }) =
            self.client.call::<Request, Response>(&request).await
        else {
            return;
        };
        let node = key.into_node_cert(&chain);
        let Ok(mut current) = ClientConfig::load(&self.path) else {
            return;
        };
        match node.identity() {
            Ok(identity)
                if identity.role == current.identity.role
                    && identity.name == current.identity.name =>
            {
                current.node = node;
                current.identity = identity;
                if current.save(&self.path).is_ok() {
                    eprintln!("moor: renewed the certificate in {}", self.path.display());
                }
            }
            _ => {}
        }
    }

    /// Asks the membership now and adopts it (after a watch failed over).
    pub(crate) async fn refresh(&self) {
        self.refreshed.set(true);
        if let Some(members) = self.members().await {
            self.adopt(&members).await;
            self.save_if_changed();
        }
    }

    /// The event loop, for a command that drives a stream itself (a watch).
    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// The client, for a command that opens its own streams (a watch).
    pub(crate) fn client(&self) -> &wire::Client {
        &self.client
    }

    /// The controllers tried, for messages.
    pub(crate) fn described(&self) -> String {
        describe(&self.controllers.borrow())
    }

    /// A call's outcome as the command sees it.
    pub(crate) fn answer(
        &self,
        answer: Result<Response, wire::ClientError>,
    ) -> Result<Response, Failure> {
        match answer {
            Ok(Response::Error(e)) => Err(api_failure(e)),
            Ok(r) => Ok(r),
            Err(e) if e.is_retryable() => Err(Failure::Unreachable(anyhow!(
                "no controller answered ({}): {e}",
                self.described()
            ))),
            Err(e) => Err(Failure::Refused(anyhow!("{e}"))),
        }
    }

    async fn members(&self) -> Option<Vec<ControllerInfo>> {
        match self
            .client
            .call::<Request, Response>(&Request::ListControllers)
            .await
        {
            Ok(Response::Controllers(members)) => Some(members),
            _ => None,
        }
    }

    async fn adopt(&self, members: &[ControllerInfo]) {
        let answering = self.client.connected_to().await.and_then(|t| t.name);
        let merged = merge_members(&self.controllers.borrow(), members, answering.as_deref());
        if merged.is_empty() {
            return;
        }
        let targets = merged
            .iter()
            .map(|c| wire::Target {
                addr: c.address,
                name: Some(c.name.clone()),
            })
            .collect();
        self.client.set_targets(targets).await;
        *self.controllers.borrow_mut() = merged;
    }

    fn save_if_changed(&self) {
        let controllers = self.controllers.borrow();
        if wire::config::same_controllers(&self.saved.borrow(), &controllers) {
            return;
        }
        // Saving is a courtesy to later commands: a file this user cannot write (a
        // read-only copy, a root-owned admin.conf) must not fail the command, and a
        // warning on every command would only be noise. `save_controllers` reads the file
        // again and compares, so a list another command saved meanwhile is no write.
        if ClientConfig::save_controllers(&self.path, &controllers).is_ok() {
            *self.saved.borrow_mut() = controllers.clone();
        }
    }
}

/// Whether less than a third of the certificate's lifetime is left.
fn due_for_renewal(node: &wire::NodeCert) -> bool {
    node.chain
        .first()
        .and_then(|leaf| wire::validity::validity(leaf.as_ref()).ok())
        .is_some_and(|v| v.due_for_renewal(std::time::SystemTime::now()))
}

/// Whether an answer says "this controller could not serve it now".
fn worth_another_controller(answer: &Result<Response, wire::ClientError>) -> bool {
    match answer {
        Ok(Response::Error(e)) => e.is_retryable(),
        Ok(_) => false,
        Err(e) => e.is_retryable(),
    }
}

/// Calls whose repetition cannot do anything twice: reads, and applies without a
/// resourceVersion (an apply that already happened is answered `unchanged`).
fn safe_to_repeat(request: &Request) -> bool {
    match request {
        Request::Get { .. }
        | Request::List { .. }
        | Request::ListControllers
        | Request::ListTokens => true,
        Request::Apply { objects, .. } => objects
            .iter()
            .all(|o| o.metadata().resource_version.is_none()),
        _ => false,
    }
}

/// `ctl-1 10.0.0.5:7443, ctl-2 …`
fn describe(controllers: &[ControllerEntry]) -> String {
    controllers
        .iter()
        .map(|c| format!("{} {}", c.name, c.address))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The controllers to use from now on: the members the group reports, those the file
/// already listed first, in its order and at its addresses (so the file's preference
/// holds, and an address the user chose, say through a NAT or a tunnel, is not replaced by
/// the one the controllers advertise to each other), then the new ones by id at their
/// advertised addresses. A member whose name or address is unusable is left out; an answer with no
/// usable member leaves the list as it was (empty result). The controller that answered
/// (`answering`) stays listed even when its own view leaves it out: a controller that has
/// joined but is not yet admitted answers like that, and dropping it would be wrong.
pub(crate) fn merge_members(
    current: &[ControllerEntry],
    members: &[ControllerInfo],
    answering: Option<&str>,
) -> Vec<ControllerEntry> {
    let mut usable: Vec<(u64, ControllerEntry)> = members
        .iter()
        .filter(|m| wire::identity::validate_name(&m.name).is_ok())
        .filter_map(|m| {
            let address = m.address.parse::<SocketAddr>().ok()?;
            Some((
                m.id,
                ControllerEntry {
                    name: m.name.clone(),
                    address,
                },
            ))
        })
        .collect();
    usable.sort_by_key(|(id, _)| *id);
    let mut merged: Vec<ControllerEntry> = Vec::new();
    if usable.is_empty() {
        return merged;
    }
    for known in current {
        let is_member = usable.iter().any(|(_, m)| m.name == known.name);
        let keep = is_member || answering == Some(known.name.as_str());
        if keep && !merged.iter().any(|m| m.name == known.name) {
            merged.push(known.clone());
        }
    }
    for (_, member) in usable {
        if !merged.iter().any(|m| m.name == member.name) {
            merged.push(member);
        }
    }
    merged
}

/// The credential file to use: `--config`, or `~/.moor/config`.
fn config_path(flag: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("no --config given and HOME is not set"))?;
    Ok(Path::new(&home).join(".moor/config"))
}

pub(crate) fn api_failure(e: ApiError) -> Failure {
    if e.is_retryable() {
        Failure::Unreachable(anyhow!("{e}"))
    } else {
        Failure::Refused(anyhow!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, address: &str) -> ControllerEntry {
        ControllerEntry {
            name: name.into(),
            address: address.parse().unwrap(),
        }
    }

    fn member(id: u64, name: &str, address: &str) -> ControllerInfo {
        ControllerInfo {
            id,
            name: name.into(),
            address: address.into(),
            voter: true,
            leader: false,
        }
    }

    #[test]
    fn members_replace_the_list_keeping_the_files_order_first() {
        let current = [
            entry("ctl-2", "10.0.0.6:7443"),
            entry("gone", "10.0.0.9:7443"),
        ];
        let members = [
            member(3, "ctl-3", "10.0.0.7:7443"),
            member(1, "ctl-1", "10.0.0.5:7443"),
            // Advertised elsewhere than the file says (a NAT): the file's address stays.
            member(2, "ctl-2", "10.0.0.16:7443"),
        ];
        assert_eq!(
            merge_members(&current, &members, Some("ctl-2")),
            [
                entry("ctl-2", "10.0.0.6:7443"),
                entry("ctl-1", "10.0.0.5:7443"),
                entry("ctl-3", "10.0.0.7:7443"),
            ]
        );
    }

    #[test]
    fn unusable_members_are_left_out() {
        let current = [entry("ctl-1", "10.0.0.5:7443")];
        let members = [
            member(2, "Bad_Name", "10.0.0.6:7443"),
            member(3, "ctl-3", "ctl-3.example:7443"),
        ];
        assert!(merge_members(&current, &members, None).is_empty());
        assert!(merge_members(&current, &[], Some("ctl-1")).is_empty());
    }

    #[test]
    fn the_answering_controller_stays_listed_while_it_is_not_yet_a_member() {
        let current = [entry("ctl-3", "10.0.0.7:7443")];
        let members = [member(1, "ctl-1", "10.0.0.5:7443")];
        assert_eq!(
            merge_members(&current, &members, Some("ctl-3")),
            [
                entry("ctl-3", "10.0.0.7:7443"),
                entry("ctl-1", "10.0.0.5:7443")
            ]
        );
        assert_eq!(
            merge_members(&current, &members, Some("ctl-1")),
            [entry("ctl-1", "10.0.0.5:7443")],
            "a controller that left the group is dropped"
        );
    }
}
