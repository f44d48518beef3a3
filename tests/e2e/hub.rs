//! The multi-cluster hub over two real labs, each with its own controller:
//! one authenticated view of both (status, graph, flows, exposure,
//! quarantines), a quarantine sent through the hub and executed by its
//! member (real traffic cut, then restored on release) and audited on both,
//! refusals (no token, a viewer quarantining, a tenant's token) audited at
//! the hub, and a member that is down reported beside the other's answer.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bulkhead_controller::auth::tokens;
use bulkhead_model::Role;
use serde_json::json;

use crate::e2e::api::wait_for;
use crate::support::{Api, BIN, Killed, Lab, deployment};

/// A hub process this test started, stopped by its id, and its files.
struct Hub {
    child: Child,
    dir: PathBuf,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shop() -> String {
    [deployment("shop", "web", 80, "api:8080"), deployment("shop", "api", 8080, "")].concat()
}

fn entry(user: &str, role: Role, namespaces: Option<&[&str]>, token: &str) -> tokens::TokenEntry {
    tokens::TokenEntry {
        user: user.into(),
        role,
        namespaces: namespaces.map(|n| n.iter().map(|s| s.to_string()).collect()),
        sha256: tokens::hash(token),
    }
}

#[test]
fn one_view_of_two_clusters_and_a_quarantine_executed_by_its_member() {
    let east = Lab::up("hube", "bridge", 1, &shop());
    let west = Lab::up("hubw", "bridge", 1, &shop());
    let (ea, wa) = (Api::of(&east), Api::of(&west));
    let member_token = |api: &Api, user: &str| api.add_tokens(&[(user, Role::Responder, None)]).remove(0);
    let (et, wt) = (member_token(&ea, "hub-east"), member_token(&wa, "hub-west"));

    let dir = std::env::temp_dir().join(format!("bulkhead-hub-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("east.token"), &et).unwrap();
    std::fs::write(dir.join("west.token"), &wt).unwrap();
    let [alice, victor, tina] = [0, 1, 2].map(|_| tokens::generate().unwrap());
    let holders = [
        entry("alice", Role::Responder, None, &alice),
        entry("victor", Role::Viewer, None, &victor),
        entry("tina", Role::Admin, Some(&["shop"]), &tina),
    ];
    std::fs::write(dir.join("tokens.yaml"), tokens::TokenFile::to_yaml(&holders).unwrap()).unwrap();
    let member = |name: &str, api: &Api| {
        format!("{name}={},@{},{}", api.url, dir.join(format!("{name}.token")).display(), api.ca_file.display())
    };
    let child = Command::new(BIN)
        .args(["hub", "--name", "ops-hub", "--member", &member("east", &ea), "--member", &member("west", &wa)])
        .args(["--listen", "127.0.0.1:0", "--plaintext", "--addr-file"])
        .arg(dir.join("addr"))
        .arg("--tokens-file")
        .arg(dir.join("tokens.yaml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("hub.log")).unwrap())
        .spawn()
        .unwrap();
    let hub_proc = Hub { child, dir: dir.clone() };
    wait_for("the hub's address", Duration::from_secs(20), || dir.join("addr").is_file());
    let url = std::fs::read_to_string(dir.join("addr")).unwrap().trim().to_string();
    let hub = Api::plain(&url, &dir);

    // Nobody unauthenticated, and no tenant: the hub's view is cluster-wide.
    assert_eq!(hub.call("GET", "/api/v1/hub/status", None, None).status, 401);
    assert_eq!(hub.call("GET", "/api/v1/hub/status", Some("not-a-token"), None).status, 401);
    let t = hub.call("GET", "/api/v1/hub/status", Some(&tina), None);
    assert!(t.status == 403 && t.text.contains("cluster-wide tokens only"), "{}", t.text);

    // One view of both clusters, in the order given.
    assert_eq!(hub.get("/api/v1/hub/whoami", &victor)["role"], "viewer");
    let names: Vec<String> = hub
        .get("/api/v1/hub/clusters", &victor)
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["east", "west"]);
    let status = hub.get("/api/v1/hub/status", &victor);
    for (i, name) in ["east", "west"].iter().enumerate() {
        let c = &status["clusters"][i];
        assert_eq!(c["cluster"], *name);
        assert!(c["error"].is_null() && c["answer"]["pods"].as_u64() >= Some(2), "{c}");
    }
    wait_for("flows of both clusters at the hub", Duration::from_secs(60), || {
        let f = hub.get("/api/v1/hub/flows?limit=10", &victor);
        f["clusters"].as_array().unwrap().iter().all(|c| !c["answer"]["items"].as_array().is_none_or(Vec::is_empty))
    });
    let graph = hub.get("/api/v1/hub/graph", &victor);
    assert!(
        graph["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["answer"]["nodes"].as_array().is_some_and(|n| !n.is_empty())),
        "{graph}"
    );
    let exposure = hub.get("/api/v1/hub/exposure", &victor);
    assert!(exposure["clusters"].as_array().unwrap().iter().all(|c| c["error"].is_null()), "{exposure}");
    // A query a member refuses is that member's error, named, not the hub's.
    let bad = hub.get("/api/v1/hub/flows?limit=x", &victor);
    assert!(bad["clusters"][0]["error"].as_str().unwrap().contains("cluster east: query"), "{bad}");

    // A viewer may not quarantine; a responder may, and the member executes it.
    let api_pod = east.pod_of("shop", "api");
    let web_pod = east.pod_of("shop", "web");
    assert!(east.probe(&web_pod, &api_pod, 8080, false, false), "reachable before");
    let body = json!({"pod": api_pod, "reason": "INC-7 beaconing"});
    let v = hub.call("POST", "/api/v1/hub/clusters/east/quarantines", Some(&victor), Some(body.clone()));
    assert!(v.status == 403 && v.text.contains("quarantine needs responder"), "{}", v.text);
    let nowhere = hub.call("POST", "/api/v1/hub/clusters/north/quarantines", Some(&alice), Some(body.clone()));
    assert!(nowhere.status == 404 && nowhere.text.contains("the hub knows east, west"), "{}", nowhere.text);
    let q = hub.call("POST", "/api/v1/hub/clusters/east/quarantines", Some(&alice), Some(body));
    assert_eq!(q.status, 201, "{}", q.text);
    let id = q.body["id"].as_u64().unwrap();
    assert!(!east.probe(&web_pod, &api_pod, 8080, false, false), "cut off by east's own controller");
    let west_api = west.pod_of("shop", "api");
    assert!(west.probe(&west.pod_of("shop", "web"), &west_api, 8080, false, false), "west untouched");
    let qs = hub.get("/api/v1/hub/quarantines?state=active", &victor);
    assert_eq!(qs["clusters"][0]["answer"]["items"][0]["id"].as_u64(), Some(id), "{qs}");
    assert_eq!(qs["clusters"][1]["answer"]["items"].as_array().map(Vec::len), Some(0), "{qs}");

    // Audited on the member as the hub's token, with the hub's user named...
    let admin = ea.lab_token("admin");
    let audit = ea.get("/api/v1/audit?action=quarantine&limit=10", &admin);
    let rec = audit["items"].as_array().unwrap().iter().find(|r| r["user"] == "hub-east").cloned();
    let rec = rec.unwrap_or_else(|| panic!("no quarantine by hub-east in east's audit: {audit}"));
    assert!(rec["detail"].as_str().unwrap().contains("INC-7 beaconing [via hub ops-hub by alice]"), "{rec}");
    // ...and on the hub, with every refusal.
    let log = std::fs::read_to_string(dir.join("state/audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let has = |actor: &str, action: &str, outcome: &str| {
        lines.iter().any(|l| l["actor"] == actor && l["action"] == action && l["outcome"] == outcome)
    };
    assert!(has("alice", "quarantine", "ok"), "{log}");
    assert!(has("victor", "quarantine", "refused"), "{log}");
    assert!(has("tina", "authenticate", "refused"), "{log}");
    assert!(has("anonymous", "authenticate", "refused"), "{log}");

    // Released through the hub: traffic flows again.
    let reason = "resolved";
    let r =
        hub.call("DELETE", &format!("/api/v1/hub/clusters/east/quarantines/{id}?reason={reason}"), Some(&alice), None);
    assert_eq!(r.status, 200, "{}", r.text);
    wait_for("east's api reachable after the release", Duration::from_secs(10), || {
        east.probe(&web_pod, &api_pod, 8080, false, false)
    });

    // A member down: its entry says so, the other still answers.
    let dead =
        Killed::kill(west.state.controller_pid.unwrap(), bulkhead_lab::state::dir(&west.name).join("controller.log"));
    let status = hub.get("/api/v1/hub/status", &victor);
    assert!(status["clusters"][0]["answer"]["pods"].as_u64() >= Some(2), "{status}");
    let down = status["clusters"][1]["error"].as_str().unwrap_or_default();
    assert!(down.contains("cluster west at https://127.0.0.1:"), "{status}");
    drop(dead);
    drop(hub_proc);
}
