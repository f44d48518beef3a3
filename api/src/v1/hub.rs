//! The hub's one view across clusters: every member controller's answer to
//! the same read, side by side under its cluster name, and a member that
//! cannot answer reported as such rather than hiding the others.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One member's answer to a hub read: the document, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberAnswer<T> {
    /// The member cluster's name, as the hub was given it.
    pub cluster: String,
    /// What the member answered; absent when it could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<T>,
    /// Why the member did not answer (unreachable, refused, invalid answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every member's answer to one read, in the order the hub was given them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Members<T> {
    /// One entry per member.
    pub clusters: Vec<MemberAnswer<T>>,
}

/// A member cluster as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    /// The cluster's name.
    pub name: String,
    /// Its controller's API.
    pub url: String,
}

/// `PUT /api/v1/remote-clusters/{cluster}/pods`: every pod another cluster
/// runs now, as its controller lists them (the hub shares them), so that
/// this cluster's identities for their addresses carry that cluster's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemotePods {
    /// The other cluster's pods; an empty list forgets them.
    pub pods: Vec<crate::v1::inventory::Pod>,
}

/// What a controller did with another cluster's pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemotePodsTaken {
    /// The other cluster.
    pub cluster: String,
    /// Its pods now known here.
    pub pods: u32,
    /// Whether they differed from what was known, so policy was recompiled.
    pub changed: bool,
    /// The desired state's generation after it.
    pub generation: u64,
}
