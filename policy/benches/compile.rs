//! Compile time: a cluster of N pods in N/10 workloads over 10 namespaces,
//! with 1 000 NetworkPolicies (ingress from two other workloads on a port,
//! egress to one workload and to DNS), plus an Admin and a Baseline tier.
//! Measures a full compile from scratch and an incremental recompile after
//! one pod's labels change.
//!
//! `cargo bench -p bulkhead-policy --bench compile`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bulkhead_policy::cluster::{ClusterPolicy, Tier, TierAction, TierPeer, TierRule};
use bulkhead_policy::compile::Compiler;
use bulkhead_policy::evaluate::PolicySet;
use bulkhead_policy::inventory::{Inventory, Namespace, Pod};
use bulkhead_policy::netpol::{NetworkPolicy, Peer, Rule};
use bulkhead_policy::ports::{NamedPort, PortMatch, PortSel, Protocol};
use bulkhead_policy::selector::{Labels, Selector};
use criterion::{Criterion, criterion_group, criterion_main};

const NAMESPACES: usize = 10;

fn workload(i: usize) -> (String, String) {
    (format!("ns{}", i % NAMESPACES), format!("app{i}"))
}

fn cluster(pods: usize, policies: usize) -> (Inventory, PolicySet) {
    let workloads = (pods / 10).max(1);
    let mut inv = Inventory::new("bench");
    for n in 0..NAMESPACES {
        let name = format!("ns{n}");
        let labels = Labels::from([("kubernetes.io/metadata.name".to_string(), name.clone())]);
        inv.put_namespace(Namespace { name, labels });
    }
    for i in 0..pods {
        let (ns, app) = workload(i % workloads);
        let node = i % 10;
        inv.put_pod(Pod {
            cluster: "bench".into(),
            namespace: ns,
            name: format!("{app}-{i}"),
            labels: Labels::from([("app".to_string(), app), ("tier".to_string(), format!("t{}", i % 3))]),
            node: format!("node{node}"),
            ips: vec![format!("10.{}.{}.{}", 100 + node, (i / 250) % 256, i % 250 + 1).parse().unwrap()],
            ports: vec![NamedPort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 }],
            declared: vec![(Protocol::Tcp, 8080)],
            host_ports: Vec::new(),
        });
    }
    let mut set = PolicySet::default();
    let tcp = |p: u16| PortMatch { protocol: Protocol::Tcp, ports: PortSel::Range(p, p) };
    let pods_of = |w: usize| {
        let (ns, app) = workload(w % workloads);
        Peer::Pods {
            namespaces: Some(Selector::labels([("kubernetes.io/metadata.name", ns.as_str())])),
            pods: Selector::labels([("app", app.as_str())]),
        }
    };
    for i in 0..policies {
        let w = i % workloads;
        let (ns, app) = workload(w);
        set.put_network(NetworkPolicy {
            namespace: ns,
            name: format!("np{i}"),
            pod_selector: Selector::labels([("app", app.as_str())]),
            ingress: Some(vec![Rule {
                peers: Some(vec![pods_of(w + 1), pods_of(w + 7)]),
                ports: Some(vec![
                    PortMatch { protocol: Protocol::Tcp, ports: PortSel::Named("http".into()) },
                    tcp(9000 + (i % 50) as u16),
                ]),
            }]),
            egress: Some(vec![
                Rule { peers: Some(vec![pods_of(w + 3)]), ports: Some(vec![tcp(8080)]) },
                Rule {
                    peers: None,
                    ports: Some(vec![PortMatch { protocol: Protocol::Udp, ports: PortSel::Range(53, 53) }]),
                },
            ]),
        });
    }
    let admin = TierRule {
        name: "no-ns9".into(),
        action: TierAction::Deny,
        peers: vec![TierPeer::Pods {
            namespaces: Selector::labels([("kubernetes.io/metadata.name", "ns9")]),
            pods: Selector::everything(),
        }],
        ports: None,
    };
    set.put_cluster(ClusterPolicy {
        name: "isolate-ns9".into(),
        tier: Tier::Admin,
        priority: 1,
        subject_namespaces: Selector::labels([("kubernetes.io/metadata.name", "ns0")]),
        subject_pods: Selector::everything(),
        ingress: vec![admin.clone()],
        egress: vec![],
    });
    set.put_cluster(ClusterPolicy {
        name: "baseline".into(),
        tier: Tier::Baseline,
        priority: 0,
        subject_namespaces: Selector::everything(),
        subject_pods: Selector::everything(),
        ingress: vec![TierRule { action: TierAction::Deny, ..admin }],
        egress: vec![],
    });
    (inv, set)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    for pods in [100usize, 1_000, 10_000] {
        let (inv, set) = cluster(pods, 1_000);
        g.bench_function(format!("full/{pods}-pods-1000-policies"), |b| {
            b.iter(|| black_box(Compiler::new().compile(&inv, &set).unwrap()));
        });
        let mut warm = Compiler::new();
        warm.compile(&inv, &set).unwrap();
        let mut flip = false;
        g.bench_function(format!("one-pod-relabel/{pods}-pods-1000-policies"), |b| {
            b.iter(|| {
                let mut changed = inv.clone();
                flip = !flip;
                if let Some(p) = changed.pods.values_mut().next() {
                    p.labels.insert("canary".into(), flip.to_string());
                }
                black_box(warm.compile(&changed, &set).unwrap())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
