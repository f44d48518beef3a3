//! Binary protocols: PostgreSQL, MySQL, MongoDB, Kafka, AMQP, memcached's
//! binary protocol and DNS.

use bulkhead_model::exposure::AppProtocol;

use super::{AppClass, Sample, Sender, Transport};

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

const PG_SSL_REQUEST: u32 = 80_877_103;
const PG_GSSENC_REQUEST: u32 = 80_877_104;
const PG_CANCEL: u32 = 80_877_102;
const PG_PROTOCOL_3: u32 = 196_608;
const MONGO_OPCODES_CLIENT: &[u32] = &[2013, 2004, 2012];

pub(super) fn classify(s: &Sample<'_>) -> Option<AppClass> {
    if s.transport != Transport::Tcp {
        return None;
    }
    let b = s.head;
    let found = match s.sender {
        Sender::Client => postgres_client(b)
            .or_else(|| mongo(b, false))
            .or_else(|| amqp_client(b))
            .or_else(|| kafka(b, s.payload_len)),
        Sender::Server => mysql_greeting(b, s.payload_len)
            .or_else(|| postgres_server(b))
            .or_else(|| mongo(b, true))
            .or_else(|| amqp_server(b)),
    };
    found.map(AppClass::of)
}

fn postgres_client(b: &[u8]) -> Option<AppProtocol> {
    let (len, code) = (be32(b, 0)?, be32(b, 4)?);
    let ok = match code {
        PG_SSL_REQUEST | PG_GSSENC_REQUEST => len == 8,
        PG_CANCEL => len == 16,
        PG_PROTOCOL_3 => (9..=10_000).contains(&len) && b.get(8).is_none_or(|c| c.is_ascii_lowercase() || *c == b'_'),
        _ => false,
    };
    ok.then_some(AppProtocol::Postgres)
}

/// An authentication request: 'R', length, a known auth code.
fn postgres_server(b: &[u8]) -> Option<AppProtocol> {
    let (len, code) = (be32(b, 1)?, be32(b, 5)?);
    (b[0] == b'R' && (8..=2048).contains(&len) && matches!(code, 0 | 2 | 3 | 5 | 7..=12))
        .then_some(AppProtocol::Postgres)
}

/// The server's initial handshake: length, sequence 0, protocol 10, version string.
fn mysql_greeting(b: &[u8], payload_len: u16) -> Option<AppProtocol> {
    let len = u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, 0]);
    if len < 20 || len + 4 < u32::from(payload_len) || *b.get(3)? != 0 || *b.get(4)? != 0x0a {
        return None;
    }
    let version = &b[5..];
    let printable = version.iter().take_while(|c| c.is_ascii_graphic()).count();
    let ok = match version.get(printable) {
        Some(0) => (1..=60).contains(&printable),
        Some(_) => false,
        None => printable >= 3,
    };
    ok.then_some(AppProtocol::Mysql)
}

fn mongo(b: &[u8], server: bool) -> Option<AppProtocol> {
    let (len, response_to, opcode) = (le32(b, 0)?, le32(b, 8)?, le32(b, 12)?);
    if !(16..=48_000_000).contains(&len) || (len as usize) < b.len() {
        return None;
    }
    let ok = if server {
        response_to != 0 && (opcode == 2013 || opcode == 1)
    } else {
        response_to == 0 && MONGO_OPCODES_CLIENT.contains(&opcode)
    };
    ok.then_some(AppProtocol::Mongodb)
}

fn amqp_client(b: &[u8]) -> Option<AppProtocol> {
    (b.len() >= 8 && b.starts_with(b"AMQP") && b[4] <= 3).then_some(AppProtocol::Amqp)
}

/// Connection.Start: method frame on channel 0, class 10, method 10.
fn amqp_server(b: &[u8]) -> Option<AppProtocol> {
    (b.len() >= 11 && b[0] == 1 && b[1] == 0 && b[2] == 0 && b[7..11] == [0, 10, 0, 10]).then_some(AppProtocol::Amqp)
}

/// A request header: size, API key, version, correlation id, client id.
fn kafka(b: &[u8], payload_len: u16) -> Option<AppProtocol> {
    let size = be32(b, 0)?;
    let (key, version) = (be16(b, 4)?, be16(b, 6)?);
    be32(b, 8)?;
    let client_len = be16(b, 12)? as i16;
    if size < 8 || size + 4 < u32::from(payload_len) || key > 74 || version > 20 {
        return None;
    }
    let ok = match client_len {
        -1 => true,
        0..=255 => {
            let id = b.get(14..).unwrap_or_default();
            id.iter().take(client_len as usize).all(u8::is_ascii_graphic)
        }
        _ => false,
    };
    ok.then_some(AppProtocol::Kafka)
}

/// The binary protocol's 24-byte header with `magic` (0x80 request, 0x81 response).
pub(super) fn memcached_binary(b: &[u8], magic: u8) -> Option<AppClass> {
    (b.len() >= 24 && b[0] == magic && b[1] <= 0x48 && b[5] == 0).then(|| AppClass::of(AppProtocol::Memcached))
}

/// DNS over UDP, or over TCP after its length prefix.
pub(super) fn dns(s: &Sample<'_>) -> Option<AppClass> {
    let b = match s.transport {
        Transport::Udp => s.head,
        Transport::Tcp => {
            let len = be16(s.head, 0)?;
            if len < 12 || usize::from(len) + 2 < usize::from(s.payload_len) {
                return None;
            }
            &s.head[2..]
        }
    };
    let flags = be16(b, 2)?;
    let (qd, an, ns, ar) = (be16(b, 4)?, be16(b, 6)?, be16(b, 8)?, be16(b, 10)?);
    let response = flags & 0x8000 != 0;
    let shape = match s.sender {
        Sender::Client => !response && an == 0 && ns == 0 && ar <= 2,
        Sender::Server => response,
    };
    (shape && (1..=4).contains(&qd) && qname_ok(&b[12..])).then(|| AppClass::of(AppProtocol::Dns))
}

/// A well-formed question name, as far as the sample holds it.
fn qname_ok(b: &[u8]) -> bool {
    let (mut at, mut total) = (0usize, 0usize);
    loop {
        let Some(&len) = b.get(at) else { return at > 0 };
        if len == 0 {
            return at > 0 || b.len() > 1;
        }
        if len > 63 {
            return false;
        }
        let label = &b[at + 1..(at + 1 + usize::from(len)).min(b.len())];
        if !label.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_') {
            return false;
        }
        total += usize::from(len) + 1;
        if total > 255 {
            return false;
        }
        at += 1 + usize::from(len);
    }
}
