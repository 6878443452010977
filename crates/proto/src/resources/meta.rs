//! Metadata every object carries, and the macro that gives each kind its common shape.
//!
//! Owns: [`ObjectMeta`] (what users write: name, namespace, labels, annotations; what the
//! controller fills: uid, resourceVersion, generation, creationTimestamp) and the
//! [`Labels`] alias. Does not own: the rules for names and labels (see `validate`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::values::Opaque;

/// Label or annotation map; ordered so encodings are deterministic.
pub type Labels = BTreeMap<String, String>;

/// `metadata` of every object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ObjectMeta {
    /// Unique within the kind and namespace.
    pub name: String,
    /// `None` means `default` for namespaced kinds; always `None` for Namespace and Node.
    pub namespace: Option<String>,
    /// Identifying labels, matched by selectors.
    pub labels: Labels,
    /// Free-form annotations.
    pub annotations: Labels,
    /// Set by the controller when the object is first stored.
    pub uid: Option<String>,
    /// Set by the controller: the cluster revision of the last write.
    pub resource_version: Option<String>,
    /// Set by the controller: bumped on every change of the spec.
    pub generation: Option<i64>,
    /// Set by the controller, RFC 3339.
    pub creation_timestamp: Option<String>,
    /// Stored, not yet honoured.
    pub owner_references: Option<Opaque>,
    /// Stored, not yet honoured.
    pub finalizers: Option<Opaque>,
}

impl ObjectMeta {
    /// The namespace, `default` when unset.
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// Defines a kind: `apiVersion`, `kind`, `metadata`, the given body fields, a `Default`
/// that sets the right `apiVersion` and `kind`, and the constants naming both.
macro_rules! resource {
    (
        $(#[$doc:meta])*
        $name:ident, $api_version:literal, $kind:literal {
            $( $(#[$field_doc:meta])* $field:ident : $field_type:ty ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default, deny_unknown_fields)]
        pub struct $name {
            /// Always the kind's API version.
            pub api_version: String,
            /// Always the kind's name.
            pub kind: String,
            /// Name, namespace, labels and the fields the controller fills.
            pub metadata: $crate::resources::ObjectMeta,
            $( $(#[$field_doc])* pub $field: $field_type, )*
        }

        impl $name {
            /// The `apiVersion` this kind is written with.
            pub const API_VERSION: &'static str = $api_version;
            /// The `kind` this type is written with.
            pub const KIND: &'static str = $kind;
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    api_version: $api_version.to_owned(),
                    kind: $kind.to_owned(),
                    metadata: Default::default(),
                    $( $field: Default::default(), )*
                }
            }
        }
    };
}

pub(crate) use resource;
