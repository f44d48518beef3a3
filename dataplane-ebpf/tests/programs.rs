#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of the C programs: crafted packets through BPF_PROG_TEST_RUN on
//! the real verifier-checked programs, each test with its own pinned maps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bulkhead_dataplane::maps::EndpointEntry;
use bulkhead_dataplane::model::{Action, Direction, EventType, Mode, Reason, Verdict, proto};
use bulkhead_dataplane::packet::{self, Frag, L4, tcp};
use bulkhead_dataplane::table::{PolicyEntry, PolicyTable};
use bulkhead_dataplane::testrun::{Hook, TC_DROP, TC_PASS, TEST_IFINDEX, TestBed, XDP_DROP, XDP_PASS};
use bulkhead_dataplane::transition::{self, KernelState};

const POD: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 20);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 30);
const POD6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 0x10);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 0x20);

const EP: u32 = 11;
const ID_POD: u32 = 300;
const ID_PEER: u32 = 301;
const ID_OTHER: u32 = 302;

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}
fn v6(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

/// A bed with one endpoint (the pod) in `mode` both ways, isolated both ways,
/// identities for the peers, and `rules`.
fn bed(name: &str, mode: Mode, rules: &[PolicyEntry]) -> TestBed {
    let mut bed = TestBed::new(name).expect("load programs (needs root and bpffs)");
    for (net, id) in [
        ("10.244.1.10/32", ID_POD),
        ("10.244.1.20/32", ID_PEER),
        ("10.244.2.30/32", ID_OTHER),
        ("fd00:10:244:1::10/128", ID_POD),
        ("fd00:10:244:1::20/128", ID_PEER),
    ] {
        bed.maps.put_ipcache(&net.parse().unwrap(), id).unwrap();
    }
    let table = PolicyTable::build(rules).unwrap();
    let mut new = KernelState::default();
    new.endpoints.insert(
        TEST_IFINDEX,
        EndpointEntry {
            ifindex: TEST_IFINDEX,
            endpoint_id: EP,
            identity: ID_POD,
            mode: [mode, mode],
            isolated: [true, true],
            ipv4: Some(POD),
            ipv6: Some(POD6),
            has_ranges: !table.ranges.is_empty(),
        },
    );
    new.table = table;
    for op in transition::plan(&KernelState::default(), &new).unwrap() {
        transition::apply(&mut bed.maps, &op).unwrap();
    }
    bed
}

fn rule(
    identity: u32,
    direction: Direction,
    protocol: u8,
    port: u16,
    end_port: u16,
    action: Action,
    rule_id: u32,
) -> PolicyEntry {
    PolicyEntry { endpoint_id: EP, identity, direction, protocol, port, end_port, action, rule_id }
}

fn allow_egress_tcp(identity: u32, port: u16, rule_id: u32) -> PolicyEntry {
    rule(identity, Direction::Egress, proto::TCP, port, 0, Action::Allow, rule_id)
}

fn run(bed: &mut TestBed, hook: Hook, pkt: &[u8]) -> u32 {
    bed.run(hook, pkt, 1).unwrap().retval
}

#[test]
fn traffic_of_unknown_interfaces_passes_untouched() {
    let mut bed = TestBed::new("unknown-if").unwrap();
    let pkt = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &pkt), TC_PASS);
    assert!(bed.flows().is_empty());
}

#[test]
fn isolated_endpoint_drops_by_default_and_reports_it() {
    let mut bed = bed("default-deny", Mode::Enforce, &[]);
    let pkt = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &pkt), TC_DROP);
    let flows = bed.flows();
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(f.event, EventType::Denied);
    assert_eq!(f.verdict, Verdict::Dropped);
    assert_eq!(f.reason, Reason::DefaultDeny);
    assert_eq!((f.src_ip, f.dst_ip, f.src_port, f.dst_port), (v4(POD), v4(PEER), 40000, 80));
    assert_eq!((f.src_identity, f.dst_identity), (ID_POD, ID_PEER));
    assert_eq!(f.direction, Direction::Egress);
    // a second attempt within the rate-limit interval drops silently
    assert_eq!(run(&mut bed, Hook::FromPod, &pkt), TC_DROP);
    assert!(bed.flows().is_empty());
}

#[test]
fn allow_by_identity_and_port_with_conntrack_replies() {
    let mut bed = bed("allow-id-port", Mode::Enforce, &[allow_egress_tcp(ID_PEER, 80, 7)]);
    let syn = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &syn), TC_PASS);
    let f = bed.flows();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].event, f[0].verdict, f[0].rule_id, f[0].reason),
        (EventType::New, Verdict::Forwarded, 7, Reason::AllowedByRule)
    );

    // the reply comes back through the to-pod hook: ingress is isolated with no rule, conntrack lets it in
    let synack = tcp(v4(PEER), v4(POD), 80, 40000, packet::tcp::SYN | packet::tcp::ACK);
    assert_eq!(run(&mut bed, Hook::ToPod, &synack), TC_PASS);
    // an unsolicited packet from the peer is not a reply and is dropped
    let unsolicited = tcp(v4(PEER), v4(POD), 81, 40000, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::ToPod, &unsolicited), TC_DROP);
    // another port, or another peer, is not allowed
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40001, 81, packet::tcp::SYN)), TC_DROP);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(OTHER), 40002, 80, packet::tcp::SYN)), TC_DROP);
    // no per-packet events for the established connection
    let ack = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::ACK);
    for _ in 0..10 {
        assert_eq!(run(&mut bed, Hook::FromPod, &ack), TC_PASS);
    }
    assert!(bed.flows().iter().all(|f| f.event == EventType::Denied));
}

#[test]
fn port_ranges_allow_inside_and_drop_outside() {
    let mut bed =
        bed("port-range", Mode::Enforce, &[rule(ID_PEER, Direction::Egress, proto::TCP, 8000, 8080, Action::Allow, 9)]);
    for (port, want) in [(7999, TC_DROP), (8000, TC_PASS), (8042, TC_PASS), (8080, TC_PASS), (8081, TC_DROP)] {
        let pkt = tcp(v4(POD), v4(PEER), 40000 + port, port, packet::tcp::SYN);
        assert_eq!(run(&mut bed, Hook::FromPod, &pkt), want, "port {port}");
    }
}

#[test]
fn cidr_identity_from_ipcache_prefixes() {
    let mut bed = bed("cidr", Mode::Enforce, &[allow_egress_tcp(500, 443, 3)]);
    bed.maps.put_ipcache(&"192.0.2.0/24".parse().unwrap(), 500).unwrap();
    let inside = tcp(v4(POD), "192.0.2.77".parse().unwrap(), 40000, 443, packet::tcp::SYN);
    let outside = tcp(v4(POD), "198.51.100.1".parse().unwrap(), 40000, 443, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &inside), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &outside), TC_DROP);
    let denied = bed.flows().into_iter().find(|f| f.event == EventType::Denied).unwrap();
    assert_eq!(denied.dst_identity, 2, "unknown addresses are world");
}

#[test]
fn deny_wins_over_any_allow() {
    let rules = [
        rule(0, Direction::Egress, 0, 0, 0, Action::Allow, 1),
        rule(ID_PEER, Direction::Egress, proto::TCP, 22, 0, Action::Deny, 2),
    ];
    let mut bed = bed("deny-wins", Mode::Enforce, &rules);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40001, 22, packet::tcp::SYN)), TC_DROP);
    let denied = bed.flows().into_iter().find(|f| f.event == EventType::Denied).unwrap();
    assert_eq!((denied.reason, denied.rule_id), (Reason::PolicyDeny, 2));
}

#[test]
fn audit_mode_forwards_and_reports_would_drop() {
    let mut bed = bed("audit", Mode::Audit, &[]);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN)), TC_PASS);
    let f = bed.flows();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].event, f[0].verdict, f[0].reason), (EventType::New, Verdict::Audit, Reason::DefaultDeny));
}

#[test]
fn learn_mode_observes_only() {
    let mut bed = bed("learn", Mode::Learn, &[]);
    assert_eq!(run(&mut bed, Hook::ToPod, &tcp(v4(OTHER), v4(POD), 40000, 80, packet::tcp::SYN)), TC_PASS);
    let f = bed.flows();
    assert_eq!((f[0].verdict, f[0].reason), (Verdict::Forwarded, Reason::LearnMode));
    assert_eq!((f[0].src_identity, f[0].dst_identity, f[0].direction), (ID_OTHER, ID_POD, Direction::Ingress));
}

#[test]
fn quarantine_cuts_established_connections_both_ways_and_xdp_drops() {
    let mut bed = bed("quarantine", Mode::Enforce, &[allow_egress_tcp(ID_PEER, 80, 7)]);
    let syn = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN);
    let reply = tcp(v4(PEER), v4(POD), 80, 40000, packet::tcp::ACK);
    assert_eq!(run(&mut bed, Hook::FromPod, &syn), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &reply), TC_PASS);
    assert_eq!(run(&mut bed, Hook::Xdp, &syn), XDP_PASS);
    bed.maps.quarantine(EP, 1).unwrap();
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::ACK)), TC_DROP);
    assert_eq!(run(&mut bed, Hook::ToPod, &reply), TC_DROP);
    assert_eq!(run(&mut bed, Hook::Xdp, &syn), XDP_DROP);
    assert!(bed.flows().iter().any(|f| f.reason == Reason::Quarantine));
    bed.maps.release(EP).unwrap();
    assert_eq!(run(&mut bed, Hook::ToPod, &reply), TC_PASS);
    assert_eq!(run(&mut bed, Hook::Xdp, &syn), XDP_PASS);
}

#[test]
fn fragments_follow_their_first_fragment() {
    let rules = [rule(ID_PEER, Direction::Egress, proto::UDP, 53, 0, Action::Allow, 4)];
    let mut bed = bed("fragments", Mode::Enforce, &rules);
    let udp = |dport, frag| packet::frame(v4(POD), v4(PEER), L4::Udp { sport: 5000, dport }, frag, 64);
    // allowed datagram: first and later fragments pass
    assert_eq!(run(&mut bed, Hook::FromPod, &udp(53, Frag::First { id: 77 })), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &udp(53, Frag::Later { id: 77, offset: 72, more: false })), TC_PASS);
    // denied datagram: the later fragment stays dropped
    assert_eq!(run(&mut bed, Hook::FromPod, &udp(9999, Frag::First { id: 78 })), TC_DROP);
    assert_eq!(run(&mut bed, Hook::FromPod, &udp(9999, Frag::Later { id: 78, offset: 72, more: false })), TC_DROP);
    // a later fragment whose first never came is dropped on an enforcing endpoint
    assert_eq!(run(&mut bed, Hook::FromPod, &udp(53, Frag::Later { id: 79, offset: 72, more: false })), TC_DROP);
    // IPv6 fragment header, same rules
    let udp6 = |dport, frag| packet::frame(v6(POD6), v6(PEER6), L4::Udp { sport: 5000, dport }, frag, 64);
    assert_eq!(run(&mut bed, Hook::FromPod, &udp6(9999, Frag::First { id: 80 })), TC_DROP);
    assert_eq!(run(&mut bed, Hook::FromPod, &udp6(9999, Frag::Later { id: 80, offset: 72, more: false })), TC_DROP);
    assert_eq!(run(&mut bed, Hook::FromPod, &udp6(53, Frag::First { id: 81 })), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &udp6(53, Frag::Later { id: 81, offset: 72, more: false })), TC_PASS);
    let stats = bed.maps.stats().unwrap();
    assert!(stats.drops_for(Reason::FragUnknown) >= 1);
    assert!(stats.drops_for(Reason::FragDenied) >= 2);
}

#[test]
fn malformed_headers_never_pass_an_enforcing_endpoint() {
    let mut bed = bed("malformed", Mode::Enforce, &[rule(0, Direction::Egress, 0, 0, 0, Action::Allow, 1)]);
    let good = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &good), TC_PASS);

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // (An IP header shorter than 20 bytes cannot go through BPF_PROG_TEST_RUN,
    // which refuses it; the netns test sends one from a pod with a raw socket.)
    cases.push(("tcp header cut", good[..14 + 20 + 8].to_vec()));
    let mut ihl = good.clone();
    ihl[14] = 0x44;
    cases.push(("ihl below 5", ihl));
    let mut total = good.clone();
    total[16..18].copy_from_slice(&400u16.to_be_bytes());
    cases.push(("total length beyond frame", total));
    let mut doff = good.clone();
    doff[14 + 20 + 12] = 0x30;
    cases.push(("tcp data offset below 5", doff));
    let mut tiny = packet::frame(
        v4(POD),
        v4(PEER),
        L4::Tcp { sport: 1, dport: 80, flags: 2 },
        Frag::Later { id: 5, offset: 8, more: true },
        0,
    );
    tiny[14 + 6..14 + 8].copy_from_slice(&0x2001u16.to_be_bytes());
    cases.push(("tcp fragment at offset 8 (RFC 1858)", tiny));
    let mut vlan = good.clone();
    vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    cases.push(("vlan tagged", vlan));
    let mut v6cut = packet::tcp(v6(POD6), v6(PEER6), 40000, 80, packet::tcp::SYN);
    v6cut.truncate(14 + 40 + 4);
    cases.push(("ipv6 tcp header cut", v6cut));

    for (name, pkt) in &cases {
        assert_eq!(run(&mut bed, Hook::FromPod, pkt), TC_DROP, "{name} must be dropped");
    }
    let stats = bed.maps.stats().unwrap();
    assert!(stats.drops_for(Reason::Malformed) >= 6, "{stats:?}");
}

#[test]
fn malformed_headers_are_reported_but_forwarded_in_learn_mode() {
    let mut bed = bed("malformed-learn", Mode::Learn, &[]);
    let good = tcp(v4(POD), v4(PEER), 40000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &good[..14 + 20 + 8]), TC_PASS);
    assert_eq!(bed.maps.stats().unwrap().get(bulkhead_dataplane::abi::BH_STAT_PKTS_AUDIT), 1);
}

#[test]
fn ipv6_policy_and_conntrack() {
    let mut bed = bed("ipv6", Mode::Enforce, &[rule(ID_PEER, Direction::Ingress, proto::TCP, 80, 0, Action::Allow, 5)]);
    let syn = tcp(v6(PEER6), v6(POD6), 50000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::ToPod, &syn), TC_PASS);
    let reply = tcp(v6(POD6), v6(PEER6), 80, 50000, packet::tcp::SYN | packet::tcp::ACK);
    assert_eq!(run(&mut bed, Hook::FromPod, &reply), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &tcp(v6(PEER6), v6(POD6), 50001, 81, packet::tcp::SYN)), TC_DROP);
    let f = bed.flows();
    assert_eq!((f[0].src_ip, f[0].dst_ip, f[0].rule_id), (v6(PEER6), v6(POD6), 5));
    // neighbour discovery is never policed
    let mut ns =
        packet::frame(v6("fe80::1".parse().unwrap()), v6(POD6), L4::IcmpEcho { id: 1, reply: false }, Frag::None, 0);
    ns[14 + 40] = 135;
    assert_eq!(run(&mut bed, Hook::ToPod, &ns), TC_PASS);
}

#[test]
fn icmp_echo_is_tracked_like_a_connection() {
    let mut bed = bed("icmp", Mode::Enforce, &[rule(ID_PEER, Direction::Egress, proto::ICMP, 0, 0, Action::Allow, 6)]);
    let req = packet::frame(v4(POD), v4(PEER), L4::IcmpEcho { id: 9, reply: false }, Frag::None, 16);
    let rep = packet::frame(v4(PEER), v4(POD), L4::IcmpEcho { id: 9, reply: true }, Frag::None, 16);
    assert_eq!(run(&mut bed, Hook::FromPod, &rep), TC_DROP, "an echo reply without request is not a reply");
    assert_eq!(run(&mut bed, Hook::FromPod, &req), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &rep), TC_PASS);
}

#[test]
fn spoofed_sources_are_dropped() {
    let mut bed = bed("spoof", Mode::Enforce, &[rule(0, Direction::Egress, 0, 0, 0, Action::Allow, 1)]);
    let spoofed = tcp(v4(OTHER), v4(PEER), 40000, 80, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &spoofed), TC_DROP);
    assert_eq!(bed.maps.stats().unwrap().drops_for(Reason::SpoofedSource), 1);
}

#[test]
fn close_events_carry_counters_both_ways() {
    let mut bed = bed("close", Mode::Enforce, &[allow_egress_tcp(ID_PEER, 80, 7)]);
    let out = |flags| tcp(v4(POD), v4(PEER), 40000, 80, flags);
    let back = |flags| tcp(v4(PEER), v4(POD), 80, 40000, flags);
    assert_eq!(run(&mut bed, Hook::FromPod, &out(packet::tcp::SYN)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &back(packet::tcp::SYN | packet::tcp::ACK)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &out(packet::tcp::FIN | packet::tcp::ACK)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &back(packet::tcp::FIN | packet::tcp::ACK)), TC_PASS);
    let flows = bed.flows();
    let closed: Vec<_> = flows.iter().filter(|f| f.event == EventType::Closed).collect();
    assert_eq!(closed.len(), 1, "{flows:?}");
    let c = closed[0];
    assert_eq!((c.packets_fwd, c.packets_rev), (2, 2));
    assert!(c.is_reply);
    assert_eq!((c.src_ip, c.dst_ip, c.dst_port), (v4(POD), v4(PEER), 80));
    assert_eq!(c.tcp_flags & (packet::tcp::FIN | packet::tcp::SYN), packet::tcp::FIN | packet::tcp::SYN);
    // a new SYN on the closed tuple is decided again and is a new connection
    assert_eq!(run(&mut bed, Hook::FromPod, &out(packet::tcp::SYN)), TC_PASS);
    assert_eq!(bed.flows().iter().filter(|f| f.event == EventType::New).count(), 1);
}

#[test]
fn an_sctp_init_is_a_new_association_even_on_a_tracked_tuple() {
    const INIT: u8 = 1;
    const INIT_ACK: u8 = 2;
    const DATA: u8 = 0;
    let sctp_rule = rule(ID_PEER, Direction::Ingress, proto::SCTP, 9003, 0, Action::Allow, 8);
    let out_rule = rule(ID_PEER, Direction::Egress, proto::SCTP, 7000, 0, Action::Allow, 9);
    let mut bed = bed("sctp-init", Mode::Enforce, &[sctp_rule, out_rule]);
    let init = packet::sctp(v4(PEER), v4(POD), 40000, 9003, INIT);
    assert_eq!(run(&mut bed, Hook::ToPod, &init), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &packet::sctp(v4(POD), v4(PEER), 9003, 40000, INIT_ACK)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &packet::sctp(v4(PEER), v4(POD), 40000, 9005, INIT)), TC_DROP);
    // An INIT the other way on a tuple the pod opened is no reply but a new
    // association towards the pod: its ingress policy decides it.
    assert_eq!(run(&mut bed, Hook::FromPod, &packet::sctp(v4(POD), v4(PEER), 5000, 7000, INIT)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &packet::sctp(v4(PEER), v4(POD), 7000, 5000, INIT_ACK)), TC_PASS);
    assert_eq!(
        run(&mut bed, Hook::ToPod, &packet::sctp(v4(PEER), v4(POD), 7000, 5000, INIT)),
        TC_DROP,
        "a reverse INIT is decided, not let through as a reply"
    );
    // The policy stops allowing 9003; the association already up goes on
    // (as TCP connections do), a new INIT on the very same tuple does not.
    let ep = bed.maps.endpoints().unwrap().remove(0);
    let mut new = KernelState::default();
    new.endpoints.insert(TEST_IFINDEX, ep.clone());
    let mut old = new.clone();
    old.table = PolicyTable::build(&[sctp_rule, out_rule]).unwrap();
    new.table = PolicyTable::build(&[]).unwrap();
    for op in transition::plan(&old, &new).unwrap() {
        transition::apply(&mut bed.maps, &op).unwrap();
    }
    assert_eq!(run(&mut bed, Hook::ToPod, &packet::sctp(v4(PEER), v4(POD), 40000, 9003, DATA)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &init), TC_DROP, "a repeated INIT is decided again");
}

#[test]
fn events_can_be_disabled_and_are_counted() {
    let mut bed = bed("events-off", Mode::Enforce, &[]);
    let mut cfg = bed.maps.config().unwrap();
    cfg.flags |= bulkhead_dataplane::abi::BH_CFG_F_EVENTS_DISABLED;
    bed.maps.set_config(cfg).unwrap();
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 1, 80, packet::tcp::SYN)), TC_DROP);
    assert!(bed.flows().is_empty());
    assert_eq!(bed.maps.stats().unwrap().get(bulkhead_dataplane::abi::BH_STAT_EVENTS_SUPPRESSED), 1);
}

fn set_event_budget(bed: &mut TestBed, per_second: u32, burst: u32) {
    let mut cfg = bed.maps.config().unwrap();
    cfg.events_per_source_s = per_second;
    cfg.events_burst = burst;
    bed.maps.set_config(cfg).unwrap();
}

#[test]
fn a_flooding_source_loses_its_own_events_and_carries_the_count() {
    let mut bed = bed("source-budget", Mode::Learn, &[]);
    set_event_budget(&mut bed, 1, 300);
    let started = std::time::Instant::now();
    let (flood, others) = (3000u32, 200u32);
    for i in 0..flood {
        // the pod floods its peer with new UDP flows, one port each
        run(&mut bed, Hook::FromPod, &packet::udp(v4(POD), v4(PEER), 40000, (i + 1) as u16, 0));
        if i % 15 == 0 && i / 15 < others {
            // another source keeps opening connections to the pod meanwhile
            run(&mut bed, Hook::ToPod, &packet::udp(v4(OTHER), v4(POD), 30000 + (i / 15) as u16, 53, 0));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // once its bucket refills, the flooder's next event carries what it lost
    run(&mut bed, Hook::FromPod, &packet::udp(v4(POD), v4(PEER), 40001, 9, 0));
    let elapsed = started.elapsed().as_secs() as usize;
    let flows = bed.flows();
    let from = |ip: Ipv4Addr| flows.iter().filter(|f| f.src_ip == v4(ip)).collect::<Vec<_>>();
    assert_eq!(from(OTHER).len(), others as usize, "the other source loses nothing");
    assert!(from(OTHER).iter().all(|f| f.suppressed == 0));
    let own = from(POD);
    assert!(
        own.len() >= 301 && own.len() <= 301 + elapsed + 1,
        "the flooder gets its burst and its rate: {}",
        own.len()
    );
    let limited = bed.maps.stats().unwrap().get(bulkhead_dataplane::abi::BH_STAT_EVENTS_RATELIMITED);
    assert_eq!(limited, u64::from(flood + 1) - own.len() as u64, "every suppressed event is counted");
    let carried: u64 = own.iter().map(|f| u64::from(f.suppressed)).sum();
    assert_eq!(carried, limited, "and attributed to its source by its next events");
    assert!(own.last().is_some_and(|f| f.suppressed > 0 && f.dst_port == 9));
}

#[test]
fn a_flood_into_a_pod_is_charged_to_its_sender_not_to_the_pod() {
    let mut bed = bed("budget-ingress", Mode::Learn, &[]);
    set_event_budget(&mut bed, 1, 300);
    // the peer floods the pod; another source keeps connecting to the same pod
    for i in 0..3000u32 {
        run(&mut bed, Hook::ToPod, &packet::udp(v4(PEER), v4(POD), 40000, (i + 1) as u16, 0));
        if i % 15 == 0 {
            run(&mut bed, Hook::ToPod, &packet::udp(v4(OTHER), v4(POD), 30000 + (i / 15) as u16, 53, 0));
        }
    }
    let flows = bed.flows();
    assert_eq!(flows.iter().filter(|f| f.src_ip == v4(OTHER)).count(), 200, "charged to the pod, it would lose");
    assert!(flows.iter().filter(|f| f.src_ip == v4(PEER)).count() <= 310);
}

#[test]
fn spoofing_many_sources_buys_no_fresh_budgets() {
    let mut bed = bed("budget-spoof", Mode::Enforce, &[]);
    set_event_budget(&mut bed, 1, 300);
    // every packet claims another source: each is dropped, and charged to the pod itself
    for i in 0..3000u32 {
        let spoofed = Ipv4Addr::from(0x0a63_0000 + i);
        assert_eq!(run(&mut bed, Hook::FromPod, &packet::udp(v4(spoofed), v4(PEER), 40000, 53, 0)), TC_DROP);
    }
    let flows = bed.flows();
    assert!(flows.len() <= 310, "{} events for 3000 spoofed sources", flows.len());
    assert!(flows.iter().all(|f| f.reason == Reason::SpoofedSource));
    // the pod's own budget is spent; another source's is not
    for i in 0..200u16 {
        run(&mut bed, Hook::ToPod, &packet::udp(v4(OTHER), v4(POD), 30000 + i, 53, 0));
    }
    assert_eq!(bed.flows().iter().filter(|f| f.src_ip == v4(OTHER)).count(), 200);
}

#[test]
fn a_full_ring_counts_every_lost_event() {
    let mut bed = bed("ring-full", Mode::Learn, &[]);
    // A source budget far above the flood, so the ring itself overflows.
    set_event_budget(&mut bed, 1_000_000_000, 1_000_000);
    // 4 MiB ring / 120 bytes per record: 40k new UDP flows overflow it
    let n: u32 = 40_000;
    for i in 0..n {
        let pkt = packet::udp(v4(POD), v4(PEER), (i % 60000) as u16 + 1, (i / 60000) as u16 + 1000, 0);
        run(&mut bed, Hook::FromPod, &pkt);
    }
    let stats = bed.maps.stats().unwrap();
    let sent = stats.get(bulkhead_dataplane::abi::BH_STAT_EVENTS_SENT);
    let lost = stats.get(bulkhead_dataplane::abi::BH_STAT_EVENTS_LOST);
    assert!(lost > 0, "ring should have overflowed");
    assert_eq!(sent + lost, u64::from(n));
    assert_eq!(bed.flows().len() as u64, sent);
}

#[test]
fn connections_admitted_in_audit_mode_are_decided_again_once_enforcing() {
    let mut bed = bed("audit-then-enforce", Mode::Audit, &[allow_egress_tcp(ID_PEER, 80, 7)]);
    // admitted by audit although no rule allows port 81; port 80 is allowed by rule 7
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40000, 81, packet::tcp::SYN)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40001, 80, packet::tcp::SYN)), TC_PASS);
    let mut ep = bed.maps.endpoints().unwrap().remove(0);
    ep.mode = [Mode::Enforce, Mode::Enforce];
    bed.maps.put_endpoint(&ep).unwrap();
    assert_eq!(
        run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40000, 81, packet::tcp::ACK)),
        TC_DROP,
        "the would-drop connection is dropped once the endpoint enforces"
    );
    assert_eq!(
        run(&mut bed, Hook::ToPod, &tcp(v4(PEER), v4(POD), 81, 40000, packet::tcp::ACK)),
        TC_DROP,
        "its replies too"
    );
    assert_eq!(
        run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40001, 80, packet::tcp::ACK)),
        TC_PASS,
        "the allowed one goes on"
    );
}

#[test]
fn arp_from_a_pod_must_announce_its_own_address() {
    let mut bed = bed("arp", Mode::Learn, &[]);
    let arp = |spa: [u8; 4]| {
        let mut f = vec![0xffu8; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend(spa);
        f.extend([0u8; 6]);
        f.extend(PEER.octets());
        f.resize(60, 0);
        f
    };
    assert_eq!(run(&mut bed, Hook::FromPod, &arp(POD.octets())), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &arp([0, 0, 0, 0])), TC_PASS, "RFC 5227 probe");
    assert_eq!(run(&mut bed, Hook::FromPod, &arp(OTHER.octets())), TC_DROP, "ARP poisoning");
    assert_eq!(
        run(&mut bed, Hook::FromPod, &tcp(v4(OTHER), v4(PEER), 1, 80, packet::tcp::SYN)),
        TC_DROP,
        "spoofed IP in learn mode"
    );
}

#[test]
fn a_blocked_prefix_drops_both_ways_in_every_mode_and_at_the_prefilter() {
    // Learn mode forwards everything else: the block list does not depend on policy.
    let mut bed = bed("blocklist", Mode::Learn, &[]);
    let out = tcp(v4(POD), v4(OTHER), 40000, 80, packet::tcp::SYN);
    let ack = tcp(v4(POD), v4(OTHER), 40000, 80, packet::tcp::ACK);
    let inbound = tcp(v4(OTHER), v4(POD), 50000, 8080, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::FromPod, &out), TC_PASS);
    bed.flows();

    let block: ipnetwork::IpNetwork = "10.244.2.0/24".parse().unwrap();
    bed.maps.put_block(&block, 42).unwrap();
    assert_eq!(bed.maps.blocks().unwrap(), vec![(block, 42)]);
    // Established traffic does not read the block list: the agent forgets
    // the connections a new block covers, and their next packet drops.
    assert_eq!(run(&mut bed, Hook::FromPod, &ack), TC_PASS, "established, before the agent forgets it");
    assert_eq!(bed.maps.forget_connections_of(&[block]).unwrap(), 1);
    assert_eq!(run(&mut bed, Hook::FromPod, &ack), TC_DROP, "the established connection is cut");
    assert_eq!(run(&mut bed, Hook::ToPod, &inbound), TC_DROP, "from the blocked prefix to the pod");
    assert_eq!(run(&mut bed, Hook::FromPod, &out), TC_DROP, "from the pod to the blocked prefix");
    let flows = bed.flows();
    assert!(!flows.is_empty() && flows.iter().all(|f| f.reason == Reason::Blocked && f.verdict == Verdict::Dropped));
    // A later fragment is dropped on its addresses alone, first fragment or not.
    let later = packet::frame(
        v4(OTHER),
        v4(POD),
        L4::Udp { sport: 1, dport: 2 },
        Frag::Later { id: 9, offset: 72, more: false },
        64,
    );
    assert_eq!(run(&mut bed, Hook::ToPod, &later), TC_DROP);
    // The uplink prefilter drops by source only, before anything else.
    assert_eq!(run(&mut bed, Hook::Prefilter, &inbound), XDP_DROP);
    assert_eq!(run(&mut bed, Hook::Prefilter, &later), XDP_DROP);
    assert_eq!(run(&mut bed, Hook::Prefilter, &tcp(v4(PEER), v4(POD), 1, 2, packet::tcp::SYN)), XDP_PASS);
    assert_eq!(run(&mut bed, Hook::Prefilter, &out), XDP_PASS, "the prefilter reads the source only");
    // Other prefixes are untouched.
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(v4(POD), v4(PEER), 40001, 80, packet::tcp::SYN)), TC_PASS);

    // IPv6, one address.
    let block6: ipnetwork::IpNetwork = "fd00:10:244:1::20/128".parse().unwrap();
    bed.maps.put_block(&block6, 43).unwrap();
    let in6 = tcp(v6(PEER6), v6(POD6), 50000, 8080, packet::tcp::SYN);
    assert_eq!(run(&mut bed, Hook::ToPod, &in6), TC_DROP);
    assert_eq!(run(&mut bed, Hook::Prefilter, &in6), XDP_DROP);

    let stats = bed.maps.stats().unwrap();
    assert_eq!(stats.get(bulkhead_dataplane::abi::BH_STAT_PREFILTER_DROPS), 3);
    assert_eq!(stats.drops_for(Reason::Blocked), 8);

    // Lifted: the same packets pass again.
    bed.maps.remove_block(&block).unwrap();
    bed.maps.remove_block(&block6).unwrap();
    assert!(bed.maps.blocks().unwrap().is_empty());
    assert_eq!(run(&mut bed, Hook::ToPod, &inbound), TC_PASS);
    assert_eq!(run(&mut bed, Hook::Prefilter, &inbound), XDP_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &in6), TC_PASS);
}

/// A TCP segment carrying `payload`.
fn tcp_data(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let l4 = L4::Tcp { sport, dport, flags: packet::tcp::ACK | packet::tcp::PSH };
    packet::frame_with_payload(src, dst, l4, Frag::None, payload)
}

fn samples(bed: &mut TestBed) -> Vec<bulkhead_dataplane::FlowEvent> {
    bed.flows().into_iter().filter(|f| f.event == EventType::Sample).collect()
}

fn stat(bed: &TestBed, idx: u32) -> u64 {
    bed.maps.stats().unwrap().get(idx)
}

#[test]
fn the_first_payload_each_way_of_a_served_connection_is_sampled_once() {
    use bulkhead_dataplane::abi;
    let mut bed = bed("samples", Mode::Learn, &[]);
    let (client, server) = (v4(PEER), v4(POD));
    assert_eq!(run(&mut bed, Hook::ToPod, &tcp(client, server, 50000, 6379, packet::tcp::SYN)), TC_PASS);
    assert_eq!(
        run(&mut bed, Hook::FromPod, &tcp(server, client, 6379, 50000, packet::tcp::SYN | packet::tcp::ACK)),
        TC_PASS
    );
    // the handshake's last ACK carries nothing: no sample, and the way stays open
    assert_eq!(run(&mut bed, Hook::ToPod, &tcp(client, server, 50000, 6379, packet::tcp::ACK)), TC_PASS);
    assert!(samples(&mut bed).is_empty());
    let request = b"*1\r\n$4\r\nPING\r\n";
    for _ in 0..3 {
        assert_eq!(run(&mut bed, Hook::ToPod, &tcp_data(client, server, 50000, 6379, request)), TC_PASS);
    }
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp_data(server, client, 6379, 50000, b"+PONG\r\n")), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp_data(server, client, 6379, 50000, b"+PONG\r\n")), TC_PASS);
    let s = samples(&mut bed);
    assert_eq!(s.len(), 2, "one each way: {s:?}");
    let (req, resp) = (&s[0], &s[1]);
    assert_eq!((req.is_reply, req.src_ip, req.dst_port, req.direction), (false, client, 6379, Direction::Ingress));
    assert_eq!(req.sample.as_ref().unwrap().head, request);
    assert_eq!(req.sample.as_ref().unwrap().payload_len as usize, request.len());
    assert!(resp.is_reply);
    assert_eq!(resp.sample.as_ref().unwrap().head, b"+PONG\r\n");
    assert_eq!(stat(&bed, abi::BH_STAT_SAMPLES_SENT), 2);

    // a connection the pod opens is never sampled
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp(server, v4(OTHER), 40000, 80, packet::tcp::SYN)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::FromPod, &tcp_data(server, v4(OTHER), 40000, 80, b"GET / HTTP/1.1\r\n")), TC_PASS);
    assert!(samples(&mut bed).is_empty());

    // a UDP datagram's first packet is its sample; long payloads are cut at BH_SAMPLE_BYTES
    let big = vec![0x61u8; 600];
    let datagram = packet::frame_with_payload(client, server, L4::Udp { sport: 5353, dport: 53 }, Frag::None, &big);
    assert_eq!(run(&mut bed, Hook::ToPod, &datagram), TC_PASS);
    let s = samples(&mut bed);
    assert_eq!(s.len(), 1);
    let sample = s[0].sample.as_ref().unwrap();
    assert_eq!((sample.head.len(), sample.payload_len), (abi::BH_SAMPLE_BYTES as usize, 600));
    assert!(sample.tls_ext.is_none());
}

#[test]
fn a_client_hello_sample_reaches_its_extensions() {
    let mut bed = bed("samples-tls", Mode::Learn, &[]);
    let (client, server) = (v4(PEER), v4(POD));
    // record, handshake header, version, random, a 32-byte session id,
    // 40 bytes of cipher suites, one compression method, then the extensions
    let mut hello = vec![0x16, 3, 1, 0, 0, 1, 0, 0, 0, 3, 3];
    hello.extend_from_slice(&[0x11; 32]);
    hello.push(32);
    hello.extend_from_slice(&[0x22; 32]);
    hello.extend_from_slice(&[0, 40]);
    hello.extend_from_slice(&[0x13; 40]);
    hello.extend_from_slice(&[1, 0]);
    let ext_at = hello.len() + 2;
    let sni = b"\x00\x00\x00\x0d\x00\x0b\x00\x00\x08web.shop";
    hello.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    hello.extend_from_slice(sni);
    hello.extend_from_slice(&[0x44; 60]);
    assert_eq!(run(&mut bed, Hook::ToPod, &tcp(client, server, 50001, 443, packet::tcp::SYN)), TC_PASS);
    assert_eq!(run(&mut bed, Hook::ToPod, &tcp_data(client, server, 50001, 443, &hello)), TC_PASS);
    let s = samples(&mut bed);
    assert_eq!(s.len(), 1);
    let sample = s[0].sample.as_ref().unwrap();
    assert_eq!(sample.head, &hello[..bulkhead_dataplane::abi::BH_SAMPLE_TLS_HEAD as usize]);
    let (at, bytes) = sample.tls_ext.as_ref().expect("the extensions window");
    assert_eq!(usize::from(*at), ext_at);
    assert_eq!(&bytes[..sni.len()], sni);
    assert_eq!(bytes.len(), hello.len() - ext_at, "the rest of the packet, within the window");
    assert!(
        bytes.len()
            <= (bulkhead_dataplane::abi::BH_SAMPLE_BYTES - bulkhead_dataplane::abi::BH_SAMPLE_TLS_HEAD) as usize
    );
}

#[test]
fn samples_are_bounded_per_pod_and_every_skip_is_counted() {
    use bulkhead_dataplane::abi;
    let mut bed = bed("samples-budget", Mode::Learn, &[]);
    let server = v4(POD);
    let burst = abi::BH_SAMPLES_BURST as u16;
    let extra = 50u16;
    for i in 0..burst + extra {
        let f = packet::udp(v4(PEER), server, 10000 + i, 53, 12);
        assert_eq!(run(&mut bed, Hook::ToPod, &f), TC_PASS);
    }
    let sent = samples(&mut bed).len() as u64;
    let over = stat(&bed, abi::BH_STAT_SAMPLES_OVER_BUDGET);
    assert!(sent >= u64::from(burst) && sent <= u64::from(burst) + 5, "the burst, and what refilled meanwhile: {sent}");
    assert_eq!(sent + over, u64::from(burst + extra), "every sample is sent or counted as skipped");
    assert_eq!(stat(&bed, abi::BH_STAT_SAMPLES_SENT), sent);

    let mut cfg = bed.maps.config().unwrap();
    cfg.flags |= abi::BH_CFG_F_SAMPLES_DISABLED;
    bed.maps.set_config(cfg).unwrap();
    assert_eq!(run(&mut bed, Hook::ToPod, &packet::udp(v4(OTHER), server, 9, 53, 12)), TC_PASS);
    assert!(samples(&mut bed).is_empty());
    assert_eq!(stat(&bed, abi::BH_STAT_SAMPLES_DISABLED), 1);
}
