//! The audit log as the API lists it.

use bulkhead_model::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Whether an audited action happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Ok,
    /// It was refused: not authenticated, not authorized, out of scope, or invalid.
    Refused,
    /// It was allowed but failed.
    Failed,
}

/// One audited action or refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its position in the log.
    pub id: u64,
    /// When, milliseconds since the epoch.
    pub time_unix_ms: u64,
    /// Who.
    pub user: String,
    /// Their role, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Where from: a network address, or the Unix socket peer (`unix uid 0 pid 42`).
    pub source: String,
    /// What: apply, delete, quarantine, release, approve, reject, apply-audit, apply-enforce, suggest, …
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// The namespaces the target is in (empty for cluster-wide objects).
    pub namespaces: Vec<String>,
    /// Done, refused or failed.
    pub outcome: Outcome,
    /// Details: the reason given, the generation, why it was refused.
    pub detail: String,
    /// The target before, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The target after, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user.
    #[serde(default)]
    pub user: Option<String>,
    /// Only this action.
    #[serde(default)]
    pub action: Option<String>,
    /// Only this outcome.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Only records about this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// From: an RFC 3339 time or a duration ago.
    #[serde(default)]
    pub since: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}
