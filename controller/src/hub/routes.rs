//! The hub's HTTP API under `/api/v1/hub`: reads asked of every member at
//! once, quarantines sent to one. Every caller is authenticated against the
//! hub's tokens file; a quarantine needs the responder role, and it and
//! every refusal go to the hub's audit log (the member audits it too, as
//! done by the hub's token for it, with the hub user in the reason).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::routing::get;
use bulkhead_api::audit::{AuditLog, Caller, Event};
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::exposure::{Exposure, ExposureQuery};
use bulkhead_api::v1::flows::{Flow, FlowQuery};
use bulkhead_api::v1::graph::{Graph, GraphQuery};
use bulkhead_api::v1::hub::{MemberInfo, Members as Answers};
use bulkhead_api::v1::quarantine::{Quarantine, QuarantineQuery, QuarantineRequest, ReleaseQuery};
use bulkhead_api::v1::status::Status;
use bulkhead_api::v1::{Page, WhoAmI};
use bulkhead_model::Role;

use super::members::Members;
use crate::auth::{Authenticator, Principal};
use crate::http::{ApiError, J, Peer, Problems, Q};
use crate::service::ServiceError;

/// What every handler shares.
#[derive(Debug)]
pub struct Hub {
    /// The hub's name, in what it forwards.
    pub name: String,
    /// Its members.
    pub members: Members,
    /// Who may call it: the tokens file only.
    pub auth: Authenticator,
    /// Its own audit log.
    pub audit: AuditLog,
}

type Shared = Arc<Hub>;

/// An authenticated hub caller, cluster-wide (a tenant's token is refused:
/// the hub's member tokens are cluster-wide, so it cannot scope answers).
struct HubCaller(Principal);

impl Hub {
    fn audit(&self, caller: &Caller, outcome: Outcome, action: &str, target: &str, detail: &str) {
        let event = Event { action, target, detail, ..Default::default() };
        if let Err(e) = self.audit.event(caller, outcome, event) {
            tracing::error!(error = %e, "writing the hub's audit log");
        }
    }

    /// Sends `who`'s change to the member `cluster` and audits it here: done
    /// (with `detail` of the answer), refused by the member, or failed.
    async fn forward<T: serde::de::DeserializeOwned>(
        &self,
        who: &HubCaller,
        (action, target): (&str, &str),
        (cluster, method, path): (&str, reqwest::Method, &str),
        body: Option<&QuarantineRequest>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T, ApiError> {
        let caller = who.0.caller();
        match self.members.send::<T>(cluster, method, path, body).await {
            Ok(answer) => {
                self.audit(&caller, Outcome::Ok, action, target, &detail(&answer));
                Ok(answer)
            }
            Err(e) => {
                let outcome =
                    if matches!(e, ServiceError::Forbidden { .. }) { Outcome::Refused } else { Outcome::Failed };
                self.audit(&caller, outcome, action, target, &e.to_string());
                Err(ApiError(e))
            }
        }
    }

    /// Refuses, and audits, a caller whose role is below `need`.
    fn authorize(&self, who: &HubCaller, need: Role, action: &str, target: &str) -> Result<(), ApiError> {
        if who.0.role >= need {
            return Ok(());
        }
        let why = format!("{} holds role {}; {action} needs {}", who.0.user, who.0.role.as_str(), need.as_str());
        self.audit(&who.0.caller(), Outcome::Refused, action, target, &why);
        Err(ApiError(ServiceError::Forbidden { detail: why }))
    }
}

impl FromRequestParts<Shared> for HubCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Shared) -> Result<Self, ApiError> {
        let source = parts.extensions.get::<Peer>().map_or_else(|| "unknown".to_string(), |p| p.0.to_string());
        let target = format!("{} {}", parts.method, parts.uri.path());
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let who = match hub.auth.authenticate(header, &source, Vec::new).await {
            Ok(p) => p,
            Err(e) => {
                let anonymous =
                    Caller { actor: "anonymous".into(), role: None, uid: None, pid: None, source, scope: None };
                hub.audit(&anonymous, Outcome::Refused, "authenticate", &target, &e.to_string());
                return Err(ApiError(ServiceError::Unauthenticated(e.to_string())));
            }
        };
        if who.scope.is_tenant() {
            let why = format!("{} is a tenant of some namespaces; the hub serves cluster-wide tokens only", who.user);
            hub.audit(&who.caller(), Outcome::Refused, "authenticate", &target, &why);
            return Err(ApiError(ServiceError::Forbidden { detail: why }));
        }
        Ok(HubCaller(who))
    }
}

/// The member API path with the caller's query passed on unchanged: each
/// member validates it, and says so when it is wrong.
fn with_query(path: &str, q: Option<String>) -> String {
    match q {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// Who the caller is, as the hub sees it.
#[utoipa::path(get, path = "/api/v1/hub/whoami", tag = "hub", responses((status = 200, body = WhoAmI), Problems))]
async fn whoami(who: HubCaller) -> Json<WhoAmI> {
    Json(WhoAmI { user: who.0.user, role: who.0.role, namespaces: None, via: who.0.via.as_str().into() })
}

/// The member clusters.
#[utoipa::path(get, path = "/api/v1/hub/clusters", tag = "hub", responses((status = 200, body = Vec<MemberInfo>), Problems))]
async fn clusters(State(hub): State<Shared>, _who: HubCaller) -> Json<Vec<MemberInfo>> {
    Json(hub.members.list().map(|m| MemberInfo { name: m.name.clone(), url: m.url.clone() }).collect())
}

/// Every member's status.
#[utoipa::path(get, path = "/api/v1/hub/status", tag = "hub", responses((status = 200, body = Answers<Status>), Problems))]
async fn status(State(hub): State<Shared>, _who: HubCaller) -> Json<Answers<Status>> {
    Json(Answers { clusters: hub.members.read_all("/api/v1/status").await })
}

/// Every member's graph; the query is each member's `GET /api/v1/graph` query.
#[utoipa::path(get, path = "/api/v1/hub/graph", tag = "hub", params(GraphQuery), responses((status = 200, body = Answers<Graph>), Problems))]
async fn graph(State(hub): State<Shared>, _who: HubCaller, RawQuery(q): RawQuery) -> Json<Answers<Graph>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/graph", q)).await })
}

/// Every member's flows; the query is each member's `GET /api/v1/flows` query.
#[utoipa::path(get, path = "/api/v1/hub/flows", tag = "hub", params(FlowQuery), responses((status = 200, body = Answers<Page<Flow>>), Problems))]
async fn flows(State(hub): State<Shared>, _who: HubCaller, RawQuery(q): RawQuery) -> Json<Answers<Page<Flow>>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/flows", q)).await })
}

/// Every member's exposure report; the query is each member's.
#[utoipa::path(get, path = "/api/v1/hub/exposure", tag = "hub", params(ExposureQuery), responses((status = 200, body = Answers<Exposure>), Problems))]
async fn exposure(State(hub): State<Shared>, _who: HubCaller, RawQuery(q): RawQuery) -> Json<Answers<Exposure>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/exposure", q)).await })
}

/// Every member's quarantines; the query is each member's.
#[utoipa::path(get, path = "/api/v1/hub/quarantines", tag = "hub", params(QuarantineQuery), responses((status = 200, body = Answers<Page<Quarantine>>), Problems))]
async fn quarantines(
    State(hub): State<Shared>,
    _who: HubCaller,
    RawQuery(q): RawQuery,
) -> Json<Answers<Page<Quarantine>>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/quarantines", q)).await })
}

/// A quarantine and its release say why, on the hub as on the member.
fn require_reason(reason: &str) -> Result<(), ApiError> {
    if !reason.trim().is_empty() {
        return Ok(());
    }
    Err(ApiError(ServiceError::BadRequest {
        object: None,
        field: Some("reason".into()),
        detail: "reason: say why (it is recorded and audited on the hub and the member)".into(),
    }))
}

/// The reason the member records: the caller's, and who asked at the hub.
fn forwarded(hub: &Hub, who: &HubCaller, reason: &str) -> String {
    format!("{reason} [via hub {} by {}]", hub.name, who.0.user)
}

/// Quarantines on one member, which executes and audits it.
#[utoipa::path(post, path = "/api/v1/hub/clusters/{cluster}/quarantines", tag = "hub", request_body = QuarantineRequest,
    params(("cluster" = String, Path, description = "The member cluster")), responses((status = 201, body = Quarantine), Problems))]
async fn quarantine(
    State(hub): State<Shared>,
    who: HubCaller,
    Path(cluster): Path<String>,
    J(mut req): J<QuarantineRequest>,
) -> Result<(StatusCode, Json<Quarantine>), ApiError> {
    let what = req.pod.clone().or_else(|| req.workload.clone()).unwrap_or_default();
    let target = format!("cluster {cluster}: {what}");
    hub.authorize(&who, Role::Responder, "quarantine", &target)?;
    require_reason(&req.reason)?;
    let reason = req.reason.clone();
    req.reason = forwarded(&hub, &who, &reason);
    let to = (cluster.as_str(), reqwest::Method::POST, "/api/v1/quarantines");
    let detail = |q: &Quarantine| format!("quarantine {} on {cluster}: {reason}", q.id);
    let q = hub.forward(&who, ("quarantine", &target), to, Some(&req), detail).await?;
    Ok((StatusCode::CREATED, Json(q)))
}

/// Releases a quarantine on one member.
#[utoipa::path(delete, path = "/api/v1/hub/clusters/{cluster}/quarantines/{id}", tag = "hub",
    params(("cluster" = String, Path, description = "The member cluster"), ("id" = u64, Path, description = "The quarantine on that member"), ReleaseQuery),
    responses((status = 200, body = Quarantine), Problems))]
async fn release(
    State(hub): State<Shared>,
    who: HubCaller,
    Path((cluster, id)): Path<(String, u64)>,
    Q(q): Q<ReleaseQuery>,
) -> Result<Json<Quarantine>, ApiError> {
    let target = format!("cluster {cluster}: quarantine {id}");
    hub.authorize(&who, Role::Responder, "release", &target)?;
    require_reason(&q.reason)?;
    let path = format!("/api/v1/quarantines/{id}?reason={}", encode(&forwarded(&hub, &who, &q.reason)));
    let to = (cluster.as_str(), reqwest::Method::DELETE, path.as_str());
    let done = hub.forward(&who, ("release", &target), to, None, |_: &Quarantine| q.reason.clone()).await?;
    Ok(Json(done))
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The hub's API description; paths come from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Bulkhead hub API",
        version = "v1",
        description = "One view across Bulkhead clusters: every member controller's answer under its cluster name, and quarantines sent to the member that executes them. Authenticate with `Authorization: Bearer <token>` (the hub's tokens file, cluster-wide holders)."
    ),
    components(schemas(bulkhead_api::v1::Problem))
)]
struct HubDoc;

/// The hub's routes and their OpenAPI document (served at
/// `/api/v1/hub/openapi.json`), hardened as the controller's API is.
pub fn router(hub: Hub) -> (axum::Router, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    use utoipa_axum::routes;
    let (api, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(HubDoc::openapi())
        .routes(routes!(whoami))
        .routes(routes!(clusters))
        .routes(routes!(status))
        .routes(routes!(graph))
        .routes(routes!(flows))
        .routes(routes!(exposure))
        .routes(routes!(quarantines))
        .routes(routes!(quarantine))
        .routes(routes!(release))
        .with_state(Arc::new(hub))
        .split_for_parts();
    let served = doc.clone();
    let router = api
        .route("/api/v1/hub/openapi.json", get(move || async move { Json(served) }))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError(ServiceError::NotFound {
                object: "path".into(),
                detail: "no such path on the hub; see /api/v1/hub/openapi.json".into(),
            })
        });
    (crate::http::harden(router), doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn call(router: &axum::Router, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req =
            req.header("content-type", "application/json").body(axum::body::Body::from(body.to_string())).unwrap();
        let r = router.clone().oneshot(req).await.unwrap();
        let status = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Every documented path is routed and refuses without a token; a
    /// tenant and a viewer's quarantine are refused and audited; a member
    /// that cannot be reached is that member's error.
    #[tokio::test]
    async fn every_path_is_authenticated_and_refusals_are_audited() {
        use crate::auth::tokens::{TokenEntry, TokenFile, TokenSource, generate, hash};
        let dir = Dir(std::env::temp_dir().join(format!("bulkhead-hub-routes-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let (viewer, tenant) = (generate().unwrap(), generate().unwrap());
        let entries = [
            TokenEntry { user: "v".into(), role: Role::Viewer, namespaces: None, sha256: hash(&viewer) },
            TokenEntry {
                user: "t".into(),
                role: Role::Admin,
                namespaces: Some(vec!["shop".into()]),
                sha256: hash(&tenant),
            },
        ];
        std::fs::write(dir.0.join("tokens.yaml"), TokenFile::to_yaml(&entries).unwrap()).unwrap();
        // Nothing listens on port 9 of loopback: the member is down.
        let members = Members::new(vec!["down=http://127.0.0.1:9,x".parse().unwrap()]).unwrap();
        let hub = Hub {
            name: "h".into(),
            members,
            auth: Authenticator {
                tokens: Some(TokenSource::load(&dir.0.join("tokens.yaml")).unwrap()),
                kubernetes: None,
            },
            audit: AuditLog::new(&dir.0.join("audit.log")),
        };
        let (router, doc) = router(hub);
        let doc = serde_json::to_value(&doc).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 9, "{:?}", paths.keys());
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                let concrete = path.replace("{cluster}", "down").replace("{id}", "1");
                let (status, body) = call(&router, &method.to_uppercase(), &concrete, None, "{}").await;
                assert_eq!(status, 401, "{method} {path}: {body}");
            }
        }
        let (status, body) = call(&router, "GET", "/api/v1/hub/status", Some(&tenant), "").await;
        assert!(status == 403 && body.contains("cluster-wide tokens only"), "{body}");
        let q = r#"{"pod": "shop/a", "reason": "r"}"#;
        let (status, body) = call(&router, "POST", "/api/v1/hub/clusters/down/quarantines", Some(&viewer), q).await;
        assert!(status == 403 && body.contains("needs responder"), "{body}");
        let (status, body) = call(&router, "GET", "/api/v1/hub/status", Some(&viewer), "").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["clusters"][0]["error"].as_str().unwrap().starts_with("cluster down at http://127.0.0.1:9"), "{v}");
        assert!(!body.contains("\"x\""), "the member token is never answered");
        let (status, _) = call(&router, "GET", "/api/v1/hub/openapi.json", None, "").await;
        assert_eq!(status, 200, "the description is public, as the controller's");
        let log = std::fs::read_to_string(dir.0.join("audit.log")).unwrap();
        assert!(
            log.contains("\"actor\":\"t\"") && log.contains("\"actor\":\"v\"") && log.contains("anonymous"),
            "{log}"
        );
    }

    #[test]
    fn reasons_are_encoded_for_the_query() {
        assert_eq!(encode("INC 42 [via hub h by a&b]"), "INC%2042%20%5Bvia%20hub%20h%20by%20a%26b%5D");
    }
}
