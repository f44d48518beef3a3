//! Read-only views of the pipeline for the API: filtered flows, the graph
//! (with world addresses aggregated), and baselines with anomalies.

use std::collections::BTreeMap;

use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord};
use ipnetwork::IpNetwork;
use serde::Serialize;

use super::Pipeline;
use crate::observation::storage::{FlowFilter, PodEdge, StorageError};

/// One edge of the graph view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeView {
    /// Source.
    pub src: Entity,
    /// Destination.
    pub dst: Entity,
    /// Protocol, delivered port, service.
    #[serde(flatten)]
    pub key: EdgeKey,
    /// Counts.
    #[serde(flatten)]
    pub stats: EdgeStats,
}

/// The graph as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GraphView {
    /// Entities.
    pub nodes: Vec<Entity>,
    /// Edges.
    pub edges: Vec<EdgeView>,
}

/// World addresses shown as their /24 (IPv4) or /64 (IPv6).
pub fn aggregate(e: Entity) -> Entity {
    match e {
        Entity::World { cidr } => {
            let prefix = if cidr.is_ipv4() { 24 } else { 64 };
            let net = IpNetwork::new(cidr.ip(), prefix).ok().and_then(|n| IpNetwork::new(n.network(), prefix).ok());
            Entity::World { cidr: net.unwrap_or(cidr) }
        }
        other => other,
    }
}

impl Pipeline {
    /// Stored flows passing `f`, newest first, with their ids: at most
    /// `limit` below id `before`.
    pub fn query_flows(
        &self,
        f: &FlowFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, FlowRecord)>, StorageError> {
        self.store().query(f, before, limit)
    }

    /// Connections between pods passing `f`.
    pub fn pod_edges(&self, f: &FlowFilter) -> Result<Vec<PodEdge>, StorageError> {
        self.store().pod_edges(f)
    }

    /// The workload graph over `[since, until)` (from the stored per-minute
    /// counts), or over everything seen when neither is given (the graph in
    /// memory); of a namespace, if given.
    pub fn graph_view_between(
        &self,
        namespace: Option<&str>,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<GraphView, StorageError> {
        if since_ns.is_none() && until_ns.is_none() {
            return Ok(self.graph_view(namespace));
        }
        let (from, to) = (since_ns.unwrap_or(i64::MIN), until_ns.unwrap_or(i64::MAX));
        // Buckets are a minute wide: take those the window overlaps.
        let mut g = bulkhead_graph::ServiceGraph::default();
        for b in self.store().edges(from - from.rem_euclid(super::BUCKET_NS), to)? {
            g.add_stats(&b.src, &b.dst, b.key, &b.stats);
        }
        Ok(view(&g, namespace))
    }

    /// The graph (of a namespace, if given).
    pub fn graph_view(&self, namespace: Option<&str>) -> GraphView {
        view(self.graph(), namespace)
    }
}

/// `graph` as the API shows it: world addresses per /24 or /64, an edge
/// whose source end was not seen folded into the one edge that names the
/// service, when there is exactly one.
fn view(graph: &bulkhead_graph::ServiceGraph, namespace: Option<&str>) -> GraphView {
    let sub;
    let g = match namespace {
        Some(ns) => {
            sub = graph.subgraph(ns);
            &sub
        }
        None => graph,
    };
    let mut edges: BTreeMap<(Entity, Entity, EdgeKey), EdgeStats> = BTreeMap::new();
    for (src, dst, key, stats) in g.edges() {
        edges.entry((aggregate(src), aggregate(dst), key)).or_default().merge(&stats);
    }
    // A connection seen only at its destination does not know the
    // service its source addressed: fold it into the edge that does,
    // when there is exactly one.
    // One pass to index the named edges by their ends, protocol and port
    // (comparing every unnamed edge with every edge is quadratic: minutes
    // at 50 000 edges).
    let mut named: BTreeMap<(Entity, Entity, u8, u16), Vec<EdgeKey>> = BTreeMap::new();
    let mut unnamed: Vec<(Entity, Entity, EdgeKey)> = Vec::new();
    for (src, dst, key) in edges.keys() {
        match key.service {
            Some(_) => named.entry((src.clone(), dst.clone(), key.protocol, key.port)).or_default().push(key.clone()),
            None => unnamed.push((src.clone(), dst.clone(), key.clone())),
        }
    }
    for k in unnamed {
        if let Some([one]) = named.get(&(k.0.clone(), k.1.clone(), k.2.protocol, k.2.port)).map(Vec::as_slice) {
            let one = (k.0.clone(), k.1.clone(), one.clone());
            if let Some(stats) = edges.remove(&k)
                && let Some(e) = edges.get_mut(&one)
            {
                e.merge(&stats);
            }
        }
    }
    let mut nodes: Vec<Entity> = g.entities().into_iter().map(aggregate).collect();
    nodes.sort();
    nodes.dedup();
    GraphView {
        nodes,
        edges: edges.into_iter().map(|((src, dst, key), stats)| EdgeView { src, dst, key, stats }).collect(),
    }
}
