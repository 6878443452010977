//! Tests for reading bundles: helpers here, hostile input in `refused`, well-formed input
//! in `accepted`. The per-row tests of the not-implemented table are generated next to
//! the table and call [`assert_refused`].

mod accepted;
mod refused;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::unsupported::Refusal;
use super::{SpecError, parse_config, parse_process};
use crate::config::ContainerConfig;

/// A bundle directory with an empty `rootfs` in it.
pub(super) struct Bundle {
    dir: TempDir,
}

impl Bundle {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        Bundle { dir }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn parse(&self, config: &Value) -> Result<ContainerConfig, SpecError> {
        let bytes = serde_json::to_vec_pretty(config).unwrap();
        parse_config(&bytes, self.path(), Path::new("config.json"))
    }
}

/// The smallest configuration moor accepts.
pub(super) fn minimal() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": { "path": "rootfs" },
        "process": {
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "cwd": "/"
        },
        "linux": {
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" }
            ]
        }
    })
}

/// A mount every configuration may carry.
pub(super) fn tmpfs_mount() -> Value {
    json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" })
}

/// The error text of parsing `config` in a fresh bundle; fails the test if it parses.
pub(super) fn refusal(config: &Value) -> String {
    match Bundle::new().parse(config) {
        Ok(parsed) => panic!("accepted {config}: {parsed:?}"),
        Err(err) => err.to_string(),
    }
}

/// Sets `value` at `path` (dotted names; `name[]` is element 0 of an array, created from
/// `template` when the array is missing or empty), creating objects on the way.
pub(super) fn set_path(root: &mut Value, path: &str, value: Value) {
    let segments: Vec<&str> = path.split('.').collect();
    let mut node = root;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let (name, each) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (*segment, false),
        };
        let object = node.as_object_mut().unwrap();
        if last {
            object.insert(name.to_string(), value);
            return;
        }
        let child = object.entry(name).or_insert_with(|| json!({}));
        node = if each {
            if child.as_array().is_none_or(|a| a.is_empty()) {
                *child = json!([template_for(name)]);
            }
            &mut child.as_array_mut().unwrap()[0]
        } else {
            child
        };
    }
}

fn template_for(array: &str) -> Value {
    match array {
        "mounts" => tmpfs_mount(),
        _ => json!({}),
    }
}

/// Checks one row of the not-implemented table: a value that asks for something is
/// refused naming the field, and empty values are accepted.
pub(crate) fn assert_refused(refusal: Refusal) {
    const NOT_SUPPORTED: &str = "is not supported by this version of moor";
    match refusal {
        Refusal::Field { path, zero_is_set } => {
            let field = path.replace("[]", "[0]");
            let mut config = minimal();
            set_path(&mut config, path, json!(["something"]));
            let err = self::refusal(&config);
            assert!(
                err.contains(&format!("{field}: not supported")),
                "{path}: {err}"
            );

            let mut empties = vec![json!(null), json!(false), json!(""), json!([]), json!({})];
            if zero_is_set {
                let mut config = minimal();
                set_path(&mut config, path, json!(0));
                let err = self::refusal(&config);
                assert!(err.contains(&field), "{path}: {err}");
            } else {
                empties.push(json!(0));
            }
            for empty in empties {
                let mut config = minimal();
                set_path(&mut config, path, empty.clone());
                if let Err(err) = Bundle::new().parse(&config) {
                    panic!("{path} = {empty} refused: {err}");
                }
            }

            // An exec process file is held to the same rules, with paths relative to it.
            if let Some(relative) = path.strip_prefix("process.") {
                let mut process = minimal()["process"].clone();
                set_path(&mut process, relative, json!("something"));
                let bytes = serde_json::to_vec(&process).unwrap();
                let err = parse_process(&bytes, Path::new("process.json")).unwrap_err();
                assert_eq!(err.field(), Some(relative), "{err}");
            }
        }
        Refusal::Namespace(kind) => {
            let mut config = minimal();
            let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
            namespaces.push(json!({ "type": kind }));
            let index = namespaces.len() - 1;
            let err = self::refusal(&config);
            let expected = format!("linux.namespaces[{index}].type: the {kind} namespace");
            assert!(err.contains(&expected), "{err}");
            assert!(err.contains(NOT_SUPPORTED), "{err}");
        }
        Refusal::MountOption(option) => {
            let mut config = minimal();
            let mut mount = tmpfs_mount();
            mount["options"] = json!(["rw", option]);
            config["mounts"] = json!([tmpfs_mount(), mount]);
            let err = self::refusal(&config);
            let expected = format!("mounts[1].options[1]: mount option {option}");
            assert!(err.contains(&expected), "{err}");
            assert!(err.contains(NOT_SUPPORTED), "{err}");
        }
    }
}

/// A path under the bundle, for comparing resolved paths.
pub(super) fn under(bundle: &Bundle, rest: &str) -> PathBuf {
    bundle.path().join(rest)
}
