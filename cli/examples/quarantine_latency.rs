//! Quarantine latency through the HTTPS API. A lab of N pods (a server, a
//! client and N-2 bystanders) is made; each round the client holds a TCP
//! connection to the server and ping-pongs on it without pause, then
//! `POST /api/v1/quarantines` cuts the server off:
//! - API to wire: from sending the request to the last echo that got
//!   through (echoes are 0.25 ms apart, so the cut lands within ~0.3 ms
//!   of it);
//! - answered: until the answer, which the controller gives once the
//!   agent reports the drop enforced and both have written their audit
//!   records (each synced to disk), and the quarantine is persisted (in parallel).
//!
//! It then checks that a new connection fails too, releases (`DELETE`) and
//! waits until the client connects again. The baseline, interleaved in the
//! same run, is an authenticated no-op request (`GET /api/v1/whoami`) on
//! the same connection pool. Prints JSON.
//! Run: `cargo run --release --example quarantine_latency -- [PODS] [ROUNDS]`
//! (as root; the lab is removed on exit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulkhead_lab::probe;

#[path = "support/mod.rs"]
mod support;

/// The pause between echoes: the resolution of the wire figure.
const PACE: Duration = Duration::from_micros(250);

/// From inside `netns`, connects to `addr`, says so on `ready`, and
/// ping-pongs until an echo does not come back; returns when the last one
/// did.
fn last_echo(netns: PathBuf, addr: SocketAddr, ready: std::sync::mpsc::Sender<()>) -> Instant {
    bulkhead_lab::netns::enter(&netns).unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut banner = [0u8; 64];
    assert!(s.read(&mut banner).unwrap() > 0, "the server sends its banner");
    let mut buf = [0u8; 4];
    let mut last = Instant::now();
    let mut told = false;
    loop {
        if s.write_all(b"ping").is_err() || s.read_exact(&mut buf).is_err() {
            return last;
        }
        last = Instant::now();
        if !told {
            ready.send(()).unwrap();
            told = true;
        }
        // Paced, so the probe does not take a core from what it measures.
        std::thread::sleep(PACE);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pods: usize = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(100);
    let rounds: usize = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(50);
    let name = format!("qlat{pods}");
    let started = Instant::now();
    let (_guard, lab) = support::up(&name, &support::server_and_client("qlat", pods), pods).await;
    eprintln!("quarantine_latency: lab of {} pods up in {:.0} s", lab.pods.len(), started.elapsed().as_secs_f64());
    let api = lab.api.clone().expect("the lab serves its API");
    let token = std::fs::read_to_string(&api.tokens.admin).unwrap().trim().to_string();
    let http = support::https_client(&api.ca_file);
    let p = probe::probe_for(&lab, "qlat/cli", "qlat/srv", 8000, false, false).unwrap();
    // Without a policy the client reaches the server.
    assert!(support::connects(&lab, &p).await, "the client must reach the server before any quarantine");

    let netns = bulkhead_lab::netns::path(&lab.pod("qlat/cli").unwrap().netns);
    let server = SocketAddr::new(lab.pod("qlat/srv").unwrap().ips[0], 8000);
    let (mut noop, mut quarantine, mut enforced, mut agent, mut release, mut wire) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let t = Instant::now();
        let r = http.get(format!("{}/api/v1/whoami", api.url)).bearer_auth(&token).send().await.unwrap();
        assert!(r.status().is_success(), "whoami: {}", r.status());
        r.bytes().await.unwrap();
        noop.push(t.elapsed().as_secs_f64() * 1000.0);

        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (ns, addr) = (netns.clone(), server);
        let watcher = std::thread::spawn(move || last_echo(ns, addr, ready_tx));
        ready.recv().unwrap();
        let t = Instant::now();
        let r = http
            .post(format!("{}/api/v1/quarantines", api.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"pod": "qlat/srv", "reason": format!("bench round {i}")}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        quarantine.push(t.elapsed().as_secs_f64() * 1000.0);
        let last = watcher.join().unwrap();
        wire.push(last.saturating_duration_since(t).as_secs_f64() * 1000.0);
        assert_eq!(status.as_u16(), 201, "{body}");
        assert_eq!(body["pods"][0]["enforced"], true, "{body}");
        enforced.push(body["enforced_micros"].as_f64().unwrap() / 1000.0);
        agent.push(body["pods"][0]["agent_micros"].as_f64().unwrap() / 1000.0);
        // Answered means enforced: the very next connection attempt fails.
        assert!(
            !support::connects(&lab, &p).await,
            "round {i}: the server is reachable after the quarantine was answered"
        );

        let id = body["id"].as_u64().unwrap();
        let t = Instant::now();
        let r = http
            .delete(format!("{}/api/v1/quarantines/{id}?reason=bench", api.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "release: {}", r.status());
        r.bytes().await.unwrap();
        while !support::connects(&lab, &p).await {
            assert!(t.elapsed() < Duration::from_secs(30), "round {i}: release never reached the wire");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.push(t.elapsed().as_secs_f64() * 1000.0);
        eprintln!(
            "quarantine_latency: round {i}: wire {:.2} ms, answered {:.2} ms, release {:.2} ms",
            wire[i], quarantine[i], release[i]
        );
    }
    let p50 = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (wire_ratio, answer_ratio) = (p50(&wire) / p50(&noop), p50(&quarantine) / p50(&noop));
    let out = serde_json::json!({
        "benchmark": "quarantine_latency",
        "pods": lab.pods.len(),
        "rounds": rounds,
        "api_to_wire_ms": support::quantiles(wire),
        "quarantine_answered_ms": support::quantiles(quarantine),
        "controller_enforced_ms": support::quantiles(enforced),
        "agent_ms": support::quantiles(agent),
        "release_to_wire_ms": support::quantiles(release),
        "baseline_whoami_ms": support::quantiles(noop),
        "wire_over_whoami_p50": wire_ratio,
        "answered_over_whoami_p50": answer_ratio,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
