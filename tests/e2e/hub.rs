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
use crate::e2e::controller::wait_in_sync;
use crate::support::{Api, BIN, Killed, Lab, deployment, pod};

/// A hub process this test started, stopped by its id.
struct Hub {
    child: Child,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory this test made, removed however the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("bulkhead-hub-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `bulkhead hub` on loopback over `members` (their tokens in
/// `dir/NAME.token`, the hub's callers in `dir/tokens.yaml`) and returns it
/// with its URL once it listens.
fn start_hub(dir: &std::path::Path, members: &[(&str, &Api)], extra: &[&str]) -> (Hub, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("hub").args(extra);
    for (name, api) in members {
        let token = dir.join(format!("{name}.token"));
        cmd.arg("--member").arg(format!("{name}={},@{},{}", api.url, token.display(), api.ca_file.display()));
    }
    let child = cmd
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
    let hub = Hub { child };
    wait_for("the hub's address", Duration::from_secs(20), || dir.join("addr").is_file());
    let url = std::fs::read_to_string(dir.join("addr")).unwrap().trim().to_string();
    (hub, url)
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

    let tmp = TempDir::new("view");
    let dir = tmp.0.clone();
    std::fs::write(dir.join("east.token"), &et).unwrap();
    std::fs::write(dir.join("west.token"), &wt).unwrap();
    let [alice, victor, tina] = [0, 1, 2].map(|_| tokens::generate().unwrap());
    let holders = [
        entry("alice", Role::Responder, None, &alice),
        entry("victor", Role::Viewer, None, &victor),
        entry("tina", Role::Admin, Some(&["shop"]), &tina),
    ];
    std::fs::write(dir.join("tokens.yaml"), tokens::TokenFile::to_yaml(&holders).unwrap()).unwrap();
    let (hub_proc, url) = start_hub(&dir, &[("east", &ea), ("west", &wa)], &["--name", "ops-hub", "--share-pods"]);
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

    // Both labs call themselves "lab": the hub names them east and west, so
    // it shares neither's pods (their identities would name another cluster).
    wait_for("the hub to refuse sharing misnamed members", Duration::from_secs(20), || {
        std::fs::read_to_string(dir.join("hub.log")).is_ok_and(|l| l.contains("is not its --member name"))
    });
    let remote = ea.get("/api/v1/audit?action=set-remote-pods&limit=10", &admin);
    assert_eq!(remote["items"].as_array().map(Vec::len), Some(0), "{remote}");

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

/// Two clusters with routed pod networks: a pod of east calls a service of
/// west (at its pod's address: each lab has its own ClusterIP range), and a
/// BulkheadClusterPolicy by cluster at west allows exactly that. Before the
/// hub shares east's pods, west sees east's pod as an unknown address and
/// denies it; once shared, its identity carries "east" and the policy
/// matches it, while west's own pods stay denied by the NetworkPolicy.
#[test]
fn a_policy_by_cluster_allows_exactly_the_other_clusters_pods() {
    let (east_cidr, west_cidr) = ("10.245.0.0/16", "10.246.0.0/16");
    let east = Lab::up_with(
        "mce",
        "bridge",
        1,
        &deployment("shop", "client", 80, ""),
        &["--pod-cidr", east_cidr, "--controller-arg=--cluster=east"],
    );
    let west_pods = [pod("shop", "api-0", "api", &["8080", "81"]), deployment("shop", "local", 80, "")].concat();
    let west =
        Lab::up_with("mcw", "bridge", 1, &west_pods, &["--pod-cidr", west_cidr, "--controller-arg=--cluster=west"]);
    // A router between the fabrics; east's `lab down` removes it.
    let out = east.bulkhead(&["lab", "link", "--name", &east.name, "--to", &west.name]);
    assert!(out.contains("routed to each other"), "{out}");
    let again = crate::support::try_bulkhead(&["lab", "link", "--name", &west.name, "--to", &east.name]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("is linked already"), "{again:?}");
    let (client, api, local) =
        (east.pod_of("shop", "client"), west.pod_of("shop", "api"), west.pod_of("shop", "local"));
    let api_ip = west.ip(&api, false).to_string();
    assert!(east.probe(&client, &api_ip, 8080, false, false), "the pod networks are routed to each other");

    let wa = Api::of(&west);
    let admin = wa.lab_token("admin");
    let policy = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-closed, namespace: shop}
spec: {podSelector: {matchLabels: {app: api}}, policyTypes: [Ingress]}
---
apiVersion: bulkhead.dev/v1alpha2
kind: BulkheadClusterPolicy
metadata: {name: api-from-east}
spec:
  tier: Admin
  priority: 10
  subject: {pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}, podSelector: {matchLabels: {app: api}}}}
  ingress:
  - {name: east, action: Accept, from: [{clusters: [east]}], protocols: [{tcp: {destinationPort: {number: 8080}}}]}
";
    let applied = wa.call("POST", "/api/v1/policies", Some(&admin), Some(json!({"yaml": policy, "source": "e2e"})));
    assert!((200..300).contains(&applied.status), "{}", applied.text);
    wait_in_sync(&west);
    assert!(!east.probe(&client, &api_ip, 8080, false, false), "east's pod is only an address to west so far");
    assert!(!west.probe(&local, &api, 8080, false, false), "west's own pods are not east");

    // Another cluster's pods change what `clusters:` matches: admins only,
    // and bad input changes nothing.
    let put = |token: &str, cluster: &str, body: serde_json::Value| {
        wa.call("PUT", &format!("/api/v1/remote-clusters/{cluster}/pods"), Some(token), Some(body))
    };
    assert_eq!(put(&wa.lab_token("viewer"), "east", json!({"pods": []})).status, 403);
    let pod = json!({"namespace": "shop", "name": "x", "node": "n1", "ips": ["10.245.0.300"], "labels": {},
        "workload": {"kind": "Pod", "name": "x", "namespace": "shop"}, "mode": "enforce", "quarantined": false});
    let bad = put(&admin, "east", json!({"pods": [pod]}));
    assert!(bad.status == 400 && bad.text.contains("pods[0].ips[0]"), "{}", bad.text);
    let own = put(&admin, "west", json!({"pods": []}));
    assert!(own.status == 400 && own.text.contains("is not another cluster"), "{}", own.text);

    // The hub shares each member's pods with the other.
    let ea = Api::of(&east);
    let tmp = TempDir::new("mc");
    let dir = tmp.0.clone();
    for (name, api) in [("east", &ea), ("west", &wa)] {
        let t = api.add_tokens(&[("hub", Role::Admin, None)]).remove(0);
        std::fs::write(dir.join(format!("{name}.token")), t).unwrap();
    }
    let viewer = tokens::generate().unwrap();
    std::fs::write(
        dir.join("tokens.yaml"),
        tokens::TokenFile::to_yaml(&[entry("v", Role::Viewer, None, &viewer)]).unwrap(),
    )
    .unwrap();
    let _hub = start_hub(&dir, &[("east", &ea), ("west", &wa)], &["--share-pods"]);
    wait_for("west to know east's pods", Duration::from_secs(30), || east.probe(&client, &api_ip, 8080, false, false));
    assert!(!east.probe(&client, &api_ip, 81, false, false), "not a port api serves that the policy does not name");
    assert!(!west.probe(&local, &api, 8080, false, false), "west's own pods are still not east");
    let explained = wa.get(&format!("/api/v1/explain?from={}&to={api}&port=8080", east.ip(&client, false)), &admin);
    assert!(
        explained["allowed"] == true && explained["ingress"]["decided_by"].as_str().unwrap().contains("api-from-east"),
        "{explained}"
    );
    // Audited on west as the hub's change, once.
    let audit = wa.get("/api/v1/audit?action=set-remote-pods&limit=100", &admin);
    let by_hub: Vec<&serde_json::Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["user"] == "hub" && r["target"] == "cluster east" && r["outcome"] == "ok")
        .collect();
    assert_eq!(by_hub.len(), 1, "east's pods did not change, so they were taken once: {audit}");
}
