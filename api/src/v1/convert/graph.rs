//! The service graph, its difference between windows, and the blast radius.

use super::enums::{level, node_kind};
use super::{ConvertError, list, optional_enum, port, required, to_pb};
use crate::controller::v1 as pb;
use crate::v1::graph::{
    Allowed, AllowedEdge, AllowedQuery, BlastRadius, Graph, GraphDiff, GraphDiffQuery, GraphEdge, GraphNode, GraphQuery,
};

impl From<GraphNode> for pb::GraphNode {
    fn from(n: GraphNode) -> Self {
        Self {
            id: n.id,
            kind: pb::NodeKind::from(n.kind) as i32,
            namespace: n.namespace,
            name: n.name,
            workload_kind: n.workload_kind,
            redacted: n.redacted,
        }
    }
}

impl TryFrom<pb::GraphNode> for GraphNode {
    type Error = ConvertError;
    fn try_from(n: pb::GraphNode) -> Result<Self, ConvertError> {
        Ok(Self {
            id: n.id,
            kind: node_kind(n.kind, "kind")?,
            namespace: n.namespace,
            name: n.name,
            workload_kind: n.workload_kind,
            redacted: n.redacted,
        })
    }
}

impl From<GraphEdge> for pb::GraphEdge {
    fn from(e: GraphEdge) -> Self {
        Self {
            source: e.source,
            destination: e.destination,
            protocol: e.protocol,
            port: u32::from(e.port),
            service: e.service,
            connections: e.connections,
            forwarded: e.forwarded,
            dropped: e.dropped,
            audit: e.audit,
            bytes: e.bytes,
            first_seen_ns: e.first_seen_ns,
            last_seen_ns: e.last_seen_ns,
            folded: e.folded,
        }
    }
}

impl TryFrom<pb::GraphEdge> for GraphEdge {
    type Error = ConvertError;
    fn try_from(e: pb::GraphEdge) -> Result<Self, ConvertError> {
        Ok(Self {
            source: e.source,
            destination: e.destination,
            protocol: e.protocol,
            port: port(e.port, "port")?,
            service: e.service,
            connections: e.connections,
            forwarded: e.forwarded,
            dropped: e.dropped,
            audit: e.audit,
            bytes: e.bytes,
            first_seen_ns: e.first_seen_ns,
            last_seen_ns: e.last_seen_ns,
            folded: e.folded,
        })
    }
}

impl From<Graph> for pb::Graph {
    fn from(g: Graph) -> Self {
        Self {
            level: pb::Level::from(g.level) as i32,
            since_ns: g.since_ns,
            until_ns: g.until_ns,
            nodes: to_pb(g.nodes),
            edges: to_pb(g.edges),
        }
    }
}

impl TryFrom<pb::Graph> for Graph {
    type Error = ConvertError;
    fn try_from(g: pb::Graph) -> Result<Self, ConvertError> {
        Ok(Self {
            level: level(g.level, "level")?,
            since_ns: g.since_ns,
            until_ns: g.until_ns,
            nodes: list(g.nodes, "nodes")?,
            edges: list(g.edges, "edges")?,
        })
    }
}

impl From<GraphDiff> for pb::GraphDiff {
    fn from(d: GraphDiff) -> Self {
        Self {
            level: pb::Level::from(d.level) as i32,
            new: to_pb(d.new),
            vanished: to_pb(d.vanished),
            nodes: to_pb(d.nodes),
        }
    }
}

impl TryFrom<pb::GraphDiff> for GraphDiff {
    type Error = ConvertError;
    fn try_from(d: pb::GraphDiff) -> Result<Self, ConvertError> {
        Ok(Self {
            level: level(d.level, "level")?,
            new: list(d.new, "new")?,
            vanished: list(d.vanished, "vanished")?,
            nodes: list(d.nodes, "nodes")?,
        })
    }
}

impl From<GraphQuery> for pb::GraphQuery {
    fn from(q: GraphQuery) -> Self {
        Self {
            level: q.level.map(|l| pb::Level::from(l) as i32),
            namespace: q.namespace,
            since: q.since,
            until: q.until,
        }
    }
}

impl TryFrom<pb::GraphQuery> for GraphQuery {
    type Error = ConvertError;
    fn try_from(q: pb::GraphQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            level: optional_enum(q.level, "level", level)?,
            namespace: q.namespace,
            since: q.since,
            until: q.until,
        })
    }
}

impl From<GraphDiffQuery> for pb::GraphDiffQuery {
    fn from(q: GraphDiffQuery) -> Self {
        Self {
            level: q.level.map(|l| pb::Level::from(l) as i32),
            namespace: q.namespace,
            since: q.since,
            until: q.until,
            then_until: q.then_until,
        }
    }
}

impl TryFrom<pb::GraphDiffQuery> for GraphDiffQuery {
    type Error = ConvertError;
    fn try_from(q: pb::GraphDiffQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            level: optional_enum(q.level, "level", level)?,
            namespace: q.namespace,
            since: q.since,
            until: q.until,
            then_until: q.then_until,
        })
    }
}

impl From<BlastRadius> for pb::BlastRadius {
    fn from(b: BlastRadius) -> Self {
        Self { from: Some(b.from.into()), reachable: to_pb(b.reachable) }
    }
}

impl TryFrom<pb::BlastRadius> for BlastRadius {
    type Error = ConvertError;
    fn try_from(b: pb::BlastRadius) -> Result<Self, ConvertError> {
        Ok(Self { from: required(b.from, "from")?, reachable: list(b.reachable, "reachable")? })
    }
}

impl From<AllowedEdge> for pb::AllowedEdge {
    fn from(e: AllowedEdge) -> Self {
        Self {
            source: e.source,
            destination: e.destination,
            protocol: e.protocol,
            port: u32::from(e.port),
            observed: e.observed,
        }
    }
}

impl TryFrom<pb::AllowedEdge> for AllowedEdge {
    type Error = ConvertError;
    fn try_from(e: pb::AllowedEdge) -> Result<Self, ConvertError> {
        Ok(Self {
            source: e.source,
            destination: e.destination,
            protocol: e.protocol,
            port: port(e.port, "port")?,
            observed: e.observed,
        })
    }
}

impl From<Allowed> for pb::Allowed {
    fn from(a: Allowed) -> Self {
        Self { nodes: to_pb(a.nodes), edges: to_pb(a.edges) }
    }
}

impl TryFrom<pb::Allowed> for Allowed {
    type Error = ConvertError;
    fn try_from(a: pb::Allowed) -> Result<Self, ConvertError> {
        Ok(Self { nodes: list(a.nodes, "nodes")?, edges: list(a.edges, "edges")? })
    }
}

impl From<AllowedQuery> for pb::AllowedQuery {
    fn from(q: AllowedQuery) -> Self {
        Self { namespace: q.namespace }
    }
}

impl TryFrom<pb::AllowedQuery> for AllowedQuery {
    type Error = ConvertError;
    fn try_from(q: pb::AllowedQuery) -> Result<Self, ConvertError> {
        Ok(Self { namespace: q.namespace })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::graph::{Level, NodeKind};

    fn node(id: &str, kind: NodeKind) -> GraphNode {
        GraphNode {
            id: id.into(),
            kind,
            namespace: Some("shop".into()),
            name: id.into(),
            workload_kind: Some("Deployment".into()),
            redacted: kind == NodeKind::Namespace,
        }
    }

    fn edge(port: u16) -> GraphEdge {
        GraphEdge {
            source: "workload:shop/Deployment/web".into(),
            destination: "world:192.0.2.0/24".into(),
            protocol: "TCP".into(),
            port,
            service: Some("shop/db:5432".into()),
            connections: 10,
            forwarded: 7,
            dropped: 2,
            audit: 1,
            bytes: 4096,
            first_seen_ns: 1,
            last_seen_ns: 2,
            folded: port == 0,
        }
    }

    #[test]
    fn graphs_round_trip() -> Result<(), ConvertError> {
        let graph = Graph {
            level: Level::Pod,
            since_ns: Some(-5),
            until_ns: None,
            nodes: vec![node("a", NodeKind::Pod), node("ns", NodeKind::Namespace), node("w", NodeKind::World)],
            edges: vec![edge(443), edge(0)],
        };
        assert_eq!(Graph::try_from(pb::Graph::from(graph.clone()))?, graph);
        let diff = GraphDiff {
            level: Level::Namespace,
            new: vec![edge(80)],
            vanished: vec![edge(81)],
            nodes: vec![node("b", NodeKind::Service)],
        };
        assert_eq!(GraphDiff::try_from(pb::GraphDiff::from(diff.clone()))?, diff);
        let blast = BlastRadius { from: node("a", NodeKind::Workload), reachable: vec![node("h", NodeKind::Host)] };
        assert_eq!(BlastRadius::try_from(pb::BlastRadius::from(blast.clone()))?, blast);
        Ok(())
    }

    #[test]
    fn graph_queries_round_trip() -> Result<(), ConvertError> {
        let q = GraphQuery {
            level: Some(Level::Workload),
            namespace: Some("shop".into()),
            since: Some("15m".into()),
            until: None,
        };
        assert_eq!(GraphQuery::try_from(pb::GraphQuery::from(q.clone()))?, q);
        assert_eq!(GraphQuery::try_from(pb::GraphQuery::from(GraphQuery::default()))?, GraphQuery::default());
        let d = GraphDiffQuery {
            level: None,
            namespace: Some("shop".into()),
            since: "2h".into(),
            until: "1h".into(),
            then_until: Some("now".into()),
        };
        assert_eq!(GraphDiffQuery::try_from(pb::GraphDiffQuery::from(d.clone()))?, d);
        Ok(())
    }
}
