//! Two labs as two clusters with routed pod networks: a router namespace
//! with a leg on each lab's fabric routes each lab's pod blocks to the node
//! that holds them, and every node routes the other lab's pod CIDR to the
//! router. No NAT: a pod's address is its identity on the other side. The
//! router belongs to the first lab (`bh_<lab>_link`), so `lab down` of
//! either removes it or cuts it off.

use crate::error::LabError;
use crate::lifecycle::{fabric_netns, ns_prefix};
use crate::shell::{in_ns, run};
use crate::state::LabState;

/// The router's address on each fabric (the fabrics' addresses overlap, so
/// each route names its interface).
const ROUTER_IP: &str = "172.30.0.249";

/// The router namespace of `lab`'s link.
pub fn router_netns(lab: &str) -> String {
    format!("{}link", ns_prefix(lab))
}

fn cidr(s: &LabState) -> Result<ipnetwork::Ipv4Network, LabError> {
    s.pod_cidr.parse().map_err(|e| LabError::Invalid(format!("lab {}: pod CIDR {:?}: {e}", s.name, s.pod_cidr)))
}

/// Routes `a`'s and `b`'s pod networks to each other. Their pod CIDRs
/// must not overlap (`lab up --pod-cidr`); a lab links to one other lab.
pub fn link(a: &LabState, b: &LabState) -> Result<(), LabError> {
    let (ca, cb) = (cidr(a)?, cidr(b)?);
    if a.name == b.name {
        return Err(LabError::Invalid(format!("lab {} cannot be linked to itself", a.name)));
    }
    if ca.overlaps(cb) {
        return Err(LabError::Invalid(format!(
            "labs {} and {} have overlapping pod CIDRs {ca} and {cb}: bring one up with another --pod-cidr",
            a.name, b.name
        )));
    }
    for l in [a, b] {
        let fabric = fabric_netns(&l.name);
        if run("ip", &["-n", &fabric, "link", "show", "dev", "bhlink"]).is_ok() {
            return Err(LabError::Invalid(format!("lab {} is linked already (a lab links to one other lab)", l.name)));
        }
    }
    let router = router_netns(&a.name);
    run("ip", &["netns", "add", &router])?;
    let built = build(a, b, &router, ca, cb);
    if built.is_err() {
        // Deleting the router deletes both legs, so nothing is half-linked.
        let _ = run("ip", &["netns", "del", &router]);
    }
    built
}

fn build(
    a: &LabState,
    b: &LabState,
    router: &str,
    ca: ipnetwork::Ipv4Network,
    cb: ipnetwork::Ipv4Network,
) -> Result<(), LabError> {
    run("ip", &["-n", router, "link", "set", "dev", "lo", "up"])?;
    in_ns(router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    for (l, leg, other) in [(a, "lega", cb), (b, "legb", ca)] {
        let fabric = fabric_netns(&l.name);
        run("ip", &["-n", &fabric, "link", "add", "bhlink", "type", "veth", "peer", "name", leg, "netns", router])?;
        run("ip", &["-n", &fabric, "link", "set", "dev", "bhlink", "master", "fab0", "up"])?;
        run("ip", &["-n", router, "addr", "add", &format!("{ROUTER_IP}/24"), "dev", leg])?;
        run("ip", &["-n", router, "link", "set", "dev", leg, "up"])?;
        for node in &l.nodes {
            let via = node.node_ip.to_string();
            run("ip", &["-n", router, "route", "replace", &node.pod_cidr_v4, "via", &via, "dev", leg])?;
            run("ip", &["-n", &node.netns, "route", "replace", &other.to_string(), "via", ROUTER_IP])?;
        }
    }
    Ok(())
}
