//! The HTTP transport of the service layer: JSON under `/api/v1`, described
//! by the OpenAPI 3.1 document it serves at `/api/v1/openapi.json`, which is
//! generated from the same handler annotations the routes are built from
//! (so the two cannot drift). TLS with rustls; plain HTTP only on loopback
//! and only when asked for. Bearer tokens in the `Authorization` header (no
//! cookies), no CORS, strict security headers, request size and time limits.

pub mod console;
mod extract;
mod read;
mod tls;
mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use tower::Service as _;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::{ApiError, J, Peer, Problems, Q};

use crate::error::ControllerError;
use crate::service::{Op, Service, ServiceError};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 4 << 20;
/// The longest a request may take to be answered (streams excepted, once started).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the HTTP API listens.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The address (port 0: any free port, written to `addr_file`).
    pub addr: SocketAddr,
    /// Certificate chain and private key, PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP (loopback addresses only).
    pub plaintext: bool,
    /// Write the bound address here once listening.
    pub addr_file: Option<PathBuf>,
    /// The tokens file.
    pub tokens: Option<PathBuf>,
    /// The web console's built files, served at `/`.
    pub console: Option<PathBuf>,
}

impl ApiConfig {
    /// Refuses a configuration that would expose the API without TLS.
    pub fn check(&self) -> Result<(), ControllerError> {
        let bad = |m: &str| ControllerError::BadRequest(m.to_string());
        match (&self.tls, self.plaintext) {
            (Some(_), true) => Err(bad("--api-plaintext and --api-tls-cert exclude each other")),
            (None, false) => {
                Err(bad("the API needs --api-tls-cert and --api-tls-key (or --api-plaintext on a loopback address)"))
            }
            (None, true) if !self.addr.ip().is_loopback() => {
                Err(bad("--api-plaintext is allowed only on a loopback address; use TLS for anything else"))
            }
            _ => Ok(()),
        }?;
        match &self.console {
            Some(dir) if !dir.join("index.html").is_file() => Err(bad(&format!(
                "--console-dir {}: no index.html there; build the console with `make console`",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// The API's description; paths are added from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bulkhead controller API",
        version = "v1",
        description = "Flows, the service graph, exposure, baselines, suggestions and their review, policies, quarantine, the block list and the audit log of a Bulkhead controller. Authenticate with `Authorization: Bearer <token>`. Errors are application/problem+json naming the object and field."
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
    // Referenced from parameters and the problem responses, which utoipa
    // does not collect on its own.
    components(schemas(
        bulkhead_api::v1::Problem,
        bulkhead_api::v1::flows::Side,
        bulkhead_model::exposure::FindingKind,
        write::Format
    ))
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from the tokens file, or a Kubernetes token"))
                    .build(),
            ),
        );
    }
}

/// Records a request's result and answers it.
pub(crate) fn done<T>(s: &Service, op: Op, r: Result<T, ServiceError>) -> Result<Json<T>, ApiError> {
    s.context().metrics.record_request("http", op.name(), r.as_ref().map_or_else(ServiceError::label, |_| "ok"));
    r.map(Json).map_err(ApiError)
}

/// The routes and the document generated from them.
pub fn router(service: Service, console: Option<PathBuf>) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(read::whoami))
        .routes(routes!(read::status))
        .routes(routes!(read::namespaces))
        .routes(routes!(read::pods))
        .routes(routes!(read::workloads))
        .routes(routes!(read::services))
        .routes(routes!(read::flows))
        .routes(routes!(write::stream))
        .routes(routes!(read::graph))
        .routes(routes!(read::graph_diff))
        .routes(routes!(read::blast_radius))
        .routes(routes!(read::allowed))
        .routes(routes!(read::exposure))
        .routes(routes!(read::baselines))
        .routes(routes!(read::anomalies))
        .routes(routes!(read::suggestions, write::suggest))
        .routes(routes!(write::export))
        .routes(routes!(read::suggestion))
        .routes(routes!(write::approve))
        .routes(routes!(write::reject))
        .routes(routes!(write::apply_suggestion))
        .routes(routes!(read::policies, write::apply))
        .routes(routes!(write::delete))
        .routes(routes!(read::explain))
        .routes(routes!(read::quarantines, write::quarantine))
        .routes(routes!(read::quarantine, write::release))
        .routes(routes!(read::blocks, write::block))
        .routes(routes!(write::unblock))
        .routes(routes!(write::remote_pods))
        .routes(routes!(read::trail))
        .routes(routes!(read::trail_csv))
        .routes(routes!(read::audit))
        .with_state(service)
        .split_for_parts();
    let served = doc.clone();
    let router = api
        .route("/api/v1/openapi.json", axum::routing::get(move || async move { Json(served) }))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(move |method: axum::http::Method, uri: axum::http::Uri| {
            let console = console.clone();
            async move {
                match (method, console) {
                    (axum::http::Method::GET | axum::http::Method::HEAD, Some(dir)) => console::serve(dir, uri).await,
                    (axum::http::Method::GET | axum::http::Method::HEAD, None) => console::absent(uri).await,
                    _ => ApiError(ServiceError::NotFound {
                        object: "path".into(),
                        detail: "no such path; see /api/v1/openapi.json".into(),
                    })
                    .into_response(),
                }
            }
        });
    (harden(router), doc)
}

/// The limits and security headers every API of Bulkhead answers with.
pub fn harden(router: axum::Router) -> axum::Router {
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(read_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // The console's page sets its own, with a nonce; everything else gets this one.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
}

/// Reads the whole request body (up to the limit) before anything answers:
/// an early answer (401, a bad path) then never leaves an unread body on a
/// kept-alive connection, which would make the server drop it under the
/// client's next request. A body over the limit is answered 413 and the
/// connection is closed, as said in the answer.
async fn read_body(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Err(_) => {
            let mut r =
                ApiError(ServiceError::TooLarge(format!("body: larger than the {} MiB limit", BODY_LIMIT >> 20)))
                    .into_response();
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// Binds the API's listener (before the caller enters another network
/// namespace, so the socket stays in the host's) and checks the configuration.
pub fn bind(cfg: &ApiConfig) -> Result<std::net::TcpListener, ControllerError> {
    cfg.check()?;
    let l = std::net::TcpListener::bind(cfg.addr).map_err(|source| ControllerError::Io {
        action: "binding the API address",
        path: PathBuf::from(cfg.addr.to_string()),
        source,
    })?;
    l.set_nonblocking(true).map_err(|source| ControllerError::Io {
        action: "configuring the API socket",
        path: PathBuf::from(cfg.addr.to_string()),
        source,
    })?;
    Ok(l)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    cfg: ApiConfig,
    listener: std::net::TcpListener,
    service: Service,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ControllerError> {
    let (router, _) = router(service, cfg.console.clone());
    serve_router(&cfg, listener, router, shutdown).await
}

/// Serves `router` on `listener` with `cfg`'s TLS until `shutdown`
/// resolves: the controller's API and the hub's share the transport.
pub async fn serve_router(
    cfg: &ApiConfig,
    listener: std::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ControllerError> {
    let serve_err = |message: String| ControllerError::Serve { what: "HTTP API", message };
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| serve_err(e.to_string()))?;
    let local = listener.local_addr().map_err(|e| serve_err(e.to_string()))?;
    let acceptor = match &cfg.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    if let Some(f) = &cfg.addr_file {
        crate::policy::files::write_atomic(f, format!("{scheme}://{local}\n").as_bytes())?;
    }
    tracing::info!(url = %format!("{scheme}://{local}"), "HTTP API serving");
    let hsts = acceptor.is_some();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an API connection");
                    continue;
                }
            },
        };
        // Answers go out as they are written, not held back for more (Nagle).
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                let mut router = router.clone();
                async move {
                    let mut r = router.call(req.map(axum::body::Body::new)).await?;
                    if hsts {
                        r.headers_mut()
                            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
                    }
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let result = match acceptor {
                Some(a) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, a.accept(tcp)).await {
                    Ok(Ok(stream)) => builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                None => builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
}
