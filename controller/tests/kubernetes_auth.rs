//! Kubernetes tokens through TokenReview and SubjectAccessReview, against
//! recorded API server responses served to a real kube-rs client through a
//! mocked HTTP service: a ServiceAccount with a namespaced role is a tenant
//! of that namespace, a user with a cluster-wide role is not, an expired
//! token is refused, an API failure refuses (fail closed) and is not
//! remembered, and answers are cached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkhead_controller::auth::kubernetes::KubernetesAuth;
use bulkhead_controller::auth::{AuthError, Authenticator, Scope, Via};
use bulkhead_model::Role;
use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;

fn recorded(name: &str) -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Who holds which RBAC verb where: (user, verb, namespace; "" is cluster-wide).
const GRANTS: &[(&str, &str, &str)] = &[
    ("system:serviceaccount:shop:deployer", "reviewer", "shop"),
    ("system:serviceaccount:shop:deployer", "viewer", "shop"),
    ("alice", "admin", ""),
];

async fn body(req: Request<Body>) -> Value {
    use http_body_util::BodyExt;
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Answers reviews from the recordings; `fail` makes every answer a 500.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    calls: Arc<AtomicUsize>,
    reviews: Arc<std::sync::Mutex<Vec<Value>>>,
    fail: Arc<std::sync::atomic::AtomicBool>,
) {
    while let Some((req, send)) = handle.next_request().await {
        calls.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path().to_string();
        assert_eq!(req.method(), http::Method::POST, "{path}");
        let sent = body(req).await;
        if fail.load(Ordering::SeqCst) {
            let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}"#;
            send.send_response(Response::builder().status(500).body(Body::from(status.as_bytes().to_vec())).unwrap());
            continue;
        }
        let answer = match path.as_str() {
            "/apis/authentication.k8s.io/v1/tokenreviews" => {
                let token = sent["spec"]["token"].as_str().unwrap().to_string();
                let mut a = match token.as_str() {
                    "sa-token" => recorded("tokenreview.serviceaccount.json"),
                    "norole-token" => {
                        let mut a = recorded("tokenreview.serviceaccount.json");
                        a["status"]["user"]["username"] = "system:serviceaccount:ops:batch".into();
                        a
                    }
                    "alice-token" => {
                        let mut a = recorded("tokenreview.serviceaccount.json");
                        a["status"]["user"] =
                            serde_json::json!({"username": "alice", "groups": ["oidc:sre", "system:authenticated"]});
                        a
                    }
                    _ => recorded("tokenreview.invalid.json"),
                };
                a["spec"]["token"] = token.into();
                a
            }
            "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
                reviews.lock().unwrap().push(sent.clone());
                let spec = &sent["spec"];
                let attrs = &spec["resourceAttributes"];
                assert_eq!(
                    (attrs["group"].as_str(), attrs["resource"].as_str()),
                    (Some("bulkhead.dev"), Some("access"))
                );
                let (user, verb) = (spec["user"].as_str().unwrap(), attrs["verb"].as_str().unwrap());
                let ns = attrs["namespace"].as_str().unwrap_or("");
                let granted = GRANTS.iter().any(|(u, v, n)| *u == user && *v == verb && *n == ns);
                let mut a = recorded(if granted {
                    "subjectaccessreview.allowed.json"
                } else {
                    "subjectaccessreview.denied.json"
                });
                a["spec"] = spec.clone();
                a
            }
            other => panic!("unexpected request {other}"),
        };
        let bytes = serde_json::to_vec(&answer).unwrap();
        send.send_response(Response::builder().status(201).body(Body::from(bytes)).unwrap());
    }
}

#[tokio::test]
async fn kubernetes_tokens_get_their_rbac_role_and_scope_and_failures_refuse() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Arc::new(AtomicUsize::new(0));
    let reviews = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(api_server(handle, calls.clone(), reviews.clone(), fail.clone()));
    let client = kube::Client::new(service, "default");
    let auth = Authenticator { tokens: None, kubernetes: Some(KubernetesAuth::new(client, Vec::new())) };
    let namespaces = || vec!["default".to_string(), "ops".to_string(), "shop".to_string()];

    // A ServiceAccount with reviewer in shop: a tenant of shop, as a reviewer.
    let p = auth.authenticate(Some("Bearer sa-token"), "10.0.0.7:51000", namespaces).await.unwrap();
    assert_eq!(p.user, "system:serviceaccount:shop:deployer");
    assert_eq!((p.role, p.via.clone()), (Role::Reviewer, Via::Kubernetes));
    assert_eq!(p.scope, Scope::Namespaces(["shop".to_string()].into()));
    assert_eq!(p.source, "10.0.0.7:51000");
    let sent = reviews.lock().unwrap().clone();
    assert!(
        sent.iter().all(|r| r["spec"]["groups"].as_array().unwrap().iter().any(|g| g == "system:serviceaccounts:shop"))
    );
    assert!(sent.iter().all(|r| r["spec"]["uid"] == "0f6a3c2e-1d4b-4a9e-8c77-5b2d9e1f4a10"));
    // Cluster-wide first (every role, strongest first), then per namespace.
    assert_eq!(sent[0]["spec"]["resourceAttributes"]["verb"], "admin");
    assert!(sent[0]["spec"]["resourceAttributes"]["namespace"].is_null());

    // Cached: asking again does not call the API server.
    let before = calls.load(Ordering::SeqCst);
    auth.authenticate(Some("Bearer sa-token"), "10.0.0.7:51001", namespaces).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), before);

    // A user with a cluster-wide admin role.
    let p = auth.authenticate(Some("Bearer alice-token"), "10.0.0.8:40000", namespaces).await.unwrap();
    assert_eq!((p.user.as_str(), p.role, p.scope.clone()), ("alice", Role::Admin, Scope::Cluster));

    // An expired token is refused; so is a malformed header and none at all.
    let e = auth.authenticate(Some("Bearer expired"), "x", namespaces).await.unwrap_err();
    assert_eq!(e, AuthError::Unknown);
    assert_eq!(auth.authenticate(Some("Basic abc"), "x", namespaces).await.unwrap_err(), AuthError::Malformed);
    assert_eq!(auth.authenticate(None, "x", namespaces).await.unwrap_err(), AuthError::Missing);

    // The API server failing refuses the request, and the failure is not
    // cached: the next request asks again.
    fail.store(true, Ordering::SeqCst);
    let e = auth.authenticate(Some("Bearer new-token"), "x", namespaces).await.unwrap_err();
    assert!(matches!(&e, AuthError::Backend(m) if m.contains("TokenReview")), "{e:?}");
    let before = calls.load(Ordering::SeqCst);
    let e = auth.authenticate(Some("Bearer new-token"), "x", namespaces).await.unwrap_err();
    assert!(matches!(e, AuthError::Backend(_)));
    assert!(calls.load(Ordering::SeqCst) > before, "a failure is not remembered");

    // Authenticated with no Bulkhead role anywhere: refused, named.
    fail.store(false, Ordering::SeqCst);
    let e = auth.authenticate(Some("Bearer norole-token"), "x", namespaces).await.unwrap_err();
    assert_eq!(e, AuthError::NoRole { user: "system:serviceaccount:ops:batch".into() });
    assert!(e.to_string().contains("no Bulkhead role"), "{e}");
}
