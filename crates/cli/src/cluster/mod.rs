//! The cluster client: `moor apply`, `moor get [--watch]`, `moor describe`, `moor
//! delete`. Each reads the credential file (`--config`, default `~/.moor/config`), asks
//! any controller it lists over QUIC with mutual TLS (the client fails over between them
//! by itself, and learns the group's members on the way, see `session`), and prints what
//! kubectl would.
//!
//! ```text
//! -f inputs ─ proto::parse ─► Request::Apply ─┐
//! get/delete args ───────────► Request::… ────┼─► wire::Client ─► a controller
//!                        tables, YAML, JSON ◄─┘◄── Response
//! ```
//!
//! Exit codes: 0 done; 1 the request was refused or the input is wrong (the message
//! says why and where); 2 bad command line; 3 no controller could answer (worth trying
//! again later).

mod data;
mod describe;
mod inputs;
pub(crate) mod print;
mod session;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::anyhow;
use clap::Args;
use proto::api::{ApplyOutcome, Consistency, ObjectKey, Request, Response};
use proto::{Kind, Object};

pub use data::{ConfigMapArgs, SecretArgs, configmap, secret};
pub use print::Format;
pub(crate) use session::Session;

/// `moor apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifests: files, directories (their .yaml, .yml and .json files) or `-` for stdin.
    #[arg(short, long = "filename", required = true)]
    file: Vec<PathBuf>,
    /// Also the directories inside directories.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// The namespace of objects that name none.
    #[arg(short, long)]
    namespace: Option<String>,
    /// Check everything and say what would change, without changing it.
    #[arg(long)]
    dry_run: bool,
}

/// `moor get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list: pods (po), deployments (deploy), services (svc), configmaps (cm), …
    kind: String,
    /// One object by name.
    name: Option<String>,
    /// Only objects whose labels match (`app=web,tier in (a,b),!canary`).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// The namespace (default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// wide, yaml, json or name instead of the table.
    #[arg(short, long, value_enum)]
    output: Option<Format>,
    /// Read the answering controller's own copy, which may lag (works from a minority).
    #[arg(long)]
    stale: bool,
    /// After the list, print each change as it happens, until Ctrl-C.
    ///
    /// Also ends when stdout is closed, or when stdin closes if it is a pipe or a socket
    /// (an ssh session ending). Tables print the header once, then a row per change; yaml
    /// prints a document and json a line per change. A deleted object is printed as its
    /// last row, as kubectl does: add --output-watch-events to tell ADDED, MODIFIED and
    /// DELETED apart. A lost connection resumes on any controller without missing a
    /// change; when the controller's history no longer reaches back, everything is listed
    /// again.
    #[arg(short, long)]
    watch: bool,
    /// With --watch: an EVENT column (ADDED, MODIFIED, DELETED), or `type` and `object`
    /// around each yaml or json document, or the event before each name.
    #[arg(long, requires = "watch")]
    output_watch_events: bool,
}

/// `moor describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// What to describe: pods (po), deployments (deploy), services (svc), nodes (no), …
    kind: String,
    /// One object by name; without it, every object of the kind (that -l matches).
    name: Option<String>,
    /// Only objects whose labels match (`app=web,tier in (a,b),!canary`).
    #[arg(short = 'l', long, conflicts_with = "name")]
    selector: Option<String>,
    /// The namespace (default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
}

/// `moor delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The kind, then the name (or use -f).
    #[arg(num_args = 0..=2)]
    what: Vec<String>,
    /// Delete what these manifests describe.
    #[arg(short, long = "filename", conflicts_with = "what")]
    file: Vec<PathBuf>,
    /// With -f: directories inside directories too.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// The namespace (default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
}

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Refused, or the input is wrong.
    Refused(anyhow::Error),
    /// No controller answered.
    Unreachable(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Refused(e)
    }
}

pub(crate) fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(e)) => {
            eprintln!("moor: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(e)) => {
            eprintln!("moor: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// `moor apply`.
pub fn apply(args: ApplyArgs, config: Option<&Path>) -> ExitCode {
    finish((|| {
        let inputs = read_inputs(&args.file, args.recursive, args.namespace.as_deref())?;
        for w in &inputs.warnings {
            eprintln!("warning: {w}");
        }
        let objects: Vec<Object> = inputs.objects.into_iter().map(|p| p.object).collect();
        let session = Session::open(config)?;
        let response = session.call(&Request::Apply {
            objects,
            dry_run: args.dry_run,
        })?;
        let Response::Applied { results, .. } = response else {
            return Err(unexpected(&response));
        };
        let suffix = if args.dry_run { " (dry run)" } else { "" };
        for r in results {
            let outcome = match r.outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Configured => "configured",
                ApplyOutcome::Unchanged => "unchanged",
            };
            println!(
                "{}{} {outcome}{suffix}",
                resource_prefix(r.key.kind),
                r.key.name
            );
        }
        Ok(())
    })())
}

/// `moor get`.
pub fn get(args: GetArgs, config: Option<&Path>) -> ExitCode {
    finish((|| {
        let kind = parse_kind(&args.kind)?;
        check_selector(args.selector.as_deref())?;
        let consistency = if args.stale {
            Consistency::Stale
        } else {
            Consistency::Linearizable
        };
        let namespace = namespace_for(kind, args.namespace.as_deref(), args.all_namespaces);
        if args.watch {
            let session = Session::open_with(config, &watch::TRANSPORT)?;
            let spec = watch::Spec {
                kind,
                name: args.name.clone(),
                namespace,
                selector: args.selector.clone(),
                consistency,
            };
            let style = watch::Style {
                format: args.output,
                all_namespaces: args.all_namespaces,
                events: args.output_watch_events,
            };
            return watch::run(&session, &spec, style);
        }
        let session = Session::open(config)?;
        let objects = match &args.name {
            Some(name) => {
                let key = ObjectKey {
                    kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                };
                match session.call(&Request::Get { key, consistency })? {
                    Response::Object { object, .. } => vec![*object],
                    other => return Err(unexpected(&other)),
                }
            }
            None => match session.call(&Request::List {
                kind,
                namespace: namespace.clone(),
                selector: args.selector.clone(),
                consistency,
            })? {
                Response::List { objects, .. } => objects,
                other => return Err(unexpected(&other)),
            },
        };
        let text = match args.output {
            Some(Format::Yaml) => {
                proto::render::to_yaml_stream(&objects).map_err(|e| anyhow!("render YAML: {e}"))?
            }
            Some(Format::Json) => json_list(&objects)?,
            Some(Format::Name) => print::names(&objects),
            Some(Format::Wide) | None => {
                if objects.is_empty() {
                    let place = match &namespace {
                        Some(ns) if kind.is_namespaced() => format!(" in {ns} namespace"),
                        _ => String::new(),
                    };
                    eprintln!("No resources found{place}.");
                    return Ok(());
                }
                print::table(
                    kind,
                    &objects,
                    args.all_namespaces,
                    args.output == Some(Format::Wide),
                    SystemTime::now(),
                )
            }
        };
        print!("{text}");
        Ok(())
    })())
}

/// `moor describe`.
pub fn describe(args: DescribeArgs, config: Option<&Path>) -> ExitCode {
    finish((|| {
        let kind = parse_kind(&args.kind)?;
        check_selector(args.selector.as_deref())?;
        let namespace = namespace_for(kind, args.namespace.as_deref(), args.all_namespaces);
        let session = Session::open(config)?;
        let objects = match &args.name {
            Some(name) => {
                let key = ObjectKey {
                    kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                };
                match session.call(&Request::Get {
                    key,
                    consistency: Consistency::Linearizable,
                })? {
                    Response::Object { object, .. } => vec![*object],
                    other => return Err(unexpected(&other)),
                }
            }
            None => match session.call(&Request::List {
                kind,
                namespace: namespace.clone(),
                selector: args.selector.clone(),
                consistency: Consistency::Linearizable,
            })? {
                Response::List { objects, .. } => objects,
                other => return Err(unexpected(&other)),
            },
        };
        if objects.is_empty() {
            let place = match &namespace {
                Some(ns) if kind.is_namespaced() => format!(" in {ns} namespace"),
                _ => String::new(),
            };
            eprintln!("No resources found{place}.");
            return Ok(());
        }
        let pages: Vec<String> = objects.iter().map(describe::describe).collect();
        print!("{}", pages.join("\n\n"));
        Ok(())
    })())
}

/// The kind a command line names, or an error listing the kinds there are.
fn parse_kind(name: &str) -> Result<Kind, Failure> {
    Kind::from_resource_name(name).ok_or_else(|| {
        anyhow!(
            "unknown kind {name:?}: expected one of namespaces (ns), nodes (no), pods (po), deployments (deploy), daemonsets (ds), jobs, services (svc), configmaps (cm), secrets"
        )
        .into()
    })
}

/// Refuses a selector the controller would refuse, before connecting.
fn check_selector(selector: Option<&str>) -> Result<(), Failure> {
    if let Some(sel) = selector {
        proto::selector::Selector::parse(sel).map_err(|e| anyhow!("-l {sel:?}: {e}"))?;
    }
    Ok(())
}

/// `moor delete`.
pub fn delete(args: DeleteArgs, config: Option<&Path>) -> ExitCode {
    finish((|| {
        let keys: Vec<ObjectKey> = if args.file.is_empty() {
            let [kind, name] = args.what.as_slice() else {
                return Err(anyhow!("give KIND NAME, or -f FILE").into());
            };
            let kind =
                Kind::from_resource_name(kind).ok_or_else(|| anyhow!("unknown kind {kind:?}"))?;
            vec![ObjectKey {
                kind,
                namespace: namespace_for(kind, args.namespace.as_deref(), false),
                name: name.clone(),
            }]
        } else {
            read_inputs(&args.file, args.recursive, args.namespace.as_deref())?
                .objects
                .iter()
                .map(|p| ObjectKey::of(&p.object))
                .collect()
        };
        let session = Session::open(config)?;
        let mut refused = Vec::new();
        for key in keys {
            match session.call(&Request::Delete {
                key: key.clone(),
                resource_version: None,
            }) {
                Ok(Response::Deleted { key, .. }) => {
                    println!("{}{} deleted", resource_prefix(key.kind), key.name)
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(Failure::Refused(e)) => refused.push(e.to_string()),
                Err(unreachable) => return Err(unreachable),
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", refused.join("\n")).into())
        }
    })())
}

/// `-f` inputs, stdin for `-`.
fn read_inputs(
    files: &[PathBuf],
    recursive: bool,
    namespace: Option<&str>,
) -> Result<inputs::Inputs, Failure> {
    inputs::read(files, recursive, namespace, &mut std::io::stdin().lock())
        .map_err(|e| Failure::Refused(anyhow!("{e}")))
}

/// The namespace a command means: none for cluster-wide kinds and `-A`, else `-n` or
/// `default`.
pub(crate) fn namespace_for(kind: Kind, flag: Option<&str>, all: bool) -> Option<String> {
    if !kind.is_namespaced() || all {
        None
    } else {
        Some(flag.unwrap_or("default").to_string())
    }
}

/// `deployment.apps/`, `service/`: how kubectl names objects in its messages.
fn resource_prefix(kind: Kind) -> String {
    let group = match kind.api_version().split_once('/') {
        Some((group, _)) => format!(".{group}"),
        None => String::new(),
    };
    format!("{}{group}/", kind.name().to_lowercase())
}

fn json_list(objects: &[Object]) -> Result<String, Failure> {
    if let [one] = objects {
        return proto::render::to_json(one).map_err(|e| anyhow!("render JSON: {e}").into());
    }
    let items: Vec<serde_json::Value> = objects
        .iter()
        .map(|o| {
            proto::render::to_json(o)
                .map_err(|e| anyhow!("render JSON: {e}"))
                .and_then(|t| serde_json::from_str(&t).map_err(|e| anyhow!("render JSON: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&list).unwrap_or_default()
    ))
}

pub(crate) fn unexpected(response: &Response) -> Failure {
    let what = match response {
        Response::Applied { .. } => "an apply result",
        Response::Object { .. } => "an object",
        Response::List { .. } => "a list",
        Response::Deleted { .. } => "a deletion",
        Response::Error(_) => "an error",
        Response::Token { .. } => "a token",
        Response::Tokens(_) => "a token list",
        Response::TokenDeleted { .. } => "a token deletion",
        Response::ControllerAdded { .. } => "a membership change",
        Response::Controllers(_) => "a controller list",
        Response::ControllerRemoved { .. } => "a removal",
        Response::HeartbeatAck { .. } => "a heartbeat answer",
        Response::Certificate { .. } => "a certificate",
        Response::NodeRemoved { .. } => "a node removal",
        Response::BackupStarted(_) => "a backup",
    };
    Failure::Refused(anyhow!(
        "the controller answered with {what}, which this command did not ask for (a moor version mismatch?)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::api::{ApiError, ErrorCode};
    use session::api_failure;

    #[test]
    fn messages_name_objects_as_kubectl_does() {
        assert_eq!(resource_prefix(Kind::Deployment), "deployment.apps/");
        assert_eq!(resource_prefix(Kind::Job), "job.batch/");
        assert_eq!(resource_prefix(Kind::Service), "service/");
        assert_eq!(resource_prefix(Kind::ConfigMap), "configmap/");
    }

    #[test]
    fn namespaces_default_except_for_cluster_kinds_and_all() {
        assert_eq!(
            namespace_for(Kind::Pod, None, false).as_deref(),
            Some("default")
        );
        assert_eq!(
            namespace_for(Kind::Pod, Some("edge"), false).as_deref(),
            Some("edge")
        );
        assert_eq!(namespace_for(Kind::Pod, None, true), None);
        assert_eq!(namespace_for(Kind::Node, Some("edge"), false), None);
    }

    #[test]
    fn only_unavailability_exits_with_three() {
        assert!(matches!(
            api_failure(ApiError::new(ErrorCode::Unavailable, "no leader")),
            Failure::Unreachable(_)
        ));
        assert!(matches!(
            api_failure(ApiError::new(ErrorCode::Conflict { current: 2 }, "changed")),
            Failure::Refused(_)
        ));
    }

    #[test]
    fn a_missing_config_names_the_file_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let Err(Failure::Refused(e)) = Session::open(Some(&path)) else {
            panic!("opened a session without a config");
        };
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}
