//! The services outside traffic enters through: the backends of Ingresses
//! and of Gateway API routes (HTTPRoute, GRPCRoute). Exposure marks those
//! services internet-facing even when they are only ClusterIPs.

use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::error::{Blame, PolicyError};
use crate::ports::port_number;

/// The API group of Gateway API routes.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The route kinds read (their backend references share one shape).
pub const ROUTE_KINDS: [&str; 2] = ["HTTPRoute", "GRPCRoute"];

/// Which port of a service a route sends traffic to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoutePort {
    /// Every port (a route naming none).
    Any,
    /// The service port of this number.
    Number(u16),
    /// The service port of this name.
    Name(String),
}

/// One service an Ingress or route sends outside traffic to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteBackend {
    /// "Ingress", "HTTPRoute" or "GRPCRoute".
    pub kind: String,
    /// "namespace/name" of the Ingress or route.
    pub from: String,
    /// "namespace/name" of the service.
    pub service: String,
    /// The service port.
    pub port: RoutePort,
}

impl RouteBackend {
    /// Whether it sends traffic to `port` (named `name`) of its service.
    pub fn targets(&self, port: u16, name: &str) -> bool {
        match &self.port {
            RoutePort::Any => true,
            RoutePort::Number(n) => *n == port,
            RoutePort::Name(n) => n == name,
        }
    }
}

/// A Gateway API route, as far as exposure reads it: the services it sends to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayRoute {
    /// apiVersion.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// HTTPRoute or GRPCRoute.
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: RouteSpec,
}

/// A route's spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RouteRule>,
}

/// A route rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteRule {
    /// Where matching requests go.
    #[serde(default, rename = "backendRefs", skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

/// A route's reference to a backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRef {
    /// The backend's name.
    pub name: String,
    /// Its namespace (the route's by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its kind (Service by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its group ("" for the core group by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

fn namespace_of(m: &ObjectMeta) -> String {
    m.namespace.clone().unwrap_or_else(|| "default".to_string())
}

/// The services an Ingress sends to, its default backend included.
pub fn ingress_backends(ing: &net::Ingress) -> Result<Vec<RouteBackend>, PolicyError> {
    let namespace = namespace_of(&ing.metadata);
    let name = ing.metadata.name.clone().unwrap_or_default();
    let blame = Blame::new("Ingress", Some(&namespace), &name);
    let spec = ing.spec.as_ref();
    let mut backends: Vec<(String, &net::IngressBackend)> = Vec::new();
    if let Some(b) = spec.and_then(|s| s.default_backend.as_ref()) {
        backends.push(("spec.defaultBackend".into(), b));
    }
    for (i, rule) in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten().enumerate() {
        for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            backends.push((format!("spec.rules[{i}].http.paths[{j}].backend"), &path.backend));
        }
    }
    let mut out = Vec::new();
    for (field, b) in backends {
        // A resource backend (a bucket, say) is no service of the cluster.
        let Some(svc) = &b.service else { continue };
        let port = match &svc.port {
            None => RoutePort::Any,
            Some(p) => match (&p.number, &p.name) {
                (Some(n), _) => RoutePort::Number(
                    port_number(*n).map_err(|m| blame.err(format!("{field}.service.port.number"), m))?,
                ),
                (None, Some(n)) => RoutePort::Name(n.clone()),
                (None, None) => RoutePort::Any,
            },
        };
        out.push(RouteBackend {
            kind: "Ingress".into(),
            from: format!("{namespace}/{name}"),
            service: format!("{namespace}/{}", svc.name),
            port,
        });
    }
    Ok(out)
}

/// The services a Gateway API route sends to (backends of other kinds skipped).
pub fn route_backends(route: &GatewayRoute) -> Result<Vec<RouteBackend>, PolicyError> {
    let namespace = namespace_of(&route.metadata);
    let name = route.metadata.name.clone().unwrap_or_default();
    let blame = Blame::new(&route.kind, Some(&namespace), &name);
    let mut out = Vec::new();
    for (i, rule) in route.spec.rules.iter().enumerate() {
        for (j, b) in rule.backend_refs.iter().enumerate() {
            let service =
                b.kind.as_deref().is_none_or(|k| k == "Service") && b.group.as_deref().is_none_or(str::is_empty);
            if !service {
                continue;
            }
            let port = match b.port {
                None => RoutePort::Any,
                Some(p) => RoutePort::Number(
                    port_number(p).map_err(|m| blame.err(format!("spec.rules[{i}].backendRefs[{j}].port"), m))?,
                ),
            };
            let ns = b.namespace.clone().unwrap_or_else(|| namespace.clone());
            out.push(RouteBackend {
                kind: route.kind.clone(),
                from: format!("{namespace}/{name}"),
                service: format!("{ns}/{}", b.name),
                port,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_and_route_backends_name_their_services_and_ports() {
        let ing: net::Ingress = serde_yaml::from_str(
            "metadata: {name: web, namespace: shop}\n\
             spec: {defaultBackend: {service: {name: front, port: {name: http}}}, rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}]}}]}\n",
        )
        .unwrap();
        let b = ingress_backends(&ing).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].service.as_str(), &b[0].port), ("shop/front", &RoutePort::Name("http".into())));
        assert!(b[1].targets(8080, "") && !b[1].targets(80, ""));
        let route: GatewayRoute = serde_yaml::from_str(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\n\
             spec: {rules: [{backendRefs: [{name: cart, port: 7070}, {name: other, namespace: x}, {name: b, kind: Bucket, group: example.com}]}]}\n",
        )
        .unwrap();
        let b = route_backends(&route).unwrap();
        assert_eq!(b.iter().map(|b| b.service.as_str()).collect::<Vec<_>>(), ["shop/cart", "x/other"]);
        let bad: GatewayRoute = serde_yaml::from_str(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{backendRefs: [{name: c, port: 0}]}]}\n",
        )
        .unwrap();
        assert!(route_backends(&bad).unwrap_err().to_string().contains("backendRefs[0].port"));
    }
}
