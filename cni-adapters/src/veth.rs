//! The generic strategy: follow the pod's veth to its peer in the node netns.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use netlink_packet_route::link::InfoKind;

use crate::netlink::RtSocket;
use crate::netlink::link::{self, Link};
use crate::netlink::{addr, nsid, route};
use crate::{
    CniError, HostInterface, HostInterfaceKind, HostInterfaceResolver, PeerMismatch, PodNetwork, detect, netns,
};

/// Label of the caller's namespace in error messages.
pub(crate) const NODE_NETNS: &str = "node netns";

/// Resolves any veth-based CNI by asking the kernel for the pod veth's peer.
///
/// This is the strategy of choice because it relies only on what the kernel
/// knows about the pair, not on CNI naming schemes or state files; the
/// CNI-specific resolvers are thin checks on top of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct VethPeerResolver;

impl HostInterfaceResolver for VethPeerResolver {
    fn name(&self) -> &'static str {
        "veth-peer"
    }

    fn resolve(&self, pod: &PodNetwork) -> Result<HostInterface, CniError> {
        let netns = pod.netns.as_deref().ok_or_else(|| CniError::MissingPodInfo {
            resolver: self.name(),
            needed: "the pod netns path",
            netns: None,
            ip: pod.ip,
        })?;
        resolve_pair(netns, &pod.pod_ifname, pod.ip)
    }
}

/// Returns `iface` if it has the wiring a CNI-specific resolver stands for,
/// so that a misconfigured agent fails loudly instead of attaching to the
/// wrong kind of interface.
pub(crate) fn require_kind(
    resolver: &'static str,
    expected: HostInterfaceKind,
    iface: HostInterface,
) -> Result<HostInterface, CniError> {
    if iface.kind == expected {
        Ok(iface)
    } else {
        Err(CniError::WrongKind { resolver, expected, found: iface.kind, ifname: iface.ifname, ifindex: iface.ifindex })
    }
}

/// The pod end of the pair, as read from inside the pod netns.
struct PodLink {
    link: Link,
    /// The pod's own addresses; only collected when the caller gave no IP.
    addrs: Vec<IpAddr>,
}

fn resolve_pair(netns: &Path, ifname: &str, ip: Option<IpAddr>) -> Result<HostInterface, CniError> {
    validate_ifname(ifname)?;
    let ns_file = netns::open(netns)?;
    let pod = inspect_pod_link(netns, &ns_file, ifname, ip.is_none())?;
    detect::ensure_supported(&pod.link, netns)?;
    if !pod.link.is_veth() {
        return Err(CniError::NotVeth {
            ifname: ifname.to_owned(),
            netns: netns.to_path_buf(),
            kind: pod.link.kind_name(),
        });
    }
    let peer_index = pod
        .link
        .peer_index
        .ok_or_else(|| CniError::NoPeerIndex { ifname: ifname.to_owned(), netns: netns.to_path_buf() })?;

    let mut sock = RtSocket::open(NODE_NETNS)?;
    let host = link::by_index(&mut sock, peer_index)?.ok_or_else(|| CniError::PeerNotFound {
        peer_ifindex: peer_index,
        ifname: ifname.to_owned(),
        netns: netns.to_path_buf(),
    })?;
    if let Some(mismatch) = verify_pair(&mut sock, &ns_file, &pod.link, &host)? {
        return Err(CniError::PeerMismatch {
            host_ifname: host.name,
            host_ifindex: host.index,
            ifname: ifname.to_owned(),
            pod_ifindex: pod.link.index,
            netns: netns.to_path_buf(),
            mismatch,
        });
    }

    let pod_ips = ip.map_or(pod.addrs, |ip| vec![ip]);
    let kind = classify(&mut sock, &host, &pod_ips)?;
    tracing::debug!(
        netns = %netns.display(),
        pod_ifname = ifname,
        host_ifname = %host.name,
        host_ifindex = host.index,
        %kind,
        "resolved pod host interface"
    );
    Ok(HostInterface { ifname: host.name, ifindex: host.index, kind, pod_ifindex: Some(pod.link.index) })
}

/// Rejects names the kernel could never have given an interface, before we
/// spend a thread and a namespace switch on them.
fn validate_ifname(ifname: &str) -> Result<(), CniError> {
    let valid = !ifname.is_empty()
        && ifname.len() <= 15
        && ifname != "."
        && ifname != ".."
        && !ifname.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if valid { Ok(()) } else { Err(CniError::InvalidInterfaceName { ifname: ifname.to_owned() }) }
}

fn inspect_pod_link(netns: &Path, ns_file: &File, ifname: &str, want_addrs: bool) -> Result<PodLink, CniError> {
    netns::run_in(netns, ns_file, || {
        let mut sock = RtSocket::open(format!("pod netns {}", netns.display()))?;
        let link = link::by_name(&mut sock, ifname)?
            .ok_or_else(|| CniError::InterfaceNotFound { ifname: ifname.to_owned(), netns: netns.to_path_buf() })?;
        let addrs = if want_addrs { addr::routable_on_link(&mut sock, link.index)? } else { Vec::new() };
        Ok(PodLink { link, addrs })
    })
}

/// Checks that `host` really is the other end of `pod`; returns the first
/// check that failed, if any.
fn verify_pair(sock: &mut RtSocket, ns_file: &File, pod: &Link, host: &Link) -> Result<Option<PeerMismatch>, CniError> {
    if !host.is_veth() {
        return Ok(Some(PeerMismatch::NotVeth { kind: host.kind_name() }));
    }
    if host.peer_index != Some(pod.index) {
        return Ok(Some(PeerMismatch::PeerIndex { found: host.peer_index }));
    }
    let pod_nsid = nsid::of_fd(sock, ns_file.as_fd())?;
    if host.link_nsid.is_none() || host.link_nsid != pod_nsid {
        return Ok(Some(PeerMismatch::Namespace { link_nsid: host.link_nsid, pod_nsid }));
    }
    Ok(None)
}

/// Tells bridge ports, routed veths and anything else apart.
fn classify(sock: &mut RtSocket, host: &Link, pod_ips: &[IpAddr]) -> Result<HostInterfaceKind, CniError> {
    if let Some(master) = host.master
        && let Some(master) = link::by_index(sock, master)?
        && master.kind == Some(InfoKind::Bridge)
    {
        return Ok(HostInterfaceKind::VethOnBridge);
    }
    for &ip in pod_ips {
        let routed = route::unicast_routes_for(sock, ip)?
            .iter()
            .any(|route| route.prefix_len > 0 && route.oifs.contains(&host.index) && route.contains(ip));
        if routed {
            return Ok(HostInterfaceKind::RoutedVeth);
        }
    }
    Ok(HostInterfaceKind::Veth)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_validated() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("net1").is_ok());
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("a-very-long-name0").is_err());
        assert!(validate_ifname("eth/0").is_err());
        assert!(validate_ifname("eth 0").is_err());
        assert!(validate_ifname("..").is_err());
    }

    #[test]
    fn require_kind_names_the_mismatch() {
        let iface = HostInterface {
            ifname: "veth1234".to_owned(),
            ifindex: 7,
            kind: HostInterfaceKind::Veth,
            pod_ifindex: Some(2),
        };
        let err = require_kind("bridge", HostInterfaceKind::VethOnBridge, iface).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("veth1234") && msg.contains("veth-on-bridge"), "{msg}");
    }
}
