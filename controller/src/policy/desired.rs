//! Each node's desired state, from the compiled cluster: only the pods a
//! node hosts get their endpoints and entries there; identities and the
//! ipcache go everywhere. Quarantined pods are carried in it, so an agent
//! that restarts or missed the fast path still cuts them off.

use bulkhead_api::agent::v1 as pb;
use bulkhead_policy::compile::Compiled;

use crate::error::ControllerError;
use crate::policy::ids::Ids;
use crate::policy::store::Model;
use bulkhead_model::{Direction, Mode, identity};

fn mode(m: Mode) -> pb::Mode {
    match m {
        Mode::Learn => pb::Mode::Learn,
        Mode::Audit => pb::Mode::Audit,
        Mode::Enforce => pb::Mode::Enforce,
    }
}

/// The desired state of `node`.
pub fn for_node(
    node: &str,
    generation: u64,
    compiled: &Compiled,
    model: &Model,
    ids: &mut Ids,
    default_mode: Mode,
    quarantined: &std::collections::BTreeSet<String>,
) -> Result<pb::DesiredState, ControllerError> {
    let mut state = pb::DesiredState { generation, ..Default::default() };
    // Reserved identities (host, world, unknown) are the agent's own.
    state.identities = compiled
        .identities
        .iter()
        .filter(|i| !identity::is_reserved(i.id))
        .map(|i| pb::Identity {
            id: i.id,
            cluster: i.cluster.clone(),
            namespace: i.namespace.clone(),
            labels: i.labels.clone().into_iter().collect(),
        })
        .collect();
    state.ipcache = compiled
        .ipcache
        .iter()
        .map(|e| {
            let (namespace, pod) = match model.inventory.pods.get(&e.owner) {
                Some(p) => (p.namespace.clone(), p.name.clone()),
                None => (String::new(), String::new()),
            };
            pb::IpcacheEntry { cidr: e.net.to_string(), identity: e.identity, namespace, pod }
        })
        .collect();
    for ep in compiled.for_node(node) {
        let (Some(pod), Some(extras)) = (model.inventory.pods.get(&ep.pod), model.pods.get(&ep.pod)) else {
            continue;
        };
        let endpoint_id = ids.endpoint(&extras.uid)?;
        if quarantined.contains(&extras.uid) {
            state.quarantined_endpoints.push(endpoint_id);
        }
        let m = mode(extras.mode.unwrap_or(default_mode)) as i32;
        state.endpoints.push(pb::Endpoint {
            endpoint_id,
            identity: ep.identity,
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            // Never from the pod's own object: a pod that named another's
            // namespace would take over its interface. The agent finds it.
            netns: String::new(),
            ips: pod.ips.iter().map(|i| i.to_string()).collect(),
            ingress_mode: m,
            egress_mode: m,
            ingress_isolated: ep.ingress_isolated,
            egress_isolated: ep.egress_isolated,
            pod_ifname: "eth0".into(),
        });
        for e in &ep.entries {
            state.policy.push(pb::PolicyEntry {
                endpoint_id,
                remote_identity: e.identity,
                direction: match e.direction {
                    Direction::Ingress => bulkhead_api::flow::v1::Direction::Ingress,
                    Direction::Egress => bulkhead_api::flow::v1::Direction::Egress,
                } as i32,
                protocol: u32::from(e.protocol),
                port: u32::from(e.port),
                end_port: u32::from(e.end_port),
                action: if e.allow { pb::Action::Allow } else { pb::Action::Deny } as i32,
                rule_id: ids.rule(&e.rule),
                rule_name: e.rule.clone(),
            });
        }
    }
    Ok(state)
}
