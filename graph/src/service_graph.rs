//! The graph itself. A connection is usually observed twice, at the
//! source's egress and at the destination's ingress; it is counted once.
//! The ingress side is authoritative about the destination (the backend
//! workload and the target port behind a ClusterIP), so an egress
//! observation addressed to a service waits, up to a window, for its
//! ingress twin before it is counted against the bare service; an ingress
//! observation from a pod waits a few seconds for its egress twin, which
//! knows the service the pod addressed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use petgraph::Direction as Dir;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::flow::{Entity, FlowRecord, ServiceRef};
use bulkhead_model::{Direction, Verdict};

/// What distinguishes parallel edges between two entities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EdgeKey {
    /// IANA protocol number.
    pub protocol: u8,
    /// The port traffic was delivered to: the target port when the
    /// destination saw it, else the port the source addressed.
    pub port: u16,
    /// The service the source addressed, if any.
    pub service: Option<ServiceRef>,
}

/// What was seen on one edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeStats {
    /// Connections or attempts, each counted once whichever ends saw it.
    pub connections: u64,
    /// Of which forwarded.
    pub forwarded: u64,
    /// Of which dropped by policy.
    pub dropped: u64,
    /// Of which would have been dropped (audit mode).
    pub audit: u64,
    /// Bytes reported by the counting observation.
    pub bytes: u64,
    /// First time seen, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last time seen.
    pub last_seen_ns: i64,
}

impl EdgeStats {
    /// Adds counts seen elsewhere (another time bucket, an aggregated view).
    pub fn merge(&mut self, other: &EdgeStats) {
        if self.connections == 0 || other.first_seen_ns < self.first_seen_ns {
            self.first_seen_ns = other.first_seen_ns;
        }
        self.last_seen_ns = self.last_seen_ns.max(other.last_seen_ns);
        self.connections += other.connections;
        self.forwarded += other.forwarded;
        self.dropped += other.dropped;
        self.audit += other.audit;
        self.bytes += other.bytes;
    }

    /// Counts one connection.
    pub fn add(&mut self, r: &FlowRecord) {
        if self.connections == 0 || r.time_ns < self.first_seen_ns {
            self.first_seen_ns = r.time_ns;
        }
        self.last_seen_ns = self.last_seen_ns.max(r.time_ns);
        self.connections += 1;
        self.bytes += r.bytes;
        match r.verdict {
            Verdict::Forwarded => self.forwarded += 1,
            Verdict::Dropped => self.dropped += 1,
            Verdict::Audit => self.audit += 1,
        }
    }
}

/// A neighbour of an entity and the edges to or from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    /// The other end.
    pub entity: Entity,
    /// True when the queried entity is the source.
    pub outgoing: bool,
    /// The edges, by key.
    pub edges: Vec<(EdgeKey, EdgeStats)>,
}

/// How long a pod-to-pod connection seen at its destination waits for its
/// source's observation (which names the service it addressed).
const PAIR_NS: i64 = 5_000_000_000;

/// Source address, source port and protocol: what both ends of a connection
/// agree on even when the destination address was translated.
type ConnKey = (IpAddr, u16, u8);

/// Counts of what ingestion did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Records received.
    pub records: u64,
    /// Connections counted.
    pub counted: u64,
    /// Records recognised as the other end of a connection already counted.
    pub duplicates: u64,
    /// Service-addressed connections counted without their ingress twin,
    /// against the bare service.
    pub unresolved: u64,
    /// Service-addressed connections without their ingress twin, counted
    /// against the service's only backend workload.
    pub inferred: u64,
}

/// The service graph.
#[derive(Debug, Clone)]
pub struct ServiceGraph {
    graph: StableDiGraph<Entity, BTreeMap<EdgeKey, EdgeStats>>,
    index: FxHashMap<Entity, NodeIndex>,
    counted: FxHashMap<ConnKey, (i64, Direction)>,
    pending: FxHashMap<ConnKey, (i64, FlowRecord)>,
    pending_ingress: FxHashMap<ConnKey, (i64, FlowRecord)>,
    window_ns: i64,
    stats: IngestStats,
}

impl Default for ServiceGraph {
    fn default() -> Self {
        Self::new(30_000_000_000)
    }
}

impl ServiceGraph {
    /// An empty graph pairing the two ends of a connection within `window_ns`.
    pub fn new(window_ns: i64) -> Self {
        Self {
            graph: StableDiGraph::new(),
            index: FxHashMap::default(),
            counted: FxHashMap::default(),
            pending: FxHashMap::default(),
            pending_ingress: FxHashMap::default(),
            window_ns,
            stats: IngestStats::default(),
        }
    }

    /// What ingestion did so far.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    fn node(&mut self, e: &Entity) -> NodeIndex {
        if let Some(i) = self.index.get(e) {
            return *i;
        }
        let i = self.graph.add_node(e.clone());
        self.index.insert(e.clone(), i);
        i
    }

    /// Counts `r` on the edge to `dst`. With `twin_expected` (the other end
    /// has not been seen but may still report), the connection is
    /// remembered so that end is recognised as a duplicate.
    fn count(&mut self, r: &FlowRecord, dst: &Entity, key: EdgeKey, twin_expected: Option<i64>) {
        let (a, b) = (self.node(&r.src), self.node(dst));
        let edge = match self.graph.find_edge(a, b) {
            Some(e) => e,
            None => self.graph.add_edge(a, b, BTreeMap::new()),
        };
        if let Some(edges) = self.graph.edge_weight_mut(edge) {
            edges.entry(key).or_default().add(r);
        }
        if let Some(arrival) = twin_expected {
            self.counted.insert((r.src_ip, r.src_port, r.protocol), (arrival, r.observation));
        }
        self.stats.counted += 1;
    }

    /// Whether `r` is the other end of a connection counted alone; the
    /// pairing is used up, so a later connection reusing the source port is
    /// a new connection.
    fn twin_of_counted(&mut self, key: &ConnKey, r: &FlowRecord, arrival: i64) -> bool {
        let twin = self
            .counted
            .get(key)
            .is_some_and(|(t, obs)| *obs != r.observation && (arrival - t).abs() <= self.window_ns);
        if twin {
            self.counted.remove(key);
        }
        twin
    }

    /// `ingest_at` with the record's own time as its arrival (replays, tests).
    pub fn ingest<'a>(&mut self, r: &'a FlowRecord) -> Option<(Cow<'a, FlowRecord>, EdgeKey)> {
        self.ingest_at(r, r.time_ns)
    }

    /// Takes one observation that arrived at `arrival_ns`. Returns what was
    /// counted because of it (the baseline learns from exactly these): this
    /// record, or its ingress twin that was waiting, with the edge key;
    /// `None` when it was the second end of a connection already counted,
    /// or waits for its twin. Pairing waits are measured in arrival time, so
    /// a backlog replayed after an outage pairs as well as live traffic.
    pub fn ingest_at<'a>(&mut self, r: &'a FlowRecord, arrival_ns: i64) -> Option<(Cow<'a, FlowRecord>, EdgeKey)> {
        self.stats.records += 1;
        let key = (r.src_ip, r.src_port, r.protocol);
        let from_pod = matches!(r.src, Entity::Workload { .. });
        match r.observation {
            Direction::Ingress => {
                let twin = self.pending.remove(&key).map(|(_, t)| t);
                if twin.is_none()
                    && (self.pending_ingress.contains_key(&key) || self.twin_of_counted(&key, r, arrival_ns))
                {
                    self.stats.duplicates += 1;
                    return None;
                }
                if twin.is_none() && r.service.is_none() && from_pod {
                    // A pod's connection: its egress end says which service it
                    // addressed; wait for it briefly.
                    self.pending_ingress.insert(key, (arrival_ns, r.clone()));
                    return None;
                }
                if twin.is_some() {
                    self.stats.duplicates += 1;
                }
                // The destination is authoritative: backend, target port, verdict.
                let paired = twin.is_some();
                let service = r.service.clone().or_else(|| twin.and_then(|t| t.service));
                let k = EdgeKey { protocol: r.protocol, port: r.dst_port, service };
                self.count(r, &r.dst, k.clone(), (!paired && from_pod).then_some(arrival_ns));
                Some((Cow::Borrowed(r), k))
            }
            Direction::Egress => {
                if let Some((_, mut ing)) = self.pending_ingress.remove(&key) {
                    self.stats.duplicates += 1;
                    ing.service = r.service.clone();
                    let k = EdgeKey { protocol: ing.protocol, port: ing.dst_port, service: ing.service.clone() };
                    let dst = ing.dst.clone();
                    self.count(&ing, &dst, k.clone(), None);
                    return Some((Cow::Owned(ing), k));
                }
                if self.pending.contains_key(&key) || self.twin_of_counted(&key, r, arrival_ns) {
                    self.stats.duplicates += 1;
                    return None;
                }
                // Toward a pod or a service, the destination's end will say
                // what really happened (its policy may drop what the source
                // let out): wait for it. What the source dropped, or sent
                // out of the cluster, is known now.
                let twin_to_come = matches!(r.dst, Entity::Service { .. } | Entity::Workload { .. });
                if twin_to_come && r.verdict != Verdict::Dropped {
                    self.pending.insert(key, (arrival_ns, r.clone()));
                    None
                } else {
                    let k = EdgeKey { protocol: r.protocol, port: r.dst_port, service: r.service.clone() };
                    self.count(r, &r.dst, k.clone(), None);
                    Some((Cow::Borrowed(r), k))
                }
            }
        }
    }

    /// Counts connections whose twin did not come in time (in arrival time):
    /// egress toward a pod (as seen, after the pairing delay) or a service
    /// (against its only backend workload if it has one, else the bare
    /// service, after the window), and pod-to-pod ingress (as seen, after the
    /// pairing delay); forgets old pairings. Returns what it counted, as
    /// `ingest` does.
    pub fn flush(&mut self, now_ns: i64) -> Vec<(FlowRecord, EdgeKey)> {
        let mut out = Vec::new();
        let pair = PAIR_NS.min(self.window_ns);
        let waited: Vec<ConnKey> =
            self.pending_ingress.iter().filter(|(_, (t, _))| now_ns - t > pair).map(|(k, _)| *k).collect();
        for k in waited {
            if let Some((t, r)) = self.pending_ingress.remove(&k) {
                let key = EdgeKey { protocol: r.protocol, port: r.dst_port, service: None };
                self.count(&r, &r.dst, key.clone(), Some(t));
                out.push((r, key));
            }
        }
        let window = self.window_ns;
        let expired: Vec<ConnKey> = self
            .pending
            .iter()
            .filter(|(_, (t, r))| now_ns - t > if matches!(r.dst, Entity::Service { .. }) { window } else { pair })
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let Some((t, mut r)) = self.pending.remove(&k) else { continue };
            if !matches!(r.dst, Entity::Service { .. }) {
                let key = EdgeKey { protocol: r.protocol, port: r.dst_port, service: None };
                self.count(&r, &r.dst, key.clone(), Some(t));
                out.push((r, key));
                continue;
            }
            if let Some((backend, port)) = r.backend.take() {
                // The service has one backend workload: that is where it went.
                let key = EdgeKey { protocol: r.protocol, port, service: r.service.clone() };
                r.dst = backend;
                r.dst_port = port;
                self.count(&r, &r.dst, key.clone(), Some(t));
                self.stats.inferred += 1;
                out.push((r, key));
                continue;
            }
            let key = EdgeKey { protocol: r.protocol, port: r.dst_port, service: r.service.clone() };
            self.count(&r, &r.dst, key.clone(), Some(t));
            self.stats.unresolved += 1;
            out.push((r, key));
        }
        out.sort_by_key(|(r, _)| r.time_ns);
        self.counted.retain(|_, (t, _)| now_ns - *t <= window);
        out
    }

    /// Adds an entity without edges (a workload not seen in flows yet), so
    /// queries such as the blast radius consider it.
    pub fn add_entity(&mut self, e: &Entity) {
        self.node(e);
    }

    /// Merges stored counts into an edge (rebuilding the graph after a restart).
    pub fn add_stats(&mut self, src: &Entity, dst: &Entity, key: EdgeKey, stats: &EdgeStats) {
        let (a, b) = (self.node(src), self.node(dst));
        let edge = match self.graph.find_edge(a, b) {
            Some(e) => e,
            None => self.graph.add_edge(a, b, BTreeMap::new()),
        };
        if let Some(edges) = self.graph.edge_weight_mut(edge) {
            edges.entry(key).or_default().merge(stats);
        }
    }

    /// Every entity.
    pub fn entities(&self) -> BTreeSet<Entity> {
        self.index.keys().cloned().collect()
    }

    /// Every edge: (source, destination, key, stats), in a stable order.
    pub fn edges(&self) -> Vec<(Entity, Entity, EdgeKey, EdgeStats)> {
        let mut out = Vec::new();
        for e in (&self.graph).edge_references() {
            for (k, s) in e.weight() {
                out.push((self.graph[e.source()].clone(), self.graph[e.target()].clone(), k.clone(), s.clone()));
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        out
    }

    /// Who `entity` talks to and who talks to it.
    pub fn neighbours(&self, entity: &Entity) -> Vec<Neighbour> {
        let Some(i) = self.index.get(entity) else { return Vec::new() };
        let mut out = Vec::new();
        for (outgoing, dir) in [(true, Dir::Outgoing), (false, Dir::Incoming)] {
            for e in self.graph.edges_directed(*i, dir) {
                let other = if outgoing { e.target() } else { e.source() };
                let edges = e.weight().iter().map(|(k, s)| (k.clone(), s.clone())).collect();
                out.push(Neighbour { entity: self.graph[other].clone(), outgoing, edges });
            }
        }
        out.sort_by(|a, b| (&a.entity, a.outgoing).cmp(&(&b.entity, b.outgoing)));
        out
    }

    /// A shortest chain of observed, forwarded connections from `from` to `to`.
    pub fn path(&self, from: &Entity, to: &Entity) -> Option<Vec<Entity>> {
        let (start, goal) = (*self.index.get(from)?, *self.index.get(to)?);
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut visited = BTreeSet::from([start]);
        while let Some(n) = queue.pop_front() {
            if n == goal {
                let mut chain = vec![self.graph[n].clone()];
                let mut cur = n;
                while let Some(p) = prev.get(&cur) {
                    chain.push(self.graph[*p].clone());
                    cur = *p;
                }
                chain.reverse();
                return Some(chain);
            }
            for e in self.graph.edges_directed(n, Dir::Outgoing) {
                let passed = e.weight().values().any(|s| s.forwarded + s.audit > 0);
                if passed && visited.insert(e.target()) {
                    prev.insert(e.target(), n);
                    queue.push_back(e.target());
                }
            }
        }
        None
    }

    /// Everything `from` can reach, directly or through entities it can
    /// reach, when `allowed(a, b)` says whether `a` may open connections to
    /// `b` under current policy (the caller asks the policy evaluator). Every
    /// entity of the graph is a candidate, observed edge or not.
    pub fn blast_radius(&self, from: &Entity, allowed: impl Fn(&Entity, &Entity) -> bool) -> BTreeSet<Entity> {
        let all = self.entities();
        let mut reached = BTreeSet::new();
        let mut queue = VecDeque::from([from.clone()]);
        while let Some(a) = queue.pop_front() {
            let next: Vec<Entity> = all
                .iter()
                .filter(|b| **b != a && *b != from && !reached.contains(*b) && allowed(&a, b))
                .cloned()
                .collect();
            for b in next {
                reached.insert(b.clone());
                queue.push_back(b);
            }
        }
        reached
    }

    /// The edges with at least one end in `namespace`, with both ends.
    pub fn subgraph(&self, namespace: &str) -> ServiceGraph {
        let mut sub = ServiceGraph::new(self.window_ns);
        for e in (&self.graph).edge_references() {
            let (a, b) = (&self.graph[e.source()], &self.graph[e.target()]);
            if a.namespace() == Some(namespace) || b.namespace() == Some(namespace) {
                let (ia, ib) = (sub.node(a), sub.node(b));
                sub.graph.add_edge(ia, ib, e.weight().clone());
            }
        }
        // Entities of the namespace with no edge yet still belong to it.
        for entity in self.index.keys().filter(|e| e.namespace() == Some(namespace)) {
            sub.node(entity);
        }
        sub
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ns: &str, name: &str) -> Entity {
        Entity::Workload { namespace: ns.into(), kind: "Deployment".into(), name: name.into() }
    }

    fn rec(obs: Direction, src: &Entity, dst: &Entity, sport: u16, dport: u16, t: i64) -> FlowRecord {
        FlowRecord {
            time_ns: t,
            observation: obs,
            node: "n1".into(),
            src: src.clone(),
            dst: dst.clone(),
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: sport,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: dport,
            protocol: 6,
            service: None,
            verdict: Verdict::Forwarded,
            bytes: 100,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
        }
    }

    #[test]
    fn a_connection_seen_at_both_ends_counts_once_in_either_order() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        for order in [[Direction::Egress, Direction::Ingress], [Direction::Ingress, Direction::Egress]] {
            let mut g = ServiceGraph::default();
            for (i, obs) in order.iter().enumerate() {
                g.ingest(&rec(*obs, &a, &b, 40000, 80, 1_000 + i as i64));
            }
            g.ingest(&rec(Direction::Egress, &a, &b, 40001, 80, 2_000));
            assert_eq!(g.edges()[0].3.connections, 1, "an egress toward a pod waits for its destination's end");
            assert_eq!(g.flush(2_000 + PAIR_NS + 1).len(), 1);
            let edges = g.edges();
            assert_eq!(edges.len(), 1);
            assert_eq!(edges[0].3.connections, 2, "two connections, four observations minus duplicates");
            assert_eq!(g.stats().duplicates, 1);
        }
    }

    #[test]
    fn the_destination_end_decides_the_verdict_whichever_end_arrives_first() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        for egress_first in [true, false] {
            let mut g = ServiceGraph::default();
            let out = rec(Direction::Egress, &a, &b, 40000, 5432, 1_000);
            let mut denied = rec(Direction::Ingress, &a, &b, 40000, 5432, 1_001);
            denied.verdict = Verdict::Dropped;
            let counted = if egress_first {
                assert!(g.ingest(&out).is_none());
                g.ingest(&denied).map(|(r, _)| r.into_owned())
            } else {
                assert!(g.ingest(&denied).is_none());
                g.ingest(&out).map(|(r, _)| r.into_owned())
            };
            assert_eq!(counted.map(|r| r.verdict), Some(Verdict::Dropped));
            assert_eq!((g.edges()[0].3.connections, g.edges()[0].3.dropped), (1, 1));
        }
    }

    #[test]
    fn a_replayed_backlog_pairs_by_arrival_not_flow_time() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        let mut g = ServiceGraph::default();
        // Flows from an hour ago, replayed after an outage, one end per flush.
        let hour = 3_600_000_000_000;
        let now = 10 * hour;
        assert!(g.ingest_at(&rec(Direction::Egress, &a, &b, 40000, 80, now - hour), now).is_none());
        assert!(g.flush(now + 1_000_000_000).is_empty(), "not expired: it arrived a second ago");
        assert!(
            g.ingest_at(&rec(Direction::Ingress, &a, &b, 40000, 80, now - hour + 5), now + 1_000_000_000).is_some()
        );
        g.flush(now + 60_000_000_000);
        assert_eq!(g.edges()[0].3.connections, 1);
    }

    #[test]
    fn a_source_port_reused_after_both_ends_reported_is_a_new_connection() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        let mut g = ServiceGraph::default();
        for t in [1_000, 2_000, 3_000] {
            g.ingest(&rec(Direction::Egress, &a, &b, 40000, 80, t));
            g.ingest(&rec(Direction::Ingress, &a, &b, 40000, 80, t + 10));
        }
        assert_eq!(g.edges()[0].3.connections, 3, "three connections from one reused source port");
        assert_eq!(g.stats().duplicates, 3);
    }

    #[test]
    fn a_service_connection_lands_on_its_backend_with_the_service_on_the_edge() {
        let (a, backend) = (w("x", "a"), w("x", "web"));
        let svc = Entity::Service { namespace: "x".into(), name: "web".into() };
        let sref = ServiceRef { namespace: "x".into(), name: "web".into(), port: 80 };
        let mut g = ServiceGraph::default();
        let mut out = rec(Direction::Egress, &a, &svc, 40000, 80, 1_000);
        out.service = Some(sref.clone());
        g.ingest(&out);
        assert!(g.edges().is_empty(), "waits for the ingress side");
        g.ingest(&rec(Direction::Ingress, &a, &backend, 40000, 8080, 1_500));
        let edges = g.edges();
        assert_eq!(edges.len(), 1);
        assert_eq!((&edges[0].1, edges[0].2.port, &edges[0].2.service), (&backend, 8080, &Some(sref.clone())));
        assert!(!g.entities().contains(&svc), "no bare service node when the backend was seen");

        // Seen at the destination first: waits for the source's side, which
        // names the service.
        g.ingest(&rec(Direction::Ingress, &a, &backend, 40100, 8080, 1_600));
        assert_eq!(g.edges()[0].3.connections, 1, "the ingress end waits for its twin");
        let mut late = rec(Direction::Egress, &a, &svc, 40100, 80, 1_700);
        late.service = Some(sref.clone());
        let (counted, key) = g.ingest(&late).unwrap();
        assert_eq!((&counted.dst, key.port, &key.service), (&backend, 8080, &Some(sref.clone())));
        assert_eq!(g.edges()[0].3.connections, 2);
        // A pod's ingress whose twin never comes is counted after the pairing delay.
        g.ingest(&rec(Direction::Ingress, &a, &backend, 40200, 8080, 1_800));
        assert_eq!(g.flush(1_800 + PAIR_NS + 1).len(), 1);
        assert_eq!(g.edges().iter().map(|e| e.3.connections).sum::<u64>(), 3);

        // Dropped at the source, or never answered: counted against the service.
        let mut dropped = rec(Direction::Egress, &a, &svc, 40001, 80, 2_000);
        dropped.service = Some(sref.clone());
        dropped.verdict = Verdict::Dropped;
        g.ingest(&dropped);
        let mut lonely = rec(Direction::Egress, &a, &svc, 40002, 80, 3_000);
        lonely.service = Some(sref.clone());
        g.ingest(&lonely);
        g.flush(3_000 + 31_000_000_000);
        // The backend never reported, but the service has one backend workload.
        let mut hinted = rec(Direction::Egress, &a, &svc, 40003, 80, 3_000);
        hinted.service = Some(sref.clone());
        hinted.backend = Some((backend.clone(), 8080));
        g.ingest(&hinted);
        let counted = g.flush(3_000 + 31_000_000_000);
        assert_eq!((&counted[0].0.dst, counted[0].1.port), (&backend, 8080));
        assert_eq!(g.stats().inferred, 1);
        let to_svc: Vec<_> = g.edges().into_iter().filter(|e| e.1 == svc).collect();
        assert_eq!(g.stats().records, 8);
        assert_eq!(to_svc.len(), 1);
        assert_eq!((to_svc[0].3.connections, to_svc[0].3.dropped), (2, 1));
        assert_eq!(g.stats().unresolved, 1);
    }

    #[test]
    fn queries_answer_neighbours_paths_blast_radius_and_subgraphs() {
        let (a, b, c, d) = (w("x", "a"), w("x", "b"), w("y", "c"), w("y", "d"));
        let mut g = ServiceGraph::default();
        g.ingest(&rec(Direction::Egress, &a, &b, 1, 80, 1));
        g.ingest(&rec(Direction::Egress, &b, &c, 2, 5432, 2));
        let mut denied = rec(Direction::Egress, &a, &d, 3, 22, 3);
        denied.verdict = Verdict::Dropped;
        g.ingest(&denied);
        g.flush(1_000 + PAIR_NS);
        let n = g.neighbours(&b);
        assert_eq!(n.len(), 2);
        assert!(n.iter().any(|x| x.entity == c && x.outgoing) && n.iter().any(|x| x.entity == a && !x.outgoing));
        assert_eq!(g.path(&a, &c), Some(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(g.path(&a, &d), None, "a dropped attempt is not a path");
        assert_eq!(g.path(&c, &a), None);
        // Policy: a -> b, b -> c, c -> d allowed; nothing else.
        let allowed = |x: &Entity, y: &Entity| [(&a, &b), (&b, &c), (&c, &d)].iter().any(|(p, q)| *p == x && *q == y);
        assert_eq!(g.blast_radius(&a, allowed), BTreeSet::from([b.clone(), c.clone(), d.clone()]));
        assert_eq!(g.blast_radius(&c, allowed), BTreeSet::from([d.clone()]));
        let sub = g.subgraph("y");
        assert_eq!(sub.entities(), BTreeSet::from([a.clone(), b.clone(), c.clone(), d.clone()]));
        assert_eq!(sub.edges().len(), 2, "b -> c and a -> d touch y; a -> b does not");
    }
}
