//! The controller's one service layer. Every operation a user can ask for
//! (status, inventory, flows, graph, baselines and anomalies, suggestions
//! and review, policies, quarantine, the audit log) is a method here that
//! takes the authenticated `Principal` and a typed request and answers a
//! document of `bulkhead_api::v1`. The gRPC transport (the CLI over the
//! socket) and the HTTP API both call these methods and nothing else, so
//! there is one implementation of each operation, of its authorization and
//! of its tenant scoping, and every refusal is audited in one place.

mod audit;
mod blocks;
mod error;
mod exposure;
mod flows;
mod graph;
mod inventory;
mod ops;
mod policies;
mod quarantine;
mod remote;
mod review;
mod trail;
mod view;

use std::sync::Arc;

use bulkhead_api::audit::Event;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::{DEFAULT_PAGE, MAX_PAGE, WhoAmI};

pub use error::ServiceError;
pub use flows::FlowSubscription;
pub use ops::Op;

use bulkhead_model::Role;

use crate::auth::Principal;
use crate::context::Context;
use crate::observation::flows::now_ns;

/// The service layer, over the controller's context.
#[derive(Clone, Debug)]
pub struct Service {
    ctx: Arc<Context>,
}

impl Service {
    /// The service over `ctx`.
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// The context (background tasks, transports).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Who the caller is, as the server sees it.
    pub fn whoami(&self, who: &Principal) -> WhoAmI {
        WhoAmI {
            user: who.user.clone(),
            role: who.role,
            namespaces: who.scope.namespaces(),
            via: who.via.as_str().to_string(),
        }
    }

    /// Audits a refusal of `op` on `target` and returns the error to answer.
    fn refuse(&self, who: &Principal, op: Op, target: &str, namespaces: Vec<String>, why: String) -> ServiceError {
        let event = Event { action: op.name(), target, namespaces, detail: &why, ..Default::default() };
        if let Err(e) = self.ctx.audit.event(&who.caller(), Outcome::Refused, event) {
            // A refusal that cannot be audited is still refused.
            tracing::error!(error = %e, "auditing a refusal");
        }
        ServiceError::Forbidden { detail: why }
    }

    /// Checks that `who`'s role allows `op`.
    fn authorize(&self, who: &Principal, op: Op, target: &str) -> Result<(), ServiceError> {
        // A standby changes nothing: the leader would not know of it.
        if op.role() != Role::Viewer && !self.ctx.leadership.is_leader() {
            let why = format!("this controller is the {}: send changes to the leader", self.ctx.leadership);
            let event = Event { action: op.name(), target, detail: &why, ..Default::default() };
            if let Err(e) = self.ctx.audit.event(&who.caller(), Outcome::Refused, event) {
                tracing::error!(error = %e, "auditing a refusal");
            }
            return Err(ServiceError::Unavailable(why));
        }
        if who.role.includes(op.role()) {
            return Ok(());
        }
        let why = format!("{} ({}) may not {}: it needs the {} role", who.user, who.role, op.describe(), op.role());
        Err(self.refuse(who, op, target, Vec::new(), why))
    }

    /// Checks that `namespace` is in `who`'s scope for `op` on `target`.
    fn in_scope(&self, who: &Principal, op: Op, target: &str, namespace: &str) -> Result<(), ServiceError> {
        if who.scope.contains(namespace) {
            return Ok(());
        }
        let why =
            format!("{} may not {} in namespace {namespace}: it is outside their namespaces", who.user, op.describe());
        Err(self.refuse(who, op, target, vec![namespace.to_string()], why))
    }

    /// Audits an action that was done (or failed after being allowed).
    fn audited(&self, who: &Principal, outcome: Outcome, event: Event<'_>) -> Result<(), ServiceError> {
        self.ctx.audit.event(&who.caller(), outcome, event).map_err(|e| ServiceError::Internal(e.to_string()))
    }
}

/// A page size from a query's `limit`.
fn page_size(limit: Option<u32>) -> Result<usize, ServiceError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n >= 1 && n as usize <= MAX_PAGE => Ok(n as usize),
        Some(n) => Err(ServiceError::bad("limit", format!("{n} is outside 1..{MAX_PAGE}"))),
    }
}

/// A time of a query, nanoseconds since the epoch.
fn time(field: &str, v: Option<&str>) -> Result<Option<i64>, ServiceError> {
    v.map(|s| bulkhead_api::v1::time::parse(s, now_ns()).map_err(|e| ServiceError::bad(field, e))).transpose()
}

/// Cursors are opaque to clients: a kind and a position, so a cursor of
/// one list is refused by another.
fn cursor_out(kind: &str, position: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

fn cursor_in(kind: &str, cursor: Option<&str>) -> Result<Option<u64>, ServiceError> {
    use base64::Engine;
    let Some(c) = cursor else { return Ok(None) };
    let bad = || ServiceError::bad("cursor", "not a cursor this list returned; start again without it".to_string());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (k, n) = text.split_once(':').ok_or_else(bad)?;
    if k != kind {
        return Err(bad());
    }
    n.parse().map(Some).map_err(|_| bad())
}
