//! What the controller knows of the cluster: namespaces, pods, workloads
//! and services, as policy and flows see them.

use std::collections::BTreeMap;

use bulkhead_model::Mode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The mode its `bulkhead.dev/mode` annotation sets, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// The workload a pod belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct WorkloadRef {
    /// Namespace.
    pub namespace: String,
    /// Owner kind: Deployment, StatefulSet, DaemonSet, or Pod for a bare pod.
    pub kind: String,
    /// Owner name.
    pub name: String,
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// Its addresses.
    pub ips: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its workload.
    pub workload: WorkloadRef,
    /// The mode its policy is applied in.
    pub mode: Mode,
    /// Whether a quarantine cuts it off now.
    pub quarantined: bool,
}

/// A workload and its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workload {
    /// Namespace, kind and name.
    #[serde(flatten)]
    pub workload: WorkloadRef,
    /// Its pods' names.
    pub pods: Vec<String>,
    /// Labels all its pods share.
    pub labels: BTreeMap<String, String>,
}

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServicePort {
    /// Port name, if any.
    pub name: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The service port.
    pub port: u16,
    /// The target port on the backends: a number or a container port name.
    pub target_port: String,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its ClusterIPs.
    pub cluster_ips: Vec<String>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
}

/// Filters of the pod list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PodQuery {
    /// Only pods of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only pods of this workload (its name, or "namespace/name").
    #[serde(default)]
    pub workload: Option<String>,
    /// Only pods whose name contains this.
    #[serde(default)]
    pub pod: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}
