//! What the in-process benchmarks share: a controller with no agents,
//! opened on a state dir filled with generated flows and edge buckets, and
//! serving its HTTPS API with the lab's kind of certificate and tokens.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulkhead_controller::observation::storage::{Commit, EdgeBucket, FlowStore, SqliteStorage};
use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord};
use bulkhead_model::{Direction, Verdict};

/// Workload `i` of a cluster spread over `namespaces` namespaces.
pub fn workload(i: usize, namespaces: usize) -> Entity {
    Entity::Workload {
        namespace: format!("ns{}", i % namespaces).into(),
        kind: "Deployment".into(),
        name: format!("w{i}").into(),
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Flow `i` from workload `src` to `dst` at `time_ns`; one in 53 dropped.
pub fn record(i: usize, src: usize, dst: usize, namespaces: usize, time_ns: i64) -> FlowRecord {
    FlowRecord {
        time_ns,
        observation: if i.is_multiple_of(2) { Direction::Egress } else { Direction::Ingress },
        node: format!("n{}", i % 4),
        src: workload(src, namespaces),
        dst: workload(dst, namespaces),
        src_ip: std::net::IpAddr::from([10, (src >> 16) as u8, (src >> 8) as u8, src as u8]),
        src_port: 30_000 + (i % 30_000) as u16,
        dst_ip: std::net::IpAddr::from([10, (dst >> 16) as u8, (dst >> 8) as u8, dst as u8]),
        dst_port: 8000 + (dst % 10) as u16,
        protocol: 6,
        service: None,
        verdict: if i.is_multiple_of(53) { Verdict::Dropped } else { Verdict::Forwarded },
        bytes: 1200,
        src_pod: format!("ns{}/w{src}-0", src % namespaces),
        dst_pod: format!("ns{}/w{dst}-0", dst % namespaces),
        backend: None,
        rule: None,
        drop_reason: None,
        packets: 10,
    }
}

/// Stores `flows` (in batches, with progress on stderr) and the one-minute
/// edge buckets of their ingress observations.
pub fn store(dir: &Path, capacity: u64, flows: impl Iterator<Item = FlowRecord>) -> usize {
    let mut store = SqliteStorage::open(&dir.join("flows.db"), capacity).unwrap();
    let mut buckets: BTreeMap<(i64, Entity, Entity, u16), EdgeStats> = BTreeMap::new();
    let mut flows = flows.peekable();
    let mut stored = 0;
    while flows.peek().is_some() {
        let recs: Vec<FlowRecord> = flows.by_ref().take(50_000).collect();
        for r in recs.iter().filter(|r| r.observation == Direction::Ingress) {
            let b = r.time_ns - r.time_ns.rem_euclid(60_000_000_000);
            buckets.entry((b, r.src.clone(), r.dst.clone(), r.dst_port)).or_default().add(r);
        }
        stored += recs.len();
        store.commit(&Commit { flows: recs, ..Default::default() }).unwrap();
        eprintln!("bench: {stored} flows stored");
    }
    let edges: Vec<EdgeBucket> = buckets
        .into_iter()
        .map(|((bucket_ns, src, dst, port), stats)| EdgeBucket {
            bucket_ns,
            src,
            dst,
            key: EdgeKey { protocol: 6, port, service: None },
            stats,
        })
        .collect();
    store.commit(&Commit { edges, ..Default::default() }).unwrap();
    stored
}

/// Removes the benchmark's state dir, also when a step panics.
pub struct Clean(pub PathBuf);

impl Drop for Clean {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh state dir for this process, removed on drop.
pub fn state_dir(name: &str) -> Clean {
    let dir = std::env::temp_dir().join(format!("bulkhead-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Clean(dir)
}

/// A controller serving HTTPS on the stored state.
pub struct Served {
    pub url: String,
    pub token: String,
    pub ca_file: PathBuf,
    pub service: bulkhead_controller::service::Service,
    /// How long opening the stored state took.
    pub opened: Duration,
}

/// Opens a controller on `dir` and serves its HTTPS API (and the console's
/// files from `console`, if given) on a free loopback port.
pub async fn serve(dir: &Path, max_flows: u64, console: Option<PathBuf>) -> Served {
    let api_files = bulkhead_lab::api::prepare(dir).unwrap();
    let token = std::fs::read_to_string(&api_files.tokens.admin).unwrap().trim().to_string();
    let api = bulkhead_controller::http::ApiConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: Some((api_files.cert_file.clone(), api_files.key_file.clone())),
        plaintext: false,
        addr_file: Some(dir.join("url")),
        tokens: Some(api_files.tokens_file.clone()),
        console,
    };
    let cfg = bulkhead_controller::Config {
        cluster: "bench".into(),
        state_dir: dir.to_path_buf(),
        socket: dir.join("controller.sock"),
        mode: bulkhead_model::Mode::Enforce,
        agents: Default::default(),
        agent_listen: None,
        ha: None,
        manifests: vec![],
        kubernetes: false,
        metrics_addr: None,
        max_flows,
        learning: Default::default(),
        response: Default::default(),
        api: Some(api.clone()),
    };
    let listener = bulkhead_controller::http::bind(&api).unwrap();
    let started = std::time::Instant::now();
    let (ctx, _rx) = bulkhead_controller::run::open(cfg).unwrap();
    let opened = started.elapsed();
    let service = bulkhead_controller::service::Service::new(ctx);
    tokio::spawn(bulkhead_controller::http::serve(api, listener, service.clone(), std::future::pending()));
    let url = loop {
        if let Ok(u) = std::fs::read_to_string(dir.join("url")) {
            break u.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Served { url, token, ca_file: api_files.ca_file, service, opened }
}
