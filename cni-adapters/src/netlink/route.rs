//! Route table queries.

use std::net::IpAddr;

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::RtSocket;
use crate::CniError;

/// A unicast route, reduced to what decides "does traffic to this IP leave
/// through that interface".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) dst: IpAddr,
    pub(crate) prefix_len: u8,
    /// Output interfaces: the single `RTA_OIF`, or every multipath next hop's.
    pub(crate) oifs: Vec<u32>,
}

impl Route {
    /// Whether `ip` falls inside the route's destination prefix.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.dst, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(&net.octets(), &ip.octets(), self.prefix_len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_match(&net.octets(), &ip.octets(), self.prefix_len),
            _ => false,
        }
    }

    /// Whether this is a host route (/32, /128) exactly to `ip`.
    pub(crate) fn is_host_route_to(&self, ip: IpAddr) -> bool {
        let full = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        self.prefix_len == full && self.dst == ip
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix_len: u8) -> bool {
    let bits = usize::from(prefix_len);
    if bits > net.len() * 8 {
        return false;
    }
    let (full, rest) = (bits / 8, bits % 8);
    if net[..full] != ip[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    net[full] & mask == ip[full] & mask
}

/// Dumps the unicast routes of every table for the family of `ip`.
///
/// All tables are read, not just `main`, because policy-routing CNIs
/// (Calico, Cilium in some modes) keep pod routes in their own tables.
pub(crate) fn unicast_routes_for(sock: &mut RtSocket, ip: IpAddr) -> Result<Vec<Route>, CniError> {
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
    let replies = sock
        .dump(&RouteNetlinkMessage::GetRoute(msg))
        .map_err(|err| sock.error(format!("dump {family:?} routes"), err))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRoute(route) => from_message(route),
            _ => None,
        })
        .collect())
}

fn from_message(msg: RouteMessage) -> Option<Route> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let family = msg.header.address_family;
    let mut dst = None;
    let mut oifs = Vec::new();
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => dst = Some(IpAddr::V4(v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => dst = Some(IpAddr::V6(v6)),
            RouteAttribute::Oif(index) => oifs.push(index),
            RouteAttribute::MultiPath(hops) => {
                oifs.extend(hops.iter().map(|hop| hop.interface_index));
            }
            _ => {}
        }
    }
    // No RTA_DST means the default route (prefix length 0).
    let dst = dst.or(match family {
        AddressFamily::Inet => Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        AddressFamily::Inet6 => Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
        _ => None,
    })?;
    Some(Route { dst, prefix_len: msg.header.destination_prefix_length, oifs })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(dst: &str, prefix_len: u8) -> Route {
        Route { dst: dst.parse().unwrap(), prefix_len, oifs: vec![1] }
    }

    #[test]
    fn prefix_containment() {
        let ip: IpAddr = "10.250.3.7".parse().unwrap();
        assert!(route("10.250.3.0", 24).contains(ip));
        assert!(route("10.250.0.0", 20).contains(ip));
        assert!(route("10.250.3.7", 32).contains(ip));
        assert!(!route("10.250.4.0", 24).contains(ip));
        assert!(route("10.250.3.6", 31).contains(ip));
        assert!(!route("10.250.3.4", 31).contains(ip));
        assert!(route("0.0.0.0", 0).contains(ip));
        assert!(!route("fd00::", 8).contains(ip));
        let v6: IpAddr = "fd00:1::5".parse().unwrap();
        assert!(route("fd00:1::", 64).contains(v6));
        assert!(!route("fd00:2::", 64).contains(v6));
    }

    #[test]
    fn host_route_detection() {
        let ip: IpAddr = "10.250.3.7".parse().unwrap();
        assert!(route("10.250.3.7", 32).is_host_route_to(ip));
        assert!(!route("10.250.3.0", 24).is_host_route_to(ip));
        let v6: IpAddr = "fd00::7".parse().unwrap();
        assert!(route("fd00::7", 128).is_host_route_to(v6));
    }
}
