//! Exposure: every service and workload port, how far it is exposed, what
//! it says it speaks, who the policies in force let reach it and who did in
//! a window, and the findings. A tenant sees the ports of its namespaces;
//! workloads of other tenants appear as their namespace.

use bulkhead_model::exposure::{AppProtocol, Exposer, ExposureClass, FindingKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::graph::GraphNode;

/// Query of the exposure report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExposureQuery {
    /// Only ports of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Start of the "did reach" window: an RFC 3339 time, or a duration ago such as `24h` (the default).
    #[serde(default)]
    pub since: Option<String>,
    /// Only ports with a finding of this kind.
    #[serde(default)]
    pub finding: Option<FindingKind>,
}

/// One thing that exposes a port outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExposedBy {
    /// What it is.
    pub via: Exposer,
    /// Which one, e.g. `NodePort 30080 on every node`, `Ingress shop/web`.
    pub detail: String,
}

/// How many of a namespace's workloads may reach a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceReach {
    /// The namespace.
    pub namespace: String,
    /// Its workloads the policies in force let connect.
    pub workloads: u64,
    /// Its workloads.
    pub of: u64,
}

/// Who the policies in force let reach a port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CanReach {
    /// How an outside address reaches it; absent when none can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    /// Namespaces with workloads that may connect.
    pub namespaces: Vec<NamespaceReach>,
    /// Every other namespace with workloads may connect.
    pub every_namespace: bool,
    /// Workloads that may connect (at most 50 are listed).
    pub workloads: Vec<GraphNode>,
    /// How many workloads may connect.
    pub workloads_total: u64,
}

/// A source that connected to a port in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reached {
    /// The source (a workload, a world prefix, a node).
    pub source: GraphNode,
    /// Connections or attempts.
    pub connections: u64,
    /// Of which dropped by policy.
    pub dropped: u64,
    /// Last seen, nanoseconds since the epoch.
    pub last_seen_ns: i64,
}

/// A finding about a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// What it reports.
    pub kind: FindingKind,
    /// One sentence.
    pub message: String,
    /// The facts behind it: rules, addresses, counts.
    pub evidence: Vec<String>,
    /// The workloads it is about.
    pub workloads: Vec<GraphNode>,
}

/// One exposed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExposedPort {
    /// Namespace.
    pub namespace: String,
    /// The service, for service ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The workloads serving it (node ids as on the map).
    pub workloads: Vec<GraphNode>,
    /// How far it is exposed.
    pub class: ExposureClass,
    /// What exposes it outside the cluster.
    pub exposed_by: Vec<ExposedBy>,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port clients address (service, host or container port).
    pub port: u16,
    /// The ports the workloads receive it on.
    pub targets: Vec<u16>,
    /// The port's name, or an ExternalName service's target name.
    pub name: String,
    /// What the declaration (appProtocol, port name) says it speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_protocol: Option<AppProtocol>,
    /// What its traffic speaks, by the payload samples: the class the
    /// server's bytes said most in the window, else its clients'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaks: Option<AppProtocol>,
    /// Every class the samples said in the window, most samples first.
    pub heard: Vec<HeardProtocol>,
    /// Some container declares the target port.
    pub declared: bool,
    /// Pod policy can apply (false on the host network).
    pub policed: bool,
    /// Whether its pods listen on it, by their agents' reads of each pod's
    /// socket tables; absent when none of its pods was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening: Option<Listening>,
    /// Who the policies in force let reach it.
    pub can_reach: CanReach,
    /// Who did in the window, most connections first.
    pub did_reach: Vec<Reached>,
    /// Findings.
    pub findings: Vec<Finding>,
}

/// What a port's payload samples of one class said. Only the class and
/// these fields are kept, never the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeardProtocol {
    /// The class; absent for bytes no rule recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<AppProtocol>,
    /// Samples of what clients sent.
    pub client_samples: u64,
    /// Samples of what the server sent.
    pub server_samples: u64,
    /// Last sample, nanoseconds since the epoch.
    pub last_seen_ns: i64,
    /// TLS server names and HTTP hosts asked for (a few).
    pub hosts: Vec<String>,
    /// TLS ALPN protocols offered.
    pub alpn: Vec<String>,
    /// HTTP methods, Redis or memcached commands.
    pub methods: Vec<String>,
}

/// Whether the pods behind a port listen on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Listening {
    /// Pods behind the port whose sockets were read.
    pub pods_read: u64,
    /// Those listening on it, "namespace/pod".
    pub open: Vec<String>,
    /// Those bound to loopback only, which other pods cannot reach.
    pub loopback_only: Vec<String>,
    /// Those with no socket on it.
    pub closed: Vec<String>,
    /// The oldest of the reads, nanoseconds since the epoch.
    pub read_ns: i64,
}

/// How many findings of one kind the report holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FindingCount {
    /// The kind.
    pub kind: FindingKind,
    /// How many.
    pub count: u64,
}

/// The exposure report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Exposure {
    /// Start of the "did reach" window, nanoseconds since the epoch.
    pub since_ns: i64,
    /// Its end.
    pub until_ns: i64,
    /// Ports, by namespace, then service or workload, then port.
    pub ports: Vec<ExposedPort>,
    /// Findings by kind, over the ports listed.
    pub findings: Vec<FindingCount>,
}
