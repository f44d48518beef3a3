//! End-to-end flow loss: client pods open new TCP connections to a server
//! pod on the other node as fast as this machine allows, for a few seconds;
//! then every stage's loss counter (kernel ring, agent buffer, undecodable,
//! storage) is read from the controller, and the connections the service
//! graph counted between the two workloads are compared with the
//! connections the clients completed. Both ends of every connection are
//! observed (four kernel events each: new and close at both nodes).
//! Prints JSON. Run: `cargo run --release --example flow_loss -- [SECONDS]
//! [CLIENT_PODS] [CONCURRENCY_PER_POD]` (as root; the lab is removed on exit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulkhead_api::controller::v1 as pb;

#[path = "support/mod.rs"]
mod support;
use support::Down;

fn manifests(clients: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: srv, namespace: load, labels: {{app: srv}}}}\nstatus: {{podIP: 10.244.1.200}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 8000}}]}}]}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: cli, namespace: load}}\nspec:\n  replicas: {clients}\n  template:\n    metadata: {{labels: {{app: cli}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
    )
}

async fn status(c: &mut pb::controller_client::ControllerClient<tonic::transport::Channel>) -> serde_json::Value {
    let s = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    let s = bulkhead_api::v1::status::Status::try_from(s).unwrap();
    serde_json::to_value(&s.flows).unwrap()
}

async fn graph_connections(c: &mut pb::controller_client::ControllerClient<tonic::transport::Channel>) -> u64 {
    let q = pb::GraphQuery { namespace: Some("load".into()), ..Default::default() };
    let g = bulkhead_api::v1::graph::Graph::try_from(c.graph(q).await.unwrap().into_inner()).unwrap();
    g.edges
        .iter()
        .filter(|e| e.source.ends_with("/cli") && e.destination.ends_with("/srv") && e.port == 8000)
        .map(|e| e.connections)
        .sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(10);
    let clients: usize = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(4);
    let concurrency: usize = args.get(3).map(|a| a.parse().unwrap()).unwrap_or(32);
    let name = "flowloss".to_string();
    let exe = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("bulkhead");
    assert!(exe.exists(), "build the binary first: cargo build --release ({})", exe.display());
    let _ = bulkhead_lab::down(&name);
    let _guard = Down(name.clone());
    let file = std::env::temp_dir().join(format!("bulkhead-{name}.yaml"));
    std::fs::write(&file, manifests(clients)).unwrap();
    let opts = bulkhead_lab::UpOptions {
        name: name.clone(),
        files: vec![file],
        cni: "bridge".into(),
        nodes: 2,
        default_mode: "enforce".into(),
        pod_cidr: bulkhead_lab::cidr::DEFAULT.into(),
        exe,
        learn: (0, 0),
        controller_args: Vec::new(),
        agent_args: Vec::new(),
    };
    let lab = bulkhead_lab::up(&opts).await.unwrap();
    let srv = lab.pods.iter().find(|p| p.name == "srv").unwrap();
    let target = SocketAddr::new(srv.ips[0], 8000);
    let mut client = bulkhead_api::connect_controller(&lab.controller_socket()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = status(&mut client).await;
    let graph_before = graph_connections(&mut client).await;

    // Clients: one thread per pod inside its namespace, `concurrency` loops each.
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut threads = Vec::new();
    for pod in lab.pods.iter().filter(|p| p.name.starts_with("cli")) {
        let netns = bulkhead_lab::netns::path(&pod.netns);
        // Reuse TIME_WAIT ports: the clients close first, many times a second.
        let _ = std::process::Command::new("ip")
            .args(["netns", "exec", &pod.netns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "exec", &pod.netns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"])
            .status();
        let (done, failed) = (done.clone(), failed.clone());
        threads.push(std::thread::spawn(move || {
            let rt = bulkhead_lab::netns::runtime_in(&netns).unwrap();
            rt.block_on(async move {
                let mut loops = Vec::new();
                for _ in 0..concurrency {
                    let (done, failed) = (done.clone(), failed.clone());
                    loops.push(tokio::spawn(async move {
                        while Instant::now() < deadline {
                            match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(target))
                                .await
                            {
                                Ok(Ok(s)) => {
                                    drop(s);
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }));
                }
                for l in loops {
                    let _ = l.await;
                }
            });
        }));
    }
    let started = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let generated = done.load(Ordering::Relaxed);

    // Let the pipeline drain (pairing delay plus a tick), until the count settles.
    let mut counted = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = graph_connections(&mut client).await - graph_before;
        if now == counted && now >= generated {
            break;
        }
        counted = now;
    }
    let counted = graph_connections(&mut client).await - graph_before;
    let after = status(&mut client).await;
    let lost_stage = |v: &serde_json::Value| -> serde_json::Map<String, serde_json::Value> {
        v["lost"].as_object().cloned().unwrap_or_default()
    };
    let mut lost = serde_json::Map::new();
    let (b, a) = (lost_stage(&before), lost_stage(&after));
    for (k, v) in &a {
        let delta = v.as_u64().unwrap() - b.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        lost.insert(k.clone(), delta.into());
    }
    let records = after["records"].as_u64().unwrap() - before["records"].as_u64().unwrap();
    let out = serde_json::json!({
        "benchmark": "flow_loss_end_to_end",
        "client_pods": clients,
        "concurrency_per_pod": concurrency,
        "seconds": elapsed,
        "connections_completed": generated,
        "connections_failed": failed.load(Ordering::Relaxed),
        "new_connections_per_s": generated as f64 / elapsed,
        "connection_records_received": records,
        "graph_connections_counted": counted,
        "missing_from_graph": generated.saturating_sub(counted),
        "lost_by_stage": lost,
    });
    println!("{out}");
}
