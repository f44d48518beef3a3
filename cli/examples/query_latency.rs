//! Graph, flow and trail queries at a million stored flows, over HTTPS and over
//! gRPC, in one run: p50/p99 of each query on each transport. A controller
//! (no agents) is opened on a state dir filled with generated flows and edge
//! buckets (200 workloads in 10 namespaces over the last hour), and serves
//! both transports in-process.
//!
//! `cargo run --release --example query_latency -- [FLOWS] [ROUNDS]` (default 1 000 000 and 50); JSON on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/synthetic.rs"]
mod synthetic;

use std::sync::Arc;
use std::time::Instant;

use bulkhead_api::controller::v1 as pb;

const NAMESPACES: usize = 10;
const WORKLOADS: usize = 200;

/// A million flows over the last hour, between 200 workloads.
fn fill(dir: &std::path::Path, flows: usize) {
    let now = synthetic::now_ns();
    let records = (0..flows).map(|i| {
        let t = now - 3_600_000_000_000 + (i as i64 * 3_600_000_000_000 / 1_000_000).min(3_599_000_000_000);
        synthetic::record(i, i % WORKLOADS, (i * 7 + 3) % WORKLOADS, NAMESPACES, t)
    });
    synthetic::store(dir, flows as u64 + 1, records);
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flows: usize = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(1_000_000);
    let rounds: usize = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(50);
    let clean = synthetic::state_dir("query-latency");
    let dir = clean.0.clone();
    let started = Instant::now();
    fill(&dir, flows);
    let filled = started.elapsed();
    let served = synthetic::serve(&dir, flows as u64 + 1, None).await;
    let (url, token, open_took) = (served.url.clone(), served.token.clone(), served.opened);
    let service = served.service.clone();
    let socket = dir.join("controller.sock");
    let uds = bulkhead_api::listen::root_only_listener(&socket).unwrap();
    let grpc = bulkhead_controller::grpc::Grpc::new(service);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                pb::controller_server::ControllerServer::new(grpc)
                    .max_encoding_message_size(64 << 20)
                    .max_decoding_message_size(64 << 20),
            )
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(uds)),
    );
    let ca = std::fs::read(&served.ca_file).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let mut grpc = bulkhead_api::connect_controller(&socket).await.unwrap();

    type Grpc = pb::controller_client::ControllerClient<tonic::transport::Channel>;
    type Call = Arc<dyn Fn(Grpc) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>> + Send + Sync>;
    let queries: Vec<(&str, String, Call)> = vec![
        (
            "flows newest 100",
            "/api/v1/flows?limit=100".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    c.flows(pb::FlowQuery { limit: Some(100), ..Default::default() })
                        .await
                        .unwrap()
                        .into_inner()
                        .items
                        .len()
                })
            }),
        ),
        (
            "flows of a namespace, 100",
            "/api/v1/flows?namespace=ns3&limit=100".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    c.flows(pb::FlowQuery { namespace: Some("ns3".into()), limit: Some(100), ..Default::default() })
                        .await
                        .unwrap()
                        .into_inner()
                        .items
                        .len()
                })
            }),
        ),
        (
            "flows of a pod, dropped, 100",
            "/api/v1/flows?pod=ns7/w17-0&verdict=dropped&limit=100".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    let q = pb::FlowQuery {
                        pod: Some("ns7/w17-0".into()),
                        verdict: Some(bulkhead_api::flow::v1::Verdict::Dropped as i32),
                        limit: Some(100),
                        ..Default::default()
                    };
                    c.flows(q).await.unwrap().into_inner().items.len()
                })
            }),
        ),
        (
            // The incident query: every connection of one pod both ways over
            // the hour (10 000 flows here), the second hop, quarantines, audit.
            "trail of a pod, last hour",
            "/api/v1/trail?pod=ns7/w17-0&since=1h".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    let q = pb::TrailQuery { pod: "ns7/w17-0".into(), since: Some("1h".into()), until: None };
                    let t = c.trail(q).await.unwrap().into_inner();
                    assert!(!t.connections.is_empty() && !t.second_hop.is_empty(), "the trail found its flows");
                    t.connections.len() + t.second_hop.len()
                })
            }),
        ),
        (
            "graph, workloads, all time",
            "/api/v1/graph".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move { c.graph(pb::GraphQuery::default()).await.unwrap().into_inner().edges.len() })
            }),
        ),
        (
            "graph, workloads, last 15 min",
            "/api/v1/graph?since=15m".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    c.graph(pb::GraphQuery { since: Some("15m".into()), ..Default::default() })
                        .await
                        .unwrap()
                        .into_inner()
                        .edges
                        .len()
                })
            }),
        ),
        (
            "graph, namespaces",
            "/api/v1/graph?level=namespace".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    let q = pb::GraphQuery { level: Some(pb::Level::Namespace as i32), ..Default::default() };
                    c.graph(q).await.unwrap().into_inner().edges.len()
                })
            }),
        ),
        (
            "graph, pods, last 5 min",
            "/api/v1/graph?level=pod&since=5m".into(),
            Arc::new(|mut c: Grpc| {
                Box::pin(async move {
                    let q = pb::GraphQuery {
                        level: Some(pb::Level::Pod as i32),
                        since: Some("5m".into()),
                        ..Default::default()
                    };
                    c.graph(q).await.unwrap().into_inner().edges.len()
                })
            }),
        ),
    ];
    let mut results = Vec::new();
    for (name, path, call) in &queries {
        let (mut over_http, mut over_grpc) = (Vec::new(), Vec::new());
        let mut sizes = (0usize, 0usize);
        for _ in 0..rounds {
            // Interleaved, so both transports see the same machine.
            let t = Instant::now();
            let r = http.get(format!("{url}{path}")).bearer_auth(&token).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            let body = r.bytes().await.unwrap();
            over_http.push(t.elapsed().as_secs_f64() * 1000.0);
            sizes.0 = body.len();
            let t = Instant::now();
            sizes.1 = call(grpc.clone()).await;
            over_grpc.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (hp50, hp99) = quantiles(over_http);
        let (gp50, gp99) = quantiles(over_grpc);
        eprintln!(
            "query_latency: {name}: HTTPS p50 {hp50:.1} ms p99 {hp99:.1} ms; gRPC p50 {gp50:.1} ms p99 {gp99:.1} ms"
        );
        results.push(serde_json::json!({
            "query": name, "path": path, "https_bytes": sizes.0, "items": sizes.1,
            "https_ms": {"p50": hp50, "p99": hp99}, "grpc_ms": {"p50": gp50, "p99": gp99},
            "https_over_grpc_p50": hp50 / gp50,
        }));
    }
    let _ = grpc.status(pb::StatusRequest {}).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "stored_flows": flows, "rounds": rounds, "fill_seconds": filled.as_secs_f64(),
            "controller_open_seconds": open_took.as_secs_f64(), "queries": results,
        }))
        .unwrap()
    );
}
