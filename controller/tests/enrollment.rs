//! Agent enrollment on the real agents port over loopback TLS, with the
//! agent's own enrollment code, and the API server's TokenReview answered
//! from a recorded response through a real kube-rs client: the agent's
//! pod-bound token gets a certificate for the node the review names (never
//! one the request names), which the port then admits; another
//! ServiceAccount, a token without a node, an expired token, a revoked node
//! and a failing API server are refused, and every outcome is audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bulkhead_agent::uplink::{self, Identity, Uplink};
use bulkhead_api::audit::{AuditFilter, AuditLog};
use bulkhead_api::tunnel::{self, TunnelPeer};
use bulkhead_controller::agents::Directory;
use bulkhead_controller::agents::enroll::{EnrollConfig, Enroller};
use bulkhead_controller::agents::listen::{self, AgentListen, Serving};
use bulkhead_controller::agents::revoked::RevocationFile;
use bulkhead_controller::auth::pki::Ca;
use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;

const AGENT_SA: &str = "system:serviceaccount:bulkhead-system:bulkhead-agent";

fn recorded(name: &str) -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Answers TokenReviews by token: the agent's (on node-1), one whose pod
/// claims are gone (a legacy Secret token), another ServiceAccount's, and
/// an expired one; `fail` makes every answer a 500.
async fn api_server(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>, fail: Arc<AtomicBool>) {
    use http_body_util::BodyExt;
    while let Some((req, send)) = handle.next_request().await {
        assert_eq!(req.uri().path(), "/apis/authentication.k8s.io/v1/tokenreviews");
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let sent: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(sent["spec"]["audiences"], serde_json::json!(["bulkhead-agent"]));
        if fail.load(Ordering::SeqCst) {
            let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}"#;
            send.send_response(Response::builder().status(500).body(Body::from(status.as_bytes().to_vec())).unwrap());
            continue;
        }
        let token = sent["spec"]["token"].as_str().unwrap().to_string();
        let mut answer = match token.as_str() {
            "agent-token" => recorded("tokenreview.agent.json"),
            "secret-token" => {
                let mut a = recorded("tokenreview.agent.json");
                a["status"]["user"]["extra"] = serde_json::json!({});
                a
            }
            "deployer-token" => {
                // Minted for our audience, but another ServiceAccount's.
                let mut a = recorded("tokenreview.serviceaccount.json");
                a["status"]["audiences"] = serde_json::json!(["bulkhead-agent"]);
                a
            }
            "unaudienced-token" => {
                // An authenticator that ignored the audience answers without it.
                let mut a = recorded("tokenreview.agent.json");
                a["status"]["audiences"] = serde_json::json!([]);
                a
            }
            _ => recorded("tokenreview.invalid.json"),
        };
        answer["spec"]["token"] = token.into();
        let bytes = serde_json::to_vec(&answer).unwrap();
        send.send_response(Response::builder().status(201).body(Body::from(bytes)).unwrap());
    }
}

/// Certificates in a directory of this test's own, removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("bulkhead-enroll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = Self { dir };
        let ca = Ca::generate("Bulkhead CA").unwrap();
        let server = ca.server("bulkhead-controller", &["bulkhead-controller".into()], &[]).unwrap();
        for (name, text) in [
            ("ca.pem", &ca.pem.cert),
            ("ca.key", &ca.pem.key),
            ("server.pem", &server.cert),
            ("server.key", &server.key),
        ] {
            std::fs::write(dir.path(name), text).unwrap();
        }
        dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn uplink(&self, addr: &str, token: &str) -> Uplink {
        let file = self.path(&format!("{token}.jwt"));
        std::fs::write(&file, format!("{token}\n")).unwrap();
        Uplink {
            addr: addr.to_string(),
            server_name: "bulkhead-controller".into(),
            ca: self.path("ca.pem"),
            identity: Identity::Enroll { token: file },
        }
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn an_agent_enrolls_for_the_node_its_token_names_and_everyone_else_is_refused() {
    let pki = Pki::new();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let fail = Arc::new(AtomicBool::new(false));
    tokio::spawn(api_server(handle, fail.clone()));
    let client = kube::Client::new(service, "default");

    let revoked_file = pki.path("revoked");
    std::fs::write(&revoked_file, "# none yet\n").unwrap();
    let enroll = EnrollConfig {
        ca_key: pki.path("ca.key"),
        service_account: AGENT_SA.into(),
        audience: "bulkhead-agent".into(),
    };
    let cfg = AgentListen {
        addr: "127.0.0.1:0".parse().unwrap(),
        ca: pki.path("ca.pem"),
        cert: pki.path("server.pem"),
        key: pki.path("server.key"),
        revoked: Some(revoked_file.clone()),
        enroll: Some(enroll.clone()),
    };
    let directory = Arc::new(Directory::default());
    let audit = AuditLog::new(&pki.path("audit.jsonl"));
    let listener = tokio::net::TcpListener::bind(cfg.addr).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let firsts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = firsts.clone();
    let serving = Serving {
        acceptor: listen::acceptor(&cfg).unwrap(),
        revoked: Some(RevocationFile::open(&revoked_file).unwrap()),
        enroller: Some(Arc::new(Enroller::new(enroll, &cfg.ca, client).unwrap())),
        directory: directory.clone(),
        audit: audit.clone(),
        on_first: Arc::new(move |node: String| seen.lock().unwrap().push(node)),
    };
    tokio::spawn(listen::serve(listener, serving));

    // The agent on node-1 enrolls with its token, then dials with the new
    // certificate and is admitted as node-1.
    let up = pki.uplink(&addr, "agent-token");
    let dialer = uplink::dialer(&up).unwrap();
    let io = uplink::dial(&up, &dialer, "node-1").await.unwrap();
    let peer = TunnelPeer { controller: addr.clone() };
    let agent = tokio::spawn(tunnel::serve(io, tonic::service::Routes::default(), peer));
    wait_for("node-1 to register", || directory.connections().iter().any(|c| c.node == "node-1")).await;
    assert_eq!(firsts.lock().unwrap().as_slice(), ["node-1"]);
    agent.abort();

    // An agent configured as another node gets node-1's certificate (the
    // review decides) and refuses to use it: it would receive node-1's state.
    let e = uplink::dial(&up, &dialer, "node-2").await.unwrap_err().to_string();
    assert!(e.contains("names node \"node-1\", this is \"node-2\""), "{e}");

    // The names in the signing request do not matter either: the
    // certificate names the reviewed node.
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec!["node-2.agent.bulkhead.invalid".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let reply = enroll_raw(&pki, &addr, "agent-token", &csr).await.unwrap();
    assert_eq!(reply.node, "node-1");
    let der: rustls_pki_types::CertificateDer =
        rustls_pki_types::pem::PemObject::from_pem_slice(reply.cert_pem.as_bytes()).unwrap();
    assert_eq!(bulkhead_api::tunnel::tls::agent_node(&der).as_deref(), Some("node-1"));
    let left = Duration::from_millis(reply.not_after_unix_ms)
        .saturating_sub(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap());
    assert!(left > Duration::from_secs(23 * 3600) && left <= Duration::from_secs(24 * 3600), "{left:?}");

    // Refusals, each with its reason, and no certificate.
    for (token, code, reason) in [
        ("deployer-token", tonic::Code::PermissionDenied, "system:serviceaccount:shop:deployer may not enroll"),
        ("secret-token", tonic::Code::PermissionDenied, "names no node"),
        ("expired-token", tonic::Code::PermissionDenied, "the token is not valid"),
        ("unaudienced-token", tonic::Code::PermissionDenied, "the token is not valid"),
    ] {
        let status = enroll_raw(&pki, &addr, token, &csr).await.unwrap_err();
        assert_eq!(status.code(), code, "{token}: {status:?}");
        assert!(status.message().contains(reason), "{token}: {}", status.message());
    }
    let status = enroll_raw(&pki, &addr, "agent-token", "not a CSR").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // The agent's own code says the refusal is final for now.
    let refused = pki.uplink(&addr, "deployer-token");
    let e = uplink::dial(&refused, &uplink::dialer(&refused).unwrap(), "node-1").await.unwrap_err();
    assert!(matches!(e, bulkhead_agent::error::AgentError::UplinkRefused(_)), "{e}");

    // A failing API server refuses (fail closed) as unavailable, so agents retry.
    fail.store(true, Ordering::SeqCst);
    let status = enroll_raw(&pki, &addr, "agent-token", &csr).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    fail.store(false, Ordering::SeqCst);

    // Revoking node-1 refuses its enrollment too.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&revoked_file, "node-1\n").unwrap();
    let mut revoked_now = false;
    for _ in 0..100 {
        let status = enroll_raw(&pki, &addr, "agent-token", &csr).await;
        if let Err(s) = status {
            assert!(s.message().contains("node node-1 is revoked"), "{s:?}");
            revoked_now = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(revoked_now, "node-1 still enrolls after its revocation");

    // Every enrollment and refusal is in the audit log, with who asked.
    let (entries, _) = audit.read(&AuditFilter::default(), None, 100).unwrap();
    let enrolled: Vec<_> = entries.iter().filter(|e| e.action == "agent-enrolled").collect();
    assert!(enrolled.len() >= 3, "{entries:#?}");
    assert!(enrolled.iter().all(|e| e.user == AGENT_SA && e.target == "node node-1"));
    assert!(enrolled[0].source.ends_with("(enrollment)"), "{:?}", enrolled[0].source);
    let refusals: Vec<&str> = entries
        .iter()
        .filter(|e| e.action == "agent-refused" && e.target == "enrollment")
        .map(|e| e.detail.as_str())
        .collect();
    for reason in ["may not enroll", "names no node", "not valid", "signing request", "Kubernetes API", "revoked"] {
        assert!(refusals.iter().any(|d| d.contains(reason)), "no refusal for {reason:?} in {refusals:#?}");
    }
    assert!(entries.iter().any(|e| e.action == "agent-connected" && e.target == "node node-1"));

    // One enrollment per connection, and a bounded number a minute per
    // address: each costs the API server a TokenReview.
    {
        use bulkhead_api::agent::v1 as pb;
        let connector = tunnel::tls::anonymous_connector(&pki.path("ca.pem")).unwrap();
        let io = tunnel::tls::dial(&connector, &addr, "bulkhead-controller").await.unwrap();
        let mut client = pb::enrollment_client::EnrollmentClient::new(tunnel::channel(io).await.unwrap());
        let request = || pb::EnrollRequest { token: "expired-token".into(), csr_pem: csr.clone() };
        assert_eq!(client.enroll(request()).await.unwrap_err().code(), tonic::Code::PermissionDenied);
        let again = client.enroll(request()).await.unwrap_err();
        assert_eq!(again.code(), tonic::Code::ResourceExhausted, "{again:?}");
    }
    let mut exhausted = None;
    for _ in 0..=bulkhead_controller::agents::enroll::ATTEMPTS_PER_MINUTE {
        let status = enroll_raw(&pki, &addr, "expired-token", &csr).await.unwrap_err();
        if status.code() == tonic::Code::ResourceExhausted {
            exhausted = Some(status);
            break;
        }
    }
    let exhausted = exhausted.expect("an address may not enroll without end");
    assert!(exhausted.message().contains("enrollments a minute"), "{exhausted:?}");
}

/// One enrollment call without the agent's checks.
async fn enroll_raw(
    pki: &Pki,
    addr: &str,
    token: &str,
    csr: &str,
) -> Result<bulkhead_api::agent::v1::EnrollResponse, tonic::Status> {
    use bulkhead_api::agent::v1 as pb;
    let connector = tunnel::tls::anonymous_connector(&pki.path("ca.pem")).unwrap();
    let io = tunnel::tls::dial(&connector, addr, "bulkhead-controller").await.unwrap();
    let channel = tunnel::channel(io).await.unwrap();
    let request = pb::EnrollRequest { token: token.into(), csr_pem: csr.into() };
    pb::enrollment_client::EnrollmentClient::new(channel).enroll(request).await.map(tonic::Response::into_inner)
}
