//! Policies in force, changes to the controller's objects, and explaining
//! a verdict.

use bulkhead_model::Mode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInForce {
    /// `NetworkPolicy`, `ClusterNetworkPolicy` or `BulkheadClusterPolicy`.
    pub kind: String,
    /// Namespace of a NetworkPolicy; absent for cluster-wide policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `Admin` or `Baseline`, for ClusterNetworkPolicies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Priority within the tier, for ClusterNetworkPolicies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The mode it is staged in (`bulkhead.dev/mode`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Ingress rules.
    pub ingress_rules: u32,
    /// Egress rules.
    pub egress_rules: u32,
    /// Pods it selects now ("namespace/name"), in the caller's scope.
    pub selects: Vec<String>,
    /// The object as YAML.
    pub yaml: String,
}

/// Filters of the policy list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// Only NetworkPolicies of this namespace (and cluster-wide policies selecting its pods).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Objects to add, replace or delete, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeRequest {
    /// Kubernetes objects as YAML (or JSON), one or more documents: NetworkPolicy,
    /// ClusterNetworkPolicy, BulkheadClusterPolicy, Quarantine, Namespace, Pod, Node, Service, EndpointSlice.
    pub yaml: String,
    /// Where the YAML came from (a file name), for error messages.
    #[serde(default)]
    pub source: String,
}

/// What a change did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeResult {
    /// Generation of the desired state after the change.
    pub generation: u64,
    /// "Kind namespace/name" of each object created, changed or deleted.
    pub changed: Vec<String>,
    /// Objects sent but identical to what was there (or already absent).
    pub unchanged: Vec<String>,
    /// Documents of kinds the controller does not use, e.g. "apps/v1 Deployment".
    pub skipped: Vec<String>,
    /// Time to validate and compile, microseconds.
    pub compile_micros: u64,
}

/// "Can A reach B:port?"
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// Source: "namespace/pod" or an IP address.
    pub from: String,
    /// Destination: "namespace/pod", "namespace/service" or an IP address.
    pub to: String,
    /// Destination port (required for TCP, UDP and SCTP).
    #[serde(default)]
    pub port: Option<u16>,
    /// TCP (default), UDP, SCTP, or ICMP for protocols without ports.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// What decided one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SideDecision {
    /// Whether this side allows it.
    pub allowed: bool,
    /// The rule or default that decided (e.g. `NetworkPolicy shop/web ingress[0]`, `default deny (isolated by …)`).
    pub decided_by: String,
}

/// The verdict and what decided each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    /// Whether the connection is allowed.
    pub allowed: bool,
    /// The source address judged.
    pub from_address: String,
    /// The destination address judged.
    pub to_address: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: String,
    /// The source pod's egress; absent when the source is not a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<SideDecision>,
    /// The destination pod's ingress; absent when the destination is not a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<SideDecision>,
}
