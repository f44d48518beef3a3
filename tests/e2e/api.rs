//! The controller's HTTPS API on a lab with real traffic between two
//! tenants (shop and bank): every endpoint through a real HTTP client
//! (happy path, bad input answered as problem+json with nothing changed,
//! pagination), the authorization matrix (every role, cluster-wide and as a
//! tenant of shop, against every endpoint, inside and outside shop: 401
//! without a token, 403 for the wrong role or scope, each refusal audited),
//! and a tenant seeing nothing of the other tenant's pods.

use std::time::{Duration, Instant};

use bulkhead_model::Role;
use serde_json::{Value, json};

use crate::support::{Api, Lab, deployment, pod};

/// Two tenants' apps: shop calls bank and bank calls shop back.
pub fn manifests() -> String {
    [
        deployment("shop", "web", 80, "api:8080, ledger.bank:9000"),
        deployment("shop", "api", 8080, ""),
        deployment("bank", "ledger", 9000, "api.shop:8080"),
        deployment("bank", "vault", 5432, ""),
        pod("shop", "spare", "spare", &["81"]),
        pod("bank", "spare", "spare", &["81"]),
    ]
    .concat()
}

/// One endpoint of the matrix: its request, and whether a tenant of shop
/// is refused it by scope (the request acts on or names bank).
struct Row {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    role: Role,
    outside: bool,
}

fn row(
    name: &'static str,
    method: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    role: Role,
    outside: bool,
) -> Row {
    Row { name, method, path: path.into(), body, role, outside }
}

fn noop_policy(ns: &str) -> Value {
    json!({"yaml": format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: matrix-noop, namespace: {ns}}}\nspec:\n  podSelector: {{matchLabels: {{matrix: nobody}}}}\n  policyTypes: [Ingress]\n"), "source": "matrix"})
}

fn refusals(api: &Api, admin: &str, user: &str) -> Vec<Value> {
    let path = format!("/api/v1/audit?user={user}&outcome=refused&limit=1000");
    api.get(&path, admin)["items"].as_array().unwrap().clone()
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn every_endpoint_every_role_and_tenants_see_only_their_own() {
    let lab = Lab::up_with("api", "bridge", 2, &manifests(), &["--learn-window", "3", "--learn-quiet", "2"]);
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let viewer = api.lab_token("viewer");
    assert_eq!(api.get("/api/v1/whoami", &viewer)["role"], "viewer");

    // Baselines, then suggestions, then an anomaly: bank/vault calls shop/api for the first time.
    wait_for("stable baselines", Duration::from_secs(90), || {
        let b = api.get("/api/v1/baselines", &admin);
        let w = b["workloads"].as_array().unwrap();
        w.len() >= 4 && w.iter().all(|x| x["phase"] == "stable")
    });
    let made = api.call("POST", "/api/v1/suggestions", Some(&admin), Some(json!({})));
    assert_eq!(made.status, 200, "{}", made.text);
    let id_of = |ns: &str, name: &str| {
        made.body
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workload"]["namespace"] == ns && r["workload"]["name"] == name)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let (shop_id, bank_id) = (id_of("shop", "web"), id_of("bank", "ledger"));
    assert!(lab.probe("bank/vault-0", "shop/api", 8080, false, false));
    wait_for("an anomaly", Duration::from_secs(30), || {
        !api.get("/api/v1/anomalies", &admin)["items"].as_array().unwrap().is_empty()
    });

    // ---- Every endpoint, happy path (cluster admin). ----
    let status = api.get("/api/v1/status", &admin);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 2);
    assert!(status["nodes"].as_array().unwrap().iter().all(|n| n["in_sync"] == true), "{status}");
    let names: Vec<String> = api
        .get("/api/v1/namespaces", &admin)
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().into())
        .collect();
    assert!(names.contains(&"shop".into()) && names.contains(&"bank".into()), "{names:?}");
    let pods = api.get("/api/v1/pods?namespace=shop", &admin);
    assert_eq!(pods["items"].as_array().unwrap().len(), 3, "{pods}");
    let workloads = api.get("/api/v1/workloads?namespace=bank", &admin);
    assert!(
        workloads.as_array().unwrap().iter().any(|w| w["name"] == "ledger" && w["kind"] == "Deployment"),
        "{workloads}"
    );
    let services = api.get("/api/v1/services?namespace=shop", &admin);
    assert!(
        services.as_array().unwrap().iter().any(|s| s["name"] == "api" && s["ports"][0]["port"] == 8080),
        "{services}"
    );
    let flows = api.get("/api/v1/flows?workload=shop/web&limit=50", &admin);
    assert!(!flows["items"].as_array().unwrap().is_empty(), "{flows}");
    let seen = api.stream_until("/api/v1/flows/stream?namespace=shop", &admin, "event: flow", Duration::from_secs(10));
    assert!(seen.contains("event: flow") && seen.contains("id: "), "{seen}");
    let graph = api.get("/api/v1/graph", &admin);
    let ids: Vec<&str> = graph["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"workload:shop/Deployment/web") && ids.contains(&"workload:bank/Deployment/ledger"),
        "{ids:?}"
    );
    let cross = graph["edges"].as_array().unwrap().iter().any(|e| {
        e["source"] == "workload:shop/Deployment/web"
            && e["destination"] == "workload:bank/Deployment/ledger"
            && e["port"] == 9000
    });
    assert!(cross, "{graph}");
    let by_ns = api.get("/api/v1/graph?level=namespace", &admin);
    assert!(
        by_ns["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "namespace:shop" && e["destination"] == "namespace:bank")
    );
    let by_pod = api.get("/api/v1/graph?level=pod&since=1h", &admin);
    assert!(by_pod["nodes"].as_array().unwrap().iter().any(|n| n["id"] == "pod:shop/web-0"), "{by_pod}");
    let diff = api.get("/api/v1/graph/diff?since=1h&until=20s", &admin);
    assert!(diff["new"].is_array() && diff["vanished"].is_array(), "{diff}");
    let radius = api.get("/api/v1/graph/blast-radius?workload=shop/web", &admin);
    assert!(radius["reachable"].as_array().unwrap().iter().any(|n| n["name"] == "ledger"), "{radius}");
    // No policy yet: everything is allowed, and web → api:8080 is the used part of it.
    let allowed = api.get("/api/v1/graph/allowed?namespace=shop", &admin);
    let edge = |src: &str, dst: &str, port: u16| {
        allowed["edges"].as_array().unwrap().iter().find(|e| {
            e["source"] == format!("workload:shop/Deployment/{src}")
                && e["destination"] == format!("workload:{dst}")
                && e["port"] == port
        })
    };
    assert_eq!(edge("web", "shop/Deployment/api", 8080).map(|e| e["observed"].clone()), Some(json!(true)), "{allowed}");
    assert_eq!(
        edge("api", "bank/Deployment/vault", 5432).map(|e| e["observed"].clone()),
        Some(json!(false)),
        "{allowed}"
    );
    let anomalies = api.get("/api/v1/anomalies?namespace=shop", &admin);
    let a = &anomalies["items"][0];
    assert_eq!((a["source"]["name"].as_str(), a["destination"]["name"].as_str()), (Some("vault"), Some("api")), "{a}");
    let list = api.get("/api/v1/suggestions?namespace=shop", &admin);
    assert!(list["items"].as_array().unwrap().iter().all(|r| r["workload"]["namespace"] == "shop"));
    let export = api.get("/api/v1/suggestions/export", &admin);
    assert_eq!((export["apiVersion"].as_str(), export["kind"].as_str()), (Some("v1"), Some("List")));
    assert!(export["items"].as_array().unwrap().iter().all(|p| p["kind"] == "NetworkPolicy"));
    let yaml = api.call("GET", "/api/v1/suggestions/export?format=yaml", Some(&admin), None);
    assert!(yaml.content_type.starts_with("application/yaml") && yaml.text.contains("kind: List"), "{}", yaml.text);
    let detail = api.get(&format!("/api/v1/suggestions/{shop_id}"), &admin);
    assert!(detail["yaml"].as_str().unwrap().contains("kind: NetworkPolicy") && detail["history"].is_array());
    let policies = api.get("/api/v1/policies", &admin);
    assert!(policies.is_array());
    let explain = api.get("/api/v1/explain?from=shop/web-0&to=bank/ledger-0&port=9000", &admin);
    assert_eq!(explain["allowed"], true, "{explain}");
    let q = api.call("POST", "/api/v1/quarantines", Some(&admin), Some(json!({"pod": "shop/spare", "reason": "e2e"})));
    assert_eq!(q.status, 201, "{}", q.text);
    let qid = q.body["id"].as_u64().unwrap();
    assert_eq!(q.body["pods"][0]["enforced"], true, "{}", q.text);
    assert_eq!(api.get(&format!("/api/v1/quarantines/{qid}"), &admin)["state"], "active");
    let released = api.call("DELETE", &format!("/api/v1/quarantines/{qid}?reason=done"), Some(&admin), None);
    assert_eq!((released.status, released.body["state"].as_str()), (200, Some("released")), "{}", released.text);
    let audit = api.get("/api/v1/audit?action=quarantine", &admin);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["user"] == "lab-admin" && e["target"].as_str().unwrap().contains("shop/spare"))
    );

    // ---- Pagination: pages chain with an opaque cursor, no overlap, nothing missed. ----
    let mut seen = Vec::new();
    let mut path = "/api/v1/pods?limit=2".to_string();
    loop {
        let page = api.get(&path, &admin);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items.iter().map(|p| format!("{}/{}", p["namespace"].as_str().unwrap(), p["name"].as_str().unwrap())),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/pods?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (lab.state.pods.len(), lab.state.pods.len()), "every pod once: {seen:?}");
    let first = api.get("/api/v1/flows?limit=3", &admin);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = api.get(&format!("/api/v1/flows?limit=3&cursor={cursor}"), &admin);
    let last_of_first = first["items"][2]["id"].as_u64().unwrap();
    assert!(
        second["items"].as_array().unwrap().iter().all(|f| f["id"].as_u64().unwrap() < last_of_first),
        "newest first, no overlap"
    );
    let audit1 = api.get("/api/v1/audit?limit=1", &admin);
    let audit2 = api.get(&format!("/api/v1/audit?limit=1&cursor={}", audit1["next_cursor"].as_str().unwrap()), &admin);
    assert!(audit2["items"][0]["id"].as_u64() < audit1["items"][0]["id"].as_u64());
    // A cursor of one list is refused by another.
    let wrong = api.call("GET", &format!("/api/v1/pods?cursor={cursor}"), Some(&admin), None);
    assert_eq!((wrong.status, wrong.body["field"].as_str()), (400, Some("cursor")));

    // ---- Bad input: problem+json naming the field, nothing changed. ----
    let before = api.get("/api/v1/status", &admin);
    for (method, path, body, field) in [
        ("GET", "/api/v1/flows?limit=0", None, "limit"),
        ("GET", "/api/v1/flows?since=yesterday", None, "since"),
        ("GET", "/api/v1/flows?pod=NOT_A_NAME", None, "pod"),
        ("GET", "/api/v1/flows?protocol=carrier-pigeon", None, "protocol"),
        ("GET", "/api/v1/graph?level=galaxy", None, "level"),
        ("GET", "/api/v1/graph/diff?since=1h", None, "until"),
        ("GET", "/api/v1/graph/blast-radius?workload=web", None, "workload"),
        ("GET", "/api/v1/anomalies?limit=5000", None, "limit"),
        ("GET", "/api/v1/explain?from=shop/web-0&to=shop/api-0", None, "port"),
        ("GET", "/api/v1/suggestions/x", None, "id"),
        ("POST", "/api/v1/suggestions/1/apply", Some(json!({"mode": "learn"})), "mode"),
        ("POST", "/api/v1/quarantines", Some(json!({"pod": "shop/spare"})), "reason"),
        (
            "POST",
            "/api/v1/quarantines",
            Some(json!({"pod": "shop/spare", "workload": "shop/web", "reason": "x"})),
            "pod",
        ),
        ("POST", "/api/v1/quarantines", Some(json!({"pod": "spare", "reason": "x"})), "pod"),
        ("DELETE", "/api/v1/quarantines/1", None, "reason"),
        ("GET", "/api/v1/audit?outcome=maybe", None, "outcome"),
        (
            "POST",
            "/api/v1/policies",
            Some(
                json!({"yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/40}}]}]}\n"}),
            ),
            "spec.ingress[0].from[0].ipBlock.cidr",
        ),
        ("POST", "/api/v1/policies", Some(json!({"yaml": "a: ["})), "yaml"),
    ] {
        let a = api.call(method, path, Some(&admin), body);
        assert_eq!(a.status, 400, "{method} {path}: {}", a.text);
        assert_eq!(a.content_type, "application/problem+json", "{method} {path}");
        assert_eq!(a.body["field"].as_str(), Some(field), "{method} {path}: {}", a.text);
    }
    let bad = api.call("POST", "/api/v1/policies", Some(&admin), Some(json!({"yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/40}}]}]}\n"})));
    assert_eq!(bad.body["object"], "NetworkPolicy shop/bad");
    let unknown =
        api.call("POST", "/api/v1/quarantines", Some(&admin), Some(json!({"pod": "shop/ghost", "reason": "x"})));
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let after = api.get("/api/v1/status", &admin);
    assert_eq!(
        (after["generation"].clone(), after["network_policies"].clone()),
        (before["generation"].clone(), before["network_policies"].clone()),
        "a rejected change changes nothing"
    );

    // ---- The authorization matrix. ----
    let holders: Vec<(String, Role, Option<&[&str]>)> = Role::ALL
        .iter()
        .flat_map(|r| [(format!("c-{r}"), *r, None), (format!("shop-{r}"), *r, Some(&["shop"][..]))])
        .collect();
    let spec: Vec<(&str, Role, Option<&[&str]>)> = holders.iter().map(|(u, r, n)| (u.as_str(), *r, *n)).collect();
    let tokens = api.add_tokens(&spec);
    let rows = [
        row("whoami", "GET", "/api/v1/whoami", None, Role::Viewer, false),
        row("status", "GET", "/api/v1/status", None, Role::Viewer, false),
        row("namespaces", "GET", "/api/v1/namespaces", None, Role::Viewer, false),
        row("pods", "GET", "/api/v1/pods", None, Role::Viewer, false),
        row("workloads", "GET", "/api/v1/workloads", None, Role::Viewer, false),
        row("services", "GET", "/api/v1/services", None, Role::Viewer, false),
        row("flows", "GET", "/api/v1/flows", None, Role::Viewer, false),
        row("stream", "GET", "/api/v1/flows/stream", None, Role::Viewer, false),
        row("graph", "GET", "/api/v1/graph", None, Role::Viewer, false),
        row("graph diff", "GET", "/api/v1/graph/diff?since=1h&until=1m", None, Role::Viewer, false),
        row("blast radius in", "GET", "/api/v1/graph/blast-radius?workload=shop/web", None, Role::Viewer, false),
        row("blast radius out", "GET", "/api/v1/graph/blast-radius?workload=bank/ledger", None, Role::Viewer, true),
        row("allowed in", "GET", "/api/v1/graph/allowed?namespace=shop", None, Role::Viewer, false),
        row("allowed out", "GET", "/api/v1/graph/allowed?namespace=bank", None, Role::Viewer, true),
        row("exposure in", "GET", "/api/v1/exposure?namespace=shop", None, Role::Viewer, false),
        row("exposure out", "GET", "/api/v1/exposure?namespace=bank", None, Role::Viewer, true),
        row("baselines", "GET", "/api/v1/baselines", None, Role::Viewer, false),
        row("anomalies", "GET", "/api/v1/anomalies", None, Role::Viewer, false),
        row("suggest in", "POST", "/api/v1/suggestions", Some(json!({"namespace": "shop"})), Role::Reviewer, false),
        row("suggest out", "POST", "/api/v1/suggestions", Some(json!({"namespace": "bank"})), Role::Reviewer, true),
        row("suggestions", "GET", "/api/v1/suggestions", None, Role::Viewer, false),
        row("export", "GET", "/api/v1/suggestions/export", None, Role::Viewer, false),
        row("suggestion in", "GET", format!("/api/v1/suggestions/{shop_id}"), None, Role::Viewer, false),
        row("suggestion out", "GET", format!("/api/v1/suggestions/{bank_id}"), None, Role::Viewer, true),
        row(
            "approve in",
            "POST",
            format!("/api/v1/suggestions/{shop_id}/approve"),
            Some(json!({"reason": "m"})),
            Role::Reviewer,
            false,
        ),
        row(
            "approve out",
            "POST",
            format!("/api/v1/suggestions/{bank_id}/approve"),
            Some(json!({"reason": "m"})),
            Role::Reviewer,
            true,
        ),
        row(
            "reject in",
            "POST",
            format!("/api/v1/suggestions/{shop_id}/reject"),
            Some(json!({"reason": "m"})),
            Role::Reviewer,
            false,
        ),
        row(
            "reject out",
            "POST",
            format!("/api/v1/suggestions/{bank_id}/reject"),
            Some(json!({"reason": "m"})),
            Role::Reviewer,
            true,
        ),
        row(
            "audit-apply in",
            "POST",
            format!("/api/v1/suggestions/{shop_id}/apply"),
            Some(json!({"mode": "audit"})),
            Role::Reviewer,
            false,
        ),
        row(
            "audit-apply out",
            "POST",
            format!("/api/v1/suggestions/{bank_id}/apply"),
            Some(json!({"mode": "audit"})),
            Role::Reviewer,
            true,
        ),
        row(
            "enforce in",
            "POST",
            format!("/api/v1/suggestions/{shop_id}/apply"),
            Some(json!({"mode": "enforce"})),
            Role::Admin,
            false,
        ),
        row(
            "enforce out",
            "POST",
            format!("/api/v1/suggestions/{bank_id}/apply"),
            Some(json!({"mode": "enforce"})),
            Role::Admin,
            true,
        ),
        row("policies", "GET", "/api/v1/policies", None, Role::Viewer, false),
        row("apply in", "POST", "/api/v1/policies", Some(noop_policy("shop")), Role::Admin, false),
        row("apply out", "POST", "/api/v1/policies", Some(noop_policy("bank")), Role::Admin, true),
        row(
            "apply cluster-wide",
            "POST",
            "/api/v1/policies",
            Some(json!({"yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: matrix}\n"})),
            Role::Admin,
            true,
        ),
        row("delete in", "POST", "/api/v1/policies/delete", Some(noop_policy("shop")), Role::Admin, false),
        row("delete out", "POST", "/api/v1/policies/delete", Some(noop_policy("bank")), Role::Admin, true),
        row(
            "explain in",
            "GET",
            "/api/v1/explain?from=shop/web-0&to=bank/ledger-0&port=9000",
            None,
            Role::Viewer,
            false,
        ),
        row(
            "explain out",
            "GET",
            "/api/v1/explain?from=bank/ledger-0&to=bank/vault-0&port=5432",
            None,
            Role::Viewer,
            true,
        ),
        row(
            "quarantine in",
            "POST",
            "/api/v1/quarantines",
            Some(json!({"pod": "shop/spare", "reason": "matrix"})),
            Role::Responder,
            false,
        ),
        row(
            "quarantine out",
            "POST",
            "/api/v1/quarantines",
            Some(json!({"pod": "bank/spare", "reason": "matrix"})),
            Role::Responder,
            true,
        ),
        row("quarantines", "GET", "/api/v1/quarantines", None, Role::Viewer, false),
        row("quarantine get in", "GET", format!("/api/v1/quarantines/{qid}"), None, Role::Viewer, false),
        row("blocks", "GET", "/api/v1/blocks", None, Role::Viewer, false),
        // A block reaches every namespace: a tenant is refused it whatever it names.
        row(
            "block",
            "POST",
            "/api/v1/blocks",
            Some(json!({"cidr": "198.51.100.0/24", "reason": "matrix", "expires_in": "10m"})),
            Role::Responder,
            true,
        ),
        row("audit", "GET", "/api/v1/audit", None, Role::Viewer, false),
        row("audit out", "GET", "/api/v1/audit?namespace=bank", None, Role::Viewer, true),
    ];
    // The quarantine of bank/spare, made by a cluster admin, for the tenant to be refused.
    let bank_q = api.call(
        "POST",
        "/api/v1/quarantines",
        Some(&admin),
        Some(json!({"pod": "bank/spare", "reason": "matrix target"})),
    );
    let bank_qid = bank_q.body["id"].as_u64().unwrap();
    let bid = api
        .call(
            "POST",
            "/api/v1/blocks",
            Some(&admin),
            Some(json!({"cidr": "198.51.100.128/25", "reason": "matrix target", "expires_in": "10m"})),
        )
        .body["id"]
        .as_u64()
        .unwrap();
    let extra = [
        row("unblock", "DELETE", format!("/api/v1/blocks/{bid}?reason=matrix"), None, Role::Responder, true),
        row("quarantine get bank", "GET", format!("/api/v1/quarantines/{bank_qid}"), None, Role::Viewer, true),
        row(
            "release bank",
            "DELETE",
            format!("/api/v1/quarantines/{bank_qid}?reason=matrix"),
            None,
            Role::Responder,
            true,
        ),
    ];
    let mut checked = 0;
    for ((user, role, ns), token) in holders.iter().zip(&tokens) {
        let tenant = ns.is_some();
        let mut expected_refusals = refusals(&api, &admin, user).len();
        for r in rows.iter().chain(&extra) {
            // A cluster-wide responder would release bank's quarantine for everyone after it: keep it for the tenants.
            if r.name == "release bank" && !tenant {
                continue;
            }
            let a = api.call(r.method, &r.path, Some(token), r.body.clone());
            let refused = !role.includes(r.role) || (tenant && r.outside);
            if refused {
                assert_eq!(a.status, 403, "{user} {}: {} {} -> {}", r.name, r.method, r.path, a.text);
                assert_eq!(a.content_type, "application/problem+json");
                expected_refusals += 1;
                let audited = refusals(&api, &admin, user);
                assert_eq!(audited.len(), expected_refusals, "{user} {}: the refusal is audited", r.name);
                assert_eq!(audited[0]["outcome"], "refused");
                assert_eq!(audited[0]["role"], role.as_str());
                assert!(audited[0]["source"].as_str().unwrap().starts_with("127.0.0.1:"), "{}", audited[0]);
            } else {
                assert!(
                    ![401, 403].contains(&a.status),
                    "{user} {}: {} {} -> {} {}",
                    r.name,
                    r.method,
                    r.path,
                    a.status,
                    a.text
                );
                assert!(a.status < 500, "{user} {}: {}", r.name, a.text);
            }
            checked += 1;
        }
    }
    assert!(checked >= 8 * rows.len());
    // Without a token, or with a wrong one: 401 everywhere, audited.
    let before = api.get("/api/v1/audit?action=authenticate&limit=1000", &admin)["items"].as_array().unwrap().len();
    for r in &rows {
        for token in [None, Some("not-a-token")] {
            let a = api.call(r.method, &r.path, token, r.body.clone());
            assert_eq!(a.status, 401, "{:?} {}: {}", token, r.name, a.text);
            assert_eq!(a.body["status"], 401);
        }
    }
    let after = api.get("/api/v1/audit?action=authenticate&limit=1000", &admin)["items"].as_array().unwrap().len();
    assert_eq!(after - before, 2 * rows.len(), "every unauthenticated request is audited");

    // ---- A tenant sees nothing of the other tenant's pods. ----
    // Holders go c-viewer, shop-viewer, c-responder, …
    let shop_viewer = &tokens[1];
    assert_eq!(api.get("/api/v1/whoami", shop_viewer)["namespaces"], json!(["shop"]));
    let bank_pods: Vec<_> = lab.state.pods.iter().filter(|p| p.namespace == "bank").collect();
    let mut secrets: Vec<String> = bank_pods.iter().map(|p| p.name.clone()).filter(|n| n != "spare").collect();
    secrets.extend(bank_pods.iter().flat_map(|p| p.ips.iter().map(|i| format!("\"{i}\""))));
    let observed = [
        "/api/v1/flows?limit=1000",
        "/api/v1/flows?namespace=bank&limit=1000",
        "/api/v1/graph",
        "/api/v1/graph?level=pod&since=1h",
        "/api/v1/graph?level=namespace",
        "/api/v1/graph/diff?since=1h&until=10s",
        "/api/v1/graph/blast-radius?workload=shop/web",
        "/api/v1/anomalies",
        "/api/v1/baselines",
    ];
    let reviewed = ["/api/v1/suggestions", "/api/v1/suggestions/export", &format!("/api/v1/suggestions/{shop_id}")];
    let other = [
        "/api/v1/pods",
        "/api/v1/workloads",
        "/api/v1/services",
        "/api/v1/quarantines",
        "/api/v1/audit",
        "/api/v1/status",
        "/api/v1/policies",
        "/api/v1/explain?from=shop/web-0&to=bank/ledger-0&port=9000",
    ];
    let flows = api.get("/api/v1/flows?limit=1000", shop_viewer);
    let redacted = flows["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["source"]["kind"] == "namespace" || f["destination"]["kind"] == "namespace");
    assert!(redacted, "cross-tenant flows are shown with the other end as its namespace");
    for path in observed.iter().copied().chain(reviewed.iter().map(|s| s.as_ref())).chain(other) {
        let text = api.get(path, shop_viewer).to_string();
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{path} shows bank's {s}: {text}");
        }
        if observed.contains(&path) {
            // Flows, the graph and anomalies do not even name bank's workloads.
            assert!(!text.contains("ledger") && !text.contains("vault"), "{path}: {text}");
        }
    }
    let seen = api.stream_until("/api/v1/flows/stream", shop_viewer, "event: flow", Duration::from_secs(10));
    assert!(seen.contains("event: flow") && !secrets.iter().any(|s| seen.contains(s.as_str())), "{seen}");
}
