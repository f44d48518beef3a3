//! Reading Kubernetes objects from YAML streams (manifest files, `apply -f`),
//! each into its wire type, with errors naming the document and field.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as net;
use serde::de::DeserializeOwned;

use crate::cluster::{self, ClusterNetworkPolicy};
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
    /// A Bulkhead ClusterNetworkPolicy.
    ClusterNetworkPolicy(Box<ClusterNetworkPolicy>),
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
        (_, cluster::KIND) => {
            return Err(doc_err(format!("{} must be {}, not {api_version}", cluster::KIND, cluster::API_VERSION)));
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

impl Object {
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
    }
}
