#!/usr/bin/env bash
# Runs every benchmark and writes JSON results under bench/results/.
# Needs root. Takes about 25 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
export BULKHEAD_BIN=${BULKHEAD_BIN:-target/release/bulkhead}
cargo build --release --quiet

echo "bench: per-packet cost (BPF_PROG_TEST_RUN)" >&2
cargo bench --quiet -p bulkhead-dataplane --bench per_packet > bench/results/per_packet.json

echo "bench: Rust hot paths (criterion)" >&2
cargo bench --quiet -p bulkhead-dataplane --bench hot_paths -- --noplot > bench/results/hot_paths.txt 2>&1

echo "bench: pod-to-pod request/response and bulk (none / bulkhead / iptables / floor)" >&2
bash bench/netns.sh "${NETNS_SECONDS:-5}" 10 1000 10000 > bench/results/netns.json

echo "bench: policy compilation (criterion)" >&2
cargo bench --quiet -p bulkhead-policy --bench compile -- --noplot > bench/results/compile.txt 2>&1

echo "bench: policy propagation, apply to wire (100 and 1000 pods)" >&2
cargo run --quiet --release --example propagation -- 100 100 2>/dev/null > bench/results/propagation_100.json
cargo run --quiet --release --example propagation -- 1000 100 2>/dev/null > bench/results/propagation_1000.json

echo "bench: graph ingestion, controller ingestion, suggestion generation (criterion)" >&2
cargo bench --quiet -p bulkhead-graph --bench ingest -- --noplot > bench/results/graph_ingest.txt 2>&1
cargo bench --quiet -p bulkhead-controller --bench ingest -- --noplot > bench/results/controller_ingest.txt 2>&1
cargo bench --quiet -p bulkhead-graph --bench suggest -- --noplot > bench/results/suggest.txt 2>&1

echo "bench: end-to-end flow loss at the highest connection rate the lab reaches" >&2
cargo run --quiet --release --example flow_loss -- 10 4 32 2>/dev/null > bench/results/flow_loss.json

echo "bench: a 1 000 000-flow flood beside a normal pair, with and without the per-source event budget" >&2
cargo run --quiet --release --example flood -- 1000000 2>/dev/null > bench/results/flood.json

echo "bench: API queries at 1 000 000 stored flows, HTTPS vs gRPC" >&2
cargo run --quiet --release --example query_latency -- 1000000 30 2>/dev/null > bench/results/query_latency.json

echo "bench: quarantine through the API, call to drop on the wire (100 and 1000 pods)" >&2
cargo run --quiet --release --example quarantine_latency -- 100 40 2>/dev/null > bench/results/quarantine_100.json
cargo run --quiet --release --example quarantine_latency -- 1000 40 2>/dev/null > bench/results/quarantine_1000.json

echo "bench: what the hub adds to a quarantine and a read (100 pods)" >&2
cargo run --quiet --release --example hub_latency -- 100 20 2>/dev/null > bench/results/hub_latency.json

echo "bench: the console in headless Chromium (map at 500/5 000 and 5 000/50 000 workloads/edges, 1 000 flows/s for 60 s)" >&2
cargo build --release --quiet --example console_bench
node ui/bench/console.mjs target/release/examples/console_bench 3 60 > bench/results/console.json

echo "bench: finding pods from their addresses vs being told their namespaces (50 and 200 pods)" >&2
cargo run --quiet --release -p bulkhead-cni --example discovery_cost -- 50 5 2>/dev/null > bench/results/discovery_50.json
cargo run --quiet --release -p bulkhead-cni --example discovery_cost -- 200 5 2>/dev/null > bench/results/discovery_200.json

# Last: tearing down its 1000 namespaces keeps the kernel busy (RTNL) for minutes.
echo "bench: agent resident memory with 1000 endpoints" >&2
cargo run --quiet --release --example agent_rss 2>/dev/null > bench/results/agent_rss.json

echo "bench: done; results in bench/results/" >&2
