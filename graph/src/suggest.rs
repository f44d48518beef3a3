//! Least-privilege NetworkPolicy from learned baselines: one standard
//! `networking.k8s.io/v1` policy per workload, ingress and egress, allowing
//! exactly the learned edges. Peers sharing a port set share a rule;
//! external addresses become the exact smallest CIDR cover; every rule is
//! annotated with the evidence behind it.

mod cidr;
mod idle;
mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Deserialize, Serialize};

use crate::baseline::{Learner, Phase};
use crate::flow::{Entity, ServiceRef};
use bulkhead_model::Direction;

pub use cidr::exact_cover;
pub use idle::{BASIS_ANNOTATION, NOTHING_OBSERVED};

/// Labels that differ between pods of one workload or between its
/// revisions: never part of a suggested selector.
pub const UNSTABLE_LABELS: [&str; 5] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// What the suggester knows about a workload from the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadInfo {
    /// Stable labels common to all its pods: its pod selector.
    pub selector: BTreeMap<String, String>,
    /// Since when the inventory has held it (unknown: never "nothing observed").
    pub present_since_ns: Option<i64>,
}

/// The inventory the suggester reads.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Workloads that exist now.
    pub workloads: BTreeMap<Entity, WorkloadInfo>,
    /// Node addresses by name, for traffic from or to other nodes.
    pub nodes: BTreeMap<String, Vec<IpAddr>>,
    /// Now, nanoseconds since the epoch: a workload present for a whole
    /// learning window without a connection is "nothing observed".
    pub now_ns: i64,
}

/// A peer as the suggestion names it: a workload by its index in the
/// inventory's (ordered) workloads, or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Workload(usize),
    Address(IpAddr),
}

/// What one rule allows and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEvidence {
    /// Ingress or egress.
    pub side: Direction,
    /// Index of the rule in its list.
    pub index: usize,
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

/// One suggested policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The workload it protects.
    pub workload: Entity,
    /// Whether the workload's baseline is stable (else it is still learning).
    pub stable: bool,
    /// The policy.
    pub policy: NetworkPolicy,
    /// Evidence per rule.
    pub rules: Vec<RuleEvidence>,
    /// Learned edges the policy cannot express exactly, and selector overlaps.
    pub warnings: Vec<String>,
}

/// Per peer, the ports and what was seen.
#[derive(Debug, Default)]
struct PeerUse {
    ports: BTreeSet<(u8, u16)>,
    /// TCP 53 allowed without being seen, beside a UDP 53 that was.
    dns_tcp_implied: bool,
    connections: u64,
    first: Option<i64>,
    last: i64,
    services: BTreeSet<ServiceRef>,
}

/// A workload and what selects its pods.
type Named<'a> = (&'a Entity, &'a WorkloadInfo);

/// DNS over UDP and over TCP, as (IANA protocol, port).
const DNS_UDP: (u8, u16) = (17, 53);
const DNS_TCP: (u8, u16) = (6, 53);

/// Suggestions for every workload of the inventory that has a baseline (in
/// `namespace` if given), in workload order.
pub fn suggest(learner: &Learner, inventory: &Inventory, namespace: Option<&str>) -> Vec<Suggestion> {
    // Workloads by index (entity order), so peers compare as integers.
    let infos: Vec<(&Entity, &WorkloadInfo)> = inventory.workloads.iter().collect();
    let ids: HashMap<&Entity, usize> = infos.iter().enumerate().map(|(i, (e, _))| (*e, i)).collect();
    // One pass over the edges, grouped by the workload each side belongs to.
    let mut sides: Vec<[BTreeMap<Peer, PeerUse>; 2]> = Vec::new();
    sides.resize_with(infos.len(), Default::default);
    let mut warnings: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut peers = Vec::new();
    for (edge, ev) in learner.edges() {
        for (side, me, other, learned) in [
            (Direction::Egress, &edge.src, &edge.dst, ev.egress_learned),
            (Direction::Ingress, &edge.dst, &edge.src, ev.ingress_learned),
        ] {
            if !learned || namespace.is_some_and(|n| me.namespace() != Some(n)) {
                continue;
            }
            let Some(&mine) = ids.get(me) else { continue };
            peers.clear();
            if let Err(why) = peers_of(other, &ids, &infos, inventory, &mut peers) {
                warnings
                    .entry(mine)
                    .or_default()
                    .push(format!("{} edge not suggested: {why}", Direction::as_str(side)));
                continue;
            }
            if render::protocol_name(edge.protocol).is_none() {
                warnings.entry(mine).or_default().push(format!(
                    "{} edge with {} not suggested: protocol {} cannot be expressed by NetworkPolicy ports",
                    Direction::as_str(side),
                    render::entity_name(other),
                    edge.protocol
                ));
                continue;
            }
            // Indexed by the direction code: ingress 0, egress 1.
            let slot = &mut sides[mine][usize::from(side.code())];
            for p in peers.drain(..) {
                let u = slot.entry(p).or_default();
                u.ports.insert((edge.protocol, edge.port));
                // DNS falls back to TCP for answers too large for UDP (RFC
                // 7766): a policy without it breaks only at the worst moment.
                if (edge.protocol, edge.port) == DNS_UDP {
                    u.dns_tcp_implied |= u.ports.insert(DNS_TCP);
                } else if (edge.protocol, edge.port) == DNS_TCP {
                    u.dns_tcp_implied = false;
                }
                u.connections += ev.connections;
                u.first = Some(u.first.map_or(ev.first_seen_ns, |f| f.min(ev.first_seen_ns)));
                u.last = u.last.max(ev.last_seen_ns);
                u.services.extend(ev.services.iter().cloned());
            }
        }
    }
    let mut by_namespace: BTreeMap<Option<&str>, Vec<(&Entity, &WorkloadInfo)>> = BTreeMap::new();
    for (w, info) in &infos {
        by_namespace.entry(w.namespace()).or_default().push((w, info));
    }
    // Workloads by (namespace, label, value): a selector's candidates are
    // those carrying its first label, not the whole namespace.
    let mut by_label: HashMap<(Option<&str>, &str, &str), Vec<Named<'_>>> = HashMap::new();
    for (w, info) in &infos {
        for (k, v) in &info.selector {
            by_label.entry((w.namespace(), k.as_str(), v.as_str())).or_default().push((w, info));
        }
    }
    // Whose pods each workload's selector also picks, found once per
    // workload: a popular peer is asked about by every workload it talks to.
    let mut overlap: Vec<Option<Vec<&Entity>>> = vec![None; infos.len()];
    let mut overlap_of = |i: usize| -> Vec<&Entity> {
        overlap[i]
            .get_or_insert_with(|| {
                let (w, info) = infos[i];
                let same = match info.selector.iter().next() {
                    Some((k, v)) => by_label.get(&(w.namespace(), k.as_str(), v.as_str())),
                    None => by_namespace.get(&w.namespace()),
                };
                overlapping(w, info, same.map(Vec::as_slice).unwrap_or_default()).collect()
            })
            .clone()
    };
    let mut out = Vec::new();
    for (i, (w, info)) in infos.iter().enumerate() {
        if namespace.is_some_and(|n| w.namespace() != Some(n)) {
            continue;
        }
        let Some(baseline) = learner.workloads().get(*w) else {
            // Nothing to or from it: once its window has passed, nothing is what it needs.
            let window = learner.config().window_ns;
            if let Some(since) = info.present_since_ns.filter(|t| inventory.now_ns - t >= window)
                && !info.selector.is_empty()
            {
                out.push(idle::suggestion(w, info, since, window));
            }
            continue;
        };
        let mut warn = warnings.remove(&i).unwrap_or_default();
        let stable = baseline.phase == Phase::Stable;
        if info.selector.is_empty() {
            warn.push("no stable labels to select its pods by: no policy suggested".into());
            let policy = NetworkPolicy::default();
            out.push(Suggestion { workload: (*w).clone(), stable, policy, rules: Vec::new(), warnings: warn });
            continue;
        }
        warn.extend(overlap_of(i).into_iter().map(|o| {
            format!("its selector also matches the pods of {}: the policy applies to them too", render::entity_name(o))
        }));
        let [ingress, egress] = std::mem::take(&mut sides[i]);
        if ingress.is_empty() {
            warn.push("no connection reached it while it learned: the policy denies all ingress".into());
        }
        let groups = [group(ingress), group(egress)];
        // A peer's selector that also picks another workload's pods lets
        // that workload in too: say so.
        let mut peers: BTreeSet<usize> = BTreeSet::new();
        for g in groups.iter().flatten() {
            peers.extend(g.peers.iter().filter_map(|(p, _)| match p {
                Peer::Workload(j) => Some(*j),
                Peer::Address(_) => None,
            }));
        }
        for j in peers {
            let pw = infos[j].0;
            for other in overlap_of(j) {
                warn.push(format!(
                    "the selector of peer {} also matches the pods of {}: its rules allow them too",
                    render::entity_name(pw),
                    render::entity_name(other)
                ));
            }
        }
        let (policy, rules) = render::policy(w, info, &infos, baseline, &groups);
        out.push(Suggestion { workload: (*w).clone(), stable, policy, rules, warnings: warn });
    }
    out
}

/// How a peer entity is named in a policy (into `out`), or why it cannot be.
fn peers_of(
    other: &Entity,
    ids: &HashMap<&Entity, usize>,
    infos: &[(&Entity, &WorkloadInfo)],
    inventory: &Inventory,
    out: &mut Vec<Peer>,
) -> Result<(), String> {
    match other {
        Entity::Workload { .. } => match ids.get(other) {
            Some(&i) if !infos[i].1.selector.is_empty() => out.push(Peer::Workload(i)),
            _ => return Err(format!("{} no longer exists or has no labels", render::entity_name(other))),
        },
        Entity::World { cidr } => out.push(Peer::Address(cidr.network())),
        Entity::Host { node } => match inventory.nodes.get(&**node) {
            Some(ips) if !ips.is_empty() => out.extend(ips.iter().copied().map(Peer::Address)),
            _ => return Err(format!("node {node} has no known address")),
        },
        Entity::Service { namespace, name } => {
            return Err(format!("service {namespace}/{name} had no backend when the traffic was seen"));
        }
    }
    Ok(())
}

/// The workloads of `same_namespace` other than `w` whose pods `w`'s selector picks.
fn overlapping<'a>(
    w: &'a Entity,
    info: &'a WorkloadInfo,
    same_namespace: &'a [(&'a Entity, &'a WorkloadInfo)],
) -> impl Iterator<Item = &'a Entity> + 'a {
    same_namespace
        .iter()
        .filter(move |(o, oi)| *o != w && info.selector.iter().all(|(k, v)| oi.selector.get(k) == Some(v)))
        .map(|(o, _)| *o)
}

/// (protocol, port) pairs.
type PortSet = BTreeSet<(u8, u16)>;

/// Peers that share the same port set share one rule.
struct Group {
    ports: PortSet,
    peers: Vec<(Peer, PeerUse)>,
}

fn group(peers: BTreeMap<Peer, PeerUse>) -> Vec<Group> {
    let mut by_ports: BTreeMap<PortSet, Vec<(Peer, PeerUse)>> = BTreeMap::new();
    for (p, u) in peers {
        by_ports.entry(u.ports.clone()).or_default().push((p, u));
    }
    let mut groups: Vec<Group> = by_ports.into_iter().map(|(ports, peers)| Group { ports, peers }).collect();
    // Readable order: by the first peer, then by ports.
    groups.sort_by(|a, b| (a.peers.first().map(|p| p.0), &a.ports).cmp(&(b.peers.first().map(|p| p.0), &b.ports)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::LearningConfig;
    use crate::flow::FlowRecord;
    use crate::service_graph::EdgeKey;
    use bulkhead_model::{Direction, Verdict};

    fn w(name: &str) -> Entity {
        Entity::Workload { namespace: "x".into(), kind: "Deployment".into(), name: name.into() }
    }

    #[test]
    fn a_peer_selector_that_also_picks_another_workload_is_reported() {
        let mut learner =
            Learner::new(LearningConfig { window_ns: 1, quiet_ns: 1, evidence_per_anomaly: 1, ..Default::default() });
        let r = FlowRecord {
            time_ns: 0,
            observation: Direction::Ingress,
            node: "n1".into(),
            src: w("frontend"),
            dst: w("api"),
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 1,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: 80,
            protocol: 6,
            service: None,
            verdict: Verdict::Forwarded,
            bytes: 0,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
            rule: None,
            drop_reason: None,
            packets: 0,
        };
        learner.observe(&r, &EdgeKey { protocol: 6, port: 80, service: None });
        learner.tick(10);
        let labels = |pairs: &[(&str, &str)]| WorkloadInfo {
            selector: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            present_since_ns: None,
        };
        let inventory = Inventory {
            workloads: BTreeMap::from([
                (w("frontend"), labels(&[("app", "frontend")])),
                (w("frontend-v2"), labels(&[("app", "frontend"), ("track", "v2")])),
                (w("api"), labels(&[("app", "api")])),
            ]),
            nodes: BTreeMap::new(),
            now_ns: 0,
        };
        let out = suggest(&learner, &inventory, None);
        let api = out.iter().find(|s| s.workload == w("api")).unwrap();
        assert!(
            api.warnings.iter().any(|m| m.contains("peer x/Deployment/frontend") && m.contains("frontend-v2")),
            "{:?}",
            api.warnings
        );
        let frontend = out.iter().find(|s| s.workload == w("frontend")).unwrap();
        assert!(
            frontend
                .warnings
                .iter()
                .any(|m| m.contains("its selector also matches the pods of x/Deployment/frontend-v2"))
        );
    }

    #[test]
    fn a_workload_nothing_used_gets_deny_all_once_its_window_has_passed() {
        let learner =
            Learner::new(LearningConfig { window_ns: 100, quiet_ns: 1, evidence_per_anomaly: 1, ..Default::default() });
        let info = WorkloadInfo {
            selector: BTreeMap::from([("app".to_string(), "idle".to_string())]),
            present_since_ns: Some(1_000),
        };
        let mut inventory =
            Inventory { workloads: BTreeMap::from([(w("idle"), info)]), nodes: BTreeMap::new(), now_ns: 1_050 };
        assert!(suggest(&learner, &inventory, None).is_empty(), "still inside its window");
        inventory.now_ns = 1_100;
        let out = suggest(&learner, &inventory, None);
        let s = &out[0];
        assert!(s.stable && s.warnings[0].starts_with("nothing observed"), "{:?}", s.warnings);
        let meta = &s.policy.metadata;
        assert_eq!(meta.annotations.as_ref().unwrap()[BASIS_ANNOTATION], NOTHING_OBSERVED);
        let spec = s.policy.spec.as_ref().unwrap();
        assert_eq!(spec.ingress.as_deref(), Some(&[][..]), "all ingress denied");
        let egress = spec.egress.as_ref().unwrap();
        assert_eq!(egress.len(), 1);
        let ports: Vec<_> = egress[0].ports.iter().flatten().map(|p| p.protocol.clone().unwrap()).collect();
        assert_eq!(ports, ["UDP", "TCP"], "DNS only, both ways a resolver asks");
        inventory.workloads.values_mut().for_each(|i| i.present_since_ns = None);
        assert!(suggest(&learner, &inventory, None).is_empty(), "unknown presence is never nothing observed");
    }
}
