//! The HTTP transport on a controller without agents: the OpenAPI 3.1
//! document it serves describes exactly the routes it answers (every
//! documented operation is routed and authenticated, nothing else answers
//! but the health check and the document itself), security headers, closed
//! CORS, problem+json errors, the body limit, and the plain-HTTP rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_controller::auth::tokens;
use bulkhead_controller::http::{self, ApiConfig};
use bulkhead_controller::service::Service;
use serde_json::Value;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path, tokens_file: PathBuf) -> bulkhead_controller::Config {
    bulkhead_controller::Config {
        cluster: "c1".into(),
        state_dir: dir.to_path_buf(),
        socket: dir.join("api.sock"),
        mode: bulkhead_model::Mode::Enforce,
        agents: Default::default(),
        agent_listen: None,
        ha: None,
        manifests: vec![],
        kubernetes: false,
        metrics_addr: None,
        max_flows: 1000,
        learning: Default::default(),
        response: Default::default(),
        api: Some(ApiConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            plaintext: true,
            addr_file: Some(dir.join("url")),
            tokens: Some(tokens_file),
            console: None,
        }),
    }
}

/// A controller serving its HTTP API on loopback; returns its URL and an admin token.
async fn serve(dir: &Path) -> (String, String) {
    serve_with(dir, None).await
}

/// `serve`, with the console's files served from `console`.
async fn serve_with(dir: &Path, console: Option<PathBuf>) -> (String, String) {
    let admin = tokens::generate().unwrap();
    let entries = vec![tokens::TokenEntry {
        user: "root-admin".into(),
        role: bulkhead_model::Role::Admin,
        namespaces: None,
        sha256: tokens::hash(&admin),
    }];
    let file = dir.join("tokens.yaml");
    std::fs::write(&file, tokens::TokenFile::to_yaml(&entries).unwrap()).unwrap();
    let mut cfg = config(dir, file);
    if let Some(api) = cfg.api.as_mut() {
        api.console = console;
    }
    let api = cfg.api.clone().unwrap();
    let listener = http::bind(&api).unwrap();
    let (ctx, _rx) = bulkhead_controller::run::open(cfg).unwrap();
    tokio::spawn(http::serve(api, listener, Service::new(ctx), std::future::pending()));
    for _ in 0..100 {
        if let Ok(url) = std::fs::read_to_string(dir.join("url")) {
            return (url.trim().to_string(), admin);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the API did not start");
}

#[tokio::test]
async fn the_served_document_describes_exactly_the_routes_and_every_one_is_authenticated() {
    let dir = Dir(std::env::temp_dir().join(format!("bulkhead-http-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let (url, admin) = serve(&dir.0).await;
    let c = reqwest::Client::new();

    let doc: Value = c.get(format!("{url}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Every schema the document refers to is in it.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "the document refers to a schema it lacks: {name}");
    }
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let concrete = path.replace("{id}", "1");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Without a token: every documented operation is routed (not 404/405) and refuses, as problem+json.
            let r = c.request(m.clone(), format!("{url}{concrete}")).send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path}");
            assert_eq!(r.headers()["content-type"], "application/problem+json", "{method} {path}");
            assert!(r.headers().contains_key("www-authenticate"));
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["status"], 401);
            // Every operation documents its problems and needs the bearer scheme.
            for code in ["400", "401", "403"] {
                assert!(op["responses"][code].is_object(), "{method} {path} does not document {code}");
            }
            assert_eq!(
                op["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem"
            );
        }
    }
    // One per operation of the service layer; applying in audit and enforcing
    // share a path, and the trail has a second one for its CSV.
    assert_eq!(operations, bulkhead_controller::service::Op::ALL.len(), "operations documented");

    // Nothing else answers: an undocumented path is a problem+json 404.
    for path in ["/api/v1/nope", "/api/v2/flows", "/"] {
        let r = c.get(format!("{url}{path}")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // A documented path with a method it does not have is refused.
    let r = c.put(format!("{url}/api/v1/status")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(c.get(format!("{url}/healthz")).send().await.unwrap().text().await.unwrap(), "ok");

    // Security headers, no CORS, no cookies.
    let r = c
        .get(format!("{url}/api/v1/status"))
        .bearer_auth(&admin)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(!h.contains_key("access-control-allow-origin") && !h.contains_key("set-cookie"));
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{url}/api/v1/status"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(!pre.headers().contains_key("access-control-allow-origin"), "preflight answered: {:?}", pre.headers());

    // Bad input names the field; the body limit holds.
    let r = c.get(format!("{url}/api/v1/flows?limit=0")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["field"], "limit", "{p}");
    let r = c.get(format!("{url}/api/v1/flows?verdict=maybe")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["field"], "verdict", "{p}");
    let huge = "x".repeat(http::BODY_LIMIT + 1);
    let r = c
        .post(format!("{url}/api/v1/policies"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(format!("{{\"yaml\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Plain HTTP is refused anywhere but loopback, and TLS is needed unless asked for.
    let mut cfg = config(&dir.0, dir.0.join("tokens.yaml")).api.unwrap();
    cfg.addr = "0.0.0.0:0".parse().unwrap();
    assert!(cfg.check().unwrap_err().to_string().contains("loopback"));
    cfg.plaintext = false;
    assert!(cfg.check().unwrap_err().to_string().contains("--api-tls-cert"));
}

/// The console's typed client is generated from `ui/openapi.json`
/// (`npm run gen`); this keeps that copy equal to the document served.
/// `BULKHEAD_UPDATE_OPENAPI=1` rewrites it.
#[tokio::test]
async fn the_consoles_copy_of_the_document_is_the_served_one() {
    let dir = Dir(std::env::temp_dir().join(format!("bulkhead-http-doc-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let (url, _) = serve(&dir.0).await;
    let doc: Value = reqwest::get(format!("{url}/api/v1/openapi.json")).await.unwrap().json().await.unwrap();
    let served = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/openapi.json");
    if std::env::var_os("BULKHEAD_UPDATE_OPENAPI").is_some() {
        std::fs::write(&copy, &served).unwrap();
    }
    let kept = std::fs::read_to_string(&copy).unwrap_or_default();
    assert!(
        kept == served,
        "ui/openapi.json differs from the served document: run `BULKHEAD_UPDATE_OPENAPI=1 cargo test -p bulkhead-controller --test http` then `cd ui && npm run gen`"
    );
}

/// The console's files at `/`: the page with a fresh CSP nonce in its body
/// and its policy (never 'unsafe-inline'), hashed assets cached for good, a
/// missing asset a 404 (not the page), anything else the page, nothing
/// outside the directory, and the API's paths untouched.
#[tokio::test]
async fn the_console_is_served_with_a_nonce_and_nothing_outside_its_directory() {
    let dir = Dir(std::env::temp_dir().join(format!("bulkhead-http-console-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let site = dir.0.join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(site.join("index.html"), "<meta name=csp-nonce content=__CSP_NONCE__><p>console</p>").unwrap();
    std::fs::write(site.join("assets/app-1a2b.js"), "export {}").unwrap();
    std::fs::write(dir.0.join("secret.txt"), "not for the web").unwrap();
    let (url, admin) = serve_with(&dir.0, Some(site.clone())).await;
    let c = reqwest::Client::new();

    let page = |path: &'static str| {
        let c = c.clone();
        let url = url.clone();
        async move { c.get(format!("{url}{path}")).send().await.unwrap() }
    };
    let first = page("/").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/html; charset=utf-8");
    let csp = first.headers()["content-security-policy"].to_str().unwrap().to_string();
    let body = first.text().await.unwrap();
    assert!(!body.contains("__CSP_NONCE__"), "{body}");
    let nonce = body.split("content=").nth(1).unwrap().split('>').next().unwrap().to_string();
    assert_eq!(nonce.len(), 32);
    assert!(csp.contains(&format!("style-src 'self' 'nonce-{nonce}'")) && csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let second = page("/").await.text().await.unwrap();
    assert!(!second.contains(&nonce), "every page gets its own nonce");
    // A deep link is the page too.
    assert!(page("/flows").await.text().await.unwrap().contains("console"));

    let js = page("/assets/app-1a2b.js").await;
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(page("/assets/gone-9z.js").await.status(), 404);
    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"] {
        let r = c.get(format!("{url}{path}")).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(!text.contains("not for the web"), "{path} escaped the console directory");
    }
    // The API is not shadowed, and writing to the console is not a thing.
    assert_eq!(page("/api/v1/nope").await.status(), 404);
    assert_eq!(c.post(format!("{url}/")).bearer_auth(&admin).send().await.unwrap().status(), 404);
    let api = c.get(format!("{url}/api/v1/status")).bearer_auth(&admin).send().await.unwrap();
    assert!(!api.headers()["content-security-policy"].to_str().unwrap().contains("nonce"));

    // A console directory without a page is refused at start.
    let mut cfg = config(&dir.0, dir.0.join("tokens.yaml")).api.unwrap();
    cfg.console = Some(dir.0.join("nowhere"));
    assert!(cfg.check().unwrap_err().to_string().contains("make console"));
}
