//! Encoding answers into dataplane entries. The dataplane collects every
//! entry matching (peer or any peer) x (exact port, range, any port, any
//! protocol); any deny wins, else any allow, else the direction's isolation.
//!
//! With isolation on (default deny), for each direction:
//!   - a wildcard layer W (peer "any") allows what most identities allow,
//!     or everything when every identity allows portless protocols (only
//!     "any protocol" entries can allow those);
//!   - each identity r then gets allows for what it allows beyond W and
//!     denies for what W allows but it does not. Deny wins, so r's denies
//!     punch holes in W, and r's allows never cover anything r must drop.
//!
//! That is exact for every identity, and small when identities agree.

use std::collections::{BTreeMap, BTreeSet};

use crate::ports::Protocol;
use bulkhead_model::Direction;

/// Most port ranges one (endpoint, peer, direction, protocol) key can hold.
pub const MAX_RANGES: usize = 8;
/// Ranges at most this long are split into single ports when a key has too many ranges.
const SPLITTABLE: u32 = 256;

/// A run of ports with one answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// First port.
    pub lo: u16,
    /// Last port, inclusive.
    pub hi: u16,
    /// Whether traffic to these ports is allowed.
    pub allowed: bool,
    /// What decided it.
    pub rule: String,
}

/// One identity's answers over the whole traffic space of a direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictFn {
    /// Answer for protocols without ports (ICMP…).
    pub other_allowed: bool,
    /// What decided it.
    pub other_rule: String,
    /// Spans covering 1-65535 for TCP, UDP and SCTP, in `Protocol::ALL` order.
    pub protos: Vec<Vec<Span>>,
}

impl VerdictFn {
    fn allows_everything(&self) -> bool {
        self.other_allowed && self.protos.iter().flatten().all(|s| s.allowed)
    }
    fn allowed(&self, i: usize) -> Vec<(u16, u16)> {
        merge(self.protos[i].iter().filter(|s| s.allowed).map(|s| (s.lo, s.hi)).collect())
    }
    fn rule_at(&self, i: usize, port: u16) -> String {
        self.protos[i].iter().find(|s| s.lo <= port && port <= s.hi).map(|s| s.rule.clone()).unwrap_or_default()
    }
}

/// One dataplane entry of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    /// Peer identity; 0 for any peer.
    pub identity: u32,
    /// Direction, relative to the endpoint.
    pub direction: Direction,
    /// IANA protocol number; 0 for any protocol.
    pub protocol: u8,
    /// First port; 0 for any port.
    pub port: u16,
    /// Last port of a range; equal to `port` for one port.
    pub end_port: u16,
    /// Allow or deny.
    pub allow: bool,
    /// Name of the rule that decided, shown in flows.
    pub rule: String,
}

/// One direction of an endpoint class, encoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Encoded {
    pub(crate) isolated: bool,
    pub(crate) entries: Vec<Entry>,
}

const FULL: (u16, u16) = (1, u16::MAX);

fn merge(mut v: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn complement(v: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let mut next: u32 = 1;
    for &(lo, hi) in v {
        if u32::from(lo) > next {
            out.push((next as u16, lo - 1));
        }
        next = u32::from(hi) + 1;
    }
    if next <= u32::from(u16::MAX) {
        out.push((next as u16, u16::MAX));
    }
    out
}

fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(alo, ahi) in a {
        for &(blo, bhi) in b {
            let (lo, hi) = (alo.max(blo), ahi.min(bhi));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    merge(out)
}

fn minus(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    intersect(a, &complement(b))
}

/// Entries for a set of port runs of one protocol, keeping at most
/// `MAX_RANGES` ranges by splitting the shortest into single ports.
fn runs(out: &mut Vec<Entry>, identity: u32, proto: u8, allow: bool, set: &[(u16, u16)], rule: impl Fn(u16) -> String) {
    for &(lo, hi) in set {
        let (port, end_port) = if (lo, hi) == FULL { (0, 0) } else { (lo, hi) };
        out.push(Entry {
            identity,
            direction: Direction::Ingress,
            protocol: proto,
            port,
            end_port,
            allow,
            rule: rule(lo),
        });
    }
}

fn split_ranges(entries: &mut Vec<Entry>) {
    let mut by_key: BTreeMap<(u32, u8), Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.end_port > e.port && e.port != 0 {
            by_key.entry((e.identity, e.protocol)).or_default().push(i);
        }
    }
    let mut split = BTreeSet::new();
    for idx in by_key.values_mut().filter(|v| v.len() > MAX_RANGES) {
        idx.sort_by_key(|i| entries[*i].end_port - entries[*i].port);
        let excess = idx.len() - MAX_RANGES;
        for i in idx.iter().take(excess) {
            if u32::from(entries[*i].end_port - entries[*i].port) < SPLITTABLE {
                split.insert(*i);
            }
        }
    }
    let mut extra = Vec::new();
    for i in &split {
        let e = &entries[*i];
        for p in e.port..=e.end_port {
            extra.push(Entry { port: p, end_port: p, ..e.clone() });
        }
    }
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        !split.contains(&(i - 1))
    });
    entries.extend(extra);
}

/// Fails when a (peer, direction, protocol) key still has too many ranges.
pub(crate) fn check_capacity(entries: &[Entry]) -> Result<(), String> {
    let mut counts: BTreeMap<(u32, Direction, u8), usize> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.end_port > e.port && e.port != 0) {
        *counts.entry((e.identity, e.direction, e.protocol)).or_default() += 1;
    }
    match counts.into_iter().find(|(_, n)| *n > MAX_RANGES) {
        Some(((id, dir, proto), n)) => Err(format!(
            "{n} port ranges for peer identity {id}, {} protocol {proto}; the dataplane holds at most {MAX_RANGES} per peer",
            dir.as_str()
        )),
        None => Ok(()),
    }
}

/// Encodes one direction of a subject class from every identity's answers.
pub(crate) fn encode(answers: &BTreeMap<u32, VerdictFn>) -> Result<Encoded, crate::error::PolicyError> {
    if answers.values().all(VerdictFn::allows_everything) {
        return Ok(Encoded::default());
    }
    let mut entries = Vec::new();
    let total = answers.len();
    let wildcard_all = answers.values().all(|a| a.other_allowed);
    let mut w: Vec<Vec<(u16, u16)>> = vec![vec![FULL]; 3];
    if wildcard_all {
        let rule = answers.values().next().map(|a| a.other_rule.clone()).unwrap_or_default();
        entries.push(Entry {
            identity: 0,
            direction: Direction::Ingress,
            protocol: 0,
            port: 0,
            end_port: 0,
            allow: true,
            rule,
        });
    } else {
        for (i, proto) in Protocol::ALL.into_iter().enumerate() {
            let mut cuts: BTreeSet<u32> = BTreeSet::from([1, 65536]);
            for a in answers.values() {
                for s in &a.protos[i] {
                    cuts.insert(u32::from(s.lo));
                    cuts.insert(u32::from(s.hi) + 1);
                }
            }
            let cuts: Vec<u32> = cuts.into_iter().collect();
            let mut set = Vec::new();
            for c in cuts.windows(2) {
                let (lo, hi) = (c[0] as u16, (c[1] - 1) as u16);
                let yes = answers
                    .values()
                    .filter(|a| a.protos[i].iter().any(|s| s.allowed && s.lo <= lo && lo <= s.hi))
                    .count();
                if yes * 2 > total {
                    set.push((lo, hi));
                }
            }
            w[i] = merge(set);
            let rule_of = |port: u16| {
                answers
                    .values()
                    .find_map(|a| a.protos[i].iter().find(|s| s.allowed && s.lo <= port && port <= s.hi))
                    .map(|s| s.rule.clone())
                    .unwrap_or_default()
            };
            runs(&mut entries, 0, proto.number(), true, &w[i], rule_of);
        }
    }
    for (&id, a) in answers {
        let mut mine = Vec::new();
        if a.other_allowed && !wildcard_all {
            mine.push(Entry {
                identity: id,
                direction: Direction::Ingress,
                protocol: 0,
                port: 0,
                end_port: 0,
                allow: true,
                rule: a.other_rule.clone(),
            });
            for (i, proto) in Protocol::ALL.into_iter().enumerate() {
                let denied = complement(&a.allowed(i));
                runs(&mut mine, id, proto.number(), false, &denied, |p| a.rule_at(i, p));
            }
        } else {
            for (i, proto) in Protocol::ALL.into_iter().enumerate() {
                let allowed = a.allowed(i);
                let need_allow = minus(&allowed, &w[i]);
                let need_deny = minus(&w[i], &allowed);
                if !need_allow.is_empty() {
                    let set = if allowed == [FULL] { allowed.clone() } else { need_allow };
                    runs(&mut mine, id, proto.number(), true, &set, |p| a.rule_at(i, p));
                }
                if !need_deny.is_empty() {
                    let set = if allowed.is_empty() { vec![FULL] } else { need_deny };
                    runs(&mut mine, id, proto.number(), false, &set, |p| a.rule_at(i, p));
                }
            }
        }
        entries.extend(mine);
    }
    split_ranges(&mut entries);
    Ok(Encoded { isolated: true, entries })
}
