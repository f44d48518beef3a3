//! The exposure report at 1 000 services and 10 000 workloads (one pod
//! each, 50 namespaces, a declared port each, ten observed edges per
//! workload, every pod's sockets read: it listens on its declared port, one
//! in ten also on a debug port nobody declared) with one policy per namespace (same namespace and a shared
//! front namespace may connect); the target is under one second.
//! Also least privilege (one policy per workload naming its three callers,
//! as suggestions write them), at 100 services and 1 000 workloads, beside
//! the per-namespace set at that size: its cost grows with the workloads the
//! policies tell apart.
//! `cargo bench -p bulkhead-graph --bench exposure`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bulkhead_graph::exposure::{self, Input};
use bulkhead_graph::{EdgeKey, EdgeStats, Entity};
use bulkhead_policy::evaluate::PolicySet;
use bulkhead_policy::inventory::{Inventory, Namespace, Pod, Service};
use bulkhead_policy::netpol::NetworkPolicy;
use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;

const NAMESPACES: usize = 50;

fn ns(i: usize) -> String {
    format!("ns{}", i % NAMESPACES)
}

fn workload(pod: &Pod) -> Entity {
    Entity::Workload {
        namespace: pod.namespace.as_str().into(),
        kind: "Deployment".into(),
        name: pod.labels["app"].as_str().into(),
    }
}

fn cluster(workloads: usize, services: usize) -> Inventory {
    let mut inv = Inventory::new("c");
    for i in 0..NAMESPACES {
        let o: core::Namespace = serde_yaml::from_str(&format!("metadata: {{name: ns{i}}}")).unwrap();
        inv.put_namespace(Namespace::try_from(&o).unwrap());
    }
    for i in 0..workloads {
        let ip = format!("10.{}.{}.{}", 1 + i / 65_536, (i / 256) % 256, i % 256);
        let o: core::Pod = serde_yaml::from_str(&format!(
            "metadata: {{name: w{i}-1, namespace: {}, labels: {{app: w{i}}}}}\n\
             spec: {{nodeName: n{}, containers: [{{name: c, ports: [{{containerPort: 8080, name: http}}]}}]}}\n\
             status: {{podIP: {ip}}}\n",
            ns(i),
            i % 10
        ))
        .unwrap();
        inv.put_pod(Pod::from_object(&o, "c").unwrap().unwrap());
    }
    for i in 0..services {
        let kind = match i % 100 {
            0 => "LoadBalancer",
            1..=9 => "NodePort",
            _ => "ClusterIP",
        };
        let o: core::Service = serde_yaml::from_str(&format!(
            "metadata: {{name: w{i}, namespace: {}}}\n\
             spec: {{type: {kind}, clusterIP: 10.96.{}.{}, selector: {{app: w{i}}}, ports: [{{port: 80, targetPort: http, name: http}}]}}\n",
            ns(i),
            i / 256,
            i % 256
        ))
        .unwrap();
        inv.put_service(Service::try_from(&o).unwrap());
    }
    for n in 0..10 {
        inv.nodes.insert(format!("n{n}"), vec![format!("172.30.0.{}", n + 1).parse().unwrap()]);
    }
    inv
}

fn put(set: &mut PolicySet, yaml: &str) {
    let o: net::NetworkPolicy = serde_yaml::from_str(yaml).unwrap();
    set.put_network(NetworkPolicy::try_from(&o).unwrap());
}

fn per_namespace() -> PolicySet {
    let mut set = PolicySet::default();
    for i in 0..NAMESPACES {
        put(
            &mut set,
            &format!(
                "metadata: {{name: tenant, namespace: ns{i}}}\n\
                 spec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{}}}}, {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: ns0}}}}}}]}}]}}\n"
            ),
        );
    }
    set
}

fn least_privilege(workloads: usize) -> PolicySet {
    let mut set = PolicySet::default();
    for i in 0..workloads {
        let callers: Vec<String> = (1..=3)
            .map(|k| {
                let c = (i * 31 + k * 7) % workloads;
                format!("{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {}}}}}, podSelector: {{matchLabels: {{app: w{c}}}}}}}", ns(c))
            })
            .collect();
        put(
            &mut set,
            &format!(
                "metadata: {{name: w{i}, namespace: {}}}\n\
                 spec: {{podSelector: {{matchLabels: {{app: w{i}}}}}, ingress: [{{from: [{}], ports: [{{port: 8080}}]}}]}}\n",
                ns(i),
                callers.join(", ")
            ),
        );
    }
    set
}

fn observed(inv: &Inventory) -> Vec<(Entity, Entity, EdgeKey, EdgeStats)> {
    let entities: Vec<Entity> = inv.pods.values().map(workload).collect();
    let n = entities.len();
    (0..n * 10)
        .map(|e| {
            let (a, b) = (e % n, (e * 31 + 7) % n);
            let stats = EdgeStats { connections: 3, forwarded: 3, last_seen_ns: e as i64, ..Default::default() };
            (entities[a].clone(), entities[b].clone(), EdgeKey { protocol: 6, port: 8080, service: None }, stats)
        })
        .collect()
}

/// Every pod read: its declared ports open, and one pod in ten with an undeclared debug port.
fn sockets(inv: &Inventory) -> exposure::Sockets {
    inv.pods
        .values()
        .enumerate()
        .map(|(i, pod)| {
            let mut open: std::collections::BTreeSet<_> = pod.declared.iter().copied().collect();
            if i % 10 == 0 {
                open.insert((bulkhead_policy::ports::Protocol::Tcp, 6060));
            }
            (pod.key(), exposure::PodSockets { read_ns: 1, open, loopback: Default::default() })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("exposure");
    g.sample_size(10);
    for (workloads, services) in [(1_000, 100), (10_000, 1_000)] {
        let inv = cluster(workloads, services);
        let edges = observed(&inv);
        let sockets = sockets(&inv);
        let mut sets = vec![("per_namespace", per_namespace())];
        if workloads <= 1_000 {
            sets.push(("least_privilege", least_privilege(workloads)));
        }
        for (name, set) in sets {
            let apps = bulkhead_graph::apps::AppObservations::default();
            let input = Input {
                inventory: &inv,
                policies: &set,
                workload_of: &workload,
                observed: &edges,
                apps: &apps,
                since_ns: 0,
                sockets: &sockets,
            };
            let r = exposure::report(&input);
            eprintln!("{name} {workloads}: {} ports, findings {:?}", r.ports.len(), r.finding_counts());
            g.bench_function(format!("{name}_{services}_services_{workloads}_workloads"), |b| {
                b.iter(|| black_box(exposure::report(&input)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
