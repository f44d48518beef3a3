//! The service graph: who talks to whom, stored as a petgraph of entities
//! with per-key edge statistics, and the queries over it (neighbours,
//! paths, blast radius, namespace subgraphs). What counts as one connection
//! is decided before, by `pairing`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use petgraph::Direction as Dir;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::flow::{Entity, FlowRecord, ServiceRef};
use bulkhead_model::Verdict;

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

impl EdgeKey {
    /// The scan edge: the key every further port between two entities past
    /// the limit is counted under (port 0, which no connection addresses), so
    /// a flood over every port costs one edge, not one per port.
    pub fn folded(protocol: u8) -> Self {
        Self { protocol, port: 0, service: None }
    }

    /// Whether this key is the scan edge of its protocol.
    pub fn is_folded(&self) -> bool {
        self.port == 0 && bulkhead_model::proto::has_ports(self.protocol)
    }
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

/// The service graph.
#[derive(Debug, Clone, Default)]
pub struct ServiceGraph {
    graph: StableDiGraph<Entity, BTreeMap<EdgeKey, EdgeStats>>,
    index: FxHashMap<Entity, NodeIndex>,
}

impl ServiceGraph {
    fn node(&mut self, e: &Entity) -> NodeIndex {
        if let Some(i) = self.index.get(e) {
            return *i;
        }
        let i = self.graph.add_node(e.clone());
        self.index.insert(e.clone(), i);
        i
    }

    fn edge(&mut self, src: &Entity, dst: &Entity) -> Option<&mut BTreeMap<EdgeKey, EdgeStats>> {
        let (a, b) = (self.node(src), self.node(dst));
        let edge = match self.graph.find_edge(a, b) {
            Some(e) => e,
            None => self.graph.add_edge(a, b, BTreeMap::new()),
        };
        self.graph.edge_weight_mut(edge)
    }

    /// Counts one connection, as pairing emitted it, on the edge from its
    /// source to its destination.
    pub fn add(&mut self, r: &FlowRecord, key: &EdgeKey) {
        if let Some(edges) = self.edge(&r.src, &r.dst) {
            match edges.get_mut(key) {
                Some(stats) => stats.add(r),
                None => edges.entry(key.clone()).or_default().add(r),
            }
        }
    }

    /// The key to count a connection under: its own, unless `src` and `dst`
    /// already have `limit` keys of its protocol and this is a new one, which
    /// then folds into that protocol's scan edge. Memory grows with entities,
    /// not with ports tried.
    pub fn fold(&self, src: &Entity, dst: &Entity, key: &EdgeKey, limit: usize) -> EdgeKey {
        if !bulkhead_model::proto::has_ports(key.protocol) {
            return key.clone();
        }
        let edges = match (self.index.get(src), self.index.get(dst)) {
            (Some(a), Some(b)) => self.graph.find_edge(*a, *b).and_then(|e| self.graph.edge_weight(e)),
            _ => None,
        };
        match edges {
            Some(edges)
                if edges.len() >= limit
                    && !edges.contains_key(key)
                    && edges.keys().filter(|k| k.protocol == key.protocol && !k.is_folded()).count() >= limit =>
            {
                EdgeKey::folded(key.protocol)
            }
            _ => key.clone(),
        }
    }

    /// Adds an entity without edges (a workload not seen in flows yet), so
    /// queries such as the blast radius consider it.
    pub fn add_entity(&mut self, e: &Entity) {
        self.node(e);
    }

    /// Merges stored counts into an edge (rebuilding the graph after a restart).
    pub fn add_stats(&mut self, src: &Entity, dst: &Entity, key: EdgeKey, stats: &EdgeStats) {
        if let Some(edges) = self.edge(src, dst) {
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
        let mut sub = ServiceGraph::default();
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
    use crate::pairing::PAIR_NS;
    use crate::pairing::tests::{Paired, rec, w};
    use bulkhead_model::Direction;

    #[test]
    fn queries_answer_neighbours_paths_blast_radius_and_subgraphs() {
        let (a, b, c, d) = (w("x", "a"), w("x", "b"), w("y", "c"), w("y", "d"));
        let mut g = Paired::default();
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

    #[test]
    fn ports_past_the_limit_fold_into_one_scan_edge_that_keeps_the_counts() {
        let (a, b, c) = (w("x", "a"), w("x", "b"), w("x", "c"));
        let mut g = ServiceGraph::default();
        for port in 1..=1000u16 {
            let r = rec(Direction::Egress, &a, &b, 40000, port, i64::from(port));
            let key = g.fold(&r.src, &r.dst, &EdgeKey { protocol: 6, port, service: None }, 8);
            g.add(&r, &key);
        }
        // an edge a already had keeps its own key; another pair is untouched
        let known = EdgeKey { protocol: 6, port: 3, service: None };
        assert_eq!(g.fold(&a, &b, &known, 8), known);
        let other = EdgeKey { protocol: 6, port: 999, service: None };
        assert_eq!(g.fold(&a, &c, &other, 8), other);
        // ICMP has no ports to fold; UDP has its own limit
        let icmp = EdgeKey { protocol: 1, port: 0, service: None };
        assert!(!icmp.is_folded());
        let dns = EdgeKey { protocol: 17, port: 53, service: None };
        assert_eq!(g.fold(&a, &b, &dns, 8), dns);
        let edges = g.edges();
        assert_eq!(edges.len(), 9, "8 ports and the scan edge");
        let (_, _, k, s) = edges.iter().find(|e| e.2.is_folded()).unwrap();
        assert_eq!((k.port, s.connections, s.first_seen_ns, s.last_seen_ns), (0, 992, 9, 1000));
        assert_eq!(edges.iter().map(|e| e.3.connections).sum::<u64>(), 1000, "no connection lost");
    }
}
