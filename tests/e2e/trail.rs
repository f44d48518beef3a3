//! The access trail on a lab, against the connections the test itself
//! makes with real probes: a baseline edge learned, then an intrusion (an
//! outside-namespace caller, a new egress edge), the second hop (what the
//! pod it reached did next), a quarantine and the dropped attempt after
//! it, the audit records; the CSV and the CLI; a tenant refused.

use std::time::Duration;

use bulkhead_model::Role;
use serde_json::{Value, json};

use crate::e2e::api::wait_for;
use crate::support::{Api, Lab};

fn manifests() -> String {
    let deployment = |ns: &str, name: &str, port: u16| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: 1\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, ports: [{{containerPort: {port}}}]}}]}}\n"
        )
    };
    [
        deployment("shop", "web", 8080),
        deployment("shop", "api", 8080),
        deployment("shop", "db", 5432),
        deployment("other", "attacker", 81),
    ]
    .concat()
}

/// The connection groups of a trail list as (direction, peer id, port, verdict, connections, new).
fn rows(list: &Value) -> Vec<(String, String, u64, String, u64, bool)> {
    let mut out: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["direction"].as_str().unwrap().to_string(),
                c["peer"]["id"].as_str().unwrap().to_string(),
                c["port"].as_u64().unwrap(),
                c["verdict"].as_str().unwrap().to_string(),
                c["connections"].as_u64().unwrap(),
                c["new_edge"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn probe_n(lab: &Lab, from: &str, to: &str, port: u16, n: usize) {
    for _ in 0..n {
        assert!(lab.probe(from, to, port, false, false), "{from} -> {to}:{port}");
    }
}

#[test]
fn the_trail_is_the_connections_made_with_the_new_ones_the_second_hop_and_the_quarantine() {
    let lab = Lab::up_with("trail", "bridge", 2, &manifests(), &["--learn-window", "3", "--learn-quiet", "2"]);
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let (web, app, db, attacker) = (
        lab.pod_of("shop", "web"),
        lab.pod_of("shop", "api"),
        lab.pod_of("shop", "db"),
        lab.pod_of("other", "attacker"),
    );
    let id = |p: &str| format!("pod:{p}");

    // The baseline: web calls api, and nothing else, until web is stable.
    probe_n(&lab, &web, &app, 8080, 3);
    wait_for("web's baseline to settle", Duration::from_secs(60), || {
        let b = api.get("/api/v1/baselines", &admin);
        b["workloads"].as_array().unwrap().iter().any(|w| w["workload"]["name"] == "web" && w["phase"] == "stable")
    });
    // The intrusion: the other tenant's pod calls web, web calls db (new),
    // web calls api again and api, once reached, calls db (the second hop).
    probe_n(&lab, &attacker, &web, 8080, 2);
    probe_n(&lab, &web, &db, 5432, 1);
    probe_n(&lab, &web, &app, 8080, 1);
    probe_n(&lab, &app, &db, 5432, 2);
    let q = api.call("POST", "/api/v1/quarantines", Some(&admin), Some(json!({"pod": web, "reason": "e2e: trail"})));
    assert_eq!(q.status, 201, "{}", q.text);
    assert!(!lab.probe(&attacker, &web, 8080, false, false), "quarantined");

    let path = format!("/api/v1/trail?pod={web}&since=10m");
    let expected = vec![
        ("egress".to_string(), id(&app), 8080, "forwarded".to_string(), 4, false),
        ("egress".to_string(), id(&db), 5432, "forwarded".to_string(), 1, true),
        ("ingress".to_string(), id(&attacker), 8080, "forwarded".to_string(), 2, true),
    ];
    let mut last = Value::Null;
    wait_for("the trail to hold every connection made", Duration::from_secs(20), || {
        last = api.get(&path, &admin);
        let got = rows(&last["connections"]);
        let dropped = got.iter().any(|r| r.0 == "ingress" && r.1 == id(&attacker) && r.3 == "dropped");
        let forwarded: Vec<_> = got.into_iter().filter(|r| r.3 == "forwarded").collect();
        forwarded == expected && dropped && last["second_hop"].as_array().is_some_and(|h| !h.is_empty())
    });
    let t = last;
    assert_eq!(t["pod"], web.as_str());
    assert_eq!(t["workload"]["name"], "web");
    let got = rows(&t["connections"]);
    assert_eq!(got.len(), 4, "three forwarded groups and the dropped attempt, nothing else: {got:#?}");
    // The second hop: api's connections from the moment web reached it, web itself left out.
    let hops = t["second_hop"].as_array().unwrap();
    assert_eq!(hops.len(), 1, "{hops:#?}");
    assert_eq!(hops[0]["via"]["id"], id(&app));
    assert_eq!(
        rows(&hops[0]["connections"]),
        vec![("egress".to_string(), id(&db), 5432, "forwarded".to_string(), 2, true)]
    );
    // The quarantine and its audit record.
    assert_eq!(t["quarantines"].as_array().unwrap().len(), 1);
    assert_eq!(t["quarantines"][0]["state"], "active");
    let audit = t["audit"].as_array().unwrap();
    assert!(audit.iter().any(|a| a["action"] == "quarantine" && a["outcome"] == "ok"), "{audit:#?}");

    // A window that ends before the intrusion has only the baseline.
    let intrusion = t["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer"]["id"] == id(&attacker).as_str())
        .unwrap()["first_seen_ns"]
        .as_i64()
        .unwrap();
    let early = api.get(&format!("/api/v1/trail?pod={web}&since=10m&until={}", jiff_time(intrusion - 1)), &admin);
    assert_eq!(
        rows(&early["connections"]),
        vec![("egress".to_string(), id(&app), 8080, "forwarded".to_string(), 3, false)],
        "{early:#}"
    );

    // CSV: one row per group, hop 2 naming its via.
    let csv = api.call("GET", &format!("/api/v1/trail/csv?pod={web}&since=10m"), Some(&admin), None);
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 1 + 4 + 1, "{}", csv.text);
    assert!(lines[0].starts_with("hop,via,direction,peer"));
    assert!(lines.iter().any(|l| l.starts_with(&format!("2,{},egress,{},", id(&app), id(&db)))), "{}", csv.text);
    let cli = lab.bulkhead(&["trail", "--lab", &lab.name, &web, "--since", "10m", "-o", "csv"]);
    assert_eq!(cli, csv.text, "the CLI prints the API's CSV");
    let human = lab.bulkhead(&["trail", "--lab", &lab.name, &web]);
    assert!(
        human.contains("NEW (not in its baseline)") && human.contains("second hop") && human.contains("quarantines"),
        "{human}"
    );

    // Bad requests, and a tenant of the other namespace.
    assert_eq!(api.call("GET", "/api/v1/trail?pod=web", Some(&admin), None).status, 400);
    assert_eq!(api.call("GET", &format!("/api/v1/trail?pod={web}&since=1m&until=2m"), Some(&admin), None).status, 400);
    let tenant = &api.add_tokens(&[("tenant-other", Role::Viewer, Some(&["other"]))])[0];
    assert_eq!(api.call("GET", &path, Some(tenant), None).status, 403);
    // The attacker's own trail, for its tenant: web shows only as its namespace.
    let theirs = api.get(&format!("/api/v1/trail?pod={attacker}&since=10m"), tenant);
    let peers: Vec<&Value> = theirs["connections"].as_array().unwrap().iter().map(|c| &c["peer"]).collect();
    assert!(!peers.is_empty() && peers.iter().all(|p| p["redacted"] == true && p["namespace"] == "shop"), "{theirs:#}");
}

fn jiff_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap().to_string()
}
