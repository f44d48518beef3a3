//! Property test: for random clusters and random policies of every kind,
//! the compiled dataplane entries agree with the evaluator on every pair of
//! addresses (pods, ClusterIPs, nodes and outside addresses) and on every
//! port where any rule's match could change, over TCP, UDP, SCTP and ICMP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bulkhead_policy::cluster::{ClusterPolicy, ServiceRef, Tier, TierAction, TierPeer, TierRule};
use bulkhead_policy::compile::Compiler;
use bulkhead_policy::evaluate::{Evaluator, PolicySet};
use bulkhead_policy::inventory::{Inventory, Namespace, Pod, Service, ServicePort, TargetPort};
use bulkhead_policy::netpol::{IpBlock, NetworkPolicy, Peer, Rule};
use bulkhead_policy::ports::{NamedPort, PortMatch, PortSel, Protocol};
use bulkhead_policy::selector::{Labels, Requirement, Selector};
use proptest::prelude::*;

use super::dataplane::Simulated;

const KEYS: [&str; 2] = ["app", "tier"];
const VALUES: [&str; 3] = ["a", "b", "c"];
const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PORT_NAMES: [&str; 2] = ["http", "dns"];
/// Ports the generators use, so random rules and pods collide often.
const PORTS: [u16; 5] = [53, 80, 81, 443, 8080];

fn labels() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map(
        proptest::sample::select(&KEYS[..]).prop_map(str::to_string),
        proptest::sample::select(&VALUES[..]).prop_map(str::to_string),
        0..=2,
    )
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let key = proptest::sample::select(&KEYS[..]).prop_map(str::to_string);
    let values = proptest::collection::btree_set(proptest::sample::select(&VALUES[..]).prop_map(str::to_string), 1..=2);
    prop_oneof![
        (key.clone(), values.clone()).prop_map(|(k, v)| Requirement::In(k, v)),
        (key.clone(), values).prop_map(|(k, v)| Requirement::NotIn(k, v)),
        key.clone().prop_map(Requirement::Exists),
        key.prop_map(Requirement::DoesNotExist),
    ]
}

fn selector() -> impl Strategy<Value = Selector> {
    proptest::collection::vec(requirement(), 0..=2).prop_map(|requirements| Selector { requirements })
}

fn ns_selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::everything()),
        proptest::sample::select(&NAMESPACES[..]).prop_map(|n| Selector::labels([("kubernetes.io/metadata.name", n)])),
        selector(),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![4 => Just(Protocol::Tcp), 2 => Just(Protocol::Udp), 1 => Just(Protocol::Sctp)]
}

fn port_match() -> impl Strategy<Value = PortMatch> {
    let sel = prop_oneof![
        Just(PortSel::Any),
        proptest::sample::select(&PORTS[..]).prop_map(|p| PortSel::Range(p, p)),
        (proptest::sample::select(&PORTS[..]), 0u16..40).prop_map(|(p, w)| PortSel::Range(p, p + w)),
        proptest::sample::select(&PORT_NAMES[..]).prop_map(|n| PortSel::Named(n.to_string())),
    ];
    (protocol(), sel).prop_map(|(protocol, ports)| PortMatch { protocol, ports })
}

fn ports() -> impl Strategy<Value = Option<Vec<PortMatch>>> {
    proptest::option::weighted(0.6, proptest::collection::vec(port_match(), 1..=2))
}

/// CIDRs around the lab's pod, node and outside ranges.
fn cidr() -> impl Strategy<Value = ipnetwork::IpNetwork> {
    const BASES: [(&str, u8); 10] = [
        ("10.244.1.5", 32),
        ("10.244.2.101", 32),
        ("10.244.0.0", 16),
        ("10.244.1.0", 24),
        ("10.244.2.0", 24),
        ("10.244.1.0", 28),
        ("172.30.0.0", 24),
        ("0.0.0.0", 0),
        ("203.0.113.0", 24),
        ("fd00:10:244::", 48),
    ];
    (proptest::sample::select(&BASES[..]), 0u8..=6).prop_map(|((addr, prefix), extra)| {
        let ip: IpAddr = addr.parse().unwrap();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let p = (prefix + extra * 4).min(max);
        let n = ipnetwork::IpNetwork::new(ip, p).unwrap();
        ipnetwork::IpNetwork::new(n.network(), p).unwrap()
    })
}

fn ip_block() -> impl Strategy<Value = IpBlock> {
    (cidr(), proptest::collection::vec(cidr(), 0..=2)).prop_map(|(cidr, ex)| {
        let except = ex
            .into_iter()
            .filter(|e| e.is_ipv4() == cidr.is_ipv4() && e.prefix() >= cidr.prefix() && cidr.contains(e.network()))
            .collect();
        IpBlock { cidr, except }
    })
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        3 => (proptest::option::of(ns_selector()), selector()).prop_map(|(namespaces, pods)| Peer::Pods { namespaces, pods }),
        1 => ip_block().prop_map(Peer::IpBlock),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (proptest::option::weighted(0.7, proptest::collection::vec(peer(), 1..=2)), ports())
        .prop_map(|(peers, ports)| Rule { peers, ports })
}

fn network_policy(i: usize) -> impl Strategy<Value = NetworkPolicy> {
    let rules = || proptest::option::weighted(0.6, proptest::collection::vec(rule(), 0..=2));
    (proptest::sample::select(&NAMESPACES[..]), selector(), rules(), rules()).prop_map(
        move |(ns, pod_selector, ingress, egress)| NetworkPolicy {
            namespace: ns.to_string(),
            name: format!("np{i}"),
            pod_selector,
            ingress: if ingress.is_none() && egress.is_none() { Some(vec![]) } else { ingress },
            egress,
        },
    )
}

fn tier_peer() -> impl Strategy<Value = TierPeer> {
    prop_oneof![
        3 => (ns_selector(), selector()).prop_map(|(namespaces, pods)| TierPeer::Pods { namespaces, pods }),
        1 => cidr().prop_map(TierPeer::Network),
        1 => (0usize..3).prop_map(|i| TierPeer::Service(ServiceRef { namespace: "x".into(), name: format!("s{i}") })),
        1 => proptest::sample::select(&["lab", "elsewhere"][..]).prop_map(|c| TierPeer::Cluster(c.to_string())),
    ]
}

fn tier_rules(tier: Tier) -> impl Strategy<Value = Vec<TierRule>> {
    let action = match tier {
        Tier::Admin => prop_oneof![Just(TierAction::Allow), Just(TierAction::Deny), Just(TierAction::Pass)].boxed(),
        Tier::Baseline => prop_oneof![Just(TierAction::Allow), Just(TierAction::Deny)].boxed(),
    };
    proptest::collection::vec((action, proptest::collection::vec(tier_peer(), 1..=2), ports()), 0..=2).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (action, peers, ports))| TierRule { name: format!("r{i}"), action, peers, ports })
            .collect()
    })
}

fn cluster_policy(i: usize) -> impl Strategy<Value = ClusterPolicy> {
    let tier = prop_oneof![Just(Tier::Admin), Just(Tier::Baseline)];
    tier.prop_flat_map(move |tier| {
        (0i32..3, ns_selector(), selector(), tier_rules(tier), tier_rules(tier)).prop_map(
            move |(priority, subject_namespaces, subject_pods, ingress, egress)| ClusterPolicy {
                name: format!("cnp{i}"),
                tier,
                priority,
                subject_namespaces,
                subject_pods,
                ingress,
                egress,
            },
        )
    })
}

fn named_ports() -> impl Strategy<Value = Vec<NamedPort>> {
    proptest::collection::vec(
        (proptest::sample::select(&PORT_NAMES[..]), protocol(), proptest::sample::select(&PORTS[..]))
            .prop_map(|(n, protocol, port)| NamedPort { name: n.to_string(), protocol, port }),
        0..=2,
    )
}

fn pod_spec() -> impl Strategy<Value = (usize, Labels, Vec<NamedPort>, bool)> {
    (0usize..3, labels(), named_ports(), proptest::bool::weighted(0.3))
}

fn inventory() -> impl Strategy<Value = Inventory> {
    let ns_labels = proptest::collection::vec(labels(), 3);
    let pods = proptest::collection::vec(pod_spec(), 2..=7);
    let services = proptest::collection::vec(
        (
            labels(),
            protocol(),
            proptest::sample::select(&PORTS[..]),
            proptest::option::of(proptest::sample::select(&PORT_NAMES[..])),
        ),
        0..=3,
    );
    (ns_labels, pods, services).prop_map(|(ns_labels, pods, services)| {
        let mut inv = Inventory::new("lab");
        for (n, mut labels) in NAMESPACES.iter().zip(ns_labels) {
            labels.insert("kubernetes.io/metadata.name".into(), n.to_string());
            inv.put_namespace(Namespace { name: n.to_string(), labels });
        }
        for (i, (ns, labels, ports, dual)) in pods.into_iter().enumerate() {
            let node = 1 + i % 2;
            // Every other pod on node 1 lands in 10.244.1.0/28, the rest above it.
            let host = if i % 4 == 0 { 5 + i } else { 100 + i };
            let mut ips: Vec<IpAddr> = vec![format!("10.244.{node}.{host}").parse().unwrap()];
            if dual {
                ips.push(format!("fd00:10:244:{node}::{host}").parse().unwrap());
            }
            inv.put_pod(Pod {
                cluster: "lab".into(),
                namespace: NAMESPACES[ns].to_string(),
                name: format!("p{i}"),
                labels,
                node: format!("n{node}"),
                ips,
                declared: ports.iter().map(|p| (p.protocol, p.port)).collect(),
                host_ports: Vec::new(),
                ports,
            });
        }
        for (i, (selector, protocol, port, named)) in services.into_iter().enumerate() {
            let target = match named {
                Some(n) => TargetPort::Named(n.to_string()),
                None => TargetPort::Number(port),
            };
            inv.put_service(Service {
                namespace: "x".into(),
                name: format!("s{i}"),
                selector: Some(selector).filter(|s| !s.is_empty()),
                cluster_ips: vec![format!("10.96.0.{}", 10 + i).parse().unwrap()],
                ports: vec![ServicePort {
                    name: String::new(),
                    protocol,
                    port: 8000 + port % 100,
                    target,
                    node_port: None,
                    app_protocol: None,
                }],
                // Every other service lists its backends by hand (EndpointSlices), not by labels.
                endpoints: (i % 2 == 1).then(|| vec!["10.244.1.5".parse().unwrap()]),
                exposure: Default::default(),
            });
        }
        inv.nodes.insert("n1".into(), vec!["172.30.0.1".parse().unwrap()]);
        inv.nodes.insert("n2".into(), vec!["172.30.0.2".parse().unwrap()]);
        inv
    })
}

fn policies() -> impl Strategy<Value = PolicySet> {
    let nps = proptest::collection::vec(0usize..1, 0..=4)
        .prop_flat_map(|v| v.into_iter().enumerate().map(|(i, _)| network_policy(i)).collect::<Vec<_>>());
    let cps = proptest::collection::vec(0usize..1, 0..=2)
        .prop_flat_map(|v| v.into_iter().enumerate().map(|(i, _)| cluster_policy(i)).collect::<Vec<_>>());
    (nps, cps).prop_map(|(nps, cps)| {
        let mut set = PolicySet::default();
        nps.into_iter().for_each(|p| set.put_network(p));
        cps.into_iter().for_each(|p| set.put_cluster(p));
        set
    })
}

/// Ports where answers can change: every port any object mentions, its
/// neighbours, and the ends of the range.
fn probe_ports(inv: &Inventory) -> BTreeSet<u16> {
    let mut ports = BTreeSet::from([1, 65535]);
    let mut add = |p: u16| {
        ports.extend([p.saturating_sub(1).max(1), p, p.saturating_add(1)]);
    };
    PORTS.iter().for_each(|p| {
        add(*p);
        add(p + 39);
        add(p + 40);
    });
    for svc in inv.services.values() {
        svc.ports.iter().for_each(|sp| add(sp.port));
    }
    ports
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn compiled_entries_agree_with_the_evaluator(inv in inventory(), set in policies()) {
        let compiled = Compiler::new().compile(&inv, &set).unwrap();
        let pod_ips: BTreeMap<String, Vec<IpAddr>> = inv.pods.values().map(|p| (p.key(), p.ips.clone())).collect();
        let sim = Simulated::new(&compiled, &pod_ips);
        let eval = Evaluator::new(&inv, &set);
        let mut addrs: Vec<IpAddr> = inv.pods.values().flat_map(|p| p.ips.clone()).collect();
        let sources = addrs.clone();
        addrs.extend(inv.services.values().flat_map(|s| s.cluster_ips.clone()));
        addrs.extend(["172.30.0.1", "203.0.113.9", "10.244.1.7", "192.0.2.1", "fd00:10:244:1::77", "2001:db8::1"].map(|a| a.parse::<IpAddr>().unwrap()));
        let ports = probe_ports(&inv);
        for src in &sources {
            for dst in &addrs {
                if src == dst || src.is_ipv4() != dst.is_ipv4() {
                    continue;
                }
                for proto in [Some(Protocol::Tcp), Some(Protocol::Udp), Some(Protocol::Sctp), None] {
                    for port in if proto.is_some() { ports.iter().copied().collect::<Vec<_>>() } else { vec![0] } {
                        let want = eval.connection(*src, *dst, proto, port);
                        let got = sim.allows(*src, *dst, proto, port);
                        prop_assert_eq!(got, want.allowed, "{} -> {}:{} {:?}: evaluator {:?}", src, dst, port, proto, want);
                        // The outside world reaching pods too.
                        if !inv.pods.values().any(|p| p.ips.contains(dst)) {
                            let want = eval.connection(*dst, *src, proto, port);
                            let got = sim.allows(*dst, *src, proto, port);
                            prop_assert_eq!(got, want.allowed, "{} -> {}:{} {:?}: evaluator {:?}", dst, src, port, proto, want);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn incremental_compiles_equal_fresh_ones(inv in inventory(), set in policies(), relabel in labels(), which in 0usize..7) {
        let mut warm = Compiler::new();
        warm.compile(&inv, &set).unwrap();
        let mut changed = inv.clone();
        if let Some(pod) = changed.pods.values_mut().nth(which % inv.pods.len()) {
            pod.labels = relabel;
        }
        let incremental = warm.compile(&changed, &set).unwrap();
        let fresh = Compiler::new().compile(&changed, &set).unwrap();
        // Identity numbers may differ (they are never reused); compare meaning.
        let pod_ips: BTreeMap<String, Vec<IpAddr>> = changed.pods.values().map(|p| (p.key(), p.ips.clone())).collect();
        let a = Simulated::new(&incremental, &pod_ips);
        let b = Simulated::new(&fresh, &pod_ips);
        let addrs: Vec<IpAddr> = changed.pods.values().flat_map(|p| p.ips.clone()).collect();
        for src in &addrs {
            for dst in addrs.iter().filter(|d| *d != src && d.is_ipv4() == src.is_ipv4()) {
                for port in probe_ports(&changed) {
                    prop_assert_eq!(a.allows(*src, *dst, Some(Protocol::Tcp), port), b.allows(*src, *dst, Some(Protocol::Tcp), port));
                }
            }
        }
    }
}
