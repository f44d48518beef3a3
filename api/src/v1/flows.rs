//! Flows as the controller stores and streams them: one observation of a
//! connection (or denied attempt) at one end, both ends named as they were
//! at flow time. For a tenant, an end outside its namespaces shows only its
//! namespace.

use bulkhead_model::{Direction, Reason, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What an end of a flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// A pod of a workload.
    Workload,
    /// A service whose backend was not observed.
    Service,
    /// An address outside the cluster.
    World,
    /// A node.
    Host,
    /// Outside the caller's namespaces: only the namespace is shown.
    Namespace,
}

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Peer {
    /// What it is.
    pub kind: PeerKind,
    /// Its namespace (workloads, services, and redacted ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The workload's owner kind (Deployment, StatefulSet, DaemonSet, Pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<String>,
    /// The workload's or service's name, or the node's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pod's name (without its namespace), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The address as observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// The service a connection was addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The service port the client connected to.
    pub port: u16,
}

/// One observation of a connection or denied attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Flow {
    /// The stored flow's id, or the live stream's sequence number.
    pub id: u64,
    /// When the connection started (or the attempt was denied), nanoseconds since the epoch.
    pub time_ns: i64,
    /// The node that saw it.
    pub node: String,
    /// Which end saw it: `egress` at the source pod, `ingress` at the destination pod.
    pub observation: Direction,
    /// Who opened the connection.
    pub source: Peer,
    /// Where it went, as the observing end knows it.
    pub destination: Peer,
    /// TCP, UDP, SCTP, ICMP, ICMPv6 or a protocol number.
    pub protocol: String,
    /// Source port.
    pub src_port: u16,
    /// Destination port as observed (the service port when addressed to a ClusterIP).
    pub dst_port: u16,
    /// The service addressed, when the destination was a ClusterIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// What happened at the observing end.
    pub verdict: Verdict,
    /// Why it was dropped (or would have been, in audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<Reason>,
    /// The policy rule that decided it, when one did (e.g. `shop/web#ingress[0]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Bytes, both directions, so far.
    pub bytes: u64,
    /// Packets, both directions, so far.
    pub packets: u64,
}

/// Which end of a flow a filter applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Either end.
    #[default]
    Either,
    /// The source.
    Source,
    /// The destination.
    Destination,
}

/// Filters of stored and live flows; absent filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct FlowQuery {
    /// An end in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// An end is this pod ("namespace/name" or a name).
    #[serde(default)]
    pub pod: Option<String>,
    /// An end is this workload (its name, or "namespace/name").
    #[serde(default)]
    pub workload: Option<String>,
    /// Which end `namespace`, `pod` and `workload` apply to (default either).
    #[serde(default)]
    pub side: Option<Side>,
    /// Only this verdict.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Destination port, as observed.
    #[serde(default)]
    pub port: Option<u16>,
    /// TCP, UDP, SCTP, ICMP, ICMPv6 or a protocol number.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The rule that decided it, exactly (e.g. `shop/web#ingress[0]`).
    #[serde(default)]
    pub rule: Option<String>,
    /// From: an RFC 3339 time, or a duration ago such as `5m`, `2h`, `30s`.
    #[serde(default)]
    pub since: Option<String>,
    /// To (exclusive): an RFC 3339 time, or a duration ago.
    #[serde(default)]
    pub until: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor` (stored
    /// flows), or the last event id received (live stream).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Sent on the live stream instead of flows the client was too slow for:
/// they left the controller's buffer before it read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lost {
    /// Flows lost just now.
    pub lost: u64,
    /// Flows this client lost since it connected.
    pub total: u64,
    /// The sequence number reading resumed at.
    pub resumed_at: u64,
}

/// One message of the live flow stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A flow.
    Flow(Box<Flow>),
    /// Flows this client lost.
    Lost(Lost),
}
