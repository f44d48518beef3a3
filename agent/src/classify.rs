//! Passive type identification: the application protocol one way of a
//! connection speaks, from the first payload bytes the kernel sampled (at
//! most 128). Only the class and a few fields (server name, host, method)
//! are kept; the bytes are dropped here, on the node. A wrong guess is worse
//! than none, so each rule asks for the protocol's fixed markers and
//! anything unrecognised is `None`.

mod binary;
mod text;
mod tls;

use bulkhead_model::exposure::AppProtocol;

/// Which end sent the sampled bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The end that opened the connection.
    Client,
    /// The pod serving it.
    Server,
}

/// The connection's L4 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What a sample says: the only thing kept of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppClass {
    /// The protocol; `None` when no rule recognised the bytes.
    pub protocol: Option<AppProtocol>,
    /// TLS ClientHello: the server name asked for.
    pub sni: String,
    /// TLS ClientHello: the ALPN protocols offered (at most 4).
    pub alpn: Vec<String>,
    /// HTTP/1.x: the Host header.
    pub host: String,
    /// HTTP/1.x method, Redis or memcached command.
    pub method: String,
}

impl AppClass {
    fn of(protocol: AppProtocol) -> Self {
        Self { protocol: Some(protocol), ..Self::default() }
    }
}

/// A captured sample, as the kernel laid it out.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Who sent the bytes.
    pub sender: Sender,
    /// TCP or UDP.
    pub transport: Transport,
    /// Bytes from payload offset 0 (16 of a ClientHello when `ext` is set).
    pub head: &'a [u8],
    /// A ClientHello's bytes from its first extension, and that payload offset.
    pub ext: Option<(u16, &'a [u8])>,
    /// The packet's whole L4 payload length.
    pub payload_len: u16,
}

/// Longest host or server name kept.
const MAX_NAME: usize = 253;
/// Longest method or command kept.
const MAX_METHOD: usize = 16;

/// Printable ASCII only, at most `max` bytes: nothing a sample holds can
/// break a log line, a terminal or the console.
fn printable(bytes: &[u8], max: usize) -> String {
    bytes.iter().filter(|b| b.is_ascii_graphic()).take(max).map(|b| char::from(*b)).collect()
}

/// Classifies one sample.
pub fn classify(s: &Sample<'_>) -> AppClass {
    let b = s.head;
    if b.is_empty() {
        return AppClass::default();
    }
    if b.starts_with(b"SSH-2.0-") || b.starts_with(b"SSH-1.99-") {
        return AppClass::of(AppProtocol::Ssh);
    }
    if let Some(c) = tls::classify(s) {
        return c;
    }
    let rules: [fn(&Sample<'_>) -> Option<AppClass>; 3] = [text::classify, binary::classify, binary::dns];
    rules.iter().find_map(|rule| rule(s)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
