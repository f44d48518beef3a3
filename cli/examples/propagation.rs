//! Policy propagation: the time from `bulkhead apply` of a changed policy to
//! the new verdict being observable on the wire. A lab of N pods (a server,
//! a client, and N-2 bystanders that every change recompiles with) flips the
//! server's NetworkPolicy between admitting the client on port 8000 and on
//! 8001; after each apply the client retries a TCP connect to the newly
//! allowed port (5 ms timeout, 1 ms apart) until it succeeds. Prints JSON with p50/p99/max.
//! Run: `cargo run --release --example propagation -- [PODS] [CHANGES]` (as
//! root; the lab is removed on exit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bulkhead_api::controller::v1 as pb;
use bulkhead_lab::probe;

#[path = "support/mod.rs"]
mod support;

fn manifests(pods: usize) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: srv, namespace: prop, labels: {{app: srv}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 8000}}, {{containerPort: 8001}}]}}]}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: cli, namespace: prop, labels: {{app: cli}}}}\nspec: {{containers: [{{name: c}}]}}\n---\n{}",
        policy(8000)
    );
    out.push_str(&support::bystanders("prop", pods.saturating_sub(2)));
    out
}

fn policy(port: u16) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: srv-from-cli, namespace: prop}}\nspec:\n  podSelector: {{matchLabels: {{app: srv}}}}\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: cli}}}}}}], ports: [{{port: {port}}}]}}]\n"
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pods: usize = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(100);
    let changes: usize = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(100);
    let name = format!("prop{pods}");
    let started = Instant::now();
    let (_guard, lab) = support::up(&name, &manifests(pods), pods).await;
    eprintln!("propagation: lab of {} pods up in {:.0} s", lab.pods.len(), started.elapsed().as_secs_f64());
    let mut client = bulkhead_api::connect_controller(&lab.controller_socket()).await.unwrap();
    let mut samples = Vec::new();
    let mut compile = Vec::new();
    for i in 0..changes {
        let port = if i % 2 == 0 { 8001 } else { 8000 };
        let p = probe::probe_for(&lab, "prop/cli", "prop/srv", port, false, false).unwrap();
        let t0 = Instant::now();
        let r = client
            .apply(pb::ChangeRequest { yaml: policy(port), source: "propagation".into() })
            .await
            .unwrap()
            .into_inner();
        compile.push(r.compile_micros as f64 / 1000.0);
        loop {
            let (state, probe) = (lab.clone(), p.clone());
            let ok = tokio::task::spawn_blocking(move || probe::run(&state, &[probe], Duration::from_millis(5)))
                .await
                .unwrap()
                .unwrap()[0]
                .connected;
            if ok {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "change {i} never became visible");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    compile.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "benchmark": "policy_propagation",
        "pods": lab.pods.len(),
        "changes": changes,
        "apply_to_wire_ms": {"p50": percentile(&samples, 0.5), "p99": percentile(&samples, 0.99), "max": samples[samples.len() - 1]},
        "compile_ms": {"p50": percentile(&compile, 0.5), "p99": percentile(&compile, 0.99)},
    });
    println!("{out}");
}
