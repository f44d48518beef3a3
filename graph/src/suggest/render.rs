//! Suggestion groups into the NetworkPolicy wire type, with names, labels
//! and evidence annotations.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Group, Peer, RuleEvidence, WorkloadInfo, cidr};
use crate::baseline::WorkloadBaseline;
use crate::flow::Entity;
use bulkhead_model::Direction;

/// Label on every suggested policy.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "bulkhead");
/// Annotation naming the workload a suggestion protects.
pub const WORKLOAD_ANNOTATION: &str = "bulkhead.dev/workload";
/// Prefix of the per-rule evidence annotations (`evidence.bulkhead.dev/ingress-0`).
pub const EVIDENCE_PREFIX: &str = "evidence.bulkhead.dev";

const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// NetworkPolicy's name for a protocol, if it can name it.
pub fn protocol_name(p: u8) -> Option<&'static str> {
    match p {
        6 => Some("TCP"),
        17 => Some("UDP"),
        132 => Some("SCTP"),
        _ => None,
    }
}

/// "namespace/Kind/name", a CIDR, "node n1" or "service ns/name".
pub fn entity_name(e: &Entity) -> String {
    match e {
        Entity::Workload { namespace, kind, name } => format!("{namespace}/{kind}/{name}"),
        Entity::Service { namespace, name } => format!("service {namespace}/{name}"),
        Entity::World { cidr } => cidr.to_string(),
        Entity::Host { node } => format!("node {node}"),
    }
}

/// RFC 3339 (UTC, seconds) for nanoseconds since the epoch.
pub fn timestamp(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ns.to_string())
}

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels.clone()), match_expressions: None }
}

/// The policy for `w` and the evidence of each rule. `groups` is
/// [ingress, egress].
pub(super) fn policy(
    w: &Entity,
    info: &WorkloadInfo,
    infos: &[(&Entity, &WorkloadInfo)],
    baseline: &WorkloadBaseline,
    groups: &[Vec<Group>; 2],
) -> (NetworkPolicy, Vec<RuleEvidence>) {
    let (namespace, name) = match w {
        Entity::Workload { namespace, name, .. } => (namespace.to_string(), name.to_string()),
        other => (String::new(), entity_name(other)),
    };
    let mut annotations = BTreeMap::from([(WORKLOAD_ANNOTATION.to_string(), entity_name(w))]);
    annotations.insert(
        "bulkhead.dev/baseline".into(),
        match baseline.stable_since_ns {
            Some(t) => format!("stable since {}, learning from {}", timestamp(t), timestamp(baseline.first_seen_ns)),
            None => format!("still learning, since {}", timestamp(baseline.first_seen_ns)),
        },
    );
    let mut evidence = Vec::new();
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for (side, list) in [(Direction::Ingress, &groups[0]), (Direction::Egress, &groups[1])] {
        for (index, g) in list.iter().enumerate() {
            let peers = peers(g, infos);
            let ports = ports(&g.ports);
            let ev = rule_evidence(side, index, g, infos);
            let key =
                format!("{EVIDENCE_PREFIX}/{}-{index}", if side == Direction::Ingress { "ingress" } else { "egress" });
            let mut text = describe(&ev);
            if g.peers.iter().any(|(_, u)| u.dns_tcp_implied) {
                text.push_str(
                    "; TCP/53 is allowed beside the UDP/53 seen: resolvers retry over TCP when an answer \
                     is too large for UDP (RFC 7766)",
                );
            }
            annotations.insert(key, text);
            evidence.push(ev);
            match side {
                Direction::Ingress => {
                    ingress.push(NetworkPolicyIngressRule { from: Some(peers), ports: Some(ports) });
                }
                Direction::Egress => egress.push(NetworkPolicyEgressRule { to: Some(peers), ports: Some(ports) }),
            }
        }
    }
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("bulkhead-{name}")),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())])),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(&info.selector)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    };
    (policy, evidence)
}

fn peers(g: &Group, infos: &[(&Entity, &WorkloadInfo)]) -> Vec<NetworkPolicyPeer> {
    let mut out = Vec::new();
    let mut addrs = BTreeSet::new();
    for (p, _) in &g.peers {
        match p {
            Peer::Workload(i) => {
                let Some((e, info)) = infos.get(*i) else { continue };
                let labels = info.selector.clone();
                out.push(NetworkPolicyPeer {
                    namespace_selector: e
                        .namespace()
                        .map(|ns| selector(&BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), ns.to_string())]))),
                    pod_selector: Some(selector(&labels)),
                    ip_block: None,
                });
            }
            Peer::Address(a) => {
                addrs.insert(*a);
            }
        }
    }
    for net in cidr::exact_cover(&addrs) {
        out.push(NetworkPolicyPeer {
            ip_block: Some(IPBlock { cidr: net.to_string(), except: None }),
            namespace_selector: None,
            pod_selector: None,
        });
    }
    out
}

/// Ports in protocol then port order; runs of three or more consecutive
/// ports become one range.
fn ports(set: &BTreeSet<(u8, u16)>) -> Vec<NetworkPolicyPort> {
    let mut runs: Vec<(u8, u16, u16)> = Vec::new();
    for &(proto, port) in set {
        match runs.last_mut() {
            Some((p, _, end)) if *p == proto && u32::from(*end) + 1 == u32::from(port) => *end = port,
            _ => runs.push((proto, port, port)),
        }
    }
    let mut out = Vec::new();
    for (proto, start, end) in runs {
        let protocol = protocol_name(proto).map(str::to_string);
        if end - start >= 2 {
            out.push(NetworkPolicyPort {
                protocol,
                port: Some(IntOrString::Int(i32::from(start))),
                end_port: Some(i32::from(end)),
            });
        } else {
            for p in start..=end {
                out.push(NetworkPolicyPort {
                    protocol: protocol.clone(),
                    port: Some(IntOrString::Int(i32::from(p))),
                    end_port: None,
                });
            }
        }
    }
    out
}

fn rule_evidence(side: Direction, index: usize, g: &Group, infos: &[(&Entity, &WorkloadInfo)]) -> RuleEvidence {
    let mut peers = Vec::new();
    let mut addrs = BTreeSet::new();
    let (mut connections, mut first, mut last) = (0, i64::MAX, i64::MIN);
    let mut services = BTreeSet::new();
    for (p, u) in &g.peers {
        match p {
            Peer::Workload(i) => peers.extend(infos.get(*i).map(|(e, _)| entity_name(e))),
            Peer::Address(a) => {
                addrs.insert(*a);
            }
        }
        connections += u.connections;
        first = first.min(u.first.unwrap_or(i64::MAX));
        last = last.max(u.last);
        services.extend(u.services.iter().map(|s| format!("{}/{}:{}", s.namespace, s.name, s.port)));
    }
    peers.extend(cidr::exact_cover(&addrs).into_iter().map(|n| n.to_string()));
    RuleEvidence {
        side,
        index,
        peers,
        ports: g.ports.iter().map(|(p, port)| format!("{}/{port}", protocol_name(*p).unwrap_or("?"))).collect(),
        connections,
        first_seen_ns: first,
        last_seen_ns: last,
        services: services.into_iter().collect(),
    }
}

fn describe(ev: &RuleEvidence) -> String {
    let via = if ev.services.is_empty() { String::new() } else { format!(" via {}", ev.services.join(", ")) };
    format!(
        "{} connections {} {} on {}{via}, seen {} to {}",
        ev.connections,
        if ev.side == Direction::Ingress { "from" } else { "to" },
        ev.peers.join(", "),
        ev.ports.join(", "),
        timestamp(ev.first_seen_ns),
        timestamp(ev.last_seen_ns),
    )
}
