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
use axum::routing::{delete, get};
use bulkhead_api::audit::{AuditLog, Caller, Event};
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::exposure::Exposure;
use bulkhead_api::v1::flows::Flow;
use bulkhead_api::v1::graph::Graph;
use bulkhead_api::v1::hub::{MemberInfo, Members as Answers};
use bulkhead_api::v1::quarantine::{Quarantine, QuarantineRequest};
use bulkhead_api::v1::status::Status;
use bulkhead_api::v1::{Page, WhoAmI};
use bulkhead_model::Role;

use super::members::Members;
use crate::auth::tokens::TokenSource;
use crate::http::{ApiError, J, Peer, Q};
use crate::service::ServiceError;

/// What every handler shares.
#[derive(Debug)]
pub struct Hub {
    /// The hub's name, in what it forwards.
    pub name: String,
    /// Its members.
    pub members: Members,
    /// Who may call it.
    pub tokens: TokenSource,
    /// Its own audit log.
    pub audit: AuditLog,
}

type Shared = Arc<Hub>;

/// An authenticated hub caller, cluster-wide (a tenant's token is refused:
/// the hub's member tokens are cluster-wide, so it cannot scope answers).
struct HubCaller(Caller, Role);

impl Hub {
    fn audit(&self, caller: &Caller, outcome: Outcome, action: &str, target: &str, detail: &str) {
        let event = Event { action, target, detail, ..Default::default() };
        if let Err(e) = self.audit.event(caller, outcome, event) {
            tracing::error!(error = %e, "writing the hub's audit log");
        }
    }

    /// Refuses, and audits, a caller whose role is below `need`.
    fn authorize(&self, who: &HubCaller, need: Role, action: &str, target: &str) -> Result<(), ApiError> {
        if who.1 >= need {
            return Ok(());
        }
        let why = format!("{} holds role {}; {action} needs {}", who.0.actor, who.1.as_str(), need.as_str());
        self.audit(&who.0, Outcome::Refused, action, target, &why);
        Err(ApiError(ServiceError::Forbidden { detail: why }))
    }
}

impl FromRequestParts<Shared> for HubCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Shared) -> Result<Self, ApiError> {
        let source = parts.extensions.get::<Peer>().map_or_else(|| "unknown".to_string(), |p| p.0.to_string());
        let target = format!("{} {}", parts.method, parts.uri.path());
        let anonymous = Caller { actor: "anonymous".into(), role: None, uid: None, pid: None, source, scope: None };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let refuse = |why: &str, error: ServiceError| {
            hub.audit(&anonymous, Outcome::Refused, "authenticate", &target, why);
            Err(ApiError(error))
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return refuse(
                "no bearer token",
                ServiceError::Unauthenticated("Authorization: Bearer <token> is required".into()),
            );
        };
        let Some(entry) = hub.tokens.verify(token) else {
            return refuse(
                "unknown token",
                ServiceError::Unauthenticated("the token is not valid for this hub".into()),
            );
        };
        let caller = Caller {
            actor: entry.user.clone(),
            role: Some(entry.role),
            scope: entry.scope().namespaces(),
            ..anonymous.clone()
        };
        if entry.scope().is_tenant() {
            let why = format!("{} is a tenant of some namespaces; the hub serves cluster-wide tokens only", entry.user);
            hub.audit(&caller, Outcome::Refused, "authenticate", &target, &why);
            return Err(ApiError(ServiceError::Forbidden { detail: why }));
        }
        Ok(HubCaller(Caller { scope: None, ..caller }, entry.role))
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

async fn whoami(who: HubCaller) -> Json<WhoAmI> {
    Json(WhoAmI { user: who.0.actor, role: who.1, namespaces: None, via: "token".into() })
}

async fn clusters(State(hub): State<Shared>, _who: HubCaller) -> Json<Vec<MemberInfo>> {
    Json(hub.members.list().map(|m| MemberInfo { name: m.name.clone(), url: m.url.clone() }).collect())
}

async fn status(State(hub): State<Shared>, _who: HubCaller) -> Json<Answers<Status>> {
    Json(Answers { clusters: hub.members.read_all("/api/v1/status").await })
}

async fn graph(State(hub): State<Shared>, _who: HubCaller, RawQuery(q): RawQuery) -> Json<Answers<Graph>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/graph", q)).await })
}

async fn flows(State(hub): State<Shared>, _who: HubCaller, RawQuery(q): RawQuery) -> Json<Answers<Page<Flow>>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/flows", q)).await })
}

async fn exposure(State(hub): State<Shared>, _who: HubCaller, RawQuery(q): RawQuery) -> Json<Answers<Exposure>> {
    Json(Answers { clusters: hub.members.read_all(&with_query("/api/v1/exposure", q)).await })
}

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
fn forwarded(hub: &Hub, who: &Caller, reason: &str) -> String {
    format!("{reason} [via hub {} by {}]", hub.name, who.actor)
}

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
    req.reason = forwarded(&hub, &who.0, &reason);
    match hub.members.send::<Quarantine>(&cluster, reqwest::Method::POST, "/api/v1/quarantines", Some(&req)).await {
        Ok(q) => {
            hub.audit(
                &who.0,
                Outcome::Ok,
                "quarantine",
                &target,
                &format!("quarantine {} on {cluster}: {reason}", q.id),
            );
            Ok((StatusCode::CREATED, Json(q)))
        }
        Err(e) => {
            let outcome = if matches!(e, ServiceError::Forbidden { .. }) { Outcome::Refused } else { Outcome::Failed };
            hub.audit(&who.0, outcome, "quarantine", &target, &e.to_string());
            Err(ApiError(e))
        }
    }
}

/// `DELETE …?reason=`: the reason is required, as on the member.
#[derive(Debug, serde::Deserialize)]
struct Release {
    #[serde(default)]
    reason: String,
}

async fn release(
    State(hub): State<Shared>,
    who: HubCaller,
    Path((cluster, id)): Path<(String, u64)>,
    Q(q): Q<Release>,
) -> Result<Json<Quarantine>, ApiError> {
    let target = format!("cluster {cluster}: quarantine {id}");
    hub.authorize(&who, Role::Responder, "release", &target)?;
    require_reason(&q.reason)?;
    let reason = forwarded(&hub, &who.0, &q.reason);
    let path = format!("/api/v1/quarantines/{id}?reason={}", encode(&reason));
    match hub.members.send::<Quarantine>(&cluster, reqwest::Method::DELETE, &path, None::<&()>).await {
        Ok(done) => {
            hub.audit(&who.0, Outcome::Ok, "release", &target, &q.reason);
            Ok(Json(done))
        }
        Err(e) => {
            hub.audit(&who.0, Outcome::Failed, "release", &target, &e.to_string());
            Err(ApiError(e))
        }
    }
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

/// The hub's routes, hardened as the controller's API is.
pub fn router(hub: Hub) -> axum::Router {
    let router = axum::Router::new()
        .route("/api/v1/hub/whoami", get(whoami))
        .route("/api/v1/hub/clusters", get(clusters))
        .route("/api/v1/hub/status", get(status))
        .route("/api/v1/hub/graph", get(graph))
        .route("/api/v1/hub/flows", get(flows))
        .route("/api/v1/hub/exposure", get(exposure))
        .route("/api/v1/hub/quarantines", get(quarantines))
        .route("/api/v1/hub/clusters/{cluster}/quarantines", axum::routing::post(quarantine))
        .route("/api/v1/hub/clusters/{cluster}/quarantines/{id}", delete(release))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError(ServiceError::NotFound {
                object: "path".into(),
                detail: "no such path on the hub; see the README's hub API".into(),
            })
        })
        .with_state(Arc::new(hub));
    crate::http::harden(router)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_encoded_for_the_query() {
        assert_eq!(encode("INC 42 [via hub h by a&b]"), "INC%2042%20%5Bvia%20hub%20h%20by%20a%26b%5D");
    }
}
