//! The block list on a two-node lab, with real traffic: a blocked outside
//! address is dropped at every node's uplink prefilter (a Cluster NodePort,
//! where kube-proxy's SNAT hides the client from the pods), a blocked pod
//! address both ways at the pods, established connections included; the
//! blocks survive agent restarts; one expires on time by itself and the
//! other is lifted; every change is audited; tenants may not block.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulkhead_model::Role;
use serde_json::{Value, json};

use crate::e2e::api::wait_for;
use crate::support::{Api, Conn, Killed, Lab};

const OUTSIDE: &str = bulkhead_lab::probe::OUTSIDE;

fn manifests() -> String {
    let deployment = |ns: &str, name: &str, port: u16| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: 1\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, ports: [{{containerPort: {port}}}]}}]}}\n"
        )
    };
    [
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_string(),
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other, labels: {bulkhead.dev/tenant: b}}\n".to_string(),
        deployment("shop", "web", 8080),
        deployment("other", "intruder", 81),
        deployment("other", "bystander", 82),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}\n".to_string(),
    ]
    .concat()
}

fn wall_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn block(api: &Api, token: &str, body: Value) -> Value {
    let a = api.call("POST", "/api/v1/blocks", Some(token), Some(body));
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

#[test]
fn blocked_prefixes_drop_both_ways_on_every_node_survive_restarts_and_expire() {
    let lab = Lab::up("block", "bridge", 2, &manifests());
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let (web, intruder, bystander) =
        (lab.pod_of("shop", "web"), lab.pod_of("other", "intruder"), lab.pod_of("other", "bystander"));
    let intruder_ip = lab.ip(&intruder, false);
    let nodes: Vec<String> = lab.state.nodes.iter().map(|n| n.node_ip.to_string()).collect();
    assert_eq!(nodes.len(), 2);

    // Before: everything connects.
    for n in &nodes {
        assert!(lab.probe(OUTSIDE, n, 30080, false, false), "outside -> {n}:30080 before any block");
    }
    assert!(lab.probe(&intruder, &web, 8080, false, false));
    assert!(lab.probe(&web, &intruder, 81, false, false));
    // An established connection from the intruder, which the block must cut.
    let web_addr = SocketAddr::new(lab.ip(&web, false), 8080);
    let mut established = Conn::open(lab.netns(&intruder), web_addr);
    assert!(established.echo());

    // Bad requests and tenants are refused, and change nothing.
    let bad = api.call("POST", "/api/v1/blocks", Some(&admin), Some(json!({"cidr": "10.0.0.1/8", "reason": "x"})));
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("cidr") && bad.text.contains("did you mean 10.0.0.0/8"), "{}", bad.text);
    let no_reason =
        api.call("POST", "/api/v1/blocks", Some(&admin), Some(json!({"cidr": "10.0.0.0/8", "reason": " "})));
    assert_eq!(no_reason.status, 400);
    let never = api.call(
        "POST",
        "/api/v1/blocks",
        Some(&admin),
        Some(json!({"cidr": "10.0.0.0/8", "reason": "x", "expires_in": "soon"})),
    );
    assert!(never.status == 400 && never.text.contains("expires_in"), "{}", never.text);
    let tenant = &api.add_tokens(&[("tenant-b", Role::Responder, Some(&["other"]))])[0];
    let refused =
        api.call("POST", "/api/v1/blocks", Some(tenant), Some(json!({"cidr": "203.0.113.0/24", "reason": "x"})));
    assert_eq!(refused.status, 403, "{}", refused.text);
    let viewer = api.lab_token("viewer");
    assert_eq!(
        api.call("POST", "/api/v1/blocks", Some(&viewer), Some(json!({"cidr": "203.0.113.0/24", "reason": "x"})))
            .status,
        403
    );
    assert!(api.get("/api/v1/blocks", &admin)["items"].as_array().unwrap().is_empty());

    // Block the outside address for a while, and the intruder pod until lifted.
    let outside = block(
        &api,
        &admin,
        json!({"cidr": bulkhead_lab::probe::OUTSIDE_IP.to_string(), "reason": "e2e: scanner", "expires_in": "40s"}),
    );
    let expires_ns = outside["expires_ns"].as_i64().unwrap();
    assert_eq!(outside["cidr"], format!("{}/32", bulkhead_lab::probe::OUTSIDE_IP));
    let pod_block = block(&api, &admin, json!({"cidr": intruder_ip.to_string(), "reason": "e2e: compromised"}));
    let again = block(&api, &admin, json!({"cidr": intruder_ip.to_string(), "reason": "twice"}));
    assert_eq!(again["id"], pod_block["id"], "an active block of the same prefix is returned, not doubled");

    wait_for("the blocks to reach every node", Duration::from_secs(15), || {
        !lab.probe(OUTSIDE, &nodes[0], 30080, false, false) && !lab.probe(&intruder, &web, 8080, false, false)
    });
    let blocked = |lab: &Lab| {
        for n in &nodes {
            assert!(!lab.probe(OUTSIDE, n, 30080, false, false), "outside -> {n}:30080 must be blocked");
        }
        assert!(!lab.probe(&intruder, &web, 8080, false, false), "from the blocked pod");
        assert!(!lab.probe(&web, &intruder, 81, false, false), "to the blocked pod");
        assert!(lab.probe(&bystander, &web, 8080, false, false), "an unblocked pod is untouched");
        assert!(lab.probe(&web, &bystander, 82, false, false), "an unblocked pod is untouched");
    };
    blocked(&lab);
    assert!(!established.echo(), "the established connection of the blocked pod is cut");
    for s in lab.status() {
        assert!(
            s.counters.get("prefilter_drops").copied().unwrap_or(0) > 0,
            "node {} prefilter dropped nothing",
            s.node
        );
    }
    assert!(lab.counter("drops_blocked") > 0);

    // Both agents restarted: the blocks hold, from the pinned map and the saved state.
    let dir = bulkhead_lab::state::dir(&lab.name);
    for n in &lab.state.nodes {
        let killed = Killed::kill(n.agent_pid.unwrap(), dir.join(format!("agent-n{}.log", n.index)));
        killed.restart();
    }
    std::thread::sleep(Duration::from_secs(2));
    blocked(&lab);

    // The CLI sees both, in force.
    let out = lab.bulkhead(&["block", "list", "--lab", &lab.name, "--active"]);
    assert!(
        out.contains(&format!("{intruder_ip}/32")) && out.contains("e2e: scanner") && out.contains("active"),
        "{out}"
    );

    // The outside block expires on time by itself: still blocked just before, open just after.
    let left = Duration::from_nanos((expires_ns - wall_ns()).max(0) as u64);
    assert!(left > Duration::from_secs(3), "the test ran too slowly to check the expiry ({left:?} left)");
    std::thread::sleep(left - Duration::from_secs(2));
    assert!(!lab.probe(OUTSIDE, &nodes[1], 30080, false, false), "still blocked 2 s before its expiry");
    let started = Instant::now();
    wait_for("the expired block to lift", Duration::from_secs(10), || {
        lab.probe(OUTSIDE, &nodes[1], 30080, false, false)
    });
    assert!(wall_ns() >= expires_ns, "lifted before its time");
    eprintln!("lifted {:?} after waiting began", started.elapsed());
    assert!(lab.probe(OUTSIDE, &nodes[0], 30080, false, false));
    assert!(!lab.probe(&intruder, &web, 8080, false, false), "the other block still holds");
    wait_for("the controller to record the expiry", Duration::from_secs(5), || {
        api.get("/api/v1/blocks?state=expired", &admin)["items"].as_array().unwrap().len() == 1
    });

    // Lifted by a person.
    let id = pod_block["id"].as_u64().unwrap();
    let lifted = api.call("DELETE", &format!("/api/v1/blocks/{id}?reason=e2e%3A%20cleared"), Some(&admin), None);
    assert_eq!(lifted.status, 200, "{}", lifted.text);
    assert_eq!(lifted.body["state"], "lifted");
    wait_for("the lifted block to open", Duration::from_secs(15), || lab.probe(&intruder, &web, 8080, false, false));
    assert!(lab.probe(&web, &intruder, 81, false, false));
    let twice = api.call("DELETE", &format!("/api/v1/blocks/{id}?reason=again"), Some(&admin), None);
    assert_eq!(twice.status, 409, "{}", twice.text);

    // Every change and every refusal is in the audit log.
    let audit = api.get("/api/v1/audit?limit=1000", &admin);
    let entries = audit["items"].as_array().unwrap();
    let has = |action: &str, outcome: &str| entries.iter().any(|e| e["action"] == action && e["outcome"] == outcome);
    assert!(has("block", "ok") && has("unblock", "ok") && has("block-expired", "ok"), "{audit:#}");
    assert!(has("block", "refused"), "the tenant's and the viewer's refusals are audited: {audit:#}");
}
