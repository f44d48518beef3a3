//! Services in the lab, the way kube-proxy does them: a ClusterIP per
//! service (from 10.96.0.0/16; kube-dns gets 10.96.0.10) and, in every node
//! namespace, nftables DNAT from ClusterIP:port to a random ready backend on
//! its target port. A port without backends is rejected, as kube-proxy does.
//! IPv4 only.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::state::{LabState, PodState};

/// ClusterIP of the lab's DNS service.
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// nftables table the lab owns in each node namespace.
const TABLE: &str = "bulkhead_services";

/// Where a service port sends traffic on its backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A port number.
    Number(u16),
    /// A container port name, resolved per backend.
    Named(String),
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Port name ("" when unnamed).
    #[serde(default)]
    pub name: String,
    /// The port on the ClusterIP.
    pub port: u16,
    /// The port on the backend.
    pub target: Target,
    /// UDP instead of TCP.
    pub udp: bool,
    /// The port on every node, for NodePort and LoadBalancer services.
    #[serde(default)]
    pub node_port: Option<u16>,
    /// `appProtocol`, passed to the controller as written.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// A service's `spec.type`, as far as the lab implements it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A ClusterIP (or a headless service).
    #[default]
    ClusterIP,
    /// Also a port on every node.
    NodePort,
    /// Also a port on the load balancer's address, which in the lab is
    /// node 1's fabric address (as MetalLB in layer 2 mode would announce).
    LoadBalancer,
}

/// A service as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod selector (empty selects nothing).
    pub selector: std::collections::BTreeMap<String, String>,
    /// Requested ClusterIP, if the manifest fixes one.
    #[serde(default)]
    pub requested_ip: Option<Ipv4Addr>,
    /// Allocated ClusterIP.
    #[serde(default = "unallocated")]
    pub cluster_ip: Ipv4Addr,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `spec.type`.
    #[serde(default)]
    pub kind: Kind,
    /// `clusterIP: None`: no ClusterIP, DNS answers with the pods.
    #[serde(default)]
    pub headless: bool,
    /// `externalTrafficPolicy: Local`: node ports and the load balancer send
    /// to the pods of the node the traffic reached only, keeping the client's
    /// address; otherwise to any pod, with the client's address replaced by
    /// the node's (kube-proxy's SNAT).
    #[serde(default)]
    pub local_traffic: bool,
    /// The load balancer's address, once allocated.
    #[serde(default)]
    pub load_balancer_ip: Option<Ipv4Addr>,
}

/// The range node ports are allocated from, as the API server's default.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// The packet mark of node-port traffic kube-proxy-style SNAT applies to.
const SNAT_MARK: &str = "0x4000";

fn unallocated() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

impl ServiceState {
    /// "namespace/name".
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Gives every service its ClusterIP: the requested one, the one it had, or
/// the next free address of 10.96.1.0 onwards.
pub fn allocate(services: &mut [ServiceState], previous: &[ServiceState]) -> Result<(), LabError> {
    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::from([DNS_IP]);
    for s in services.iter_mut().filter(|s| !s.headless) {
        let kept = previous.iter().find(|p| p.key() == s.key()).map(|p| p.cluster_ip);
        let ip = s.requested_ip.or(kept).filter(|ip| !ip.is_unspecified());
        if let Some(ip) = ip {
            let [a, b, _, _] = ip.octets();
            if (a, b) != (10, 96) {
                return Err(LabError::Invalid(format!("service {}: clusterIP {ip} is outside 10.96.0.0/16", s.key())));
            }
            let is_dns = s.namespace == "kube-system" && s.name == "kube-dns";
            if (ip == DNS_IP && !is_dns) || (ip != DNS_IP && !used.insert(ip)) {
                return Err(LabError::Invalid(format!("service {}: clusterIP {ip} is taken", s.key())));
            }
            s.cluster_ip = ip;
        }
    }
    let mut next = u32::from(Ipv4Addr::new(10, 96, 1, 1));
    for s in services.iter_mut().filter(|s| s.cluster_ip.is_unspecified() && !s.headless) {
        while used.contains(&Ipv4Addr::from(next)) {
            next += 1;
        }
        if next > u32::from(Ipv4Addr::new(10, 96, 255, 254)) {
            return Err(LabError::Invalid("the lab's service range 10.96.0.0/16 is full".into()));
        }
        s.cluster_ip = Ipv4Addr::from(next);
        used.insert(s.cluster_ip);
    }
    allocate_node_ports(services, previous)
}

/// Gives every port of a NodePort or LoadBalancer service its node port:
/// the requested one, the one it had, or the next free one.
fn allocate_node_ports(services: &mut [ServiceState], previous: &[ServiceState]) -> Result<(), LabError> {
    let mut used: BTreeSet<(bool, u16)> = BTreeSet::new();
    for s in services.iter() {
        for p in s.ports.iter().filter(|_| s.kind != Kind::ClusterIP) {
            if let Some(n) = p.node_port
                && !used.insert((p.udp, n))
            {
                return Err(LabError::Invalid(format!("service {}: nodePort {n} is taken", s.key())));
            }
        }
    }
    for s in services.iter_mut().filter(|s| s.kind != Kind::ClusterIP) {
        let key = s.key();
        for p in s.ports.iter_mut().filter(|p| p.node_port.is_none()) {
            let kept = previous
                .iter()
                .find(|o| o.key() == key)
                .and_then(|o| o.ports.iter().find(|q| q.port == p.port && q.udp == p.udp))
                .and_then(|q| q.node_port)
                .filter(|n| !used.contains(&(p.udp, *n)));
            let n = kept
                .or_else(|| NODE_PORTS.clone().find(|n| !used.contains(&(p.udp, *n))))
                .ok_or_else(|| LabError::Invalid(format!("service {key}: the node port range 30000-32767 is full")))?;
            used.insert((p.udp, n));
            p.node_port = Some(n);
        }
    }
    Ok(())
}

/// The named container ports of a pod, from its `spec.containers`.
fn named_port(pod: &PodState, name: &str, udp: bool) -> Option<u16> {
    let want = if udp { "UDP" } else { "TCP" };
    pod.containers.as_array()?.iter().flat_map(|c| c["ports"].as_array().into_iter().flatten()).find_map(|p| {
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        (p["name"].as_str() == Some(name) && proto == want)
            .then(|| p["containerPort"].as_u64())?
            .and_then(|n| u16::try_from(n).ok())
    })
}

/// Gives each LoadBalancer service its address: a node's fabric address, as
/// a layer-2 load balancer would announce it. With `externalTrafficPolicy:
/// Local` it is the first node running a backend (the others would refuse
/// the traffic), otherwise node 1.
pub fn place_load_balancers(lab: &mut LabState) {
    let mut placed = Vec::new();
    for (i, svc) in lab.services.iter().enumerate().filter(|(_, s)| s.kind == Kind::LoadBalancer) {
        let node = if svc.local_traffic { selected(lab, svc).iter().map(|p| p.node).min() } else { None };
        let node = node.or_else(|| lab.nodes.iter().map(|n| n.index).min());
        let ip = lab.nodes.iter().find(|n| Some(n.index) == node).and_then(|n| match n.node_ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        });
        placed.push((i, ip));
    }
    for (i, ip) in placed {
        lab.services[i].load_balancer_ip = ip;
    }
}

/// The pods a service selects (none for an empty selector).
pub fn selected<'a>(lab: &'a LabState, svc: &ServiceState) -> Vec<&'a PodState> {
    if svc.selector.is_empty() {
        return Vec::new();
    }
    lab.pods
        .iter()
        .filter(|p| p.namespace == svc.namespace && svc.selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
        .collect()
}

/// A pod's IPv4 address.
pub fn ipv4(p: &PodState) -> Option<Ipv4Addr> {
    p.ips.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    })
}

/// The backends of one service port: (pod, address, target port).
fn backends_of<'a>(lab: &'a LabState, svc: &ServiceState, port: &ServicePort) -> Vec<(&'a PodState, Ipv4Addr, u16)> {
    selected(lab, svc)
        .into_iter()
        .filter_map(|p| {
            let target = match &port.target {
                Target::Number(n) => Some(*n),
                Target::Named(name) => named_port(p, name, port.udp),
            }?;
            Some((p, ipv4(p)?, target))
        })
        .collect()
}

/// The backends of one service port: (pod address, target port).
pub fn backends(lab: &LabState, svc: &ServiceState, port: &ServicePort) -> Vec<(Ipv4Addr, u16)> {
    backends_of(lab, svc, port).into_iter().map(|(_, ip, t)| (ip, t)).collect()
}

/// One DNAT rule: to a random backend, or refused when there is none.
fn dnat(matcher: &str, mark: bool, backends: &[(Ipv4Addr, u16)]) -> String {
    if backends.is_empty() {
        return format!("    {matcher} reject\n");
    }
    let map: Vec<String> = backends.iter().enumerate().map(|(i, (ip, p))| format!("{i} : {ip} . {p}")).collect();
    let mark = if mark { format!("meta mark set {SNAT_MARK} ") } else { String::new() };
    format!("    {matcher} {mark}dnat ip to numgen random mod {} map {{ {} }}\n", backends.len(), map.join(", "))
}

/// The nftables program of node `node`: DNAT of each ClusterIP port, of
/// each node port on the node's own addresses and of each load-balancer
/// address, and kube-proxy's SNAT of outside traffic that may leave for a
/// pod elsewhere.
pub fn ruleset(lab: &LabState, node: usize) -> String {
    let mut rules = String::new();
    let node_ip = lab.nodes.iter().find(|n| n.index == node).map(|n| n.node_ip.to_string()).unwrap_or_default();
    for svc in &lab.services {
        for port in &svc.ports {
            let proto = if port.udp { "udp" } else { "tcp" };
            let all = backends_of(lab, svc, port);
            let be: Vec<(Ipv4Addr, u16)> = all.iter().map(|(_, ip, t)| (*ip, *t)).collect();
            if !svc.headless {
                rules.push_str(&dnat(&format!("ip daddr {} {proto} dport {}", svc.cluster_ip, port.port), false, &be));
            }
            if svc.kind == Kind::ClusterIP {
                continue;
            }
            // Outside traffic: Local keeps the client's address and this node's pods only.
            let outside: Vec<(Ipv4Addr, u16)> = if svc.local_traffic {
                all.iter().filter(|(p, ..)| p.node == node).map(|(_, ip, t)| (*ip, *t)).collect()
            } else {
                be.clone()
            };
            if let Some(np) = port.node_port {
                let m = format!("fib daddr type local {proto} dport {np}");
                rules.push_str(&dnat(&m, !svc.local_traffic, &outside));
            }
            if let Some(lb) = svc.load_balancer_ip.filter(|_| svc.kind == Kind::LoadBalancer) {
                let m = format!("ip daddr {lb} {proto} dport {}", port.port);
                rules.push_str(&dnat(&m, !svc.local_traffic, &outside));
            }
        }
    }
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n  chain services {{\n{rules}  }}\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n    jump services\n  }}\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    meta mark {SNAT_MARK} snat ip to {node_ip}\n  }}\n}}\n"
    )
}

/// Programs every node. Bridged traffic between pods of one node must pass
/// the IP hooks for DNAT replies to be translated back, as kube-proxy
/// requires (br_netfilter).
pub fn program(lab: &LabState) -> Result<(), LabError> {
    for n in &lab.nodes {
        if lab.cni == "bridge" {
            crate::shell::in_ns(&n.netns, &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])?;
        }
        let rules = ruleset(lab, n.index);
        crate::shell::run_with("ip", &["netns", "exec", &n.netns, "nft", "-f", "-"], &[], Some(&rules))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ip: Option<Ipv4Addr>) -> ServiceState {
        ServiceState {
            namespace: "x".into(),
            name: name.into(),
            selector: Default::default(),
            requested_ip: ip,
            cluster_ip: Ipv4Addr::UNSPECIFIED,
            ports: vec![],
            kind: Kind::ClusterIP,
            headless: false,
            local_traffic: false,
            load_balancer_ip: None,
        }
    }

    #[test]
    fn cluster_ips_are_stable_and_never_shared() {
        let mut first = vec![svc("a", None), svc("b", Some(Ipv4Addr::new(10, 96, 1, 1)))];
        allocate(&mut first, &[]).unwrap();
        assert_eq!(first[1].cluster_ip, Ipv4Addr::new(10, 96, 1, 1));
        assert_eq!(first[0].cluster_ip, Ipv4Addr::new(10, 96, 1, 2));
        let mut again = vec![svc("c", None), svc("a", None)];
        allocate(&mut again, &first).unwrap();
        assert_eq!(again[1].cluster_ip, first[0].cluster_ip, "a keeps its address");
        assert_ne!(again[0].cluster_ip, again[1].cluster_ip);
        let mut bad = vec![svc("d", Some(Ipv4Addr::new(192, 0, 2, 1)))];
        assert!(allocate(&mut bad, &[]).is_err());
    }
}
