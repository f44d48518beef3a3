//! What the hub adds to a quarantine and to a read. A lab of N pods is made
//! and a hub (in this process, on loopback) is given its API as the member
//! `lab`. Rounds interleave, on the same client:
//! - a quarantine of the server pod through the member's API
//!   (`POST /api/v1/quarantines`, answered once enforced) and its release;
//! - the same through the hub (`POST /api/v1/hub/clusters/lab/quarantines`);
//! - `GET /api/v1/status` on the member, and `GET /api/v1/hub/status`.
//!
//! After each quarantine a new connection must fail, after each release
//! succeed. Prints JSON with the hub-over-direct ratios of the medians.
//! Run: `cargo run --release --example hub_latency -- [PODS] [ROUNDS]`
//! (as root; the lab is removed on exit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bulkhead_controller::auth::tokens;
use bulkhead_lab::probe;
use bulkhead_model::Role;

#[path = "support/mod.rs"]
mod support;

fn p50(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One request; its time in milliseconds and its JSON answer.
async fn timed(req: reqwest::RequestBuilder, want: u16) -> (f64, serde_json::Value) {
    let t = Instant::now();
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(status, want, "{body}");
    (ms, body)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pods: usize = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(100);
    let rounds: usize = args.get(2).map(|a| a.parse().unwrap()).unwrap_or(20);
    let (_guard, lab) = support::up(&format!("hlat{pods}"), &support::server_and_client("hlat", pods), pods).await;
    let api = lab.api.clone().expect("the lab serves its API");
    let admin = std::fs::read_to_string(&api.tokens.admin).unwrap().trim().to_string();

    // The hub: its own tokens file, the lab's admin token as the member's.
    let dir = std::env::temp_dir().join(format!("bulkhead-hub-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let user = tokens::generate().unwrap();
    let entry = tokens::TokenEntry {
        user: "bench".into(),
        role: Role::Responder,
        namespaces: None,
        sha256: tokens::hash(&user),
    };
    std::fs::write(dir.join("tokens.yaml"), tokens::TokenFile::to_yaml(&[entry]).unwrap()).unwrap();
    std::fs::write(dir.join("member.token"), &admin).unwrap();
    let member = format!("lab={},@{},{}", api.url, dir.join("member.token").display(), api.ca_file.display());
    let cfg = bulkhead_controller::hub::HubConfig {
        name: "bench".into(),
        members: vec![member.parse().unwrap()],
        api: bulkhead_controller::http::ApiConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            plaintext: true,
            addr_file: Some(dir.join("addr")),
            tokens: Some(dir.join("tokens.yaml")),
            console: None,
        },
        state_dir: dir.join("state"),
        share_pods: false,
    };
    let listener = bulkhead_controller::http::bind(&cfg.api).unwrap();
    tokio::spawn(async move { bulkhead_controller::hub::run(cfg, listener).await.unwrap() });
    while !dir.join("addr").is_file() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hub = std::fs::read_to_string(dir.join("addr")).unwrap().trim().to_string();

    let http = support::https_client(&api.ca_file);
    let p = probe::probe_for(&lab, "hlat/cli", "hlat/srv", 8000, false, false).unwrap();
    assert!(support::connects(&lab, &p).await, "the client must reach the server before any quarantine");

    let (mut direct_q, mut hub_q, mut direct_read, mut hub_read) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let (ms, _) = timed(http.get(format!("{}/api/v1/status", api.url)).bearer_auth(&admin), 200).await;
        direct_read.push(ms);
        let (ms, _) = timed(http.get(format!("{hub}/api/v1/hub/status")).bearer_auth(&user), 200).await;
        hub_read.push(ms);
        for via_hub in [false, true] {
            let body = serde_json::json!({"pod": "hlat/srv", "reason": format!("bench round {i}")});
            let (url, token) = match via_hub {
                false => (format!("{}/api/v1/quarantines", api.url), &admin),
                true => (format!("{hub}/api/v1/hub/clusters/lab/quarantines"), &user),
            };
            let (ms, q) = timed(http.post(url).bearer_auth(token).json(&body), 201).await;
            assert_eq!(q["pods"][0]["enforced"], true, "{q}");
            assert!(!support::connects(&lab, &p).await, "round {i}: reachable after the quarantine was answered");
            if via_hub {
                hub_q.push(ms)
            } else {
                direct_q.push(ms)
            }
            let release = match via_hub {
                false => format!("{}/api/v1/quarantines/{}?reason=bench", api.url, q["id"]),
                true => format!("{hub}/api/v1/hub/clusters/lab/quarantines/{}?reason=bench", q["id"]),
            };
            timed(http.delete(release).bearer_auth(token), 200).await;
            let t = Instant::now();
            while !support::connects(&lab, &p).await {
                assert!(t.elapsed() < Duration::from_secs(30), "round {i}: the release never reached the wire");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        eprintln!("hub_latency: round {i}: quarantine direct {:.2} ms, via hub {:.2} ms", direct_q[i], hub_q[i]);
    }
    let out = serde_json::json!({
        "benchmark": "hub_latency",
        "pods": lab.pods.len(),
        "rounds": rounds,
        "quarantine_direct_ms": support::quantiles(direct_q.clone()),
        "quarantine_via_hub_ms": support::quantiles(hub_q.clone()),
        "status_direct_ms": support::quantiles(direct_read.clone()),
        "status_via_hub_ms": support::quantiles(hub_read.clone()),
        "quarantine_hub_over_direct_p50": p50(&hub_q) / p50(&direct_q),
        "status_hub_over_direct_p50": p50(&hub_read) / p50(&direct_read),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
