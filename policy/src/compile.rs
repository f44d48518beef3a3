//! The compiler: inventory plus policies in, per-node dataplane contents out
//! (identities, ipcache, per-endpoint entries and isolation flags).
//!
//! Semantics come from the evaluator alone: for each class of subject pods
//! (same namespace, labels and named ports) and each direction, the compiler
//! asks the evaluator about one representative address of every identity, at
//! one port of every interval of the port space where no rule's match can
//! change, and encodes the answers into entries whose meaning under the
//! dataplane's deny-wins lookup is exactly those answers (see `encode`).
//!
//! Incremental: answers are cached per (subject class, direction, remote
//! identity) and reused while the policies that apply to the class and the
//! inventory facts they depend on are unchanged, so a pod or label change
//! recomputes only the identities and classes it touches.

mod encode;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::cluster::TierPeer;
use crate::error::PolicyError;
use crate::evaluate::{Evaluator, PolicySet, Remote, RemoteSignature};
use crate::identity::{Allocator, IdentityKey, PolicyCidrs};
use crate::inventory::{Inventory, Pod};
use crate::netpol::Peer;
use crate::ports::{NamedPort, Protocol};
use crate::selector::Labels;
use bulkhead_model::Direction;
use bulkhead_model::identity::UNKNOWN;

pub use encode::{Entry, Span, VerdictFn};

/// One identity, for the agents' flow enrichment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInfo {
    /// The number.
    pub id: u32,
    /// Cluster of the pods ("" for non-pod identities).
    pub cluster: String,
    /// Namespace of the pods ("" for non-pod identities).
    pub namespace: String,
    /// Pod labels, or a description of a non-pod identity.
    pub labels: Labels,
}

/// One ipcache entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpcacheEntry {
    /// The prefix.
    pub net: IpNetwork,
    /// Its identity.
    pub identity: u32,
    /// "namespace/name" of the pod or service at this address, if any.
    pub owner: String,
}

/// One endpoint's compiled state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// "namespace/name" of the pod.
    pub pod: String,
    /// Node the pod runs on.
    pub node: String,
    /// Identity of the pod's first address.
    pub identity: u32,
    /// Whether ingress is isolated (default deny).
    pub ingress_isolated: bool,
    /// Whether egress is isolated (default deny).
    pub egress_isolated: bool,
    /// Dataplane entries, both directions.
    pub entries: Vec<Entry>,
}

/// The compiler's output for the whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Every identity in use.
    pub identities: Vec<IdentityInfo>,
    /// Every ipcache entry (the same on every node).
    pub ipcache: Vec<IpcacheEntry>,
    /// Endpoints by "namespace/name".
    pub endpoints: BTreeMap<String, EndpointPolicy>,
}

impl Compiled {
    /// The endpoints a node hosts: only these get their entries there.
    pub fn for_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a EndpointPolicy> + 'a {
        self.endpoints.values().filter(move |e| e.node == node)
    }

    /// Total number of entries.
    pub fn entry_count(&self) -> usize {
        self.endpoints.values().map(|e| e.entries.len()).sum()
    }
}

/// Subject pods that policy cannot tell apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ClassKey {
    namespace: String,
    labels: Labels,
    ports: Vec<NamedPort>,
}

/// Subjects the same policies select (with the same own named ports, which
/// ingress rules resolve against) get the same answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    /// Applicable policies with a digest of their content.
    policies: Vec<(String, u64)>,
    direction: Direction,
    ports: Vec<NamedPort>,
}

#[derive(Debug, Clone, Default)]
struct CacheSlot {
    context: u64,
    answers: HashMap<RemoteSignature, VerdictFn>,
}

/// Cache statistics of the last compile, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// (class, direction, identity) answers computed.
    pub computed: usize,
    /// Answers reused from the previous compile.
    pub reused: usize,
}

/// Compiles, remembering identities and answers between runs.
#[derive(Debug, Clone, Default)]
pub struct Compiler {
    allocator: Allocator,
    cache: HashMap<SlotKey, CacheSlot>,
    stats: CompileStats,
}

/// An identity and the address the compiler asks the evaluator about.
struct Member<'a> {
    id: u32,
    remote: Remote<'a>,
}

impl Compiler {
    /// A compiler with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A compiler continuing an earlier one's identity numbering.
    pub fn with_identities(entries: Vec<(IdentityKey, u32)>, next: u32) -> Self {
        Self { allocator: Allocator::import(entries, next), ..Self::default() }
    }

    /// The identity numbering, to persist.
    pub fn identities(&self) -> (Vec<(IdentityKey, u32)>, u32) {
        self.allocator.export()
    }

    /// Cache statistics of the last compile.
    pub fn stats(&self) -> CompileStats {
        self.stats
    }

    /// Compiles the whole cluster.
    pub fn compile(&mut self, inv: &Inventory, policies: &PolicySet) -> Result<Compiled, PolicyError> {
        self.stats = CompileStats::default();
        let cidrs = policy_cidrs(policies);
        let mut out = Compiled::default();

        // Identities and their representatives.
        let mut members: BTreeMap<IdentityKey, Member<'_>> = BTreeMap::new();
        let mut pod_ids: BTreeMap<String, u32> = BTreeMap::new();
        for pod in inv.pods.values() {
            for ip in &pod.ips {
                let key = pod_identity(pod, cidrs.most_specific(*ip), listed_in(inv, pod));
                let id = self.allocator.get(&key)?;
                pod_ids.entry(pod.key()).or_insert(id);
                members.entry(key).or_insert(Member { id, remote: Remote::Pod(pod, *ip) });
                out.ipcache.push(IpcacheEntry { net: host_net(*ip), identity: id, owner: pod.key() });
            }
        }
        for svc in inv.services.values() {
            for ip in &svc.cluster_ips {
                let key = IdentityKey::Service { service: svc.key(), addr: *ip };
                let id = self.allocator.get(&key)?;
                members.entry(key).or_insert(Member { id, remote: Remote::Service(svc, *ip) });
                out.ipcache.push(IpcacheEntry { net: host_net(*ip), identity: id, owner: svc.key() });
            }
        }
        // Pods of other clusters: identities of their own (their cluster is
        // in the key), on addresses no pod or service of this cluster holds.
        let local: BTreeSet<IpAddr> = inv
            .pods
            .values()
            .flat_map(|p| p.ips.iter())
            .chain(inv.services.values().flat_map(|s| s.cluster_ips.iter()))
            .chain(inv.nodes.values().flatten())
            .copied()
            .collect();
        for pod in inv.remote_pods.iter().filter(|p| p.cluster != inv.cluster) {
            for ip in pod.ips.iter().filter(|ip| !local.contains(ip)) {
                let key = pod_identity(pod, cidrs.most_specific(*ip), Vec::new());
                let id = self.allocator.get(&key)?;
                members.entry(key).or_insert(Member { id, remote: Remote::Pod(pod, *ip) });
                let owner = format!("{}/{}", pod.cluster, pod.key());
                out.ipcache.push(IpcacheEntry { net: host_net(*ip), identity: id, owner });
            }
        }
        let mut node_ids: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        for (node, ips) in &inv.nodes {
            for ip in ips {
                let key = IdentityKey::Host { node: node.clone(), cidr: cidrs.most_specific(*ip) };
                let id = self.allocator.get(&key)?;
                node_ids.entry(node).or_default().insert(id);
                members.entry(key).or_insert(Member { id, remote: Remote::Host(*ip) });
                out.ipcache.push(IpcacheEntry { net: host_net(*ip), identity: id, owner: String::new() });
            }
        }
        // A policy CIDR that is exactly a pod's, service's or node's address
        // must not take that address over: theirs is the more precise identity.
        let taken: BTreeSet<IpNetwork> = out.ipcache.iter().map(|e| e.net).collect();
        for net in cidrs.all() {
            let Some(rep) = cidrs.representative(*net) else { continue };
            if taken.contains(net) {
                continue;
            }
            let key = IdentityKey::World { cidr: Some(*net) };
            let id = self.allocator.get(&key)?;
            members.entry(key).or_insert(Member { id, remote: Remote::World(rep) });
            out.ipcache.push(IpcacheEntry { net: *net, identity: id, owner: String::new() });
        }
        let world = IdentityKey::World { cidr: None };
        let id = self.allocator.get(&world)?;
        members.entry(world).or_insert(Member { id, remote: Remote::Unknown });
        let unknown = IdentityKey::Service { service: "reserved:unknown".into(), addr: IpAddr::from([0u8; 4]) };
        members.insert(unknown, Member { id: UNKNOWN, remote: Remote::Unknown });
        out.ipcache.sort();
        out.ipcache.dedup_by(|a, b| a.net == b.net);
        let live: BTreeSet<IdentityKey> = members.keys().cloned().collect();
        self.allocator.retain(&live);
        out.identities = members.iter().map(|(k, m)| identity_info(k, m.id)).collect();
        out.identities.sort_by_key(|i| i.id);
        out.identities.dedup_by_key(|i| i.id);

        // Answers per group of subjects that the same policies select.
        let context = context_fingerprint(inv);
        let eval_all = Evaluator::new(inv, policies);
        let digests: HashMap<String, u64> = policy_digests(policies);
        let mut classes: BTreeMap<ClassKey, Vec<&Pod>> = BTreeMap::new();
        for pod in inv.pods.values() {
            let key =
                ClassKey { namespace: pod.namespace.clone(), labels: pod.labels.clone(), ports: sorted(&pod.ports) };
            classes.entry(key).or_default().push(pod);
        }
        let mut encoded: HashMap<SlotKey, Option<encode::Encoded>> = HashMap::new();
        for (class, pods) in &classes {
            let subject = pods[0];
            let mut per_dir = Vec::new();
            for dir in Direction::BOTH {
                let applicable = applicable(&eval_all, subject, dir);
                let slot_key = SlotKey {
                    policies: applicable
                        .network
                        .keys()
                        .chain(applicable.cluster.keys())
                        .map(|k| (k.clone(), digests.get(k).copied().unwrap_or(0)))
                        .collect(),
                    direction: dir,
                    ports: if dir == Direction::Ingress { class.ports.clone() } else { Vec::new() },
                };
                if !encoded.contains_key(&slot_key) {
                    let enc = if slot_key.policies.is_empty() {
                        None
                    } else {
                        let slot = self.cache.entry(slot_key.clone()).or_default();
                        if slot.context != context {
                            slot.answers.clear();
                            slot.context = context;
                        }
                        let eval = Evaluator::new(inv, &applicable);
                        let mut answers: BTreeMap<u32, VerdictFn> = BTreeMap::new();
                        for m in members.values() {
                            let sig = eval.signature(dir, &m.remote);
                            let a = match slot.answers.get(&sig) {
                                Some(a) => {
                                    self.stats.reused += 1;
                                    a.clone()
                                }
                                None => {
                                    self.stats.computed += 1;
                                    let a = answer(&eval, subject, dir, &m.remote);
                                    slot.answers.insert(sig, a.clone());
                                    a
                                }
                            };
                            answers.insert(m.id, a);
                        }
                        Some(encode::encode(&answers)?)
                    };
                    encoded.insert(slot_key.clone(), enc);
                }
                per_dir.push(slot_key);
            }
            for pod in pods {
                let mut entries = Vec::new();
                let mut isolated = [false, false];
                let own = node_ids.get(pod.node.as_str()).cloned().unwrap_or_default();
                let none = BTreeSet::new();
                for (i, key) in per_dir.iter().enumerate() {
                    if let Some(Some(enc)) = encoded.get(key) {
                        isolated[i] = enc.isolated;
                        // Ingress from the pod's own node is always allowed:
                        // drop what the class says about it and allow it
                        // outright. Egress to it is the policies' to decide.
                        let exempt = if key.direction == Direction::Ingress { &own } else { &none };
                        entries.extend(
                            enc.entries
                                .iter()
                                .filter(|e| !exempt.contains(&e.identity))
                                .map(|e| Entry { direction: key.direction, ..e.clone() }),
                        );
                        entries.extend(exempt.iter().map(|id| Entry {
                            identity: *id,
                            direction: key.direction,
                            protocol: 0,
                            port: 0,
                            end_port: 0,
                            allow: true,
                            rule: crate::evaluate::Decider::OwnNode.name(),
                        }));
                    }
                }
                encode::check_capacity(&entries)
                    .map_err(|message| PolicyError::Capacity { pod: pod.key(), message })?;
                out.endpoints.insert(
                    pod.key(),
                    EndpointPolicy {
                        pod: pod.key(),
                        node: pod.node.clone(),
                        identity: pod_ids.get(&pod.key()).copied().unwrap_or(UNKNOWN),
                        ingress_isolated: isolated[0],
                        egress_isolated: isolated[1],
                        entries,
                    },
                );
            }
        }
        self.cache.retain(|k, _| encoded.contains_key(k));
        Ok(out)
    }
}

/// Services whose EndpointSlices list one of the pod's addresses.
/// A pod's identity key at one of its addresses.
fn pod_identity(pod: &Pod, cidr: Option<IpNetwork>, services: Vec<String>) -> IdentityKey {
    IdentityKey::Pod {
        cluster: pod.cluster.clone(),
        namespace: pod.namespace.clone(),
        labels: pod.labels.clone(),
        ports: sorted(&pod.ports),
        cidr,
        services,
    }
}

fn listed_in(inv: &Inventory, pod: &Pod) -> Vec<String> {
    inv.services
        .values()
        .filter(|s| s.endpoints.as_ref().is_some_and(|eps| pod.ips.iter().any(|ip| eps.contains(ip))))
        .map(|s| s.key())
        .collect()
}

fn sorted(ports: &[NamedPort]) -> Vec<NamedPort> {
    let mut v = ports.to_vec();
    v.sort();
    v.dedup();
    v
}

fn host_net(ip: IpAddr) -> IpNetwork {
    IpNetwork::from(ip)
}

/// Every CIDR a policy mentions: ipBlocks, their exceptions, and tier networks.
fn policy_cidrs(p: &PolicySet) -> PolicyCidrs {
    let mut nets = Vec::new();
    for np in p.network.values() {
        for dir in Direction::BOTH {
            for r in np.rules(dir).into_iter().flatten() {
                for peer in r.peers.iter().flatten() {
                    if let Peer::IpBlock(b) = peer {
                        nets.push(b.cidr);
                        nets.extend(b.except.iter().copied());
                    }
                }
            }
        }
    }
    for cp in p.cluster.values() {
        for dir in Direction::BOTH {
            for r in cp.rules(dir) {
                for peer in &r.peers {
                    if let TierPeer::Network(n) = peer {
                        nets.push(*n);
                    }
                }
            }
        }
    }
    PolicyCidrs::new(nets)
}

/// The policies that select `subject` for `dir`: the rest cannot change its answers.
fn applicable(eval: &Evaluator<'_>, subject: &Pod, dir: Direction) -> PolicySet {
    let ns_labels = eval.inventory.namespace_labels(&subject.namespace);
    let mut out = PolicySet::default();
    for np in eval.policies.network.values() {
        if np.namespace == subject.namespace && np.pod_selector.matches(&subject.labels) && np.rules(dir).is_some() {
            out.put_network(np.clone());
        }
    }
    for cp in eval.policies.cluster.values() {
        if cp.selects(&ns_labels, &subject.labels) && !cp.rules(dir).is_empty() {
            out.put_cluster(cp.clone());
        }
    }
    out
}

/// A digest of each policy's content, so a changed policy invalidates the
/// answers of exactly the subjects it applies to.
fn policy_digests(p: &PolicySet) -> HashMap<String, u64> {
    let digest = |x: &dyn Fn(&mut DefaultHasher)| {
        let mut h = DefaultHasher::new();
        x(&mut h);
        h.finish()
    };
    let mut out = HashMap::new();
    for (k, np) in &p.network {
        out.insert(k.clone(), digest(&|h| np.hash(h)));
    }
    for (k, cp) in &p.cluster {
        out.insert(k.clone(), digest(&|h| cp.hash(h)));
    }
    out
}

/// A hash of the inventory facts answers depend on besides the identity
/// itself: namespace labels and services with their backends.
fn context_fingerprint(inv: &Inventory) -> u64 {
    let mut h = DefaultHasher::new();
    for ns in inv.namespaces.values() {
        ns.name.hash(&mut h);
        ns.labels.hash(&mut h);
    }
    for svc in inv.services.values() {
        svc.key().hash(&mut h);
        svc.cluster_ips.hash(&mut h);
        for p in &svc.ports {
            (p.protocol, p.port, &p.target).hash(&mut h);
        }
        for b in inv.backends(svc) {
            (b.key(), &b.labels, &b.ips, &b.ports).hash(&mut h);
        }
    }
    h.finish()
}

/// The evaluator's answers for one identity, over the whole port space.
fn answer(eval: &Evaluator<'_>, subject: &Pod, dir: Direction, remote: &Remote<'_>) -> VerdictFn {
    let mut bounds: BTreeMap<Protocol, Vec<(u16, u16)>> = BTreeMap::new();
    let dest_ports: Option<&[NamedPort]> = match (dir, remote) {
        (Direction::Ingress, _) => Some(&subject.ports),
        (Direction::Egress, Remote::Pod(p, _)) => Some(&p.ports),
        _ => None,
    };
    let all_ports = eval
        .policies
        .network
        .values()
        .flat_map(|np| np.rules(dir).into_iter().flatten().flat_map(|r| r.ports.iter().flatten()))
        .chain(
            eval.policies.cluster.values().flat_map(|cp| cp.rules(dir).iter().flat_map(|r| r.ports.iter().flatten())),
        );
    for m in all_ports {
        for proto in Protocol::ALL {
            m.bounds(proto, dest_ports, bounds.entry(proto).or_default());
        }
    }
    if let Remote::Service(svc, _) = remote {
        for sp in &svc.ports {
            bounds.entry(sp.protocol).or_default().push((sp.port, sp.port));
        }
    }
    let other = eval.decide_by_policy(subject, dir, remote, None, 0);
    let mut protos = Vec::new();
    for proto in Protocol::ALL {
        let mut cuts: BTreeSet<u32> = BTreeSet::from([1, 65536]);
        for (lo, hi) in bounds.get(&proto).into_iter().flatten() {
            cuts.insert(u32::from(*lo));
            cuts.insert(u32::from(*hi) + 1);
        }
        let cuts: Vec<u32> = cuts.into_iter().collect();
        let mut spans: Vec<Span> = Vec::new();
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0] as u16, (w[1] - 1) as u16);
            let d = eval.decide_by_policy(subject, dir, remote, Some(proto), lo);
            match spans.last_mut() {
                Some(last) if last.allowed == d.allowed && last.rule == d.by.name() => last.hi = hi,
                _ => spans.push(Span { lo, hi, allowed: d.allowed, rule: d.by.name() }),
            }
        }
        protos.push(spans);
    }
    VerdictFn { other_allowed: other.allowed, other_rule: other.by.name(), protos }
}

fn identity_info(key: &IdentityKey, id: u32) -> IdentityInfo {
    let describe = |k: &str, v: String| Labels::from([(k.to_string(), v)]);
    match key {
        IdentityKey::Pod { cluster, namespace, labels, .. } => {
            IdentityInfo { id, cluster: cluster.clone(), namespace: namespace.clone(), labels: labels.clone() }
        }
        IdentityKey::Service { service, addr } => IdentityInfo {
            id,
            cluster: String::new(),
            namespace: String::new(),
            labels: describe("bulkhead.dev/service", format!("{service} {addr}")),
        },
        IdentityKey::Host { node, .. } => IdentityInfo {
            id,
            cluster: String::new(),
            namespace: String::new(),
            labels: describe("bulkhead.dev/host", node.clone()),
        },
        IdentityKey::World { cidr } => IdentityInfo {
            id,
            cluster: String::new(),
            namespace: String::new(),
            labels: describe("bulkhead.dev/world", cidr.map(|c| c.to_string()).unwrap_or_default()),
        },
    }
}
