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
//!       | [ SEALED_FORMAT ][ sealed(postcard(…)) ]   Secrets, when a secrets key is installed
//! key   = ("Pod", "default", "web") | ("Node", "", "edge-01")
//! ```
//!
//! Secrets are sealed here, before the bytes enter the Raft log, so neither the log, the
//! state machine, snapshots nor backups hold them in clear (see `crate::sealing`).

use proto::Kind;
use proto::Object;
use proto::api::ObjectKey;

use crate::raft;
use crate::raft::StoredObject;

/// The object layout written today; a reader refuses any other.
pub const OBJECT_FORMAT: u8 = 1;
/// The same, sealed with the cluster's secrets key (Secrets only).
pub const SEALED_FORMAT: u8 = 2;

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
    #[error("secret {key}: {source}")]
    Sealing {
        key: String,
        #[source]
        source: crate::sealing::SealError,
    },
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
    encode_with(object, crate::sealing::installed())
}

/// [`encode`] with the secrets key given rather than the installed one.
pub fn encode_with(
    object: &Object,
    key: Option<&crate::sealing::SecretsKey>,
) -> Result<Vec<u8>, ObjectCodecError> {
    let mut object = object.clone();
    object.metadata_mut().resource_version = None;
    let mut bytes = vec![OBJECT_FORMAT];
    postcard::to_io(&object, &mut bytes).map_err(|source| ObjectCodecError::Encode {
        key: ObjectKey::of(&object),
        source,
    })?;
    match (&object, key) {
        (Object::Secret(_), Some(key)) => {
            let aad = store_key(&ObjectKey::of(&object)).to_string();
            let sealed = key
                .seal(&aad, &bytes[1..])
                .map_err(|source| ObjectCodecError::Sealing { key: aad, source })?;
            let mut out = Vec::with_capacity(1 + sealed.len());
            out.push(SEALED_FORMAT);
            out.extend_from_slice(&sealed);
            Ok(out)
        }
        _ => Ok(bytes),
    }
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
    decode_with(key, value, revision, crate::sealing::installed())
}

/// [`decode_at`] with the secrets key given rather than the installed one.
pub fn decode_with(
    key: &raft::ObjectKey,
    value: &[u8],
    revision: u64,
    secrets: Option<&crate::sealing::SecretsKey>,
) -> Result<Object, ObjectCodecError> {
    let (&format, body) = value
        .split_first()
        .ok_or_else(|| ObjectCodecError::Empty { key: key.clone() })?;
    let opened;
    let body = match format {
        OBJECT_FORMAT => body,
        // Only a Secret's key may hold sealed bytes: the associated data names the object.
        SEALED_FORMAT if key.kind == Kind::Secret.name() => {
            let sealing = |source| ObjectCodecError::Sealing {
                key: key.to_string(),
                source,
            };
            let secrets = secrets.ok_or_else(|| sealing(crate::sealing::SealError::NoKey))?;
            opened = secrets.open(&key.to_string(), body).map_err(sealing)?;
            &opened[..]
        }
        _ => {
            return Err(ObjectCodecError::UnknownFormat {
                key: key.clone(),
                found: format,
            });
        }
    };
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
    use proto::resources::{ConfigMap, Namespace, Secret};

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

    #[test]
    fn secrets_are_sealed_with_the_key_and_bound_to_their_name() {
        let key = crate::sealing::SecretsKey::generate().unwrap();
        let mut secret = Secret::default();
        secret.metadata.name = "db".into();
        secret.data.insert(
            "password".into(),
            proto::resources::Bytes(b"hunter2".to_vec()),
        );
        let object = Object::Secret(secret);
        let store = store_key(&ObjectKey::of(&object));
        let sealed = encode_with(&object, Some(&key)).unwrap();
        assert_eq!(sealed[0], SEALED_FORMAT);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let back = decode_with(&store, &sealed, 4, Some(&key)).unwrap();
        assert_eq!(back.metadata().resource_version.as_deref(), Some("4"));
        let Object::Secret(back) = back else {
            panic!("not a secret")
        };
        assert_eq!(
            back.data.get("password").map(|b| b.0.as_slice()),
            Some(&b"hunter2"[..])
        );
        // Without the key, with another key, or under another name: clear errors.
        let err = decode_with(&store, &sealed, 4, None).unwrap_err();
        assert!(err.to_string().contains("no secrets key"), "{err}");
        let other = crate::sealing::SecretsKey::generate().unwrap();
        let err = decode_with(&store, &sealed, 4, Some(&other)).unwrap_err();
        assert!(err.to_string().contains("sealed with key"), "{err}");
        let moved = raft::ObjectKey::new("Secret", "default", "other");
        assert!(decode_with(&moved, &sealed, 4, Some(&key)).is_err());
        // Sealed bytes under a kind that is never sealed are refused.
        let cm = raft::ObjectKey::new("ConfigMap", "default", "db");
        assert!(decode_with(&cm, &sealed, 4, Some(&key)).is_err());
        // Other kinds, and secrets with no key installed, stay plain and still read.
        let plain = encode_with(&object, None).unwrap();
        assert_eq!(plain[0], OBJECT_FORMAT);
        assert!(decode_with(&store, &plain, 4, Some(&key)).is_ok());
        let cm_object = config_map("c", None);
        assert_eq!(
            encode_with(&cm_object, Some(&key)).unwrap()[0],
            OBJECT_FORMAT
        );
    }
}
