//! Typed access to the pinned maps. Opened from bpffs, so the agent, the lab
//! and the tests all see the same instances the programs use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use ipnetwork::IpNetwork;

use crate::abi::{self, bh_config, bh_ct_key, bh_ct_value, bh_endpoint, bh_ipcache_value, bh_quarantine};
use crate::error::DataplaneError;
use crate::model::Mode;
use crate::pins::PinLayout;
use crate::table::{ExactKey, PolicyTable, RangeKey};

/// A pod as the dataplane sees it, keyed by its host-side interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// Host-side interface index of the pod's veth; the map key.
    pub ifindex: u32,
    /// Dataplane id of the endpoint, 1..65535; indexes the quarantine array.
    pub endpoint_id: u32,
    /// Security identity of the pod's own addresses.
    pub identity: u32,
    /// Indexed by `Direction::code()`: [ingress, egress].
    pub mode: [Mode; 2],
    /// Whether any policy selects the pod, per direction.
    pub isolated: [bool; 2],
    /// The pod's IPv4 address, if it has one.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address, if it has one.
    pub ipv6: Option<Ipv6Addr>,
    /// Whether `bh_policy_ranges` holds port ranges for this endpoint.
    pub has_ranges: bool,
}

impl EndpointEntry {
    fn to_abi(&self) -> bh_endpoint {
        let mut flags = 0;
        let mut v = bh_endpoint {
            endpoint_id: self.endpoint_id,
            identity: self.identity,
            mode: [self.mode[0].code(), self.mode[1].code()],
            isolated: [u8::from(self.isolated[0]), u8::from(self.isolated[1])],
            ..Default::default()
        };
        if let Some(a) = self.ipv4 {
            v.ipv4 = a.octets();
            flags |= abi::BH_EP_F_HAS_IPV4;
        }
        if let Some(a) = self.ipv6 {
            v.ipv6 = a.octets();
            flags |= abi::BH_EP_F_HAS_IPV6;
        }
        if self.has_ranges {
            flags |= abi::BH_EP_F_HAS_RANGES;
        }
        v.flags = flags;
        v
    }

    fn from_abi(ifindex: u32, v: &bh_endpoint) -> Result<Self, DataplaneError> {
        Ok(Self {
            ifindex,
            endpoint_id: v.endpoint_id,
            identity: v.identity,
            mode: [Mode::try_from(v.mode[0])?, Mode::try_from(v.mode[1])?],
            isolated: [v.isolated[0] != 0, v.isolated[1] != 0],
            ipv4: (v.flags & abi::BH_EP_F_HAS_IPV4 != 0).then(|| Ipv4Addr::from(v.ipv4)),
            ipv6: (v.flags & abi::BH_EP_F_HAS_IPV6 != 0).then(|| Ipv6Addr::from(v.ipv6)),
            has_ranges: v.flags & abi::BH_EP_F_HAS_RANGES != 0,
        })
    }
}

/// Summed per-CPU counters, indexed by `enum bh_stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats(pub Vec<u64>);

impl Stats {
    /// One counter.
    pub fn get(&self, idx: u32) -> u64 {
        self.0.get(idx as usize).copied().unwrap_or(0)
    }
    /// Drops for one reason code.
    pub fn drops_for(&self, reason: crate::model::Reason) -> u64 {
        let code = u32::from(reason.code());
        if code < abi::BH_STAT_MAX - abi::BH_STAT_DROP_REASON_BASE {
            self.get(abi::BH_STAT_DROP_REASON_BASE + code)
        } else {
            0
        }
    }
}

/// A conntrack entry with its key, for sweeps and inspection.
#[derive(Debug, Clone, Copy)]
pub struct CtEntry {
    /// The connection's original-direction tuple as seen at the endpoint.
    pub key: bh_ct_key,
    /// Counters, timestamps and verdict of the connection.
    pub value: bh_ct_value,
}

/// IPv4 goes into the trie IPv4-mapped, so one trie serves both families.
pub fn ipcache_key(net: &IpNetwork) -> LpmKey<[u8; 16]> {
    match net {
        IpNetwork::V4(n) => LpmKey::new(96 + u32::from(n.prefix()), n.network().to_ipv6_mapped().octets()),
        IpNetwork::V6(n) => LpmKey::new(u32::from(n.prefix()), n.network().octets()),
    }
}

fn ipcache_net(prefixlen: u32, addr: [u8; 16]) -> Option<IpNetwork> {
    let v6 = Ipv6Addr::from(addr);
    if prefixlen >= 96
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return IpNetwork::new(IpAddr::V4(v4), (prefixlen - 96) as u8).ok();
    }
    IpNetwork::new(IpAddr::V6(v6), prefixlen as u8).ok()
}

/// The node's maps, opened from their pins.
pub struct Maps {
    endpoints: HashMap<MapData, u32, bh_endpoint>,
    ipcache: LpmTrie<MapData, [u8; 16], bh_ipcache_value>,
    policy: HashMap<MapData, abi::bh_policy_key, abi::bh_policy_value>,
    ranges: HashMap<MapData, abi::bh_range_key, abi::bh_range_value>,
    conntrack: HashMap<MapData, bh_ct_key, bh_ct_value>,
    quarantine: Array<MapData, bh_quarantine>,
    stats: PerCpuArray<MapData, u64>,
    config: Array<MapData, bh_config>,
    blocklist: LpmTrie<MapData, [u8; 16], abi::bh_block_value>,
}

impl std::fmt::Debug for Maps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps").finish_non_exhaustive()
    }
}

fn open(pins: &PinLayout, name: &str) -> Result<Map, DataplaneError> {
    let path = pins.map(name);
    MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .map_err(|e| DataplaneError::OpenMap { path, source: Box::new(e) })
}

macro_rules! typed {
    ($pins:expr, $name:literal, $ty:ty) => {
        <$ty>::try_from(open($pins, $name)?)
            .map_err(|e| DataplaneError::OpenMap { path: $pins.map($name), source: Box::new(e) })?
    };
}

impl Maps {
    /// Opens every map pinned under `pins` (the programs must have been loaded once).
    pub fn open(pins: &PinLayout) -> Result<Self, DataplaneError> {
        Ok(Self {
            endpoints: typed!(pins, "bh_endpoints", HashMap<MapData, u32, bh_endpoint>),
            ipcache: typed!(pins, "bh_ipcache", LpmTrie<MapData, [u8; 16], bh_ipcache_value>),
            policy: typed!(pins, "bh_policy", HashMap<MapData, abi::bh_policy_key, abi::bh_policy_value>),
            ranges: typed!(pins, "bh_policy_ranges", HashMap<MapData, abi::bh_range_key, abi::bh_range_value>),
            conntrack: typed!(pins, "bh_conntrack", HashMap<MapData, bh_ct_key, bh_ct_value>),
            quarantine: typed!(pins, "bh_quarantine_v2", Array<MapData, bh_quarantine>),
            stats: typed!(pins, "bh_stats", PerCpuArray<MapData, u64>),
            config: typed!(pins, "bh_config_v2", Array<MapData, bh_config>),
            blocklist: typed!(pins, "bh_blocklist", LpmTrie<MapData, [u8; 16], abi::bh_block_value>),
        })
    }

    /// Creates or replaces an endpoint.
    pub fn put_endpoint(&mut self, e: &EndpointEntry) -> Result<(), DataplaneError> {
        self.endpoints.insert(e.ifindex, e.to_abi(), 0).map_err(DataplaneError::map_op("insert", "bh_endpoints"))
    }

    /// Forgets an endpoint; its traffic is then passed unmanaged (the interface is usually gone).
    pub fn remove_endpoint(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        ignore_missing(self.endpoints.remove(&ifindex), "bh_endpoints")
    }

    /// Every endpoint in the map.
    pub fn endpoints(&self) -> Result<Vec<EndpointEntry>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.endpoints.iter() {
            let (k, v) = item.map_err(DataplaneError::map_op("iterate", "bh_endpoints"))?;
            out.push(EndpointEntry::from_abi(k, &v)?);
        }
        out.sort_by_key(|e| e.ifindex);
        Ok(out)
    }

    /// Maps `net` to `identity`.
    pub fn put_ipcache(&mut self, net: &IpNetwork, identity: u32) -> Result<(), DataplaneError> {
        let v = bh_ipcache_value { identity, flags: 0 };
        self.ipcache.insert(&ipcache_key(net), v, 0).map_err(DataplaneError::map_op("insert", "bh_ipcache"))
    }

    /// Removes a prefix.
    pub fn remove_ipcache(&mut self, net: &IpNetwork) -> Result<(), DataplaneError> {
        ignore_missing(self.ipcache.remove(&ipcache_key(net)), "bh_ipcache")
    }

    /// Every prefix and its identity.
    pub fn ipcache(&self) -> Result<Vec<(IpNetwork, u32)>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.ipcache.iter() {
            let (k, v) = item.map_err(DataplaneError::map_op("iterate", "bh_ipcache"))?;
            if let Some(net) = ipcache_net(k.prefix_len(), k.data()) {
                out.push((net, v.identity));
            }
        }
        Ok(out)
    }

    /// The policy currently in the kernel, exact and range entries.
    pub fn policy(&self) -> Result<PolicyTable, DataplaneError> {
        let mut t = PolicyTable::default();
        for item in self.policy.iter() {
            let (k, v) = item.map_err(DataplaneError::map_op("iterate", "bh_policy"))?;
            t.exact.insert(ExactKey::from_abi(&k), crate::table::Rule::from_abi(v.action, v.rule_id)?);
        }
        for item in self.ranges.iter() {
            let (k, v) = item.map_err(DataplaneError::map_op("iterate", "bh_policy_ranges"))?;
            t.ranges.insert(RangeKey::from_abi(&k), crate::table::RangeSet::from_abi(&v)?);
        }
        Ok(t)
    }

    /// Writes one exact entry.
    pub fn put_exact(&mut self, k: &ExactKey, r: &crate::table::Rule) -> Result<(), DataplaneError> {
        self.policy.insert(k.to_abi(), r.to_abi(), 0).map_err(DataplaneError::map_op("insert", "bh_policy"))
    }

    /// Removes one exact entry.
    pub fn remove_exact(&mut self, k: &ExactKey) -> Result<(), DataplaneError> {
        ignore_missing(self.policy.remove(&k.to_abi()), "bh_policy")
    }

    /// Writes one range set.
    pub fn put_ranges(&mut self, k: &RangeKey, r: &crate::table::RangeSet) -> Result<(), DataplaneError> {
        self.ranges.insert(k.to_abi(), r.to_abi()?, 0).map_err(DataplaneError::map_op("insert", "bh_policy_ranges"))
    }

    /// Removes one range set.
    pub fn remove_ranges(&mut self, k: &RangeKey) -> Result<(), DataplaneError> {
        ignore_missing(self.ranges.remove(&k.to_abi()), "bh_policy_ranges")
    }

    /// Quarantines an endpoint: from now on every packet to or from it drops.
    pub fn quarantine(&mut self, endpoint_id: u32, since_ns: u64) -> Result<(), DataplaneError> {
        check_endpoint_id(endpoint_id)?;
        let v = bh_quarantine { since_ns, flags: abi::BH_Q_F_ACTIVE, _pad: 0 };
        self.quarantine.set(endpoint_id, v, 0).map_err(DataplaneError::map_op("write", "bh_quarantine_v2"))
    }

    /// Lifts a quarantine.
    pub fn release(&mut self, endpoint_id: u32) -> Result<(), DataplaneError> {
        check_endpoint_id(endpoint_id)?;
        self.quarantine
            .set(endpoint_id, bh_quarantine::default(), 0)
            .map_err(DataplaneError::map_op("write", "bh_quarantine_v2"))
    }

    /// Which of `ids` are quarantined.
    pub fn quarantined(&self, ids: impl IntoIterator<Item = u32>) -> Result<Vec<u32>, DataplaneError> {
        let mut out = Vec::new();
        for id in ids {
            if id >= abi::BH_MAX_ENDPOINT_ID {
                continue;
            }
            let q = self.quarantine.get(&id, 0).map_err(DataplaneError::map_op("read", "bh_quarantine_v2"))?;
            if q.flags & abi::BH_Q_F_ACTIVE != 0 {
                out.push(id);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every conntrack entry (a snapshot; the kernel keeps changing it).
    pub fn conntrack(&self) -> Result<Vec<CtEntry>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.conntrack.iter() {
            match item {
                Ok((key, value)) => out.push(CtEntry { key, value }),
                // An LRU entry evicted mid-iteration is not an error.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(DataplaneError::map_op("iterate", "bh_conntrack")(e)),
            }
        }
        Ok(out)
    }

    /// One conntrack entry, if present.
    pub fn conntrack_entry(&self, key: &bh_ct_key) -> Option<bh_ct_value> {
        self.conntrack.get(key, 0).ok()
    }

    /// Deletes a conntrack entry (expired, or its endpoint is gone).
    pub fn remove_conntrack(&mut self, key: &bh_ct_key) -> Result<(), DataplaneError> {
        ignore_missing(self.conntrack.remove(key), "bh_conntrack")
    }

    /// Blocks `net`, both ways, on every pod and uplink of the node.
    pub fn put_block(&mut self, net: &IpNetwork, block_id: u32) -> Result<(), DataplaneError> {
        let v = abi::bh_block_value { block_id, _pad: 0 };
        self.blocklist.insert(&ipcache_key(net), v, 0).map_err(|e| match e {
            aya::maps::MapError::SyscallError(ref s) if s.io_error.raw_os_error() == Some(libc::ENOSPC) => {
                DataplaneError::Capacity { what: "blocked prefixes", capacity: abi::BH_MAX_BLOCKS as usize }
            }
            e => DataplaneError::map_op("insert", "bh_blocklist")(e),
        })
    }

    /// Lifts the block of `net`.
    pub fn remove_block(&mut self, net: &IpNetwork) -> Result<(), DataplaneError> {
        ignore_missing(self.blocklist.remove(&ipcache_key(net)), "bh_blocklist")
    }

    /// Every blocked prefix and its block id.
    pub fn blocks(&self) -> Result<Vec<(IpNetwork, u32)>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.blocklist.iter() {
            let (k, v) = item.map_err(DataplaneError::map_op("iterate", "bh_blocklist"))?;
            if let Some(net) = ipcache_net(k.prefix_len(), k.data()) {
                out.push((net, v.block_id));
            }
        }
        Ok(out)
    }

    /// Removes every conntrack entry with an address in `nets`, so the
    /// connection's next packet is decided again and meets the block list
    /// (established traffic does not read it). Returns how many went.
    pub fn forget_connections_of(&mut self, nets: &[IpNetwork]) -> Result<usize, DataplaneError> {
        if nets.is_empty() {
            return Ok(0);
        }
        let covered = |a: &[u8; 16]| {
            let v6 = Ipv6Addr::from(*a);
            let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
            nets.iter().any(|n| n.contains(ip))
        };
        let doomed: Vec<bh_ct_key> = self
            .conntrack()?
            .into_iter()
            .filter(|e| covered(&e.key.saddr) || covered(&e.key.daddr))
            .map(|e| e.key)
            .collect();
        for k in &doomed {
            self.remove_conntrack(k)?;
        }
        Ok(doomed.len())
    }

    /// Sums the per-CPU counters.
    pub fn stats(&self) -> Result<Stats, DataplaneError> {
        let mut out = vec![0u64; abi::BH_STAT_MAX as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self.stats.get(&(i as u32), 0).map_err(DataplaneError::map_op("read", "bh_stats"))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(Stats(out))
    }

    /// Writes the runtime configuration.
    pub fn set_config(&mut self, cfg: bh_config) -> Result<(), DataplaneError> {
        self.config.set(0, cfg, 0).map_err(DataplaneError::map_op("write", "bh_config_v2"))
    }

    /// Reads the runtime configuration.
    pub fn config(&self) -> Result<bh_config, DataplaneError> {
        self.config.get(&0, 0).map_err(DataplaneError::map_op("read", "bh_config_v2"))
    }
}

/// Endpoint ids index the quarantine array.
pub fn check_endpoint_id(id: u32) -> Result<(), DataplaneError> {
    if id == 0 || id >= abi::BH_MAX_ENDPOINT_ID {
        return Err(DataplaneError::Capacity {
            what: "endpoint ids (1..65535)",
            capacity: abi::BH_MAX_ENDPOINT_ID as usize - 1,
        });
    }
    Ok(())
}

fn ignore_missing(r: Result<(), aya::maps::MapError>, map: &'static str) -> Result<(), DataplaneError> {
    match r {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(DataplaneError::map_op("remove", map)(e)),
    }
}
