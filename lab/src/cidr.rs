//! The lab's pod addresses: one IPv4 CIDR (`--pod-cidr`, default
//! 10.244.0.0/16) split into one block per node, the blocks together
//! covering all of it, so any address a manifest asks for with
//! `status.podIP` inside the CIDR belongs to exactly one node. (The bridge
//! plugin holds one IPv4 subnet per bridge, so each node gets one block.)
//! Gateways keep off the addresses manifests ask for.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::error::LabError;

/// The default pod CIDR.
pub const DEFAULT: &str = "10.244.0.0/16";

/// The plan: each node's block and its gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The block of each node, by node index (from 1).
    pub blocks: BTreeMap<usize, Ipv4Network>,
    /// The gateway of each node's block.
    pub gateways: BTreeMap<usize, Ipv4Addr>,
}

/// The pod CIDR `text`, checked: IPv4, no host bits, /24 or larger.
pub fn parse(text: &str) -> Result<Ipv4Network, LabError> {
    let cidr: Ipv4Network =
        text.parse().map_err(|e| LabError::Invalid(format!("--pod-cidr {text:?}: not an IPv4 CIDR: {e}")))?;
    if cidr.network() != cidr.ip() {
        return Err(LabError::Invalid(format!(
            "--pod-cidr {text}: host bits are set; did you mean {}/{}?",
            cidr.network(),
            cidr.prefix()
        )));
    }
    if cidr.prefix() > 24 {
        return Err(LabError::Invalid(format!("--pod-cidr {text}: too small; use a /24 or larger")));
    }
    Ok(cidr)
}

/// `cidr` split into `nodes` blocks that cover it exactly, in address
/// order: the largest block is halved until there are enough.
pub fn blocks(cidr: Ipv4Network, nodes: usize) -> Vec<Ipv4Network> {
    let mut out = vec![cidr];
    while out.len() < nodes.max(1) {
        let Some(i) = (0..out.len()).min_by_key(|i| (out[*i].prefix(), *i)) else { break };
        let b = out[i];
        let half = b.prefix() + 1;
        let (Ok(low), Ok(high)) = (
            Ipv4Network::new(b.network(), half),
            Ipv4Network::new(Ipv4Addr::from(u32::from(b.network()) + (1u32 << (32 - u32::from(half)))), half),
        ) else {
            break;
        };
        out.splice(i..=i, [low, high]);
    }
    out
}

/// Which node serves `ip` under `plan`, if it is inside the CIDR.
pub fn node_of(plan: &Plan, ip: Ipv4Addr) -> Option<usize> {
    plan.blocks.iter().find(|(_, b)| b.contains(ip)).map(|(n, _)| *n)
}

/// The plan for `nodes` nodes whose pods ask for `fixed` addresses.
pub fn plan(cidr: Ipv4Network, nodes: usize, fixed: &BTreeSet<Ipv4Addr>) -> Plan {
    let blocks: BTreeMap<usize, Ipv4Network> =
        blocks(cidr, nodes).into_iter().enumerate().map(|(i, b)| (i + 1, b)).collect();
    let mut gateways = BTreeMap::new();
    for (n, b) in &blocks {
        let (base, last) = (u32::from(b.network()), u32::from(b.broadcast()));
        // The first address unless a pod asks for it, then the highest free one.
        let candidates = std::iter::once(base + 1).chain(((base + 2)..last).rev());
        if let Some(gw) = candidates.map(Ipv4Addr::from).find(|a| !fixed.contains(a)) {
            gateways.insert(*n, gw);
        }
    }
    Plan { blocks, gateways }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blocks_cover_the_cidr_and_every_address_has_a_node() {
        let cidr = parse(DEFAULT).unwrap();
        let b: Vec<String> = blocks(cidr, 3).iter().map(|n| n.to_string()).collect();
        assert_eq!(b, ["10.244.0.0/18", "10.244.64.0/18", "10.244.128.0/17"]);
        let total: u64 = blocks(cidr, 5).iter().map(|n| 1u64 << (32 - u32::from(n.prefix()))).sum();
        assert_eq!(total, 1 << 16, "the blocks cover the whole CIDR");
        let fixed: BTreeSet<Ipv4Addr> = ["10.244.0.1", "10.244.200.9"].iter().map(|s| s.parse().unwrap()).collect();
        let p = plan(cidr, 2, &fixed);
        assert_eq!(node_of(&p, "10.244.1.77".parse().unwrap()), Some(1));
        assert_eq!(node_of(&p, "10.244.200.9".parse().unwrap()), Some(2));
        assert_eq!(node_of(&p, "10.245.0.1".parse().unwrap()), None);
        assert_eq!(p.gateways[&1], "10.244.127.254".parse::<Ipv4Addr>().unwrap(), "off the asked-for .1");
        assert_eq!(p.gateways[&2], "10.244.128.1".parse::<Ipv4Addr>().unwrap());
        assert!(parse("100.64.0.0/10").is_ok());
        assert!(parse("10.0.0.0/25").unwrap_err().to_string().contains("too small"));
        assert!(parse("10.0.0.1/16").unwrap_err().to_string().contains("host bits"));
    }
}
