//! What a running lab consists of, persisted so `down`, `probe` and `exec`
//! work from any later command, and so `down` can clean up after a crash.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::manifest::PortSpec;

/// Root of every lab's runtime files.
pub const LABS_DIR: &str = "/run/bulkhead/labs";

/// One pod as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    /// Kubernetes namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Index of the node the pod runs on, from 1.
    pub node: usize,
    /// Name of the pod's network namespace (under `ip netns`).
    pub netns: String,
    /// Addresses the CNI assigned, IPv4 first.
    pub ips: Vec<IpAddr>,
    /// Ports the pod's server listens on.
    pub ports: Vec<PortSpec>,
    /// Process id of the pod's server; `None` if the pod serves no ports.
    pub server_pid: Option<i32>,
    /// Container id given to the CNI plugin; needed again for DEL.
    pub container_id: String,
    /// Stable for the pod's lifetime and never reused in this lab, so a
    /// quarantine can never move to another pod.
    #[serde(default)]
    pub endpoint_id: u32,
    /// Pod annotations, passed to the controller.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The pod's `spec.containers` as written in the manifest.
    #[serde(default)]
    pub containers: serde_json::Value,
    /// The workload owning the pod ("Deployment/name"), if any.
    #[serde(default)]
    pub owner: Option<String>,
}

impl PodState {
    /// "namespace/name".
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One node as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Node number, from 1.
    pub index: usize,
    /// Node name, "<lab>_n<index>".
    pub name: String,
    /// Name of the node's network namespace (under `ip netns`).
    pub netns: String,
    /// Process id of the node's agent, once started.
    pub agent_pid: Option<i32>,
    /// The agent's gRPC Unix socket.
    pub socket: PathBuf,
    /// The node's block of the IPv4 pod CIDR, e.g. 10.244.0.0/17.
    pub pod_cidr_v4: String,
    /// The gateway of the node's block (kept off addresses pods ask for).
    #[serde(default)]
    pub gateway_v4: String,
    /// The node's IPv6 pod CIDR, e.g. fd00:10:244:1::/64.
    pub pod_cidr_v6: String,
    /// The node's address on the lab fabric, 172.30.0.<index>.
    pub node_ip: IpAddr,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// Name of the lab.
    pub name: String,
    /// CNI plugin the pods were built with: "bridge" or "ptp".
    pub cni: String,
    /// Nodes of the lab.
    pub nodes: Vec<NodeState>,
    /// Pods of the lab, on every node.
    pub pods: Vec<PodState>,
    /// Labels of each namespace, by namespace name.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Annotations of each namespace, by namespace name.
    #[serde(default)]
    pub namespace_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// Number of policy documents the lab was brought up with.
    #[serde(default)]
    pub policies: usize,
    /// Mode of pods without a bulkhead.dev/mode annotation: learn, audit or enforce.
    pub default_mode: String,
    /// The controller's learning window and quiet period, seconds (0: its defaults).
    #[serde(default)]
    pub learn: (u64, u64),
    /// More arguments the controller runs with.
    #[serde(default)]
    pub controller_args: Vec<String>,
    /// More arguments every agent runs with.
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// Services with their ClusterIPs.
    #[serde(default)]
    pub services: Vec<crate::services::ServiceState>,
    /// Process id of the lab's controller, once started.
    #[serde(default)]
    pub controller_pid: Option<i32>,
    /// Generation of the desired state last pushed to the agents.
    pub generation: u64,
    /// The last endpoint id handed out; ids are never reused.
    #[serde(default)]
    pub last_endpoint_id: u32,
    /// The IPv4 pod CIDR the nodes' slices are cut from.
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: String,
    /// The controller's HTTPS API.
    #[serde(default)]
    pub api: Option<crate::api::LabApi>,
}

fn default_pod_cidr() -> String {
    crate::cidr::DEFAULT.to_string()
}

/// The lab's runtime directory.
pub fn dir(lab: &str) -> PathBuf {
    Path::new(LABS_DIR).join(lab)
}

impl LabState {
    /// Loads a running lab's state.
    pub fn load(lab: &str) -> Result<Self, LabError> {
        let path = dir(lab).join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|_| LabError::NotUp(lab.to_string()))?;
        serde_json::from_str(&text).map_err(|e| LabError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Saves atomically (write then rename).
    pub fn save(&self) -> Result<(), LabError> {
        let d = dir(&self.name);
        std::fs::create_dir_all(&d).map_err(|source| LabError::Io {
            action: "creating lab dir",
            path: d.clone(),
            source,
        })?;
        let tmp = d.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::Invalid(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|source| LabError::Io {
            action: "writing lab state",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, d.join("state.json")).map_err(|source| LabError::Io {
            action: "saving lab state",
            path: tmp,
            source,
        })
    }

    /// The controller's API socket.
    pub fn controller_socket(&self) -> PathBuf {
        dir(&self.name).join("controller.sock")
    }

    /// A pod by "ns/name" (or bare name when unique).
    pub fn pod(&self, key: &str) -> Result<&PodState, LabError> {
        if let Some(p) = self.pods.iter().find(|p| p.key() == key) {
            return Ok(p);
        }
        let mut matches = self.pods.iter().filter(|p| p.name == key);
        match (matches.next(), matches.next()) {
            (Some(p), None) => Ok(p),
            _ => Err(LabError::UnknownPod(key.to_string())),
        }
    }
}
