//! Controller flow ingestion: decoded wire flows (as agents send them) into
//! the service graph and the learner (enrichment with the inventory at flow
//! time, both-ends pairing, baselines), and the batched store commit
//! (raw flows, edge buckets, cursors in one SQLite transaction). The first
//! figure uses a store that keeps nothing (aggregation alone), the second
//! the SQLite store.
//! 1 000 pods in 100 workloads, 2 000 service-less edges, every connection
//! observed at both ends. Reported per record, one core.
//! `cargo bench -p bulkhead-controller --bench ingest`; the target is
//! at least 1 million records per second per core for aggregation.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bulkhead_api::agent::v1 as pb;
use bulkhead_controller::observation::flows::Pipeline;
use bulkhead_controller::observation::storage::{
    Appended, Commit, Cursor, Document, EdgeBucket, FlowFilter, FlowStore, PodEdge, SqliteStorage, StorageError, Table,
};
use bulkhead_controller::policy::store::Store;
use bulkhead_graph::FlowRecord;
use bulkhead_graph::baseline::LearningConfig;
use bulkhead_policy::objects::parse_documents;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const PODS: usize = 1000;

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256)
}

fn model() -> bulkhead_controller::policy::store::Model {
    let mut yaml = String::new();
    for i in 0..PODS {
        let w = i % 100;
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: ns{}\n  labels: {{app: w{w}, pod-template-hash: h{w}}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: w{w}-h{w}, uid: u{w}, controller: true}}]\nspec: {{nodeName: n1, containers: [{{name: c}}]}}\nstatus: {{podIPs: [{{ip: {}}}]}}\n",
            w % 10,
            ip(i)
        ));
    }
    Store::default().applied(parse_documents("bench", &yaml).unwrap()).0.model("c").unwrap()
}

/// `n` wire flows: n/2 connections, each seen at egress then ingress.
fn batch(n: usize, start_ns: i64) -> pb::FlowBatch {
    let mut flows = Vec::with_capacity(n);
    for c in 0..n / 2 {
        let a = c % PODS;
        let b = (a * 7 + (c / PODS) % 2 + 1) % PODS;
        let f = pb::Flow {
            time_unix_nanos: start_ns + c as i64 * 1000,
            node: "n1".into(),
            event: bulkhead_api::flow::v1::EventType::New.into(),
            src_ip: ip(a),
            src_port: (1024 + c % 60_000) as u32,
            dst_ip: ip(b),
            dst_port: 8080,
            protocol: "TCP".into(),
            direction: bulkhead_api::flow::v1::Direction::Egress.into(),
            verdict: bulkhead_api::flow::v1::Verdict::Forwarded.into(),
            ..Default::default()
        };
        flows.push(pb::Flow { direction: bulkhead_api::flow::v1::Direction::Ingress.into(), ..f.clone() });
        flows.push(f);
    }
    pb::FlowBatch { flows, epoch: 1, last_seq: n as u64, ..Default::default() }
}

/// A store that keeps nothing: aggregation measured without the disk.
struct Discard;

impl FlowStore for Discard {
    fn commit(&mut self, c: &Commit) -> Result<Appended, StorageError> {
        black_box(c);
        Ok(Appended { stored: c.flows.len() as u64, evicted: 0 })
    }
    fn query(&self, _: &FlowFilter, _: Option<u64>, _: usize) -> Result<Vec<(u64, FlowRecord)>, StorageError> {
        Ok(Vec::new())
    }
    fn pod_edges(&self, _: &FlowFilter) -> Result<Vec<PodEdge>, StorageError> {
        Ok(Vec::new())
    }
    fn edges(&self, _: i64, _: i64) -> Result<Vec<EdgeBucket>, StorageError> {
        Ok(Vec::new())
    }
    fn evicted(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
    fn cursors(&self) -> Result<Vec<Cursor>, StorageError> {
        Ok(Vec::new())
    }
    fn learner(&self) -> Result<Option<String>, StorageError> {
        Ok(None)
    }
    fn lost(&self) -> Result<Vec<(String, u64)>, StorageError> {
        Ok(Vec::new())
    }
    fn put_document(&mut self, _: Table, _: &Document) -> Result<u64, StorageError> {
        Ok(0)
    }
    fn documents(&self, _: Table, _: Option<&str>) -> Result<Vec<Document>, StorageError> {
        Ok(Vec::new())
    }
    fn document(&self, _: Table, _: u64) -> Result<Option<Document>, StorageError> {
        Ok(None)
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("bulkhead-bench-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = model();
    let open = |name: &str| {
        let store = SqliteStorage::open(&dir.join(name), 2_000_000).unwrap();
        let mut p = Pipeline::open(Box::new(store), LearningConfig::default()).unwrap();
        p.update_inventory(&model);
        p
    };
    const N: usize = 20_000;
    let mut g = c.benchmark_group("controller_ingest");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    let mut p = Pipeline::open(Box::new(Discard), LearningConfig::default()).unwrap();
    p.update_inventory(&model);
    let mut t = 0i64;
    g.bench_function("aggregate_20k_records", |b| {
        b.iter_batched(
            || {
                t += 1_000_000_000_000;
                (batch(N, t), t + 1)
            },
            |(batch, now)| {
                p.ingest("n1", black_box(batch));
                p.tick(now);
            },
            BatchSize::LargeInput,
        )
    });
    // The periodic commit of what aggregation produced, per record.
    let mut p = open("commit.db");
    let mut t = 0i64;
    g.bench_function("aggregate_and_commit_20k_records", |b| {
        b.iter_batched(
            || {
                t += 1_000_000_000_000;
                (batch(N, t), t + 1)
            },
            |(batch, now)| {
                p.ingest("n1", batch);
                p.tick(now);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
