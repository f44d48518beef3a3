//! A port scan on a lab, the way an attacker in a pod makes one: a stable
//! pod tries 100 ports of a database in well under 2 s, all dropped by the
//! database's policy. Exactly one anomaly comes of it (its new edges fold
//! in), the automatic quarantine rule cuts the scanner, audited as the rule,
//! a bystander is untouched, a person releases it, and the alert webhook
//! receives Alertmanager-format messages for the scan and the quarantine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_lab::probe;
use serde_json::{Value, json};

use crate::e2e::api::wait_for;
use crate::support::{Api, Lab, deployment};

/// The webhook's port, inside the lab's own fabric namespace (where the
/// controller runs): nothing else listens there.
const HOOK_PORT: u16 = 19093;

/// An HTTP receiver in a network namespace, keeping each posted JSON body.
/// Stops its thread on drop.
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(netns: &str) -> Receiver {
        let (bodies, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (b, s) = (bodies.clone(), stop.clone());
        let path = bulkhead_lab::netns::path(netns);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            bulkhead_lab::netns::enter(&path).unwrap();
            let listener = TcpListener::bind(("127.0.0.1", HOOK_PORT)).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !s.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut r = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; length];
                r.read_exact(&mut body).unwrap();
                b.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                r.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Receiver { bodies, stop, thread: Some(thread) }
    }

    fn messages(&self, alertname: &str) -> Vec<Value> {
        self.bodies.lock().unwrap().iter().filter(|m| m["groupLabels"]["alertname"] == alertname).cloned().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn manifests() -> String {
    [
        deployment("shop", "web", 8080, ""),
        deployment("shop", "api", 8080, ""),
        deployment("shop", "db", 5432, ""),
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-ingress, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Ingress]\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}, {podSelector: {matchLabels: {app: api}}}], ports: [{port: 5432}]}]\n".to_string(),
    ]
    .concat()
}

fn metric(lab: &Lab, line_start: &str) -> Option<f64> {
    let fabric = bulkhead_lab::lifecycle::fabric_netns(&lab.name);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &fabric, "curl", "-sf", "http://127.0.0.1:9966/metrics"])
        .output()
        .unwrap();
    assert!(out.status.success(), "metrics: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_port_scan_is_one_anomaly_the_rule_quarantines_the_scanner_and_the_webhook_hears_of_it() {
    let hook = format!("--controller-arg=--alert-webhook=http://127.0.0.1:{HOOK_PORT}/alerts");
    let lab = Lab::up_with(
        "scan",
        "bridge",
        1,
        &manifests(),
        &[
            "--learn-window",
            "3",
            "--learn-quiet",
            "2",
            "--controller-arg=--scan-window=2",
            "--controller-arg=--scan-ports=50",
            "--controller-arg=--auto-quarantine=port_scan",
            &hook,
        ],
    );
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let (web, app, db) = (lab.pod_of("shop", "web"), lab.pod_of("shop", "api"), lab.pod_of("shop", "db"));
    let receiver = Receiver::start(&bulkhead_lab::lifecycle::fabric_netns(&lab.name));

    // The baseline: web calls db and api, api calls db; everything stable.
    for (from, to, port) in [(&web, &db, 5432), (&web, &app, 8080), (&app, &db, 5432), (&web, &db, 5432)] {
        assert!(lab.probe(from, to, port, false, false), "{from} -> {to}:{port}");
    }
    wait_for("every baseline to settle", Duration::from_secs(60), || {
        let b = api.get("/api/v1/baselines", &admin);
        let w = b["workloads"].as_array().unwrap();
        w.len() == 3 && w.iter().all(|w| w["phase"] == "stable")
    });
    assert_eq!(api.get("/api/v1/anomalies", &admin)["items"], json!([]));

    // The scan: 100 ports of db at once, every one dropped by db's policy.
    let probes: Vec<_> =
        (1..=100u16).map(|port| probe::probe_for(&lab.state, &web, &db, port, false, false).unwrap()).collect();
    let started = std::time::Instant::now();
    let results = probe::run(&lab.state, &probes, Duration::from_millis(500)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "the scan took {:?}", started.elapsed());
    assert!(results.iter().all(|r| !r.connected), "db's policy drops every port but 5432");

    let mut last = Value::Null;
    wait_for("the scan's anomaly with all 100 ports", Duration::from_secs(30), || {
        last = api.get("/api/v1/anomalies", &admin);
        last["items"].as_array().unwrap().iter().any(|a| a["kind"] == "port_scan" && a["scan"]["ports"] == 100)
    });
    // Every anomaly of the scanner or its target (a quarantined pod's dropped
    // IPv6 multicast, from `::`, may be a new edge of its own).
    let web_name = web.split_once('/').unwrap().1;
    let items: Vec<&Value> = last["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["source"]["pod"] == web_name || a["destination"]["name"] == "db")
        .collect();
    assert_eq!(items.len(), 1, "exactly one anomaly, the new edges folded into it: {items:#?}");
    let a = &items[0];
    assert_eq!(a["workload"]["name"], "web");
    assert_eq!(a["side"], "egress");
    assert_eq!(a["connections"], 100);
    assert_eq!(a["dropped"], 100);
    let scan = &a["scan"];
    assert_eq!(scan["hosts"], 1);
    assert_eq!(scan["source_pod"], web.as_str());
    assert_eq!(scan["source_ip"], lab.ip(&web, false).to_string());
    assert_eq!(scan["sample_ports"], json!((1..=32).collect::<Vec<u16>>()));
    assert!(scan["folded"].as_u64().unwrap() > 0, "{scan}");
    assert!(!a["evidence"].as_array().unwrap().is_empty());
    let new_edges = api.get("/api/v1/anomalies?kind=new_edge", &admin);
    assert!(
        new_edges["items"].as_array().unwrap().iter().all(|a| a["source"]["kind"] == "world"),
        "no new edge of the scan is left: {new_edges:#}"
    );
    let scans = api.get("/api/v1/anomalies?kind=port_scan", &admin);
    assert_eq!(scans["items"].as_array().unwrap().len(), 1);

    // The rule quarantined web's workload, audited as the rule.
    let mut quarantines = Value::Null;
    wait_for("the rule's quarantine", Duration::from_secs(20), || {
        quarantines = api.get("/api/v1/quarantines", &admin);
        !quarantines["items"].as_array().unwrap().is_empty()
    });
    let q = &quarantines["items"].as_array().unwrap();
    assert_eq!(q.len(), 1, "{q:#?}");
    assert_eq!((q[0]["kind"].as_str(), q[0]["name"].as_str()), (Some("workload"), Some("web")));
    assert_eq!(q[0]["state"], "active");
    assert!(q[0]["created_by"].as_str().unwrap().starts_with("rule:auto-quarantine/port_scan"), "{}", q[0]);
    let audit = api.get("/api/v1/audit?action=quarantine", &admin);
    let by_rule: Vec<_> =
        audit["items"].as_array().unwrap().iter().filter(|e| e["user"] == "rule:auto-quarantine/port_scan").collect();
    assert_eq!(by_rule.len(), 1, "{audit:#}");
    assert_eq!(by_rule[0]["outcome"], "ok");
    wait_for("the scanner to be cut", Duration::from_secs(10), || !lab.probe(&web, &app, 8080, false, false));
    assert!(lab.probe(&app, &db, 5432, false, false), "a bystander keeps its path");

    // The webhook heard of both, in Alertmanager's format, and of no new edge.
    wait_for("both alerts at the webhook", Duration::from_secs(20), || {
        !receiver.messages("BulkheadPortScan").is_empty() && !receiver.messages("BulkheadAutoQuarantine").is_empty()
    });
    let m = &receiver.messages("BulkheadPortScan")[0];
    assert_eq!(
        (m["version"].as_str(), m["status"].as_str(), m["receiver"].as_str()),
        (Some("4"), Some("firing"), Some("bulkhead"))
    );
    assert_eq!(m["alerts"].as_array().unwrap().len(), 1);
    let alert = &m["alerts"][0];
    assert_eq!(alert["labels"]["kind"], "port_scan");
    assert_eq!(alert["labels"]["pod"], web.as_str());
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["anomaly_id"], a["id"].to_string());
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let link = alert["generatorURL"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/#/trail?pod={web}&since=", api.url)), "{alert}");
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("port scan"));
    let rule = &receiver.messages("BulkheadAutoQuarantine")[0]["alerts"][0];
    assert_eq!(rule["labels"]["outcome"], "quarantined");
    assert_eq!(rule["labels"]["workload"], "shop/web");
    let scan_edges: Vec<Value> = receiver
        .messages("BulkheadNewEdge")
        .iter()
        .flat_map(|m| m["alerts"].as_array().unwrap().clone())
        .filter(|a| a["labels"]["source"] == "shop/web")
        .collect();
    assert_eq!(scan_edges, Vec::<Value>::new(), "the scan's new edges were folded, never alerted");

    // A person releases it; web is back.
    let id = q[0]["id"].as_u64().unwrap();
    let r =
        api.call("DELETE", &format!("/api/v1/quarantines/{id}?reason=e2e:%20scanner%20cleaned"), Some(&admin), None);
    assert_eq!(r.status, 200, "{}", r.text);
    wait_for("web to be released", Duration::from_secs(10), || lab.probe(&web, &app, 8080, false, false));

    // The counters.
    assert_eq!(metric(&lab, "bulkhead_controller_anomalies_total{kind=\"port_scan\"}"), Some(1.0));
    assert_eq!(metric(&lab, "bulkhead_controller_quarantines_total{action=\"quarantine\",by=\"rule\"}"), Some(1.0));
    assert_eq!(metric(&lab, "bulkhead_controller_quarantines_total{action=\"release\",by=\"person\"}"), Some(1.0));
    assert!(metric(&lab, "bulkhead_controller_alerts_total{result=\"sent\"}").is_some_and(|n| n >= 2.0));
    assert!(metric(&lab, "bulkhead_controller_findings{kind=\"database_exposed\"}").is_some());
}
