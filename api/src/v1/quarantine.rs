//! Quarantines: a pod, or every pod of a workload (including pods created
//! later), cut off from the network both ways until released.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What to quarantine: exactly one of `pod` and `workload`, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuarantineRequest {
    /// A pod, "namespace/name".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// A workload, "namespace/name": every pod of it, now and later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Why (required; recorded and audited).
    pub reason: String,
}

/// Release a quarantine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ReleaseQuery {
    /// Why (required; recorded and audited).
    #[serde(default)]
    pub reason: String,
}

/// What a quarantine targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// One pod.
    Pod,
    /// Every pod of a workload.
    Workload,
}

/// Where a quarantine stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineState {
    /// In force.
    Active,
    /// Released.
    Released,
    /// Ended because its pod was deleted.
    Ended,
}

/// A pod a quarantine cuts off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuarantinedPod {
    /// "namespace/name".
    pub pod: String,
    /// Its node.
    pub node: String,
    /// Its dataplane endpoint id.
    pub endpoint_id: u32,
    /// Whether its node's agent reported the cut enforced.
    pub enforced: bool,
    /// The agent's map write, microseconds, when enforced by this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_micros: Option<u64>,
    /// Why it is not enforced yet, when not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// A quarantine and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quarantine {
    /// Id, for `DELETE /api/v1/quarantines/{id}`.
    pub id: u64,
    /// Pod or workload.
    pub kind: TargetKind,
    /// Its namespace.
    pub namespace: String,
    /// The pod's or workload's name.
    pub name: String,
    /// Where it stands.
    pub state: QuarantineState,
    /// Why it was made.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When, nanoseconds since the epoch.
    pub created_ns: i64,
    /// The Quarantine object it comes from, when it was made by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Who released it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When it was released or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ns: Option<i64>,
    /// Why it was released or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The pods it cuts off now (none once released).
    pub pods: Vec<QuarantinedPod>,
    /// For the request that made or released it: microseconds from the
    /// request's arrival to every agent's report that the drop is enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_micros: Option<u64>,
}

/// Filters of the quarantine list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    /// Only quarantines of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only quarantines in this state.
    #[serde(default)]
    pub state: Option<QuarantineState>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}
