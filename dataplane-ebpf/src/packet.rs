//! Crafting Ethernet frames for `BPF_PROG_TEST_RUN` tests and benchmarks.
//!
//! Frames are written by etherparse's [`PacketBuilder`], which fills in the
//! lengths, the ether type, the protocol numbers and the checksums (the
//! programs never verify the checksums). Malformed frames are made by the
//! callers, by truncating or patching the bytes of a well-formed one.

use std::net::IpAddr;

use etherparse::{
    EtherType, Ethernet2Header, Icmpv4Header, Icmpv6Header, IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions,
    Ipv4Header, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header, PacketBuilder, TcpHeader, UdpHeader,
};

/// TCP flag bits.
pub mod tcp {
    /// FIN: no more data from the sender.
    pub const FIN: u8 = 0x01;
    /// SYN: synchronize sequence numbers (connection open).
    pub const SYN: u8 = 0x02;
    /// RST: reset the connection.
    pub const RST: u8 = 0x04;
    /// PSH: push the data to the application.
    pub const PSH: u8 = 0x08;
    /// ACK: acknowledgement field is significant.
    pub const ACK: u8 = 0x10;
    /// URG: urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECE: ECN echo.
    pub const ECE: u8 = 0x40;
    /// CWR: congestion window reduced.
    pub const CWR: u8 = 0x80;
}

/// An L4 header to put in a frame.
#[derive(Debug, Clone, Copy)]
pub enum L4 {
    /// A TCP header.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// TCP flag bits (see [`tcp`]).
        flags: u8,
    },
    /// A UDP header.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// An ICMP or ICMPv6 echo header, per the frame's address family.
    IcmpEcho {
        /// Echo identifier.
        id: u16,
        /// Echo reply if true, echo request otherwise.
        reply: bool,
    },
}

/// Fragmentation of the IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented.
    None,
    /// First fragment (offset 0, more fragments).
    First {
        /// Fragment identification; truncated to 16 bits for IPv4.
        id: u32,
    },
    /// A later fragment at `offset` bytes (multiple of 8); carries no L4 header.
    Later {
        /// Fragment identification; truncated to 16 bits for IPv4.
        id: u32,
        /// Offset of the fragment's data in bytes.
        offset: u16,
        /// Whether more fragments follow (the MF flag).
        more: bool,
    },
}

/// Source MAC of every frame.
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
/// Destination MAC of every frame.
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
/// IPv4 TTL and IPv6 hop limit.
const TTL: u8 = 64;
/// TCP window size.
const TCP_WINDOW: u16 = 65535;
/// What a later fragment carries where its datagram's L4 header would be.
const LATER_FILL: u8 = 0xab;

impl L4 {
    /// The IP protocol number of this header in a packet of the given family.
    fn ip_number(self, v6: bool) -> IpNumber {
        match self {
            L4::Tcp { .. } => IpNumber::TCP,
            L4::Udp { .. } => IpNumber::UDP,
            L4::IcmpEcho { .. } if v6 => IpNumber::IPV6_ICMP,
            L4::IcmpEcho { .. } => IpNumber::ICMP,
        }
    }

    /// The length of this header on the wire in a packet of the given family.
    fn header_len(self, v6: bool) -> usize {
        match self {
            L4::Tcp { .. } => TcpHeader::MIN_LEN,
            L4::Udp { .. } => UdpHeader::LEN,
            L4::IcmpEcho { .. } if v6 => Icmpv6Header::MIN_LEN,
            L4::IcmpEcho { .. } => Icmpv4Header::MIN_LEN,
        }
    }
}

/// A TCP header without options: sequence and acknowledgment numbers zero.
fn tcp_header(sport: u16, dport: u16, flags: u8) -> TcpHeader {
    let mut h = TcpHeader::new(sport, dport, 0, TCP_WINDOW);
    h.fin = flags & tcp::FIN != 0;
    h.syn = flags & tcp::SYN != 0;
    h.rst = flags & tcp::RST != 0;
    h.psh = flags & tcp::PSH != 0;
    h.ack = flags & tcp::ACK != 0;
    h.urg = flags & tcp::URG != 0;
    h.ece = flags & tcp::ECE != 0;
    h.cwr = flags & tcp::CWR != 0;
    h
}

/// The IP header (with an IPv6 fragment header where `frag` asks for one),
/// or `None` when `src` and `dst` are of different families. Lengths are
/// left for the builder; `proto` is the protocol the fragment header or the
/// IP header names next, which the builder sets again on write; `offset` is
/// `frag`'s, in 8-byte units.
fn ip_headers(src: IpAddr, dst: IpAddr, proto: IpNumber, frag: Frag, offset: IpFragOffset) -> Option<IpHeaders> {
    let (more, id) = match frag {
        Frag::None => (false, 0),
        Frag::First { id } => (true, id),
        Frag::Later { id, more, .. } => (more, id),
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = Ipv4Header {
                identification: id as u16,
                dont_fragment: false,
                more_fragments: more,
                fragment_offset: offset,
                time_to_live: TTL,
                protocol: proto,
                source: s.octets(),
                destination: d.octets(),
                ..Ipv4Header::default()
            };
            Some(IpHeaders::Ipv4(ip, Ipv4Extensions::default()))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = Ipv6Header {
                next_header: proto,
                hop_limit: TTL,
                source: s.octets(),
                destination: d.octets(),
                ..Ipv6Header::default()
            };
            let exts = Ipv6Extensions {
                fragment: (frag != Frag::None).then_some(Ipv6FragmentHeader::new(proto, offset, more, id)),
                ..Ipv6Extensions::default()
            };
            Some(IpHeaders::Ipv6(ip, exts))
        }
        _ => None,
    }
}

/// Builds a full Ethernet frame whose L4 header is followed by `payload`
/// bytes of zeros (for [`Frag::Later`], `0xab` bytes in place of the L4
/// header and of the payload alike).
///
/// See [`frame_with_payload`] for the frame's layout; this is it with a
/// payload of that filler.
pub fn frame(src: IpAddr, dst: IpAddr, l4: L4, frag: Frag, payload: usize) -> Vec<u8> {
    let fill = if matches!(frag, Frag::Later { .. }) { LATER_FILL } else { 0 };
    frame_with_payload(src, dst, l4, frag, &vec![fill; payload])
}

/// Builds a full Ethernet frame carrying `payload` after its L4 header: the
/// TCP segment's data, the UDP datagram's data, or the ICMP echo's data.
///
/// The frame goes from MAC 02:00:00:00:00:01 to 02:00:00:00:00:02, with a
/// TTL (hop limit) of 64 and, for TCP, sequence and acknowledgment numbers
/// zero and a window of 65535. IPv4 never sets DF; an IPv6 fragment carries
/// a fragment extension header. A [`Frag::Later`] fragment has no L4 header:
/// its data is `0xab` bytes of the L4 header's length, then `payload`.
///
/// Returns only the Ethernet header (ether type 0) when `src` and `dst` are
/// of different families, and an empty `Vec` when `payload` is too long for
/// the IP length fields (64 KiB): etherparse writes nothing else that can
/// fail into a `Vec`.
pub fn frame_with_payload(src: IpAddr, dst: IpAddr, l4: L4, frag: Frag, payload: &[u8]) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let proto = l4.ip_number(v6);
    let offset = match frag {
        Frag::Later { offset, .. } => offset / 8,
        Frag::None | Frag::First { .. } => 0,
    };
    // A u16 byte offset in 8-byte units is at most 0x1fff, `IpFragOffset::MAX_U16`: never out of range.
    let Ok(offset) = IpFragOffset::try_new(offset) else {
        return Vec::new();
    };
    let Some(ip) = ip_headers(src, dst, proto, frag, offset) else {
        let eth = Ethernet2Header { source: SRC_MAC, destination: DST_MAC, ether_type: EtherType(0) };
        return eth.to_bytes().to_vec();
    };
    let ip = PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ip(ip);
    let mut f = Vec::new();
    let written = match (frag, l4) {
        (Frag::Later { .. }, _) => {
            let mut data = vec![LATER_FILL; l4.header_len(v6)];
            data.extend_from_slice(payload);
            ip.write_to_vec(&mut f, proto, &data)
        }
        (_, L4::Tcp { sport, dport, flags }) => {
            ip.tcp_header(tcp_header(sport, dport, flags)).write_to_vec(&mut f, payload)
        }
        (_, L4::Udp { sport, dport }) => ip.udp(sport, dport).write_to_vec(&mut f, payload),
        (_, L4::IcmpEcho { id, reply }) => match (v6, reply) {
            (false, false) => ip.icmpv4_echo_request(id, 0).write_to_vec(&mut f, payload),
            (false, true) => ip.icmpv4_echo_reply(id, 0).write_to_vec(&mut f, payload),
            (true, false) => ip.icmpv6_echo_request(id, 0).write_to_vec(&mut f, payload),
            (true, true) => ip.icmpv6_echo_reply(id, 0).write_to_vec(&mut f, payload),
        },
    };
    match written {
        Ok(()) => f,
        // The payload does not fit the IP length fields: no such frame exists.
        Err(_) => Vec::new(),
    }
}

/// A plain (unfragmented) TCP frame.
pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    frame(src, dst, L4::Tcp { sport, dport, flags }, Frag::None, 0)
}

/// A plain SCTP frame: the common header (verification tag 0 for an INIT,
/// 1 otherwise; the checksum left zero, which the dataplane never reads) and
/// one chunk header of type `chunk` with no body.
pub fn sctp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, chunk: u8) -> Vec<u8> {
    let Ok(offset) = IpFragOffset::try_new(0) else {
        return Vec::new();
    };
    let Some(ip) = ip_headers(src, dst, IpNumber::SCTP, Frag::None, offset) else {
        return Vec::new();
    };
    let vtag: u32 = if chunk == 1 { 0 } else { 1 };
    let mut data = Vec::with_capacity(16);
    data.extend_from_slice(&sport.to_be_bytes());
    data.extend_from_slice(&dport.to_be_bytes());
    data.extend_from_slice(&vtag.to_be_bytes());
    data.extend_from_slice(&[0; 4]);
    data.extend_from_slice(&[chunk, 0, 0, 4]);
    let mut f = Vec::new();
    match PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ip(ip).write_to_vec(&mut f, IpNumber::SCTP, &data) {
        Ok(()) => f,
        Err(_) => Vec::new(),
    }
}

/// A plain UDP frame with `payload` bytes.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    frame(src, dst, L4::Udp { sport, dport }, Frag::None, payload)
}
