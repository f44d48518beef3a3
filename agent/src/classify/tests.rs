#![allow(clippy::unwrap_used)]

use super::*;

fn client(b: &[u8]) -> Sample<'_> {
    Sample { sender: Sender::Client, transport: Transport::Tcp, head: b, ext: None, payload_len: b.len() as u16 }
}

fn server(b: &[u8]) -> Sample<'_> {
    Sample { sender: Sender::Server, ..client(b) }
}

fn udp(sender: Sender, b: &[u8]) -> Sample<'_> {
    Sample { sender, transport: Transport::Udp, ..client(b) }
}

fn class(s: Sample<'_>) -> Option<AppProtocol> {
    classify(&s).protocol
}

const CURL: &[u8] = b"GET /cart HTTP/1.1\r\nHost: cart.shop:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
const MYSQL: &[u8] = b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00\xff\xf7";
const KAFKA: &[u8] = b"\x00\x00\x00\x22\x00\x12\x00\x03\x00\x00\x00\x01\x00\x07rdkafka\x00\x09librdkafka\x032.0\x00";
const MONGO: &[u8] = b"\x3d\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00";

fn dns_query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["redis", "shop", "svc", "cluster", "local"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A ClientHello's first 16 bytes and its extensions window: SNI, then ALPN.
fn client_hello() -> (Vec<u8>, Vec<u8>) {
    let head = vec![0x16, 3, 1, 0x01, 0xfc, 1, 0, 1, 0xf8, 3, 3, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    let mut ext = vec![0, 0, 0, 17, 0, 15, 0, 0, 12];
    ext.extend_from_slice(b"api.shop.svc");
    ext.extend_from_slice(&[0, 16, 0, 14, 0, 12, 2]);
    ext.extend_from_slice(b"h2");
    ext.push(8);
    ext.extend_from_slice(b"http/1.1");
    ext.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
    (head, ext)
}

#[test]
fn http_requests_keep_their_method_and_host() {
    let c = classify(&client(CURL));
    assert_eq!((c.protocol, c.method.as_str(), c.host.as_str()), (Some(AppProtocol::Http), "GET", "cart.shop:8080"));
    assert_eq!(class(server(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")), Some(AppProtocol::Http));
    // cut in the middle of the request line: still HTTP, no host
    let cut = classify(&client(&CURL[..9]));
    assert_eq!((cut.protocol, cut.host.as_str()), (Some(AppProtocol::Http), ""));
    assert_eq!(class(client(b"GET something else\r\n")), None);
}

#[test]
fn the_http2_preface_and_settings() {
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(class(client(&preface)), Some(AppProtocol::Http2));
    assert_eq!(class(client(&preface[..16])), Some(AppProtocol::Http2));
    assert_eq!(class(client(&preface[..10])), None);
    assert_eq!(class(server(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100])), Some(AppProtocol::Http2));
    assert_eq!(class(server(&[0, 0, 5, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0])), None);
}

#[test]
fn tls_names_and_alpn_come_from_the_extensions_window() {
    let (head, ext) = client_hello();
    let s = Sample { ext: Some((120, &ext)), payload_len: 500, ..client(&head) };
    let c = classify(&s);
    assert_eq!(c.protocol, Some(AppProtocol::Tls));
    assert_eq!(c.sni, "api.shop.svc");
    assert_eq!(c.alpn, ["h2", "http/1.1"]);
    // a window cut inside the ALPN list keeps what it holds
    let cut = classify(&Sample { ext: Some((120, &ext[..30])), ..s });
    assert_eq!((cut.sni.as_str(), cut.alpn.as_slice()), ("api.shop.svc", &["h2".to_string()][..]));
    // no window: TLS, no fields
    assert_eq!(classify(&client(&head)), AppClass::of(AppProtocol::Tls));
    let server_hello = [0x16, 3, 3, 0, 0x5a, 2, 0, 0, 0x56, 3, 3];
    assert_eq!(class(server(&server_hello)), Some(AppProtocol::Tls));
}

#[test]
fn databases_and_brokers() {
    assert_eq!(class(client(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])), Some(AppProtocol::Postgres));
    let mut startup = vec![0, 0, 0, 0x29, 0, 3, 0, 0];
    startup.extend_from_slice(b"user\0app\0database\0shop\0\0");
    assert_eq!(class(client(&startup)), Some(AppProtocol::Postgres));
    assert_eq!(class(server(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0])), Some(AppProtocol::Postgres));
    assert_eq!(class(server(MYSQL)), Some(AppProtocol::Mysql));
    assert_eq!(class(client(MYSQL)), None, "a client sends no greeting");
    assert_eq!(class(client(MONGO)), Some(AppProtocol::Mongodb));
    assert_eq!(class(client(KAFKA)), Some(AppProtocol::Kafka));
    assert_eq!(class(client(b"AMQP\x00\x00\x09\x01")), Some(AppProtocol::Amqp));
    let start = [1, 0, 0, 0, 0, 0, 0x20, 0, 10, 0, 10, 0, 9];
    assert_eq!(class(server(&start)), Some(AppProtocol::Amqp));
}

#[test]
fn redis_memcached_ssh_and_dns() {
    let r = classify(&client(b"*1\r\n$4\r\nping\r\n"));
    assert_eq!((r.protocol, r.method.as_str()), (Some(AppProtocol::Redis), "PING"));
    assert_eq!(class(server(b"+PONG\r\n")), Some(AppProtocol::Redis));
    assert_eq!(class(server(b"$-1\r\n")), Some(AppProtocol::Redis));
    let m = classify(&client(b"version\r\n"));
    assert_eq!((m.protocol, m.method.as_str()), (Some(AppProtocol::Memcached), "version"));
    assert_eq!(class(server(b"VERSION 1.6.18\r\n")), Some(AppProtocol::Memcached));
    assert_eq!(class(server(b"ERROR\r\n")), Some(AppProtocol::Memcached));
    assert_eq!(class(client(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")), Some(AppProtocol::Ssh));
    assert_eq!(class(server(b"SSH-2.0-OpenSSH_9.2p1\r\n")), Some(AppProtocol::Ssh));
    let q = dns_query();
    assert_eq!(class(udp(Sender::Client, &q)), Some(AppProtocol::Dns));
    let mut answer = q.clone();
    answer[2] |= 0x80;
    assert_eq!(class(udp(Sender::Server, &answer)), Some(AppProtocol::Dns));
    let mut tcp = (q.len() as u16).to_be_bytes().to_vec();
    tcp.extend_from_slice(&q);
    assert_eq!(class(client(&tcp)), Some(AppProtocol::Dns));
}

#[test]
fn unknown_bytes_are_none_and_never_a_guess() {
    for b in [
        &b""[..],
        b"web-5d9f\n",
        b"hello\n",
        b"call\n",
        b"bulkhead-probe",
        &[0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d],
        &[0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x42, 0x42, 0x99, 0x01, 0x55, 0x66, 0x77, 0x88, 0x90, 0x91],
    ] {
        for sender in [Sender::Client, Sender::Server] {
            let s = Sample { sender, ..client(b) };
            assert_eq!(classify(&s), AppClass::default(), "{b:?} from {sender:?}");
            assert_eq!(classify(&Sample { transport: Transport::Udp, ..s }), AppClass::default(), "{b:?} over UDP");
        }
    }
}

#[test]
fn fields_are_printable_and_bounded() {
    let mut req = b"POST / HTTP/1.1\r\nHost: a\x01b\x7fc\x1b[31m\r\n\r\n".to_vec();
    assert_eq!(classify(&client(&req)).host, "abc[31m");
    req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "x".repeat(400)).into_bytes();
    assert_eq!(classify(&client(&req)).host.len(), MAX_NAME);
}

#[test]
fn no_prefix_of_any_sample_panics() {
    let (head, ext) = client_hello();
    let q = dns_query();
    let samples: Vec<&[u8]> =
        vec![CURL, MYSQL, KAFKA, MONGO, &head, &ext, &q, b"*1\r\n$4\r\nPING\r\n", b"AMQP\x00\x00\x09\x01"];
    for b in samples {
        for n in 0..=b.len() {
            for sender in [Sender::Client, Sender::Server] {
                for transport in [Transport::Tcp, Transport::Udp] {
                    let s = Sample { sender, transport, head: &b[..n], ext: None, payload_len: b.len() as u16 };
                    let _ = classify(&s);
                    let _ = classify(&Sample { head: &head, ext: Some((100, &b[..n])), ..s });
                }
            }
        }
    }
}
