//! Criterion benchmarks of the Rust hot paths: building the kernel policy
//! table, planning a gap-free transition, and decoding flow events.
//! Run: `cargo bench -p bulkhead-dataplane --bench hot_paths`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulkhead_dataplane::abi::bh_flow_event;
use bulkhead_dataplane::flow::{Clock, FlowEvent};
use bulkhead_dataplane::model::{Action, Direction, Mode};
use bulkhead_dataplane::table::{PolicyEntry, PolicyTable};
use bulkhead_dataplane::transition::{self, KernelState};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn entries(n: u32, salt: u32) -> Vec<PolicyEntry> {
    (0..n)
        .map(|i| PolicyEntry {
            endpoint_id: 1 + i % 100,
            identity: 256 + (i / 100) % 1000,
            direction: if i % 2 == 0 { Direction::Ingress } else { Direction::Egress },
            protocol: 6,
            port: 1 + ((i + salt) % 60000) as u16,
            end_port: 0,
            action: if i % 10 == 0 { Action::Deny } else { Action::Allow },
            rule_id: i + 1,
        })
        .collect()
}

fn table(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy_table_build");
    for n in [1_000u32, 10_000, 100_000] {
        let e = entries(n, 0);
        g.bench_with_input(BenchmarkId::from_parameter(n), &e, |b, e| b.iter(|| PolicyTable::build(e).unwrap()));
    }
    g.finish();
    let mut g = c.benchmark_group("transition_plan");
    for n in [1_000u32, 10_000] {
        let old = KernelState { table: PolicyTable::build(&entries(n, 0)).unwrap(), ..Default::default() };
        let new = KernelState { table: PolicyTable::build(&entries(n, 7)).unwrap(), ..Default::default() };
        g.bench_with_input(BenchmarkId::from_parameter(n), &(old, new), |b, (o, n)| {
            b.iter(|| transition::plan(o, n).unwrap())
        });
    }
    g.finish();
    let _ = Mode::Enforce;
}

fn decode(c: &mut Criterion) {
    let ev =
        bh_flow_event { type_: 1, verdict: 1, direction: 1, protocol: 6, family: 4, reason: 100, ..Default::default() };
    let mut raw = [0u8; 112];
    let mut copy = ev;
    raw.copy_from_slice(bulkhead_dataplane::abi::as_bytes_mut(&mut copy));
    let clock = Clock::new();
    c.bench_function("flow_event_decode", |b| b.iter(|| FlowEvent::decode(&raw, &clock).unwrap()));
}

criterion_group!(benches, table, decode);
criterion_main!(benches);
