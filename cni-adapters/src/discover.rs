//! Finding a pod from its addresses alone, as a real node must: the
//! controller knows a pod's IPs and node, not its network namespace.
//!
//! The index looks only at namespaces that are the far end of a veth in the
//! node's namespace (their namespace id, as the node sees it, is some
//! veth's `IFLA_LINK_NETNSID`), so pods of other nodes, or of another lab on
//! the same host with the same addresses, are never candidates. Every
//! candidate is then checked the way an annotated pod is: its veth's peer
//! must be a node interface that pairs back with it. When no namespace file
//! holds the address, a host route to it (routed CNIs) still finds the
//! interface, without the namespace. A pod on a macvlan or ipvlan of this
//! node is reported as such: it has no host-side interface at all.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::netlink::{RtSocket, addr, link, nsid};
use crate::veth::NODE_NETNS;
use crate::{CniError, HostInterface, HostInterfaceResolver, PodNetwork, PtpResolver, VethPeerResolver, detect, netns};

/// Where container runtimes and `ip netns` keep pods' namespace files.
pub const DEFAULT_NETNS_DIRS: [&str; 1] = ["/var/run/netns"];

/// The node's pod namespaces, by the addresses found in them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NetnsIndex {
    /// Address → the namespace files and interface names holding it, on
    /// a veth whose peer is in the node's namespace (never `lo` or a dummy
    /// a pod could put any address on).
    by_ip: BTreeMap<IpAddr, Vec<(PathBuf, String)>>,
    /// Namespace files no veth of this node leads to: read only to explain
    /// a pod that was not found (a macvlan or ipvlan pod has no veth).
    unpeered: Vec<PathBuf>,
    /// How many namespace files were read (peers of this node's veths).
    pub scanned: usize,
}

/// A pod found by its addresses: its host interface and, when a namespace
/// file holds it, that file (the agent reads the pod's sockets there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The node-side interface.
    pub iface: HostInterface,
    /// The pod's namespace file, if one was found.
    pub netns: Option<PathBuf>,
}

impl NetnsIndex {
    /// Reads every namespace file in `dirs` that a veth of the calling
    /// thread's namespace leads to. A directory that does not exist holds no
    /// pods; a file that vanishes meanwhile (a pod deleted) is skipped.
    pub fn scan(dirs: &[PathBuf]) -> Result<Self, CniError> {
        let mut sock = RtSocket::open(NODE_NETNS)?;
        // Dumping the links also makes the kernel number the peers' namespaces.
        let peers: BTreeSet<i32> =
            link::all(&mut sock)?.into_iter().filter(|l| l.is_veth()).filter_map(|l| l.link_nsid).collect();
        let mut index = Self::default();
        let node = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|source| CniError::NetnsOpen { netns: "/proc/thread-self/ns/net".into(), source })?;
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CniError::NetnsOpen { netns: dir.clone(), source }),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(file) = netns::open(&path) else { continue };
                match nsid::of_fd(&mut sock, file.as_fd()) {
                    Ok(Some(id)) if peers.contains(&id) => {}
                    _ => {
                        index.unpeered.push(path);
                        continue;
                    }
                }
                let found = netns::run_in(&path, &file, || {
                    let mut pod = RtSocket::open(format!("pod netns {}", path.display()))?;
                    let links = link::all(&mut pod)?;
                    // Read after the links: reporting their peers' namespaces numbers them.
                    let Some(node_id) = nsid::of_fd(&mut pod, node.as_fd())? else { return Ok(Vec::new()) };
                    let to_node: BTreeMap<u32, String> = links
                        .into_iter()
                        .filter(|l| l.is_veth() && l.link_nsid == Some(node_id))
                        .map(|l| (l.index, l.name))
                        .collect();
                    Ok(addr::routable(&mut pod)?
                        .into_iter()
                        .filter_map(|(i, ip)| to_node.get(&i).map(|name| (ip, name.clone())))
                        .collect::<Vec<_>>())
                });
                let Ok(addrs) = found else { continue };
                index.scanned += 1;
                for (ip, ifname) in addrs {
                    index.by_ip.entry(ip).or_default().push((path.clone(), ifname));
                }
            }
        }
        Ok(index)
    }

    /// The namespace files that hold `ip` on interface `ifname`.
    pub fn holding(&self, ip: IpAddr, ifname: &str) -> Vec<&Path> {
        self.by_ip.get(&ip).into_iter().flatten().filter(|(_, n)| n == ifname).map(|(p, _)| p.as_path()).collect()
    }
}

/// Finds `pod` (its IPs; a netns, if given, is used as is) on this node.
pub fn discover(pod: &PodNetwork, ips: &[IpAddr], index: &NetnsIndex) -> Result<Discovered, CniError> {
    if let Some(netns) = &pod.netns {
        let iface = VethPeerResolver.resolve(pod)?;
        return Ok(Discovered { iface, netns: Some(netns.clone()) });
    }
    let mut tried: Vec<String> = Vec::new();
    // Every address of the pod is looked up, and they must agree on one
    // namespace: two pods of one node holding one address is a broken (or
    // attacked) node, not a guess.
    let mut found: Vec<(IpAddr, Discovered)> = Vec::new();
    for &ip in ips {
        for path in index.holding(ip, &pod.pod_ifname) {
            let candidate =
                PodNetwork { netns: Some(path.to_path_buf()), ip: Some(ip), pod_ifname: pod.pod_ifname.clone() };
            match VethPeerResolver.resolve(&candidate) {
                Ok(iface) => {
                    if !found.iter().any(|(_, d)| d.netns.as_deref() == Some(path)) {
                        found.push((ip, Discovered { iface, netns: Some(path.to_path_buf()) }));
                    }
                }
                Err(e) => tried.push(format!("{}: {e}", path.display())),
            }
        }
    }
    match found.len() {
        0 => {}
        1 => return Ok(found.swap_remove(0).1),
        _ => {
            let ip = found[0].0;
            return Err(CniError::AmbiguousPod { ip, netns: found.into_iter().filter_map(|(_, d)| d.netns).collect() });
        }
    }
    for &ip in ips {
        let by_route = PodNetwork { netns: None, ip: Some(ip), pod_ifname: pod.pod_ifname.clone() };
        match PtpResolver.resolve(&by_route) {
            Ok(iface) => return Ok(Discovered { iface, netns: None }),
            Err(e) => tried.push(e.to_string()),
        }
    }
    unsupported(ips, &index.unpeered)?;
    Err(CniError::NotDiscovered { ips: ips.to_vec(), scanned: index.scanned, tried })
}

/// Fails with [`CniError::Unsupported`] when one of `ips` is on a macvlan
/// or ipvlan link whose parent is in the calling thread's namespace: such a
/// pod is on this node but has no host-side interface to attach to.
fn unsupported(ips: &[IpAddr], unpeered: &[PathBuf]) -> Result<(), CniError> {
    if unpeered.is_empty() {
        return Ok(());
    }
    let node = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|source| CniError::NetnsOpen { netns: "/proc/thread-self/ns/net".into(), source })?;
    for path in unpeered {
        let Ok(file) = netns::open(path) else { continue };
        let verdict = netns::run_in(path, &file, || {
            let mut sock = RtSocket::open(format!("pod netns {}", path.display()))?;
            for (index, ip) in addr::routable(&mut sock)? {
                if !ips.contains(&ip) {
                    continue;
                }
                // Read after the link: reporting its parent's namespace numbers it.
                let Some(l) = link::by_index(&mut sock, index)? else { continue };
                let node_id = nsid::of_fd(&mut sock, node.as_fd())?;
                if node_id.is_some() && l.link_nsid == node_id {
                    detect::ensure_supported(&l, path)?;
                }
            }
            Ok(())
        });
        if let Err(e @ CniError::Unsupported { .. }) = verdict {
            return Err(e);
        }
    }
    Ok(())
}

/// `dirs` as given, or the default ones.
pub fn netns_dirs(dirs: &[PathBuf]) -> Vec<PathBuf> {
    if dirs.is_empty() {
        DEFAULT_NETNS_DIRS.iter().map(|d| Path::new(d).to_path_buf()).collect()
    } else {
        dirs.to_vec()
    }
}
