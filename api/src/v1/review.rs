//! Suggested policies and their review: pending, approved or rejected, then
//! applied in audit and finally enforced, each step recorded.

use bulkhead_model::Mode;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::flows::Flow;
use super::inventory::WorkloadRef;

/// Where a suggestion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for review.
    Pending,
    /// Approved, not applied yet.
    Approved,
    /// Rejected.
    Rejected,
    /// Applied in audit mode.
    Audit,
    /// Applied and enforced.
    Enforced,
    /// Replaced by a newer suggestion for the same workload before it was applied.
    Superseded,
}

/// What one rule of a suggested policy allows, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuleEvidence {
    /// `ingress` or `egress`.
    pub side: bulkhead_model::Direction,
    /// Index of the rule in its list.
    pub index: u32,
    /// The peers, readable ("ns/Deployment/name", CIDRs).
    pub peers: Vec<String>,
    /// The ports, readable ("TCP/8080").
    pub ports: Vec<String>,
    /// Connections seen on the edges behind the rule.
    pub connections: u64,
    /// First of them, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last of them.
    pub last_seen_ns: i64,
    /// Services the traffic was addressed to.
    pub services: Vec<String>,
}

/// A suggestion and its review state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewRecord {
    /// Id.
    pub id: u64,
    /// Where it stands.
    pub status: ReviewStatus,
    /// The workload it protects.
    pub workload: WorkloadRef,
    /// Whether the workload's baseline was stable when suggested (else it was still learning).
    pub stable: bool,
    /// When it was suggested, nanoseconds since the epoch.
    pub created_ns: i64,
    /// Its last change.
    pub updated_ns: i64,
    /// When it was applied in audit mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_since_ns: Option<i64>,
    /// When it was enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_since_ns: Option<i64>,
    /// The policy, a `networking.k8s.io/v1` NetworkPolicy with its evidence annotations.
    #[schema(value_type = Object)]
    pub policy: NetworkPolicy,
    /// Evidence per rule.
    pub rules: Vec<RuleEvidence>,
    /// Learned edges the policy cannot say exactly, and selector overlaps.
    pub warnings: Vec<String>,
}

/// One step of a suggestion's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewAction {
    /// suggest, approve, reject, apply-audit, apply-enforce.
    pub action: String,
    /// Who.
    pub actor: String,
    /// When, nanoseconds since the epoch.
    pub time_ns: i64,
    /// Why, as given.
    pub reason: String,
}

/// A recorded flow the policy would drop, and which side's policy would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WouldDrop {
    /// The flow.
    pub flow: Flow,
    /// What would deny it at the source's egress, if that side would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// What would deny it at the destination's ingress, if that side would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
}

/// The recorded flows of the learning window replayed through the policies
/// in force plus the suggestion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhatIf {
    /// Flows replayed.
    pub replayed: u64,
    /// Flows whose addresses no longer mean the same workloads (not replayed).
    pub not_replayable: u64,
    /// Flows already dropped when recorded.
    pub already_dropped: u64,
    /// Exactly the flows it would drop.
    pub would_drop: Vec<WouldDrop>,
}

/// A suggestion in full, for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewDetail {
    /// The suggestion and its state.
    pub record: ReviewRecord,
    /// The policy as YAML, as `kubectl apply -f` takes it.
    pub yaml: String,
    /// Against the policy of the same name in force: lines starting with `+`, `-` or ` `; empty when there is none.
    pub diff: Vec<String>,
    /// Other policies in force that select the workload's pods.
    pub also_in_force: Vec<String>,
    /// What it would drop of the recorded traffic, before anything is applied.
    pub what_if: WhatIf,
    /// In audit: flows the staged policy would have dropped (at most 100, newest last).
    pub would_drop: Vec<Flow>,
    /// How many there were in all.
    pub would_drop_total: u64,
    /// Every review action on it.
    pub history: Vec<ReviewAction>,
}

/// Filters of the review list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Only suggestions for workloads of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only suggestions in this state.
    #[serde(default)]
    pub status: Option<ReviewStatus>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Generate suggestions from the baselines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SuggestRequest {
    /// Only workloads of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Approve or reject a suggestion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DecisionRequest {
    /// Why (recorded with the decision and in the audit log).
    #[serde(default)]
    pub reason: String,
}

/// Apply an approved suggestion in audit, or enforce it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApplyRequest {
    /// `audit` or `enforce`.
    pub mode: Mode,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// Filters of the suggestion export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only suggestions for workloads of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only suggestions in this state (default: every state but rejected and superseded).
    #[serde(default)]
    pub status: Option<ReviewStatus>,
}

/// The suggested policies themselves, as `kubectl apply -f` takes them: a
/// Kubernetes `List` of NetworkPolicies with evidence in their annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyList {
    /// Always `v1`.
    pub api_version: String,
    /// Always `List`.
    pub kind: String,
    /// The policies.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<NetworkPolicy>,
}

impl PolicyList {
    /// A `v1` `List` of these policies.
    pub fn new(items: Vec<NetworkPolicy>) -> Self {
        Self { api_version: "v1".into(), kind: "List".into(), items }
    }
}
