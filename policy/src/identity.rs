//! Security identities. Two addresses share an identity exactly when no
//! policy can tell them apart: same cluster, namespace, labels and named
//! ports, and the same most specific policy CIDR around them. That makes
//! identity-keyed dataplane entries as precise as the evaluator, while pods
//! of one workload still share one identity.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::PolicyError;
use crate::ports::NamedPort;
use crate::selector::Labels;

use bulkhead_model::identity::{FIRST_ALLOCATED, WORLD};

/// What an identity stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum IdentityKey {
    /// Pods with these properties.
    Pod {
        /// Cluster of the pods.
        cluster: String,
        /// Namespace of the pods.
        namespace: String,
        /// Labels of the pods.
        labels: Labels,
        /// Named container ports of the pods.
        ports: Vec<NamedPort>,
        /// Most specific policy CIDR containing the address.
        cidr: Option<IpNetwork>,
        /// Services whose EndpointSlices list the address (membership that
        /// labels alone do not determine), for `services` peers.
        #[serde(default)]
        services: Vec<String>,
    },
    /// One ClusterIP of a service.
    Service {
        /// "namespace/name" of the service.
        service: String,
        /// The ClusterIP.
        addr: IpAddr,
    },
    /// A node's addresses (per node: a pod's own node is always allowed).
    Host {
        /// The node's name.
        node: String,
        /// Most specific policy CIDR containing the address.
        cidr: Option<IpNetwork>,
    },
    /// Addresses outside the cluster.
    World {
        /// Most specific policy CIDR containing the address.
        cidr: Option<IpNetwork>,
    },
}

impl IdentityKey {
    /// The reserved number of this key, if it has one.
    pub fn reserved(&self) -> Option<u32> {
        match self {
            IdentityKey::World { cidr: None } => Some(WORLD),
            _ => None,
        }
    }
}

/// Hands out identity numbers. Numbers are never reused by one allocator,
/// so an identity can never change meaning under a running dataplane.
#[derive(Debug, Clone)]
pub struct Allocator {
    ids: BTreeMap<IdentityKey, u32>,
    next: u32,
}

impl Default for Allocator {
    fn default() -> Self {
        Self { ids: BTreeMap::new(), next: FIRST_ALLOCATED }
    }
}

impl Allocator {
    /// The identity of a key, allocating one for a new key.
    pub fn get(&mut self, key: &IdentityKey) -> Result<u32, PolicyError> {
        if let Some(r) = key.reserved() {
            return Ok(r);
        }
        if let Some(id) = self.ids.get(key) {
            return Ok(*id);
        }
        let id = self.next;
        self.next = self.next.checked_add(1).ok_or(PolicyError::IdentitiesExhausted(self.ids.len()))?;
        self.ids.insert(key.clone(), id);
        Ok(id)
    }

    /// Every allocation and the next free number, for persisting across
    /// restarts: numbers must keep their meaning under running dataplanes.
    pub fn export(&self) -> (Vec<(IdentityKey, u32)>, u32) {
        (self.ids.iter().map(|(k, v)| (k.clone(), *v)).collect(), self.next)
    }

    /// An allocator continuing from exported state.
    pub fn import(entries: Vec<(IdentityKey, u32)>, next: u32) -> Self {
        let ids: BTreeMap<IdentityKey, u32> = entries.into_iter().collect();
        let floor = ids.values().max().map_or(FIRST_ALLOCATED, |m| m + 1);
        Self { ids, next: next.max(floor).max(FIRST_ALLOCATED) }
    }

    /// Forgets keys no longer in use (their numbers stay retired).
    pub fn retain(&mut self, live: &BTreeSet<IdentityKey>) {
        self.ids.retain(|k, _| live.contains(k));
    }

    /// Number of allocated (non-reserved) identities in use.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no identity is allocated.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The CIDRs policies mention, for finding an address's most specific one.
#[derive(Debug, Clone, Default)]
pub struct PolicyCidrs {
    /// Most specific first.
    nets: Vec<IpNetwork>,
}

impl PolicyCidrs {
    /// From every CIDR any policy mentions.
    pub fn new(nets: impl IntoIterator<Item = IpNetwork>) -> Self {
        let set: BTreeSet<IpNetwork> = nets.into_iter().collect();
        let mut nets: Vec<_> = set.into_iter().collect();
        nets.sort_by(|a, b| b.prefix().cmp(&a.prefix()).then(a.cmp(b)));
        Self { nets }
    }

    /// The most specific policy CIDR containing the address.
    pub fn most_specific(&self, addr: IpAddr) -> Option<IpNetwork> {
        self.nets.iter().find(|n| n.is_ipv4() == addr.is_ipv4() && n.contains(addr)).copied()
    }

    /// Every policy CIDR.
    pub fn all(&self) -> &[IpNetwork] {
        &self.nets
    }

    /// An address whose most specific policy CIDR is `net`, if any is left
    /// uncovered by narrower policy CIDRs. The first address of a gap is
    /// either the block's first address or the one after a narrower block.
    pub fn representative(&self, net: IpNetwork) -> Option<IpAddr> {
        let mut candidates = vec![net.network()];
        for n in self.nets.iter().filter(|n| n.prefix() > net.prefix() && n.is_ipv4() == net.is_ipv4()) {
            if let Some(after) = next_addr(n.broadcast_or_last()) {
                candidates.push(after);
            }
        }
        candidates.into_iter().find(|a| net.contains(*a) && self.most_specific(*a) == Some(net))
    }
}

trait LastAddr {
    fn broadcast_or_last(&self) -> IpAddr;
}

impl LastAddr for IpNetwork {
    fn broadcast_or_last(&self) -> IpAddr {
        match self {
            IpNetwork::V4(n) => IpAddr::V4(n.broadcast()),
            IpNetwork::V6(n) => {
                let mask = u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0);
                IpAddr::V6((u128::from(n.network()) | mask).into())
            }
        }
    }
}

fn next_addr(a: IpAddr) -> Option<IpAddr> {
    match a {
        IpAddr::V4(v) => u32::from(v).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v) => u128::from(v).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representative_avoids_narrower_blocks() {
        let c = PolicyCidrs::new(["10.0.0.0/8", "10.0.0.0/9", "10.200.0.0/16"].map(|s| s.parse().unwrap()));
        let rep = c.representative("10.0.0.0/8".parse().unwrap()).unwrap();
        assert_eq!(c.most_specific(rep), Some("10.0.0.0/8".parse().unwrap()), "{rep}");
        assert_eq!(c.representative("10.200.0.0/16".parse().unwrap()), Some("10.200.0.0".parse().unwrap()));
        let full = PolicyCidrs::new(["10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9"].map(|s| s.parse().unwrap()));
        assert_eq!(full.representative("10.0.0.0/8".parse().unwrap()), None, "fully covered by narrower blocks");
        assert_eq!(c.most_specific("10.200.1.1".parse().unwrap()), Some("10.200.0.0/16".parse().unwrap()));
        assert_eq!(c.most_specific("fd00::1".parse().unwrap()), None);
    }

    #[test]
    fn numbers_are_never_reused() {
        let mut a = Allocator::default();
        let k = |ns: &str| IdentityKey::Pod {
            cluster: "c".into(),
            namespace: ns.into(),
            labels: Labels::new(),
            ports: vec![],
            cidr: None,
            services: vec![],
        };
        let x = a.get(&k("x")).unwrap();
        assert_eq!(a.get(&k("x")).unwrap(), x);
        a.retain(&BTreeSet::new());
        let x2 = a.get(&k("x")).unwrap();
        assert_ne!(x, x2);
        assert_eq!(a.get(&IdentityKey::World { cidr: None }).unwrap(), WORLD);
        let (entries, next) = a.export();
        let mut b = Allocator::import(entries, next);
        assert_eq!(b.get(&k("x")).unwrap(), x2, "an imported allocator keeps the numbers");
        assert!(b.get(&k("y")).unwrap() > x2, "and never reuses one");
    }
}
