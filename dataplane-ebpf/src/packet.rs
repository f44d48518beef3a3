//! Crafting Ethernet frames for `BPF_PROG_TEST_RUN` tests and benchmarks.
//! Checksums are left zero: the programs never verify them.

use std::net::IpAddr;

/// TCP flag bits.
pub mod tcp {
    /// FIN: no more data from the sender.
    pub const FIN: u8 = 0x01;
    /// SYN: synchronize sequence numbers (connection open).
    pub const SYN: u8 = 0x02;
    /// RST: reset the connection.
    pub const RST: u8 = 0x04;
    /// ACK: acknowledgement field is significant.
    pub const ACK: u8 = 0x10;
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

fn l4_bytes(l4: L4, v6: bool, payload: usize) -> (u8, Vec<u8>) {
    match l4 {
        L4::Tcp { sport, dport, flags } => {
            let mut h = vec![0u8; 20 + payload];
            h[0..2].copy_from_slice(&sport.to_be_bytes());
            h[2..4].copy_from_slice(&dport.to_be_bytes());
            h[12] = 5 << 4;
            h[13] = flags;
            h[14..16].copy_from_slice(&65535u16.to_be_bytes());
            (6, h)
        }
        L4::Udp { sport, dport } => {
            let mut h = vec![0u8; 8 + payload];
            h[0..2].copy_from_slice(&sport.to_be_bytes());
            h[2..4].copy_from_slice(&dport.to_be_bytes());
            h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
            (17, h)
        }
        L4::IcmpEcho { id, reply } => {
            let mut h = vec![0u8; 8 + payload];
            h[0] = match (v6, reply) {
                (false, false) => 8,
                (false, true) => 0,
                (true, false) => 128,
                (true, true) => 129,
            };
            h[4..6].copy_from_slice(&id.to_be_bytes());
            (if v6 { 58 } else { 1 }, h)
        }
    }
}

/// Builds a full Ethernet frame.
pub fn frame(src: IpAddr, dst: IpAddr, l4: L4, frag: Frag, payload: usize) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let (proto, mut l4b) = l4_bytes(l4, v6, payload);
    if let Frag::Later { .. } = frag {
        // A later fragment carries payload only.
        l4b = vec![0xab; l4b.len()];
    }
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + l4b.len()) as u16).to_be_bytes());
            let (id, off) = match frag {
                Frag::None => (0u16, 0u16),
                Frag::First { id } => (id as u16, 0x2000),
                Frag::Later { id, offset, more } => (id as u16, (offset / 8) | if more { 0x2000 } else { 0 }),
            };
            ip[4..6].copy_from_slice(&id.to_be_bytes());
            ip[6..8].copy_from_slice(&off.to_be_bytes());
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            f.extend(ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            let mut ext = Vec::new();
            let next = match frag {
                Frag::None => proto,
                Frag::First { id } | Frag::Later { id, .. } => {
                    let (offset, more) = match frag {
                        Frag::Later { offset, more, .. } => (offset, more),
                        _ => (0, true),
                    };
                    ext = vec![0u8; 8];
                    ext[0] = proto;
                    let fo = (offset & 0xfff8) | u16::from(more);
                    ext[2..4].copy_from_slice(&fo.to_be_bytes());
                    ext[4..8].copy_from_slice(&id.to_be_bytes());
                    44
                }
            };
            ip[4..6].copy_from_slice(&((ext.len() + l4b.len()) as u16).to_be_bytes());
            ip[6] = next;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            f.extend(ip);
            f.extend(ext);
        }
        _ => return f,
    }
    f.extend(l4b);
    f
}

/// A plain (unfragmented) TCP frame.
pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    frame(src, dst, L4::Tcp { sport, dport, flags }, Frag::None, 0)
}

/// A plain UDP frame with `payload` bytes.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    frame(src, dst, L4::Udp { sport, dport }, Frag::None, payload)
}
