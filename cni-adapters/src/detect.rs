//! Picking a strategy, and recognising wirings that have no host interface.

use std::path::Path;

use netlink_packet_route::link::InfoKind;

use crate::netlink::link::Link;
use crate::{CniError, HostInterface, HostInterfaceResolver, PodNetwork, PtpResolver, VethPeerResolver};

/// Why macvlan/ipvlan pods cannot be handled by a per-interface attach.
const NO_HOST_VETH: &str = "no host-side veth; needs the cgroup attach mode";

/// Finds a pod's host interface without knowing which CNI wired it.
///
/// With a netns, the pod's own link decides: a veth is followed to its peer
/// (bridge, ptp, Calico, ... all end up there), while macvlan/ipvlan are
/// reported as [`CniError::Unsupported`] because their traffic never crosses
/// a node-side interface of their own. With only an IP, the node's host
/// route to that IP is followed, which is the only IP-based clue that is not
/// CNI-specific.
pub fn resolve_auto(pod: &PodNetwork) -> Result<HostInterface, CniError> {
    match (&pod.netns, pod.ip) {
        (Some(_), _) => VethPeerResolver.resolve(pod),
        (None, Some(_)) => PtpResolver.resolve(pod),
        (None, None) => Err(CniError::MissingPodInfo {
            resolver: "auto",
            needed: "a pod netns path or a pod IP",
            netns: None,
            ip: None,
        }),
    }
}

/// Fails with [`CniError::Unsupported`] for pod links that share a physical
/// parent instead of having a host-side peer.
pub(crate) fn ensure_supported(pod_link: &Link, netns: &Path) -> Result<(), CniError> {
    let kind = match pod_link.kind {
        Some(InfoKind::MacVlan) => "macvlan",
        Some(InfoKind::MacVtap) => "macvtap",
        Some(InfoKind::IpVlan) => "ipvlan",
        Some(InfoKind::IpVtap) => "ipvtap",
        _ => return Ok(()),
    };
    Err(CniError::Unsupported {
        kind,
        reason: NO_HOST_VETH,
        interface: format!("{} in netns {}", pod_link.name, netns.display()),
    })
}
