//! What a running lab consists of, persisted so `down`, `probe` and `exec`
//! work from any later command, and so `down` can clean up after a crash.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::manifest::{PortSpec, RuleSpec};

/// Root of every lab's runtime files.
pub const LABS_DIR: &str = "/run/bulkhead/labs";

/// One pod as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub node: usize,
    pub netns: String,
    pub ips: Vec<IpAddr>,
    pub ports: Vec<PortSpec>,
    pub server_pid: Option<i32>,
    pub container_id: String,
    /// Stable for the pod's lifetime and never reused in this lab, so a
    /// quarantine can never move to another pod.
    #[serde(default)]
    pub endpoint_id: u32,
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
    pub index: usize,
    pub name: String,
    pub netns: String,
    pub agent_pid: Option<i32>,
    pub socket: PathBuf,
    pub pod_cidr_v4: String,
    pub pod_cidr_v6: String,
    pub node_ip: IpAddr,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub cni: String,
    pub nodes: Vec<NodeState>,
    pub pods: Vec<PodState>,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub rules: Vec<RuleSpec>,
    pub default_mode: String,
    pub generation: u64,
    /// The last endpoint id handed out; ids are never reused.
    #[serde(default)]
    pub last_endpoint_id: u32,
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
