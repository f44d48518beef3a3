//! The exposure report on a lab app with a NodePort, a LoadBalancer, a
//! headless service and a database, two tenants apart: the classes; can
//! reach checked against real probes from an outside address and from the
//! other tenant's namespace, before and after policies; did reach against
//! the flows; each finding exactly when its condition holds; the tenant's
//! view; the CLI.

use std::net::IpAddr;
use std::time::Duration;

use bulkhead_model::Role;
use serde_json::{Value, json};

use crate::e2e::api::wait_for;
use crate::support::{Api, Lab};

const OUTSIDE: &str = bulkhead_lab::probe::OUTSIDE;

fn manifests() -> String {
    let annotated = |ns: &str, name: &str, port: &str, annotations: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{{annotations}}}}}\nspec:\n  replicas: 1\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, ports: [{port}]}}]}}\n"
        )
    };
    let deployment = |ns: &str, name: &str, port: &str| annotated(ns, name, port, "");
    [
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {bulkhead.dev/tenant: a}}\n".to_string(),
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other, labels: {bulkhead.dev/tenant: b}}\n".to_string(),
        deployment("shop", "web", "{containerPort: 8080, name: http}"),
        // redis also serves 7000, which no container declares
        annotated("shop", "redis", "{containerPort: 6379, name: tcp-redis}", "lab.bulkhead.dev/listens: \"tcp/7000\""),
        deployment("shop", "api", "{containerPort: 8443}"),
        deployment("other", "client", "{containerPort: 81}"),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: http, nodePort: 30080}]}\n".to_string(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: redis, namespace: shop}\nspec: {selector: {app: redis}, ports: [{name: tcp-redis, port: 6379}]}\n".to_string(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: peers, namespace: shop}\nspec: {clusterIP: None, selector: {app: redis}, ports: [{port: 6379}]}\n".to_string(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: api}, ports: [{port: 443, targetPort: 8443}]}\n".to_string(),
    ]
    .concat()
}

/// The lab pod of `ns`'s workload `app`.
fn node_ip(lab: &Lab, pod_key: &str) -> IpAddr {
    let node = lab.state.pod(pod_key).unwrap().node;
    lab.state.nodes.iter().find(|n| n.index == node).unwrap().node_ip
}

fn port<'a>(report: &'a Value, service: &str, number: u64) -> &'a Value {
    report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["service"] == service && p["port"] == number)
        .unwrap_or_else(|| panic!("no service {service} port {number} in {report:#}"))
}

fn kinds(p: &Value) -> Vec<String> {
    p["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_string()).collect()
}

fn namespaces(p: &Value) -> Vec<String> {
    p["can_reach"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap().to_string())
        .collect()
}

fn policy(name: &str, app: &str, from: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  policyTypes: [Ingress]\n  ingress: {from}\n"
    )
}

#[test]
fn classes_can_reach_did_reach_and_findings_agree_with_real_traffic() {
    let lab = Lab::up("expo", "bridge", 2, &manifests());
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let (web, redis, api_pod, client) = (
        lab.pod_of("shop", "web"),
        lab.pod_of("shop", "redis"),
        lab.pod_of("shop", "api"),
        lab.pod_of("other", "client"),
    );
    let lb = lab.state.services.iter().find(|s| s.name == "api").unwrap().load_balancer_ip.unwrap();
    assert_eq!(IpAddr::V4(lb), node_ip(&lab, &api_pod), "a Local load balancer is announced where its pod runs");

    // The classes, straight from the inventory.
    let r = api.get("/api/v1/exposure", &admin);
    let w = port(&r, "web", 80);
    assert_eq!((w["class"].as_str(), w["exposed_by"][0]["via"].as_str()), (Some("internet_facing"), Some("node_port")));
    let db = port(&r, "redis", 6379);
    assert_eq!((db["class"].as_str(), db["declared_protocol"].as_str()), (Some("cluster_internal"), Some("redis")));
    assert_eq!(port(&r, "peers", 6379)["class"], "headless");
    let a = port(&r, "api", 443);
    let via: Vec<&str> = a["exposed_by"].as_array().unwrap().iter().map(|e| e["via"].as_str().unwrap()).collect();
    assert_eq!((a["class"].as_str(), via), (Some("internet_facing"), vec!["load_balancer", "node_port"]));

    // No policy yet: the world reaches the load balancer, the other tenant the database.
    assert!(a["can_reach"]["world"].is_string(), "{a:#}");
    assert!(lab.probe(OUTSIDE, &lb.to_string(), 443, false, false), "outside -> load balancer");
    assert!(namespaces(db).contains(&"other".to_string()) && db["can_reach"]["every_namespace"] == true);
    assert!(lab.probe(&client, "shop/redis", 6379, false, false), "the other tenant reaches the database");
    for k in ["database_exposed", "cross_tenant"] {
        assert!(kinds(db).contains(&k.to_string()), "{k} in {db:#}");
    }
    assert!(kinds(w).contains(&"no_policy".to_string()) && kinds(a).contains(&"no_policy".to_string()));
    // The headless service resolves to its pod, through the cluster DNS.
    assert!(lab.probe(&web, "shop/peers", 6379, false, false), "headless DNS answer");

    // Policies: the database for shop only, the API for web only, web closed.
    for (name, app, from) in [
        ("redis", "redis", "[{from: [{podSelector: {}}]}]"),
        ("api", "api", "[{from: [{podSelector: {matchLabels: {app: web}}}]}]"),
        ("web", "web", "[]"),
    ] {
        let a = api.call(
            "POST",
            "/api/v1/policies",
            Some(&admin),
            Some(json!({"yaml": policy(name, app, from), "source": "exposure-test"})),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
    wait_for("the database closed to the other tenant", Duration::from_secs(30), || {
        !lab.probe(&client, "shop/redis", 6379, false, false)
    });
    assert!(!lab.probe(OUTSIDE, &lb.to_string(), 443, false, false), "the world is cut from the load balancer");
    // A Cluster-policy node port: on the pod's own node the client becomes
    // the node's address, which policy never stops; elsewhere it is stopped.
    let own = node_ip(&lab, &web);
    let other_node = lab.state.nodes.iter().map(|n| n.node_ip).find(|ip| *ip != own).unwrap();
    assert!(lab.probe(OUTSIDE, &own.to_string(), 30080, false, false), "node port on the pod's own node");
    assert!(!lab.probe(OUTSIDE, &other_node.to_string(), 30080, false, false), "node port through the other node");

    // Real traffic for did reach, and one port nobody declares.
    assert!(lab.probe(&web, "shop/redis", 6379, false, false));
    assert!(lab.probe(&web, &redis, 7000, false, false), "the undeclared port answers");
    let mut last = Value::Null;
    wait_for("did reach from the flows", Duration::from_secs(30), || {
        last = api.get("/api/v1/exposure?namespace=shop", &admin);
        let db = port(&last, "redis", 6379);
        let sources: Vec<&str> =
            db["did_reach"].as_array().unwrap().iter().filter_map(|d| d["source"]["name"].as_str()).collect();
        let undeclared = last["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == 7000 && !p["did_reach"].as_array().unwrap().is_empty());
        sources.contains(&"web") && undeclared
    });
    let db = port(&last, "redis", 6379);
    assert_eq!(namespaces(db), ["shop"], "{db:#}");
    assert_eq!(db["can_reach"]["every_namespace"], false);
    let web_source = db["did_reach"].as_array().unwrap().iter().find(|d| d["source"]["name"] == "web").unwrap();
    assert_eq!(web_source["dropped"], 0, "{web_source:#}");
    assert!(!kinds(db).contains(&"database_exposed".to_string()) && !kinds(db).contains(&"cross_tenant".to_string()));
    assert!(kinds(db).contains(&"unused_path".to_string()), "api is allowed and never called redis: {db:#}");
    let a = port(&last, "api", 443);
    assert!(a["can_reach"]["world"].is_null() && !kinds(a).contains(&"no_policy".to_string()), "{a:#}");
    let w = port(&last, "web", 80);
    let world = w["can_reach"]["world"].as_str().unwrap();
    assert!(world.contains(&own.to_string()), "the world reaches web through its own node: {world}");
    let undeclared = last["ports"].as_array().unwrap().iter().find(|p| p["port"] == 7000).unwrap();
    assert!(kinds(undeclared).contains(&"undeclared".into()), "{undeclared:#}");
    assert!(kinds(undeclared).contains(&"listening_undeclared".into()), "its pod listens on it: {undeclared:#}");
    assert_eq!(undeclared["declared"], false);
    assert_eq!(last["ports"].as_array().unwrap().iter().filter(|p| kinds(p).contains(&"undeclared".into())).count(), 1);

    // A tenant of `other` sees its own ports only; a bad query is refused, naming the field.
    let tenant = &api.add_tokens(&[("tenant-b", Role::Viewer, Some(&["other"]))])[0];
    let mine = api.get("/api/v1/exposure", tenant);
    assert!(mine["ports"].as_array().unwrap().iter().all(|p| p["namespace"] == "other"), "{mine:#}");
    assert_eq!(api.call("GET", "/api/v1/exposure?namespace=shop", Some(tenant), None).status, 403);
    let bad = api.call("GET", "/api/v1/exposure?finding=everything", Some(&admin), None);
    assert_eq!(bad.status, 400, "{}", bad.text);

    // The CLI prints the same report.
    let out = lab.bulkhead(&["exposure", "--lab", &lab.name, "-n", "shop"]);
    println!("{out}");
    assert!(
        out.contains("shop/svc/web:80/TCP") && out.contains("internet_facing") && out.contains("[unused_path]"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&lab.bulkhead(&["exposure", "--lab", &lab.name, "-o", "json"])).unwrap();
    assert_eq!(port(&json, "redis", 6379)["class"], "cluster_internal");
}

/// A workload nobody talks to gets a "nothing observed" deny-all suggestion
/// once its window has passed; enforced, it stops a probe from another namespace.
#[test]
fn an_idle_workload_gets_deny_all_that_blocks_another_namespace_once_applied() {
    let manifests = [
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: idle, namespace: shop, labels: {app: idle}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n",
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: other, labels: {app: client}}\nspec: {containers: [{name: c, ports: [{containerPort: 81}]}]}\n",
    ]
    .concat();
    let lab = Lab::up_with("idle", "bridge", 1, &manifests, &["--learn-window", "2", "--learn-quiet", "1"]);
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let mut record = Value::Null;
    wait_for("a nothing-observed suggestion", Duration::from_secs(30), || {
        let a = api.call("POST", "/api/v1/suggestions", Some(&admin), Some(json!({"namespace": "shop"})));
        assert_eq!(a.status, 200, "{}", a.text);
        match a.body.as_array().unwrap().iter().find(|r| r["workload"]["name"] == "idle") {
            Some(r) => {
                record = r.clone();
                true
            }
            None => false,
        }
    });
    let warnings = record["warnings"].to_string();
    assert!(warnings.contains("nothing observed"), "{record:#}");
    assert_eq!(record["policy"]["metadata"]["annotations"]["bulkhead.dev/basis"], "nothing-observed");
    assert_eq!(record["policy"]["spec"]["ingress"], json!([]), "{record:#}");
    assert!(lab.probe("other/client", "shop/idle", 80, false, false), "open before the policy");
    let id = record["id"].as_u64().unwrap();
    for (step, body) in
        [("approve", json!({"reason": "idle"})), ("apply", json!({"mode": "enforce", "reason": "idle"}))]
    {
        let a = api.call("POST", &format!("/api/v1/suggestions/{id}/{step}"), Some(&admin), Some(body));
        assert_eq!(a.status, 200, "{step}: {}", a.text);
    }
    wait_for("the idle pod closed", Duration::from_secs(30), || {
        !lab.probe("other/client", "shop/idle", 80, false, false)
    });
}
