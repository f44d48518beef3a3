//! Controller errors, each naming what it was doing and to what.

use std::path::PathBuf;

/// Everything the controller can fail at.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An object or the resulting state was rejected; nothing changed.
    #[error(transparent)]
    Policy(#[from] bulkhead_policy::PolicyError),
    /// The flow store failed.
    #[error(transparent)]
    Storage(#[from] crate::observation::storage::StorageError),
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state file could not be encoded or decoded.
    #[error("state file {path}: {message}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An explain or delete named something the controller does not know.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Field {
        /// The field, e.g. "port".
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The request is valid but the object is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// Too many endpoints for the dataplane's id space.
    #[error("endpoint ids exhausted: at most {0} endpoints over the controller's lifetime")]
    EndpointIdsExhausted(u32),
    /// An audit record could not be written, so the change was refused.
    #[error(transparent)]
    Audit(#[from] bulkhead_api::audit::AuditError),
    /// Watching the Kubernetes API failed (the watcher retries).
    #[error("watching {kind}: {message}")]
    Watch {
        /// The kind being watched.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A certificate or key could not be made.
    #[error("making {what}: {message}")]
    Pki {
        /// The certificate being made, e.g. "the CA".
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// A node's agent cannot be reached (not connected, or its socket fails).
    #[error("the agent of node {node}: {reason}")]
    AgentUnreachable {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The revoked-agents file is unreadable or has a bad line; the last
    /// good list stays in force.
    #[error("revoked agents {path}: {message}")]
    Revocations {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, with the line number.
        message: String,
    },
    /// The controller Lease or the cluster's copy of the state failed.
    #[error("leader election: {message}")]
    Leadership {
        /// What failed.
        message: String,
    },
    /// Serving the API failed.
    #[error("serving {what}: {message}")]
    Serve {
        /// What was being served.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

impl ControllerError {
    /// Short stable label, for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Policy(_) => "invalid",
            Self::Io { .. } | Self::StateFile { .. } | Self::Audit(_) => "io",
            Self::Storage(_) => "storage",
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) | Self::Field { .. } => "bad_request",
            Self::Conflict(_) => "conflict",
            Self::EndpointIdsExhausted(_) => "capacity",
            Self::Serve { .. } => "serve",
            Self::Pki { .. } => "pki",
            Self::AgentUnreachable { .. } => "agent",
            Self::Revocations { .. } => "revocations",
            Self::Leadership { .. } => "leadership",
            Self::Watch { .. } => "watch",
        }
    }
}
