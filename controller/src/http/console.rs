//! The web console's files, served at `/` from a directory (the `ui/`
//! build). The console is static: it holds no secret and talks only to
//! `/api/v1` with the bearer token its user types, so its files need no
//! authentication. Paths are resolved inside the directory only (no `..`,
//! no absolute path); anything that is not a file is the console's
//! `index.html`, whose client-side routes live in the URL's fragment.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::service::ServiceError;

/// Where a build from this source tree puts the console (`ui/dist`), used
/// when no `--console-dir` is given and it exists.
pub fn default_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    dir.join("index.html").is_file().then(|| dir.canonicalize().unwrap_or(dir))
}

/// Answers `uri` from the console directory `root`.
pub async fn serve(root: PathBuf, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        return not_found("no such path; see /api/v1/openapi.json");
    }
    let Some(relative) = inside(path) else {
        return not_found("no such file in the console");
    };
    let candidate = root.join(&relative);
    let file = match tokio::fs::metadata(&candidate).await {
        Ok(m) if m.is_file() => candidate,
        // Hashed assets that are missing are a stale page: say so, do not answer the index.
        _ if relative.starts_with("assets") => return not_found("no such console asset; reload the page"),
        _ => root.join("index.html"),
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            let mut r = if ext == "html" {
                match with_nonce(bytes) {
                    Ok(r) => r,
                    Err(e) => return ApiError(e).into_response(),
                }
            } else {
                Response::new(Body::from(bytes))
            };
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(ext)));
            if relative.starts_with("assets") {
                // Vite names every asset after its content.
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
            }
            r
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "reading a console file");
            ApiError(ServiceError::Unavailable(format!(
                "the console's files cannot be read ({}: {e}); rebuild them with `make console`",
                file.display()
            )))
            .into_response()
        }
    }
}

/// The placeholder in `index.html` replaced by each answer's nonce.
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

/// The console page with a fresh CSP nonce: its editor inserts `<style>`
/// elements, which the policy admits only with this nonce (never
/// `'unsafe-inline'`). Scripts stay `'self'` only.
fn with_nonce(page: Vec<u8>) -> Result<Response, ServiceError> {
    let nonce = crate::auth::tokens::generate()
        .map_err(|e| ServiceError::Internal(format!("no randomness for the page's nonce: {e}")))?;
    let nonce = &nonce[..32];
    let text = String::from_utf8_lossy(&page).replace(NONCE_PLACEHOLDER, nonce);
    let mut r = Response::new(Body::from(text));
    let csp = format!(
        "default-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    let value =
        HeaderValue::from_str(&csp).map_err(|e| ServiceError::Internal(format!("the page's policy header: {e}")))?;
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    Ok(r)
}

/// The answer when no console directory is configured or built.
pub async fn absent(uri: Uri) -> Response {
    if uri.path() == "/" || uri.path() == "/index.html" {
        return ApiError(ServiceError::NotFound {
            object: "console".into(),
            detail: "this controller serves no console: build it with `make console` or pass --console-dir DIR".into(),
        })
        .into_response();
    }
    not_found("no such path; see /api/v1/openapi.json")
}

fn not_found(detail: &str) -> Response {
    ApiError(ServiceError::NotFound { object: "path".into(), detail: detail.into() }).into_response()
}

/// The request path as a relative path with only normal components.
fn inside(path: &str) -> Option<PathBuf> {
    let trimmed = path.trim_start_matches('/');
    let relative = PathBuf::from(if trimmed.is_empty() { "index.html" } else { trimmed });
    relative.components().all(|c| matches!(c, Component::Normal(_))).then_some(relative)
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert_eq!(inside("/"), Some(PathBuf::from("index.html")));
        assert_eq!(inside("/assets/a.js"), Some(PathBuf::from("assets/a.js")));
        assert_eq!(inside("/../etc/passwd"), None);
        assert_eq!(inside("/assets/../../x"), None);
        assert_eq!(content_type("js"), "text/javascript; charset=utf-8");
    }
}
