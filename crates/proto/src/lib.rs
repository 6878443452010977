//! Resource types, manifest parsing and validation, shared by every part of moor.
//!
//! Owns: the kinds (Namespace, Node, Pod, Deployment, DaemonSet, Job, Service,
//! ConfigMap, Secret) in [`resources`]; reading Kubernetes-style manifests with
//! diagnostics that name source, line, column and field in [`manifest`]; the rules
//! objects must follow in [`validate`]; label selectors in [`selector`]; rendering
//! objects back to YAML and JSON in [`render`]; the client API's messages in [`api`].
//! Does not own: any IO. It parses bytes it is given, with a name for messages. No other
//! moor crate is imported here.
//!
//! Layout:
//!
//! ```text
//! yaml/       positioned YAML tree under limits (size, depth, aliases)
//! manifest/   schema (the field table), check (shapes, classes), parse
//! resources/  the stored types; postcard for the wire and disk, YAML/JSON at the edges
//! validate/   names, labels, ports, selectors, per-kind rules
//! selector    matchLabels/matchExpressions and `-l` strings
//! render      objects to YAML/JSON without empty noise
//! api         requests, responses, watch events and error codes of the client API
//! ```
//!
//! The CLI calls [`manifest::parse`] per input, prints the warnings, and sends the
//! objects; the controller calls [`validate::validate`] on every write it receives.

pub mod api;
pub mod manifest;
pub mod path;
pub mod render;
pub mod resources;
pub mod selector;
pub mod validate;
pub mod yaml;

pub use manifest::{Manifest, ManifestError, ManifestErrors, ParsedObject, Warning, parse};
pub use resources::{Kind, Object};
