//! Who the policies in force let reach a port. Source workloads are grouped
//! by everything the evaluator can tell apart about them (their signature as
//! a remote, and which policies select them), and each group is asked once.
//! Outside addresses are represented by one address per region the
//! policies' CIDRs cut the address space into.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bulkhead_model::Direction;
use bulkhead_model::exposure::{Exposer, ExposureClass};
use bulkhead_policy::cluster::{ClusterPolicy, Tier, TierPeer};
use bulkhead_policy::evaluate::{Decider, Evaluator, PolicySet, Remote, RemoteSignature};
use bulkhead_policy::inventory::Pod;
use bulkhead_policy::netpol::{NetworkPolicy, Peer};
use bulkhead_policy::ports::{NamedPort, Protocol};
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
    /// Members per namespace.
    per_ns: BTreeMap<String, usize>,
    /// The policies that select its pods: the only ones that decide for
    /// them, so the evaluator answers alike on this set and on all policies,
    /// without walking the others.
    own: PolicySet,
}

/// (source class, destination class, protocol, port) → the ingress rule
/// that admits it, or `None` when either side refuses.
type Memo = FxHashMap<(usize, usize, u8, u16), Option<Decider>>;

/// Everything that can connect to a port, grouped.
pub(super) struct Sources<'a> {
    eval: Evaluator<'a>,
    classes: Vec<Class<'a>>,
    class_of: FxHashMap<Entity, usize>,
    totals: BTreeMap<String, usize>,
    world: Vec<IpAddr>,
    memo: RefCell<Memo>,
}

/// The reach of one port, with what findings need beyond the report's view.
pub(super) struct Reach {
    pub can: CanReach,
    /// The classes of the workloads that may connect.
    allowed: Vec<usize>,
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

/// The policies at `indices` of `network` followed by `cluster`.
fn selected(network: &[&NetworkPolicy], cluster: &[&ClusterPolicy], indices: &[usize]) -> PolicySet {
    let mut own = PolicySet::default();
    for &i in indices {
        match network.get(i) {
            Some(np) => own.put_network((*np).clone()),
            None => own.put_cluster(cluster[i - network.len()].clone()),
        }
    }
    own
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
        let network: Vec<&NetworkPolicy> = input.policies.network.values().collect();
        let cluster: Vec<&ClusterPolicy> = input.policies.cluster.values().collect();
        let mut groups: FxHashMap<(RemoteSignature, RemoteSignature, Vec<usize>, Vec<NamedPort>), usize> =
            FxHashMap::default();
        let mut class_of: FxHashMap<Entity, usize> = FxHashMap::default();
        let mut classes: Vec<Class<'a>> = Vec::new();
        for (w, pod) in reps {
            *totals.entry(pod.namespace.clone()).or_insert(0) += 1;
            let ip = pod.ips[0];
            let ns_labels = input.inventory.namespace_labels(&pod.namespace);
            // The policies that select it (network ones by index, then
            // cluster ones): the only ones that decide for it, and the rest
            // of what sets it apart.
            let subject: Vec<usize> = network
                .iter()
                .map(|np| np.namespace == pod.namespace && np.pod_selector.matches(&pod.labels))
                .chain(cluster.iter().map(|cp| cp.selects(&ns_labels, &pod.labels)))
                .enumerate()
                .filter_map(|(i, selects)| selects.then_some(i))
                .collect();
            // As a source (ingress signature), as a destination (egress
            // signature, which holds its named ports), and as a subject
            // (the policies selecting it, and its named ports for ingress).
            let mut named = pod.ports.clone();
            named.sort();
            let key = (
                eval.signature(Direction::Ingress, &Remote::Pod(pod, ip)),
                eval.signature(Direction::Egress, &Remote::Pod(pod, ip)),
                subject,
                named,
            );
            let i = match groups.entry(key) {
                Entry::Occupied(o) => *o.get(),
                Entry::Vacant(v) => {
                    let own = selected(&network, &cluster, &v.key().2);
                    classes.push(Class { pod, ip, members: Vec::new(), per_ns: BTreeMap::new(), own });
                    *v.insert(classes.len() - 1)
                }
            };
            *classes[i].per_ns.entry(pod.namespace.clone()).or_insert(0) += 1;
            class_of.insert(w.clone(), i);
            classes[i].members.push(w);
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
        Self { eval, classes, class_of, totals, world, memo: RefCell::new(FxHashMap::default()) }
    }

    /// Whether class `src` may connect to class `dst` on `protocol`/`port`,
    /// asked once per quadruple: classes are what the evaluator cannot tell apart.
    fn allows_class(&self, src: usize, dst: usize, protocol: Protocol, port: u16) -> Option<Decider> {
        let key = (src, dst, protocol.number(), port);
        if let Some(d) = self.memo.borrow().get(&key) {
            return d.clone();
        }
        let (s, d) = (&self.classes[src], &self.classes[dst]);
        let by = (|| {
            let bip = d.pod.ips.iter().copied().find(|ip| ip.is_ipv4() == s.ip.is_ipv4())?;
            let to = Remote::Pod(d.pod, bip);
            let egress =
                Evaluator::new(self.eval.inventory, &s.own).decide(s.pod, Direction::Egress, &to, Some(protocol), port);
            if !egress.allowed {
                return None;
            }
            let from = Remote::Pod(s.pod, s.ip);
            let ingress = Evaluator::new(self.eval.inventory, &d.own).decide(
                d.pod,
                Direction::Ingress,
                &from,
                Some(protocol),
                port,
            );
            ingress.allowed.then_some(ingress.by)
        })();
        self.memo.borrow_mut().insert(key, by.clone());
        by
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
        // One backend per class and target port: the evaluator answers them alike.
        let mut dsts: BTreeSet<(usize, u16)> = BTreeSet::new();
        for b in backends {
            if let Some(c) = self.class_of.get(&(input.workload_of)(b.pod)) {
                dsts.insert((*c, b.target));
            }
        }
        let mut allowed = Vec::new();
        let mut rules = BTreeSet::new();
        if p.policed {
            for c in 0..self.classes.len() {
                if let Some(by) = dsts.iter().find_map(|(d, t)| self.allows_class(c, *d, p.protocol, *t)) {
                    allowed.push(c);
                    if !matches!(by, Decider::Open | Decider::OwnNode) {
                        rules.insert(by.name());
                    }
                }
            }
        }
        let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &allowed {
            for (ns, n) in &self.classes[*c].per_ns {
                *per_ns.entry(ns.as_str()).or_insert(0) += n;
            }
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
        // The first workloads of the allowed classes (not a set of them all:
        // on an open port that would be every workload, for every port).
        let mut listed: Vec<&Entity> =
            allowed.iter().flat_map(|c| self.classes[*c].members.iter()).take(MAX_LISTED_WORKLOADS).collect();
        listed.sort();
        let can = CanReach {
            world: self.world(input, p, backends),
            namespaces,
            every_namespace,
            workloads: listed.iter().take(MAX_LISTED_WORKLOADS).map(|e| (*e).clone()).collect(),
            workloads_total: per_ns.values().sum(),
        };
        Reach { can, allowed, rules }
    }

    /// Up to `n` workloads allowed to reach the port that are neither in
    /// `used` nor in `exclude`, and how many there are in all.
    pub(super) fn unused(
        &self,
        reach: &Reach,
        used: &BTreeSet<&Entity>,
        exclude: &[Entity],
        n: usize,
    ) -> (Vec<Entity>, usize) {
        let skip = |e: &Entity| used.contains(e) || exclude.contains(e);
        let mut total: usize = reach.allowed.iter().map(|c| self.classes[*c].members.len()).sum();
        let mut seen: BTreeSet<&Entity> = BTreeSet::new();
        for e in used.iter().copied().chain(exclude.iter()) {
            if seen.insert(e) && self.class_of.get(e).is_some_and(|c| reach.allowed.contains(c)) {
                total -= 1;
            }
        }
        let mut first = Vec::new();
        'outer: for c in &reach.allowed {
            for m in &self.classes[*c].members {
                if first.len() == n {
                    break 'outer;
                }
                if !skip(m) {
                    first.push(m.clone());
                }
            }
        }
        first.sort();
        (first, total)
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
