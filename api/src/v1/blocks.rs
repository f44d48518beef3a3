//! The block list: IPs and CIDRs dropped both ways on every node, before
//! policy, until lifted or until their time runs out. Lifting a block takes
//! the same `ReleaseQuery` (a reason) as releasing a quarantine.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What to block, why, and for how long.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockRequest {
    /// An IP ("203.0.113.7") or a CIDR ("203.0.113.0/24"), IPv4 or IPv6.
    pub cidr: String,
    /// Why (required; recorded and audited).
    pub reason: String,
    /// How long: "90s", "30m", "2h", "7d"; absent = until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// Where a block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockState {
    /// In force on every node.
    Active,
    /// Lifted by a person.
    Lifted,
    /// Its time ran out.
    Expired,
}

/// A block and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Block {
    /// Id, for `DELETE /api/v1/blocks/{id}`.
    pub id: u64,
    /// The blocked prefix, host bits zero ("203.0.113.7/32").
    pub cidr: String,
    /// Where it stands.
    pub state: BlockState,
    /// Why it was made.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When, nanoseconds since the epoch.
    pub created_ns: i64,
    /// When it ends by itself; absent = until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ns: Option<i64>,
    /// Who lifted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
    /// When it was lifted or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ns: Option<i64>,
    /// Why it was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// Filters of the block list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlockQuery {
    /// Only blocks in this state.
    #[serde(default)]
    pub state: Option<BlockState>,
    /// At most this many, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where to continue, from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}
