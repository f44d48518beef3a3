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
}

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
    for s in services.iter_mut() {
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
    for s in services.iter_mut().filter(|s| s.cluster_ip.is_unspecified()) {
        while used.contains(&Ipv4Addr::from(next)) {
            next += 1;
        }
        if next > u32::from(Ipv4Addr::new(10, 96, 255, 254)) {
            return Err(LabError::Invalid("the lab's service range 10.96.0.0/16 is full".into()));
        }
        s.cluster_ip = Ipv4Addr::from(next);
        used.insert(s.cluster_ip);
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

/// The backends of one service port: (pod address, target port).
pub fn backends(lab: &LabState, svc: &ServiceState, port: &ServicePort) -> Vec<(Ipv4Addr, u16)> {
    if svc.selector.is_empty() {
        return Vec::new();
    }
    lab.pods
        .iter()
        .filter(|p| p.namespace == svc.namespace && svc.selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
        .filter_map(|p| {
            let ip = p.ips.iter().find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })?;
            let target = match &port.target {
                Target::Number(n) => Some(*n),
                Target::Named(name) => named_port(p, name, port.udp),
            }?;
            Some((ip, target))
        })
        .collect()
}

/// The nftables program of every node: DNAT of each service port.
pub fn ruleset(lab: &LabState) -> String {
    let mut rules = String::new();
    for svc in &lab.services {
        for port in &svc.ports {
            let proto = if port.udp { "udp" } else { "tcp" };
            let be = backends(lab, svc, port);
            let matcher = format!("ip daddr {} {proto} dport {}", svc.cluster_ip, port.port);
            if be.is_empty() {
                rules.push_str(&format!("    {matcher} reject\n"));
                continue;
            }
            let map: Vec<String> = be.iter().enumerate().map(|(i, (ip, p))| format!("{i} : {ip} . {p}")).collect();
            rules.push_str(&format!(
                "    {matcher} dnat ip to numgen random mod {} map {{ {} }}\n",
                be.len(),
                map.join(", ")
            ));
        }
    }
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n  chain services {{\n{rules}  }}\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n    jump services\n  }}\n}}\n"
    )
}

/// Programs every node. Bridged traffic between pods of one node must pass
/// the IP hooks for DNAT replies to be translated back, as kube-proxy
/// requires (br_netfilter).
pub fn program(lab: &LabState) -> Result<(), LabError> {
    let rules = ruleset(lab);
    for n in &lab.nodes {
        if lab.cni == "bridge" {
            crate::shell::in_ns(&n.netns, &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])?;
        }
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
