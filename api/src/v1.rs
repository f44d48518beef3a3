//! The controller's API, version 1, as documents: what the service layer
//! answers, what the HTTP API sends as JSON (and describes in its OpenAPI
//! document), and what the CLI prints. The gRPC transport carries the same
//! documents as typed protobuf messages (`convert` maps both ways), so a
//! client sees one contract whichever transport it uses.

pub mod audit;
pub mod baselines;
pub mod blocks;
pub mod convert;
pub mod exposure;
pub mod flows;
pub mod graph;
pub mod hub;
pub mod inventory;
pub mod policies;
pub mod quarantine;
pub mod review;
pub mod status;
pub mod time;
pub mod trail;

use bulkhead_model::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error, as RFC 9457 `application/problem+json`: what failed, and the
/// object and field to fix when the request was at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this request, and what to do.
    pub detail: String,
    /// The object the problem is about (e.g. `NetworkPolicy shop/web`, `quarantine 7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The field of the request or object at fault (e.g. `spec.ingress[0].ports[0].port`, `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Who the server says the caller is: the console follows this, the server
/// stays the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The user (token file name, Kubernetes user or ServiceAccount, or the local Unix user).
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// The namespaces the user is scoped to; absent for cluster-wide access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// How the caller was authenticated: `token`, `kubernetes` or `unix`.
    pub via: String,
}

/// A page of a list: the items and, when more follow, an opaque cursor to
/// pass back as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The most a page holds, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;
/// A page's size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;
