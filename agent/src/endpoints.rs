//! Finding each pod's host-side interface and keeping the programs attached.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use bulkhead_cni::{Discovered, NetnsIndex, PodNetwork};

use crate::desired::EndpointSpec;

/// Where an endpoint is attached, or why it could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// Both TC programs are attached to this host-side interface.
    Attached {
        /// Host-side interface index.
        ifindex: u32,
        /// Host-side interface name.
        ifname: String,
    },
    /// The interface could not be found or attached; the pod is not protected.
    Failed {
        /// Why, as text.
        error: String,
    },
}

/// The node's pod namespaces, read on first need and at most once per apply:
/// one apply finds many new pods, and each would otherwise read them all.
pub struct Finder {
    dirs: Vec<PathBuf>,
    index: Option<Result<NetnsIndex, String>>,
}

impl Finder {
    /// Looks in `dirs` (empty: the default directories).
    pub fn new(dirs: &[PathBuf]) -> Self {
        Self { dirs: bulkhead_cni::discover::netns_dirs(dirs), index: None }
    }

    /// Finds the host interface of `spec`: through the namespace file the
    /// controller sent, if any (the `bulkhead.dev/netns` annotation), else
    /// from its addresses alone, as on a real node.
    pub fn resolve(&mut self, spec: &EndpointSpec) -> Result<Discovered, String> {
        let pod = PodNetwork {
            netns: spec.netns.clone(),
            ip: spec.ips.first().copied(),
            pod_ifname: spec.pod_ifname.clone(),
        };
        if spec.netns.is_some() {
            return bulkhead_cni::discover(&pod, &spec.ips, &NetnsIndex::default()).map_err(|e| e.to_string());
        }
        let dirs = &self.dirs;
        let index = self.index.get_or_insert_with(|| NetnsIndex::scan(dirs).map_err(|e| e.to_string()));
        let index = index.as_ref().map_err(|e| format!("reading the node's pod namespaces: {e}"))?;
        bulkhead_cni::discover(&pod, &spec.ips, index).map_err(|e| e.to_string())
    }
}

/// Interfaces of the current network namespace, by index. An error is
/// returned, never an empty list: callers must not mistake a failed lookup
/// for "every pod is gone".
pub fn interfaces() -> Result<BTreeMap<u32, String>, std::io::Error> {
    nix::net::if_::if_nameindex()
        .map(|list| list.iter().map(|i| (i.index(), i.name().to_string_lossy().into_owned())).collect())
        .map_err(std::io::Error::from)
}

/// The name of interface `ifindex` in this network namespace, if it exists.
pub fn name_of(ifindex: u32) -> Option<String> {
    nix::net::if_::if_indextoname(ifindex).ok().map(|n| n.to_string_lossy().into_owned())
}

/// The first IPv4 and IPv6 address of an endpoint, for anti-spoofing.
pub fn first_addrs(ips: &[IpAddr]) -> (Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>) {
    let v4 = ips.iter().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let v6 = ips.iter().find_map(|ip| match ip {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    (v4, v6)
}
