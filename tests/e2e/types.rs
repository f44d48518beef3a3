//! Type identification on real traffic: lab servers speaking TLS, Redis,
//! PostgreSQL and SSH, a client calling each in its protocol, the kernel's
//! payload samples classified on the node, and the exposure report saying
//! what each port speaks, with a finding for the port named `http` whose
//! traffic is TLS. The agents' counters account for every sample.

use std::time::Duration;

use serde_json::Value;

use crate::e2e::api::wait_for;
use crate::support::{Api, Lab};

/// A Deployment on `port` named `port_name`, its Service on `service_port`,
/// with extra pod annotations.
fn served(name: &str, port: u16, port_name: &str, service_port: u16, annotations: &str) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations: {{{annotations}}}\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        ports: [{{containerPort: {port}, name: {port_name}}}]\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: {service_port}, targetPort: {port_name}}}]\n"
    )
}

fn manifests() -> String {
    let calls = "web.shop:80@tls, redis.shop:6379@redis, db.shop:5432@postgres, sshd.shop:22@ssh";
    [
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_string(),
        // declared http, speaks TLS: the mismatch
        served("web", 8080, "http", 80, "lab.bulkhead.dev/speaks: \"8080=tls\""),
        served("redis", 6379, "tcp-redis", 6379, ""),
        served("db", 5432, "tcp-postgres", 5432, ""),
        served("sshd", 2222, "ssh", 22, ""),
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: client\n  namespace: shop\n  annotations: {{lab.bulkhead.dev/calls: \"{calls}\", lab.bulkhead.dev/call-interval: 300ms}}\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels: {{app: client}}\n    spec:\n      containers:\n      - name: c\n"
        ),
    ]
    .concat()
}

fn port<'a>(report: &'a Value, service: &str) -> &'a Value {
    report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["service"] == service)
        .unwrap_or_else(|| panic!("no service {service} in {report:#}"))
}

fn heard<'a>(p: &'a Value, protocol: &str) -> Option<&'a Value> {
    p["heard"].as_array().unwrap().iter().find(|h| h["protocol"] == protocol)
}

#[test]
fn ports_are_identified_by_what_their_traffic_speaks() {
    let lab = Lab::up("types", "bridge", 2, &manifests());
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let mut report = Value::Null;
    wait_for("every port identified", Duration::from_secs(60), || {
        report = api.get("/api/v1/exposure?namespace=shop", &admin);
        ["web", "redis", "db", "sshd"].iter().all(|s| port(&report, s)["speaks"].is_string())
    });

    let web = port(&report, "web");
    assert_eq!((web["declared_protocol"].as_str(), web["speaks"].as_str()), (Some("http"), Some("tls")), "{web:#}");
    let tls = heard(web, "tls").expect("TLS heard");
    assert!(tls["client_samples"].as_u64().unwrap() >= 1 && tls["server_samples"].as_u64().unwrap() >= 1, "{tls:#}");
    // the ClientHello's server name and ALPN offers, from the kernel's extensions window
    assert_eq!(tls["hosts"], serde_json::json!(["web.shop"]), "{tls:#}");
    assert_eq!(tls["alpn"], serde_json::json!(["h2", "http/1.1"]), "{tls:#}");
    let mismatch = web["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "protocol_mismatch")
        .unwrap_or_else(|| panic!("no mismatch finding: {web:#}"));
    assert!(mismatch["message"].as_str().unwrap().contains("declares http but its traffic is tls"), "{mismatch:#}");

    let redis = port(&report, "redis");
    assert_eq!(redis["speaks"], "redis");
    assert_eq!(heard(redis, "redis").unwrap()["methods"], serde_json::json!(["PING"]), "{redis:#}");
    assert_eq!(port(&report, "db")["speaks"], "postgres");
    assert_eq!(port(&report, "sshd")["speaks"], "ssh");
    for s in ["redis", "db", "sshd"] {
        let kinds: Vec<&str> =
            port(&report, s)["findings"].as_array().unwrap().iter().filter_map(|f| f["kind"].as_str()).collect();
        assert!(!kinds.contains(&"protocol_mismatch"), "{s} speaks what it declares: {kinds:?}");
    }
    // Only the ports that matching finding asks for.
    let only = api.get("/api/v1/exposure?namespace=shop&finding=protocol_mismatch", &admin);
    let services: Vec<&str> = only["ports"].as_array().unwrap().iter().filter_map(|p| p["service"].as_str()).collect();
    assert_eq!(services, ["web"]);

    // Every sample the kernel took is sent or counted as skipped, and none was lost to the ring.
    let (mut sent, mut lost) = (0, 0);
    for s in lab.status() {
        sent += s.counters.get("samples_sent").copied().unwrap_or(0);
        lost += s.counters.get("samples_lost").copied().unwrap_or(0);
    }
    assert!(sent >= 8, "two ways of four protocols at least: {sent}");
    assert_eq!(lost, 0);
    let status = api.get("/api/v1/status", &admin);
    assert!(status["flows"]["samples"].as_u64().unwrap() >= 8, "{:#}", status["flows"]);
}

/// The lab's protocol bytes are what the agent's classifier recognises, each
/// protocol from each end that speaks first or answers distinctively.
#[test]
fn the_lab_speaks_what_the_classifier_recognises() {
    use bulkhead_agent::classify::{Sample, Sender, Transport, classify};
    use bulkhead_lab::speak;
    use bulkhead_model::exposure::AppProtocol;
    let heard = |sender, p: AppProtocol, bytes: &[u8]| {
        let transport = if p == AppProtocol::Dns { Transport::Udp } else { Transport::Tcp };
        // the kernel's window: 128 bytes, or a ClientHello's head and extensions
        let head = &bytes[..bytes.len().min(128)];
        classify(&Sample { sender, transport, head, ext: None, payload_len: bytes.len() as u16 }).protocol
    };
    for p in AppProtocol::ALL.iter().copied() {
        let opener = speak::opener(p, "svc.shop");
        let expect_client = match p {
            AppProtocol::Mysql => None,
            AppProtocol::Grpc => Some(AppProtocol::Http2),
            _ => Some(p),
        };
        assert_eq!(heard(Sender::Client, p, &opener), expect_client, "{p} opener");
        let answer = if speak::server_first(p) { speak::greeting(p, "svc") } else { speak::reply(p, "svc", &opener) };
        let expect_server = match p {
            // 'N' (no TLS) and a Kafka response say too little to name them
            AppProtocol::Postgres | AppProtocol::Kafka => None,
            AppProtocol::Grpc => Some(AppProtocol::Http2),
            _ => Some(p),
        };
        assert_eq!(heard(Sender::Server, p, &answer), expect_server, "{p} answer");
    }
}
