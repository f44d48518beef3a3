//! The opening bytes of the protocols Bulkhead identifies, so that a lab
//! pod's server speaks what its port declares and a call speaks what its
//! target serves: enough of each protocol for a passive classifier to tell
//! it, nothing more. A port speaks the protocol its name hints at
//! (`http`, `tcp-redis`…), or what the pod's `lab.bulkhead.dev/speaks`
//! annotation (`"8443=tls, 6379=redis"`) says instead, which is how a lab
//! builds a port that speaks something else than it declares.

use bulkhead_model::exposure::AppProtocol;

/// The override annotation.
pub const SPEAKS_ANNOTATION: &str = "lab.bulkhead.dev/speaks";

/// Parses "PORT=PROTO, …".
pub fn parse_speaks(s: &str) -> Result<Vec<(u16, AppProtocol)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|item| {
            let (port, proto) = item.split_once('=').ok_or_else(|| format!("{item:?}: expected PORT=PROTOCOL"))?;
            let port = port.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("{item:?}: bad port"))?;
            let proto = proto.trim().parse::<AppProtocol>().map_err(|e| format!("{item:?}: {e}"))?;
            Ok((port, proto))
        })
        .collect()
}

/// What the server of `port` speaks: the override, else the name's hint.
pub fn server_protocol(port: u16, port_name: Option<&str>, overrides: &[(u16, AppProtocol)]) -> Option<AppProtocol> {
    overrides
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, a)| *a)
        .or_else(|| port_name.and_then(|n| AppProtocol::hinted(n, None)))
}

/// The `--speak` argument of a pod's server: each served port whose name
/// or the pod's override names a protocol, as "PORT=PROTOCOL,…".
pub fn for_pod(spec: &crate::manifest::PodSpec) -> Result<String, String> {
    let overrides = match spec.annotations.get(SPEAKS_ANNOTATION) {
        Some(s) => {
            parse_speaks(s).map_err(|e| format!("{}/{}: {SPEAKS_ANNOTATION}: {e}", spec.namespace, spec.name))?
        }
        None => Vec::new(),
    };
    let names: Vec<(u64, &str)> = spec
        .containers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .filter_map(|p| Some((p["containerPort"].as_u64()?, p["name"].as_str()?)))
        .collect();
    let out: Vec<String> = spec
        .ports
        .iter()
        .filter_map(|p| {
            let name = names.iter().find(|(n, _)| *n == u64::from(p.port)).map(|(_, name)| *name);
            server_protocol(p.port, name, &overrides).map(|a| format!("{}={a}", p.port))
        })
        .collect();
    Ok(out.join(","))
}

/// Whether the server talks first (a greeting), instead of answering.
pub fn server_first(p: AppProtocol) -> bool {
    matches!(p, AppProtocol::Mysql | AppProtocol::Ssh)
}

/// A server-first protocol's greeting.
pub fn greeting(p: AppProtocol, name: &str) -> Vec<u8> {
    match p {
        AppProtocol::Ssh => b"SSH-2.0-bulkhead_lab\r\n".to_vec(),
        AppProtocol::Mysql => {
            // protocol 10, version, thread id, salt, filler, capabilities, charset, status
            let mut body = vec![0x0a];
            body.extend_from_slice(b"8.0.36-bulkhead\0");
            body.extend_from_slice(&7u32.to_le_bytes());
            body.extend_from_slice(b"abcdefgh\0");
            body.extend_from_slice(&[0xff, 0xf7, 0x21, 0x02, 0x00, 0xff, 0xc1, 0x15]);
            body.extend_from_slice(&[0; 10]);
            body.extend_from_slice(b"ijklmnopqrst\0");
            framed_mysql(&body, 0)
        }
        _ => format!("{name}\n").into_bytes(),
    }
}

fn framed_mysql(body: &[u8], seq: u8) -> Vec<u8> {
    let len = body.len() as u32;
    let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    out.extend_from_slice(body);
    out
}

/// What a client of `p` sends first (after the greeting, for server-first
/// protocols). `host` is the name it called.
pub fn opener(p: AppProtocol, host: &str) -> Vec<u8> {
    match p {
        AppProtocol::Http => format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bulkhead-lab\r\n\r\n").into_bytes(),
        AppProtocol::Http2 | AppProtocol::Grpc => {
            let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            b.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            b
        }
        AppProtocol::Tls => client_hello(host),
        AppProtocol::Dns => dns_query(host, 0x4242, false),
        AppProtocol::Redis => b"*1\r\n$4\r\nPING\r\n".to_vec(),
        AppProtocol::Mysql => framed_mysql(&[0x85, 0xa6, 0xff, 0x01, 0, 0, 0, 1, 0x21], 1),
        AppProtocol::Postgres => vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
        AppProtocol::Mongodb => mongo_msg(1, 0, &bson_hello()),
        AppProtocol::Kafka => kafka_api_versions(),
        AppProtocol::Amqp => b"AMQP\x00\x00\x09\x01".to_vec(),
        AppProtocol::Memcached => b"version\r\n".to_vec(),
        AppProtocol::Ssh => b"SSH-2.0-bulkhead_client\r\n".to_vec(),
    }
}

/// The server's answer to the client's first bytes.
pub fn reply(p: AppProtocol, name: &str, request: &[u8]) -> Vec<u8> {
    match p {
        AppProtocol::Http => {
            let body = format!("{name}\n");
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        }
        AppProtocol::Http2 | AppProtocol::Grpc => vec![0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0],
        AppProtocol::Tls => server_hello(),
        AppProtocol::Dns => {
            let mut r = request.to_vec();
            if let Some(flags) = r.get_mut(2) {
                *flags |= 0x80;
            }
            r
        }
        AppProtocol::Redis => b"+PONG\r\n".to_vec(),
        AppProtocol::Postgres => b"N".to_vec(),
        AppProtocol::Mongodb => mongo_msg(2, 1, &bson_ok()),
        AppProtocol::Kafka => {
            // size, correlation id 1, error 0, no api keys, throttle 0, tagged fields
            let body = [0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0];
            let mut r = (body.len() as u32).to_be_bytes().to_vec();
            r.extend_from_slice(&body);
            r
        }
        AppProtocol::Amqp => {
            // Connection.Start: frame type 1, channel 0, class 10, method 10, version 0-9
            let args = [
                0x0a_u8, 0x00, 0x0a, 0x00, 0x09, 0x00, 0, 0, 0, 0, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N', 0, 0, 0,
                5, b'e', b'n', b'_', b'U', b'S',
            ];
            let mut r = vec![1, 0, 0];
            r.extend_from_slice(&(args.len() as u32 + 1).to_be_bytes());
            r.push(0);
            r.extend_from_slice(&args);
            r.push(0xce);
            r
        }
        AppProtocol::Memcached => b"VERSION 1.6.18\r\n".to_vec(),
        AppProtocol::Mysql | AppProtocol::Ssh => Vec::new(),
    }
}

fn u16be(v: usize) -> [u8; 2] {
    (v as u16).to_be_bytes()
}

/// A TLS 1.3-style ClientHello asking for `host`, offering h2 and http/1.1.
fn client_hello(host: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = host.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&u16be(name.len() + 5));
    ext.extend_from_slice(&u16be(name.len() + 3));
    ext.push(0);
    ext.extend_from_slice(&u16be(name.len()));
    ext.extend_from_slice(name);
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let list: usize = alpn.iter().map(|a| a.len() + 1).sum();
    ext.extend_from_slice(&[0, 16]);
    ext.extend_from_slice(&u16be(list + 2));
    ext.extend_from_slice(&u16be(list));
    for a in alpn {
        ext.push(a.len() as u8);
        ext.extend_from_slice(a);
    }
    // supported_versions: TLS 1.3, 1.2
    ext.extend_from_slice(&[0, 43, 0, 5, 4, 3, 4, 3, 3]);
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[0x5a; 32]);
    hello.push(32);
    hello.extend_from_slice(&[0xa5; 32]);
    let suites: &[u16] = &[0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009e, 0x00ff];
    hello.extend_from_slice(&u16be(suites.len() * 2));
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]);
    hello.extend_from_slice(&u16be(ext.len()));
    hello.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&u16be(hello.len()));
    hs.extend_from_slice(&hello);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&u16be(hs.len()));
    rec.extend_from_slice(&hs);
    rec
}

fn server_hello() -> Vec<u8> {
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[0x3c; 32]);
    hello.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 0]);
    let mut hs = vec![2, 0];
    hs.extend_from_slice(&u16be(hello.len()));
    hs.extend_from_slice(&hello);
    let mut rec = vec![0x16, 3, 3];
    rec.extend_from_slice(&u16be(hs.len()));
    rec.extend_from_slice(&hs);
    rec
}

/// A standard A query for `name` (over UDP; `tcp` adds the length prefix).
pub fn dns_query(name: &str, id: u16, tcp: bool) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if tcp {
        let mut framed = u16be(q.len()).to_vec();
        framed.extend_from_slice(&q);
        return framed;
    }
    q
}

fn bson_doc(elements: &[u8]) -> Vec<u8> {
    let mut d = ((elements.len() + 5) as i32).to_le_bytes().to_vec();
    d.extend_from_slice(elements);
    d.push(0);
    d
}

fn bson_hello() -> Vec<u8> {
    let mut e = vec![0x10];
    e.extend_from_slice(b"hello\0");
    e.extend_from_slice(&1i32.to_le_bytes());
    e.push(0x02);
    e.extend_from_slice(b"$db\0");
    e.extend_from_slice(&6i32.to_le_bytes());
    e.extend_from_slice(b"admin\0");
    bson_doc(&e)
}

fn bson_ok() -> Vec<u8> {
    let mut e = vec![0x01];
    e.extend_from_slice(b"ok\0");
    e.extend_from_slice(&1.0f64.to_le_bytes());
    bson_doc(&e)
}

/// An OP_MSG with one body section.
fn mongo_msg(request_id: i32, response_to: i32, doc: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + 1 + doc.len();
    let mut m = (len as i32).to_le_bytes().to_vec();
    m.extend_from_slice(&request_id.to_le_bytes());
    m.extend_from_slice(&response_to.to_le_bytes());
    m.extend_from_slice(&2013i32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(doc);
    m
}

/// ApiVersions v3 with client id "bulkhead-lab".
fn kafka_api_versions() -> Vec<u8> {
    let client = b"bulkhead-lab";
    let mut body = vec![0, 18, 0, 3, 0, 0, 0, 1];
    body.extend_from_slice(&u16be(client.len()));
    body.extend_from_slice(client);
    // tagged fields, client software name and version (compact strings), tagged fields
    body.extend_from_slice(&[0, 9]);
    body.extend_from_slice(b"bulkhead");
    body.extend_from_slice(&[2, b'1', 0]);
    let mut r = (body.len() as u32).to_be_bytes().to_vec();
    r.extend_from_slice(&body);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_port_names() {
        let o = parse_speaks("8080=tls, 6379 = redis").unwrap();
        assert_eq!(server_protocol(8080, Some("http"), &o), Some(AppProtocol::Tls));
        assert_eq!(server_protocol(9000, Some("http-metrics"), &o), Some(AppProtocol::Http));
        assert_eq!(server_protocol(9001, Some("metrics"), &o), None);
        assert!(parse_speaks("8080").is_err() && parse_speaks("x=tls").is_err() && parse_speaks("80=gopher").is_err());
    }

    #[test]
    fn the_client_hello_is_well_formed() {
        let h = client_hello("web.shop");
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        assert_eq!(h[5], 1);
        let hs_len = (usize::from(h[7]) << 8) | usize::from(h[8]);
        assert_eq!(hs_len, h.len() - 9);
        assert!(h.windows(8).any(|w| w == b"web.shop"));
        let q = dns_query("redis.shop.svc.cluster.local", 1, true);
        assert_eq!(usize::from(u16::from_be_bytes([q[0], q[1]])), q.len() - 2);
    }
}
