//! Suggestion generation: learned baselines of 1 000 and 10 000 workloads
//! with ten times as many edges (plus DNS for each and some external
//! peers) into one NetworkPolicy per workload.
//! `cargo bench -p bulkhead-graph --bench suggest`; the target is
//! under one second at 10 000 workloads.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bulkhead_graph::baseline::{Learner, LearningConfig};
use bulkhead_graph::suggest::{self, WorkloadInfo};
use bulkhead_graph::{EdgeKey, Entity, FlowRecord};
use bulkhead_model::{Direction, Verdict};
use criterion::{Criterion, criterion_group, criterion_main};

fn workload(i: usize) -> Entity {
    Entity::Workload {
        namespace: format!("ns{}", i % 50).into(),
        kind: "Deployment".into(),
        name: format!("w{i}").into(),
    }
}

fn learned(n: usize) -> (Learner, suggest::Inventory) {
    let mut learner =
        Learner::new(LearningConfig { window_ns: 1, quiet_ns: 1, evidence_per_anomaly: 1, ..Default::default() });
    let entities: Vec<Entity> = (0..n).map(workload).collect();
    let ports = [80u16, 443, 5432, 6379, 8080, 9090];
    let mut r = FlowRecord {
        time_ns: 0,
        observation: Direction::Ingress,
        node: "n1".into(),
        src: entities[0].clone(),
        dst: entities[0].clone(),
        src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        src_port: 1,
        dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        dst_port: 80,
        protocol: 6,
        service: None,
        verdict: Verdict::Forwarded,
        bytes: 0,
        src_pod: String::new(),
        dst_pod: String::new(),
        backend: None,
        rule: None,
        drop_reason: None,
        packets: 0,
    };
    for e in 0..n * 10 {
        let a = e % n;
        let b = (a * 31 + e / n * 7 + 1) % n;
        r.src = entities[a].clone();
        r.dst = entities[b].clone();
        r.time_ns = e as i64;
        let port = ports[e % ports.len()];
        learner.observe(&r, &EdgeKey { protocol: 6, port, service: None });
    }
    for (a, src) in entities.iter().enumerate() {
        r.src = src.clone();
        r.dst = entities[0].clone();
        learner.observe(&r, &EdgeKey { protocol: 17, port: 53, service: None });
        if a % 10 == 0 {
            r.dst = Entity::World { cidr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, (a % 200) as u8)).into() };
            learner.observe(&r, &EdgeKey { protocol: 6, port: 443, service: None });
        }
    }
    learner.tick(i64::MAX / 2);
    let inventory = suggest::Inventory {
        workloads: entities
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    e.clone(),
                    WorkloadInfo {
                        selector: BTreeMap::from([("app".into(), format!("w{i}"))]),
                        present_since_ns: None,
                    },
                )
            })
            .collect(),
        nodes: BTreeMap::new(),
        now_ns: 0,
    };
    (learner, inventory)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("suggest");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        let (learner, inventory) = learned(n);
        eprintln!("{n} workloads, {} learned edges", learner.edges().len());
        g.bench_function(format!("{n}_workloads"), |b| {
            // Freeing the output is the caller's business, not generation.
            b.iter_with_large_drop(|| black_box(suggest::suggest(&learner, &inventory, None)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
