//! The service graph at three levels (namespace, workload, pod), over a
//! time range, and the difference between two windows.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// How fine the graph's nodes are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// One node per namespace.
    Namespace,
    /// One node per workload (Deployment, StatefulSet, DaemonSet, bare pod).
    #[default]
    Workload,
    /// One node per pod.
    Pod,
}

/// What a node of the graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A namespace (namespace level, or a redacted end at finer levels).
    Namespace,
    /// A workload.
    Workload,
    /// A pod.
    Pod,
    /// A service whose backend was not observed.
    Service,
    /// Addresses outside the cluster (a /24 or /64).
    World,
    /// A node.
    Host,
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    /// Stable id, referenced by edges (e.g. `workload:shop/Deployment/web`, `pod:shop/web-1`, `world:192.0.2.0/24`).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its namespace, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Readable name (the workload, pod, service, CIDR or node name).
    pub name: String,
    /// The workload's owner kind, for workloads and pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<String>,
    /// Outside the caller's namespaces: only the namespace is shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

/// An edge: connections from one node to another on one protocol and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GraphEdge {
    /// Source node id.
    pub source: String,
    /// Destination node id.
    pub destination: String,
    /// TCP, UDP, SCTP, ICMP…
    pub protocol: String,
    /// The port traffic was delivered to (the target port when the destination saw it).
    pub port: u16,
    /// The service addressed ("namespace/name:port"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Connections or attempts, each counted once whichever ends saw it.
    pub connections: u64,
    /// Of which forwarded.
    pub forwarded: u64,
    /// Of which dropped by policy.
    pub dropped: u64,
    /// Of which would have been dropped (audit mode).
    pub audit: u64,
    /// Bytes.
    pub bytes: u64,
    /// First seen, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last seen.
    pub last_seen_ns: i64,
    /// The scan edge (port 0): every port between these two nodes past the
    /// controller's `--scan-edge-ports`, counted together.
    #[serde(default)]
    pub folded: bool,
}

/// The graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Graph {
    /// Its level.
    pub level: Level,
    /// The window it covers (absent: since the store began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ns: Option<i64>,
    /// The window's end (absent: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ns: Option<i64>,
    /// Nodes, sorted by id.
    pub nodes: Vec<GraphNode>,
    /// Edges, sorted by source, destination, protocol and port.
    pub edges: Vec<GraphEdge>,
}

/// What changed between two windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GraphDiff {
    /// Its level.
    pub level: Level,
    /// Edges seen in the second window and not in the first (counts of the second).
    pub new: Vec<GraphEdge>,
    /// Edges seen in the first window and not in the second (counts of the first).
    pub vanished: Vec<GraphEdge>,
    /// The nodes either list refers to.
    pub nodes: Vec<GraphNode>,
}

/// Query of the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphQuery {
    /// namespace, workload (default) or pod.
    #[serde(default)]
    pub level: Option<Level>,
    /// Only edges with an end in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// From: an RFC 3339 time, or a duration ago such as `15m`. The pod
    /// level defaults to the last hour.
    #[serde(default)]
    pub since: Option<String>,
    /// To (exclusive): an RFC 3339 time, or a duration ago.
    #[serde(default)]
    pub until: Option<String>,
}

/// Query of the difference between window A (`since`..`until`) and window
/// B (`then_since`..`then_until`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphDiffQuery {
    /// namespace, workload (default) or pod.
    #[serde(default)]
    pub level: Option<Level>,
    /// Only edges with an end in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Start of the first window (required): an RFC 3339 time or a duration ago.
    pub since: String,
    /// End of the first window, start of the second (required).
    pub until: String,
    /// End of the second window (default now).
    #[serde(default)]
    pub then_until: Option<String>,
}

/// What a workload can reach under the policies in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlastRadius {
    /// The workload asked about.
    pub from: GraphNode,
    /// Everything it can open connections to, directly or through what it reaches.
    pub reachable: Vec<GraphNode>,
}

/// Query of what the policies in force allow between workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllowedQuery {
    /// Only pairs with an end in this namespace (needed on large clusters).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One connection the policies in force allow, from one workload to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowedEdge {
    /// Source node id (as in the workload-level graph).
    pub source: String,
    /// Destination node id.
    pub destination: String,
    /// TCP, UDP, SCTP…
    pub protocol: String,
    /// The destination port (declared by its pods, or seen in traffic to it).
    pub port: u16,
    /// Whether traffic was observed on it: allowed but never used is where to tighten.
    pub observed: bool,
}

/// What the policies in force allow, laid over what was observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Allowed {
    /// The workloads the edges refer to.
    pub nodes: Vec<GraphNode>,
    /// Allowed edges, sorted by source, destination, protocol and port.
    pub edges: Vec<AllowedEdge>,
}
