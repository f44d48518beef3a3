//! Reading ordinary Kubernetes YAML: Namespace, Pod and Deployment (with
//! replicas) build the lab; NetworkPolicy, ClusterNetworkPolicy and BulkheadClusterPolicy documents
//! go to the lab's controller as they are. Unknown kinds are skipped with a
//! warning; malformed ones are errors naming file, document and field.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::LabError;
use crate::services::{DNS_IP, Kind, ServicePort, ServiceState, Target};

/// Annotation giving a lab pod a special role; `dns` runs the cluster DNS server.
pub const ROLE_ANNOTATION: &str = "lab.bulkhead.dev/role";

/// A container port a pod serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PortSpec {
    /// Port number.
    pub port: u16,
    /// UDP when set, TCP otherwise (SCTP ports are `PodSpec::sctp_ports`).
    pub udp: bool,
}

/// A namespace and its labels (always including kubernetes.io/metadata.name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSpec {
    /// Namespace name.
    pub name: String,
    /// Namespace labels.
    pub labels: BTreeMap<String, String>,
    /// Namespace annotations (e.g. bulkhead.dev/mode).
    pub annotations: BTreeMap<String, String>,
}

/// One pod to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// Namespace of the pod ("default" if not given).
    pub namespace: String,
    /// Pod name; replicas of a Deployment get "-N" appended.
    pub name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// TCP and UDP container ports the pod serves.
    pub ports: Vec<PortSpec>,
    /// SCTP container ports the pod serves (see `sctp`).
    pub sctp_ports: Vec<u16>,
    /// Address requested via `status.podIP`, which also picks the node; `None` for any.
    pub fixed_ip: Option<IpAddr>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// The pod's `spec.containers`, passed to the controller as written (named ports).
    pub containers: serde_json::Value,
    /// The workload that owns the pod ("Deployment/name"), if any.
    pub owner: Option<String>,
}

/// Everything the manifests declare.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Namespaces by name, including those pods imply.
    pub namespaces: BTreeMap<String, NamespaceSpec>,
    /// Pods to create, Deployments already expanded.
    pub pods: Vec<PodSpec>,
    /// Policy documents for the controller, as written.
    pub policies: Vec<Value>,
    /// Services, ClusterIPs not yet allocated.
    pub services: Vec<ServiceState>,
}

struct Doc<'a> {
    file: &'a Path,
    index: usize,
    v: &'a Value,
}

impl Doc<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> LabError {
        LabError::Manifest {
            file: self.file.to_path_buf(),
            document: self.index,
            field: field.into(),
            message: message.into(),
        }
    }
    fn get(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self.v, |v, k| v.get(k))
    }
    fn str(&self, path: &str) -> Result<String, LabError> {
        self.get(path)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.err(path, "required string is missing"))
    }
    fn labels(&self, path: &str) -> Result<BTreeMap<String, String>, LabError> {
        labels_of(self.get(path)).map_err(|m| self.err(path, m))
    }
    fn annotations(&self, path: &str) -> Result<BTreeMap<String, String>, LabError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.get(path).and_then(Value::as_mapping).into_iter().flatten() {
            match (k.as_str(), v.as_str()) {
                (Some(k), Some(v)) if v.len() <= 256 * 1024 => out.insert(k.to_string(), v.to_string()),
                _ => return Err(self.err(path, "annotations must be strings of at most 256 KiB")),
            };
        }
        Ok(out)
    }
}

fn labels_of(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let Some(m) = v.as_mapping() else {
        return Err("must be a map of strings".into());
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let (Some(k), Some(v)) =
            (k.as_str(), v.as_str().map(str::to_string).or_else(|| v.as_bool().map(|b| b.to_string())))
        else {
            return Err("label keys and values must be strings".into());
        };
        if k.is_empty() || k.len() > 317 || v.len() > 63 {
            return Err(format!("label {k:?} has an empty or too long key, or a value over 63 characters"));
        }
        out.insert(k.to_string(), v);
    }
    if out.len() > 64 {
        return Err(format!("{} labels, at most 64", out.len()));
    }
    Ok(out)
}

/// TCP and UDP ports, and SCTP ports, of the containers.
fn ports_of(doc: &Doc<'_>, containers: Option<&Value>, field: &str) -> Result<(Vec<PortSpec>, Vec<u16>), LabError> {
    let mut out = Vec::new();
    let mut sctp = Vec::new();
    for (ci, c) in containers.and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        for (pi, p) in c.get("ports").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
            let f = format!("{field}[{ci}].ports[{pi}]");
            let port = p
                .get("containerPort")
                .and_then(Value::as_u64)
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| doc.err(&format!("{f}.containerPort"), "must be 1..65535"))?;
            let udp = match p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") {
                "TCP" => false,
                "UDP" => true,
                "SCTP" => {
                    sctp.push(port as u16);
                    continue;
                }
                other => {
                    return Err(doc.err(&format!("{f}.protocol"), format!("{other:?} is not TCP, UDP or SCTP")));
                }
            };
            out.push(PortSpec { port: port as u16, udp });
        }
    }
    out.sort();
    out.dedup();
    sctp.sort_unstable();
    sctp.dedup();
    Ok((out, sctp))
}

/// Parses every file; all-or-nothing.
pub fn load(files: &[PathBuf]) -> Result<Manifests, LabError> {
    let mut m = Manifests::default();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| LabError::Io {
            action: "reading manifest",
            path: file.clone(),
            source,
        })?;
        for (index, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let v = <Value as serde::Deserialize>::deserialize(de).map_err(|e| LabError::Manifest {
                file: file.clone(),
                document: index,
                field: "(yaml)".into(),
                message: e.to_string(),
            })?;
            if v.is_null() {
                continue;
            }
            let doc = Doc { file, index, v: &v };
            let kind = doc.str("kind")?;
            match kind.as_str() {
                "Namespace" => {
                    let name = doc.str("metadata.name")?;
                    let mut labels = doc.labels("metadata.labels")?;
                    labels.insert("kubernetes.io/metadata.name".into(), name.clone());
                    let annotations = doc.annotations("metadata.annotations")?;
                    m.namespaces.insert(name.clone(), NamespaceSpec { name, labels, annotations });
                }
                "Pod" => {
                    let ip = match doc.get("status.podIP").and_then(Value::as_str) {
                        Some(s) => {
                            Some(s.parse().map_err(|e| doc.err("status.podIP", format!("invalid IP {s:?}: {e}")))?)
                        }
                        None => None,
                    };
                    let (ports, sctp_ports) = ports_of(&doc, doc.get("spec.containers"), "spec.containers")?;
                    m.pods.push(PodSpec {
                        namespace: doc
                            .get("metadata.namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("default")
                            .to_string(),
                        name: doc.str("metadata.name")?,
                        labels: doc.labels("metadata.labels")?,
                        ports,
                        sctp_ports,
                        fixed_ip: ip,
                        annotations: {
                            let a = doc.annotations("metadata.annotations")?;
                            check_calls(&doc, &a)?;
                            a
                        },
                        containers: json_of(doc.get("spec.containers")),
                        owner: None,
                    });
                }
                "Deployment" => {
                    let name = doc.str("metadata.name")?;
                    let namespace =
                        doc.get("metadata.namespace").and_then(Value::as_str).unwrap_or("default").to_string();
                    let replicas = doc
                        .get("spec.replicas")
                        .map_or(Some(1), Value::as_u64)
                        .ok_or_else(|| doc.err("spec.replicas", "must be a number"))?;
                    if replicas > 256 {
                        return Err(doc.err("spec.replicas", "at most 256 replicas in the lab"));
                    }
                    let labels = doc.labels("spec.template.metadata.labels")?;
                    let (ports, sctp_ports) =
                        ports_of(&doc, doc.get("spec.template.spec.containers"), "spec.template.spec.containers")?;
                    let mut annotations = doc.annotations("spec.template.metadata.annotations")?;
                    // Traffic may be declared on the Deployment itself.
                    for (k, v) in doc.annotations("metadata.annotations")? {
                        if k.starts_with("lab.bulkhead.dev/") {
                            annotations.entry(k).or_insert(v);
                        }
                    }
                    check_calls(&doc, &annotations)?;
                    let containers = json_of(doc.get("spec.template.spec.containers"));
                    // As a Deployment's ReplicaSet does: a template hash label
                    // and the ReplicaSet as owner (the controller traces it back).
                    let hash = template_hash(&namespace, &name);
                    let mut labels = labels;
                    labels.insert("pod-template-hash".into(), hash.clone());
                    for i in 0..replicas {
                        m.pods.push(PodSpec {
                            namespace: namespace.clone(),
                            name: format!("{name}-{i}"),
                            labels: labels.clone(),
                            ports: ports.clone(),
                            sctp_ports: sctp_ports.clone(),
                            fixed_ip: None,
                            annotations: annotations.clone(),
                            containers: containers.clone(),
                            owner: Some(format!("ReplicaSet/{name}-{hash}")),
                        });
                    }
                }
                "NetworkPolicy" | "ClusterNetworkPolicy" | "BulkheadClusterPolicy" => m.policies.push(v.clone()),
                "Service" => m.services.push(service_of(&doc)?),
                other => {
                    tracing::warn!(file = %file.display(), document = index, kind = other, "kind not supported by the lab yet; skipped")
                }
            }
        }
    }
    add_cluster_dns(&mut m);
    // Namespaces that pods use but no manifest declares exist implicitly, as in a cluster with defaults.
    for p in &m.pods {
        m.namespaces.entry(p.namespace.clone()).or_insert_with(|| NamespaceSpec {
            name: p.namespace.clone(),
            labels: BTreeMap::from([("kubernetes.io/metadata.name".to_string(), p.namespace.clone())]),
            annotations: BTreeMap::new(),
        });
        if p.name.len() > 63 || p.namespace.len() > 63 || !valid_name(&p.name) || !valid_name(&p.namespace) {
            return Err(LabError::Invalid(format!("pod {}/{}: names must be DNS labels", p.namespace, p.name)));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &m.pods {
        if !seen.insert((p.namespace.clone(), p.name.clone())) {
            return Err(LabError::Invalid(format!("pod {}/{} is declared twice", p.namespace, p.name)));
        }
    }
    Ok(m)
}

fn service_of(doc: &Doc<'_>) -> Result<ServiceState, LabError> {
    let name = doc.str("metadata.name")?;
    let namespace = doc.get("metadata.namespace").and_then(Value::as_str).unwrap_or("default").to_string();
    let kind = match doc.get("spec.type").and_then(Value::as_str).unwrap_or("ClusterIP") {
        "ClusterIP" => Kind::ClusterIP,
        "NodePort" => Kind::NodePort,
        "LoadBalancer" => Kind::LoadBalancer,
        "ExternalName" => return Err(doc.err("spec.type", "ExternalName services are not supported by the lab")),
        other => return Err(doc.err("spec.type", format!("{other:?} is not ClusterIP, NodePort or LoadBalancer"))),
    };
    let headless = doc.get("spec.clusterIP").and_then(Value::as_str) == Some("None");
    if headless && kind != Kind::ClusterIP {
        return Err(doc.err("spec.clusterIP", "a headless service must be of type ClusterIP"));
    }
    let local_traffic = match doc.get("spec.externalTrafficPolicy").and_then(Value::as_str) {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => return Err(doc.err("spec.externalTrafficPolicy", format!("{other:?} is not Cluster or Local"))),
    };
    let requested_ip = match doc.get("spec.clusterIP").and_then(Value::as_str) {
        None | Some("") | Some("None") => None,
        Some(s) => Some(s.parse().map_err(|e| doc.err("spec.clusterIP", format!("invalid IPv4 address {s:?}: {e}")))?),
    };
    let mut ports = Vec::new();
    for (i, p) in doc.get("spec.ports").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        let f = format!("spec.ports[{i}]");
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| doc.err(&format!("{f}.port"), "must be 1..65535"))? as u16;
        let udp = match p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") {
            "TCP" => false,
            "UDP" => true,
            other => return Err(doc.err(&format!("{f}.protocol"), format!("{other:?} is not TCP or UDP"))),
        };
        let target = match p.get("targetPort") {
            None => Target::Number(port),
            Some(Value::Number(n)) => Target::Number(
                n.as_u64()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| doc.err(&format!("{f}.targetPort"), "must be 1..65535"))? as u16,
            ),
            Some(Value::String(s)) => Target::Named(s.clone()),
            Some(_) => return Err(doc.err(&format!("{f}.targetPort"), "must be a number or a port name")),
        };
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let node_port = match p.get("nodePort") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| crate::services::NODE_PORTS.contains(n))
                    .ok_or_else(|| doc.err(&format!("{f}.nodePort"), "must be in 30000..32767"))?,
            ),
        };
        if node_port.is_some() && kind == Kind::ClusterIP {
            return Err(doc.err(&format!("{f}.nodePort"), "only NodePort and LoadBalancer services have node ports"));
        }
        let app_protocol = p.get("appProtocol").and_then(Value::as_str).map(str::to_string);
        ports.push(ServicePort { name, port, target, udp, node_port, app_protocol });
    }
    if ports.is_empty() {
        return Err(doc.err("spec.ports", "a service needs at least one port"));
    }
    Ok(ServiceState {
        namespace,
        name,
        selector: doc.labels("spec.selector")?,
        requested_ip,
        cluster_ip: std::net::Ipv4Addr::UNSPECIFIED,
        ports,
        kind,
        headless,
        local_traffic,
        load_balancer_ip: None,
    })
}

/// Refuses a malformed `lab.bulkhead.dev/calls` or call interval, naming the object.
fn check_calls(doc: &Doc<'_>, annotations: &BTreeMap<String, String>) -> Result<(), LabError> {
    if let Some(c) = annotations.get(crate::calls::CALLS_ANNOTATION) {
        crate::calls::parse_calls(c)
            .map_err(|e| doc.err(&format!("metadata.annotations.{}", crate::calls::CALLS_ANNOTATION), e))?;
    }
    if let Some(i) = annotations.get(crate::calls::INTERVAL_ANNOTATION) {
        crate::calls::parse_interval(i)
            .map_err(|e| doc.err(&format!("metadata.annotations.{}", crate::calls::INTERVAL_ANNOTATION), e))?;
    }
    Ok(())
}

/// A stable stand-in for a Deployment's pod-template-hash (10 characters
/// from the same alphabet Kubernetes uses).
fn template_hash(namespace: &str, name: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain([b'/']).chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The cluster DNS the lab adds when the manifests declare services: a
/// kube-dns pod in kube-system and its service at 10.96.0.10.
fn add_cluster_dns(m: &mut Manifests) {
    if m.services.is_empty() || m.services.iter().any(|s| s.namespace == "kube-system" && s.name == "kube-dns") {
        return;
    }
    let labels = BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]);
    let containers = serde_json::json!([{"name": "dns", "ports": [
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]}]);
    m.pods.push(PodSpec {
        namespace: "kube-system".into(),
        name: "coredns".into(),
        labels: labels.clone(),
        ports: vec![PortSpec { port: 53, udp: false }, PortSpec { port: 53, udp: true }],
        sctp_ports: Vec::new(),
        fixed_ip: None,
        annotations: BTreeMap::from([(ROLE_ANNOTATION.to_string(), "dns".to_string())]),
        containers,
        owner: None,
    });
    m.services.push(ServiceState {
        namespace: "kube-system".into(),
        name: "kube-dns".into(),
        selector: labels,
        requested_ip: Some(DNS_IP),
        cluster_ip: std::net::Ipv4Addr::UNSPECIFIED,
        ports: vec![
            ServicePort {
                name: "dns".into(),
                port: 53,
                target: Target::Named("dns".into()),
                udp: true,
                node_port: None,
                app_protocol: None,
            },
            ServicePort {
                name: "dns-tcp".into(),
                port: 53,
                target: Target::Named("dns-tcp".into()),
                udp: false,
                node_port: None,
                app_protocol: None,
            },
        ],
        kind: Kind::ClusterIP,
        headless: false,
        local_traffic: false,
        load_balancer_ip: None,
    });
}

fn json_of(v: Option<&Value>) -> serde_json::Value {
    v.and_then(|v| serde_json::to_value(v).ok()).unwrap_or(serde_json::Value::Array(Vec::new()))
}

/// DNS-label names only: they become parts of netns names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !s.starts_with('-')
}
