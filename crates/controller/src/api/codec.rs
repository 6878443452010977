//! How API objects sit in the replicated store: keys and values.
//!
//! Owns: the mapping between `proto::api::ObjectKey` and the store's string key (kind name,
//! namespace or `""` for cluster-scoped kinds, name), and the value layout of an object (a
//! version byte, then postcard of `proto::Object`). The stored bytes never carry
//! `resourceVersion`: it is the store's `mod_revision`, filled in when an object is read,
//! because the revision of a write is only known once Raft has ordered it. Does not own
//! the store's own record layout (`raft::codec` wraps these bytes again).
//!
//! ```text
//! value = [ OBJECT_FORMAT ][ postcard(Object without resourceVersion) ]
//! key   = ("Pod", "default", "web") | ("Node", "", "edge-01")
//! ```

use proto::Kind;
use proto::Object;
use proto::api::ObjectKey;

use crate::raft;
use crate::raft::StoredObject;

/// The object layout written today; a reader refuses any other.
pub const OBJECT_FORMAT: u8 = 1;

/// Why an object value could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ObjectCodecError {
    #[error("stored object {key} is empty")]
    Empty { key: raft::ObjectKey },
    #[error("stored object {key} has format {found}, this build reads {OBJECT_FORMAT}")]
    UnknownFormat { key: raft::ObjectKey, found: u8 },
    #[error("stored object {key} does not decode")]
    Decode {
        key: raft::ObjectKey,
        #[source]
        source: postcard::Error,
    },
    #[error("stored object {key} is a {found}, not what its key names")]
    WrongKind { key: raft::ObjectKey, found: Kind },
    #[error("object {key} does not encode")]
    Encode {
        key: ObjectKey,
        #[source]
        source: postcard::Error,
    },
    #[error("store key {key} names no known kind")]
    UnknownKind { key: raft::ObjectKey },
}

/// The prefix of store kinds that are not API objects (join tokens, name reservations):
/// no API kind contains a dot.
pub const RESERVED_KIND_PREFIX: &str = "moor.";

/// Whether `key` is one of the controller's own records rather than an API object.
pub fn is_reserved(key: &raft::ObjectKey) -> bool {
    key.kind.starts_with(RESERVED_KIND_PREFIX)
}

/// `key` with its namespace as stored: `default` when a namespaced kind leaves it unset,
/// none for cluster-scoped kinds (whatever the caller sent).
pub fn normalized(key: &ObjectKey) -> ObjectKey {
    let namespace = key
        .kind
        .is_namespaced()
        .then(|| key.namespace.clone().unwrap_or_else(|| "default".into()));
    ObjectKey {
        kind: key.kind,
        namespace,
        name: key.name.clone(),
    }
}

/// The store key of an API key.
pub fn store_key(key: &ObjectKey) -> raft::ObjectKey {
    let key = normalized(key);
    raft::ObjectKey::new(key.kind.name(), key.namespace.unwrap_or_default(), key.name)
}

/// The API key of a store key, if it names a known kind.
pub fn api_key(key: &raft::ObjectKey) -> Result<ObjectKey, ObjectCodecError> {
    let kind = Kind::ALL
        .into_iter()
        .find(|kind| kind.name() == key.kind)
        .ok_or_else(|| ObjectCodecError::UnknownKind { key: key.clone() })?;
    Ok(ObjectKey {
        kind,
        namespace: kind.is_namespaced().then(|| key.namespace.clone()),
        name: key.name.clone(),
    })
}

/// The stored bytes of `object` (its `resourceVersion` is dropped).
pub fn encode(object: &Object) -> Result<Vec<u8>, ObjectCodecError> {
    let mut object = object.clone();
    object.metadata_mut().resource_version = None;
    let mut bytes = vec![OBJECT_FORMAT];
    postcard::to_io(&object, &mut bytes).map_err(|source| ObjectCodecError::Encode {
        key: ObjectKey::of(&object),
        source,
    })?;
    Ok(bytes)
}

/// The object stored at `key`, with `resourceVersion` set to its `mod_revision`.
pub fn decode(key: &raft::ObjectKey, stored: &StoredObject) -> Result<Object, ObjectCodecError> {
    decode_at(key, &stored.value, stored.mod_revision)
}

/// The object in `value`, with `resourceVersion` set to `revision`.
pub fn decode_at(
    key: &raft::ObjectKey,
    value: &[u8],
    revision: u64,
) -> Result<Object, ObjectCodecError> {
    let (&format, body) = value
        .split_first()
        .ok_or_else(|| ObjectCodecError::Empty { key: key.clone() })?;
    if format != OBJECT_FORMAT {
        return Err(ObjectCodecError::UnknownFormat {
            key: key.clone(),
            found: format,
        });
    }
    let mut object: Object =
        postcard::from_bytes(body).map_err(|source| ObjectCodecError::Decode {
            key: key.clone(),
            source,
        })?;
    if object.kind().name() != key.kind {
        return Err(ObjectCodecError::WrongKind {
            key: key.clone(),
            found: object.kind(),
        });
    }
    object.metadata_mut().resource_version = Some(revision.to_string());
    Ok(object)
}

#[cfg(test)]
mod tests {
    use proto::resources::{ConfigMap, Namespace};

    use super::*;

    fn config_map(name: &str, namespace: Option<&str>) -> Object {
        let mut cm = ConfigMap::default();
        cm.metadata.name = name.into();
        cm.metadata.namespace = namespace.map(str::to_owned);
        cm.data.insert("k".into(), "v".into());
        Object::ConfigMap(cm)
    }

    #[test]
    fn objects_round_trip_without_storing_their_resource_version() {
        let mut object = config_map("c", Some("a"));
        object.metadata_mut().resource_version = Some("3".into());
        let bytes = encode(&object).unwrap();
        assert_eq!(bytes[0], OBJECT_FORMAT);
        let key = store_key(&ObjectKey::of(&object));
        let back = decode_at(&key, &bytes, 9).unwrap();
        assert_eq!(back.metadata().resource_version.as_deref(), Some("9"));
        let mut plain = decode_at(&key, &bytes, 9).unwrap();
        plain.metadata_mut().resource_version = Some("3".into());
        assert_eq!(plain, object);
    }

    #[test]
    fn garbage_values_are_errors_naming_the_key() {
        let key = raft::ObjectKey::new("ConfigMap", "a", "c");
        assert!(matches!(
            decode_at(&key, b"", 1),
            Err(ObjectCodecError::Empty { .. })
        ));
        assert!(matches!(
            decode_at(&key, b"\x07abc", 1),
            Err(ObjectCodecError::UnknownFormat { found: 7, .. })
        ));
        let err = decode_at(&key, b"\x01\xff\xff\xff", 1).unwrap_err();
        assert!(err.to_string().contains("ConfigMap/a/c"), "{err}");
        let namespace = encode(&Object::Namespace(Namespace::default())).unwrap();
        assert!(matches!(
            decode_at(&key, &namespace, 1),
            Err(ObjectCodecError::WrongKind { .. })
        ));
    }

    #[test]
    fn keys_map_both_ways_with_default_and_cluster_scoped_namespaces() {
        let key = ObjectKey {
            kind: Kind::Pod,
            namespace: None,
            name: "web".into(),
        };
        let stored = store_key(&key);
        assert_eq!(stored, raft::ObjectKey::new("Pod", "default", "web"));
        assert_eq!(api_key(&stored).unwrap(), normalized(&key));
        let node = ObjectKey {
            kind: Kind::Node,
            namespace: Some("ignored".into()),
            name: "edge-01".into(),
        };
        assert_eq!(
            store_key(&node),
            raft::ObjectKey::new("Node", "", "edge-01")
        );
        assert_eq!(api_key(&store_key(&node)).unwrap().namespace, None);
        assert!(api_key(&raft::ObjectKey::new("Widget", "", "x")).is_err());
    }
}
