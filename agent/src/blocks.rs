//! The cluster's block list on this node: parsed from the desired state,
//! written to `bh_blocklist`, and lifted by the agent itself when a block
//! expires, so a block ends on time even while the controller is away.
//! A new block also forgets the conntrack entries it covers: established
//! traffic does not read the block list, so their next packet is decided
//! again and dropped.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_api::agent::v1 as pb;
use bulkhead_dataplane::{Maps, abi};
use ipnetwork::IpNetwork;

use crate::error::AgentError;

/// One blocked prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockItem {
    /// The controller's id, stored in the map entry.
    pub id: u32,
    /// The prefix; host bits are zero.
    pub net: IpNetwork,
    /// When it ends, nanoseconds since the epoch; `None` until lifted.
    pub expires_ns: Option<i64>,
}

impl BlockItem {
    /// Whether it is still in force at `now_ns` (wall clock).
    pub fn active(&self, now_ns: i64) -> bool {
        self.expires_ns.is_none_or(|t| now_ns < t)
    }
}

/// Validates the wire's block list: every CIDR exact, no prefix twice, ids in range.
pub fn parse(entries: Vec<pb::BlockEntry>) -> Result<Vec<BlockItem>, AgentError> {
    if entries.len() > abi::BH_MAX_BLOCKS as usize {
        return Err(AgentError::invalid(
            "blocks",
            format!("{} blocked prefixes; the node holds at most {}", entries.len(), abi::BH_MAX_BLOCKS),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let field = |x: &str| format!("blocks[{i}].{x}");
        let net: IpNetwork = e
            .cidr
            .parse()
            .map_err(|err| AgentError::invalid(field("cidr"), format!("invalid CIDR {:?}: {err}", e.cidr)))?;
        if net.network() != net.ip() {
            return Err(AgentError::invalid(
                field("cidr"),
                format!("{} has host bits set; did you mean {}/{}?", e.cidr, net.network(), net.prefix()),
            ));
        }
        let id = u32::try_from(e.id)
            .ok()
            .filter(|id| *id != 0)
            .ok_or_else(|| AgentError::invalid(field("id"), format!("{} is outside 1..{}", e.id, u32::MAX)))?;
        if !seen.insert(net) {
            return Err(AgentError::invalid(field("cidr"), format!("{net} listed twice")));
        }
        let expires_ns = (e.expires_ns != 0).then_some(e.expires_ns);
        out.push(BlockItem { id, net, expires_ns });
    }
    Ok(out)
}

/// What one sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Prefixes written (new, or with another id).
    pub added: usize,
    /// Prefixes lifted (gone from the list, or expired).
    pub removed: usize,
    /// Conntrack entries forgotten because a new block covers them.
    pub connections_cut: usize,
}

impl Synced {
    /// Map writes, for the apply report.
    pub fn writes(&self) -> u32 {
        (self.added + self.removed) as u32
    }
}

/// Makes `bh_blocklist` hold exactly the blocks of `wanted` in force at `now_ns`.
pub fn sync(maps: &mut Maps, wanted: &[BlockItem], now_ns: i64) -> Result<Synced, AgentError> {
    let want: BTreeMap<IpNetwork, u32> = wanted.iter().filter(|b| b.active(now_ns)).map(|b| (b.net, b.id)).collect();
    let have: BTreeMap<IpNetwork, u32> = maps.blocks()?.into_iter().collect();
    let mut done = Synced::default();
    let mut new_nets = Vec::new();
    for (net, id) in &want {
        if have.get(net) != Some(id) {
            maps.put_block(net, *id)?;
            done.added += 1;
            if !have.contains_key(net) {
                new_nets.push(*net);
            }
        }
    }
    for net in have.keys().filter(|n| !want.contains_key(n)) {
        maps.remove_block(net)?;
        done.removed += 1;
    }
    done.connections_cut = maps.forget_connections_of(&new_nets)?;
    if done != Synced::default() {
        tracing::info!(
            added = done.added,
            removed = done.removed,
            connections_cut = done.connections_cut,
            in_force = want.len(),
            "block list synced"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, cidr: &str) -> pb::BlockEntry {
        pb::BlockEntry { id, cidr: cidr.into(), expires_ns: 0 }
    }

    fn err(entries: Vec<pb::BlockEntry>) -> String {
        parse(entries).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn bad_entries_are_refused_with_the_field_named() {
        assert!(err(vec![entry(1, "10.0.0.1/24")]).contains("blocks[0].cidr: 10.0.0.1/24 has host bits set"));
        assert!(err(vec![entry(1, "10.0.0.0/33")]).contains("blocks[0].cidr: invalid CIDR"));
        assert!(err(vec![entry(0, "10.0.0.0/8")]).contains("blocks[0].id"));
        assert!(err(vec![entry(1 << 32, "10.0.0.0/8")]).contains("blocks[0].id"));
        assert!(
            err(vec![entry(1, "10.0.0.0/8"), entry(2, "10.0.0.0/8")])
                .contains("blocks[1].cidr: 10.0.0.0/8 listed twice")
        );
        let ok = parse(vec![pb::BlockEntry { id: 3, cidr: "2001:db8::/32".into(), expires_ns: 5 }]).unwrap();
        assert_eq!(ok[0].expires_ns, Some(5));
        assert!(ok[0].active(4) && !ok[0].active(5));
    }
}
