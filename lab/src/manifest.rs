//! Reading ordinary Kubernetes YAML: Namespace, Pod, Deployment (with
//! replicas), plus the lab's temporary `DataplaneRule` kind. Unknown kinds are
//! skipped with a warning; malformed ones are errors naming file, document and field.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::LabError;

/// A container port a pod serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PortSpec {
    /// Port number.
    pub port: u16,
    /// UDP when set, TCP otherwise (the lab serves no SCTP).
    pub udp: bool,
}

/// A namespace and its labels (always including kubernetes.io/metadata.name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSpec {
    /// Namespace name.
    pub name: String,
    /// Namespace labels.
    pub labels: BTreeMap<String, String>,
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
    /// Container ports the pod serves.
    pub ports: Vec<PortSpec>,
    /// Address requested via `status.podIP`, which also picks the node; `None` for any.
    pub fixed_ip: Option<IpAddr>,
}

/// Pods selected by namespace and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selector {
    /// Namespace of the pods; `None` means any namespace.
    pub namespace: Option<String>,
    /// Labels the pods must all carry; empty matches every pod.
    pub match_labels: BTreeMap<String, String>,
}

/// A peer of a dataplane rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Peer {
    /// Pods matching a selector.
    Pods(Selector),
    /// Addresses in a CIDR.
    Cidr(ipnetwork::IpNetwork),
    /// Any peer at all.
    Any,
}

/// The lab's low-level rule: it maps one-to-one onto dataplane policy entries.
/// (NetworkPolicy compilation arrives with the controller.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleSpec {
    /// Rule name, shown in flows as the rule that matched.
    pub name: String,
    /// Pods the rule applies to.
    pub selector: Selector,
    /// True for ingress to the selected pods, false for egress.
    pub ingress: bool,
    /// Who the rule allows or denies; `Any` if none are given.
    pub peers: Vec<Peer>,
    /// (protocol number, port, end_port); empty = any protocol and port.
    pub ports: Vec<(u8, u16, u16)>,
    /// True for a deny rule, false for allow.
    pub deny: bool,
    /// learn, audit or enforce for the selected pods' direction.
    pub mode: String,
}

/// Everything the manifests declare.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Namespaces by name, including those pods imply.
    pub namespaces: BTreeMap<String, NamespaceSpec>,
    /// Pods to create, Deployments already expanded.
    pub pods: Vec<PodSpec>,
    /// Dataplane rules.
    pub rules: Vec<RuleSpec>,
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

fn ports_of(doc: &Doc<'_>, containers: Option<&Value>, field: &str) -> Result<Vec<PortSpec>, LabError> {
    let mut out = Vec::new();
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
                other => {
                    return Err(doc.err(
                        &format!("{f}.protocol"),
                        format!("{other:?} is not TCP or UDP (SCTP pods are not supported by the lab)"),
                    ));
                }
            };
            out.push(PortSpec { port: port as u16, udp });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn protocol_number(name: &str) -> Option<u8> {
    match name {
        "TCP" => Some(6),
        "UDP" => Some(17),
        "SCTP" => Some(132),
        "ICMP" => Some(1),
        _ => None,
    }
}

fn selector_of(v: &Value) -> Selector {
    Selector {
        namespace: v.get("namespace").and_then(Value::as_str).map(str::to_string),
        match_labels: labels_of(v.get("matchLabels")).unwrap_or_default(),
    }
}

fn rule_of(doc: &Doc<'_>) -> Result<RuleSpec, LabError> {
    let name = doc.str("metadata.name")?;
    let spec = doc.get("spec").ok_or_else(|| doc.err("spec", "required"))?;
    let selector = selector_of(spec.get("selector").ok_or_else(|| doc.err("spec.selector", "required"))?);
    let ingress = match spec.get("direction").and_then(Value::as_str) {
        Some("ingress") => true,
        Some("egress") => false,
        _ => return Err(doc.err("spec.direction", "must be ingress or egress")),
    };
    let deny = match spec.get("action").and_then(Value::as_str).unwrap_or("allow") {
        "allow" => false,
        "deny" => true,
        other => return Err(doc.err("spec.action", format!("{other:?} is not allow or deny"))),
    };
    let mode = spec.get("mode").and_then(Value::as_str).unwrap_or("enforce").to_string();
    if !["learn", "audit", "enforce"].contains(&mode.as_str()) {
        return Err(doc.err("spec.mode", format!("{mode:?} is not learn, audit or enforce")));
    }
    let mut peers = Vec::new();
    for (i, p) in spec.get("peers").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        if let Some(c) = p.get("cidr").and_then(Value::as_str) {
            let net: ipnetwork::IpNetwork =
                c.parse().map_err(|e| doc.err(&format!("spec.peers[{i}].cidr"), format!("invalid CIDR {c:?}: {e}")))?;
            peers.push(Peer::Cidr(net));
        } else if p.get("any").and_then(Value::as_bool) == Some(true) {
            peers.push(Peer::Any);
        } else {
            peers.push(Peer::Pods(selector_of(p)));
        }
    }
    if peers.is_empty() {
        peers.push(Peer::Any);
    }
    let mut ports = Vec::new();
    for (i, p) in spec.get("ports").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        let f = format!("spec.ports[{i}]");
        let proto_name = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        let proto = protocol_number(proto_name)
            .ok_or_else(|| doc.err(&format!("{f}.protocol"), format!("unknown protocol {proto_name:?}")))?;
        let port = match p.get("port") {
            None => 0,
            Some(v) => v.as_u64().filter(|p| (1..=65535).contains(p)).ok_or_else(|| {
                doc.err(&format!("{f}.port"), "must be a number 1..65535 (named ports come with NetworkPolicy support)")
            })?,
        } as u16;
        let end = match p.get("endPort") {
            None => 0,
            Some(v) => v.as_u64().filter(|e| *e <= 65535 && *e >= u64::from(port) && port != 0).ok_or_else(|| {
                doc.err(&format!("{f}.endPort"), "must be at least port, at most 65535, and needs a port")
            })?,
        } as u16;
        ports.push((proto, port, end));
    }
    Ok(RuleSpec { name, selector, ingress, peers, ports, deny, mode })
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
                    m.namespaces.insert(name.clone(), NamespaceSpec { name, labels });
                }
                "Pod" => {
                    let ip = match doc.get("status.podIP").and_then(Value::as_str) {
                        Some(s) => {
                            Some(s.parse().map_err(|e| doc.err("status.podIP", format!("invalid IP {s:?}: {e}")))?)
                        }
                        None => None,
                    };
                    m.pods.push(PodSpec {
                        namespace: doc
                            .get("metadata.namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("default")
                            .to_string(),
                        name: doc.str("metadata.name")?,
                        labels: doc.labels("metadata.labels")?,
                        ports: ports_of(&doc, doc.get("spec.containers"), "spec.containers")?,
                        fixed_ip: ip,
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
                    let ports =
                        ports_of(&doc, doc.get("spec.template.spec.containers"), "spec.template.spec.containers")?;
                    for i in 0..replicas {
                        m.pods.push(PodSpec {
                            namespace: namespace.clone(),
                            name: format!("{name}-{i}"),
                            labels: labels.clone(),
                            ports: ports.clone(),
                            fixed_ip: None,
                        });
                    }
                }
                "DataplaneRule" => m.rules.push(rule_of(&doc)?),
                other => {
                    tracing::warn!(file = %file.display(), document = index, kind = other, "kind not supported by the lab yet; skipped")
                }
            }
        }
    }
    // Namespaces that pods use but no manifest declares exist implicitly, as in a cluster with defaults.
    for p in &m.pods {
        m.namespaces.entry(p.namespace.clone()).or_insert_with(|| NamespaceSpec {
            name: p.namespace.clone(),
            labels: BTreeMap::from([("kubernetes.io/metadata.name".to_string(), p.namespace.clone())]),
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

/// DNS-label names only: they become parts of netns names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !s.starts_with('-')
}
