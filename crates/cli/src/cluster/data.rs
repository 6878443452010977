//! `moor secret create|ls|rm` and `moor configmap create`: Secrets and ConfigMaps made
//! from files and literals, as `kubectl create secret generic` and `kubectl create
//! configmap` do, then applied like any manifest.
//!
//! Owns: turning files and `KEY=VALUE` pairs into objects (bounded reads, key rules checked
//! before anything is sent). Does not own: storing them (the API) or what the values mean.
//! A secret's value is never printed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use proto::Object;
use proto::api::{ApplyOutcome, Request, Response};
use proto::resources::{Bytes, ConfigMap, Kind, Secret};

use super::{Failure, Session, finish, namespace_for, print, unexpected};

/// A Secret or ConfigMap holds at most this much (Kubernetes' limit too).
const MAX_DATA: u64 = 1 << 20;

/// `moor secret`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    verb: SecretVerb,
}

#[derive(Debug, Subcommand)]
enum SecretVerb {
    /// Make a secret holding one file (or stdin with `-`), under the file's name or --key.
    Create {
        name: String,
        /// The file, or `-` for stdin.
        file: PathBuf,
        /// The key in the secret (default: the file's name; `data` for stdin).
        #[arg(long)]
        key: Option<String>,
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// List secrets (names, types and key counts; never values).
    Ls {
        #[arg(short, long)]
        namespace: Option<String>,
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
    },
    /// Delete a secret.
    Rm {
        name: String,
        #[arg(short, long)]
        namespace: Option<String>,
    },
}

/// `moor configmap`.
#[derive(Debug, Args)]
pub struct ConfigMapArgs {
    #[command(subcommand)]
    verb: ConfigMapVerb,
}

#[derive(Debug, Subcommand)]
enum ConfigMapVerb {
    /// Make a config map from files (`[KEY=]PATH`) and literals (`KEY=VALUE`).
    Create {
        name: String,
        /// A file, under its name or `KEY=PATH`; repeatable.
        #[arg(long = "from-file")]
        from_file: Vec<String>,
        /// `KEY=VALUE`; repeatable.
        #[arg(long = "from-literal")]
        from_literal: Vec<String>,
        #[arg(short, long)]
        namespace: Option<String>,
    },
}

/// Runs `moor secret …`.
pub fn secret(args: SecretArgs, config: Option<&Path>) -> ExitCode {
    finish((|| match args.verb {
        SecretVerb::Create {
            name,
            file,
            key,
            namespace,
        } => {
            let (default_key, value) = if file.as_os_str() == "-" {
                (
                    "data".to_string(),
                    read_bounded(&mut std::io::stdin().lock(), "-")?,
                )
            } else {
                (file_key(&file)?, read_file(&file)?)
            };
            let mut secret = Secret::default();
            secret.metadata.name = name;
            secret.metadata.namespace = namespace_for(Kind::Secret, namespace.as_deref(), false);
            secret.secret_type = Some("Opaque".into());
            secret.data.insert(key.unwrap_or(default_key), Bytes(value));
            create(Object::Secret(secret), config)
        }
        SecretVerb::Ls {
            namespace,
            all_namespaces,
        } => {
            let session = Session::open(config)?;
            let response = session.call(&Request::List {
                kind: Kind::Secret,
                namespace: namespace_for(Kind::Secret, namespace.as_deref(), all_namespaces),
                selector: None,
                consistency: proto::api::Consistency::Linearizable,
            })?;
            let Response::List { objects, .. } = response else {
                return Err(unexpected(&response));
            };
            if objects.is_empty() {
                eprintln!("No secrets found.");
            } else {
                print!(
                    "{}",
                    print::table(
                        Kind::Secret,
                        &objects,
                        all_namespaces,
                        false,
                        std::time::SystemTime::now()
                    )
                );
            }
            Ok(())
        }
        SecretVerb::Rm { name, namespace } => {
            let session = Session::open(config)?;
            let key = proto::api::ObjectKey {
                kind: Kind::Secret,
                namespace: namespace_for(Kind::Secret, namespace.as_deref(), false),
                name,
            };
            match session.call(&Request::Delete {
                key,
                resource_version: None,
            })? {
                Response::Deleted { key, .. } => {
                    println!("secret/{} deleted", key.name);
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
    })())
}

/// Runs `moor configmap …`.
pub fn configmap(args: ConfigMapArgs, config: Option<&Path>) -> ExitCode {
    finish((|| match args.verb {
        ConfigMapVerb::Create {
            name,
            from_file,
            from_literal,
            namespace,
        } => {
            let mut map = ConfigMap::default();
            map.metadata.name = name;
            map.metadata.namespace = namespace_for(Kind::ConfigMap, namespace.as_deref(), false);
            let mut total = 0u64;
            let mut seen = BTreeMap::new();
            for spec in &from_file {
                let (key, path) = match spec.split_once('=') {
                    Some((k, p)) => (k.to_string(), PathBuf::from(p)),
                    None => (file_key(Path::new(spec))?, PathBuf::from(spec)),
                };
                let bytes = read_file(&path)?;
                total += bytes.len() as u64;
                insert_value(&mut map, &mut seen, key, bytes, spec)?;
            }
            for literal in &from_literal {
                let (key, value) = literal
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--from-literal {literal:?}: expected KEY=VALUE"))?;
                total += value.len() as u64;
                insert_value(
                    &mut map,
                    &mut seen,
                    key.into(),
                    value.as_bytes().to_vec(),
                    literal,
                )?;
            }
            if seen.is_empty() {
                return Err(anyhow!("give at least one --from-file or --from-literal").into());
            }
            if total > MAX_DATA {
                return Err(anyhow!(
                    "{total} bytes of data, more than a config map holds ({MAX_DATA})"
                )
                .into());
            }
            create(Object::ConfigMap(map), config)
        }
    })())
}

/// UTF-8 values go to `data`, others to `binaryData`; a key given twice is an error.
fn insert_value(
    map: &mut ConfigMap,
    seen: &mut BTreeMap<String, String>,
    key: String,
    bytes: Vec<u8>,
    source: &str,
) -> Result<(), Failure> {
    if let Some(first) = seen.insert(key.clone(), source.to_string()) {
        return Err(anyhow!("key {key:?} given twice ({first} and {source})").into());
    }
    match String::from_utf8(bytes) {
        Ok(text) => {
            map.data.insert(key, text);
        }
        Err(e) => {
            map.binary_data.insert(key, Bytes(e.into_bytes()));
        }
    }
    Ok(())
}

/// Checks `object` here (so a bad key is reported before anything is sent), then creates it.
fn create(object: Object, config: Option<&Path>) -> Result<(), Failure> {
    let violations = proto::validate::validate(&object);
    if !violations.is_empty() {
        let text: Vec<String> = violations
            .iter()
            .map(|v| format!("{}: {}", v.path, v.reason))
            .collect();
        return Err(anyhow!("{}", text.join("\n")).into());
    }
    let session = Session::open(config)?;
    let response = session.call(&Request::Apply {
        objects: vec![object],
        dry_run: false,
    })?;
    let Response::Applied { results, .. } = response else {
        return Err(unexpected(&response));
    };
    for r in results {
        let what = match r.outcome {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
        };
        println!("{}/{} {what}", r.key.kind.name().to_lowercase(), r.key.name);
    }
    Ok(())
}

/// The key a file is stored under: its name.
fn file_key(path: &Path) -> Result<String, Failure> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "{}: no file name to use as the key (give one)",
                path.display()
            )
            .into()
        })
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let mut file = std::fs::File::open(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    read_bounded(&mut file, &path.display().to_string())
}

fn read_bounded(reader: &mut dyn Read, name: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_DATA + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("{name}: {e}"))?;
    if bytes.len() as u64 > MAX_DATA {
        return Err(anyhow!(
            "{name}: larger than {MAX_DATA} bytes, more than a secret or config map holds"
        )
        .into());
    }
    Ok(bytes)
}
