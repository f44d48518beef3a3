//! TLS: a ClientHello (with its server name and ALPN offers, from the
//! kernel's extensions window) or a server's handshake or alert record.

use bulkhead_model::exposure::AppProtocol;

use super::{AppClass, MAX_NAME, Sample, Sender, Transport, printable};

const SERVER_NAME: u16 = 0;
const ALPN: u16 = 16;
const MAX_ALPN: usize = 4;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// A TLS record header: content type, legacy version 3.0–3.4.
fn record(b: &[u8], content: u8) -> bool {
    b.len() >= 6 && b[0] == content && b[1] == 3 && b[2] <= 4
}

pub(super) fn classify(s: &Sample<'_>) -> Option<AppClass> {
    if s.transport != Transport::Tcp {
        return None;
    }
    let b = s.head;
    match s.sender {
        Sender::Client if record(b, 0x16) && b[5] == 1 => {
            let mut c = AppClass::of(AppProtocol::Tls);
            if let Some((_, ext)) = s.ext {
                extensions(ext, &mut c);
            }
            Some(c)
        }
        Sender::Server if (record(b, 0x16) && b[5] == 2) || (record(b, 0x15) && b.len() >= 7) => {
            Some(AppClass::of(AppProtocol::Tls))
        }
        _ => None,
    }
}

/// Walks the extensions window (type, length, data …) as far as it goes.
fn extensions(w: &[u8], c: &mut AppClass) {
    let mut at = 0;
    while let (Some(kind), Some(len)) = (u16_at(w, at), u16_at(w, at + 2)) {
        let start = at + 4;
        let end = start + usize::from(len);
        let data = &w[start.min(w.len())..end.min(w.len())];
        match kind {
            SERVER_NAME => c.sni = server_name(data),
            ALPN => c.alpn = alpn(data),
            _ => {}
        }
        if end > w.len() {
            return;
        }
        at = end;
    }
}

/// server_name: list length, then (type 0, length, name).
fn server_name(d: &[u8]) -> String {
    match (d.get(2), u16_at(d, 3)) {
        (Some(0), Some(len)) => {
            let name = &d[5.min(d.len())..(5 + usize::from(len)).min(d.len())];
            printable(name, MAX_NAME)
        }
        _ => String::new(),
    }
}

/// ALPN: list length, then length-prefixed protocol ids.
fn alpn(d: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 2;
    while let Some(len) = d.get(at).map(|l| usize::from(*l)) {
        let Some(id) = d.get(at + 1..at + 1 + len) else { break };
        let id = printable(id, 32);
        if !id.is_empty() {
            out.push(id);
        }
        if out.len() == MAX_ALPN {
            break;
        }
        at += 1 + len;
    }
    out
}
