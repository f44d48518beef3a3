//! What-if: replay recorded flows through a proposed set of policies with the
//! policy engine's own evaluator, and list exactly the flows it would drop.
//! A flow is only replayed while its addresses still belong to the workloads
//! it was recorded with; the others are counted, not guessed at.

use bulkhead_policy::evaluate::{Evaluator, PolicySet};
use bulkhead_policy::inventory::Inventory;
use bulkhead_policy::ports::Protocol;
use serde::Serialize;

use crate::flow::FlowRecord;
use bulkhead_model::Verdict;

/// One flow the proposal would drop, and which side would drop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WouldDrop {
    /// The recorded flow.
    pub flow: FlowRecord,
    /// What would decide the source's egress, when it would deny.
    pub egress: Option<String>,
    /// What would decide the destination's ingress, when it would deny.
    pub ingress: Option<String>,
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WhatIf {
    /// Flows replayed.
    pub replayed: u64,
    /// Flows not replayed because an address now belongs to another
    /// workload, or to none.
    pub not_replayable: u64,
    /// Flows that were dropped when recorded (not the proposal's business).
    pub already_dropped: u64,
    /// Flows the proposal would drop.
    pub would_drop: Vec<WouldDrop>,
}

/// Replays `flows` through `policies` over `inventory`. `still_valid` says
/// whether a flow's addresses still mean the entities recorded on it.
pub fn what_if(
    inventory: &Inventory,
    policies: &PolicySet,
    flows: &[FlowRecord],
    still_valid: impl Fn(&FlowRecord) -> bool,
) -> WhatIf {
    let eval = Evaluator::new(inventory, policies);
    let mut out = WhatIf::default();
    for f in flows {
        if f.verdict == Verdict::Dropped {
            out.already_dropped += 1;
            continue;
        }
        if !still_valid(f) {
            out.not_replayable += 1;
            continue;
        }
        out.replayed += 1;
        let proto = Protocol::from_number(f.protocol);
        let port = if proto.is_some() { f.dst_port } else { 0 };
        let v = eval.connection(f.src_ip, f.dst_ip, proto, port);
        if !v.allowed {
            let deny = |d: Option<bulkhead_policy::evaluate::Decision>| d.filter(|d| !d.allowed).map(|d| d.by.name());
            out.would_drop.push(WouldDrop { flow: f.clone(), egress: deny(v.egress), ingress: deny(v.ingress) });
        }
    }
    out
}
