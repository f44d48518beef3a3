//! Line protocols: HTTP/1.x, the HTTP/2 preface, Redis (RESP), memcached.

use bulkhead_model::exposure::AppProtocol;

use super::{AppClass, MAX_METHOD, MAX_NAME, Sample, Sender, Transport, printable};

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const MEMCACHED_COMMANDS: &[&str] = &[
    "get",
    "gets",
    "gat",
    "gats",
    "set",
    "add",
    "replace",
    "append",
    "prepend",
    "cas",
    "delete",
    "incr",
    "decr",
    "touch",
    "stats",
    "version",
    "flush_all",
    "verbosity",
    "quit",
    "mg",
    "ms",
    "md",
    "mn",
    "ma",
    "me",
];
const MEMCACHED_REPLIES: &[&[u8]] = &[
    b"VALUE ",
    b"STORED\r\n",
    b"NOT_STORED\r\n",
    b"END\r\n",
    b"VERSION ",
    b"STAT ",
    b"DELETED\r\n",
    b"NOT_FOUND\r\n",
    b"EXISTS\r\n",
    b"TOUCHED\r\n",
    b"ERROR\r\n",
    b"CLIENT_ERROR ",
    b"SERVER_ERROR ",
];
const REDIS_REPLIES: &[&[u8]] = &[b"+PONG\r\n", b"+OK\r\n", b"-ERR ", b"-NOAUTH ", b"-WRONGPASS ", b"-WRONGTYPE "];

pub(super) fn classify(s: &Sample<'_>) -> Option<AppClass> {
    if s.transport != Transport::Tcp {
        return None;
    }
    match s.sender {
        Sender::Client => http_request(s.head)
            .or_else(|| h2_preface(s.head))
            .or_else(|| redis_command(s.head))
            .or_else(|| memcached_command(s.head)),
        Sender::Server => http_response(s.head)
            .or_else(|| h2_settings(s.head))
            .or_else(|| redis_reply(s.head))
            .or_else(|| memcached_reply(s.head)),
    }
}

/// `METHOD SP target SP HTTP/1.x`, the line possibly cut by the sample.
fn http_request(b: &[u8]) -> Option<AppClass> {
    let method = METHODS.iter().find(|m| b.starts_with(m.as_bytes()) && b.get(m.len()) == Some(&b' '))?;
    let target = b.get(method.len() + 1)?;
    if !matches!(target, b'/' | b'*' | b'h' | b'H') && !target.is_ascii_alphanumeric() {
        return None;
    }
    let line_end = b.windows(2).position(|w| w == b"\r\n");
    if let Some(end) = line_end {
        let line = &b[..end];
        if !line.windows(7).any(|w| w == b" HTTP/1") {
            return None;
        }
    }
    let mut c = AppClass::of(AppProtocol::Http);
    c.method = (*method).to_string();
    c.host = header(b, b"host").map(|v| printable(v, MAX_NAME)).unwrap_or_default();
    Some(c)
}

/// A header's value, when its whole line is within the sample.
fn header<'a>(b: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    b.split(|c| *c == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r")?;
        let colon = line.iter().position(|c| *c == b':')?;
        line[..colon].eq_ignore_ascii_case(name).then(|| line[colon + 1..].trim_ascii())
    })
}

fn http_response(b: &[u8]) -> Option<AppClass> {
    let rest = b.strip_prefix(b"HTTP/1.1 ").or_else(|| b.strip_prefix(b"HTTP/1.0 "))?;
    rest.get(..3).filter(|code| code.iter().all(u8::is_ascii_digit))?;
    Some(AppClass::of(AppProtocol::Http))
}

/// The HTTP/2 client preface (cut samples of at least 16 bytes count).
fn h2_preface(b: &[u8]) -> Option<AppClass> {
    let n = b.len().min(H2_PREFACE.len());
    (n >= 16 && b[..n] == H2_PREFACE[..n]).then(|| AppClass::of(AppProtocol::Http2))
}

/// A server's first HTTP/2 frame: SETTINGS on stream 0, whole settings.
fn h2_settings(b: &[u8]) -> Option<AppClass> {
    let len = u32::from_be_bytes([0, *b.first()?, *b.get(1)?, *b.get(2)?]);
    let stream = b.get(5..9)?;
    let ok = b[3] == 4 && b[4] <= 1 && len.is_multiple_of(6) && len <= 16_384 && stream == [0, 0, 0, 0];
    ok.then(|| AppClass::of(AppProtocol::Http2))
}

fn digits_then_crlf(b: &[u8], max: usize) -> Option<usize> {
    let n = b.iter().take(max + 1).position(|c| !c.is_ascii_digit())?;
    (n >= 1 && n <= max && b.get(n..n + 2) == Some(b"\r\n")).then_some(n + 2)
}

/// `*<n>\r\n$<len>\r\n<command>`, or an inline PING.
fn redis_command(b: &[u8]) -> Option<AppClass> {
    let mut c = AppClass::of(AppProtocol::Redis);
    if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"PING") && matches!(b.get(4), None | Some(b'\r' | b'\n')) {
        c.method = "PING".into();
        return Some(c);
    }
    let rest = b.strip_prefix(b"*")?;
    let rest = &rest[digits_then_crlf(rest, 3)?..];
    let rest = rest.strip_prefix(b"$")?;
    let rest = &rest[digits_then_crlf(rest, 3)?..];
    let command: Vec<u8> = rest.iter().take_while(|c| c.is_ascii_alphabetic()).copied().collect();
    if command.is_empty() {
        return None;
    }
    c.method = printable(&command.to_ascii_uppercase(), MAX_METHOD);
    Some(c)
}

fn redis_reply(b: &[u8]) -> Option<AppClass> {
    if REDIS_REPLIES.iter().any(|r| b.starts_with(r)) {
        return Some(AppClass::of(AppProtocol::Redis));
    }
    let (first, rest) = b.split_first()?;
    let rest = if *first == b'$' { rest.strip_prefix(b"-").unwrap_or(rest) } else { rest };
    (matches!(first, b'$' | b':' | b'*') && digits_then_crlf(rest, 19).is_some())
        .then(|| AppClass::of(AppProtocol::Redis))
}

fn memcached_command(b: &[u8]) -> Option<AppClass> {
    if let Some(c) = super::binary::memcached_binary(b, 0x80) {
        return Some(c);
    }
    let word_end = b.iter().position(|c| *c == b' ' || *c == b'\r')?;
    let word = std::str::from_utf8(&b[..word_end]).ok()?;
    let next = b.get(word_end..word_end + 2)?;
    if !MEMCACHED_COMMANDS.contains(&word) || !(next[0] == b' ' || next == b"\r\n") {
        return None;
    }
    let mut c = AppClass::of(AppProtocol::Memcached);
    c.method = printable(word.as_bytes(), MAX_METHOD);
    Some(c)
}

fn memcached_reply(b: &[u8]) -> Option<AppClass> {
    if MEMCACHED_REPLIES.iter().any(|r| b.starts_with(r)) {
        return Some(AppClass::of(AppProtocol::Memcached));
    }
    super::binary::memcached_binary(b, 0x81)
}
