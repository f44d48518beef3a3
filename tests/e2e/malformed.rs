//! Fragments and crafted packets from a real pod: fragmented datagrams follow
//! their first fragment, orphan fragments and malformed headers are dropped
//! by enforcing endpoints. Crafted packets are sent with scapy.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use crate::support::{Lab, exec, netpol, pod, pod_in_mode};

fn pods() -> String {
    pods_with_b_in(None)
}

fn pods_with_b_in(mode: Option<&str>) -> String {
    [
        pod("x", "a", "a", &["80"]),
        pod_in_mode("x", "b", "b", &["80", "9000/UDP", "9001/UDP"], mode),
        netpol(
            "b-udp-9000",
            "b",
            "ingress",
            &["{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{protocol: UDP, port: 9000}, {port: 80}]}"],
        ),
        netpol("a-egress-anywhere", "a", "egress", &["{}"]),
    ]
    .concat()
}

/// Sends one `size`-byte datagram from inside `netns` and waits for the echo.
fn echoed(netns: PathBuf, to: SocketAddr, size: usize) -> bool {
    std::thread::spawn(move || {
        bulkhead_lab::netns::enter(&netns).unwrap();
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let s = UdpSocket::bind(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
        s.send_to(&vec![7u8; size], to).unwrap();
        let mut buf = vec![0u8; 65536];
        matches!(s.recv_from(&mut buf), Ok((n, _)) if n == size)
    })
    .join()
    .unwrap()
}

fn scapy(lab: &Lab, pod: &str, script: &str) {
    let out = exec(lab, pod, &["/usr/bin/python3", "-c", script]);
    assert!(
        out.status.success(),
        "scapy failed (is python3-scapy installed? run scripts/install-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fragmented_datagrams_follow_their_first_fragment() {
    let lab = Lab::up("frag", "bridge", 1, &pods());
    let (b4, b6) = (lab.ip("x/b", false), lab.ip("x/b", true));
    assert!(echoed(lab.netns("x/a"), SocketAddr::new(b4, 9000), 200), "small datagram to the allowed port");
    assert!(
        echoed(lab.netns("x/a"), SocketAddr::new(b4, 9000), 4000),
        "fragmented datagram to the allowed port, and its fragmented echo"
    );
    assert!(echoed(lab.netns("x/a"), SocketAddr::new(b6, 9000), 4000), "fragmented IPv6 datagram to the allowed port");
    let denied_before = lab.counter("drops_fragment_denied");
    assert!(!echoed(lab.netns("x/a"), SocketAddr::new(b4, 9001), 4000), "fragmented datagram to a denied port");
    assert!(!echoed(lab.netns("x/a"), SocketAddr::new(b6, 9001), 4000), "fragmented IPv6 datagram to a denied port");
    assert!(
        lab.counter("drops_fragment_denied") >= denied_before + 4,
        "the later fragments were dropped as fragments of a denied datagram"
    );

    // fragments whose first fragment never came: a is in enforce (egress allows
    // anything), so they pass a and die at b, which enforces ingress
    let before = lab.counter("drops_fragment_unknown");
    let script = format!(
        "from scapy.all import *\nconf.verb=0\nfor i in range(5):\n    send(IP(dst='{b4}', id=4000+i, flags=0, frag=100, proto=17)/Raw(b'x'*64))\n    send(IPv6(dst='{b6}')/IPv6ExtHdrFragment(id=5000+i, offset=100, m=0, nh=17)/Raw(b'y'*64))\n"
    );
    scapy(&lab, "x/a", &script);
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.counter("drops_fragment_unknown") >= before + 10, "orphan fragments must be dropped");
}

#[test]
fn crafted_malformed_packets_never_pass_an_enforcing_endpoint() {
    let lab = Lab::up("malf", "bridge", 1, &pods());
    let (b4, b6) = (lab.ip("x/b", false), lab.ip("x/b", true));
    let a4 = lab.ip("x/a", false);
    let before = lab.counter("drops_malformed");
    let script = format!(
        r#"from scapy.all import *
conf.verb=0
ok = bytes(IP(src='{a4}', dst='{b4}')/TCP(dport=80, flags='S'))
pkts = [
    ok[:12],                                            # IPv4 header cut short
    bytes([0x44]) + ok[1:],                             # IHL below 5
    bytes(IP(src='{a4}', dst='{b4}', len=400)/TCP(dport=80)),  # total length beyond the frame
    bytes(IP(src='{a4}', dst='{b4}')/TCP(dport=80, dataofs=3)),  # TCP data offset below 5
    ok[:28],                                            # TCP header cut short
    bytes(IP(src='{a4}', dst='{b4}', frag=1, flags='MF', proto=6)/Raw(b'x'*24)),  # RFC 1858 tiny overlap
]
for p in pkts:
    sendp(Ether(type=0x0800)/Raw(p), iface='eth0')
sendp(Ether()/IPv6(dst='{b6}')/(IPv6ExtHdrDestOpt()/IPv6ExtHdrDestOpt()/IPv6ExtHdrDestOpt()/IPv6ExtHdrDestOpt()/IPv6ExtHdrDestOpt()/IPv6ExtHdrDestOpt()/IPv6ExtHdrDestOpt())/TCP(dport=80), iface='eth0')
"#
    );
    scapy(&lab, "x/a", &script);
    std::thread::sleep(Duration::from_millis(300));
    let dropped = lab.counter("drops_malformed") - before;
    assert!(dropped >= 7, "expected the 7 crafted packets dropped as malformed, got {dropped}");
    // and the pod still works normally
    assert!(lab.probe("x/a", "x/b", 80, false, false));
}

#[test]
fn a_pod_cannot_spoof_addresses_or_poison_neighbours_even_in_learn_mode() {
    let lab = Lab::up("spoof", "bridge", 1, &pods_with_b_in(Some("learn")));
    let (a4, b4) = (lab.ip("x/a", false), lab.ip("x/b", false));
    let b6 = lab.ip("x/b", true);
    // b is in learn mode: no policy decision drops anything. The checks protect a, not b.
    let before = lab.counter("drops_spoofed_source");
    let script = format!(
        r#"from scapy.all import *
conf.verb=0
sendp(Ether()/IP(src='{a4}', dst='{a4}')/TCP(dport=80, flags='S'), iface='eth0')
sendp(Ether(dst='ff:ff:ff:ff:ff:ff')/ARP(op=2, psrc='{a4}', pdst='{b4}', hwdst='ff:ff:ff:ff:ff:ff'), iface='eth0')
sendp(Ether()/IPv6(src='fe80::1', dst='ff02::1')/ICMPv6ND_RA(), iface='eth0')
sendp(Ether()/IPv6(src='{b6}', dst='ff02::1')/ICMPv6ND_NA(tgt='fd00:10:244:1::99', R=0, S=0, O=1), iface='eth0')
"#
    );
    scapy(&lab, "x/b", &script);
    std::thread::sleep(Duration::from_millis(300));
    let dropped = lab.counter("drops_spoofed_source") - before;
    assert!(
        dropped >= 4,
        "spoofed IP, ARP poisoning, router advertisement and foreign neighbour advertisement must drop; {dropped} did"
    );
    // b's own traffic still flows
    assert!(lab.probe("x/b", "x/a", 80, false, false));
}
