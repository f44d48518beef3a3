//! The Kubernetes inventory source against recorded API server responses,
//! served to a real kube-rs client through a mocked HTTP service (as kube-rs
//! recommends where no API server runs): the initial LISTs of every kind, a
//! recorded WATCH stream of pod changes, through the watcher into the
//! controller's state, compiled, and queried with `explain`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use bulkhead_controller::policy::kubernetes::{Update, updates};
use bulkhead_controller::policy::state::State;
use futures::StreamExt;
use http::{Request, Response};
use kube::client::Body;

fn recorded(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded").join(name)).unwrap()
}

/// Answers LISTs from the recordings, the first pod WATCH with the recorded
/// stream, and holds every other WATCH open, as an idle API server would.
async fn api_server(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>) {
    let mut held = Vec::new();
    let mut pods_watched = false;
    while let Some((req, send)) = handle.next_request().await {
        let (path, query) = (req.uri().path().to_string(), req.uri().query().unwrap_or("").to_string());
        let body = match (path.as_str(), query.contains("watch=true")) {
            ("/api/v1/pods", true) if !pods_watched => {
                pods_watched = true;
                Some(recorded("pods.watch.jsonl"))
            }
            (_, true) => None,
            ("/api/v1/namespaces", false) => Some(recorded("namespaces.list.json")),
            ("/api/v1/pods", false) => Some(recorded("pods.list.json")),
            ("/api/v1/services", false) => Some(recorded("services.list.json")),
            ("/apis/discovery.k8s.io/v1/endpointslices", false) => Some(recorded("endpointslices.list.json")),
            ("/apis/networking.k8s.io/v1/networkpolicies", false) => Some(recorded("networkpolicies.list.json")),
            ("/apis/networking.k8s.io/v1/ingresses", false) => Some(recorded("ingresses.list.json")),
            ("/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies", false) => {
                Some(recorded("clusternetworkpolicies.list.json"))
            }
            ("/apis/bulkhead.dev/v1alpha2/bulkheadclusterpolicies", false) => {
                Some(recorded("bulkheadclusterpolicies.list.json"))
            }
            ("/apis/bulkhead.dev/v1alpha1/quarantines", false) => Some(recorded("quarantines.list.json")),
            ("/apis/bulkhead.dev/v1alpha1/clusternetworkpolicies", false) => {
                Some(recorded("retired.clusternetworkpolicies.list.json"))
            }
            ("/api/v1/nodes", false) => {
                Some(r#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"1000"},"items":[]}"#.into())
            }
            (p, _) => panic!("unexpected request {p}?{query}"),
        };
        match body {
            Some(b) => send.send_response(Response::builder().status(200).body(Body::from(b.into_bytes())).unwrap()),
            None => held.push(send),
        }
    }
}

fn state(dir: &Path) -> State {
    let cfg = bulkhead_controller::Config {
        cluster: "prod".into(),
        state_dir: dir.to_path_buf(),
        socket: dir.join("api.sock"),
        mode: bulkhead_model::Mode::Enforce,
        agents: Default::default(),
        agent_listen: None,
        ha: None,
        manifests: vec![],
        kubernetes: true,
        metrics_addr: None,
        max_flows: 1000,
        learning: Default::default(),
        response: Default::default(),
        api: None,
    };
    State::open(cfg).unwrap().0
}

/// The verdict, with what decided each side by name ("" when that side is not a pod).
struct Explained {
    allowed: bool,
    egress: String,
    ingress: String,
    to_address: String,
}

fn explain(s: &State, from: &str, to: &str, port: u16, protocol: &str) -> Explained {
    let e = s.explain(from, to, Some(port), Some(protocol)).unwrap();
    let by = |d: &Option<bulkhead_api::v1::policies::SideDecision>| {
        d.as_ref().map(|d| d.decided_by.clone()).unwrap_or_default()
    };
    Explained { allowed: e.allowed, egress: by(&e.egress), ingress: by(&e.ingress), to_address: e.to_address }
}

#[tokio::test]
async fn recorded_lists_and_watch_events_become_the_enforced_model() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(api_server(handle));
    let client = kube::Client::new(service, "default");
    let mut stream = Box::pin(updates(client));
    let (mut relists, mut pod_events, mut batch, mut errors) = (0, 0, Vec::new(), Vec::new());
    // 10 kinds listed, then the 7 pod events of the recorded watch (the bookmark is not an event).
    while relists < 10 || pod_events < 7 {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        let u = match next.expect("the watchers stalled").expect("stream ended") {
            Ok(u) => u,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        match &u {
            Update::Relist { .. } => relists += 1,
            Update::Apply(_) | Update::Delete(_) | Update::Forget(_) => pod_events += 1,
        }
        batch.push(u);
    }

    // One object of a list that cannot be read is reported; the rest of
    // its list is read.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("ClusterNetworkPolicy priority-as-text cannot be read, so it is not enforced"),
        "{errors:?}"
    );
    let cnps = batch.iter().find_map(|u| match u {
        Update::Relist { kind: "ClusterNetworkPolicy", objects, unreadable } => {
            Some((objects.len(), unreadable.clone()))
        }
        _ => None,
    });
    let (read, unreadable) = cnps.expect("the ClusterNetworkPolicy relist");
    assert_eq!((read, unreadable.len(), unreadable[0].name.as_str()), (3, 1, "priority-as-text"));

    let dir = std::env::temp_dir().join(format!("bulkhead-kube-source-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = state(&dir);
    s.ingest(batch).unwrap();
    let st = s.status();
    // backend-0, frontend-abcde, coredns, and the new frontend-fghij once it has an
    // address; the pending batch pod never counted and is deleted anyway.
    assert_eq!((st.pods, st.network_policies, st.cluster_policies), (4, 2, 4), "{st:?}");
    // A Deny rule with a peer of a newer CRD denies all traffic, pods and
    // addresses alike, and the status says so.
    let future = &s.model().policies.cluster["default-from-future-peers"];
    let rule = &future.ingress[0];
    assert_eq!((rule.name.as_str(), rule.action), ("from-dmz", bulkhead_policy::cluster::TierAction::Deny));
    assert!(
        rule.peers.contains(&bulkhead_policy::cluster::TierPeer::Network("0.0.0.0/0".parse().unwrap())),
        "{rule:?}"
    );
    let warned = |what: &str| st.policy_warnings.iter().any(|w| w.contains(what));
    assert!(warned("default-from-future-peers: spec.ingress[0].from[0].futureSources"), "{:?}", st.policy_warnings);
    assert!(warned("shop-egress-allowlist: spec.egress[0].to[0].domainNames"), "{:?}", st.policy_warnings);
    // The Quarantine object quarantines its pod, recorded as made by the object.
    assert_eq!(st.quarantines_active, 1, "{st:?}");
    let q = s.desk().read(|b| b.all().next().cloned()).unwrap().unwrap();
    assert_eq!(q.object.as_deref(), Some("Quarantine shop/backend-0-incident-4211"));
    assert_eq!(q.target.describe(), "pod shop/backend-0");
    assert!(q.reason.starts_with("INC-4211"));
    assert_eq!(s.desk().read(|b| b.cut_uids(s.model()).len()).unwrap(), 1, "backend-0 is cut off");
    let routes = &s.model().inventory.routes;
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!((routes[0].from.as_str(), routes[0].service.as_str()), ("shop/shop", "shop/backend"));
    assert!(routes[0].targets(80, ""), "the Ingress sends to backend's port 80");

    let frontend = "shop/frontend-6d9f7c8b5-abcde";
    let r = explain(&s, frontend, "shop/backend-0", 8080, "TCP");
    assert!(r.allowed && r.ingress == "shop/backend-from-frontend#0", "{}", r.ingress);
    let r = explain(&s, "shop/frontend-6d9f7c8b5-fghij", "shop/backend-0", 8080, "TCP");
    assert!(r.allowed, "the pod added by the watch is a frontend too: {}", r.ingress);
    let r = explain(&s, "kube-system/coredns-5d78c9869d-xyz12", "shop/backend-0", 8080, "TCP");
    assert!(!r.allowed && r.ingress.starts_with("default deny (isolated by"), "{}", r.ingress);
    let r = explain(&s, frontend, "kube-system/coredns-5d78c9869d-xyz12", 53, "UDP");
    assert!(r.allowed && r.egress == "admin/no-shop-to-kube-system-except-dns#dns", "{}", r.egress);
    let r = explain(&s, frontend, "kube-system/coredns-5d78c9869d-xyz12", 53, "TCP");
    assert!(!r.allowed && r.egress == "admin/no-shop-to-kube-system-except-dns#rest", "{}", r.egress);
    // The allowlist's domainNames peer cannot be enforced: its Accept rule
    // matches nothing (fail closed), the Deny below it still holds.
    let r = explain(&s, frontend, "203.0.113.9", 443, "TCP");
    assert!(!r.allowed && r.egress == "admin/shop-egress-allowlist#documentation-net", "{}", r.egress);
    let r = explain(&s, frontend, "shop/backend", 80, "TCP");
    assert!(
        r.allowed && r.egress.starts_with("service shop/backend -> "),
        "ClusterIP via targetPort api: {}",
        r.egress
    );
    assert_eq!(r.to_address, "10.96.12.34");

    // A bad object from the API is left out; everything else stays as it was.
    let bad: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_str(
        r#"{"metadata":{"name":"broken","namespace":"shop"},"spec":{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/40"}}]}]}}"#,
    )
    .unwrap();
    let before = s.status().generation;
    s.ingest(vec![Update::Apply(bulkhead_policy::objects::Object::NetworkPolicy(bad))]).unwrap();
    let st = s.status();
    assert!(st.last_error.contains("NetworkPolicy shop/broken: spec.ingress[0].from[0].ipBlock.cidr"), "{st:?}");
    assert_eq!((st.generation, st.network_policies), (before, 2), "nothing changed");
    assert!(explain(&s, frontend, "shop/backend-0", 8080, "TCP").allowed);
    let mut st = s.status();
    st.flows = bulkhead_api::v1::status::FlowPipeline {
        received: 5,
        lost: [("kernel".to_string(), 3)].into_iter().collect(),
        ..Default::default()
    };
    let text = s.metrics().render(&st);
    assert!(text.contains("bulkhead_controller_flows_lost{stage=\"kernel\"} 3"), "{text}");
    assert!(text.contains("bulkhead_controller_flows_lost{stage=\"agent_buffer\"} 0"), "{text}");
    assert!(text.contains("bulkhead_controller_flows{what=\"received\"} 5"), "{text}");
    assert!(text.contains("bulkhead_controller_changes_total{source=\"kubernetes\",result=\"ok\"} 1"), "{text}");
    assert!(text.contains("bulkhead_controller_changes_total{source=\"kubernetes\",result=\"invalid\"} 1"), "{text}");
    assert!(text.contains("bulkhead_controller_objects{kind=\"network_policies\"} 2"), "{text}");

    // A relist is the whole truth of its kind: pods missing from it are gone.
    let only_backend = recorded_pod("backend-0");
    s.ingest(vec![Update::Relist { kind: "Pod", objects: vec![only_backend], unreadable: vec![] }]).unwrap();
    assert_eq!(s.status().pods, 1);

    // A relist whose version of a stored policy is invalid keeps the stored one.
    let mut broken = recorded_policy("backend-from-frontend");
    if let bulkhead_policy::objects::Object::NetworkPolicy(np) = &mut broken {
        np.spec.as_mut().unwrap().pod_selector.as_mut().unwrap().match_labels =
            Some([("bad key!".to_string(), "x".to_string())].into());
    }
    let default_deny = recorded_policy("default-deny");
    s.ingest(vec![Update::Relist { kind: "NetworkPolicy", objects: vec![broken, default_deny], unreadable: vec![] }])
        .unwrap();
    assert_eq!(s.status().network_policies, 2, "the stored backend-from-frontend stays");
    assert!(s.status().last_error.contains("shop/backend-from-frontend"), "{:?}", s.status());

    // A deleted object that cannot be read goes by its name alone.
    let before = s.status().cluster_policies;
    let gone = bulkhead_policy::objects::ObjectRef {
        kind: "ClusterNetworkPolicy".into(),
        namespace: String::new(),
        name: "default-from-future-peers".into(),
    };
    s.ingest(vec![Update::Forget(gone)]).unwrap();
    assert_eq!(s.status().cluster_policies, before - 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A NetworkPolicy from the recorded list.
fn recorded_policy(name: &str) -> bulkhead_policy::objects::Object {
    let list: serde_json::Value = serde_json::from_str(&recorded("networkpolicies.list.json")).unwrap();
    let item = list["items"].as_array().unwrap().iter().find(|p| p["metadata"]["name"] == name).unwrap();
    bulkhead_policy::objects::Object::NetworkPolicy(serde_json::from_value(item.clone()).unwrap())
}

/// A pod from the recorded pod list.
fn recorded_pod(name: &str) -> bulkhead_policy::objects::Object {
    let list: serde_json::Value = serde_json::from_str(&recorded("pods.list.json")).unwrap();
    let item = list["items"].as_array().unwrap().iter().find(|p| p["metadata"]["name"] == name).unwrap();
    bulkhead_policy::objects::Object::Pod(Box::new(serde_json::from_value(item.clone()).unwrap()))
}

/// Retired `bulkhead.dev/v1alpha1` ClusterNetworkPolicies are found and
/// named; a cluster without their CRD (404) has none.
#[tokio::test]
async fn retired_cluster_policies_are_found_until_their_crd_is_gone() {
    use bulkhead_controller::policy::kubernetes::{retired_policies, retired_warning};
    for (crd_installed, want) in [(true, vec!["legacy-deny".to_string()]), (false, vec![])] {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.uri().path(), "/apis/bulkhead.dev/v1alpha1/clusternetworkpolicies");
            let (status, body) = if crd_installed {
                (200, recorded("retired.clusternetworkpolicies.list.json"))
            } else {
                (404, r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}"#.into())
            };
            send.send_response(Response::builder().status(status).body(Body::from(body.into_bytes())).unwrap());
        });
        let names = retired_policies(kube::Client::new(service, "default")).await.unwrap();
        assert_eq!(names, want);
    }
    let w = retired_warning("legacy-deny");
    assert!(w.contains("NOT enforced") && w.contains("bulkhead policy migrate -f -"), "{w}");
}
