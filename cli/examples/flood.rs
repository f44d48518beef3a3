//! The flood benchmark, the way the problem was found: on one node, pod web
//! sends FLOWS new UDP flows to pod db on every port (64 source ports times
//! every destination port), all dropped by db's policy, while pod api keeps
//! connecting to pod cart. Run twice in one go: with the per-source event
//! budget the agent sets by default, and with that budget lifted in the
//! node's config map (no fairness: the behaviour before it). For each it
//! prints what the normal pair lost, the flood's own loss, the loss at each
//! shared stage, the scan anomalies, the web -> db edges and the
//! controller's RSS growth. Prints JSON.
//! Run: `cargo run --release --example flood -- [FLOWS]` (as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulkhead_api::controller::v1 as pb;
use bulkhead_lab::state::{LabState, PodState};
use serde_json::{Value, json};
use tonic::transport::Channel;

#[path = "support/mod.rs"]
mod support;
use support::Down;

const MANIFESTS: &str = "\
apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}\n---
apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: db}}\nspec: {containers: [{name: c, ports: [{containerPort: 5432}]}]}\n---
apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api}}\nspec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}\n---
apiVersion: v1\nkind: Pod\nmetadata: {name: cart, namespace: shop, labels: {app: cart}}\nspec: {containers: [{name: c, ports: [{containerPort: 7070}]}]}\n---
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-ingress, namespace: shop}
spec:\n  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Ingress]\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]\n";

fn pod<'a>(lab: &'a LabState, name: &str) -> &'a PodState {
    lab.pods.iter().find(|p| p.name == name).unwrap()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn status(c: &mut pb::controller_client::ControllerClient<Channel>) -> Value {
    let s = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    serde_json::to_value(bulkhead_api::v1::status::Status::try_from(s).unwrap().flows).unwrap()
}

async fn edges(c: &mut pb::controller_client::ControllerClient<Channel>, src: &str, dst: &str) -> Vec<(u16, u64)> {
    let q = pb::GraphQuery { namespace: Some("shop".into()), ..Default::default() };
    let g = bulkhead_api::v1::graph::Graph::try_from(c.graph(q).await.unwrap().into_inner()).unwrap();
    g.edges
        .iter()
        .filter(|e| e.source.ends_with(&format!("/{src}")) && e.destination.ends_with(&format!("/{dst}")))
        .map(|e| (e.port, e.connections))
        .collect()
}

fn lost(before: &Value, after: &Value, stage: &str) -> u64 {
    let n = |v: &Value| v["lost"][stage].as_u64().unwrap_or(0);
    n(after) - n(before)
}

/// One run on a fresh lab; `fair` false lifts the per-source budget.
async fn run(flows: u64, fair: bool) -> Value {
    let name = format!("flood{}", if fair { "f" } else { "u" });
    let _ = bulkhead_lab::down(&name);
    let _guard = Down(name.clone());
    let file = std::env::temp_dir().join(format!("bulkhead-{name}.yaml"));
    std::fs::write(&file, MANIFESTS).unwrap();
    let opts = bulkhead_lab::UpOptions {
        name: name.clone(),
        files: vec![file],
        cni: "bridge".into(),
        nodes: 1,
        default_mode: "enforce".into(),
        exe: support::exe(),
        learn: (3, 2),
        controller_args: vec!["--scan-window=2".into()],
        agent_args: Vec::new(),
        pod_cidr: bulkhead_lab::cidr::DEFAULT.into(),
    };
    let lab = bulkhead_lab::up(&opts).await.unwrap();
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("bulkhead-{name}.yaml")));
    if !fair {
        let pins = bulkhead_dataplane::PinLayout::for_node(&lab.nodes[0].name);
        let mut maps = bulkhead_dataplane::Maps::open(&pins).unwrap();
        let mut cfg = maps.config().unwrap();
        (cfg.events_per_source_s, cfg.events_burst) = (u32::MAX / 4, u32::MAX / 4);
        maps.set_config(cfg).unwrap();
    }
    let mut client = bulkhead_api::connect_controller(&lab.controller_socket()).await.unwrap();
    let (web, db, app, cart) = (pod(&lab, "web"), pod(&lab, "db"), pod(&lab, "api"), pod(&lab, "cart"));
    let cart_addr = SocketAddr::new(cart.ips[0], 7070);
    // Settle the baselines first, so the flood is judged against them.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let before = status(&mut client).await;
    let normal_before: u64 = edges(&mut client, "api", "cart").await.iter().map(|e| e.1).sum();
    let controller = lab.controller_pid.unwrap();
    let rss_before = rss_kib(controller);

    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let talker = {
        let (stop, made, netns) = (stop.clone(), made.clone(), bulkhead_lab::netns::path(&app.netns));
        std::thread::spawn(move || {
            bulkhead_lab::netns::enter(&netns).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if TcpStream::connect_timeout(&cart_addr, Duration::from_secs(2)).is_ok() {
                    made.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (netns, target) = (bulkhead_lab::netns::path(&web.netns), db.ips[0]);
    let started = Instant::now();
    bulkhead_lab::probe::udp_flood(&netns, target, flows).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    talker.join().unwrap();
    let made = made.load(Ordering::Relaxed);

    // Drained once the normal pair is all counted, or its count has not moved for 5 s.
    let (mut counted, mut last, mut still) = (0, u64::MAX, 0);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        counted = edges(&mut client, "api", "cart").await.iter().map(|e| e.1).sum::<u64>() - normal_before;
        still = if counted == last { still + 1 } else { 0 };
        if counted >= made || still == 5 {
            break;
        }
        last = counted;
    }
    let after = status(&mut client).await;
    let rss_after = rss_kib(controller);
    let q = pb::AnomalyQuery { kind: Some(pb::AnomalyKind::PortScan as i32), ..Default::default() };
    let scans = client.anomalies(q).await.unwrap().into_inner().items.len();
    json!({
        "flood_flows_per_s": flows as f64 / seconds,
        "normal_connections": made,
        "normal_connections_lost": made.saturating_sub(counted),
        "flood_events_over_source_budget": lost(&before, &after, "source_rate"),
        "kernel_ring_lost": lost(&before, &after, "kernel"),
        "agent_buffer_lost": lost(&before, &after, "agent_buffer"),
        "scan_anomalies": scans,
        "web_to_db_edges": edges(&mut client, "web", "db").await.len(),
        "controller_rss_growth_mib": (rss_after as f64 - rss_before as f64) / 1024.0,
    })
}

#[tokio::main]
async fn main() {
    let flows: u64 = std::env::args().nth(1).map_or(1_000_000, |a| a.parse().unwrap());
    let fair = run(flows, true).await;
    let unfair = run(flows, false).await;
    println!(
        "{}",
        json!({ "benchmark": "flood", "flood_flows": flows, "with_source_budget": fair, "without_source_budget_same_run": unfair })
    );
}
