//! What the dataplane would decide for compiled state: the ipcache as a
//! longest-prefix match and each endpoint's entries through the dataplane
//! crate's own reference lookup (`PolicyTable::decide`, which mirrors
//! `bh_policy_decide` and is itself tested against the BPF programs).

use std::collections::BTreeMap;
use std::net::IpAddr;

use bulkhead_dataplane::table::{PolicyEntry, PolicyTable};
use bulkhead_dataplane::{Action, Direction};
use bulkhead_model::Direction as Dir;
use bulkhead_model::identity::WORLD;
use bulkhead_policy::compile::{Compiled, EndpointPolicy};
use bulkhead_policy::ports::Protocol;

/// Compiled state loaded into per-endpoint tables.
pub struct Simulated {
    ipcache: Vec<(ipnetwork::IpNetwork, u32)>,
    endpoints: BTreeMap<IpAddr, (EndpointPolicy, PolicyTable)>,
}

impl Simulated {
    pub fn new(compiled: &Compiled, pod_ips: &BTreeMap<String, Vec<IpAddr>>) -> Self {
        let ipcache = compiled.ipcache.iter().map(|e| (e.net, e.identity)).collect();
        let mut endpoints = BTreeMap::new();
        for ep in compiled.endpoints.values() {
            let entries: Vec<PolicyEntry> = ep
                .entries
                .iter()
                .map(|e| PolicyEntry {
                    endpoint_id: 1,
                    identity: e.identity,
                    direction: match e.direction {
                        Dir::Ingress => Direction::Ingress,
                        Dir::Egress => Direction::Egress,
                    },
                    protocol: e.protocol,
                    port: e.port,
                    end_port: e.end_port,
                    action: if e.allow { Action::Allow } else { Action::Deny },
                    rule_id: 1,
                })
                .collect();
            let table = PolicyTable::build(&entries).unwrap_or_else(|e| panic!("{}: {e}", ep.pod));
            for ip in pod_ips.get(&ep.pod).into_iter().flatten() {
                endpoints.insert(*ip, (ep.clone(), table.clone()));
            }
        }
        Self { ipcache, endpoints }
    }

    pub fn identity(&self, addr: IpAddr) -> u32 {
        self.ipcache
            .iter()
            .filter(|(n, _)| n.is_ipv4() == addr.is_ipv4() && n.contains(addr))
            .max_by_key(|(n, _)| n.prefix())
            .map(|(_, id)| *id)
            .unwrap_or(WORLD)
    }

    fn side(&self, at: IpAddr, remote: IpAddr, dir: Direction, proto: u8, port: u16) -> bool {
        let Some((ep, table)) = self.endpoints.get(&at) else { return true };
        let isolated = match dir {
            Direction::Ingress => ep.ingress_isolated,
            Direction::Egress => ep.egress_isolated,
        };
        match table.decide(1, self.identity(remote), dir, proto, port) {
            Some(rule) => rule.action == Action::Allow,
            None => !isolated,
        }
    }

    /// Whether a new connection from `src` to `dst:port` would pass both ends.
    pub fn allows(&self, src: IpAddr, dst: IpAddr, protocol: Option<Protocol>, port: u16) -> bool {
        let proto = protocol.map(Protocol::number).unwrap_or(1);
        let port = if protocol.is_some() { port } else { 0 };
        self.side(src, dst, Direction::Egress, proto, port) && self.side(dst, src, Direction::Ingress, proto, port)
    }
}
