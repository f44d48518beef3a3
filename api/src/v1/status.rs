//! The controller's health as an operator reads it: the generation, each
//! node's sync state, pods left unprotected, and the flow pipeline's
//! counters with losses by stage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What `GET /api/v1/status` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// Generation of the desired state (microseconds since the epoch when it was made).
    pub generation: u64,
    /// Pods in the inventory.
    pub pods: u32,
    /// NetworkPolicies in force.
    pub network_policies: u32,
    /// ClusterNetworkPolicies in force.
    pub cluster_policies: u32,
    /// Security identities.
    pub identities: u32,
    /// Compiled policy entries, all nodes.
    pub policy_entries: u32,
    /// The last rejected change, so an operator can see why nothing changed; empty when none.
    pub last_error: String,
    /// Each node's agent.
    pub nodes: Vec<NodeSync>,
    /// Pods the dataplane does not protect (no host-side interface, attach failed).
    pub unprotected: Vec<UnprotectedPod>,
    /// The flow pipeline.
    pub flows: FlowPipeline,
    /// Quarantines in force.
    pub quarantines_active: u32,
    /// Policies enforced other than as written (rules failed closed) and
    /// retired objects not enforced, one line each saying what to do.
    pub policy_warnings: Vec<String>,
    /// This controller's cluster name, which its pods' identities carry.
    pub cluster: String,
}

/// One node's sync state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeSync {
    /// Node name.
    pub node: String,
    /// Generation the agent reports it enforces.
    pub applied_generation: u64,
    /// Whether it enforces the current generation with every pod protected.
    pub in_sync: bool,
    /// Why not, when not; empty when in sync.
    pub error: String,
    /// Endpoints the agent enforces.
    pub endpoints: u32,
    /// Policy entries the agent enforces.
    pub policy_entries: u32,
}

/// A pod that is not protected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnprotectedPod {
    /// "namespace/name".
    pub pod: String,
    /// Its node.
    pub node: String,
    /// What the agent reported.
    pub reason: String,
}

/// Flow pipeline counters, running totals since the flow store was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlowPipeline {
    /// Wire flows received from agents.
    pub received: u64,
    /// Connection records made from them.
    pub records: u64,
    /// Wire flows that were not connection starts (closes, counters, replies).
    pub not_connections: u64,
    /// Classified payload samples taken in (type identification).
    #[serde(default)]
    pub samples: u64,
    /// Records stored.
    pub stored: u64,
    /// Oldest stored records evicted by the size cap (retention, not loss).
    pub evicted: u64,
    /// Flows lost, by stage: `kernel` (the node's event ring was full),
    /// `source_rate` (their initiating address was over its event rate: a
    /// flood's own loss), `agent_buffer` (left the agent's buffer before the controller read it),
    /// `undecodable`, `storage` (a commit failed).
    pub lost: BTreeMap<String, u64>,
    /// Anomaly events.
    pub anomalies: u64,
    /// The last storage error; empty when fine.
    pub storage_error: String,
}

impl FlowPipeline {
    /// Every loss, all stages.
    pub fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }
}
