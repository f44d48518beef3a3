//! Quarantine cuts a pod off both ways, established connections included,
//! is audited, and is lifted cleanly.

use std::net::SocketAddr;

use crate::support::{Api, Conn, Killed, Lab, pod};

fn pods() -> String {
    [pod("x", "a", "a", &["80"]), pod("x", "victim", "v", &["80"])].concat()
}

#[test]
fn quarantine_cuts_both_directions_including_established_connections() {
    let mut lab = Lab::up("quar", "bridge", 2, &pods());
    let mut conn = Conn::open(lab.netns("x/a"), SocketAddr::new(lab.ip("x/victim", false), 80));
    assert!(conn.echo(), "connection works before quarantine");
    assert!(lab.probe("x/victim", "x/a", 80, false, false));

    let out = lab.bulkhead(&["quarantine", "--lab", &lab.name, "x/victim", "--reason", "e2e: suspected compromise"]);
    assert!(out.contains("quarantined"), "{out}");

    assert!(!conn.echo(), "the established connection must be cut");
    assert!(!lab.probe("x/a", "x/victim", 80, false, false), "nothing reaches the victim");
    assert!(!lab.probe("x/victim", "x/a", 80, false, false), "the victim reaches nothing");
    assert!(!lab.probe("x/victim", "x/a", 80, false, true), "not over IPv6 either");
    let status = lab.status();
    let ep = status.iter().flat_map(|s| &s.endpoints).find(|e| e.pod == "x/victim").unwrap();
    assert!(ep.quarantined);
    assert!(lab.counter("drops_quarantine") > 0);
    lab.wait_flow("quarantine drop", |f| f.drop_reason == "quarantine");

    // the audit log says who, what and when: the controller, over the tunnel its agent dialed
    let node = lab.state.pod("x/victim").unwrap().node;
    let log =
        std::fs::read_to_string(bulkhead_lab::state::dir(&lab.name).join(format!("agent-n{node}/audit.log"))).unwrap();
    assert!(
        log.contains("\"action\":\"quarantine\"")
            && log.contains("x/victim")
            && log.contains("suspected compromise")
            && log.contains("(mTLS)"),
        "{log}"
    );

    // an agent crash and restart keeps the quarantine (it lives in the pinned map)
    for n in &lab.state.nodes {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(n.agent_pid.unwrap()), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
    }
    let (cni, nodes) = (lab.state.cni.clone(), lab.state.nodes.len());
    lab.reup(&cni, nodes);
    assert!(!lab.probe("x/a", "x/victim", 80, false, false), "still cut off after the agents restarted");
    let ep = lab.status().into_iter().flat_map(|s| s.endpoints).find(|e| e.pod == "x/victim").unwrap();
    assert!(ep.quarantined, "the restarted agent knows the quarantine");

    lab.bulkhead(&["release", "--lab", &lab.name, "x/victim", "--reason", "e2e: cleared"]);
    assert!(lab.probe("x/a", "x/victim", 80, false, false), "released");
    assert!(lab.probe("x/victim", "x/a", 80, false, false), "released");
}

fn web(replicas: usize) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\nspec:\n  replicas: {replicas}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        ports: [{{containerPort: 80}}]\n"
    )
}

fn shop(replicas: usize, victim: bool) -> String {
    let mut m = web(replicas) + &pod("shop", "client", "client", &["80"]) + &pod("shop", "peer", "peer", &["80"]);
    if victim {
        m.push_str(&pod("shop", "victim", "victim", &["80"]));
    }
    m
}

fn wait_api(api: &Api, token: &str) {
    for _ in 0..200 {
        if api.call("GET", "/api/v1/whoami", Some(token), None).status == 200 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the API did not come back");
}

fn quarantine_of(api: &Api, token: &str, id: u64) -> serde_json::Value {
    api.get(&format!("/api/v1/quarantines/{id}"), token)
}

#[test]
fn quarantine_belongs_to_the_controller_through_api_cli_and_crd_and_survives_kill_9() {
    let mut lab = Lab::up("quar2", "bridge", 2, &shop(2, true));
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let dir = bulkhead_lab::state::dir(&lab.name);
    assert!(lab.probe("shop/client", "shop/victim", 80, false, false));

    // Through the API: answered when the agent enforces it, with both timings.
    let a = api.call(
        "POST",
        "/api/v1/quarantines",
        Some(&admin),
        Some(serde_json::json!({"pod": "shop/victim", "reason": "e2e: beaconing"})),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_u64().unwrap();
    assert_eq!(a.body["pods"][0]["pod"], "shop/victim");
    assert_eq!(a.body["pods"][0]["enforced"], true, "{}", a.text);
    assert!(a.body["pods"][0]["agent_micros"].as_u64().is_some() && a.body["enforced_micros"].as_u64().unwrap() > 0);
    assert!(!lab.probe("shop/client", "shop/victim", 80, false, false), "cut off");
    assert!(!lab.probe("shop/victim", "shop/client", 80, false, false), "both ways");

    // kill -9 of the controller: enforcement stays, and the restarted controller still has it.
    let controller = Killed::kill(lab.state.controller_pid.unwrap(), dir.join("controller.log"));
    assert!(!lab.probe("shop/client", "shop/victim", 80, false, false), "still cut while the controller is down");
    controller.restart();
    wait_api(&api, &admin);
    assert_eq!(quarantine_of(&api, &admin, id)["state"], "active");
    // kill -9 of the victim's agent: its restart (and the resync) keep the cut.
    let node = lab.state.pod("shop/victim").unwrap().node;
    let agent = Killed::kill(lab.state.nodes[node - 1].agent_pid.unwrap(), dir.join(format!("agent-n{node}.log")));
    assert!(!lab.probe("shop/client", "shop/victim", 80, false, false));
    agent.restart();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!lab.probe("shop/client", "shop/victim", 80, false, false), "still cut after the agent restarted");
    let ep = lab.status().into_iter().flat_map(|s| s.endpoints).find(|e| e.pod == "shop/victim").unwrap();
    assert!(ep.quarantined, "the restarted agent knows the quarantine");

    // Through the CLI, on the socket: a workload, every pod of it, including a new replica.
    let out = lab.bulkhead(&[
        "quarantine",
        "--lab",
        &lab.name,
        "--workload",
        "shop/web",
        "--reason",
        "e2e: lateral movement",
        "-o",
        "json",
    ]);
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    let wid = w["id"].as_u64().unwrap();
    assert_eq!(w["pods"].as_array().unwrap().len(), 2, "{w}");
    assert!(
        !lab.probe("shop/client", "shop/web-0", 80, false, false)
            && !lab.probe("shop/client", "shop/web-1", 80, false, false)
    );
    lab.apply(&shop(3, true));
    wait_api(&api, &admin);
    assert!(
        !lab.probe("shop/client", "shop/web-2", 80, false, false),
        "the new replica is cut off from its first packet"
    );
    assert_eq!(quarantine_of(&api, &admin, wid)["pods"].as_array().unwrap().len(), 3);
    assert!(!lab.probe("shop/client", "shop/victim", 80, false, false), "the pod quarantine survived the re-up too");

    // Through a Quarantine object: applied, it cuts; deleted, it releases.
    let object = std::env::temp_dir().join(format!("bulkhead-{}-q.yaml", lab.name));
    std::fs::write(&object, "apiVersion: bulkhead.dev/v1alpha1\nkind: Quarantine\nmetadata: {name: peer-incident, namespace: shop}\nspec: {pod: peer, reason: \"e2e: from GitOps\"}\n").unwrap();
    let obj = object.to_string_lossy().into_owned();
    assert!(lab.probe("shop/client", "shop/peer", 80, false, false));
    lab.bulkhead(&["apply", "--lab", &lab.name, "-f", &obj]);
    assert!(!lab.probe("shop/client", "shop/peer", 80, false, false), "the Quarantine object cuts its pod");
    let list = api.get("/api/v1/quarantines?state=active", &admin);
    let by_object = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["object"] == "Quarantine shop/peer-incident")
        .cloned()
        .unwrap();
    assert_eq!(by_object["name"], "peer");
    lab.bulkhead(&["delete", "--lab", &lab.name, "-f", &obj]);
    let _ = std::fs::remove_file(&object);
    assert!(lab.probe("shop/client", "shop/peer", 80, false, false), "deleting the object releases it");

    // Release restores traffic, through the API and the CLI.
    let r = api.call("DELETE", &format!("/api/v1/quarantines/{id}?reason=e2e%3A%20cleared"), Some(&admin), None);
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("released")), "{}", r.text);
    // Traffic is back at once when the agent's fast path answered in time.
    // Seen once under a loaded `make test`: the first probe after the
    // answer still blocked. That is said out loud, and the release must
    // still land through the desired state within 10 s.
    let fast = r.body["pods"].as_array().is_some_and(|p| p.iter().all(|p| p["enforced"] == true));
    let mut back = lab.probe("shop/client", "shop/victim", 80, false, false);
    if !back {
        eprintln!("quarantine e2e: blocked right after release (fast path enforced: {fast}): {}", r.text);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !back && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(250));
            back = lab.probe("shop/client", "shop/victim", 80, false, false);
        }
    }
    assert!(back, "released (fast path enforced: {fast}): {}", r.text);
    assert!(lab.probe("shop/victim", "shop/client", 80, false, false), "released both ways");
    lab.bulkhead(&["release", "--lab", &lab.name, &wid.to_string(), "--reason", "e2e: cleared"]);
    assert!(lab.probe("shop/client", "shop/web-2", 80, false, false));

    // A quarantine of a pod that is deleted ends with it; its record stays.
    let a = api.call(
        "POST",
        "/api/v1/quarantines",
        Some(&admin),
        Some(serde_json::json!({"pod": "shop/victim", "reason": "e2e: again"})),
    );
    let again = a.body["id"].as_u64().unwrap();
    lab.apply(&shop(3, false));
    wait_api(&api, &admin);
    let q = quarantine_of(&api, &admin, again);
    assert_eq!((q["state"].as_str(), q["end_reason"].as_str()), (Some("ended"), Some("the pod was deleted")), "{q}");

    // The list shows who did what and when; the audit log has each step.
    let all = api.get("/api/v1/quarantines", &admin);
    let items = all["items"].as_array().unwrap();
    let first = items.iter().find(|q| q["id"] == id).unwrap();
    assert_eq!(
        (first["created_by"].as_str(), first["released_by"].as_str()),
        (Some("lab-admin (token)"), Some("lab-admin (token)"))
    );
    assert!(first["end_reason"].as_str().unwrap().contains("cleared"));
    let audit = api.get("/api/v1/audit?limit=1000", &admin);
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for want in ["quarantine", "release", "quarantine-ended"] {
        assert!(actions.contains(&want), "{want} audited: {actions:?}");
    }
}
