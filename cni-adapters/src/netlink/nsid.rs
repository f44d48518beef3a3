//! Namespace id queries.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};

use super::RtSocket;
use crate::CniError;

/// Returns the id the socket's namespace uses to refer to the namespace
/// behind `ns_fd`, or `None` if it has not assigned one.
///
/// A veth reports where its peer lives only as such an id
/// (`IFLA_LINK_NETNSID`), and ifindexes repeat across namespaces (every pod's
/// `eth0` tends to be ifindex 2 or 3), so this id is the only reliable proof
/// that a node veth really pairs with *this* pod.
pub(crate) fn of_fd(sock: &mut RtSocket, ns_fd: BorrowedFd<'_>) -> Result<Option<i32>, CniError> {
    let op = "get nsid of pod netns";
    let fd = u32::try_from(ns_fd.as_raw_fd())
        .map_err(|_| sock.error(op, io::Error::new(io::ErrorKind::InvalidInput, "negative fd")))?;
    let mut msg = NsidMessage::default();
    msg.attributes.push(NsidAttribute::Fd(fd));
    let replies = sock.get(RouteNetlinkMessage::GetNsId(msg)).map_err(|err| sock.error(op, err))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewNsId(msg) => Some(msg),
            _ => None,
        })
        .flat_map(|msg| msg.attributes)
        .find_map(|attr| match attr {
            NsidAttribute::Id(id) => Some(id),
            _ => None,
        })
        .filter(|id| *id >= 0))
}
