//! The policy as the kernel holds it: exact/wildcard entries plus per-key
//! port-range sets, built from flat policy entries with deny-wins merging.
//! Pure data, so the transition logic can be proven without a kernel.

use std::collections::{BTreeMap, BTreeSet};

use crate::abi;
use crate::error::DataplaneError;
use crate::model::{Action, Direction, proto};

/// One rule as the agent receives it. `port == 0` means any port,
/// `protocol == 0` any protocol, `identity == 0` any peer; `end_port > port`
/// makes it a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyEntry {
    /// Dataplane id of the endpoint the rule applies to.
    pub endpoint_id: u32,
    /// Security identity of the peer; 0 means any.
    pub identity: u32,
    /// Direction of the traffic, relative to the pod.
    pub direction: Direction,
    /// IANA protocol number; 0 means any.
    pub protocol: u8,
    /// Port in host byte order; 0 means any (the range start if `end_port > port`).
    pub port: u16,
    /// Last port of the range, inclusive; ignored unless greater than `port`.
    pub end_port: u16,
    /// Allow or deny.
    pub action: Action,
    /// Id of the policy rule, reported in flow events.
    pub rule_id: u32,
}

/// Key of an exact or wildcard entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactKey {
    /// Dataplane id of the endpoint.
    pub endpoint_id: u32,
    /// Security identity of the peer; 0 means any.
    pub identity: u32,
    /// `Direction::code()` of the traffic.
    pub direction: u8,
    /// IANA protocol number; 0 means any.
    pub protocol: u8,
    /// Port in host byte order; 0 means any.
    pub port: u16,
}

impl ExactKey {
    pub(crate) fn to_abi(self) -> abi::bh_policy_key {
        abi::bh_policy_key {
            endpoint_id: self.endpoint_id,
            identity: self.identity,
            direction: self.direction,
            protocol: self.protocol,
            port: self.port,
        }
    }
    pub(crate) fn from_abi(k: &abi::bh_policy_key) -> Self {
        Self {
            endpoint_id: k.endpoint_id,
            identity: k.identity,
            direction: k.direction,
            protocol: k.protocol,
            port: k.port,
        }
    }
}

/// Key of a range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeKey {
    /// Dataplane id of the endpoint.
    pub endpoint_id: u32,
    /// Security identity of the peer; 0 means any.
    pub identity: u32,
    /// `Direction::code()` of the traffic.
    pub direction: u8,
    /// IANA protocol number.
    pub protocol: u8,
}

impl RangeKey {
    pub(crate) fn to_abi(self) -> abi::bh_range_key {
        abi::bh_range_key {
            endpoint_id: self.endpoint_id,
            identity: self.identity,
            direction: self.direction,
            protocol: self.protocol,
            _pad: 0,
        }
    }
    pub(crate) fn from_abi(k: &abi::bh_range_key) -> Self {
        Self { endpoint_id: k.endpoint_id, identity: k.identity, direction: k.direction, protocol: k.protocol }
    }
}

/// What a matching entry does, and which rule it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// Allow or deny.
    pub action: Action,
    /// Id of the policy rule, reported in flow events.
    pub rule_id: u32,
}

impl Rule {
    /// Deny wins; between equals the lower rule id, so merging is deterministic.
    pub fn merge(self, other: Rule) -> Rule {
        match (self.action, other.action) {
            (Action::Deny, Action::Allow) => self,
            (Action::Allow, Action::Deny) => other,
            _ if other.rule_id < self.rule_id => other,
            _ => self,
        }
    }
    pub(crate) fn to_abi(self) -> abi::bh_policy_value {
        abi::bh_policy_value { rule_id: self.rule_id, action: self.action.code(), _pad: [0; 3] }
    }
    pub(crate) fn from_abi(action: u8, rule_id: u32) -> Result<Self, DataplaneError> {
        Ok(Self { action: Action::try_from(action)?, rule_id })
    }
}

/// One port range of a range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port of the range, host byte order.
    pub lo: u16,
    /// Last port of the range, inclusive.
    pub hi: u16,
    /// What a port in the range matches.
    pub rule: Rule,
}

/// The ranges of one key, at most `BH_MAX_RANGES_PER_KEY`, checked in one bounded loop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeSet(pub BTreeSet<PortRange>);

/// Ranges per (endpoint, peer, direction, protocol) the kernel can hold.
pub const MAX_RANGES_PER_KEY: usize = abi::BH_MAX_RANGES_PER_KEY as usize;

impl RangeSet {
    pub(crate) fn to_abi(&self) -> Result<abi::bh_range_value, DataplaneError> {
        if self.0.len() > MAX_RANGES_PER_KEY {
            return Err(DataplaneError::Capacity { what: "port ranges for one peer", capacity: MAX_RANGES_PER_KEY });
        }
        let mut v = abi::bh_range_value { count: self.0.len() as u32, ..Default::default() };
        for (slot, r) in v.ranges.iter_mut().zip(self.0.iter()) {
            *slot = abi::bh_port_range {
                lo: r.lo,
                hi: r.hi,
                rule_id: r.rule.rule_id,
                action: r.rule.action.code(),
                _pad: [0; 3],
            };
        }
        Ok(v)
    }
    pub(crate) fn from_abi(v: &abi::bh_range_value) -> Result<Self, DataplaneError> {
        let mut set = BTreeSet::new();
        for r in v.ranges.iter().take((v.count as usize).min(MAX_RANGES_PER_KEY)) {
            set.insert(PortRange { lo: r.lo, hi: r.hi, rule: Rule::from_abi(r.action, r.rule_id)? });
        }
        Ok(Self(set))
    }
    /// The deny ranges only.
    pub fn denies(&self) -> RangeSet {
        RangeSet(self.0.iter().filter(|r| r.rule.action == Action::Deny).copied().collect())
    }
}

/// The whole policy of a node, as written to `bh_policy` and `bh_policy_ranges`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyTable {
    /// Exact and wildcard entries, for `bh_policy`.
    pub exact: BTreeMap<ExactKey, Rule>,
    /// Port-range sets, for `bh_policy_ranges`.
    pub ranges: BTreeMap<RangeKey, RangeSet>,
}

impl PolicyTable {
    /// Builds the table from flat entries. Entries on the same key merge
    /// (deny wins); a range over one port becomes an exact entry.
    pub fn build(entries: &[PolicyEntry]) -> Result<Self, DataplaneError> {
        let mut t = PolicyTable::default();
        for e in entries {
            let rule = Rule { action: e.action, rule_id: e.rule_id };
            let dir = e.direction.code();
            if e.end_port > e.port && e.port != 0 {
                let key =
                    RangeKey { endpoint_id: e.endpoint_id, identity: e.identity, direction: dir, protocol: e.protocol };
                t.ranges.entry(key).or_default().0.insert(PortRange { lo: e.port, hi: e.end_port, rule });
            } else {
                let key = ExactKey {
                    endpoint_id: e.endpoint_id,
                    identity: e.identity,
                    direction: dir,
                    protocol: e.protocol,
                    port: e.port,
                };
                t.exact.entry(key).and_modify(|r| *r = r.merge(rule)).or_insert(rule);
            }
        }
        if t.ranges.values().any(|s| s.0.len() > MAX_RANGES_PER_KEY) {
            return Err(DataplaneError::Capacity { what: "port ranges for one peer", capacity: MAX_RANGES_PER_KEY });
        }
        Ok(t)
    }

    /// Endpoints that have at least one range set (they get BH_EP_F_HAS_RANGES).
    pub fn endpoints_with_ranges(&self) -> BTreeSet<u32> {
        self.ranges.keys().map(|k| k.endpoint_id).collect()
    }

    /// Number of kernel entries (exact plus range sets).
    pub fn len(&self) -> usize {
        self.exact.len() + self.ranges.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.ranges.is_empty()
    }

    /// The reference decision, mirroring `bh_policy_decide` in `lib/policy.h`:
    /// `Some(rule)` when an entry matched, deny winning; `None` to fall back to
    /// the direction's isolation.
    pub fn decide(&self, endpoint_id: u32, remote: u32, dir: Direction, protocol: u8, port: u16) -> Option<Rule> {
        let has_ports = matches!(protocol, proto::TCP | proto::UDP | proto::SCTP);
        let mut allow: Option<Rule> = None;
        let mut deny: Option<Rule> = None;
        let mut note = |r: Rule| {
            let slot = if r.action == Action::Deny { &mut deny } else { &mut allow };
            if slot.is_none() {
                *slot = Some(r);
            }
        };
        let peers: &[u32] = if remote == abi::BH_ID_ANY { &[0] } else { &[remote, 0] };
        let d = dir.code();
        for &id in peers {
            let exact = |p: u8, port: u16| ExactKey { endpoint_id, identity: id, direction: d, protocol: p, port };
            if has_ports && port != 0 {
                if let Some(r) = self.exact.get(&exact(protocol, port)) {
                    note(*r);
                }
                let rk = RangeKey { endpoint_id, identity: id, direction: d, protocol };
                if let Some(set) = self.ranges.get(&rk) {
                    for r in set.0.iter().filter(|r| port >= r.lo && port <= r.hi) {
                        note(r.rule);
                    }
                }
            }
            if let Some(r) = self.exact.get(&exact(protocol, 0)) {
                note(*r);
            }
            if let Some(r) = self.exact.get(&exact(0, 0)) {
                note(*r);
            }
        }
        deny.or(allow)
    }
}
