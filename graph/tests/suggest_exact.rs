//! The acceptance bar for suggestions: on generated topologies of at least
//! 50 workloads (several namespaces, names reused across them, shared tier
//! labels, services with different target ports, DNS, external peers),
//! the suggested NetworkPolicies, parsed back from their YAML and evaluated
//! by the policy engine's evaluator,
//! - allow every baseline flow (100 %), and
//! - deny every workload pair, protocol and port that is not in the
//!   baseline, and every external address that was not observed
//!   (zero over-permissive pairs).
//!
//! The flows go through the real pipeline: both observations of each
//! connection into the service graph, what it counts into the learner.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bulkhead_graph::baseline::{Learner, LearningConfig};
use bulkhead_graph::suggest::{self, WorkloadInfo};
use bulkhead_graph::whatif::what_if;
use bulkhead_graph::{Entity, FlowRecord, Pairing, ServiceRef};
use bulkhead_model::{Direction, Verdict};
use bulkhead_policy::evaluate::{Evaluator, PolicySet};
use bulkhead_policy::inventory::{Inventory, Namespace, Pod, Service, ServicePort, TargetPort};
use bulkhead_policy::netpol::NetworkPolicy;
use bulkhead_policy::objects::{Object, parse_documents};
use bulkhead_policy::ports::Protocol;
use proptest::prelude::*;

const S: i64 = 1_000_000_000;
const PORTS: [u16; 8] = [80, 443, 3550, 5432, 6379, 7070, 8080, 9090];

/// A small deterministic generator, so one proptest seed is one topology.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

struct Workload {
    entity: Entity,
    labels: BTreeMap<String, String>,
    pods: Vec<IpAddr>,
    /// (ClusterIP, service port, target port) when it has a service.
    service: Option<(IpAddr, u16, u16)>,
}

struct World {
    workloads: Vec<Workload>,
    inventory: Inventory,
    records: Vec<FlowRecord>,
    /// (src workload, dst workload, protocol, delivered port).
    pairs: BTreeSet<(usize, usize, u8, u16)>,
    /// (src workload, external address, protocol, port).
    external: BTreeSet<(usize, IpAddr, u8, u16)>,
    /// (external address, dst workload, protocol, port).
    inbound: BTreeSet<(IpAddr, usize, u8, u16)>,
}

fn generate(seed: u64, n: usize) -> World {
    let mut rng = Lcg(seed);
    let mut inventory = Inventory::new("c1");
    for ns in ["ns0", "ns1", "ns2", "ns3", "kube-system"] {
        let labels = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]);
        inventory.put_namespace(Namespace { name: ns.into(), labels });
    }
    let mut workloads = Vec::new();
    for i in 0..n {
        let (ns, name, labels) = if i == 0 {
            ("kube-system".to_string(), "coredns".to_string(), BTreeMap::from([("k8s-app".into(), "kube-dns".into())]))
        } else {
            // Names repeat across namespaces; tier labels are shared.
            let name = format!("svc{}", i % 25);
            let labels =
                BTreeMap::from([("app".to_string(), name.clone()), ("tier".to_string(), format!("t{}", i % 3))]);
            (format!("ns{}", i % 4), name, labels)
        };
        let entity =
            Entity::Workload { namespace: ns.as_str().into(), kind: "Deployment".into(), name: name.as_str().into() };
        let mut pods = Vec::new();
        for p in 0..1 + rng.next(2) as usize {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 244, i as u8, 10 + p as u8));
            let mut pod_labels = labels.clone();
            pod_labels.insert("pod-template-hash".into(), format!("h{}", rng.next(1000)));
            inventory.put_pod(Pod {
                cluster: "c1".into(),
                namespace: ns.clone(),
                name: format!("{name}-{p}"),
                labels: pod_labels,
                node: format!("n{}", p % 2),
                ips: vec![ip],
                ports: Vec::new(),
                declared: Vec::new(),
                host_ports: Vec::new(),
            });
            pods.push(ip);
        }
        let service = if i == 0 {
            Some((IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)), 53, 53))
        } else if rng.next(2) == 0 {
            let target = PORTS[rng.next(PORTS.len() as u64) as usize];
            Some((IpAddr::V4(Ipv4Addr::new(10, 96, 1, i as u8)), 80, target))
        } else {
            None
        };
        if let Some((ip, port, target)) = service {
            let protocols: &[Protocol] = if i == 0 { &[Protocol::Udp, Protocol::Tcp] } else { &[Protocol::Tcp] };
            inventory.put_service(Service {
                namespace: ns.clone(),
                name: name.clone(),
                selector: Some(labels.clone()),
                cluster_ips: vec![ip],
                ports: protocols
                    .iter()
                    .map(|p| ServicePort {
                        name: String::new(),
                        protocol: *p,
                        port,
                        target: TargetPort::Number(target),
                        node_port: None,
                        app_protocol: None,
                    })
                    .collect(),
                endpoints: None,
                exposure: Default::default(),
            });
        }
        workloads.push(Workload { entity, labels, pods, service });
    }
    inventory.nodes.insert("n0".into(), vec!["192.168.50.1".parse().unwrap()]);
    inventory.nodes.insert("n1".into(), vec!["192.168.50.2".parse().unwrap()]);

    let mut w = World {
        workloads,
        inventory,
        records: Vec::new(),
        pairs: BTreeSet::new(),
        external: BTreeSet::new(),
        inbound: BTreeSet::new(),
    };
    let mut sport = 20000u16;
    let mut t = 0i64;
    for a in 1..n {
        // DNS through the kube-dns service, most workloads (and every
        // workload that has no other traffic: no baseline, no suggestion).
        let silent = rng.next(5) == 0;
        if !silent || rng.next(2) == 0 {
            connect(&mut w, a, 0, 17, true, &mut sport, &mut t);
        }
        for _ in 0..rng.next(5) {
            let b = 1 + rng.next(n as u64 - 1) as usize;
            if b == a {
                continue;
            }
            let via_service = w.workloads[b].service.is_some() && rng.next(2) == 0;
            let proto = if rng.next(5) == 0 { 17 } else { 6 };
            if via_service {
                connect(&mut w, a, b, 6, true, &mut sport, &mut t);
            } else {
                let port = PORTS[rng.next(PORTS.len() as u64) as usize];
                direct(&mut w, a, b, proto, port, &mut sport, &mut t);
            }
        }
        // External: a few consecutive addresses, so the cover aggregates.
        if rng.next(4) == 0 {
            let base = 64 + 4 * rng.next(8) as u8;
            for k in 0..1 + rng.next(4) as u8 {
                let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, base + k));
                outbound(&mut w, a, ip, 443, &mut sport, &mut t);
            }
        }
        if rng.next(6) == 0 {
            let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.next(200) as u8));
            inbound(&mut w, ip, a, 8080, &mut sport, &mut t);
        }
    }
    for a in 1..n {
        let seen = w.pairs.iter().any(|p| p.0 == a || p.1 == a)
            || w.external.iter().any(|p| p.0 == a)
            || w.inbound.iter().any(|p| p.1 == a);
        if !seen {
            connect(&mut w, a, 0, 17, true, &mut sport, &mut t);
        }
    }
    w
}

fn record(w: &World, obs: Direction, src: usize, src_ip: IpAddr, sport: u16, t: i64) -> FlowRecord {
    FlowRecord {
        time_ns: t,
        observation: obs,
        node: "n0".into(),
        src: w.workloads[src].entity.clone(),
        dst: w.workloads[src].entity.clone(),
        src_ip,
        src_port: sport,
        dst_ip: src_ip,
        dst_port: 0,
        protocol: 6,
        service: None,
        verdict: Verdict::Forwarded,
        bytes: 100,
        src_pod: String::new(),
        dst_pod: String::new(),
        backend: None,
        rule: None,
        drop_reason: None,
        packets: 0,
    }
}

/// A connection to `b` through its service: egress sees the ClusterIP and
/// service port, ingress the backend and target port.
fn connect(w: &mut World, a: usize, b: usize, proto: u8, _svc: bool, sport: &mut u16, t: &mut i64) {
    let Some((cip, port, target)) = w.workloads[b].service else { return };
    let (src_ip, dst_ip) = (w.workloads[a].pods[0], *w.workloads[b].pods.last().unwrap());
    *sport += 1;
    *t += 1000;
    let (ns, name) = match &w.workloads[b].entity {
        Entity::Workload { namespace, name, .. } => (namespace.clone(), name.clone()),
        _ => unreachable!(),
    };
    let sref = ServiceRef { namespace: ns.clone(), name: name.clone(), port };
    let mut out = record(w, Direction::Egress, a, src_ip, *sport, *t);
    out.dst = Entity::Service { namespace: ns, name };
    out.dst_ip = cip;
    out.dst_port = port;
    out.protocol = proto;
    out.service = Some(sref);
    let mut inc = record(w, Direction::Ingress, a, src_ip, *sport, *t + 10);
    inc.dst = w.workloads[b].entity.clone();
    inc.dst_ip = dst_ip;
    inc.dst_port = target;
    inc.protocol = proto;
    w.records.push(out);
    w.records.push(inc);
    w.pairs.insert((a, b, proto, target));
}

fn direct(w: &mut World, a: usize, b: usize, proto: u8, port: u16, sport: &mut u16, t: &mut i64) {
    let (src_ip, dst_ip) = (*w.workloads[a].pods.last().unwrap(), w.workloads[b].pods[0]);
    *sport += 1;
    *t += 1000;
    for obs in [Direction::Ingress, Direction::Egress] {
        let mut r = record(w, obs, a, src_ip, *sport, *t);
        r.dst = w.workloads[b].entity.clone();
        r.dst_ip = dst_ip;
        r.dst_port = port;
        r.protocol = proto;
        w.records.push(r);
    }
    w.pairs.insert((a, b, proto, port));
}

fn outbound(w: &mut World, a: usize, ip: IpAddr, port: u16, sport: &mut u16, t: &mut i64) {
    *sport += 1;
    *t += 1000;
    let mut r = record(w, Direction::Egress, a, w.workloads[a].pods[0], *sport, *t);
    r.dst = Entity::World { cidr: ip.into() };
    r.dst_ip = ip;
    r.dst_port = port;
    w.records.push(r);
    w.external.insert((a, ip, 6, port));
}

fn inbound(w: &mut World, ip: IpAddr, b: usize, port: u16, sport: &mut u16, t: &mut i64) {
    *sport += 1;
    *t += 1000;
    let mut r = record(w, Direction::Ingress, b, ip, *sport, *t);
    r.src = Entity::World { cidr: ip.into() };
    r.dst_ip = w.workloads[b].pods[0];
    r.dst_port = port;
    w.records.push(r);
    w.inbound.insert((ip, b, 6, port));
}

/// Graph → learner → suggestions → YAML → policy engine.
fn suggest_for(w: &World) -> (Learner, Vec<suggest::Suggestion>, PolicySet) {
    let mut pairing = Pairing::new(30 * S);
    let mut learner = Learner::new(LearningConfig {
        window_ns: 10 * S,
        quiet_ns: 5 * S,
        evidence_per_anomaly: 5,
        ..Default::default()
    });
    for r in &w.records {
        if let Some((counted, k)) = pairing.observe(r) {
            learner.observe(&counted, &k);
        }
    }
    for (r, k) in pairing.flush(i64::MAX / 2) {
        learner.observe(&r, &k);
    }
    assert_eq!(pairing.stats().unresolved, 0, "every service connection met its backend");
    learner.tick(1000 * S);
    let inv = suggest::Inventory {
        workloads: w
            .workloads
            .iter()
            .map(|x| (x.entity.clone(), WorkloadInfo { selector: x.labels.clone(), present_since_ns: None }))
            .collect(),
        nodes: w.inventory.nodes.clone(),
        now_ns: 0,
    };
    let suggestions = suggest::suggest(&learner, &inv, None);
    let mut policies = PolicySet::default();
    for s in &suggestions {
        assert!(s.stable);
        let yaml = serde_yaml::to_string(&s.policy).unwrap();
        assert!(!yaml.contains("pod-template-hash"), "{yaml}");
        for obj in parse_documents("suggestion", &yaml).unwrap() {
            let Object::NetworkPolicy(np) = obj else { panic!("not a NetworkPolicy: {yaml}") };
            policies.put_network(NetworkPolicy::try_from(&np).unwrap());
        }
    }
    (learner, suggestions, policies)
}

fn check_exact(seed: u64, n: usize) {
    let w = generate(seed, n);
    let (_, suggestions, policies) = suggest_for(&w);
    assert_eq!(suggestions.len(), n, "one policy per workload");
    let eval = Evaluator::new(&w.inventory, &policies);

    // 1. Every baseline flow is allowed.
    let mut denied = Vec::new();
    for r in &w.records {
        let v = eval.connection(r.src_ip, r.dst_ip, Protocol::from_number(r.protocol), r.dst_port);
        if !v.allowed {
            denied.push(format!("{:?} {} -> {}:{} ({:?})", r.observation, r.src_ip, r.dst_ip, r.dst_port, v));
        }
    }
    assert!(denied.is_empty(), "{} of {} baseline flows denied: {denied:#?}", denied.len(), w.records.len());
    let replay = what_if(&w.inventory, &policies, &w.records, |_| true);
    assert_eq!((replay.replayed, replay.would_drop.len()), (w.records.len() as u64, 0));

    // 2. Nothing else between workloads, on any protocol or port tried.
    let mut over = Vec::new();
    let ports: BTreeSet<u16> = PORTS.iter().copied().chain([1, 53, 8081, 65535]).collect();
    for (a, wa) in w.workloads.iter().enumerate() {
        for (b, wb) in w.workloads.iter().enumerate() {
            for proto in [6u8, 17] {
                for &port in &ports {
                    let v = eval.connection(wa.pods[0], *wb.pods.last().unwrap(), Protocol::from_number(proto), port);
                    // TCP 53 goes with a learned UDP 53 (DNS's fallback).
                    let learned = w.pairs.contains(&(a, b, proto, port))
                        || ((proto, port) == (6, 53) && w.pairs.contains(&(a, b, 17, 53)));
                    if v.allowed != learned {
                        over.push(format!("{a}->{b} {proto}/{port}: allowed {} learned {learned}", v.allowed));
                    }
                }
            }
        }
    }
    assert!(over.is_empty(), "{} pairs differ from the baseline: {over:#?}", over.len());

    // 3. External addresses: exactly the observed ones, on the observed port.
    for (a, wa) in w.workloads.iter().enumerate() {
        for last in 0..=255u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, last));
            for port in [443, 80] {
                let v = eval.connection(wa.pods[0], ip, Some(Protocol::Tcp), port);
                assert_eq!(v.allowed, w.external.contains(&(a, ip, 6, port)), "{a} -> {ip}:{port}");
            }
        }
    }
    for (ip, b, _, port) in &w.inbound {
        let dst = w.workloads[*b].pods[0];
        assert!(eval.connection(*ip, dst, Some(Protocol::Tcp), *port).allowed);
        let neighbour = match ip {
            IpAddr::V4(v) => IpAddr::V4(Ipv4Addr::from(u32::from(*v) ^ 1)),
            IpAddr::V6(_) => unreachable!(),
        };
        if !w.inbound.iter().any(|(i, x, _, _)| *i == neighbour && x == b) {
            assert!(!eval.connection(neighbour, dst, Some(Protocol::Tcp), *port).allowed, "{neighbour} -> {b}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn suggestions_allow_the_baseline_and_nothing_else(seed in any::<u64>()) {
        check_exact(seed, 60);
    }
}

#[test]
fn suggestions_are_readable_deterministic_and_carry_evidence() {
    let w = generate(7, 60);
    let (learner, a, _) = suggest_for(&w);
    let (_, b, _) = suggest_for(&w);
    let ya: Vec<String> = a.iter().map(|s| serde_yaml::to_string(&s.policy).unwrap()).collect();
    let yb: Vec<String> = b.iter().map(|s| serde_yaml::to_string(&s.policy).unwrap()).collect();
    assert_eq!(ya, yb, "same baseline, same output");
    for s in &a {
        let meta = &s.policy.metadata;
        let Entity::Workload { name, .. } = &s.workload else { unreachable!() };
        assert_eq!(meta.name.as_deref(), Some(format!("bulkhead-{name}").as_str()));
        let spec = s.policy.spec.as_ref().unwrap();
        assert_eq!(spec.policy_types.as_deref(), Some(&["Ingress".to_string(), "Egress".to_string()][..]));
        let rules = spec.ingress.as_ref().unwrap().len() + spec.egress.as_ref().unwrap().len();
        let notes =
            meta.annotations.as_ref().unwrap().keys().filter(|k| k.starts_with("evidence.bulkhead.dev/")).count();
        assert_eq!(rules, notes, "one evidence annotation per rule");
        assert_eq!(s.rules.len(), rules);
        // Peers sharing a port set share a rule: no two rules of a side have the same ports.
        for side in [bulkhead_model::Direction::Ingress, bulkhead_model::Direction::Egress] {
            let sets: Vec<&Vec<String>> = s.rules.iter().filter(|r| r.side == side).map(|r| &r.ports).collect();
            let unique: BTreeSet<&Vec<String>> = sets.iter().copied().collect();
            assert_eq!(sets.len(), unique.len(), "{name}: rules with equal ports not merged");
        }
    }
    // DNS egress to kube-dns where the workload resolved names.
    let dns_users =
        learner.edges().keys().filter(|e| matches!(&e.dst, Entity::Workload { name, .. } if &**name == "coredns"));
    for e in dns_users {
        let s = a.iter().find(|s| s.workload == e.src).unwrap();
        let y = serde_yaml::to_string(&s.policy).unwrap();
        assert!(y.contains("k8s-app: kube-dns") && y.contains("port: 53"), "{y}");
        // Only UDP was seen; TCP is allowed too, and the evidence says why.
        let dns = s.rules.iter().find(|r| r.ports.contains(&"UDP/53".to_string())).unwrap();
        assert!(dns.ports.contains(&"TCP/53".to_string()), "{:?}", dns.ports);
        let notes = s.policy.metadata.annotations.as_ref().unwrap();
        assert!(notes.values().any(|v| v.contains("RFC 7766")), "{notes:?}");
    }
    // The selector of a workload that shares its tier label is still its own.
    let y = &ya[1];
    assert!(y.contains("app: svc"), "{y}");
}
