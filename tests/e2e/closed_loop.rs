//! The closed loop on real traffic: lab pods make the calls their
//! Deployments declare; the controller learns baselines from the agents'
//! flows (and gets what the agents buffered while it was killed); its
//! suggestions are reviewed, staged in audit (the would-drop of a new peer is
//! reported per suggestion) and enforced; legitimate calls keep flowing, the
//! new peer is denied and reported as an anomaly; nothing is lost.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Killed, Lab, pod, try_bulkhead};

fn deployment(name: &str, port: Option<u16>, calls: &str) -> String {
    let ports = port.map(|p| format!("\n        ports: [{{containerPort: {p}}}]")).unwrap_or_default();
    let calls = if calls.is_empty() {
        String::new()
    } else {
        format!("\n  annotations: {{lab.bulkhead.dev/calls: \"{calls}\", lab.bulkhead.dev/call-interval: 300ms}}")
    };
    let mut out = format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop{calls}\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c{ports}\n"
    );
    if let Some(p) = port {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: {p}}}]\n"
        ));
    }
    out
}

fn manifests() -> String {
    [
        deployment("web", Some(80), "api:8080"),
        deployment("api", Some(8080), "db:5432"),
        deployment("db", Some(5432), ""),
        pod("x", "intruder", "intruder", &[]),
    ]
    .concat()
}

fn json(lab: &Lab, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--lab", &lab.name, "-o", "json"]);
    serde_json::from_str(&lab.bulkhead(&all)).unwrap()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn wait_stable(lab: &Lab, workloads: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let b = json(lab, &["baseline"]);
        let w = b["workloads"].as_array().unwrap();
        if w.len() >= workloads && w.iter().all(|x| x["phase"] == "stable") {
            return;
        }
        assert!(Instant::now() < deadline, "baselines did not settle: {b:#}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn learn_suggest_audit_enforce_on_real_traffic_with_nothing_lost() {
    let lab = Lab::up_with("loop", "bridge", 2, &manifests(), &["--learn-window", "6", "--learn-quiet", "3"]);
    std::thread::sleep(Duration::from_secs(3));

    // Kill the controller under traffic: the agents buffer, and the restarted
    // controller resumes from its stored cursor and gets the gap.
    let dir = bulkhead_lab::state::dir(&lab.name);
    let killed_at = now_ns();
    let controller = Killed::kill(lab.state.controller_pid.unwrap(), dir.join("controller.log"));
    std::thread::sleep(Duration::from_secs(3));
    let restarted_at = now_ns();
    controller.restart();
    // The agents dial the restarted controller again and resend what they buffered.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = crate::support::try_bulkhead(&[
            "flows",
            "--workload",
            "web",
            "--limit",
            "1000000",
            "--lab",
            &lab.name,
            "-o",
            "json",
        ]);
        // Until the restarted controller serves, nothing is counted.
        let gap: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()));
        let in_gap = gap
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| (killed_at..restarted_at).contains(&f["time_ns"].as_i64().unwrap()))
            .count();
        if in_gap >= 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flows made while the controller was down were not resent: {in_gap}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The calls went through the services to their backends, named by workload.
    wait_stable(&lab, 4);
    let graph = json(&lab, &["graph", "--namespace", "shop"]);
    let node = |id: &Value| graph["nodes"].as_array().unwrap().iter().find(|n| n["id"] == *id).cloned().unwrap();
    let edge = |from: &str, to: &str, port: u64| {
        graph["edges"].as_array().unwrap().iter().any(|e| {
            let (src, dst) = (node(&e["source"]), node(&e["destination"]));
            src["name"] == from && dst["name"] == to && e["port"] == port && src["workload_kind"] == "Deployment"
        })
    };
    assert!(edge("web", "api", 8080) && edge("api", "db", 5432) && edge("web", "coredns", 53), "{graph:#}");

    // Suggestions: one per workload, pods selected by stable labels, printed
    // as a Kubernetes List that kubectl applies; the review records keep the ids.
    let suggestions = json(&lab, &["suggest"]);
    assert_eq!((&suggestions["apiVersion"], &suggestions["kind"]), (&Value::from("v1"), &Value::from("List")));
    let policies = suggestions["items"].as_array().unwrap();
    assert_eq!(policies.len(), 4, "web, api, db and coredns: {suggestions:#}");
    assert!(policies.iter().all(|p| p["kind"] == "NetworkPolicy" && p["apiVersion"] == "networking.k8s.io/v1"));
    let text = suggestions.to_string();
    assert!(!text.contains("pod-template-hash"), "{text}");
    let records = json(&lab, &["review", "list"]);
    let list = records.as_array().unwrap();
    assert_eq!(list.len(), 4, "{records:#}");
    let id_of =
        |name: &str| list.iter().find(|r| r["workload"]["name"] == name).unwrap()["id"].as_u64().unwrap().to_string();
    let db = id_of("db");
    for r in list {
        let id = r["id"].as_u64().unwrap().to_string();
        lab.bulkhead(&["review", "approve", &id, "--lab", &lab.name, "--reason", "e2e"]);
        let staged = json(&lab, &["review", "apply", &id, "--mode", "audit"]);
        assert_eq!(staged["status"], "audit");
    }
    // Applying twice in audit is fine; enforce before approval is not.
    let shown = json(&lab, &["review", "show", &db]);
    assert_eq!(shown["what_if"]["would_drop"].as_array().unwrap().len(), 0, "exact: {shown:#}");
    assert!(shown["what_if"]["replayed"].as_u64().unwrap() > 0);

    // In audit, a new peer passes but is reported against db's suggestion.
    assert!(lab.probe("x/intruder", "shop/db", 5432, false, false), "audit mode does not drop");
    std::thread::sleep(Duration::from_secs(3));
    let shown = json(&lab, &["review", "show", &db]);
    assert!(shown["would_drop_total"].as_u64().unwrap() >= 1, "{shown:#}");
    assert!(shown["would_drop"].to_string().contains("intruder"), "{shown:#}");

    // Enforce: the calls keep working, the intruder is denied and reported.
    for r in list {
        let id = r["id"].as_u64().unwrap().to_string();
        assert_eq!(json(&lab, &["review", "apply", &id, "--mode", "enforce"])["status"], "enforced");
    }
    std::thread::sleep(Duration::from_secs(3));
    let enforced_at = now_ns();
    std::thread::sleep(Duration::from_secs(4));
    assert!(!lab.probe("x/intruder", "shop/db", 5432, false, false), "enforced: denied");
    assert!(lab.probe("shop/web-0", "shop/api", 8080, false, false), "a baseline edge still works");
    std::thread::sleep(Duration::from_secs(2));
    let dropped = json(&lab, &["flows", "--verdict", "dropped", "--limit", "100000"]);
    let after: Vec<&Value> =
        dropped.as_array().unwrap().iter().filter(|f| f["time_ns"].as_i64().unwrap() >= enforced_at).collect();
    assert!(!after.is_empty(), "the intruder's attempt is recorded");
    assert!(
        after.iter().all(|f| f["source"]["namespace"] == "x" && f["source"]["pod"] == "intruder"),
        "only the intruder was dropped: {after:#?}"
    );
    let calls = json(&lab, &["flows", "--workload", "api", "--since", "5s", "--limit", "100000"]);
    assert!(
        calls.as_array().unwrap().iter().filter(|f| f["verdict"] == "forwarded").count() >= 5,
        "calls keep flowing"
    );
    // Under the enforced policies web reaches api, and db through api; db reaches nothing.
    let names = |v: Value| -> Vec<String> {
        v["reachable"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect()
    };
    let from_web = names(json(&lab, &["graph", "--blast-radius", "shop/web"]));
    assert!(from_web.contains(&"api".to_string()) && from_web.contains(&"db".to_string()), "{from_web:?}");
    assert!(!from_web.contains(&"web".to_string()));
    assert_eq!(names(json(&lab, &["graph", "--blast-radius", "shop/db"])), Vec::<String>::new());
    let anomalies = json(&lab, &["baseline"])["anomalies"].clone();
    assert!(
        anomalies.as_array().unwrap().iter().any(|a| a["workload"]["name"] == "db" && a["side"] == "ingress"),
        "{anomalies:#}"
    );

    // Nothing was lost at any stage.
    let status: Value = serde_json::from_str(&lab.bulkhead(&["status", "--lab", &lab.name, "-o", "json"])).unwrap();
    let lost: u64 = status["flows"]["lost"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(lost, 0, "{status:#}");
    assert!(status["flows"]["stored"].as_u64().unwrap() > 100);
}

#[test]
fn a_malformed_calls_annotation_is_refused_with_the_object_named() {
    let name = format!("t{}-badcalls", std::process::id() % 100_000);
    let file = std::env::temp_dir().join(format!("bulkhead-{name}.yaml"));
    std::fs::write(&file, deployment("web", Some(80), "api")).unwrap();
    let out = try_bulkhead(&["lab", "up", "--name", &name, "-f", &file.to_string_lossy()]);
    let _ = try_bulkhead(&["lab", "down", "--name", &name]);
    let _ = std::fs::remove_file(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("lab.bulkhead.dev/calls") && err.contains("svc:port"), "{err}");
}
