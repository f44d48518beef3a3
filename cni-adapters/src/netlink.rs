//! A minimal synchronous rtnetlink client.
//!
//! The resolvers only need a handful of one-shot queries, done on whatever
//! thread happens to be in the right namespace; a blocking request/response
//! socket is simpler and cheaper there than an async connection.

pub(crate) mod addr;
pub(crate) mod link;
pub(crate) mod nsid;
pub(crate) mod route;

use std::io;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::libc::{MSG_PEEK, MSG_TRUNC};

use crate::CniError;

/// How often a dump that the kernel flagged as interrupted (the table changed
/// while we read it, e.g. a pod being created) is retried before giving up.
const DUMP_ATTEMPTS: usize = 5;

/// A `NETLINK_ROUTE` socket bound in the namespace of the thread that opened it.
///
/// Netlink sockets stay attached to the namespace they were created in, so
/// the socket also carries a label of that namespace for error messages.
pub(crate) struct RtSocket {
    socket: Socket,
    seq: u32,
    netns: String,
}

impl RtSocket {
    /// Opens a socket in the current thread's netns; `netns` only labels errors.
    pub(crate) fn open(netns: impl Into<String>) -> Result<Self, CniError> {
        let netns = netns.into();
        let socket = Self::connect().map_err(|source| CniError::Netlink {
            op: "open socket".to_owned(),
            netns: netns.clone(),
            source,
        })?;
        Ok(Self { socket, seq: 0, netns })
    }

    fn connect() -> io::Result<Socket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(socket)
    }

    /// Wraps an I/O level failure with the operation and namespace it belongs to.
    pub(crate) fn error(&self, op: impl Into<String>, source: io::Error) -> CniError {
        CniError::Netlink { op: op.into(), netns: self.netns.clone(), source }
    }

    /// Sends a single-object request (e.g. get link by index) and returns the
    /// reply; kernel errors come back as `io::Error` with the raw errno so
    /// callers can tell "does not exist" from real failures.
    pub(crate) fn get(&mut self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST).map(|(replies, _)| replies)
    }

    /// Dumps a whole table, retrying while the kernel reports the dump as
    /// inconsistent.
    pub(crate) fn dump(&mut self, msg: &RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut attempt = 1;
        loop {
            let (replies, interrupted) = self.exchange(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            if !interrupted {
                return Ok(replies);
            }
            if attempt >= DUMP_ATTEMPTS {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    format!("dump still inconsistent after {DUMP_ATTEMPTS} attempts"),
                ));
            }
            tracing::debug!(netns = %self.netns, attempt, "netlink dump interrupted, retrying");
            attempt += 1;
        }
    }

    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<(Vec<RouteNetlinkMessage>, bool)> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let datagram = self.recv_datagram()?;
            let mut offset = 0;
            while offset < datagram.len() {
                let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&datagram[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let len = usize::try_from(msg.header.length).unwrap_or(usize::MAX);
                if len == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "netlink message with zero length"));
                }
                offset = offset.saturating_add(nlmsg_align(len));
                if msg.header.sequence_number != seq {
                    // A late reply to an earlier request; not ours to consume.
                    continue;
                }
                interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                match msg.payload {
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        if !is_dump {
                            return Ok((replies, interrupted));
                        }
                    }
                    NetlinkPayload::Done(done) => {
                        if done.code != 0 {
                            return Err(io::Error::from_raw_os_error(done.code.saturating_neg()));
                        }
                        return Ok((replies, interrupted));
                    }
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            Some(_) => Err(err.to_io()),
                            // A plain ACK: the request is complete.
                            None => Ok((replies, interrupted)),
                        };
                    }
                    NetlinkPayload::Noop => {}
                    NetlinkPayload::Overrun(_) => {
                        return Err(io::Error::other("netlink receive buffer overrun"));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Receives one whole datagram, sized by peeking first so that large
    /// dump batches are never truncated.
    fn recv_datagram(&self) -> io::Result<Vec<u8>> {
        let mut probe: Vec<u8> = Vec::with_capacity(64);
        let len = self.socket.recv(&mut probe, MSG_PEEK | MSG_TRUNC)?;
        let mut buf: Vec<u8> = Vec::with_capacity(len.max(64));
        let got = self.socket.recv(&mut buf, 0)?;
        buf.truncate(got);
        Ok(buf)
    }
}

/// Netlink messages are 4-byte aligned inside a datagram.
fn nlmsg_align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// True when a kernel error is "no such device", i.e. the object is simply absent.
pub(crate) fn is_no_such_device(err: &io::Error) -> bool {
    err.raw_os_error() == Some(nix::libc::ENODEV)
}
