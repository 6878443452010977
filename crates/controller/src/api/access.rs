//! Who may do what, from the role and name in the caller's certificate. Pure decisions.
//!
//! Owns: the rules below and the `Forbidden` answers, which name the role, the caller and
//! the object. Does not own: finding which pods are on a node (`service` gathers them).
//!
//! | role | read | write |
//! |---|---|---|
//! | admin | everything | everything |
//! | agent | Services and Nodes everywhere; Pods whose `spec.nodeName` is the agent; Secrets and ConfigMaps that such a pod uses (volume or env) | its own Node, by apply (no delete) |
//! | controller | nothing: the certificate is for Raft peers | nothing |
//!
//! An agent watches Services, Nodes and its own Pods; it reads Secrets and ConfigMaps by
//! get or list only (a watch of them would have to follow pods being bound, not done yet).
//! Nodes are readable by every agent because routes to other nodes' pod subnets need their
//! addresses; they carry no secrets. Pod status writes by agents are not allowed yet.
//! ```text
//! request ─► can_call(role) ─► kind rule ─► object rule (Scope::allows) ─► service
//! ```

use std::collections::BTreeSet;

use proto::Object;
use proto::api::{ApiError, ErrorCode, ObjectKey};
use proto::resources::{Kind, PodSpec};
use wire::Role;

/// The caller of one request, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub name: String,
}

impl From<&wire::Peer> for Caller {
    fn from(peer: &wire::Peer) -> Self {
        Caller {
            role: peer.role,
            name: peer.name.clone(),
        }
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.role, self.name)
    }
}

/// Which objects of a kind a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every object.
    All,
    /// Pods bound to this node.
    NodePods { node: String },
    /// These (namespace, name) of the kind: what the agent's pods use.
    Referenced { names: BTreeSet<(String, String)> },
}

impl Scope {
    /// Whether `object` is in the scope.
    pub fn allows(&self, object: &Object) -> bool {
        match self {
            Scope::All => true,
            Scope::NodePods { node } => match object {
                Object::Pod(pod) => pod.spec.node_name.as_deref() == Some(node.as_str()),
                _ => false,
            },
            Scope::Referenced { names } => {
                let meta = object.metadata();
                names.contains(&(meta.namespace_or_default().to_owned(), meta.name.clone()))
            }
        }
    }
}

/// How an agent may read a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRule {
    /// Whatever the scope says.
    Scoped,
    /// Secrets and ConfigMaps: the scope needs the pods of the caller's node.
    NeedsNodePods,
}

fn forbidden(caller: &Caller, what: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, format!("{caller} may not {what}"))
}

/// Refuses every call of a certificate that is not for clients.
pub fn can_call(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::Admin | Role::Agent => Ok(()),
        Role::Controller => Err(forbidden(
            caller,
            "call the client api: controller certificates are for raft peers",
        )),
    }
}

/// The read rule for `kind`, or Forbidden. `what` names the object or listing in the answer.
pub fn read_rule(caller: &Caller, kind: Kind, what: &str) -> Result<ReadRule, ApiError> {
    can_call(caller)?;
    match (caller.role, kind) {
        (Role::Admin, _) => Ok(ReadRule::Scoped),
        (Role::Agent, Kind::Service | Kind::Node | Kind::Pod) => Ok(ReadRule::Scoped),
        (Role::Agent, Kind::Secret | Kind::ConfigMap) => Ok(ReadRule::NeedsNodePods),
        _ => Err(forbidden(caller, &format!("read {what}"))),
    }
}

/// The scope of a read of `kind` under `ReadRule::Scoped` (or of a watch).
pub fn scope(caller: &Caller, kind: Kind) -> Scope {
    match (caller.role, kind) {
        (Role::Agent, Kind::Pod) => Scope::NodePods {
            node: caller.name.clone(),
        },
        _ => Scope::All,
    }
}

/// The scope of an agent's read of Secrets or ConfigMaps, given the pods on its node.
pub fn referenced_scope<'a>(kind: Kind, pods: impl IntoIterator<Item = &'a Object>) -> Scope {
    let mut names = BTreeSet::new();
    for pod in pods {
        if let Object::Pod(p) = pod {
            let namespace = p.metadata.namespace_or_default();
            for name in referenced(&p.spec, kind) {
                names.insert((namespace.to_owned(), name));
            }
        }
    }
    Scope::Referenced { names }
}

/// The Secrets (or ConfigMaps) a pod spec uses, by volume or environment variable.
fn referenced(spec: &PodSpec, kind: Kind) -> Vec<String> {
    let mut names = Vec::new();
    for volume in &spec.volumes {
        match kind {
            Kind::Secret => names.extend(volume.secret.as_ref().map(|s| s.secret_name.clone())),
            Kind::ConfigMap => names.extend(volume.config_map.as_ref().map(|c| c.name.clone())),
            _ => {}
        }
    }
    for container in &spec.containers {
        for env in &container.env {
            let Some(from) = &env.value_from else {
                continue;
            };
            let selector = match kind {
                Kind::Secret => from.secret_key_ref.as_ref(),
                Kind::ConfigMap => from.config_map_key_ref.as_ref(),
                _ => None,
            };
            names.extend(selector.map(|s| s.name.clone()));
        }
    }
    names
}

/// Checks a watch: agents may watch Services, Nodes and their own Pods.
pub fn watch_scope(caller: &Caller, kind: Kind) -> Result<Scope, ApiError> {
    can_call(caller)?;
    match (caller.role, kind) {
        (Role::Admin, _) | (Role::Agent, Kind::Service | Kind::Node | Kind::Pod) => {
            Ok(scope(caller, kind))
        }
        _ => Err(forbidden(caller, &format!("watch {}", kind.name()))),
    }
}

/// Checks a write (apply) of `key`.
pub fn can_write(caller: &Caller, key: &ObjectKey) -> Result<(), ApiError> {
    can_call(caller)?;
    match caller.role {
        Role::Admin => Ok(()),
        Role::Agent if key.kind == Kind::Node && key.name == caller.name => Ok(()),
        _ => Err(forbidden(caller, &format!("write {key}"))),
    }
}

/// Checks a delete of `key`.
pub fn can_delete(caller: &Caller, key: &ObjectKey) -> Result<(), ApiError> {
    can_call(caller)?;
    match caller.role {
        Role::Admin => Ok(()),
        _ => Err(forbidden(caller, &format!("delete {key}"))),
    }
}

/// The Forbidden answer for reading `key` outside the caller's scope.
pub fn out_of_scope(caller: &Caller, key: &ObjectKey) -> ApiError {
    let why = match key.kind {
        Kind::Pod => "it is not bound to this node",
        _ => "no pod on this node uses it",
    };
    forbidden(caller, &format!("read {key}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, name: &str) -> Caller {
        Caller {
            role,
            name: name.into(),
        }
    }

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: kind.is_namespaced().then(|| "default".into()),
            name: name.into(),
        }
    }

    fn pod(yaml_spec: &str) -> Object {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{yaml_spec}");
        let mut manifest = proto::parse("p.yaml", yaml.as_bytes()).expect("parse");
        manifest.objects.remove(0).object
    }

    #[test]
    fn admin_may_do_everything_and_controller_nothing() {
        let admin = caller(Role::Admin, "ops");
        let peer = caller(Role::Controller, "c1");
        for kind in Kind::ALL {
            assert!(read_rule(&admin, kind, "x").is_ok());
            assert!(watch_scope(&admin, kind).is_ok());
            assert!(can_write(&admin, &key(kind, "x")).is_ok());
            assert!(can_delete(&admin, &key(kind, "x")).is_ok());
            let err = read_rule(&peer, kind, "x").unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden);
            assert!(err.message.contains("controller c1"), "{}", err.message);
            assert!(can_write(&peer, &key(kind, "x")).is_err());
        }
    }

    #[test]
    fn agent_writes_only_its_own_node_and_deletes_nothing() {
        let agent = caller(Role::Agent, "edge-01");
        assert!(can_write(&agent, &key(Kind::Node, "edge-01")).is_ok());
        let err = can_write(&agent, &key(Kind::Node, "edge-02")).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert_eq!(err.message, "agent edge-01 may not write node/edge-02");
        assert!(can_write(&agent, &key(Kind::Pod, "p")).is_err());
        assert!(can_delete(&agent, &key(Kind::Node, "edge-01")).is_err());
    }

    #[test]
    fn agent_reads_services_nodes_own_pods_and_what_they_use() {
        let agent = caller(Role::Agent, "edge-01");
        assert_eq!(read_rule(&agent, Kind::Service, "x"), Ok(ReadRule::Scoped));
        assert_eq!(scope(&agent, Kind::Service), Scope::All);
        assert_eq!(
            read_rule(&agent, Kind::Secret, "x"),
            Ok(ReadRule::NeedsNodePods)
        );
        for kind in [
            Kind::Deployment,
            Kind::DaemonSet,
            Kind::Job,
            Kind::Namespace,
        ] {
            assert!(read_rule(&agent, kind, "x").is_err(), "{kind}");
        }
        let mine = pod("  nodeName: edge-01\n  containers: [{name: c, image: i}]\n");
        let theirs = pod("  nodeName: edge-02\n  containers: [{name: c, image: i}]\n");
        let unbound = pod("  containers: [{name: c, image: i}]\n");
        let pods = scope(&agent, Kind::Pod);
        assert!(pods.allows(&mine));
        assert!(!pods.allows(&theirs));
        assert!(!pods.allows(&unbound));
    }

    #[test]
    fn referenced_scope_collects_volumes_and_env_of_the_given_pods() {
        let mine = pod(concat!(
            "  nodeName: edge-01\n",
            "  volumes: [{name: v, secret: {secretName: tls}}, {name: w, configMap: {name: conf}}]\n",
            "  containers:\n",
            "  - name: c\n    image: i\n",
            "    env: [{name: A, valueFrom: {secretKeyRef: {name: token, key: k}}}]\n",
        ));
        let secrets = referenced_scope(Kind::Secret, [&mine]);
        let mut expected = BTreeSet::new();
        expected.insert(("default".to_string(), "tls".to_string()));
        expected.insert(("default".to_string(), "token".to_string()));
        assert_eq!(secrets, Scope::Referenced { names: expected });
        let config_maps = referenced_scope(Kind::ConfigMap, [&mine]);
        let Scope::Referenced { names } = config_maps else {
            panic!("referenced")
        };
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn agents_watch_only_services_nodes_and_their_pods() {
        let agent = caller(Role::Agent, "edge-01");
        assert_eq!(watch_scope(&agent, Kind::Service), Ok(Scope::All));
        assert_eq!(
            watch_scope(&agent, Kind::Pod),
            Ok(Scope::NodePods {
                node: "edge-01".into()
            })
        );
        let err = watch_scope(&agent, Kind::Secret).unwrap_err();
        assert_eq!(err.message, "agent edge-01 may not watch Secret");
    }
}
