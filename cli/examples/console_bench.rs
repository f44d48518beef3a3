//! The controller side of the console benchmark (`bench/console.sh`): a
//! controller with no agents on a synthetic store of W workloads in W/100
//! namespaces with E edges between them (mostly within a namespace, one in
//! ten across), serving the real HTTPS API and the built console. It prints
//! one JSON line (`url`, `token`) once it serves, then obeys stdin:
//! `stream RATE SECONDS` publishes RATE flows a second into the live flow
//! stream for SECONDS and answers `{"streamed": N}`; end of input stops it.
//!
//! `cargo run --release --example console_bench -- W E`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/synthetic.rs"]
mod synthetic;

use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

/// Edge `j`'s ends: every workload calls ten others, of its namespace
/// (`k` namespaces-widths away) or, one call in ten, of the next namespace.
fn ends(j: usize, workloads: usize, namespaces: usize) -> (usize, usize) {
    let src = j % workloads;
    let k = j / workloads + 1;
    let cross = usize::from(j.is_multiple_of(10));
    (src, (src + k * namespaces + cross) % workloads)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workloads: usize = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(5000);
    let edges: usize = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(50_000);
    assert!(edges <= workloads * 10, "at most ten edges per workload");
    let namespaces = (workloads / 100).max(1);
    let clean = synthetic::state_dir("console-bench");
    let now = synthetic::now_ns();
    // Two observations (both ends) of each edge, ten minutes ago.
    let records = (0..edges * 2).map(|i| {
        let (s, d) = ends(i / 2, workloads, namespaces);
        let mut r = synthetic::record(i, s, d, namespaces, now - 600_000_000_000);
        r.dst_port = 8000 + (i / 2 / workloads) as u16;
        r
    });
    synthetic::store(&clean.0, (edges * 4) as u64, records);
    let console = bulkhead_controller::http::console::default_dir().expect("build the console first: make console");
    let served = synthetic::serve(&clean.0, (edges * 4) as u64, Some(console)).await;
    println!(
        "{}",
        serde_json::json!({"url": served.url, "token": served.token, "workloads": workloads, "edges": edges, "namespaces": namespaces})
    );

    let ring = served.service.context().with_observation(|p| Ok(p.stream())).await.unwrap();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["stream", rate, seconds] = words[..] else {
            eprintln!("console_bench: expected `stream RATE SECONDS`, got {line:?}");
            continue;
        };
        let (rate, seconds): (usize, u64) = (rate.parse().unwrap(), seconds.parse().unwrap());
        // In 10 ms ticks, catching up if a tick was late, so the rate holds on average.
        let started = Instant::now();
        let end = started + Duration::from_secs(seconds);
        let mut sent = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while Instant::now() < end {
            tick.tick().await;
            let due = (started.elapsed().as_secs_f64() * rate as f64) as usize;
            let batch: Vec<_> = (sent..due.min(rate * seconds as usize))
                .map(|i| {
                    let (s, d) = ends(i % edges, workloads, namespaces);
                    synthetic::record(i, s, d, namespaces, synthetic::now_ns())
                })
                .collect();
            sent += batch.len();
            ring.publish_all(batch);
        }
        println!("{}", serde_json::json!({"streamed": sent}));
    }
}
