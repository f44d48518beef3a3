//! Turning the lab's inventory and rules into each node's desired dataplane
//! state (the job the controller takes over in the next milestone).

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_api::agent::v1 as pb;

use crate::manifest::{Peer, Selector};
use crate::state::LabState;

/// First identity used for CIDR peers.
const CIDR_IDENTITY_BASE: u32 = 1 << 24;
/// The reserved host identity.
const HOST_IDENTITY: u32 = 1;

fn matches(sel: &Selector, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
    sel.namespace.as_deref().is_none_or(|n| n == namespace)
        && sel.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn mode(name: &str) -> pb::Mode {
    match name {
        "enforce" => pb::Mode::Enforce,
        "audit" => pb::Mode::Audit,
        _ => pb::Mode::Learn,
    }
}

fn strictness(m: pb::Mode) -> u8 {
    match m {
        pb::Mode::Enforce => 3,
        pb::Mode::Audit => 2,
        _ => 1,
    }
}

/// Identity of every pod: one per distinct (namespace, labels).
pub fn identities(lab: &LabState) -> BTreeMap<(String, BTreeMap<String, String>), u32> {
    let set: BTreeSet<_> = lab.pods.iter().map(|p| (p.namespace.clone(), p.labels.clone())).collect();
    set.into_iter().enumerate().map(|(i, k)| (k, 256 + i as u32)).collect()
}

/// The desired state of node `index`.
pub fn for_node(lab: &LabState, index: usize) -> pb::DesiredState {
    let ids = identities(lab);
    let id_of =
        |ns: &str, labels: &BTreeMap<String, String>| ids.get(&(ns.to_string(), labels.clone())).copied().unwrap_or(3);
    let mut state = pb::DesiredState { generation: lab.generation, ..Default::default() };
    for ((ns, labels), id) in &ids {
        state.identities.push(pb::Identity {
            id: *id,
            cluster: "lab".into(),
            namespace: ns.clone(),
            labels: labels.clone().into_iter().collect(),
        });
    }
    for p in &lab.pods {
        for ip in &p.ips {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            state.ipcache.push(pb::IpcacheEntry {
                cidr: format!("{ip}/{bits}"),
                identity: id_of(&p.namespace, &p.labels),
                namespace: p.namespace.clone(),
                pod: p.name.clone(),
            });
        }
    }
    for n in &lab.nodes {
        let bits = if n.node_ip.is_ipv4() { 32 } else { 128 };
        state.ipcache.push(pb::IpcacheEntry {
            cidr: format!("{}/{bits}", n.node_ip),
            identity: HOST_IDENTITY,
            ..Default::default()
        });
    }
    let mut cidr_ids: BTreeMap<ipnetwork::IpNetwork, u32> = BTreeMap::new();
    for r in &lab.rules {
        for p in &r.peers {
            if let Peer::Cidr(net) = p {
                let next = CIDR_IDENTITY_BASE + cidr_ids.len() as u32;
                cidr_ids.entry(*net).or_insert(next);
            }
        }
    }
    let taken: BTreeSet<String> = state.ipcache.iter().map(|e| e.cidr.clone()).collect();
    for (net, id) in &cidr_ids {
        if !taken.contains(&net.to_string()) {
            state.ipcache.push(pb::IpcacheEntry { cidr: net.to_string(), identity: *id, ..Default::default() });
        }
    }

    for pod in &lab.pods {
        if pod.node != index {
            continue;
        }
        let endpoint_id = pod.endpoint_id;
        let mut modes = [mode(&lab.default_mode), mode(&lab.default_mode)];
        let mut isolated = [false, false];
        let mut selected = [false, false];
        for (ri, r) in lab.rules.iter().enumerate() {
            if !matches(&r.selector, &pod.namespace, &pod.labels) {
                continue;
            }
            let d = usize::from(!r.ingress);
            let m = mode(&r.mode);
            if !selected[d] || strictness(m) > strictness(modes[d]) {
                modes[d] = m;
            }
            selected[d] = true;
            if !r.deny {
                isolated[d] = true;
            }
            let mut remotes = BTreeSet::new();
            for peer in &r.peers {
                match peer {
                    Peer::Any => {
                        remotes.insert(0);
                    }
                    Peer::Cidr(net) => {
                        // the CIDR's own identity and those of every narrower CIDR inside it
                        remotes.extend(
                            cidr_ids
                                .iter()
                                .filter(|(n, _)| n.prefix() >= net.prefix() && net.contains(n.network()))
                                .map(|(_, id)| *id),
                        );
                    }
                    Peer::Pods(sel) => {
                        for q in lab.pods.iter().filter(|q| matches(sel, &q.namespace, &q.labels)) {
                            remotes.insert(id_of(&q.namespace, &q.labels));
                        }
                    }
                }
            }
            let ports = if r.ports.is_empty() { vec![(0u8, 0u16, 0u16)] } else { r.ports.clone() };
            for remote in remotes {
                for (protocol, port, end) in &ports {
                    state.policy.push(pb::PolicyEntry {
                        endpoint_id,
                        remote_identity: remote,
                        direction: if r.ingress { pb::Direction::Ingress } else { pb::Direction::Egress } as i32,
                        protocol: u32::from(*protocol),
                        port: u32::from(*port),
                        end_port: u32::from(*end),
                        action: if r.deny { pb::Action::Deny } else { pb::Action::Allow } as i32,
                        rule_id: ri as u32 + 1,
                        rule_name: r.name.clone(),
                    });
                }
            }
        }
        state.endpoints.push(pb::Endpoint {
            endpoint_id,
            identity: id_of(&pod.namespace, &pod.labels),
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            netns: crate::netns::path(&pod.netns).to_string_lossy().into_owned(),
            ips: pod.ips.iter().map(|i| i.to_string()).collect(),
            ingress_mode: modes[0] as i32,
            egress_mode: modes[1] as i32,
            ingress_isolated: isolated[0],
            egress_isolated: isolated[1],
            pod_ifname: "eth0".into(),
        });
    }
    state
}
