//! Address queries.

use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::RtSocket;
use crate::CniError;

/// Returns the routable addresses configured on link `index`.
///
/// Link-local IPv6 and loopback addresses are skipped: no node route ever
/// points at them, so they cannot tell routed wiring apart from plain veths.
pub(crate) fn routable_on_link(sock: &mut RtSocket, index: u32) -> Result<Vec<IpAddr>, CniError> {
    Ok(routable(sock)?.into_iter().filter(|(i, _)| *i == index).map(|(_, ip)| ip).collect())
}

/// Every routable address of the socket's namespace, with its link's ifindex.
pub(crate) fn routable(sock: &mut RtSocket) -> Result<Vec<(u32, IpAddr)>, CniError> {
    let replies = sock
        .dump(&RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .map_err(|err| sock.error("dump addresses", err))?;
    let mut addrs = Vec::new();
    for reply in replies {
        let RouteNetlinkMessage::NewAddress(msg) = reply else {
            continue;
        };
        // IFA_LOCAL is the interface's own address on point-to-point links,
        // IFA_ADDRESS elsewhere; prefer the former when both are present.
        let local = msg.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let address = msg.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = local.or(address).filter(|ip| is_routable(*ip)) {
            addrs.push((msg.header.index, ip));
        }
    }
    Ok(addrs)
}

fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local(),
    }
}
