//! The state machine's decision for one request, with no IO.
//!
//! Owns the rules of a write: the expected-revision check, create and mod revisions, the
//! all-or-nothing batch. Does not own storage: the caller passes a lookup of the current
//! objects and writes the returned changes itself (see `state_machine`).
//!
//! ```text
//! (request, revision, lookup) ─► plan_request ─► (Response, changes: key → Some(object) | None)
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use super::types::ObjectKey;
use super::types::Request;
use super::types::Response;
use super::types::WriteOp;

/// An object as stored: its opaque bytes and its revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// The encoded resource; the state machine never looks inside.
    pub value: Vec<u8>,
    /// The cluster revision that created the object.
    pub create_revision: u64,
    /// The cluster revision that last wrote it: its `resourceVersion`.
    pub mod_revision: u64,
}

/// The final state of every key a request touches: `None` means deleted.
pub(crate) type Changes = BTreeMap<ObjectKey, Option<StoredObject>>;

/// Decides what `request` does given the cluster `revision` before it. A rejected request
/// returns no changes; an accepted one with writes moves the revision to `revision + 1`.
pub(crate) fn plan_request<E>(
    request: Request,
    revision: u64,
    mut lookup: impl FnMut(&ObjectKey) -> Result<Option<StoredObject>, E>,
) -> Result<(Response, Changes), E> {
    let ops = request.into_ops();
    if ops.is_empty() {
        return Ok((Response::Unchanged { revision }, Changes::new()));
    }
    let next = revision + 1;
    let mut changes = Changes::new();
    for (op_index, op) in ops.into_iter().enumerate() {
        let current = match changes.get(op.key()) {
            Some(staged) => staged.clone(),
            None => lookup(op.key())?,
        };
        let current_revision = current.as_ref().map_or(0, |o| o.mod_revision);
        if let Some(expected) = op.expected()
            && expected != current_revision
        {
            let rejection = Response::Conflict {
                op_index,
                key: op.key().clone(),
                expected,
                current: current_revision,
                revision,
            };
            return Ok((rejection, Changes::new()));
        }
        match op {
            WriteOp::Put { key, value, .. } => {
                let create_revision = current.map_or(next, |o| o.create_revision);
                let object = StoredObject {
                    value,
                    create_revision,
                    mod_revision: next,
                };
                changes.insert(key, Some(object));
            }
            WriteOp::Delete { key, .. } => {
                if current.is_none() {
                    return Ok((
                        Response::NotFound {
                            op_index,
                            key,
                            revision,
                        },
                        Changes::new(),
                    ));
                }
                changes.insert(key, None);
            }
        }
    }
    Ok((Response::Written { revision: next }, changes))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("Pod", "default", name)
    }

    fn object(value: &[u8], create: u64, modified: u64) -> StoredObject {
        StoredObject {
            value: value.to_vec(),
            create_revision: create,
            mod_revision: modified,
        }
    }

    fn plan(request: Request, revision: u64, existing: &Changes) -> (Response, Changes) {
        plan_request(request, revision, |k| {
            Ok::<_, Infallible>(existing.get(k).cloned().flatten())
        })
        .unwrap()
    }

    #[test]
    fn put_creates_then_replaces_keeping_create_revision() {
        let (response, changes) = plan(
            Request::Put {
                key: key("a"),
                value: b"1".to_vec(),
                expected: Some(0),
            },
            4,
            &Changes::new(),
        );
        assert_eq!(response, Response::Written { revision: 5 });
        assert_eq!(changes[&key("a")], Some(object(b"1", 5, 5)));

        let (response, changes) = plan(
            Request::Put {
                key: key("a"),
                value: b"2".to_vec(),
                expected: Some(5),
            },
            5,
            &changes,
        );
        assert_eq!(response, Response::Written { revision: 6 });
        assert_eq!(changes[&key("a")], Some(object(b"2", 5, 6)));
    }

    #[test]
    fn stale_expected_revision_is_a_conflict_with_no_changes() {
        let existing = Changes::from([(key("a"), Some(object(b"1", 2, 3)))]);
        let (response, changes) = plan(
            Request::Put {
                key: key("a"),
                value: b"2".to_vec(),
                expected: Some(2),
            },
            7,
            &existing,
        );
        assert_eq!(
            response,
            Response::Conflict {
                op_index: 0,
                key: key("a"),
                expected: 2,
                current: 3,
                revision: 7
            }
        );
        assert!(changes.is_empty());
    }

    #[test]
    fn batch_is_all_or_nothing() {
        let existing = Changes::from([(key("a"), Some(object(b"1", 1, 1)))]);
        let batch = Request::Batch(vec![
            WriteOp::Put {
                key: key("b"),
                value: b"x".to_vec(),
                expected: None,
            },
            WriteOp::Delete {
                key: key("missing"),
                expected: None,
            },
        ]);
        let (response, changes) = plan(batch, 1, &existing);
        assert_eq!(
            response,
            Response::NotFound {
                op_index: 1,
                key: key("missing"),
                revision: 1
            }
        );
        assert!(changes.is_empty());
    }

    #[test]
    fn later_writes_in_a_batch_see_earlier_ones() {
        let batch = Request::Batch(vec![
            WriteOp::Put {
                key: key("a"),
                value: b"1".to_vec(),
                expected: Some(0),
            },
            WriteOp::Put {
                key: key("a"),
                value: b"2".to_vec(),
                expected: Some(2),
            },
            WriteOp::Delete {
                key: key("a"),
                expected: Some(2),
            },
        ]);
        let (response, changes) = plan(batch, 1, &Changes::new());
        assert_eq!(response, Response::Written { revision: 2 });
        assert_eq!(changes[&key("a")], None);
    }

    #[test]
    fn empty_batch_changes_nothing() {
        let (response, changes) = plan(Request::Batch(vec![]), 3, &Changes::new());
        assert_eq!(response, Response::Unchanged { revision: 3 });
        assert!(changes.is_empty());
    }
}
