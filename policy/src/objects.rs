//! Reading Kubernetes objects from YAML streams (manifest files, `apply -f`),
//! each into its wire type, with errors naming the document and field.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as net;
use serde::de::DeserializeOwned;

use crate::cluster::{self, BulkheadClusterPolicy, ClusterNetworkPolicy, legacy};
use crate::error::PolicyError;
use crate::quarantine::{self, Quarantine};
use crate::routes::{GATEWAY_API_VERSION, GatewayRoute, ROUTE_KINDS};

/// A Kubernetes object policy cares about, still in its wire form.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A namespace.
    Namespace(core::Namespace),
    /// A pod (with `status.podIPs` and `spec.nodeName` once scheduled).
    Pod(Box<core::Pod>),
    /// A node (its addresses are the host identity).
    Node(Box<core::Node>),
    /// A service.
    Service(Box<core::Service>),
    /// An EndpointSlice.
    EndpointSlice(discovery::EndpointSlice),
    /// A NetworkPolicy.
    NetworkPolicy(net::NetworkPolicy),
    /// sig-network's ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2).
    ClusterNetworkPolicy(Box<ClusterNetworkPolicy>),
    /// Bulkhead's extension of it.
    BulkheadClusterPolicy(Box<BulkheadClusterPolicy>),
    /// A Bulkhead Quarantine.
    Quarantine(Box<Quarantine>),
    /// An Ingress (its backends are internet-facing).
    Ingress(Box<net::Ingress>),
    /// A Gateway API HTTPRoute or GRPCRoute (its backends are internet-facing).
    Route(Box<GatewayRoute>),
    /// Any other kind, kept by name so callers can say what they skipped.
    Other {
        /// apiVersion of the document.
        api_version: String,
        /// kind of the document.
        kind: String,
    },
}

/// Identifies an object for replacement and deletion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The kind.
    pub kind: String,
    /// The namespace ("" for cluster-scoped kinds).
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

fn meta_ref(kind: &str, m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, namespaced: bool) -> ObjectRef {
    ObjectRef {
        kind: kind.to_string(),
        namespace: if namespaced { m.namespace.clone().unwrap_or_else(|| "default".into()) } else { String::new() },
        name: m.name.clone().unwrap_or_default(),
    }
}

impl Object {
    /// Kind, namespace and name.
    pub fn reference(&self) -> ObjectRef {
        match self {
            Object::Namespace(o) => meta_ref("Namespace", &o.metadata, false),
            Object::Pod(o) => meta_ref("Pod", &o.metadata, true),
            Object::Node(o) => meta_ref("Node", &o.metadata, false),
            Object::Service(o) => meta_ref("Service", &o.metadata, true),
            Object::EndpointSlice(o) => meta_ref("EndpointSlice", &o.metadata, true),
            Object::NetworkPolicy(o) => meta_ref("NetworkPolicy", &o.metadata, true),
            Object::ClusterNetworkPolicy(o) => meta_ref(cluster::KIND, &o.metadata, false),
            Object::BulkheadClusterPolicy(o) => meta_ref(cluster::BULKHEAD_KIND, &o.metadata, false),
            Object::Quarantine(o) => meta_ref(quarantine::KIND, &o.metadata, true),
            Object::Ingress(o) => meta_ref("Ingress", &o.metadata, true),
            Object::Route(o) => meta_ref(&o.kind, &o.metadata, true),
            Object::Other { kind, .. } => {
                ObjectRef { kind: kind.clone(), namespace: String::new(), name: String::new() }
            }
        }
    }
}

fn decode<T: DeserializeOwned>(
    v: serde_yaml::Value,
    source: &str,
    document: usize,
    kind: &str,
) -> Result<T, PolicyError> {
    serde_yaml::from_value(v).map_err(|e| PolicyError::Document {
        source_name: source.to_string(),
        document,
        message: format!("{kind}: {e}"),
    })
}

/// Parses every document of a YAML stream. `List` objects are flattened;
/// empty documents are skipped.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Object>, PolicyError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).map_err(|e| PolicyError::Document {
            source_name: source.to_string(),
            document: i,
            message: e.to_string(),
        })?;
        push(&mut out, v, source, i)?;
    }
    Ok(out)
}

fn push(out: &mut Vec<Object>, v: serde_yaml::Value, source: &str, i: usize) -> Result<(), PolicyError> {
    if v.is_null() {
        return Ok(());
    }
    let field = |k: &str| v.get(k).and_then(serde_yaml::Value::as_str).unwrap_or_default().to_string();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let doc_err = |message: String| PolicyError::Document { source_name: source.to_string(), document: i, message };
    if kind.is_empty() || api_version.is_empty() {
        return Err(doc_err("apiVersion and kind are required".into()));
    }
    let obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let items = v.get("items").and_then(serde_yaml::Value::as_sequence).cloned().unwrap_or_default();
            for item in items {
                push(out, item, source, i)?;
            }
            return Ok(());
        }
        ("v1", "Namespace") => Object::Namespace(decode(v, source, i, &kind)?),
        ("v1", "Pod") => Object::Pod(Box::new(decode(v, source, i, &kind)?)),
        ("v1", "Node") => Object::Node(Box::new(decode(v, source, i, &kind)?)),
        ("v1", "Service") => Object::Service(Box::new(decode(v, source, i, &kind)?)),
        ("discovery.k8s.io/v1", "EndpointSlice") => Object::EndpointSlice(decode(v, source, i, &kind)?),
        ("networking.k8s.io/v1", "NetworkPolicy") => Object::NetworkPolicy(decode(v, source, i, &kind)?),
        (_, "NetworkPolicy") => {
            return Err(doc_err(format!("NetworkPolicy must be networking.k8s.io/v1, not {api_version}")));
        }
        (cluster::API_VERSION, cluster::KIND) => Object::ClusterNetworkPolicy(Box::new(decode(v, source, i, &kind)?)),
        (legacy::API_VERSION, cluster::KIND) => return Err(doc_err(legacy::MIGRATION.into())),
        (_, cluster::KIND) => {
            return Err(doc_err(format!("{} must be {}, not {api_version}", cluster::KIND, cluster::API_VERSION)));
        }
        (cluster::BULKHEAD_API_VERSION, cluster::BULKHEAD_KIND) => {
            Object::BulkheadClusterPolicy(Box::new(decode(v, source, i, &kind)?))
        }
        (_, cluster::BULKHEAD_KIND) => {
            return Err(doc_err(format!(
                "{} must be {}, not {api_version}",
                cluster::BULKHEAD_KIND,
                cluster::BULKHEAD_API_VERSION
            )));
        }
        (quarantine::API_VERSION, quarantine::KIND) => Object::Quarantine(Box::new(decode(v, source, i, &kind)?)),
        (_, quarantine::KIND) => {
            return Err(doc_err(format!(
                "{} must be {}, not {api_version}",
                quarantine::KIND,
                quarantine::API_VERSION
            )));
        }
        ("networking.k8s.io/v1", "Ingress") => Object::Ingress(Box::new(decode(v, source, i, &kind)?)),
        (GATEWAY_API_VERSION, k) if ROUTE_KINDS.contains(&k) => Object::Route(Box::new(decode(v, source, i, &kind)?)),
        _ => Object::Other { api_version, kind },
    };
    out.push(obj);
    Ok(())
}

/// Rewrites a YAML stream for `bulkhead policy migrate`: every retired
/// `bulkhead.dev/v1alpha1` ClusterNetworkPolicy (also inside a `List`, as
/// `kubectl get -o yaml` prints them) becomes the kind that can say it,
/// validated as new input is; every other document is kept as it was.
/// Returns the new stream and how many policies were converted.
pub fn migrate_documents(source: &str, text: &str) -> Result<(String, usize), PolicyError> {
    let mut out = String::new();
    let mut converted = 0;
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc_err = |message: String| PolicyError::Document { source_name: source.to_string(), document: i, message };
        let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).map_err(|e| doc_err(e.to_string()))?;
        if v.is_null() {
            continue;
        }
        let mut docs = Vec::new();
        migrate_value(v, source, i, &mut docs, &mut converted)?;
        for d in docs {
            out.push_str("---\n");
            out.push_str(&d);
        }
    }
    Ok((out, converted))
}

fn migrate_value(
    v: serde_yaml::Value,
    source: &str,
    i: usize,
    out: &mut Vec<String>,
    converted: &mut usize,
) -> Result<(), PolicyError> {
    let doc_err = |message: String| PolicyError::Document { source_name: source.to_string(), document: i, message };
    let is = |k: &str, want: &str| v.get(k).and_then(serde_yaml::Value::as_str) == Some(want);
    if is("apiVersion", "v1") && is("kind", "List") {
        let items = v.get("items").and_then(serde_yaml::Value::as_sequence).cloned().unwrap_or_default();
        for item in items {
            migrate_value(item, source, i, out, converted)?;
        }
        return Ok(());
    }
    if !(is("apiVersion", legacy::API_VERSION) && is("kind", cluster::KIND)) {
        out.push(serde_yaml::to_string(&v).map_err(|e| doc_err(e.to_string()))?);
        return Ok(());
    }
    let old: legacy::LegacyClusterNetworkPolicy = decode(v, source, i, cluster::KIND)?;
    let obj = match legacy::migrate(&old)? {
        legacy::Migrated::Upstream(o) => {
            crate::cluster::ClusterPolicy::try_from(o.as_ref())?;
            Object::ClusterNetworkPolicy(o)
        }
        legacy::Migrated::Bulkhead(o) => {
            crate::cluster::ClusterPolicy::try_from(o.as_ref())?;
            Object::BulkheadClusterPolicy(o)
        }
    };
    *converted += 1;
    out.push(obj.to_yaml()?);
    Ok(())
}

impl Object {
    /// Removes what only the controller may write (the mark of a rule
    /// failed closed, which also lets a rewritten ClusterNetworkPolicy name
    /// addresses for ingress): objects from users carry none.
    pub fn strip_internal(&mut self) {
        let meta = match self {
            Object::ClusterNetworkPolicy(o) => &mut o.metadata,
            Object::BulkheadClusterPolicy(o) => &mut o.metadata,
            _ => return,
        };
        if let Some(a) = meta.annotations.as_mut() {
            a.remove(cluster::FAIL_CLOSED_ANNOTATION);
        }
    }

    /// What `fail_closed` rewrote in a cluster policy from the Kubernetes
    /// API, one line per rule; `None` for anything else.
    pub fn failed_closed(&self) -> Option<&str> {
        let meta = match self {
            Object::ClusterNetworkPolicy(o) => &o.metadata,
            Object::BulkheadClusterPolicy(o) => &o.metadata,
            _ => return None,
        };
        meta.annotations.as_ref()?.get(cluster::FAIL_CLOSED_ANNOTATION).map(String::as_str)
    }

    /// The object as YAML, for persisting and echoing back.
    pub fn to_yaml(&self) -> Result<String, PolicyError> {
        let r = match self {
            Object::Namespace(o) => serde_yaml::to_string(o),
            Object::Pod(o) => serde_yaml::to_string(o),
            Object::Node(o) => serde_yaml::to_string(o),
            Object::Service(o) => serde_yaml::to_string(o),
            Object::EndpointSlice(o) => serde_yaml::to_string(o),
            Object::NetworkPolicy(o) => serde_yaml::to_string(o),
            Object::ClusterNetworkPolicy(o) => serde_yaml::to_string(o),
            Object::BulkheadClusterPolicy(o) => serde_yaml::to_string(o),
            Object::Quarantine(o) => serde_yaml::to_string(o),
            Object::Ingress(o) => serde_yaml::to_string(o),
            Object::Route(o) => serde_yaml::to_string(o),
            Object::Other { api_version, kind } => Ok(format!("apiVersion: {api_version}\nkind: {kind}\n")),
        };
        r.map_err(|e| PolicyError::Document {
            source_name: self.reference().to_string(),
            document: 0,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_kinds_and_names_bad_documents() {
        let objs = parse_documents(
            "t.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        )
        .unwrap();
        assert_eq!(objs.len(), 2);
        assert!(matches!(&objs[1], Object::Other { kind, .. } if kind == "Deployment"));
        let e = parse_documents(
            "t.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: 5}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.yaml document 0: NetworkPolicy:"), "{e}");
        let e = parse_documents("t.yaml", "a: [").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml document 0"), "{e}");
        let old = "apiVersion: bulkhead.dev/v1alpha1\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Admin, subject: {namespaces: {}}}\n";
        let e = parse_documents("t.yaml", old).unwrap_err().to_string();
        assert!(e.contains("bulkhead policy migrate"), "{e}");
    }

    #[test]
    fn migrate_converts_retired_policies_in_lists_and_keeps_the_rest() {
        let text = "apiVersion: v1\nkind: List\nitems:
- apiVersion: bulkhead.dev/v1alpha1
  kind: ClusterNetworkPolicy
  metadata: {name: a, resourceVersion: '7'}
  spec: {tier: Admin, priority: 3, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}], ports: [{portNumber: {port: 80}}]}]}
- apiVersion: bulkhead.dev/v1alpha1
  kind: ClusterNetworkPolicy
  metadata: {name: b}
  spec: {tier: Baseline, subject: {namespaces: {}}, egress: [{action: Deny, to: [{services: [{namespace: s, name: db}]}]}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: x}
";
        let (out, n) = migrate_documents("t.yaml", text).unwrap();
        assert_eq!(n, 2);
        let objs = parse_documents("out.yaml", &out).unwrap();
        assert_eq!(objs.len(), 3, "{out}");
        assert!(
            matches!(&objs[0], Object::ClusterNetworkPolicy(o) if o.spec.priority == 3 && o.metadata.resource_version.is_none())
        );
        assert!(matches!(&objs[1], Object::BulkheadClusterPolicy(_)), "{out}");
        assert!(matches!(&objs[2], Object::Namespace(_)));
        let bad = "apiVersion: bulkhead.dev/v1alpha1\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Odd, subject: {namespaces: {}}}\n";
        assert!(migrate_documents("t.yaml", bad).unwrap_err().to_string().contains("spec.tier"));
    }
}
