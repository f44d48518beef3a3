//! The CNI `ptp` plugin (and Calico): host veths with a host route per pod.

use std::net::IpAddr;

use crate::netlink::RtSocket;
use crate::netlink::{link, route};
use crate::veth::{NODE_NETNS, require_kind};
use crate::{CniError, HostInterface, HostInterfaceKind, HostInterfaceResolver, PodNetwork, VethPeerResolver};

/// Resolves pods wired as a routed veth, and nothing else.
///
/// Unlike the bridge case, the node holds a /32 (/128) route per pod, so the
/// pod IP alone is enough; that matters when the agent restarts and only has
/// the Kubernetes view of the pod.
#[derive(Debug, Clone, Copy, Default)]
pub struct PtpResolver;

impl HostInterfaceResolver for PtpResolver {
    fn name(&self) -> &'static str {
        "ptp"
    }

    fn resolve(&self, pod: &PodNetwork) -> Result<HostInterface, CniError> {
        match (&pod.netns, pod.ip) {
            (Some(_), _) => {
                let iface = VethPeerResolver.resolve(pod)?;
                require_kind(self.name(), HostInterfaceKind::RoutedVeth, iface)
            }
            (None, Some(ip)) => resolve_by_host_route(ip),
            (None, None) => Err(CniError::MissingPodInfo {
                resolver: self.name(),
                needed: "a pod netns path or a pod IP",
                netns: None,
                ip: None,
            }),
        }
    }
}

/// Follows the node's host route to `ip` to the veth it leaves through.
fn resolve_by_host_route(ip: IpAddr) -> Result<HostInterface, CniError> {
    let mut sock = RtSocket::open(NODE_NETNS)?;
    let mut oifs: Vec<u32> = route::unicast_routes_for(&mut sock, ip)?
        .into_iter()
        .filter(|route| route.is_host_route_to(ip))
        .flat_map(|route| route.oifs)
        .collect();
    oifs.sort_unstable();
    oifs.dedup();
    if oifs.is_empty() {
        return Err(CniError::NoHostRoute { ip });
    }

    let mut veths = Vec::new();
    let mut others = Vec::new();
    for oif in oifs {
        // A route whose interface vanished meanwhile is simply not a candidate.
        match link::by_index(&mut sock, oif)? {
            Some(link) if link.is_veth() => veths.push(link),
            Some(link) => others.push(link),
            None => {}
        }
    }
    match veths.len() {
        1 => {
            let host = veths.swap_remove(0);
            tracing::debug!(%ip, host_ifname = %host.name, host_ifindex = host.index, "resolved pod host interface by host route");
            Ok(HostInterface {
                ifname: host.name,
                ifindex: host.index,
                kind: HostInterfaceKind::RoutedVeth,
                pod_ifindex: host.peer_index,
            })
        }
        0 => match others.into_iter().next() {
            Some(other) => Err(CniError::HostRouteNotVeth {
                ip,
                kind: other.kind_name(),
                ifname: other.name,
                ifindex: other.index,
            }),
            None => Err(CniError::NoHostRoute { ip }),
        },
        _ => Err(CniError::AmbiguousHostRoute { ip, interfaces: veths.into_iter().map(|link| link.name).collect() }),
    }
}
