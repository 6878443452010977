//! The field table: for every field a manifest may hold, its class and shape. This is
//! the one place a later step changes when it starts to honour a field: it moves the
//! entry from `deferred` to `honoured` (with a real shape) and gives the field a typed
//! home in `resources` instead of `Opaque`.
//!
//! | class | meaning | on input |
//! |---|---|---|
//! | honoured | moor acts on it | checked, stored, validated |
//! | controller-owned | filled by the controller (`uid`, `resourceVersion`, ...) | stored; a warning when set, since the controller replaces it |
//! | deferred | belongs to a later step (`strategy`, `affinity`, `tolerations`, `securityContext`, ...) | stored as written; a warning that it is not honoured yet |
//! | dropped | written by the controller and meaningless in a manifest (`status`, `managedFields`) | not stored; a warning when not empty |
//! | rejected | moor will not do it (`persistentVolumeClaim`, `runtimeClassName`, ...) | an error with the reason |
//! | (absent) | unknown | an error: nothing is silently ignored |
//!
//! Empty values (`null`, `{}`, `[]`, `""`) of deferred, dropped and rejected fields are
//! accepted without a word: they are the boilerplate kubectl and Helm emit
//! (`creationTimestamp: null`, `status: {}`, `strategy: {}`) and carry no meaning.
//! An empty honoured field means the same as an absent one.
//!
//! Does not own: value rules beyond shape (`validate`).

use crate::resources::Kind;

/// What moor does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClass {
    /// moor acts on the field.
    Honoured,
    /// The controller fills it; a manifest's value is stored and replaced on write.
    ControllerOwned,
    /// Stored as written and reported as not honoured yet.
    Deferred,
    /// Accepted and discarded, with the reason, when not empty.
    Dropped(&'static str),
    /// Refused, with the reason, when not empty.
    Rejected(&'static str),
}

/// The form a field's value must take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A string.
    Str,
    /// An integer in 32 bits.
    Int32,
    /// An integer in 64 bits.
    Int64,
    /// `true` or `false`.
    Bool,
    /// One of the listed strings.
    Enum(&'static [&'static str]),
    /// A port number or a port name.
    IntOrStr,
    /// A Kubernetes quantity (`500m`, `128Mi`, `2`, `0.5`), stored as a string.
    Quantity,
    /// A mapping of strings to strings.
    StrMap,
    /// A mapping of strings to quantities.
    QuantityMap,
    /// A mapping of strings to base64 text.
    Base64Map,
    /// A list of strings.
    StrList,
    /// A mapping with the listed fields.
    Object(&'static [Field]),
    /// A list of values of one shape.
    List(&'static Shape),
    /// Anything: kept as written (deferred and dropped fields).
    Any,
}

/// One entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The key as written in YAML.
    pub name: &'static str,
    /// What moor does with it.
    pub class: FieldClass,
    /// What it must look like.
    pub shape: Shape,
}

const fn honoured(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        class: FieldClass::Honoured,
        shape,
    }
}
const fn owned(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        class: FieldClass::ControllerOwned,
        shape,
    }
}
const fn deferred(name: &'static str) -> Field {
    Field {
        name,
        class: FieldClass::Deferred,
        shape: Shape::Any,
    }
}
const fn dropped(name: &'static str, reason: &'static str) -> Field {
    Field {
        name,
        class: FieldClass::Dropped(reason),
        shape: Shape::Any,
    }
}
const fn rejected(name: &'static str, reason: &'static str) -> Field {
    Field {
        name,
        class: FieldClass::Rejected(reason),
        shape: Shape::Any,
    }
}

const SET_BY_CONTROLLER: &str = "written by the controller; ignored in a manifest";
const NO_PERSISTENT_VOLUMES: &str =
    "persistent volumes are not supported yet; use hostPath or emptyDir";
const ONE_RUNTIME: &str = "moor has a single built-in runtime";
const NO_CLOUD: &str = "moor has no cloud load balancer";
const NO_CLOUD_PROVIDER: &str = "moor runs without a cloud provider";

const TYPE_META: [Field; 2] = [
    honoured("apiVersion", Shape::Str),
    honoured("kind", Shape::Str),
];

static OBJECT_META: &[Field] = &[
    honoured("name", Shape::Str),
    honoured("namespace", Shape::Str),
    honoured("labels", Shape::StrMap),
    honoured("annotations", Shape::StrMap),
    owned("uid", Shape::Str),
    owned("resourceVersion", Shape::Str),
    owned("generation", Shape::Int64),
    owned("creationTimestamp", Shape::Str),
    deferred("ownerReferences"),
    deferred("finalizers"),
    rejected(
        "generateName",
        "moor needs an explicit name to apply a manifest again",
    ),
    dropped("managedFields", SET_BY_CONTROLLER),
    dropped("selfLink", SET_BY_CONTROLLER),
    dropped("deletionTimestamp", SET_BY_CONTROLLER),
    dropped("deletionGracePeriodSeconds", SET_BY_CONTROLLER),
];

static TEMPLATE_META: &[Field] = &[
    honoured("labels", Shape::StrMap),
    honoured("annotations", Shape::StrMap),
    dropped(
        "name",
        "pods made from a template are named by the controller",
    ),
    dropped("creationTimestamp", SET_BY_CONTROLLER),
];

static KEY_SELECTOR: &[Field] = &[
    honoured("name", Shape::Str),
    honoured("key", Shape::Str),
    honoured("optional", Shape::Bool),
];

static ENV_VAR_SOURCE: &[Field] = &[
    honoured("configMapKeyRef", Shape::Object(KEY_SELECTOR)),
    honoured("secretKeyRef", Shape::Object(KEY_SELECTOR)),
    deferred("fieldRef"),
    deferred("resourceFieldRef"),
];

static ENV_VAR: &[Field] = &[
    honoured("name", Shape::Str),
    honoured("value", Shape::Str),
    honoured("valueFrom", Shape::Object(ENV_VAR_SOURCE)),
];

const PROTOCOLS: &[&str] = &["TCP", "UDP"];

static CONTAINER_PORT: &[Field] = &[
    honoured("containerPort", Shape::Int32),
    honoured("name", Shape::Str),
    honoured("protocol", Shape::Enum(PROTOCOLS)),
    deferred("hostPort"),
    deferred("hostIP"),
];

static RESOURCES: &[Field] = &[
    honoured("limits", Shape::QuantityMap),
    honoured("requests", Shape::QuantityMap),
    rejected("claims", "dynamic resource claims are not supported"),
];

static HTTP_GET: &[Field] = &[
    honoured("path", Shape::Str),
    honoured("port", Shape::IntOrStr),
    honoured("scheme", Shape::Enum(&["HTTP", "HTTPS"])),
    deferred("host"),
    deferred("httpHeaders"),
];

static TCP_SOCKET: &[Field] = &[honoured("port", Shape::IntOrStr), deferred("host")];

static EXEC: &[Field] = &[honoured("command", Shape::StrList)];

static PROBE: &[Field] = &[
    honoured("httpGet", Shape::Object(HTTP_GET)),
    honoured("tcpSocket", Shape::Object(TCP_SOCKET)),
    honoured("exec", Shape::Object(EXEC)),
    deferred("grpc"),
    honoured("initialDelaySeconds", Shape::Int32),
    honoured("periodSeconds", Shape::Int32),
    honoured("timeoutSeconds", Shape::Int32),
    honoured("successThreshold", Shape::Int32),
    honoured("failureThreshold", Shape::Int32),
    deferred("terminationGracePeriodSeconds"),
];

static VOLUME_MOUNT: &[Field] = &[
    honoured("name", Shape::Str),
    honoured("mountPath", Shape::Str),
    honoured("readOnly", Shape::Bool),
    honoured("subPath", Shape::Str),
    deferred("mountPropagation"),
    deferred("subPathExpr"),
    deferred("recursiveReadOnly"),
];

static CONTAINER: &[Field] = &[
    honoured("name", Shape::Str),
    honoured("image", Shape::Str),
    honoured("command", Shape::StrList),
    honoured("args", Shape::StrList),
    honoured("workingDir", Shape::Str),
    honoured("ports", Shape::List(&Shape::Object(CONTAINER_PORT))),
    honoured("env", Shape::List(&Shape::Object(ENV_VAR))),
    honoured("resources", Shape::Object(RESOURCES)),
    honoured("livenessProbe", Shape::Object(PROBE)),
    honoured("readinessProbe", Shape::Object(PROBE)),
    honoured("startupProbe", Shape::Object(PROBE)),
    honoured("volumeMounts", Shape::List(&Shape::Object(VOLUME_MOUNT))),
    honoured(
        "imagePullPolicy",
        Shape::Enum(&["Always", "IfNotPresent", "Never"]),
    ),
    deferred("envFrom"),
    deferred("securityContext"),
    deferred("lifecycle"),
    deferred("terminationMessagePath"),
    deferred("terminationMessagePolicy"),
    deferred("stdin"),
    deferred("stdinOnce"),
    deferred("tty"),
    deferred("resizePolicy"),
    deferred("restartPolicy"),
    rejected("volumeDevices", "block volumes are not supported"),
];

static KEY_TO_PATH: &[Field] = &[
    honoured("key", Shape::Str),
    honoured("path", Shape::Str),
    honoured("mode", Shape::Int32),
];

static VOLUME: &[Field] = &[
    honoured("name", Shape::Str),
    honoured(
        "emptyDir",
        Shape::Object(&[
            honoured("medium", Shape::Enum(&["", "Memory"])),
            honoured("sizeLimit", Shape::Quantity),
        ]),
    ),
    honoured(
        "configMap",
        Shape::Object(&[
            honoured("name", Shape::Str),
            honoured("items", Shape::List(&Shape::Object(KEY_TO_PATH))),
            honoured("defaultMode", Shape::Int32),
            honoured("optional", Shape::Bool),
        ]),
    ),
    honoured(
        "secret",
        Shape::Object(&[
            honoured("secretName", Shape::Str),
            honoured("items", Shape::List(&Shape::Object(KEY_TO_PATH))),
            honoured("defaultMode", Shape::Int32),
            honoured("optional", Shape::Bool),
        ]),
    ),
    honoured(
        "hostPath",
        Shape::Object(&[
            honoured("path", Shape::Str),
            honoured(
                "type",
                Shape::Enum(&[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ]),
            ),
        ]),
    ),
    deferred("projected"),
    deferred("downwardAPI"),
    rejected("persistentVolumeClaim", NO_PERSISTENT_VOLUMES),
    rejected("nfs", NO_PERSISTENT_VOLUMES),
    rejected("iscsi", NO_PERSISTENT_VOLUMES),
    rejected("csi", NO_PERSISTENT_VOLUMES),
    rejected("ephemeral", NO_PERSISTENT_VOLUMES),
    rejected("image", "image volumes are not supported"),
];

static POD_SPEC: &[Field] = &[
    honoured("containers", Shape::List(&Shape::Object(CONTAINER))),
    honoured("volumes", Shape::List(&Shape::Object(VOLUME))),
    honoured(
        "restartPolicy",
        Shape::Enum(&["Always", "OnFailure", "Never"]),
    ),
    honoured("nodeSelector", Shape::StrMap),
    honoured("nodeName", Shape::Str),
    honoured("terminationGracePeriodSeconds", Shape::Int64),
    deferred("initContainers"),
    deferred("hostname"),
    deferred("subdomain"),
    deferred("dnsPolicy"),
    deferred("dnsConfig"),
    deferred("hostAliases"),
    deferred("serviceAccountName"),
    deferred("serviceAccount"),
    deferred("automountServiceAccountToken"),
    deferred("securityContext"),
    deferred("affinity"),
    deferred("tolerations"),
    deferred("topologySpreadConstraints"),
    deferred("priorityClassName"),
    deferred("priority"),
    deferred("schedulerName"),
    deferred("imagePullSecrets"),
    deferred("hostNetwork"),
    deferred("hostPID"),
    deferred("hostIPC"),
    deferred("shareProcessNamespace"),
    deferred("activeDeadlineSeconds"),
    deferred("enableServiceLinks"),
    deferred("preemptionPolicy"),
    deferred("readinessGates"),
    deferred("setHostnameAsFQDN"),
    deferred("os"),
    deferred("hostUsers"),
    deferred("schedulingGates"),
    rejected("runtimeClassName", ONE_RUNTIME),
    rejected("overhead", ONE_RUNTIME),
    rejected(
        "ephemeralContainers",
        "ephemeral containers are not supported; use moor exec",
    ),
    rejected(
        "resourceClaims",
        "dynamic resource claims are not supported",
    ),
];

static POD_TEMPLATE: &[Field] = &[
    honoured("metadata", Shape::Object(TEMPLATE_META)),
    honoured("spec", Shape::Object(POD_SPEC)),
];

static LABEL_SELECTOR: &[Field] = &[
    honoured("matchLabels", Shape::StrMap),
    honoured(
        "matchExpressions",
        Shape::List(&Shape::Object(&[
            honoured("key", Shape::Str),
            honoured(
                "operator",
                Shape::Enum(&["In", "NotIn", "Exists", "DoesNotExist"]),
            ),
            honoured("values", Shape::StrList),
        ])),
    ),
];

static DEPLOYMENT_SPEC: &[Field] = &[
    honoured("replicas", Shape::Int32),
    honoured("selector", Shape::Object(LABEL_SELECTOR)),
    honoured("template", Shape::Object(POD_TEMPLATE)),
    deferred("strategy"),
    deferred("minReadySeconds"),
    deferred("revisionHistoryLimit"),
    deferred("progressDeadlineSeconds"),
    deferred("paused"),
];

static DAEMON_SET_SPEC: &[Field] = &[
    honoured("selector", Shape::Object(LABEL_SELECTOR)),
    honoured("template", Shape::Object(POD_TEMPLATE)),
    deferred("updateStrategy"),
    deferred("minReadySeconds"),
    deferred("revisionHistoryLimit"),
];

static JOB_SPEC: &[Field] = &[
    honoured("template", Shape::Object(POD_TEMPLATE)),
    honoured("completions", Shape::Int32),
    honoured("parallelism", Shape::Int32),
    honoured("backoffLimit", Shape::Int32),
    deferred("activeDeadlineSeconds"),
    deferred("ttlSecondsAfterFinished"),
    deferred("selector"),
    deferred("manualSelector"),
    deferred("completionMode"),
    deferred("suspend"),
    deferred("podFailurePolicy"),
    deferred("backoffLimitPerIndex"),
];

static SERVICE_PORT: &[Field] = &[
    honoured("name", Shape::Str),
    honoured("protocol", Shape::Enum(PROTOCOLS)),
    honoured("port", Shape::Int32),
    honoured("targetPort", Shape::IntOrStr),
    honoured("nodePort", Shape::Int32),
    deferred("appProtocol"),
];

static SERVICE_SPEC: &[Field] = &[
    honoured("type", Shape::Enum(&["ClusterIP", "NodePort"])),
    honoured("selector", Shape::StrMap),
    honoured("ports", Shape::List(&Shape::Object(SERVICE_PORT))),
    honoured("clusterIP", Shape::Str),
    honoured("sessionAffinity", Shape::Enum(&["None", "ClientIP"])),
    deferred("clusterIPs"),
    deferred("sessionAffinityConfig"),
    deferred("externalTrafficPolicy"),
    deferred("internalTrafficPolicy"),
    deferred("ipFamilies"),
    deferred("ipFamilyPolicy"),
    deferred("externalIPs"),
    deferred("publishNotReadyAddresses"),
    rejected("externalName", "ExternalName services are not supported"),
    rejected("loadBalancerIP", NO_CLOUD),
    rejected("loadBalancerSourceRanges", NO_CLOUD),
    rejected("loadBalancerClass", NO_CLOUD),
    rejected("allocateLoadBalancerNodePorts", NO_CLOUD),
    rejected("healthCheckNodePort", NO_CLOUD),
    rejected(
        "trafficDistribution",
        "topology-aware routing is not supported",
    ),
];

static NODE_SPEC: &[Field] = &[
    honoured("unschedulable", Shape::Bool),
    owned("podCIDR", Shape::Str),
    deferred("taints"),
    dropped("podCIDRs", SET_BY_CONTROLLER),
    rejected("providerID", NO_CLOUD_PROVIDER),
];

macro_rules! root {
    ($($field:expr),* $(,)?) => {
        &[
            TYPE_META[0],
            TYPE_META[1],
            honoured("metadata", Shape::Object(OBJECT_META)),
            dropped("status", SET_BY_CONTROLLER),
            $($field),*
        ]
    };
}

static NAMESPACE_ROOT: &[Field] = root![dropped("spec", "namespace finalizers are not used")];
static NODE_ROOT: &[Field] = root![honoured("spec", Shape::Object(NODE_SPEC))];
static POD_ROOT: &[Field] = root![honoured("spec", Shape::Object(POD_SPEC))];
static DEPLOYMENT_ROOT: &[Field] = root![honoured("spec", Shape::Object(DEPLOYMENT_SPEC))];
static DAEMON_SET_ROOT: &[Field] = root![honoured("spec", Shape::Object(DAEMON_SET_SPEC))];
static JOB_ROOT: &[Field] = root![honoured("spec", Shape::Object(JOB_SPEC))];
static SERVICE_ROOT: &[Field] = root![honoured("spec", Shape::Object(SERVICE_SPEC))];
static CONFIG_MAP_ROOT: &[Field] = root![
    honoured("data", Shape::StrMap),
    honoured("binaryData", Shape::Base64Map),
    honoured("immutable", Shape::Bool),
];
static SECRET_ROOT: &[Field] = root![
    honoured("data", Shape::Base64Map),
    honoured("stringData", Shape::StrMap),
    honoured("type", Shape::Str),
    honoured("immutable", Shape::Bool),
];

/// A `v1` `List`: its items are objects, each checked against its own kind's table
/// (the shape here only says they are a list).
pub(crate) static LIST_ROOT: &[Field] = &[
    TYPE_META[0],
    TYPE_META[1],
    honoured("items", Shape::List(&Shape::Any)),
    dropped("metadata", "a list is not stored, only its items"),
];

/// The top-level fields of a kind.
pub fn root_fields(kind: Kind) -> &'static [Field] {
    match kind {
        Kind::Namespace => NAMESPACE_ROOT,
        Kind::Node => NODE_ROOT,
        Kind::Pod => POD_ROOT,
        Kind::Deployment => DEPLOYMENT_ROOT,
        Kind::DaemonSet => DAEMON_SET_ROOT,
        Kind::Job => JOB_ROOT,
        Kind::Service => SERVICE_ROOT,
        Kind::ConfigMap => CONFIG_MAP_ROOT,
        Kind::Secret => SECRET_ROOT,
    }
}

/// The whole table as Markdown, one row per field, for `crates/proto/README.md` (a test
/// keeps the README equal to this). A sub-table met a second time (the pod spec inside
/// each template) is listed once and referred to after; the tables are statics, so a
/// sub-table's address identifies it.
pub fn field_table_markdown() -> String {
    let mut out = String::from("| kind | field | class | note |\n|---|---|---|---|\n");
    let mut first_paths: Vec<(*const Field, String)> = Vec::new();
    for kind in Kind::ALL {
        describe(&mut out, &mut first_paths, kind, root_fields(kind), "");
    }
    out
}

fn describe(
    out: &mut String,
    first_paths: &mut Vec<(*const Field, String)>,
    kind: Kind,
    fields: &'static [Field],
    prefix: &str,
) {
    for field in fields {
        let path = format!("{prefix}{}", field.name);
        let (class, note) = match field.class {
            FieldClass::Honoured => ("honoured", String::new()),
            FieldClass::ControllerOwned => ("controller-owned", String::new()),
            FieldClass::Deferred => ("stored, warns", String::new()),
            FieldClass::Dropped(reason) => ("dropped, warns", reason.to_owned()),
            FieldClass::Rejected(reason) => ("rejected", reason.to_owned()),
        };
        let mut shape = &field.shape;
        let mut item_path = path.clone();
        while let Shape::List(item) = shape {
            shape = item;
            item_path.push_str("[]");
        }
        let inner = match shape {
            Shape::Object(inner) => Some(*inner),
            _ => None,
        };
        let earlier = inner.and_then(|inner| {
            first_paths
                .iter()
                .find(|(table, _)| *table == inner.as_ptr())
                .map(|(_, path)| path.clone())
        });
        let note = match &earlier {
            Some(earlier) => format!("same fields as `{earlier}`"),
            None => note,
        };
        out.push_str(&format!("| {kind} | `{path}` | {class} | {note} |\n"));
        if let (Some(inner), None) = (inner, earlier) {
            first_paths.push((inner.as_ptr(), format!("{kind} {item_path}")));
            describe(out, first_paths, kind, inner, &format!("{item_path}."));
        }
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
