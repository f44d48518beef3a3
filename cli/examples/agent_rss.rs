//! Agent resident memory with 1 000 endpoints, against the same agent with
//! none, in one run. Creates a node namespace with 1 000 pod namespaces wired
//! by veth pairs, starts a real agent there, pushes 1 000 endpoints with 10
//! policy entries each, and reads VmRSS. Prints JSON. Cleans up on exit.
//! Run: `cargo run --release --example agent_rss` (as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_api::agent::v1 as pb;

const PODS: u32 = 1000;

struct Cleanup {
    prefix: String,
    node: String,
    agent: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(a) = &mut self.agent {
            let _ = a.kill();
            let _ = a.wait();
        }
        let mut batch = String::new();
        for name in bulkhead_lab::netns::list(&self.prefix) {
            batch.push_str(&format!("netns del {name}\n"));
        }
        ip_batch(&batch);
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/bulkhead/{}", self.node));
        let _ = std::fs::remove_dir_all(format!("/run/bulkhead/{}", self.node));
    }
}

fn ip_batch(cmds: &str) {
    let mut child = Command::new("ip").args(["-force", "-batch", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(cmds.as_bytes()).unwrap();
    let _ = child.wait();
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tag = format!("bhrss{}", std::process::id());
    let node = format!("{tag}_node");
    let mut guard = Cleanup { prefix: format!("{tag}_"), node: node.clone(), agent: None };
    let started = Instant::now();
    let mut batch = format!("netns add {node}\n");
    for i in 0..PODS {
        batch.push_str(&format!("netns add {tag}_p{i}\n"));
    }
    ip_batch(&batch);
    let mut batch = String::new();
    for i in 0..PODS {
        batch.push_str(&format!("link add h{i} netns {node} type veth peer name eth0 netns {tag}_p{i}\n"));
    }
    ip_batch(&batch);
    eprintln!("agent_rss: {PODS} pods wired in {:?}", started.elapsed());

    let bin = std::env::var("BULKHEAD_BIN").unwrap_or_else(|_| "target/release/bulkhead".into());
    let socket = format!("/run/bulkhead/{node}/agent.sock");
    let agent = Command::new(&bin)
        .args(["agent", "--node", &node, "--netns", &format!("/var/run/netns/{node}"), "--socket", &socket])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start the agent (build with cargo build --release)");
    let pid = agent.id();
    guard.agent = Some(agent);
    let mut client = loop {
        if let Ok(c) = bulkhead_api::connect_unix(std::path::Path::new(&socket)).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid);

    let mut state = pb::DesiredState { generation: 1, ..Default::default() };
    for i in 0..PODS {
        let ip = format!("10.200.{}.{}", i / 250, i % 250 + 1);
        let identity = 256 + i % 100;
        state.identities.retain(|x: &pb::Identity| x.id != identity);
        state.identities.push(pb::Identity {
            id: identity,
            namespace: "ns".into(),
            labels: [("app".to_string(), format!("a{}", i % 100))].into(),
            ..Default::default()
        });
        state.ipcache.push(pb::IpcacheEntry {
            cidr: format!("{ip}/32"),
            identity,
            namespace: "ns".into(),
            pod: format!("p{i}"),
        });
        state.endpoints.push(pb::Endpoint {
            endpoint_id: i + 1,
            identity,
            namespace: "ns".into(),
            pod: format!("p{i}"),
            netns: format!("/var/run/netns/{tag}_p{i}"),
            ips: vec![ip],
            ingress_mode: pb::Mode::Enforce as i32,
            egress_mode: pb::Mode::Enforce as i32,
            ingress_isolated: true,
            egress_isolated: false,
            pod_ifname: "eth0".into(),
        });
        for r in 0..10u32 {
            state.policy.push(pb::PolicyEntry {
                endpoint_id: i + 1,
                remote_identity: 256 + (i + r) % 100,
                direction: bulkhead_api::flow::v1::Direction::Ingress as i32,
                protocol: 6,
                port: 8000 + r,
                action: pb::Action::Allow as i32,
                rule_id: r + 1,
                ..Default::default()
            });
        }
    }
    let t = Instant::now();
    let r = client.apply_state(state.clone()).await.expect("apply").into_inner();
    let apply = t.elapsed();
    state.generation = 2;
    let t = Instant::now();
    client.apply_state(state).await.expect("re-apply");
    let reapply = t.elapsed();
    assert_eq!(r.endpoints_attached, PODS, "problems: {:?}", r.problems.iter().take(3).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded = rss_kib(pid);
    let out = serde_json::json!({
        "benchmark": "agent_rss",
        "endpoints": PODS,
        "policy_entries": PODS * 10,
        "idle_rss_kib": idle.0,
        "loaded_rss_kib": loaded.0,
        "loaded_peak_rss_kib": loaded.1,
        "per_endpoint_kib": (loaded.0.saturating_sub(idle.0)) as f64 / f64::from(PODS),
        "apply_seconds": apply.as_secs_f64(),
        "reapply_unchanged_seconds": reapply.as_secs_f64(),
        "map_writes": r.map_writes,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
