//! `bulkhead hub`: one authenticated view across clusters. Each cluster
//! keeps its own controller; the hub holds a token for each member's API
//! and answers reads (status, graph, flows, exposure, quarantines) with
//! every member's answer under its cluster name, and sends a quarantine to
//! the member that executes it. With `--share-pods` it also gives each
//! member the others' pods, so identities carry the cluster they are of.
//! It keeps no state of its own but its audit log, so it can be restarted
//! or run twice at will.

mod members;
mod routes;
mod share;

use std::path::PathBuf;

pub use members::{MEMBER_TIMEOUT, Member, Members};

use crate::auth::tokens::TokenSource;
use crate::error::ControllerError;
use crate::http::ApiConfig;

/// What `bulkhead hub` is given.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The hub's name, in the reasons it forwards to members.
    pub name: String,
    /// The member clusters.
    pub members: Vec<Member>,
    /// Where and how it listens; `tokens` names who may call it.
    pub api: ApiConfig,
    /// Where its audit log goes.
    pub state_dir: PathBuf,
    /// Give every member the other members' pods (needs admin tokens).
    pub share_pods: bool,
}

/// Serves the hub on `listener` (bound by [`crate::http::bind`]) until the
/// process is stopped.
pub async fn run(cfg: HubConfig, listener: std::net::TcpListener) -> Result<(), ControllerError> {
    let tokens_path = cfg.api.tokens.clone().ok_or_else(|| {
        ControllerError::BadRequest("the hub needs --tokens-file: every caller is authenticated".into())
    })?;
    let tokens = TokenSource::load(&tokens_path).map_err(|e| ControllerError::BadRequest(e.to_string()))?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| ControllerError::Io {
        action: "creating the hub's state dir",
        path: cfg.state_dir.clone(),
        source,
    })?;
    let audit = bulkhead_api::audit::AuditLog::new(&cfg.state_dir.join("audit.log"));
    let members = Members::new(cfg.members)?;
    for m in members.list() {
        tracing::info!(cluster = %m.name, url = %m.url, "hub member");
    }
    if cfg.share_pods {
        tokio::spawn(share::run(members.clone()));
    }
    let auth = crate::auth::Authenticator { tokens: Some(tokens), kubernetes: None };
    let (router, _) = routes::router(routes::Hub { name: cfg.name, members, auth, audit });
    crate::http::serve_router(&cfg.api, listener, router, std::future::pending()).await
}
