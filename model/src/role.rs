//! Roles of the controller's API. Each includes the ones before it; the
//! server decides what a role may do, clients only reflect it.

use serde::{Deserialize, Serialize};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything in scope.
    Viewer,
    /// Also quarantines and releases pods.
    Responder,
    /// Also generates, approves and rejects suggestions and applies them in audit.
    Reviewer,
    /// Also enforces suggestions and applies and deletes policies and objects.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Responder, Role::Reviewer, Role::Admin];

    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `other`.
    pub fn includes(self, other: Role) -> bool {
        self >= other
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role; expected viewer, responder, reviewer or admin"))
    }
}
