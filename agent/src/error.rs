//! Agent errors, each naming the object or field at fault.

use std::path::PathBuf;

/// Everything the agent can fail at.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Dataplane(#[from] bulkhead_dataplane::DataplaneError),
    #[error("invalid desired state: {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("stale generation {got}: generation {applied} is already applied")]
    StaleGeneration { got: u64, applied: u64 },
    #[error("unknown endpoint {0}")]
    UnknownEndpoint(String),
    #[error("{pod} is not attached ({reason}): its quarantine is recorded and takes effect once it attaches")]
    NotAttached { pod: String, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: {source}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("serving {what}: {message}")]
    Serve { what: &'static str, message: String },
}

impl AgentError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Dataplane(_) => "dataplane",
            Self::Invalid { .. } => "invalid",
            Self::StaleGeneration { .. } => "stale_generation",
            Self::UnknownEndpoint(_) => "unknown_endpoint",
            Self::NotAttached { .. } => "not_attached",
            Self::Io { .. } | Self::StateFile { .. } => "io",
            Self::Serve { .. } => "serve",
        }
    }
}

impl From<AgentError> for tonic::Status {
    fn from(e: AgentError) -> Self {
        match &e {
            AgentError::Invalid { .. } => tonic::Status::invalid_argument(e.to_string()),
            AgentError::StaleGeneration { .. } => tonic::Status::failed_precondition(e.to_string()),
            AgentError::UnknownEndpoint(_) => tonic::Status::not_found(e.to_string()),
            AgentError::NotAttached { .. } => tonic::Status::failed_precondition(e.to_string()),
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}
