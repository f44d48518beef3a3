//! Moving the kernel from one desired state to the next without a window.
//!
//! Each map write is atomic on its own, but a state change is many writes.
//! The order below guarantees, at every intermediate point, that:
//!   - nothing denied by both the old and the new state is ever allowed, and
//!   - an established connection is never touched (conntrack keeps it).
//!
//! A. Add the new denies to the old table; raise isolation to old OR new.
//! B. Add the new allows.
//! C. Remove the old allows (allows are now exactly the new ones).
//! D. Remove the old denies (every key takes its new value).
//! E. Write the endpoints as desired (isolation, modes); remove vanished ones.
//!
//! The argument: through A and B the allows are old ones (whose old denies are
//! all present) or new ones (whose new denies are all present); through C and D
//! the allows are new ones only, and denies only shrink once no old allow is
//! left. Isolation stays at the union until E. The property test below replays
//! every prefix of random plans against the reference decision.

use std::collections::BTreeMap;

use crate::error::DataplaneError;
use crate::maps::{EndpointEntry, Maps};
use crate::model::Action;
use crate::table::{ExactKey, MAX_RANGES_PER_KEY, PolicyTable, RangeKey, RangeSet, Rule};

/// Endpoints keyed by host ifindex plus the policy table: all a node enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelState {
    /// Endpoints keyed by host-side ifindex.
    pub endpoints: BTreeMap<u32, EndpointEntry>,
    /// The policy entries the node enforces.
    pub table: PolicyTable,
}

/// One map write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write one exact or wildcard policy entry.
    PutExact(ExactKey, Rule),
    /// Delete one exact or wildcard policy entry.
    RemoveExact(ExactKey),
    /// Write the port-range set of one key.
    PutRanges(RangeKey, RangeSet),
    /// Delete the port-range set of one key.
    RemoveRanges(RangeKey),
    /// Write one endpoint.
    PutEndpoint(EndpointEntry),
    /// Delete the endpoint on this host-side ifindex.
    RemoveEndpoint(u32),
}

fn merged_ranges(old: Option<&RangeSet>, new: &RangeSet) -> Result<RangeSet, DataplaneError> {
    let Some(old) = old else {
        return Ok(new.clone());
    };
    let mut all = new.clone();
    all.0.extend(old.0.iter().copied());
    if all.0.len() <= MAX_RANGES_PER_KEY {
        return Ok(all);
    }
    // Too many to hold both: keep every deny and the new allows; old allows may go early.
    let mut kept = new.clone();
    kept.0.extend(old.denies().0);
    if kept.0.len() <= MAX_RANGES_PER_KEY {
        return Ok(kept);
    }
    Err(DataplaneError::Capacity {
        what: "port ranges for one peer during a policy change",
        capacity: MAX_RANGES_PER_KEY,
    })
}

/// The ordered writes that take the kernel from `old` to `new`.
pub fn plan(old: &KernelState, new: &KernelState) -> Result<Vec<Op>, DataplaneError> {
    let mut ops = Vec::new();
    let (oe, ne) = (&old.table.exact, &new.table.exact);
    let (or, nr) = (&old.table.ranges, &new.table.ranges);

    // A. add new denies on top of the old table, then raise isolation
    for (k, r) in ne {
        let v = oe.get(k).map_or(*r, |o| o.merge(*r));
        if r.action == Action::Deny && oe.get(k) != Some(&v) {
            ops.push(Op::PutExact(*k, v));
        }
    }
    for (k, set) in nr {
        let denies = set.denies();
        if !denies.0.is_empty() {
            ops.push(Op::PutRanges(*k, merged_ranges(or.get(k), &denies)?));
        }
    }
    for (ifindex, n) in &new.endpoints {
        if let Some(o) = old.endpoints.get(ifindex).filter(|o| o.endpoint_id == n.endpoint_id) {
            let mut e = o.clone();
            e.isolated = [o.isolated[0] || n.isolated[0], o.isolated[1] || n.isolated[1]];
            e.has_ranges = o.has_ranges || n.has_ranges;
            if e != *o {
                ops.push(Op::PutEndpoint(e));
            }
        }
    }

    // B. add new allows (an old deny on the same key still wins)
    for (k, r) in ne {
        if r.action == Action::Allow && !oe.contains_key(k) {
            ops.push(Op::PutExact(*k, *r));
        }
    }
    for (k, set) in nr {
        if set.denies() != *set {
            ops.push(Op::PutRanges(*k, merged_ranges(or.get(k), set)?));
        }
    }

    // C. remove old allows
    for (k, r) in oe {
        if r.action == Action::Allow && !ne.contains_key(k) {
            ops.push(Op::RemoveExact(*k));
        }
    }
    for (k, set) in or {
        let denies = set.denies();
        if denies == *set {
            continue;
        }
        match nr.get(k) {
            Some(n) => {
                let mut keep = n.clone();
                keep.0.extend(denies.0);
                ops.push(Op::PutRanges(*k, keep));
            }
            None if denies.0.is_empty() => ops.push(Op::RemoveRanges(*k)),
            None => ops.push(Op::PutRanges(*k, denies)),
        }
    }

    // D. remove old denies: every key now takes its new value
    for (k, r) in ne {
        if oe.get(k).is_some_and(|o| o != r) {
            ops.push(Op::PutExact(*k, *r));
        }
    }
    for (k, set) in nr {
        if or.get(k).is_some_and(|o| o.denies().0.iter().any(|d| !set.0.contains(d))) {
            ops.push(Op::PutRanges(*k, set.clone()));
        }
    }
    for (k, r) in oe {
        if r.action == Action::Deny && !ne.contains_key(k) {
            ops.push(Op::RemoveExact(*k));
        }
    }
    for (k, set) in or {
        if !nr.contains_key(k) && !set.denies().0.is_empty() {
            ops.push(Op::RemoveRanges(*k));
        }
    }

    // E. endpoints as desired: isolation, modes; vanished ones go
    for (ifindex, n) in &new.endpoints {
        if old.endpoints.get(ifindex) != Some(n) {
            ops.push(Op::PutEndpoint(n.clone()));
        }
    }
    for ifindex in old.endpoints.keys() {
        if !new.endpoints.contains_key(ifindex) {
            ops.push(Op::RemoveEndpoint(*ifindex));
        }
    }
    Ok(ops)
}

/// Applies one op to the kernel.
pub fn apply(maps: &mut Maps, op: &Op) -> Result<(), DataplaneError> {
    match op {
        Op::PutExact(k, r) => maps.put_exact(k, r),
        Op::RemoveExact(k) => maps.remove_exact(k),
        Op::PutRanges(k, s) => maps.put_ranges(k, s),
        Op::RemoveRanges(k) => maps.remove_ranges(k),
        Op::PutEndpoint(e) => maps.put_endpoint(e),
        Op::RemoveEndpoint(i) => maps.remove_endpoint(*i),
    }
}

/// Applies one op to an in-memory state (the model the property test replays).
pub fn apply_model(s: &mut KernelState, op: &Op) {
    match op {
        Op::PutExact(k, r) => {
            s.table.exact.insert(*k, *r);
        }
        Op::RemoveExact(k) => {
            s.table.exact.remove(k);
        }
        Op::PutRanges(k, set) => {
            s.table.ranges.insert(*k, set.clone());
        }
        Op::RemoveRanges(k) => {
            s.table.ranges.remove(k);
        }
        Op::PutEndpoint(e) => {
            s.endpoints.insert(e.ifindex, e.clone());
        }
        Op::RemoveEndpoint(i) => {
            s.endpoints.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Mode};
    use crate::table::PolicyEntry;
    use proptest::prelude::*;

    fn endpoint(isolated: [bool; 2]) -> EndpointEntry {
        EndpointEntry {
            ifindex: 7,
            endpoint_id: 1,
            identity: 300,
            mode: [Mode::Enforce, Mode::Enforce],
            isolated,
            ipv4: None,
            ipv6: None,
            has_ranges: true,
        }
    }

    /// Allowed under `s` for an enforcing endpoint 1 (mirrors the C decision).
    fn allowed(s: &KernelState, remote: u32, dir: Direction, protocol: u8, port: u16) -> bool {
        let Some(ep) = s.endpoints.get(&7) else {
            return true;
        };
        match s.table.decide(1, remote, dir, protocol, port) {
            Some(r) => r.action == Action::Allow,
            None => !ep.isolated[dir.code() as usize],
        }
    }

    fn entry() -> impl Strategy<Value = PolicyEntry> {
        (
            prop_oneof![Just(0u32), Just(300u32), Just(301u32)],
            prop_oneof![Just(Direction::Ingress), Just(Direction::Egress)],
            prop_oneof![Just(0u8), Just(6u8), Just(17u8)],
            0u16..6,
            0u16..3,
            prop_oneof![Just(Action::Allow), Just(Action::Deny)],
            1u32..50,
        )
            .prop_map(|(identity, direction, protocol, port, span, action, rule_id)| {
                let (port, end_port) =
                    if protocol == 0 { (0, 0) } else { (port, if port == 0 { 0 } else { port + span }) };
                PolicyEntry { endpoint_id: 1, identity, direction, protocol, port, end_port, action, rule_id }
            })
    }

    fn state() -> impl Strategy<Value = KernelState> {
        (proptest::collection::vec(entry(), 0..8), any::<[bool; 2]>()).prop_filter_map("capacity", |(es, iso)| {
            let table = PolicyTable::build(&es).ok()?;
            let mut endpoints = BTreeMap::new();
            endpoints.insert(7, endpoint(iso));
            Some(KernelState { endpoints, table })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn no_intermediate_state_allows_what_both_deny(old in state(), new in state()) {
            let ops = plan(&old, &new).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut cur = old.clone();
            for op in &ops {
                apply_model(&mut cur, op);
                for remote in [300u32, 301, 302] {
                    for dir in [Direction::Ingress, Direction::Egress] {
                        for (p, port) in [(6u8, 1u16), (6, 2), (6, 4), (6, 7), (17, 1), (17, 3), (1, 0)] {
                            let both_deny = !allowed(&old, remote, dir, p, port) && !allowed(&new, remote, dir, p, port);
                            prop_assert!(!(both_deny && allowed(&cur, remote, dir, p, port)),
                                "after {op:?}: {remote} {dir} {p}/{port} allowed though old and new deny it");
                        }
                    }
                }
            }
            let mut final_state = cur;
            // has_ranges is derived, the rest must match exactly
            for e in final_state.endpoints.values_mut() { e.has_ranges = true; }
            prop_assert_eq!(final_state, new);
        }
    }
}
