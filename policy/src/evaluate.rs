//! The reference evaluator: the one place where policy semantics live. It
//! answers "is this connection allowed, and what decided it" for concrete
//! addresses. The compiler evaluates it once per identity, and the property
//! tests check the compiled dataplane entries against it pair by pair.
//!
//! Precedence, per direction, for the pod the direction belongs to:
//!   1. Admin-tier ClusterNetworkPolicies, by priority then name, rules in
//!      order: the first matching rule Allows or Denies, or Passes, which
//!      skips the rest of the Admin tier.
//!   2. NetworkPolicy: if any policy isolates the pod in this direction, the
//!      traffic is allowed when any of their rules matches, else denied.
//!   3. Baseline-tier ClusterNetworkPolicies, like the Admin tier; a Pass
//!      skips the rest of the Baseline tier, to the default.
//!   4. Otherwise the traffic is allowed.
//!
//! A connection is allowed when the source's egress and the destination's
//! ingress both allow it; a side that is not a pod of this cluster has no say.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::cluster::{ClusterPolicy, Tier, TierAction, TierPeer};
use crate::inventory::{Inventory, Pod, Service};
use crate::netpol::{NetworkPolicy, Peer};
use crate::ports::{NamedPort, PortMatch, Protocol};
use bulkhead_model::Direction;

/// Every policy in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// NetworkPolicies by "namespace/name".
    pub network: BTreeMap<String, NetworkPolicy>,
    /// ClusterNetworkPolicies by name.
    pub cluster: BTreeMap<String, ClusterPolicy>,
}

impl PolicySet {
    /// Adds or replaces a NetworkPolicy.
    pub fn put_network(&mut self, p: NetworkPolicy) {
        self.network.insert(p.key(), p);
    }

    /// Adds or replaces a ClusterNetworkPolicy.
    pub fn put_cluster(&mut self, p: ClusterPolicy) {
        self.cluster.insert(p.name.clone(), p);
    }

    /// The policies of a tier in evaluation order.
    pub fn tier(&self, tier: Tier) -> Vec<&ClusterPolicy> {
        let mut v: Vec<_> = self.cluster.values().filter(|p| p.tier == tier).collect();
        v.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        v
    }
}

/// The far end of a connection, as policy sees it.
#[derive(Debug, Clone, Copy)]
pub enum Remote<'a> {
    /// A pod of this cluster, at one of its addresses.
    Pod(&'a Pod, IpAddr),
    /// A service's ClusterIP.
    Service(&'a Service, IpAddr),
    /// A node's address.
    Host(IpAddr),
    /// Anything else.
    World(IpAddr),
    /// An address no policy peer can match: the compiler's stand-in for the
    /// reserved world, host and unknown identities.
    Unknown,
}

/// What decided a direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decider {
    /// A ClusterNetworkPolicy rule.
    Tier {
        /// Admin or Baseline.
        tier: Tier,
        /// Policy name.
        policy: String,
        /// Rule name.
        rule: String,
    },
    /// A NetworkPolicy rule.
    NetworkPolicy {
        /// "namespace/name" of the policy.
        policy: String,
        /// Index of the rule in its direction.
        rule: usize,
    },
    /// The pod is isolated by these NetworkPolicies and none of their rules matched.
    Isolated {
        /// "namespace/name" of the isolating policies.
        policies: Vec<String>,
    },
    /// No policy applies: traffic is allowed.
    Open,
    /// Traffic from a pod's own node, always allowed.
    OwnNode,
    /// Traffic to a ClusterIP, decided as traffic to a backend on its target port.
    Service {
        /// "namespace/name" of the service.
        service: String,
        /// What decided for the backend.
        backend: Box<Decider>,
    },
}

impl Decider {
    /// A short name for flows and the CLI.
    pub fn name(&self) -> String {
        match self {
            Decider::Tier { tier, policy, rule } => format!("{tier:?}/{policy}#{rule}").to_lowercase(),
            Decider::NetworkPolicy { policy, rule } => format!("{policy}#{rule}"),
            Decider::Isolated { policies } => format!("default deny (isolated by {})", policies.join(", ")),
            Decider::Open => "default allow (not isolated)".to_string(),
            Decider::OwnNode => "from the pod's own node (always allowed)".to_string(),
            Decider::Service { service, backend } => format!("service {service} -> {}", backend.name()),
        }
    }
}

/// One direction's decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Decision {
    /// Whether this direction allows the traffic.
    pub allowed: bool,
    /// What decided it.
    pub by: Decider,
}

/// A connection's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the connection is allowed.
    pub allowed: bool,
    /// The source pod's egress decision, if the source is a pod.
    pub egress: Option<Decision>,
    /// The destination pod's ingress decision, if the destination is a pod.
    pub ingress: Option<Decision>,
}

/// Everything `decide` can observe about a remote: two remotes with equal
/// signatures get equal answers from the same pod and policies. The
/// compiler uses it to ask once per group of identities, not once per identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteSignature {
    /// A ClusterIP is judged through its service: never grouped.
    service: Option<(String, IpAddr)>,
    /// Named ports of a pod destination (egress only).
    ports: Option<Vec<NamedPort>>,
    /// Whether each peer of each rule, in evaluation order, matches.
    matches: Vec<bool>,
}

/// Evaluates policies against an inventory.
#[derive(Debug, Clone, Copy)]
pub struct Evaluator<'a> {
    /// The cluster.
    pub inventory: &'a Inventory,
    /// The policies.
    pub policies: &'a PolicySet,
}

impl<'a> Evaluator<'a> {
    /// An evaluator over an inventory and its policies.
    pub fn new(inventory: &'a Inventory, policies: &'a PolicySet) -> Self {
        Self { inventory, policies }
    }

    /// What an address is: a pod, a ClusterIP, a node, or the world.
    pub fn classify(&self, addr: IpAddr) -> Remote<'a> {
        if let Some(p) = self.inventory.pods.values().find(|p| p.ips.contains(&addr)) {
            return Remote::Pod(p, addr);
        }
        if let Some(s) = self.inventory.services.values().find(|s| s.cluster_ips.contains(&addr)) {
            return Remote::Service(s, addr);
        }
        if self.inventory.nodes.values().any(|ips| ips.contains(&addr)) {
            return Remote::Host(addr);
        }
        if let Some(p) = self.inventory.remote_pod(addr) {
            return Remote::Pod(p, addr);
        }
        Remote::World(addr)
    }

    /// The verdict on a connection from `src` to `dst:port` (`protocol`
    /// `None` for protocols without ports, such as ICMP).
    pub fn connection(&self, src: IpAddr, dst: IpAddr, protocol: Option<Protocol>, port: u16) -> Verdict {
        let from = self.classify(src);
        let to = self.classify(dst);
        let ours = |p: &Pod| p.cluster == self.inventory.cluster;
        let egress = match from {
            Remote::Pod(p, _) if ours(p) => Some(self.decide(p, Direction::Egress, &to, protocol, port)),
            _ => None,
        };
        let ingress = match to {
            Remote::Pod(p, _) if ours(p) => Some(self.decide(p, Direction::Ingress, &from, protocol, port)),
            _ => None,
        };
        let allowed = egress.as_ref().is_none_or(|d| d.allowed) && ingress.as_ref().is_none_or(|d| d.allowed);
        Verdict { allowed, egress, ingress }
    }

    /// One direction of `pod`'s policy for traffic with `remote`. For
    /// ingress, `port` is the pod's own port; for egress, the remote's.
    /// Traffic from a pod's own node is always allowed, as Kubernetes
    /// specifies (kubelet probes), whatever the policies say. Traffic from
    /// the pod to its node is decided by policy, so an egress Deny to nodes
    /// keeps a pod away from its own kubelet too.
    pub fn decide(
        &self,
        pod: &Pod,
        dir: Direction,
        remote: &Remote<'_>,
        protocol: Option<Protocol>,
        port: u16,
    ) -> Decision {
        if let Remote::Host(addr) = remote
            && dir == Direction::Ingress
            && self.inventory.nodes.get(&pod.node).is_some_and(|ips| ips.contains(addr))
        {
            return Decision { allowed: true, by: Decider::OwnNode };
        }
        self.decide_by_policy(pod, dir, remote, protocol, port)
    }

    /// `decide` without the own-node rule: what the policies alone say. The
    /// compiler shares these answers between pods of different nodes and
    /// adds each endpoint's own node itself.
    pub fn decide_by_policy(
        &self,
        pod: &Pod,
        dir: Direction,
        remote: &Remote<'_>,
        protocol: Option<Protocol>,
        port: u16,
    ) -> Decision {
        if let (Direction::Egress, Remote::Service(svc, addr)) = (dir, remote) {
            return self.decide_service(pod, svc, *addr, protocol, port);
        }
        let dest_ports: Option<&[NamedPort]> = match (dir, remote) {
            (Direction::Ingress, _) => Some(&pod.ports),
            (Direction::Egress, Remote::Pod(p, _)) => Some(&p.ports),
            (Direction::Egress, _) => None,
        };
        let ports_match = |ports: &Option<Vec<PortMatch>>| match ports {
            None => true,
            Some(list) => protocol.is_some_and(|proto| list.iter().any(|m| m.matches(proto, port, dest_ports))),
        };
        let ns_labels = self.inventory.namespace_labels(&pod.namespace);

        let mut passed = false;
        for p in self.policies.tier(Tier::Admin) {
            if passed {
                break;
            }
            if !p.selects(&ns_labels, &pod.labels) {
                continue;
            }
            for r in p.rules(dir) {
                if ports_match(&r.ports) && r.peers.iter().any(|peer| self.tier_peer_matches(peer, remote)) {
                    let by = Decider::Tier { tier: Tier::Admin, policy: p.name.clone(), rule: r.name.clone() };
                    match r.action {
                        TierAction::Allow => return Decision { allowed: true, by },
                        TierAction::Deny => return Decision { allowed: false, by },
                        TierAction::Pass => {
                            passed = true;
                            break;
                        }
                    }
                }
            }
        }

        let mut isolating = Vec::new();
        for np in self.policies.network.values() {
            if np.namespace != pod.namespace || !np.pod_selector.matches(&pod.labels) {
                continue;
            }
            let Some(rules) = np.rules(dir) else { continue };
            isolating.push(np.key());
            for (i, r) in rules.iter().enumerate() {
                let peer_ok = match &r.peers {
                    None => true,
                    Some(peers) => peers.iter().any(|peer| self.peer_matches(np, peer, remote)),
                };
                if peer_ok && ports_match(&r.ports) {
                    return Decision { allowed: true, by: Decider::NetworkPolicy { policy: np.key(), rule: i } };
                }
            }
        }
        if !isolating.is_empty() {
            return Decision { allowed: false, by: Decider::Isolated { policies: isolating } };
        }

        for p in self.policies.tier(Tier::Baseline) {
            if !p.selects(&ns_labels, &pod.labels) {
                continue;
            }
            for r in p.rules(dir) {
                if ports_match(&r.ports) && r.peers.iter().any(|peer| self.tier_peer_matches(peer, remote)) {
                    let by = Decider::Tier { tier: Tier::Baseline, policy: p.name.clone(), rule: r.name.clone() };
                    return Decision { allowed: r.action != TierAction::Deny, by };
                }
            }
        }
        Decision { allowed: true, by: Decider::Open }
    }

    /// Egress to a ClusterIP: allowed when the pod may reach some backend of
    /// the service, in the ClusterIP's address family, on the target port
    /// behind the service port it connected to. A port no backend serves is
    /// judged as traffic to a plain outside address.
    fn decide_service(
        &self,
        pod: &Pod,
        svc: &Service,
        addr: IpAddr,
        protocol: Option<Protocol>,
        port: u16,
    ) -> Decision {
        let mut first_denial = None;
        for sp in svc.ports.iter().filter(|sp| Some(sp.protocol) == protocol && sp.port == port) {
            for backend in self.inventory.backends(svc) {
                let Some(target) = sp.target_on(backend) else { continue };
                for ip in backend.ips.iter().filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
                    let d = self.decide(pod, Direction::Egress, &Remote::Pod(backend, *ip), protocol, target);
                    let by = Decider::Service { service: svc.key(), backend: Box::new(d.by.clone()) };
                    if d.allowed {
                        return Decision { allowed: true, by };
                    }
                    first_denial.get_or_insert(by);
                }
            }
        }
        match first_denial {
            Some(by) => Decision { allowed: false, by },
            // No backend serves that port: nothing will answer, so the
            // ClusterIP is judged as the plain address it is.
            None => self.decide(pod, Direction::Egress, &Remote::World(addr), protocol, port),
        }
    }

    /// The remote's signature for `dir` under this evaluator's policies.
    pub fn signature(&self, dir: Direction, remote: &Remote<'_>) -> RemoteSignature {
        let service = match (dir, remote) {
            (Direction::Egress, Remote::Service(svc, addr)) => Some((svc.key(), *addr)),
            _ => None,
        };
        let ports = match (dir, remote) {
            (Direction::Egress, Remote::Pod(p, _)) => {
                let mut v = p.ports.clone();
                v.sort();
                Some(v)
            }
            _ => None,
        };
        let mut matches = Vec::new();
        for p in self.policies.tier(Tier::Admin).into_iter().chain(self.policies.tier(Tier::Baseline)) {
            for r in p.rules(dir) {
                matches.extend(r.peers.iter().map(|peer| self.tier_peer_matches(peer, remote)));
            }
        }
        for np in self.policies.network.values() {
            for r in np.rules(dir).into_iter().flatten() {
                matches.extend(r.peers.iter().flatten().map(|peer| self.peer_matches(np, peer, remote)));
            }
        }
        RemoteSignature { service, ports, matches }
    }

    fn pod_in(&self, pod: &Pod, namespaces: &crate::selector::Selector, pods: &crate::selector::Selector) -> bool {
        pods.matches(&pod.labels) && namespaces.matches(&self.inventory.namespace_labels(&pod.namespace))
    }

    fn peer_matches(&self, np: &NetworkPolicy, peer: &Peer, remote: &Remote<'_>) -> bool {
        match (peer, remote) {
            (Peer::IpBlock(b), Remote::Pod(_, a) | Remote::Host(a) | Remote::World(a)) => b.contains(*a),
            (Peer::Pods { namespaces, pods }, Remote::Pod(p, _)) => {
                p.cluster == self.inventory.cluster
                    && pods.matches(&p.labels)
                    && match namespaces {
                        None => p.namespace == np.namespace,
                        Some(sel) => sel.matches(&self.inventory.namespace_labels(&p.namespace)),
                    }
            }
            _ => false,
        }
    }

    fn tier_peer_matches(&self, peer: &TierPeer, remote: &Remote<'_>) -> bool {
        match (peer, remote) {
            (TierPeer::Network(n), Remote::Pod(_, a) | Remote::Host(a) | Remote::World(a)) => n.contains(*a),
            (TierPeer::Pods { namespaces, pods }, Remote::Pod(p, _)) => {
                p.cluster == self.inventory.cluster && self.pod_in(p, namespaces, pods)
            }
            (TierPeer::Service(r), Remote::Pod(p, _)) => {
                p.cluster == self.inventory.cluster
                    && self
                        .inventory
                        .services
                        .get(&format!("{}/{}", r.namespace, r.name))
                        .is_some_and(|svc| self.inventory.backends(svc).any(|b| b.key() == p.key()))
            }
            (TierPeer::Cluster(c), Remote::Pod(p, _)) => &p.cluster == c,
            (TierPeer::Nodes(sel), Remote::Host(a)) => self.inventory.nodes.iter().any(|(node, ips)| {
                ips.contains(a) && self.inventory.node_labels.get(node).is_some_and(|l| sel.matches(l))
            }),
            _ => false,
        }
    }
}
