//! The ports of the report, from the inventory, and the traffic observed on
//! each.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_model::exposure::{AppProtocol, Exposer, ExposureClass};
use bulkhead_policy::inventory::{Pod, Service, ServicePort, ServiceType};
use bulkhead_policy::ports::Protocol;

use super::{CanReach, ExposedBy, ExposedPort, Input, Reached};
use crate::{EdgeKey, EdgeStats, Entity};

/// One pod serving a port, and the port it receives it on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backend<'a> {
    pub pod: &'a Pod,
    pub target: u16,
}

fn blank(namespace: &str, protocol: Protocol, port: u16) -> ExposedPort {
    ExposedPort {
        namespace: namespace.to_string(),
        service: None,
        workloads: Vec::new(),
        class: ExposureClass::ClusterInternal,
        exposed_by: Vec::new(),
        protocol,
        port,
        targets: Vec::new(),
        name: String::new(),
        declared_protocol: None,
        speaks: None,
        heard: Vec::new(),
        declared: true,
        policed: true,
        listening: None,
        can_reach: CanReach::default(),
        did_reach: Vec::new(),
        findings: Vec::new(),
    }
}

fn declares(pod: &Pod, protocol: Protocol, port: u16) -> bool {
    pod.declared.contains(&(protocol, port))
}

/// What exposes a service port outside the cluster.
fn service_exposers(input: &Input<'_>, svc: &Service, sp: &ServicePort) -> Vec<ExposedBy> {
    let mut out = Vec::new();
    let e = &svc.exposure;
    if matches!(e.kind, ServiceType::NodePort | ServiceType::LoadBalancer)
        && let Some(n) = sp.node_port
    {
        out.push(ExposedBy { via: Exposer::NodePort, detail: format!("NodePort {n} on every node") });
    }
    if e.kind == ServiceType::LoadBalancer {
        for ip in &e.load_balancer_ips {
            out.push(ExposedBy { via: Exposer::LoadBalancer, detail: format!("LoadBalancer {ip} port {}", sp.port) });
        }
    }
    for ip in &e.external_ips {
        out.push(ExposedBy { via: Exposer::ExternalIp, detail: format!("externalIP {ip} port {}", sp.port) });
    }
    for r in input.inventory.routes.iter().filter(|r| r.service == svc.key() && r.targets(sp.port, &sp.name)) {
        let via = if r.kind == "Ingress" { Exposer::Ingress } else { Exposer::Route };
        out.push(ExposedBy { via, detail: format!("{} {}", r.kind, r.from) });
    }
    out.sort();
    out.dedup();
    out
}

fn service_ports<'a>(input: &Input<'a>, svc: &'a Service, out: &mut Vec<(ExposedPort, Vec<Backend<'a>>)>) {
    if svc.exposure.kind == ServiceType::ExternalName {
        let mut p = blank(&svc.namespace, Protocol::Tcp, svc.ports.first().map_or(0, |sp| sp.port));
        p.service = Some(svc.name.clone());
        p.class = ExposureClass::ExternalName;
        p.name = svc.exposure.external_name.clone().unwrap_or_default();
        out.push((p, Vec::new()));
        return;
    }
    let pods: Vec<&Pod> = input.inventory.backends(svc).collect();
    for sp in &svc.ports {
        let backends: Vec<Backend<'a>> =
            pods.iter().filter_map(|pod| Some(Backend { pod, target: sp.target_on(pod)? })).collect();
        let mut p = blank(&svc.namespace, sp.protocol, sp.port);
        p.service = Some(svc.name.clone());
        p.name = sp.name.clone();
        p.exposed_by = service_exposers(input, svc, sp);
        p.class = if !p.exposed_by.is_empty() {
            ExposureClass::InternetFacing
        } else if svc.cluster_ips.is_empty() {
            ExposureClass::Headless
        } else {
            ExposureClass::ClusterInternal
        };
        // The service port's declaration, else the name of the container port it targets.
        let target_name = backends.iter().find_map(|b| named(&[b.pod], sp.protocol, b.target));
        p.declared_protocol = AppProtocol::hinted(&sp.name, sp.app_protocol.as_deref())
            .or_else(|| target_name.and_then(|n| AppProtocol::hinted(n, None)));
        p.workloads =
            backends.iter().map(|b| (input.workload_of)(b.pod)).collect::<BTreeSet<_>>().into_iter().collect();
        p.targets = backends.iter().map(|b| b.target).collect::<BTreeSet<_>>().into_iter().collect();
        p.declared = backends.is_empty() || backends.iter().any(|b| declares(b.pod, sp.protocol, b.target));
        out.push((p, backends));
    }
}

/// Every port of the report, with the pods behind each.
pub(super) fn collect<'a>(input: &Input<'a>) -> Vec<(ExposedPort, Vec<Backend<'a>>)> {
    let inv = input.inventory;
    let mut out = Vec::new();
    for svc in inv.services.values() {
        service_ports(input, svc, &mut out);
    }
    // (workload, protocol, target) pairs some service fronts.
    let fronted: BTreeSet<(Entity, Protocol, u16)> = out
        .iter()
        .flat_map(|(p, b)| b.iter().map(move |b| ((input.workload_of)(b.pod), p.protocol, b.target)))
        .collect();
    let mut by_workload: BTreeMap<(Entity, Protocol, u16), Vec<&'a Pod>> = BTreeMap::new();
    // (workload, protocol, host port, container port) → its pods.
    let mut host_ports: BTreeMap<(Entity, Protocol, u16, u16), Vec<&'a Pod>> = BTreeMap::new();
    for pod in inv.pods.values() {
        let w = (input.workload_of)(pod);
        for (protocol, port) in &pod.declared {
            let on_host = pod.host_ports.iter().any(|h| h.protocol == *protocol && h.container == *port);
            if !on_host && !fronted.contains(&(w.clone(), *protocol, *port)) {
                by_workload.entry((w.clone(), *protocol, *port)).or_default().push(pod);
            }
        }
        for h in &pod.host_ports {
            host_ports.entry((w.clone(), h.protocol, h.host, h.container)).or_default().push(pod);
        }
    }
    for ((w, protocol, port), pods) in by_workload {
        let mut p = blank(w.namespace().unwrap_or_default(), protocol, port);
        p.declared_protocol = named(&pods, protocol, port).and_then(|n| AppProtocol::hinted(n, None));
        p.name = named(&pods, protocol, port).unwrap_or_default().to_string();
        p.workloads = vec![w];
        p.targets = vec![port];
        out.push((p, pods.into_iter().map(|pod| Backend { pod, target: port }).collect()));
    }
    for ((w, protocol, host, container), pods) in host_ports {
        let mut p = blank(w.namespace().unwrap_or_default(), protocol, host);
        p.class = ExposureClass::InternetFacing;
        let nodes: BTreeSet<&str> = pods.iter().map(|p| p.node.as_str()).collect();
        let nodes = nodes.into_iter().collect::<Vec<_>>().join(", ");
        p.exposed_by = vec![ExposedBy { via: Exposer::HostPort, detail: format!("hostPort {host} on node {nodes}") }];
        p.declared_protocol = named(&pods, protocol, container).and_then(|n| AppProtocol::hinted(n, None));
        p.workloads = vec![w];
        p.targets = vec![container];
        out.push((p, pods.into_iter().map(|pod| Backend { pod, target: container }).collect()));
    }
    for h in inv.host_network.values() {
        for (protocol, port) in &h.declared {
            let mut p = blank(&h.namespace, *protocol, *port);
            p.class = ExposureClass::InternetFacing;
            p.policed = false;
            p.exposed_by =
                vec![ExposedBy { via: Exposer::HostNetwork, detail: format!("host network of node {}", h.node) }];
            p.workloads = vec![Entity::Workload {
                namespace: h.namespace.as_str().into(),
                kind: "Pod".into(),
                name: h.name.as_str().into(),
            }];
            p.targets = vec![*port];
            p.can_reach.world =
                Some(format!("on node {}'s addresses: no pod policy applies to the host network", h.node));
            out.push((p, Vec::new()));
        }
    }
    undeclared(input, &mut out);
    out.sort_by(|(a, _), (b, _)| {
        let key = |p: &ExposedPort| {
            (p.namespace.clone(), p.service.clone(), p.workloads.first().cloned(), p.port, p.protocol)
        };
        key(a).cmp(&key(b))
    });
    out
}

/// The name a workload's pods give a container port.
fn named<'a>(pods: &[&'a Pod], protocol: Protocol, port: u16) -> Option<&'a str> {
    pods.iter().flat_map(|p| p.ports.iter()).find(|n| n.protocol == protocol && n.port == port).map(|n| n.name.as_str())
}

/// Ports traffic reached, or a pod listens on, that no entry covers:
/// nothing declares them.
fn undeclared<'a>(input: &Input<'a>, out: &mut Vec<(ExposedPort, Vec<Backend<'a>>)>) {
    let covered: BTreeSet<(Entity, u8, u16)> = out
        .iter()
        .flat_map(|(p, _)| {
            p.workloads.iter().flat_map(move |w| p.targets.iter().map(move |t| (w.clone(), p.protocol.number(), *t)))
        })
        .collect();
    let mut pods_of: BTreeMap<Entity, Vec<&'a Pod>> = BTreeMap::new();
    for pod in input.inventory.pods.values() {
        pods_of.entry((input.workload_of)(pod)).or_default().push(pod);
    }
    // Reached by traffic, then open on a pod's socket.
    let reached = input.observed.iter().filter_map(|(_, dst, key, _)| {
        Some((dst.clone(), Protocol::from_number(key.protocol)?, key.port))
            .filter(|_| matches!(dst, Entity::Workload { .. }))
    });
    let listened = input.inventory.pods.values().flat_map(|pod| {
        let w = (input.workload_of)(pod);
        let open = input.sockets.get(&pod.key()).map(|s| s.open.iter().copied().collect::<Vec<_>>());
        open.unwrap_or_default().into_iter().map(move |(pr, pt)| (w.clone(), pr, pt))
    });
    let mut seen = BTreeSet::new();
    for (dst, protocol, port) in reached.chain(listened) {
        if covered.contains(&(dst.clone(), protocol.number(), port)) || !seen.insert((dst.clone(), protocol, port)) {
            continue;
        }
        let pods = pods_of.get(&dst).cloned().unwrap_or_default();
        let mut p = blank(dst.namespace().unwrap_or_default(), protocol, port);
        p.workloads = vec![dst];
        p.targets = vec![port];
        p.declared = false;
        out.push((p, pods.into_iter().map(|pod| Backend { pod, target: port }).collect()));
    }
}

/// The sources of observed edges to one (destination, protocol, port).
type Arrivals<'a> = Vec<(&'a Entity, &'a EdgeStats)>;

/// Observed edges by (destination, protocol, port).
pub(super) struct ObservedIndex<'a> {
    by_dst: BTreeMap<(&'a Entity, u8, u16), Arrivals<'a>>,
}

impl<'a> ObservedIndex<'a> {
    pub(super) fn new(edges: &'a [(Entity, Entity, EdgeKey, EdgeStats)]) -> Self {
        let mut by_dst: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for (src, dst, key, stats) in edges {
            by_dst.entry((dst, key.protocol, key.port)).or_default().push((src, stats));
        }
        Self { by_dst }
    }

    /// Who connected to the port's workloads on its target ports.
    pub(super) fn reached(&self, p: &ExposedPort) -> Vec<Reached> {
        let mut by_src: BTreeMap<&Entity, Reached> = BTreeMap::new();
        for w in &p.workloads {
            for t in &p.targets {
                for (src, s) in self.by_dst.get(&(w, p.protocol.number(), *t)).into_iter().flatten() {
                    let r = by_src.entry(src).or_insert_with(|| Reached {
                        source: (*src).clone(),
                        connections: 0,
                        dropped: 0,
                        last_seen_ns: 0,
                    });
                    r.connections += s.connections;
                    r.dropped += s.dropped;
                    r.last_seen_ns = r.last_seen_ns.max(s.last_seen_ns);
                }
            }
        }
        let mut out: Vec<Reached> = by_src.into_values().collect();
        out.sort_by(|a, b| b.connections.cmp(&a.connections).then_with(|| a.source.cmp(&b.source)));
        out
    }
}
