//! Graph ingestion: decoded flow records into the service graph, per record.
//! 1 000 workloads, 10 000 edges, every connection observed at both ends
//! (so half the records are recognised as duplicates), plus periodic flushes.
//! `cargo bench -p bulkhead-graph --bench ingest`; the target is at
//! least 1 million records per second per core.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bulkhead_graph::{Entity, FlowRecord, Pairing, ServiceGraph};
use bulkhead_model::{Direction, Verdict};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn records(n: usize) -> Vec<FlowRecord> {
    let workloads: Vec<Entity> = (0..1000)
        .map(|i| Entity::Workload {
            namespace: format!("ns{}", i % 10).into(),
            kind: "Deployment".into(),
            name: format!("w{i}").into(),
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for c in 0..n / 2 {
        let a = c % 1000;
        let b = (a * 7 + (c / 1000) % 10 + 1) % 1000;
        let src_ip = IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + a as u32));
        let r = FlowRecord {
            time_ns: c as i64 * 1_000,
            observation: Direction::Egress,
            node: "n1".into(),
            src: workloads[a].clone(),
            dst: workloads[b].clone(),
            src_ip,
            src_port: (c % 60_000) as u16 + 1024,
            dst_ip: IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + b as u32)),
            dst_port: 8080,
            protocol: 6,
            service: None,
            verdict: Verdict::Forwarded,
            bytes: 1500,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
            rule: None,
            drop_reason: None,
            packets: 0,
        };
        out.push(r.clone());
        out.push(FlowRecord { observation: Direction::Ingress, node: "n2".into(), ..r });
    }
    out
}

fn bench(c: &mut Criterion) {
    let recs = records(200_000);
    let mut g = c.benchmark_group("graph");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.sample_size(10);
    g.bench_function("ingest/200k-records-1000-workloads", |b| {
        b.iter(|| {
            let (mut pairing, mut graph) = (Pairing::default(), ServiceGraph::default());
            for (i, r) in recs.iter().enumerate() {
                if let Some((c, k)) = pairing.observe(black_box(r)) {
                    graph.add(&c, &k);
                }
                if i % 50_000 == 0 {
                    for (c, k) in pairing.flush(r.time_ns) {
                        graph.add(&c, &k);
                    }
                }
            }
            black_box((pairing.stats(), graph))
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
