//! Link (interface) queries.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};

use super::{RtSocket, is_no_such_device};
use crate::CniError;

/// The few link attributes the resolvers reason about, decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) name: String,
    /// `IFLA_INFO_KIND`; `None` for links without a kind (e.g. physical NICs).
    pub(crate) kind: Option<InfoKind>,
    /// `IFLA_LINK`: for a veth, the peer's ifindex in the peer's namespace.
    pub(crate) peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set only when the peer lives in another namespace.
    pub(crate) link_nsid: Option<i32>,
    /// `IFLA_MASTER`: the bridge/bond/vrf the link is enslaved to.
    pub(crate) master: Option<u32>,
}

impl Link {
    /// Whether the link is a veth end.
    pub(crate) fn is_veth(&self) -> bool {
        self.kind == Some(InfoKind::Veth)
    }

    /// Kernel name of the link kind, for error messages.
    pub(crate) fn kind_name(&self) -> String {
        self.kind.as_ref().map_or_else(|| "unknown (no IFLA_INFO_KIND)".to_owned(), ToString::to_string)
    }

    fn from_message(msg: LinkMessage) -> Self {
        let mut link = Self {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            peer_index: None,
            link_nsid: None,
            master: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Link(index) => link.peer_index = Some(index),
                LinkAttribute::LinkNetNsId(id) => link.link_nsid = Some(id),
                LinkAttribute::Controller(index) => link.master = Some(index),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.into_iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

/// Looks a link up by name; `Ok(None)` when no such link exists.
pub(crate) fn by_name(sock: &mut RtSocket, name: &str) -> Result<Option<Link>, CniError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    get_one(sock, msg, || format!("get link {name}"))
}

/// Looks a link up by ifindex; `Ok(None)` when no such link exists.
pub(crate) fn by_index(sock: &mut RtSocket, index: u32) -> Result<Option<Link>, CniError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    get_one(sock, msg, || format!("get link by ifindex {index}"))
}

/// Every link of the socket's namespace.
pub(crate) fn all(sock: &mut RtSocket) -> Result<Vec<Link>, CniError> {
    let replies = sock
        .dump(&RouteNetlinkMessage::GetLink(LinkMessage::default()))
        .map_err(|err| sock.error("dump links", err))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
            _ => None,
        })
        .collect())
}

fn get_one(sock: &mut RtSocket, msg: LinkMessage, op: impl Fn() -> String) -> Result<Option<Link>, CniError> {
    match sock.get(RouteNetlinkMessage::GetLink(msg)) {
        Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
            _ => None,
        })),
        Err(err) if is_no_such_device(&err) => Ok(None),
        Err(err) => Err(sock.error(op(), err)),
    }
}
