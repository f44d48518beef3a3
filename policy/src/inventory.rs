//! What the cluster contains, as policy sees it: namespaces with labels, pods
//! with addresses and declared (and named) ports, services with their
//! backends, and nodes.
//! Built from Kubernetes objects through `TryFrom`, so bad objects are
//! refused at the boundary with the field named.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::{Blame, PolicyError};
use crate::ports::{NamedPort, Protocol, check_port_name, port_number};
use crate::selector::{Labels, check_labels};

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace name.
    pub name: String,
    /// Labels, always including `kubernetes.io/metadata.name`.
    pub labels: Labels,
}

/// A pod that has addresses (pending pods are not part of policy yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Cluster the pod runs in.
    pub cluster: String,
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod labels.
    pub labels: Labels,
    /// Node the pod runs on.
    pub node: String,
    /// The pod's addresses (IPv4 and/or IPv6).
    pub ips: Vec<IpAddr>,
    /// Named container ports, for named-port rules.
    pub ports: Vec<NamedPort>,
    /// Every declared container port, named or not: what the pod says it
    /// serves, for the views of what is allowed and exposed (policy
    /// matching uses only `ports`).
    pub declared: Vec<(Protocol, u16)>,
    /// Container ports also bound on the node's addresses (`hostPort`).
    pub host_ports: Vec<HostPort>,
}

/// A container port bound on the node too: reachable from outside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// Protocol.
    pub protocol: Protocol,
    /// The port on the node.
    pub host: u16,
    /// The container port it forwards to.
    pub container: u16,
}

/// A pod on the host network: no pod policy applies to it, so exposure lists
/// it apart from the pods policy sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNetworkPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node whose addresses it listens on.
    pub node: String,
    /// Its declared container ports (which are the node's ports).
    pub declared: Vec<(Protocol, u16)>,
}

impl Pod {
    /// "namespace/name".
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Where a service port sends traffic on the backend pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A container port name, resolved per backend pod.
    Named(String),
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name ("" when unnamed): exposure reads it as a hint of the protocol.
    pub name: String,
    /// Protocol of the port.
    pub protocol: Protocol,
    /// The port clients connect to on the ClusterIP.
    pub port: u16,
    /// The port the backend receives on.
    pub target: TargetPort,
    /// The port on every node, for NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
    /// `appProtocol`, a hint of what the port speaks.
    pub app_protocol: Option<String>,
}

impl ServicePort {
    /// The port `backend` receives this service port's traffic on: the
    /// number, or the backend's container port of that name and protocol
    /// (`None` when it declares none).
    pub fn target_on(&self, backend: &Pod) -> Option<u16> {
        match &self.target {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Named(name) => {
                backend.ports.iter().find(|n| &n.name == name && n.protocol == self.protocol).map(|n| n.port)
            }
        }
    }
}

/// A service's `spec.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServiceType {
    /// Reachable on its ClusterIP (or, headless, on its pods) only.
    #[default]
    ClusterIp,
    /// Also on a port of every node.
    NodePort,
    /// Also on a load balancer's address (and a NodePort).
    LoadBalancer,
    /// A DNS alias of a name outside the cluster.
    ExternalName,
}

/// What makes a service reachable from outside the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceExposure {
    /// `spec.type`.
    pub kind: ServiceType,
    /// `spec.externalIPs`: node-routed addresses kube-proxy also serves it on.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`: outside clients keep their address
    /// (otherwise kube-proxy replaces it with the receiving node's).
    pub local_traffic: bool,
    /// `spec.externalName`, for ExternalName services.
    pub external_name: Option<String>,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace of the service.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Pod selector; `None` for a service whose endpoints are managed by hand.
    pub selector: Option<Labels>,
    /// ClusterIPs (empty for headless services).
    pub cluster_ips: Vec<IpAddr>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Backend addresses from EndpointSlices; `None` when none were seen, in
    /// which case the selector decides.
    pub endpoints: Option<Vec<IpAddr>>,
    /// Type and outside addresses.
    pub exposure: ServiceExposure,
}

impl Service {
    /// "namespace/name".
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Everything policy needs to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Name of this cluster.
    pub cluster: String,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Pods by "namespace/name".
    pub pods: BTreeMap<String, Pod>,
    /// Services by "namespace/name".
    pub services: BTreeMap<String, Service>,
    /// Node addresses by node name.
    pub nodes: BTreeMap<String, Vec<IpAddr>>,
    /// Node labels by node name, for ClusterNetworkPolicy `nodes` peers.
    pub node_labels: BTreeMap<String, Labels>,
    /// Pods on the host network, by "namespace/name".
    pub host_network: BTreeMap<String, HostNetworkPod>,
    /// Services Ingresses and Gateway routes send outside traffic to.
    pub routes: Vec<crate::routes::RouteBackend>,
    /// Pods of other clusters (their `cluster` is theirs), as their
    /// controllers report them: peers only, matched by `clusters` peers and
    /// by address, never by this cluster's pod or namespace selectors, and
    /// never enforced here. An address a pod, service or node of this
    /// cluster holds stays theirs.
    pub remote_pods: Vec<Pod>,
}

impl Inventory {
    /// An empty inventory for a cluster.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self { cluster: cluster.into(), ..Default::default() }
    }

    /// Labels of a namespace; a namespace nobody declared still has its name label.
    pub fn namespace_labels(&self, name: &str) -> Cow<'_, Labels> {
        match self.namespaces.get(name) {
            Some(ns) => Cow::Borrowed(&ns.labels),
            None => Cow::Owned(Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.to_string())])),
        }
    }

    /// The pods a service sends traffic to.
    pub fn backends<'a>(&'a self, svc: &'a Service) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.values().filter(move |p| {
            p.namespace == svc.namespace
                && match (&svc.endpoints, &svc.selector) {
                    (Some(eps), _) => p.ips.iter().any(|ip| eps.contains(ip)),
                    (None, Some(sel)) => !sel.is_empty() && sel.iter().all(|(k, v)| p.labels.get(k) == Some(v)),
                    (None, None) => false,
                }
        })
    }

    /// The pod of another cluster at `addr`, unless this cluster holds it.
    pub fn remote_pod(&self, addr: IpAddr) -> Option<&Pod> {
        self.remote_pods.iter().find(|p| p.ips.contains(&addr))
    }

    /// Adds or replaces a namespace.
    pub fn put_namespace(&mut self, ns: Namespace) {
        self.namespaces.insert(ns.name.clone(), ns);
    }

    /// Adds or replaces a pod.
    pub fn put_pod(&mut self, pod: Pod) {
        self.pods.insert(pod.key(), pod);
    }

    /// Adds or replaces a service.
    pub fn put_service(&mut self, svc: Service) {
        self.services.insert(svc.key(), svc);
    }
}

impl TryFrom<&core::Namespace> for Namespace {
    type Error = PolicyError;

    fn try_from(ns: &core::Namespace) -> Result<Self, PolicyError> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let blame = Blame::new("Namespace", None, &name);
        if name.is_empty() {
            return Err(blame.err("metadata.name", "a name is required"));
        }
        let mut labels = ns.metadata.labels.clone().unwrap_or_default();
        check_labels(&labels, &blame, "metadata.labels")?;
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
        Ok(Self { name, labels })
    }
}

/// A pod as read from the API, before it has addresses.
impl Pod {
    /// Validates a pod object. `Ok(None)` for pods policy does not apply to
    /// (yet, or any more): without addresses, on the host network, or finished.
    pub fn from_object(pod: &core::Pod, cluster: &str) -> Result<Option<Self>, PolicyError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let blame = Blame::new("Pod", Some(&namespace), &name);
        if name.is_empty() {
            return Err(blame.err("metadata.name", "a name is required"));
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        check_labels(&labels, &blame, "metadata.labels")?;
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.host_network).unwrap_or(false) {
            return Ok(None);
        }
        let (mut ports, mut declared, mut host_ports) = (Vec::new(), Vec::new(), Vec::new());
        for (ci, c) in spec.map(|s| s.containers.as_slice()).unwrap_or_default().iter().enumerate() {
            for (pi, p) in c.ports.iter().flatten().enumerate() {
                let f = format!("spec.containers[{ci}].ports[{pi}]");
                let number = port_number(p.container_port).map_err(|m| blame.err(format!("{f}.containerPort"), m))?;
                let protocol = Protocol::parse(p.protocol.as_deref(), &blame, &format!("{f}.protocol"))?;
                declared.push((protocol, number));
                if let Some(h) = p.host_port.filter(|h| *h != 0) {
                    let host = port_number(h).map_err(|m| blame.err(format!("{f}.hostPort"), m))?;
                    host_ports.push(HostPort { protocol, host, container: number });
                }
                if let Some(n) = &p.name {
                    check_port_name(n).map_err(|m| blame.err(format!("{f}.name"), m))?;
                    ports.push(NamedPort { name: n.clone(), protocol, port: number });
                }
            }
        }
        let status = pod.status.as_ref();
        // A finished pod's addresses may already belong to a new pod.
        if status.and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed") {
            return Ok(None);
        }
        let mut ips = Vec::new();
        let listed =
            status.and_then(|s| s.pod_ips.as_ref()).map(|v| v.iter().map(|i| i.ip.clone()).collect::<Vec<_>>());
        let raw = listed.unwrap_or_else(|| status.and_then(|s| s.pod_ip.clone()).into_iter().collect());
        for (i, ip) in raw.iter().enumerate() {
            let addr: IpAddr =
                ip.parse().map_err(|_| blame.err(format!("status.podIPs[{i}]"), format!("invalid IP {ip:?}")))?;
            if !ips.contains(&addr) {
                ips.push(addr);
            }
        }
        if ips.is_empty() {
            return Ok(None);
        }
        let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
        Ok(Some(Self { cluster: cluster.to_string(), namespace, name, labels, node, ips, ports, declared, host_ports }))
    }
}

impl HostNetworkPod {
    /// A pod object on the host network, `None` for any other pod (or a finished one).
    pub fn from_object(pod: &core::Pod) -> Result<Option<Self>, PolicyError> {
        let spec = pod.spec.as_ref();
        if !spec.and_then(|s| s.host_network).unwrap_or(false) {
            return Ok(None);
        }
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed") {
            return Ok(None);
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let blame = Blame::new("Pod", Some(&namespace), &name);
        let mut declared = Vec::new();
        for (ci, c) in spec.map(|s| s.containers.as_slice()).unwrap_or_default().iter().enumerate() {
            for (pi, p) in c.ports.iter().flatten().enumerate() {
                let f = format!("spec.containers[{ci}].ports[{pi}]");
                let number = port_number(p.container_port).map_err(|m| blame.err(format!("{f}.containerPort"), m))?;
                declared.push((Protocol::parse(p.protocol.as_deref(), &blame, &format!("{f}.protocol"))?, number));
            }
        }
        let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
        Ok(Some(Self { namespace, name, node, declared }))
    }
}

impl TryFrom<&core::Service> for Service {
    type Error = PolicyError;

    fn try_from(svc: &core::Service) -> Result<Self, PolicyError> {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let namespace = svc.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let blame = Blame::new("Service", Some(&namespace), &name);
        if name.is_empty() {
            return Err(blame.err("metadata.name", "a name is required"));
        }
        let Some(spec) = &svc.spec else {
            return Err(blame.err("spec", "a spec is required"));
        };
        let selector = spec.selector.clone().filter(|s| !s.is_empty());
        if let Some(sel) = &selector {
            check_labels(sel, &blame, "spec.selector")?;
        }
        let mut cluster_ips = Vec::new();
        let raw: Vec<String> =
            spec.cluster_ips.clone().unwrap_or_else(|| spec.cluster_ip.clone().into_iter().collect());
        for (i, ip) in raw.iter().enumerate() {
            if ip == "None" || ip.is_empty() {
                continue;
            }
            let addr =
                ip.parse().map_err(|_| blame.err(format!("spec.clusterIPs[{i}]"), format!("invalid IP {ip:?}")))?;
            cluster_ips.push(addr);
        }
        let mut ports = Vec::new();
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            let f = format!("spec.ports[{i}]");
            let protocol = Protocol::parse(p.protocol.as_deref(), &blame, &format!("{f}.protocol"))?;
            let port = port_number(p.port).map_err(|m| blame.err(format!("{f}.port"), m))?;
            let target = match &p.target_port {
                None => TargetPort::Number(port),
                Some(IntOrString::Int(t)) => {
                    TargetPort::Number(port_number(*t).map_err(|m| blame.err(format!("{f}.targetPort"), m))?)
                }
                Some(IntOrString::String(n)) => match n.parse::<i32>() {
                    Ok(t) => TargetPort::Number(port_number(t).map_err(|m| blame.err(format!("{f}.targetPort"), m))?),
                    Err(_) => {
                        check_port_name(n).map_err(|m| blame.err(format!("{f}.targetPort"), m))?;
                        TargetPort::Named(n.clone())
                    }
                },
            };
            let node_port = p
                .node_port
                .filter(|n| *n != 0)
                .map(port_number)
                .transpose()
                .map_err(|m| blame.err(format!("{f}.nodePort"), m))?;
            ports.push(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol,
                port,
                target,
                node_port,
                app_protocol: p.app_protocol.clone(),
            });
        }
        let exposure = ServiceExposure::of(svc, spec, &blame)?;
        Ok(Self { namespace, name, selector, cluster_ips, ports, endpoints: None, exposure })
    }
}

impl ServiceExposure {
    fn of(svc: &core::Service, spec: &core::ServiceSpec, blame: &Blame) -> Result<Self, PolicyError> {
        let kind = match spec.type_.as_deref().unwrap_or("ClusterIP") {
            "ClusterIP" => ServiceType::ClusterIp,
            "NodePort" => ServiceType::NodePort,
            "LoadBalancer" => ServiceType::LoadBalancer,
            "ExternalName" => ServiceType::ExternalName,
            other => {
                return Err(blame.err(
                    "spec.type",
                    format!("{other:?}: expected ClusterIP, NodePort, LoadBalancer or ExternalName"),
                ));
            }
        };
        let parse = |field: String, ip: &str| -> Result<IpAddr, PolicyError> {
            ip.parse().map_err(|_| blame.err(field, format!("invalid IP {ip:?}")))
        };
        let mut external_ips = Vec::new();
        for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
            external_ips.push(parse(format!("spec.externalIPs[{i}]"), ip)?);
        }
        let mut load_balancer_ips = Vec::new();
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        for (i, ing) in ingress.into_iter().flatten().enumerate() {
            if let Some(ip) = &ing.ip {
                load_balancer_ips.push(parse(format!("status.loadBalancer.ingress[{i}].ip"), ip)?);
            }
        }
        let external_name = spec.external_name.clone().filter(|n| !n.is_empty());
        if kind == ServiceType::ExternalName && external_name.is_none() {
            return Err(blame.err("spec.externalName", "an ExternalName service needs a name"));
        }
        Ok(Self {
            kind,
            external_ips,
            load_balancer_ips,
            local_traffic: spec.external_traffic_policy.as_deref() == Some("Local"),
            external_name,
        })
    }
}

/// The backend addresses an EndpointSlice lists, and the service it belongs to.
pub fn endpoint_slice_addresses(slice: &discovery::EndpointSlice) -> Result<(String, Vec<IpAddr>), PolicyError> {
    let name = slice.metadata.name.clone().unwrap_or_default();
    let namespace = slice.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let blame = Blame::new("EndpointSlice", Some(&namespace), &name);
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .ok_or_else(|| blame.err("metadata.labels", "the kubernetes.io/service-name label is required"))?;
    let mut out = Vec::new();
    for (i, e) in slice.endpoints.iter().enumerate() {
        if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
            continue;
        }
        for (j, a) in e.addresses.iter().enumerate() {
            let ip = a
                .parse()
                .map_err(|_| blame.err(format!("endpoints[{i}].addresses[{j}]"), format!("invalid IP {a:?}")))?;
            out.push(ip);
        }
    }
    Ok((format!("{namespace}/{service}"), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_port_is_kept_and_only_named_ones_match_named_rules() {
        let pod: core::Pod = serde_yaml::from_str(
            "metadata: {name: a, namespace: x}\n\
             spec: {nodeName: n1, containers: [{name: c, ports: [{containerPort: 8080, name: http}, {containerPort: 53, protocol: UDP}]}]}\n\
             status: {podIP: 10.0.0.5, podIPs: [{ip: 10.0.0.5}]}\n",
        )
        .unwrap();
        let pod = Pod::from_object(&pod, "c").unwrap().unwrap();
        assert_eq!(pod.declared, vec![(Protocol::Tcp, 8080), (Protocol::Udp, 53)]);
        assert_eq!(pod.ports, vec![NamedPort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 }]);
    }

    #[test]
    fn service_types_and_outside_addresses_are_read_and_bad_ones_named() {
        let svc: core::Service = serde_yaml::from_str(
            "metadata: {name: db, namespace: x}\n\
             spec: {type: LoadBalancer, externalTrafficPolicy: Local, externalIPs: [192.0.2.7], ports: [{port: 6379, nodePort: 30079, name: tcp-redis}]}\n\
             status: {loadBalancer: {ingress: [{ip: 172.30.0.1}]}}\n",
        )
        .unwrap();
        let s = Service::try_from(&svc).unwrap();
        assert_eq!(s.exposure.kind, ServiceType::LoadBalancer);
        assert!(s.exposure.local_traffic);
        assert_eq!(s.exposure.external_ips, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.exposure.load_balancer_ips, vec!["172.30.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.ports[0].node_port, Some(30079));
        let bad: core::Service = serde_yaml::from_str("metadata: {name: a}\nspec: {type: Public}\n").unwrap();
        let e = Service::try_from(&bad).unwrap_err().to_string();
        assert!(e.contains("spec.type"), "{e}");
        let host: core::Pod = serde_yaml::from_str(
            "metadata: {name: h, namespace: x}\n\
             spec: {hostNetwork: true, nodeName: n1, containers: [{name: c, ports: [{containerPort: 9100}]}]}\n",
        )
        .unwrap();
        assert_eq!(Pod::from_object(&host, "c").unwrap(), None);
        let h = HostNetworkPod::from_object(&host).unwrap().unwrap();
        assert_eq!((h.node.as_str(), h.declared.as_slice()), ("n1", &[(Protocol::Tcp, 9100)][..]));
    }
}
