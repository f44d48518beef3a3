//! The lab's pod addresses: one IPv4 CIDR (`--pod-cidr`, default
//! 10.244.0.0/16) cut into /24 slices. Node N allocates from slice N (so
//! the default gives node 1 10.244.1.0/24, as before); any address a
//! manifest asks for with `status.podIP` is honoured when it is inside the
//! CIDR: its slice is added to node ((slice - 1) mod nodes) + 1 (slice 0 to
//! the last node). Gateways keep off the addresses manifests ask for.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::error::LabError;

/// The default pod CIDR.
pub const DEFAULT: &str = "10.244.0.0/16";

/// The plan: which slices each node serves and each slice's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Slices by node index (from 1), the node's own slice first.
    pub slices: BTreeMap<usize, Vec<Ipv4Network>>,
    /// The gateway of each slice.
    pub gateways: BTreeMap<Ipv4Network, Ipv4Addr>,
}

fn slice(cidr: Ipv4Network, k: u32) -> Option<Ipv4Network> {
    let base = u32::from(cidr.network());
    let count = 1u32.checked_shl(24u32.saturating_sub(u32::from(cidr.prefix())))?;
    if k >= count {
        return None;
    }
    Ipv4Network::new(Ipv4Addr::from(base + (k << 8)), 24).ok()
}

/// The pod CIDR `text`, checked: a /24 or larger, with a slice for every node.
pub fn parse(text: &str, nodes: usize) -> Result<Ipv4Network, LabError> {
    let cidr: Ipv4Network =
        text.parse().map_err(|e| LabError::Invalid(format!("--pod-cidr {text:?}: not an IPv4 CIDR: {e}")))?;
    if cidr.network() != cidr.ip() {
        return Err(LabError::Invalid(format!(
            "--pod-cidr {text}: host bits are set; did you mean {}/{}?",
            cidr.network(),
            cidr.prefix()
        )));
    }
    if cidr.prefix() > 24 || slice(cidr, nodes as u32).is_none() {
        return Err(LabError::Invalid(format!(
            "--pod-cidr {text}: too small for {nodes} nodes; each node needs a /24 (use a /{} or larger)",
            24 - (usize::BITS - nodes.leading_zeros()).min(24)
        )));
    }
    Ok(cidr)
}

/// Which node serves `ip` of `cidr`, if it is inside it.
pub fn node_of(cidr: Ipv4Network, ip: Ipv4Addr, nodes: usize) -> Option<usize> {
    if !cidr.contains(ip) {
        return None;
    }
    let k = (u32::from(ip) - u32::from(cidr.network())) >> 8;
    Some(if k == 0 { nodes } else { ((k as usize - 1) % nodes) + 1 })
}

/// The plan for `nodes` nodes whose pods ask for `fixed` addresses.
pub fn plan(cidr: Ipv4Network, nodes: usize, fixed: &BTreeSet<Ipv4Addr>) -> Plan {
    let mut slices: BTreeMap<usize, Vec<Ipv4Network>> = BTreeMap::new();
    for n in 1..=nodes {
        slices.entry(n).or_default().extend(slice(cidr, n as u32));
    }
    for ip in fixed {
        if let (Some(node), Ok(s)) = (node_of(cidr, *ip, nodes), Ipv4Network::new(*ip, 24)) {
            let s = Ipv4Network::new(s.network(), 24).unwrap_or(s);
            let list = slices.entry(node).or_default();
            if !list.contains(&s) {
                list.push(s);
            }
        }
    }
    let mut gateways = BTreeMap::new();
    for s in slices.values().flatten() {
        let base = u32::from(s.network());
        // .1 unless a pod asks for it, then the highest free address.
        let candidates = std::iter::once(1).chain((2..255).rev());
        if let Some(gw) = candidates.map(|h| Ipv4Addr::from(base + h)).find(|a| !fixed.contains(a)) {
            gateways.insert(*s, gw);
        }
    }
    Plan { slices, gateways }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slices_default_to_the_old_layout_and_honour_any_fixed_address() {
        let cidr = parse(DEFAULT, 2).unwrap();
        let fixed: BTreeSet<Ipv4Addr> =
            ["10.244.1.1", "10.244.7.9", "10.244.0.3"].iter().map(|s| s.parse().unwrap()).collect();
        let p = plan(cidr, 2, &fixed);
        assert_eq!(p.slices[&1][0].to_string(), "10.244.1.0/24");
        assert_eq!(p.slices[&2][0].to_string(), "10.244.2.0/24");
        // 7 -> node ((7 - 1) mod 2) + 1 = 1; 0 -> the last node.
        assert!(p.slices[&1].iter().any(|s| s.to_string() == "10.244.7.0/24"));
        assert!(p.slices[&2].iter().any(|s| s.to_string() == "10.244.0.0/24"));
        assert_eq!(p.gateways[&"10.244.1.0/24".parse().unwrap()], "10.244.1.254".parse::<Ipv4Addr>().unwrap());
        assert_eq!(p.gateways[&"10.244.2.0/24".parse().unwrap()], "10.244.2.1".parse::<Ipv4Addr>().unwrap());
        let k3s = parse("10.42.0.0/16", 3).unwrap();
        assert_eq!(node_of(k3s, "10.42.5.4".parse().unwrap(), 3), Some(2));
        assert_eq!(node_of(k3s, "10.43.0.1".parse().unwrap(), 3), None);
        assert!(parse("100.64.0.0/10", 16).is_ok());
        assert!(parse("10.0.0.0/25", 1).unwrap_err().to_string().contains("too small"));
        assert!(parse("10.1.2.0/23", 2).unwrap_err().to_string().contains("too small"));
        assert!(parse("10.0.0.1/16", 1).unwrap_err().to_string().contains("host bits"));
    }
}
