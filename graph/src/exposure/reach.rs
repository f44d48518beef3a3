//! Who the policies in force let reach a port. Source workloads are grouped
//! by everything the evaluator can tell apart about them (their signature as
//! a remote, and which policies select them), and each group is asked once.
//! Outside addresses are represented by one address per region the
//! policies' CIDRs cut the address space into.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bulkhead_model::Direction;
use bulkhead_model::exposure::{Exposer, ExposureClass};
use bulkhead_policy::cluster::{Tier, TierPeer};
use bulkhead_policy::evaluate::{Decider, Evaluator, Remote, RemoteSignature};
use bulkhead_policy::inventory::Pod;
use bulkhead_policy::netpol::Peer;
use bulkhead_policy::ports::Protocol;
use ipnetwork::IpNetwork;
use rustc_hash::FxHashMap;

use super::entries::Backend;
use super::{CanReach, ExposedPort, Input, MAX_LISTED_WORKLOADS, NamespaceReach};
use crate::Entity;

/// Documentation addresses tried first as "somewhere on the internet".
const EXAMPLE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const EXAMPLE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// The most outside addresses tried per port.
const MAX_WORLD_CANDIDATES: usize = 1024;

/// Source workloads that get the same answers, and one pod to ask for them.
struct Class<'a> {
    pod: &'a Pod,
    ip: IpAddr,
    members: Vec<Entity>,
}

/// Everything that can connect to a port, grouped.
pub(super) struct Sources<'a> {
    eval: Evaluator<'a>,
    classes: Vec<Class<'a>>,
    totals: BTreeMap<String, usize>,
    world: Vec<IpAddr>,
}

/// The reach of one port, with what findings need beyond the report's view.
pub(super) struct Reach {
    pub can: CanReach,
    /// Every workload that may connect.
    pub allowed: BTreeSet<Entity>,
    /// The policy rules that admitted them, when policy (not openness) did.
    pub rules: BTreeSet<String>,
}

fn bounds(n: IpNetwork) -> [Option<IpAddr>; 4] {
    match n {
        IpNetwork::V4(n) => {
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)].map(|v| v.map(|v| IpAddr::V4(v.into())))
        }
        IpNetwork::V6(n) => {
            let lo = u128::from(n.network());
            let host_bits = 128 - u32::from(n.prefix());
            let hi = if host_bits == 128 { u128::MAX } else { lo | ((1u128 << host_bits) - 1) };
            [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)].map(|v| v.map(|v| IpAddr::V6(v.into())))
        }
    }
}

impl<'a> Sources<'a> {
    pub(super) fn new(input: &Input<'a>) -> Self {
        let eval = Evaluator::new(input.inventory, input.policies);
        let tiers: Vec<_> =
            input.policies.tier(Tier::Admin).into_iter().chain(input.policies.tier(Tier::Baseline)).collect();
        let mut reps: BTreeMap<Entity, &'a Pod> = BTreeMap::new();
        for pod in input.inventory.pods.values() {
            if !pod.ips.is_empty() {
                reps.entry((input.workload_of)(pod)).or_insert(pod);
            }
        }
        let mut totals: BTreeMap<String, usize> = BTreeMap::new();
        let mut groups: FxHashMap<(RemoteSignature, Vec<bool>), usize> = FxHashMap::default();
        let mut classes: Vec<Class<'a>> = Vec::new();
        for (w, pod) in reps {
            *totals.entry(pod.namespace.clone()).or_insert(0) += 1;
            let ip = pod.ips[0];
            let ns_labels = input.inventory.namespace_labels(&pod.namespace);
            // Which policies could decide its egress: the rest of what sets it apart.
            let subject: Vec<bool> = tiers
                .iter()
                .map(|p| p.selects(&ns_labels, &pod.labels))
                .chain(
                    input
                        .policies
                        .network
                        .values()
                        .map(|np| np.namespace == pod.namespace && np.pod_selector.matches(&pod.labels)),
                )
                .collect();
            let key = (eval.signature(Direction::Ingress, &Remote::Pod(pod, ip)), subject);
            match groups.get(&key) {
                Some(i) => classes[*i].members.push(w),
                None => {
                    groups.insert(key, classes.len());
                    classes.push(Class { pod, ip, members: vec![w] });
                }
            }
        }
        let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
        for p in input.inventory.pods.values() {
            taken.extend(&p.ips);
        }
        for s in input.inventory.services.values() {
            taken.extend(&s.cluster_ips);
        }
        for ips in input.inventory.nodes.values() {
            taken.extend(ips);
        }
        let mut networks: Vec<IpNetwork> = Vec::new();
        for np in input.policies.network.values() {
            for r in np.ingress.iter().flatten() {
                for peer in r.peers.iter().flatten() {
                    if let Peer::IpBlock(b) = peer {
                        networks.push(b.cidr);
                        networks.extend(&b.except);
                    }
                }
            }
        }
        for p in &tiers {
            for r in p.rules(Direction::Ingress) {
                networks.extend(r.peers.iter().filter_map(|peer| match peer {
                    TierPeer::Network(n) => Some(*n),
                    _ => None,
                }));
            }
        }
        let mut world: Vec<IpAddr> = vec![EXAMPLE_V4.into(), EXAMPLE_V6.into()];
        let mut seen: BTreeSet<IpAddr> = world.iter().copied().collect();
        for n in networks {
            for ip in bounds(n).into_iter().flatten() {
                if world.len() < MAX_WORLD_CANDIDATES && !taken.contains(&ip) && seen.insert(ip) {
                    world.push(ip);
                }
            }
        }
        Self { eval, classes, totals, world }
    }

    /// Whether `src` may open a connection to backend `b` on `protocol`.
    fn allows(&self, src: (&Pod, IpAddr), b: &Backend<'_>, protocol: Protocol) -> Option<Decider> {
        let bip = b.pod.ips.iter().copied().find(|ip| ip.is_ipv4() == src.1.is_ipv4())?;
        let egress = self.eval.decide(src.0, Direction::Egress, &Remote::Pod(b.pod, bip), Some(protocol), b.target);
        if !egress.allowed {
            return None;
        }
        let ingress = self.eval.decide(b.pod, Direction::Ingress, &Remote::Pod(src.0, src.1), Some(protocol), b.target);
        ingress.allowed.then_some(ingress.by)
    }

    /// How an outside address reaches the port, if one can.
    fn world(&self, input: &Input<'_>, p: &ExposedPort, backends: &[Backend<'_>]) -> Option<String> {
        if p.class != ExposureClass::InternetFacing {
            return None;
        }
        if !p.policed {
            return p.can_reach.world.clone();
        }
        let svc = p.service.as_ref().and_then(|s| input.inventory.services.get(&format!("{}/{s}", p.namespace)));
        let local = svc.is_some_and(|s| s.exposure.local_traffic);
        let keeps_address = |via: Exposer| match via {
            Exposer::HostPort => true,
            Exposer::NodePort | Exposer::LoadBalancer | Exposer::ExternalIp => local,
            Exposer::Ingress | Exposer::Route | Exposer::HostNetwork => false,
        };
        for e in p.exposed_by.iter().filter(|e| keeps_address(e.via)) {
            for b in backends {
                for c in self.world.iter().filter(|c| b.pod.ips.iter().any(|ip| ip.is_ipv4() == c.is_ipv4())) {
                    let d = self.eval.decide(b.pod, Direction::Ingress, &Remote::World(*c), Some(p.protocol), b.target);
                    if d.allowed {
                        return Some(format!(
                            "from {c} through {} (the client's address is kept), {}",
                            e.detail,
                            d.by.name()
                        ));
                    }
                }
            }
        }
        let node_routed = |via: Exposer| matches!(via, Exposer::NodePort | Exposer::LoadBalancer | Exposer::ExternalIp);
        if let Some(e) = p.exposed_by.iter().find(|e| node_routed(e.via) && !local) {
            for b in backends {
                let own = input.inventory.nodes.get(&b.pod.node).into_iter().flatten();
                let others = input.inventory.nodes.iter().filter(|(n, _)| **n != b.pod.node).flat_map(|(_, ips)| ips);
                for ip in own.chain(others).filter(|ip| b.pod.ips.iter().any(|p| p.is_ipv4() == ip.is_ipv4())) {
                    let d = self.eval.decide(b.pod, Direction::Ingress, &Remote::Host(*ip), Some(p.protocol), b.target);
                    if d.allowed {
                        return Some(format!(
                            "from anywhere through {}: with externalTrafficPolicy Cluster the backend sees node address {ip}, {}",
                            e.detail,
                            d.by.name()
                        ));
                    }
                }
            }
        }
        p.exposed_by
            .iter()
            .find(|e| matches!(e.via, Exposer::Ingress | Exposer::Route))
            .filter(|_| !backends.is_empty())
            .map(|e| format!("through {}, as far as its controller's pods may connect", e.detail))
    }

    /// Who may reach the port on its backends.
    pub(super) fn can_reach(&self, input: &Input<'_>, p: &ExposedPort, backends: &[Backend<'_>]) -> Reach {
        // One backend per workload and target port: pods of a workload share their policies.
        let mut reps: BTreeMap<(Entity, u16), Backend<'_>> = BTreeMap::new();
        for b in backends {
            reps.entry(((input.workload_of)(b.pod), b.target)).or_insert(*b);
        }
        let mut allowed = BTreeSet::new();
        let mut rules = BTreeSet::new();
        if p.policed {
            for c in &self.classes {
                let by = reps.values().find_map(|b| self.allows((c.pod, c.ip), b, p.protocol));
                if let Some(by) = by {
                    allowed.extend(c.members.iter().cloned());
                    if !matches!(by, Decider::Open | Decider::OwnNode) {
                        rules.insert(by.name());
                    }
                }
            }
        }
        let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
        for w in &allowed {
            *per_ns.entry(w.namespace().unwrap_or_default()).or_insert(0) += 1;
        }
        let namespaces: Vec<NamespaceReach> = per_ns
            .iter()
            .map(|(ns, n)| NamespaceReach {
                namespace: (*ns).to_string(),
                workloads: *n,
                of: self.totals.get(*ns).copied().unwrap_or(0),
            })
            .collect();
        let others: Vec<&String> = self.totals.keys().filter(|ns| **ns != p.namespace).collect();
        let every_namespace = !others.is_empty() && others.iter().all(|ns| per_ns.contains_key(ns.as_str()));
        let can = CanReach {
            world: self.world(input, p, backends),
            namespaces,
            every_namespace,
            workloads: allowed.iter().take(MAX_LISTED_WORKLOADS).cloned().collect(),
            workloads_total: allowed.len(),
        };
        Reach { can, allowed, rules }
    }

    /// Whether no ingress policy selects any of the backends.
    pub(super) fn unprotected(&self, backends: &[Backend<'_>], protocol: Protocol) -> bool {
        backends.iter().all(|b| {
            let c =
                if b.pod.ips.iter().any(IpAddr::is_ipv4) { IpAddr::from(EXAMPLE_V4) } else { IpAddr::from(EXAMPLE_V6) };
            self.eval.decide(b.pod, Direction::Ingress, &Remote::World(c), Some(protocol), b.target).by == Decider::Open
        })
    }
}
