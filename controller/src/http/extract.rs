//! What every handler takes from a request: the authenticated principal,
//! and its query or body as a typed document, with failures answered as
//! `application/problem+json` naming the field.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhead_api::audit::Event;
use bulkhead_api::v1::audit::Outcome;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::service::{Service, ServiceError};

/// The peer address of a connection, put into each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// An operation's failure, as problem+json.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.0.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"bulkhead\""));
        }
        r
    }
}

/// The authenticated caller. A request without valid credentials is
/// answered 401 and audited.
#[derive(Debug, Clone)]
pub struct Who(pub Principal);

impl FromRequestParts<Service> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Service) -> Result<Self, ApiError> {
        let source = parts.extensions.get::<Peer>().map_or_else(|| "unknown".to_string(), |p| p.0.to_string());
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let ctx = service.context().clone();
        let names = {
            let ctx = ctx.clone();
            move || {
                ctx.policy.lock().map(|s| s.model().inventory.namespaces.keys().cloned().collect()).unwrap_or_default()
            }
        };
        match ctx.auth.authenticate(header, &source, names).await {
            Ok(p) => Ok(Who(p)),
            Err(e) => {
                let target = format!("{} {}", parts.method, parts.uri.path());
                let detail = e.to_string();
                let caller = bulkhead_api::audit::Caller {
                    actor: "anonymous".into(),
                    role: None,
                    uid: None,
                    pid: None,
                    source,
                    scope: None,
                };
                let event = Event { action: "authenticate", target: &target, detail: &detail, ..Default::default() };
                if let Err(err) = ctx.audit.event(&caller, Outcome::Refused, event) {
                    tracing::error!(error = %err, "auditing a refused authentication");
                }
                ctx.metrics.record_request("http", "authenticate", "unauthenticated");
                Err(ApiError(ServiceError::Unauthenticated(detail)))
            }
        }
    }
}

/// Every error an operation answers, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Problems {
    /// The request is invalid: the problem names the field.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(bulkhead_api::v1::Problem),
    /// No valid bearer token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(bulkhead_api::v1::Problem),
    /// The caller's role or namespaces do not allow it.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(bulkhead_api::v1::Problem),
    /// What the request names does not exist.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(bulkhead_api::v1::Problem),
    /// The object is not in a state that allows it.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(bulkhead_api::v1::Problem),
    /// The request body is larger than the limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(bulkhead_api::v1::Problem),
    /// The controller failed.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(bulkhead_api::v1::Problem),
    /// Something the controller needs is unavailable now; retry.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(bulkhead_api::v1::Problem),
}

/// An object id from the path.
#[derive(Debug, Clone, Copy)]
pub struct Id(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<u64>::from_request_parts(parts, state).await {
            Ok(p) => Ok(Id(p.0)),
            Err(e) => Err(ApiError(ServiceError::bad("id", format!("not an id: {}", e.body_text())))),
        }
    }
}

/// A query string as a typed document.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Q(q.0)),
            Err(e) => Err(ApiError(query_problem(&e))),
        }
    }
}

/// The field a deserializer's message names: "…query string: limit: invalid digit" or "missing field `to`".
fn field_in(text: &str, fallback: &str) -> String {
    let named = text
        .split_once("query string: ")
        .or_else(|| text.split_once("target type: "))
        .and_then(|(_, rest)| rest.split_once(": "))
        .map(|(f, _)| f)
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
    match named {
        Some(f) => f.to_string(),
        None if text.contains("missing field") => text.split('`').nth(1).unwrap_or(fallback).to_string(),
        None => fallback.to_string(),
    }
}

fn query_problem(e: &QueryRejection) -> ServiceError {
    let text = e.body_text();
    let field = field_in(&text, "query");
    ServiceError::BadRequest { object: None, field: Some(field), detail: format!("query: {text}") }
}

/// A JSON body as a typed document.
#[derive(Debug)]
pub struct J<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for J<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(j) => Ok(J(j.0)),
            Err(e) => Err(ApiError(json_problem(&e))),
        }
    }
}

fn json_problem(e: &JsonRejection) -> ServiceError {
    let text = e.body_text();
    let field = field_in(&text, "body");
    match e {
        JsonRejection::BytesRejection(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ServiceError::TooLarge(format!("body: larger than the {} MiB limit", super::BODY_LIMIT >> 20))
        }
        _ => ServiceError::BadRequest { object: None, field: Some(field), detail: format!("body: {text}") },
    }
}
