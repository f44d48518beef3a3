//! Domain values as API documents, as a principal may see them: an end
//! outside a tenant's namespaces shows only its namespace (no pod, name,
//! address, rule or service).

use std::net::IpAddr;

use bulkhead_api::v1::flows::{Flow, Peer, PeerKind, ServiceRef};
use bulkhead_api::v1::graph::{GraphEdge, GraphNode, Level, NodeKind};
use bulkhead_api::v1::inventory::WorkloadRef;
use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord};
use bulkhead_model::proto;

use crate::auth::Scope;

/// Whether `scope` may see the details of `e`: entities outside namespaces
/// (the world, nodes) are visible to everyone.
pub fn visible(scope: &Scope, e: &Entity) -> bool {
    e.namespace().is_none_or(|ns| scope.contains(ns))
}

/// The workload of an entity, if it is one.
pub fn workload_ref(e: &Entity) -> Option<WorkloadRef> {
    match e {
        Entity::Workload { namespace, kind, name } => {
            Some(WorkloadRef { namespace: namespace.to_string(), kind: kind.to_string(), name: name.to_string() })
        }
        _ => None,
    }
}

/// An end of a flow.
pub fn peer(scope: &Scope, e: &Entity, pod: &str, ip: IpAddr) -> Peer {
    if !visible(scope, e) {
        return Peer {
            kind: PeerKind::Namespace,
            namespace: e.namespace().map(str::to_string),
            workload_kind: None,
            name: None,
            pod: None,
            ip: None,
        };
    }
    let pod_name = pod.split_once('/').map(|(_, n)| n.to_string()).filter(|n| !n.is_empty());
    let (kind, namespace, workload_kind, name) = match e {
        Entity::Workload { namespace, kind, name } => {
            (PeerKind::Workload, Some(namespace.to_string()), Some(kind.to_string()), Some(name.to_string()))
        }
        Entity::Service { namespace, name } => {
            (PeerKind::Service, Some(namespace.to_string()), None, Some(name.to_string()))
        }
        Entity::World { .. } => (PeerKind::World, None, None, None),
        Entity::Host { node } => (PeerKind::Host, None, None, Some(node.to_string())),
    };
    Peer { kind, namespace, workload_kind, name, pod: pod_name, ip: Some(ip.to_string()) }
}

/// A stored or live flow.
pub fn flow(scope: &Scope, id: u64, f: &FlowRecord) -> Flow {
    // The rule belongs to the observing end's namespace.
    let observer = match f.observation {
        bulkhead_model::Direction::Egress => &f.src,
        bulkhead_model::Direction::Ingress => &f.dst,
    };
    Flow {
        id,
        time_ns: f.time_ns,
        node: f.node.clone(),
        observation: f.observation,
        source: peer(scope, &f.src, &f.src_pod, f.src_ip),
        destination: peer(scope, &f.dst, &f.dst_pod, f.dst_ip),
        protocol: proto::name(f.protocol),
        src_port: f.src_port,
        dst_port: f.dst_port,
        service: f.service.as_ref().filter(|s| scope.contains(&s.namespace)).map(|s| ServiceRef {
            namespace: s.namespace.to_string(),
            name: s.name.to_string(),
            port: s.port,
        }),
        verdict: f.verdict,
        drop_reason: f.drop_reason,
        rule: f.rule.as_ref().filter(|_| visible(scope, observer)).map(|r| r.to_string()),
        bytes: f.bytes,
        packets: f.packets,
    }
}

/// A node of the graph at `level`; `pod` is the pod at the pod level.
pub fn node(scope: &Scope, level: Level, e: &Entity, pod: &str) -> GraphNode {
    let ns = e.namespace().map(str::to_string);
    if !visible(scope, e) || (level == Level::Namespace && ns.is_some()) {
        let n = ns.clone().unwrap_or_default();
        return GraphNode {
            id: format!("namespace:{n}"),
            kind: NodeKind::Namespace,
            namespace: ns,
            name: n,
            workload_kind: None,
            redacted: !visible(scope, e),
        };
    }
    match e {
        Entity::Workload { namespace, kind, name } if level == Level::Pod && !pod.is_empty() => {
            let pod_name = pod.split_once('/').map_or(pod, |(_, n)| n);
            GraphNode {
                id: format!("pod:{namespace}/{pod_name}"),
                kind: NodeKind::Pod,
                namespace: ns,
                name: pod_name.to_string(),
                workload_kind: Some(format!("{kind}/{name}")),
                redacted: false,
            }
        }
        Entity::Workload { namespace, kind, name } => GraphNode {
            id: format!("workload:{namespace}/{kind}/{name}"),
            kind: NodeKind::Workload,
            namespace: ns,
            name: name.to_string(),
            workload_kind: Some(kind.to_string()),
            redacted: false,
        },
        Entity::Service { namespace, name } => GraphNode {
            id: format!("service:{namespace}/{name}"),
            kind: NodeKind::Service,
            namespace: ns,
            name: name.to_string(),
            workload_kind: None,
            redacted: false,
        },
        Entity::World { cidr } => GraphNode {
            id: format!("world:{cidr}"),
            kind: NodeKind::World,
            namespace: None,
            name: cidr.to_string(),
            workload_kind: None,
            redacted: false,
        },
        Entity::Host { node } => GraphNode {
            id: format!("host:{node}"),
            kind: NodeKind::Host,
            namespace: None,
            name: node.to_string(),
            workload_kind: None,
            redacted: false,
        },
    }
}

/// An edge between two nodes (ids), with its key and counts; the service
/// is shown only when its namespace is in scope.
pub fn edge(scope: &Scope, source: &str, destination: &str, key: &EdgeKey, s: &EdgeStats) -> GraphEdge {
    GraphEdge {
        source: source.to_string(),
        destination: destination.to_string(),
        protocol: proto::name(key.protocol),
        port: key.port,
        service: key
            .service
            .as_ref()
            .filter(|r| scope.contains(&r.namespace))
            .map(|r| format!("{}/{}:{}", r.namespace, r.name, r.port)),
        connections: s.connections,
        forwarded: s.forwarded,
        dropped: s.dropped,
        audit: s.audit,
        bytes: s.bytes,
        first_seen_ns: s.first_seen_ns,
        last_seen_ns: s.last_seen_ns,
        folded: key.is_folded(),
    }
}
