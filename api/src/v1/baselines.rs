//! Learned baselines and the anomalies seen once a workload is stable.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::flows::{Flow, Peer};
use super::inventory::WorkloadRef;

/// Where a workload's baseline stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// New edges are learned.
    Learning,
    /// New edges are anomalies.
    Stable,
}

/// One workload's baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkloadBaseline {
    /// The workload.
    pub workload: WorkloadRef,
    /// Learning or stable.
    pub phase: Phase,
    /// First flow seen, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last time an edge was added to its baseline.
    pub last_new_edge_ns: i64,
    /// When it became stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_since_ns: Option<i64>,
    /// Edges in its baseline (both directions).
    pub edges: u64,
}

/// Every baseline in scope, and the learning settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Baselines {
    /// Learning window, seconds.
    pub window_seconds: i64,
    /// Quiet period, seconds.
    pub quiet_seconds: i64,
    /// Per workload.
    pub workloads: Vec<WorkloadBaseline>,
}

/// What a port scan or host sweep tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScanSummary {
    /// The scanning address.
    #[schema(value_type = String)]
    pub source_ip: std::net::IpAddr,
    /// The scanning pod ("namespace/name"), when a pod in the caller's scope.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_pod: String,
    /// Distinct ports tried so far.
    pub ports: u32,
    /// Distinct hosts tried so far.
    pub hosts: u32,
    /// The lowest ports tried (at most 32), ascending.
    pub sample_ports: Vec<u16>,
    /// New-edge anomalies of the scan's first window, folded into it.
    pub folded: u32,
    /// Edges the scan's first window had added to a baseline, taken back out.
    pub unlearned: u32,
}

/// A new edge at a workload whose baseline was stable, or a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    /// Stable, increasing id.
    pub id: u64,
    /// `new_edge`, `port_scan` or `host_sweep`.
    pub kind: bulkhead_model::AnomalyKind,
    /// The stable workload that saw something new; for a scan, the scanning
    /// workload, or the first scanned one when the scanner is not a workload.
    pub workload: WorkloadRef,
    /// Its side of the edge: `egress` (it opened the connection) or `ingress`.
    pub side: bulkhead_model::Direction,
    /// The edge's source.
    pub source: Peer,
    /// The edge's destination.
    pub destination: Peer,
    /// TCP, UDP…
    pub protocol: String,
    /// Port.
    pub port: u16,
    /// First occurrence, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last occurrence.
    pub last_seen_ns: i64,
    /// Connections on it so far.
    pub connections: u64,
    /// Of which dropped by policy.
    pub dropped: u64,
    /// The first flows that showed it.
    pub evidence: Vec<Flow>,
    /// What a scan tried; absent for a new edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSummary>,
}

/// Filters of the anomaly list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyQuery {
    /// Only anomalies with an end in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only anomalies of this workload (its name, or "namespace/name").
    #[serde(default)]
    pub workload: Option<String>,
    /// Only anomalies last seen at or after: an RFC 3339 time or a duration ago.
    #[serde(default)]
    pub since: Option<String>,
    /// Only anomalies of this kind.
    #[serde(default)]
    pub kind: Option<bulkhead_model::AnomalyKind>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}
