//! SCTP for lab pods on a kernel without SCTP sockets: the first leg of the
//! real handshake (RFC 9260 INIT, then INIT ACK) over raw IPv4 sockets. The
//! packets on the wire are genuine SCTP with valid CRC32c checksums, so the
//! dataplane parses, judges and tracks them as it would a kernel's; only the
//! endpoints are this small responder and prober. A port nobody serves gets
//! no answer (a kernel would ABORT), which a probe reads as not connected.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, sockopt};
use nix::sys::time::TimeVal;

use crate::error::LabError;

const CHUNK_INIT: u8 = 1;
const CHUNK_INIT_ACK: u8 = 2;
const PARAM_STATE_COOKIE: u16 = 7;
const COMMON_HEADER: usize = 12;

/// CRC32c (Castagnoli), as SCTP's checksum uses it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// A packet of one chunk, checksummed (the checksum goes on the wire in
/// little-endian order, as Linux writes it).
fn packet(src: u16, dst: u16, vtag: u32, chunk_type: u8, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(COMMON_HEADER + 4 + body.len());
    p.extend_from_slice(&src.to_be_bytes());
    p.extend_from_slice(&dst.to_be_bytes());
    p.extend_from_slice(&vtag.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.push(chunk_type);
    p.push(0);
    p.extend_from_slice(&u16::try_from(4 + body.len()).unwrap_or(u16::MAX).to_be_bytes());
    p.extend_from_slice(body);
    while p.len() % 4 != 0 {
        p.push(0);
    }
    let sum = crc32c(&p);
    p[8..12].copy_from_slice(&sum.to_le_bytes());
    p
}

/// INIT and INIT ACK share the fixed part: initiate tag, window, streams, TSN.
fn init_body(tag: u32, tsn: u32, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&tag.to_be_bytes());
    b.extend_from_slice(&65_535u32.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&tsn.to_be_bytes());
    if let Some(c) = cookie {
        b.extend_from_slice(&PARAM_STATE_COOKIE.to_be_bytes());
        b.extend_from_slice(&u16::try_from(4 + c.len()).unwrap_or(u16::MAX).to_be_bytes());
        b.extend_from_slice(c);
    }
    b
}

/// What a received IPv4 datagram carries, if it is SCTP with a first chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    from: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    vtag: u32,
    chunk: u8,
    /// The chunk's first word: the initiate tag of INIT and INIT ACK.
    tag: u32,
    /// INIT's initial TSN.
    tsn: u32,
}

fn parse(datagram: &[u8]) -> Option<Received> {
    let ihl = usize::from(*datagram.first()? & 0x0f) * 4;
    let from = Ipv4Addr::new(*datagram.get(12)?, *datagram.get(13)?, *datagram.get(14)?, *datagram.get(15)?);
    let s = datagram.get(ihl..)?;
    let word = |i: usize| -> Option<u32> { Some(u32::from_be_bytes(s.get(i..i + 4)?.try_into().ok()?)) };
    let half = |i: usize| -> Option<u16> { Some(u16::from_be_bytes(s.get(i..i + 2)?.try_into().ok()?)) };
    let mut zeroed = s.to_vec();
    zeroed.get_mut(8..12)?.copy_from_slice(&[0; 4]);
    if crc32c(&zeroed).to_le_bytes() != *s.get(8..12)? {
        return None;
    }
    Some(Received {
        from,
        src_port: half(0)?,
        dst_port: half(2)?,
        vtag: word(4)?,
        chunk: *s.get(COMMON_HEADER)?,
        tag: word(COMMON_HEADER + 4).unwrap_or(0),
        tsn: word(COMMON_HEADER + 16).unwrap_or(0),
    })
}

fn raw_socket() -> Result<OwnedFd, LabError> {
    socket::socket(AddressFamily::Inet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::Sctp)
        .map_err(|e| LabError::Invalid(format!("opening a raw SCTP socket: {e}")))
}

fn io(what: &str, e: nix::Error) -> LabError {
    LabError::Invalid(format!("SCTP {what}: {e}"))
}

/// A nonzero tag, different for every association.
fn fresh_tag(salt: u32) -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos ^ salt.rotate_left(13) ^ std::process::id()).max(1)
}

/// Serves `ports`: answers every INIT to them with an INIT ACK, for ever.
/// The socket is opened in the calling thread's network namespace.
pub fn respond(ports: Vec<u16>) -> Result<(), LabError> {
    let sock = raw_socket()?;
    let mut buf = [0u8; 2048];
    loop {
        let n = match socket::recvfrom::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&sock), &mut buf) {
            Ok((n, _)) => n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io("receiving", e)),
        };
        let Some(r) = buf.get(..n).and_then(parse) else { continue };
        if r.chunk != CHUNK_INIT || r.vtag != 0 || !ports.contains(&r.dst_port) {
            continue;
        }
        let tag = fresh_tag(r.tag);
        let cookie = [tag.to_be_bytes(), r.tag.to_be_bytes()].concat();
        let reply = packet(r.dst_port, r.src_port, r.tag, CHUNK_INIT_ACK, &init_body(tag, tag, Some(&cookie)));
        let to = SockaddrIn::from(SocketAddrV4::new(r.from, 0));
        // A reply the dataplane drops is the point of a blocked probe.
        let _ = socket::sendto(std::os::fd::AsRawFd::as_raw_fd(&sock), &reply, &to, MsgFlags::empty());
    }
}

/// Sends INIT to each `(address, port)` from the calling thread's network
/// namespace and reports which answered with a matching INIT ACK within
/// `timeout`. The lab's SCTP is IPv4 only: an IPv6 target is an error, not
/// a blocked probe.
pub fn probe(targets: &[(IpAddr, u16)], timeout: Duration) -> Result<Vec<bool>, LabError> {
    let sock = raw_socket()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let tick = TimeVal::new(0, 50_000);
    socket::setsockopt(&sock, sockopt::ReceiveTimeout, &tick).map_err(|e| io("setting a timeout", e))?;
    let mut pending = Vec::new();
    for (i, (ip, port)) in targets.iter().enumerate() {
        let IpAddr::V4(v4) = ip else {
            return Err(LabError::Invalid(format!("SCTP probe to {ip} port {port}: the lab's SCTP is IPv4 only")));
        };
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        let src = 40_000u16.wrapping_add(index);
        let tag = fresh_tag(u32::from(index) << 16 | u32::from(*port));
        let init = packet(src, *port, 0, CHUNK_INIT, &init_body(tag, tag, None));
        let to = SockaddrIn::from(SocketAddrV4::new(*v4, 0));
        socket::sendto(fd, &init, &to, MsgFlags::empty()).map_err(|e| io("sending INIT", e))?;
        pending.push((i, *v4, src, *port, tag));
    }
    let mut connected = vec![false; targets.len()];
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while !pending.is_empty() && Instant::now() < deadline {
        let n = match socket::recvfrom::<SockaddrIn>(fd, &mut buf) {
            Ok((n, _)) => n,
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => continue,
            Err(e) => return Err(io("receiving", e)),
        };
        let Some(r) = buf.get(..n).and_then(parse) else { continue };
        if r.chunk != CHUNK_INIT_ACK {
            continue;
        }
        pending.retain(|(i, ip, src, port, tag)| {
            let hit = r.from == *ip && r.src_port == *port && r.dst_port == *src && r.vtag == *tag && r.tag != 0;
            if hit {
                connected[*i] = true;
            }
            !hit
        });
    }
    Ok(connected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_rfc_vector_and_packets_round_trip() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        let p = packet(40_000, 9003, 0, CHUNK_INIT, &init_body(7, 7, None));
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        ip.extend_from_slice(&p);
        let r = parse(&ip).unwrap();
        assert_eq!((r.src_port, r.dst_port, r.vtag, r.chunk, r.tag, r.tsn), (40_000, 9003, 0, CHUNK_INIT, 7, 7));
        assert_eq!(r.from, Ipv4Addr::new(10, 0, 0, 1));
        let last = ip.len() - 1;
        ip[last] ^= 1;
        assert!(parse(&ip).is_none(), "a bad checksum is not read");
    }
}
