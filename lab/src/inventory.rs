//! What the lab's controller reads: the lab as Kubernetes objects. Pods
//! carry only what the API server would know after scheduling (node name,
//! addresses), so the agents find them from their addresses as on a real
//! node; nodes carry their fabric address; policies pass through as written.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::LabError;
use crate::state::LabState;

/// Cluster name the lab's identities carry.
pub const CLUSTER: &str = "lab";

fn objects(lab: &LabState, policies: &[serde_yaml::Value]) -> Result<Vec<Value>, LabError> {
    let mut out = Vec::new();
    for (name, labels) in &lab.namespaces {
        let annotations = lab.namespace_annotations.get(name).cloned().unwrap_or_default();
        out.push(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
        }));
    }
    for n in &lab.nodes {
        out.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name},
            "status": {"addresses": [{"type": "InternalIP", "address": n.node_ip.to_string()}]},
        }));
    }
    for p in &lab.pods {
        let node = lab.nodes.iter().find(|n| n.index == p.node).map(|n| n.name.clone()).unwrap_or_default();
        let annotations = p.annotations.clone();
        let owners = match p.owner.as_deref().and_then(|o| o.split_once('/')) {
            Some((kind, name)) => {
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("{}/{kind}/{name}", p.namespace), "controller": true}])
            }
            None => json!([]),
        };
        let ips: Vec<Value> = p.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        let containers = if p.containers.as_array().is_some_and(|a| !a.is_empty()) {
            p.containers.clone()
        } else {
            json!([{"name": "main"}])
        };
        out.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": p.name, "namespace": p.namespace, "labels": p.labels, "annotations": annotations,
                "uid": format!("{}-{}", p.key(), p.endpoint_id), "ownerReferences": owners,
            },
            "spec": {"nodeName": node, "containers": containers},
            "status": {"phase": "Running", "podIP": p.ips.first().map(|i| i.to_string()), "podIPs": ips},
        }));
    }
    for svc in &lab.services {
        let ports: Vec<Value> = svc
            .ports
            .iter()
            .map(|p| {
                let target = match &p.target {
                    crate::services::Target::Number(n) => json!(n),
                    crate::services::Target::Named(n) => json!(n),
                };
                let mut port =
                    json!({"port": p.port, "targetPort": target, "protocol": if p.udp { "UDP" } else { "TCP" }});
                if !p.name.is_empty() {
                    port["name"] = json!(p.name);
                }
                if let Some(n) = p.node_port {
                    port["nodePort"] = json!(n);
                }
                if let Some(a) = &p.app_protocol {
                    port["appProtocol"] = json!(a);
                }
                port
            })
            .collect();
        let kind = match svc.kind {
            crate::services::Kind::ClusterIP => "ClusterIP",
            crate::services::Kind::NodePort => "NodePort",
            crate::services::Kind::LoadBalancer => "LoadBalancer",
        };
        let cluster_ip = if svc.headless { "None".to_string() } else { svc.cluster_ip.to_string() };
        let mut spec = json!({"type": kind, "selector": svc.selector, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports});
        if svc.kind != crate::services::Kind::ClusterIP {
            spec["externalTrafficPolicy"] = json!(if svc.local_traffic { "Local" } else { "Cluster" });
        }
        let ingress: Vec<Value> = svc.load_balancer_ip.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        out.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc.name, "namespace": svc.namespace},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": ingress}},
        }));
    }
    for doc in policies {
        out.push(serde_json::to_value(doc).map_err(|e| LabError::Invalid(format!("policy document: {e}")))?);
    }
    Ok(out)
}

/// Writes the inventory directory and returns its path.
pub fn write(lab: &LabState, policies: &[serde_yaml::Value]) -> Result<PathBuf, LabError> {
    let dir = crate::state::dir(&lab.name).join("inventory");
    std::fs::create_dir_all(&dir).map_err(|source| LabError::Io { action: "creating", path: dir.clone(), source })?;
    let mut text = String::new();
    for o in objects(lab, policies)? {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(&o).map_err(|e| LabError::Invalid(e.to_string()))?);
        text.push('\n');
    }
    let file: &Path = &dir.join("cluster.yaml");
    std::fs::write(file, text).map_err(|source| LabError::Io {
        action: "writing",
        path: file.to_path_buf(),
        source,
    })?;
    Ok(dir)
}
