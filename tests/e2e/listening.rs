//! Listening ports nobody declared, and declared ports nothing listens on,
//! from each pod's socket tables read by its agent in the pod's network
//! namespace: a web server with a debug TCP port and a UDP port no
//! container declares, an api whose second declared port is never bound,
//! and a pod that serves exactly what it declares. Clients calling them
//! must not look like listeners.

use std::time::Duration;

use serde_json::Value;

use crate::e2e::api::wait_for;
use crate::support::{Api, Lab};

fn manifests() -> String {
    let deployment = |name: &str, ports: &str, annotations: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations: {{{annotations}}}\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        ports: {ports}\n"
        )
    };
    let service = |name: &str, ports: &str| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{app: {name}}}\n  ports: {ports}\n"
        )
    };
    [
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_string(),
        deployment("web", "[{containerPort: 8080, name: http}]", "lab.bulkhead.dev/listens: \"tcp/6060, udp/5353\""),
        service("web", "[{port: 80, targetPort: 8080}]"),
        deployment(
            "api",
            "[{containerPort: 8080, name: http}, {containerPort: 8081, name: admin}]",
            "lab.bulkhead.dev/closed: \"tcp/8081\"",
        ),
        service("api", "[{port: 80, targetPort: 8080, name: http}, {port: 81, targetPort: 8081, name: admin}]"),
        deployment("plain", "[{containerPort: 9000}]", ""),
        deployment(
            "client",
            "[]",
            "lab.bulkhead.dev/calls: \"web.shop:80, api.shop:80\", lab.bulkhead.dev/call-interval: 300ms",
        ),
    ]
    .concat()
}

fn kinds(p: &Value) -> Vec<&str> {
    p["findings"].as_array().unwrap().iter().filter_map(|f| f["kind"].as_str()).collect()
}

fn find(report: &Value, pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    report["ports"].as_array().unwrap().iter().find(|p| pred(p))
}

fn workload_port<'a>(report: &'a Value, workload: &str, protocol: &str, port: u64) -> Option<&'a Value> {
    find(report, |p| {
        p["service"].is_null()
            && p["workloads"][0]["name"] == workload
            && p["protocol"] == protocol
            && p["port"].as_u64() == Some(port)
    })
}

fn service_port<'a>(report: &'a Value, service: &str, port: u64) -> &'a Value {
    find(report, |p| p["service"] == service && p["port"].as_u64() == Some(port))
        .unwrap_or_else(|| panic!("no {service}:{port} in {report:#}"))
}

#[test]
fn open_but_undeclared_and_declared_but_not_open_are_found_in_the_pods_sockets() {
    let lab = Lab::up("listen", "bridge", 2, &manifests());
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let (web_pod, api_pod) = (lab.pod_of("shop", "web"), lab.pod_of("shop", "api"));
    // The undeclared ports are real: another pod reaches them.
    let client = lab.pod_of("shop", "client");
    assert!(lab.probe(&client, &web_pod, 6060, false, false), "the debug port answers");
    assert!(!lab.probe(&client, &api_pod, 8081, false, false), "the closed port refuses");

    let mut report = Value::Null;
    wait_for("the pods' sockets read", Duration::from_secs(60), || {
        report = api.get("/api/v1/exposure?namespace=shop", &admin);
        ["web", "api"].iter().all(|s| !service_port(&report, s, 80)["listening"].is_null())
            && workload_port(&report, "web", "UDP", 5353).is_some()
    });

    // web: its service port is open; the debug ports are listed and found.
    let web = service_port(&report, "web", 80);
    assert_eq!(web["listening"]["open"], serde_json::json!([web_pod]), "{web:#}");
    assert!(!kinds(web).contains(&"not_listening"), "{web:#}");
    for (protocol, port) in [("TCP", 6060), ("UDP", 5353)] {
        let p = workload_port(&report, "web", protocol, port).unwrap_or_else(|| panic!("no web {protocol}/{port}"));
        assert_eq!(p["declared"], false);
        let f = p["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "listening_undeclared")
            .unwrap_or_else(|| panic!("no finding on {protocol}/{port}: {p:#}"));
        assert!(f["evidence"][0].as_str().unwrap().contains(&web_pod), "{f:#}");
    }

    // api: port 80 open, port 81 declared and targeted but never bound.
    let open = service_port(&report, "api", 80);
    assert!(!kinds(open).contains(&"not_listening"), "{open:#}");
    let closed = service_port(&report, "api", 81);
    assert_eq!(closed["listening"]["closed"], serde_json::json!([api_pod]), "{closed:#}");
    let f = closed["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "not_listening").expect("finding");
    assert!(f["message"].as_str().unwrap().contains("1 of 1 pod(s) read do not listen on TCP/8081"), "{f:#}");

    // Each finding only where its condition holds: nowhere else in the namespace,
    // and not on the clients' own sockets.
    let mut where_found: Vec<String> = report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            kinds(p)
                .into_iter()
                .filter(|k| k.contains("listening"))
                .map(|k| format!("{k} {}/{}", p["protocol"].as_str().unwrap(), p["port"]))
                .collect::<Vec<_>>()
        })
        .collect();
    where_found.sort();
    assert_eq!(
        where_found,
        ["listening_undeclared TCP/6060", "listening_undeclared UDP/5353", "not_listening TCP/81"],
        "{report:#}"
    );
    let plain = workload_port(&report, "plain", "TCP", 9000).expect("plain's declared port");
    assert_eq!(plain["listening"]["open"].as_array().unwrap().len(), 1, "{plain:#}");

    // The CLI shows how many pods listen.
    let table = lab.bulkhead(&["exposure", "--lab", &lab.name, "-n", "shop"]);
    let row = table.lines().find(|l| l.contains("svc/api:81")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" 0/1 "), "{row}");
}
