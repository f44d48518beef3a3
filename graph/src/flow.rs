//! What the graph is built from: one enriched flow record per observation
//! (a new connection or a denied attempt seen at one end).

use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_model::{Direction, Reason, Verdict};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// A node of the graph. Names are shared (`Arc<str>`): entities are cloned
/// into every record and edge, and ingestion is allocation-bound otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entity {
    /// Pods of one workload (their owning Deployment, StatefulSet or
    /// DaemonSet; a bare pod is its own workload).
    Workload {
        /// Namespace.
        namespace: Arc<str>,
        /// Owner kind, e.g. "Deployment", or "Pod".
        kind: Arc<str>,
        /// Owner name.
        name: Arc<str>,
    },
    /// A service whose backend was not observed (e.g. the connection was
    /// dropped before reaching one).
    Service {
        /// Namespace.
        namespace: Arc<str>,
        /// Name.
        name: Arc<str>,
    },
    /// Addresses outside the cluster, aggregated to a prefix.
    World {
        /// The aggregate.
        cidr: IpNetwork,
    },
    /// A node.
    Host {
        /// Node name.
        node: Arc<str>,
    },
}

impl Entity {
    /// The namespace, for workloads and services.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Entity::Workload { namespace, .. } | Entity::Service { namespace, .. } => Some(namespace),
            Entity::World { .. } | Entity::Host { .. } => None,
        }
    }
}

/// The service a connection was addressed to, when it went to a ClusterIP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// The service port the client connected to.
    pub port: u16,
}

/// One observation of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// When the connection started (or the attempt was denied), in nanoseconds since the epoch.
    pub time_ns: i64,
    /// Which end saw it: the source's egress or the destination's ingress.
    pub observation: Direction,
    /// The node that saw it.
    pub node: String,
    /// Source entity.
    pub src: Entity,
    /// Destination entity as the observing end knows it: a workload, or a
    /// service when the source saw only a ClusterIP.
    pub dst: Entity,
    /// Source address.
    pub src_ip: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address as observed: the ClusterIP when the source
    /// addressed a service, the pod's own address at the destination.
    pub dst_ip: IpAddr,
    /// Destination port as observed (the service port before DNAT).
    pub dst_port: u16,
    /// IANA protocol number.
    pub protocol: u8,
    /// The service, when the destination was a ClusterIP.
    pub service: Option<ServiceRef>,
    /// What happened.
    pub verdict: Verdict,
    /// Bytes in both directions so far.
    pub bytes: u64,
    /// The source pod ("namespace/name") at flow time, if a pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_pod: String,
    /// The destination pod at flow time, if a pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dst_pod: String,
    /// For a connection addressed to a service whose backends all belong to
    /// one workload: that workload and the target port. Used when the
    /// backend's own observation never comes (it was not watched yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<(Entity, u16)>,
    /// The policy rule that decided the verdict at the observing end, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// Why it was dropped (or would have been, in audit), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<Reason>,
    /// Packets in both directions so far.
    #[serde(default)]
    pub packets: u64,
}
