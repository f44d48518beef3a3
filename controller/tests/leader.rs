//! Leader election and the state a new leader adopts, against an API server
//! played from recorded responses (a held Lease, its 404 and its 409)
//! through a real kube-rs client. The fake keeps the Lease and the state
//! ConfigMap as the API server does: creates, and replaces only with the
//! resourceVersion last written. Time is tokio's paused clock.
//!
//! A first replica creates the Lease and leads; a second stands by and
//! names it; the second takes over only after the record stayed unchanged
//! for the Lease's duration; a lost race is a standby, not an error; a
//! leader that cannot renew steps down before anyone may take over. A
//! new leader started from the cluster's copy of the state has the old
//! leader's identities and endpoint ids, where a fresh one would not, and
//! a standby refuses changes (audited) while it serves reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_controller::ha::{ClusterState, Elector, HaConfig, Leadership, lease, persist};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

const NS: &str = "bulkhead-system";
const LEASE: &str = "bulkhead-controller";
const STATE: &str = "bulkhead-controller-state";

fn recorded(name: &str) -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What the fake API server holds, and how it misbehaves on request.
#[derive(Default)]
struct Server {
    objects: Mutex<BTreeMap<String, Value>>,
    version: Mutex<u64>,
    /// Every request fails with a 500.
    fail: AtomicBool,
    /// The next replace loses a race (409), as if another replica wrote first.
    race: AtomicBool,
    /// Requests are taken and never answered (a blackholed connection).
    hang: AtomicBool,
    /// Requests seen: (method, path).
    seen: Mutex<Vec<(Method, String)>>,
}

fn answer(status: u16, body: &Value) -> Response<Body> {
    Response::builder().status(status).body(Body::from(serde_json::to_vec(body).unwrap())).unwrap()
}

impl Server {
    fn handle(&self, method: Method, path: &str, sent: Option<Value>) -> Response<Body> {
        self.seen.lock().unwrap().push((method.clone(), path.to_string()));
        if self.fail.load(Ordering::SeqCst) {
            let status = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500});
            return answer(500, &status);
        }
        if method == Method::PATCH && path.contains("/pods/") {
            let mut objects = self.objects.lock().unwrap();
            let Some(pod) = objects.get_mut(path) else { return answer(404, &recorded("notfound.lease.json")) };
            let labels = sent.unwrap()["metadata"]["labels"].clone();
            for (k, v) in labels.as_object().unwrap() {
                pod["metadata"]["labels"][k] = v.clone();
            }
            return answer(200, pod);
        }
        let (collection, kind) = if path.contains("/leases") {
            (format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"), "Lease")
        } else {
            (format!("/api/v1/namespaces/{NS}/configmaps"), "ConfigMap")
        };
        let mut objects = self.objects.lock().unwrap();
        let next = || {
            let mut v = self.version.lock().unwrap();
            *v += 1;
            v.to_string()
        };
        let not_found = || {
            let mut s = recorded("notfound.lease.json");
            if kind == "ConfigMap" {
                s["message"] = json!(format!("configmaps \"{STATE}\" not found"));
                s["details"] = json!({"name": STATE, "kind": "configmaps"});
            }
            answer(404, &s)
        };
        match method {
            Method::GET => match objects.get(path) {
                Some(o) => answer(200, o),
                None => not_found(),
            },
            Method::POST => {
                let mut o = sent.unwrap();
                let name = o["metadata"]["name"].as_str().unwrap().to_string();
                let key = format!("{collection}/{name}");
                if objects.contains_key(&key) {
                    return answer(409, &recorded("conflict.lease.json"));
                }
                o["metadata"]["resourceVersion"] = json!(next());
                o["metadata"]["namespace"] = json!(NS);
                objects.insert(key, o.clone());
                answer(201, &o)
            }
            Method::PUT => {
                let mut o = sent.unwrap();
                let stored = objects.get(path).map(|s| s["metadata"]["resourceVersion"].clone());
                if self.race.swap(false, Ordering::SeqCst) || stored != Some(o["metadata"]["resourceVersion"].clone()) {
                    return answer(409, &recorded("conflict.lease.json"));
                }
                o["metadata"]["resourceVersion"] = json!(next());
                objects.insert(path.to_string(), o.clone());
                answer(200, &o)
            }
            other => panic!("unexpected {other} {path}"),
        }
    }
}

async fn serve(server: Arc<Server>, mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>) {
    use http_body_util::BodyExt;
    let mut unanswered = Vec::new();
    while let Some((req, send)) = handle.next_request().await {
        if server.hang.load(Ordering::SeqCst) {
            unanswered.push(send);
            continue;
        }
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let sent = (!bytes.is_empty()).then(|| serde_json::from_slice::<Value>(&bytes).unwrap());
        send.send_response(server.handle(method, &path, sent));
    }
}

/// A kube client on the fake server (each replica has its own).
fn client(server: &Arc<Server>) -> kube::Client {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(serve(server.clone(), handle));
    kube::Client::new(service, NS)
}

fn lease_spec(server: &Server) -> Value {
    let key = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE}");
    server.objects.lock().unwrap()[&key]["spec"].clone()
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_taken_only_once_it_expired_and_a_leader_that_cannot_renew_steps_down() {
    let server = Arc::new(Server::default());
    let a = Elector::new(client(&server), NS, LEASE, "ctrl-a");
    let b = Elector::new(client(&server), NS, LEASE, "ctrl-b");

    // No Lease yet: the first replica creates it and leads.
    assert_eq!(a.step().await.unwrap(), Leadership::Leader);
    assert_eq!(lease_spec(&server)["holderIdentity"], "ctrl-a");
    assert_eq!(lease_spec(&server)["leaseDurationSeconds"], lease::LEASE_DURATION.as_secs());
    let standby = Leadership::Standby { leader: Some("ctrl-a".into()) };
    assert_eq!(b.step().await.unwrap(), standby);

    // While a renews, b never takes over, however long it waits.
    for _ in 0..10 {
        tokio::time::advance(lease::RETRY).await;
        assert_eq!(a.step().await.unwrap(), Leadership::Leader);
        assert_eq!(b.step().await.unwrap(), standby);
    }
    assert_eq!(lease_spec(&server)["leaseTransitions"], 0);

    // a stops renewing: b waits out the duration on its own clock, then takes it.
    tokio::time::advance(lease::LEASE_DURATION - Duration::from_secs(1)).await;
    assert_eq!(b.step().await.unwrap(), standby, "not yet expired");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.step().await.unwrap(), Leadership::Leader);
    let spec = lease_spec(&server);
    assert_eq!((spec["holderIdentity"].as_str(), spec["leaseTransitions"].as_i64()), (Some("ctrl-b"), Some(1)));
    assert_ne!(spec["acquireTime"], recorded("lease.json")["spec"]["acquireTime"]);
    // a, back, finds b holding it.
    assert_eq!(a.step().await.unwrap(), Leadership::Standby { leader: Some("ctrl-b".into()) });

    // Of two writers, the API server lets one win: the loser stands by.
    server.race.store(true, Ordering::SeqCst);
    assert_eq!(b.step().await.unwrap(), Leadership::Standby { leader: None });
    assert_eq!(b.step().await.unwrap(), Leadership::Leader, "b still holds the record it renews");

    // The API server fails: b keeps trying until its renew deadline, then steps down,
    // before the Lease's duration has passed for anyone watching it.
    server.fail.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let next = b.until_changed(&Leadership::Leader).await;
    assert_eq!(next, Leadership::Standby { leader: None });
    let took = started.elapsed();
    assert!(took >= lease::RENEW_DEADLINE && took < lease::LEASE_DURATION, "{took:?}");
    assert!(a.step().await.is_err(), "a failing API server is an error, not a role");

    // An API server that never answers is no excuse to keep leading either.
    server.fail.store(false, Ordering::SeqCst);
    tokio::time::advance(lease::LEASE_DURATION).await;
    assert_eq!(b.step().await.unwrap(), Leadership::Leader);
    server.hang.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    assert_eq!(b.until_changed(&Leadership::Leader).await, Leadership::Standby { leader: None });
    let took = started.elapsed();
    assert!(took >= lease::RENEW_DEADLINE && took < lease::LEASE_DURATION, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lease_recorded_from_another_holder_is_respected_until_it_expires() {
    let server = Arc::new(Server::default());
    let key = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE}");
    server.objects.lock().unwrap().insert(key, recorded("lease.json"));
    *server.version.lock().unwrap() = 412;
    let b = Elector::new(client(&server), NS, LEASE, "bulkhead-controller-1");
    let standby = Leadership::Standby { leader: Some("bulkhead-controller-0".into()) };
    // Its renewTime is long past by the wall clock; only the local clock counts.
    assert_eq!(b.step().await.unwrap(), standby);
    tokio::time::advance(lease::LEASE_DURATION).await;
    assert_eq!(b.step().await.unwrap(), Leadership::Leader);
    assert_eq!(lease_spec(&server)["leaseTransitions"], 1);
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("bulkhead-leader-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus: {addresses: [{type: InternalIP, address: 172.18.0.3}]}\n";
const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]\n";

fn pod(name: &str, app: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, uid: uid-{name}, labels: {{app: {app}}}}}\nspec: {{nodeName: node-1, containers: [{{name: main}}]}}\nstatus: {{phase: Running, podIP: {ip}, podIPs: [{{ip: {ip}}}]}}\n"
    )
}

/// A controller whose state and `cluster.yaml` are under `dir`.
fn config(dir: &Path, agents: BTreeMap<String, PathBuf>) -> bulkhead_controller::Config {
    bulkhead_controller::Config {
        cluster: "c1".into(),
        state_dir: dir.join("state"),
        socket: dir.join("api.sock"),
        mode: bulkhead_model::Mode::Enforce,
        agents,
        agent_listen: None,
        ha: None,
        manifests: vec![dir.join("cluster.yaml")],
        kubernetes: false,
        metrics_addr: None,
        max_flows: 1000,
        learning: Default::default(),
        response: Default::default(),
        api: None,
    }
}

/// Opens a controller on `state` with the cluster's objects in `order`, and
/// returns each pod's endpoint id and identity as node-1's agent gets them.
fn numbering(state: &Path, order: &[&str]) -> BTreeMap<String, (u32, u32)> {
    let pods = [("web-0", "web", "10.244.1.10"), ("db-0", "db", "10.244.1.11"), ("cache-0", "cache", "10.244.1.12")];
    let mut yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{NODE}---\n{POLICY}");
    for name in order {
        let (n, app, ip) = pods.iter().find(|(n, _, _)| n == name).unwrap();
        yaml.push_str(&format!("---\n{}", pod(n, app, ip)));
    }
    let manifest = state.join("cluster.yaml");
    std::fs::write(&manifest, yaml).unwrap();
    let cfg = config(state, [("node-1".to_string(), state.join("agent.sock"))].into());
    let (_ctx, rx) = bulkhead_controller::run::open(cfg).unwrap();
    let desired = rx["node-1"].borrow().clone();
    desired.endpoints.iter().map(|e| (e.pod.clone(), (e.endpoint_id, e.identity))).collect()
}

#[tokio::test]
async fn a_new_leader_started_from_the_clusters_copy_keeps_the_identities() {
    let server = Arc::new(Server::default());
    let state = ClusterState::new(client(&server), NS, STATE);
    assert_eq!(state.load().await.unwrap(), None);

    // The old leader numbers the pods as it met them (web-0 first, then the
    // others), and its copier saves the files.
    let old = dir("old");
    numbering(&old.0, &["web-0"]);
    let before = numbering(&old.0, &["web-0", "db-0", "cache-0"]);
    assert_eq!(before.len(), 3, "{before:?}");
    let files = HaConfig::files(&old.0.join("state"));
    let copy = persist::read(&files).unwrap();
    assert!(copy.contains_key("ids.json"), "{:?}", copy.keys());
    state.save(&copy).await.unwrap();
    state.save(&copy).await.unwrap(); // a replace, with the resourceVersion it wrote

    // A fresh replica meeting them all at once would number them otherwise…
    let fresh = dir("fresh");
    let other = numbering(&fresh.0, &["cache-0", "db-0", "web-0"]);
    assert_ne!(other, before, "the test must tell adoption from luck");

    // …but the new leader adopts the cluster's copy first, and keeps every number.
    let new = dir("new");
    let loaded = state.load().await.unwrap().unwrap();
    assert_eq!(persist::adopt(&new.0.join("state"), &loaded).unwrap(), copy.len());
    let after = numbering(&new.0, &["cache-0", "db-0", "web-0"]);
    assert_eq!(after, before);

    // The new leader writes the copy from now on; the old one, still
    // running for a moment, may not overwrite it.
    let newer = ClusterState::new(client(&server), NS, STATE);
    newer.load().await.unwrap();
    newer.save(&copy).await.unwrap();
    let err = state.save(&copy).await.unwrap_err().to_string();
    assert!(err.contains("another replica wrote it"), "{err}");

    // A copy that names anything but the state files is refused whole.
    let mut bad = loaded.clone();
    bad.insert("../audit.log".into(), String::new());
    let err = persist::adopt(&new.0.join("state"), &bad).unwrap_err().to_string();
    assert!(err.contains("unexpected key"), "{err}");
}

#[tokio::test]
async fn a_standby_serves_reads_and_refuses_changes_with_the_leader_named() {
    use bulkhead_controller::auth::Principal;
    use bulkhead_controller::service::{Service, ServiceError};
    let d = dir("standby");
    numbering(&d.0, &["web-0"]);
    let cfg = config(&d.0, Default::default());
    let (ctx, _rx) = bulkhead_controller::run::open(cfg).unwrap();
    let mut ctx = Arc::try_unwrap(ctx).unwrap();
    ctx.leadership = Leadership::Standby { leader: Some("ctrl-a".into()) };
    let service = Service::new(Arc::new(ctx));
    let root = Principal::unix("root", 0, None);

    let status = service.status(&root).await.unwrap();
    assert!(status.pods > 0, "{status:?}");
    let req =
        bulkhead_api::v1::policies::ChangeRequest { yaml: POLICY.replace("name: db", "name: db2"), source: "x".into() };
    let err = service.change(&root, bulkhead_controller::policy::state::ChangeKind::Apply, req).await.unwrap_err();
    assert!(matches!(&err, ServiceError::Unavailable(m) if m.contains("standby (the leader is ctrl-a)")), "{err:?}");
    let audit = std::fs::read_to_string(d.0.join("state/audit.log")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"refused\"") && l.contains("standby")), "{audit}");
}

#[tokio::test]
async fn the_leader_labels_its_pod_for_the_services_and_a_former_leader_clears_its_label() {
    use bulkhead_controller::ha::label;
    let server = Arc::new(Server::default());
    for name in ["bulkhead-controller-0", "bulkhead-controller-1"] {
        let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": "bulkhead-controller"}}});
        server.objects.lock().unwrap().insert(format!("/api/v1/namespaces/{NS}/pods/{name}"), pod);
    }
    let labels = |name: &str| {
        server.objects.lock().unwrap()[&format!("/api/v1/namespaces/{NS}/pods/{name}")]["metadata"]["labels"].clone()
    };
    label::mark(&client(&server), NS, "bulkhead-controller-0", true).await.unwrap();
    label::mark(&client(&server), NS, "bulkhead-controller-1", false).await.unwrap();
    assert_eq!(labels("bulkhead-controller-0")[label::LABEL], "true");
    assert_eq!(labels("bulkhead-controller-1")[label::LABEL], "false");
    assert_eq!(
        labels("bulkhead-controller-0")["app.kubernetes.io/name"],
        "bulkhead-controller",
        "a merge, not a replace"
    );
    // Restarted as the standby, the former leader's pod says so.
    label::mark(&client(&server), NS, "bulkhead-controller-0", false).await.unwrap();
    assert_eq!(labels("bulkhead-controller-0")[label::LABEL], "false");
    // Outside a pod there is nothing to label, and that is no error.
    label::mark(&client(&server), NS, "not-a-pod", true).await.unwrap();
}
