//! Agent errors, each naming the object or field at fault.

use std::path::PathBuf;

/// Everything the agent can fail at.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The dataplane layer failed.
    #[error(transparent)]
    Dataplane(#[from] bulkhead_dataplane::DataplaneError),
    /// The desired state failed validation; nothing was changed.
    #[error("invalid desired state: {field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. "endpoints[2].netns".
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The pushed desired state is older than the one already applied.
    #[error("stale generation {got}: generation {applied} is already applied")]
    StaleGeneration {
        /// Generation that was pushed.
        got: u64,
        /// Generation currently applied.
        applied: u64,
    },
    /// No endpoint matches the given id or "namespace/pod" name.
    #[error("unknown endpoint {0}")]
    UnknownEndpoint(String),
    /// Quarantine of a pod whose programs are not attached yet (recorded, not yet enforced).
    #[error("{pod} is not attached ({reason}): its quarantine is recorded and takes effect once it attaches")]
    NotAttached {
        /// The pod, as "namespace/pod".
        pod: String,
        /// Why it is not attached.
        reason: String,
    },
    /// A filesystem or socket operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "saving desired state".
        action: &'static str,
        /// The file, directory or socket involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding a JSON state or log file failed.
    #[error("state file {path}: {source}")]
    StateFile {
        /// The file involved.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An audit record could not be written, so the change was refused.
    #[error(transparent)]
    Audit(#[from] bulkhead_api::audit::AuditError),
    /// A pod's network namespace could not be entered.
    #[error("{pod}: {source}")]
    PodNetns {
        /// The pod, as "namespace/pod".
        pod: String,
        /// Why (boxed: the CNI error is large, and every agent result carries this enum).
        #[source]
        source: Box<bulkhead_cni::CniError>,
    },
    /// A pod's socket tables could not be read.
    #[error("{pod}: listening sockets: {message}")]
    Listeners {
        /// The pod, as "namespace/pod".
        pod: String,
        /// What failed.
        message: String,
    },
    /// The connection to the controller cannot be set up (its CA, the
    /// node's certificate or key).
    #[error("the controller connection: {0}")]
    Uplink(String),
    /// The controller refused to enroll this node; retried only slowly.
    #[error("the controller refused to enroll this node: {0}")]
    UplinkRefused(String),
    /// Running the gRPC service or one of its shared locks failed.
    #[error("serving {what}: {message}")]
    Serve {
        /// What part of serving failed, e.g. "startup".
        what: &'static str,
        /// The underlying error, rendered as text.
        message: String,
    },
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
            Self::Io { .. } | Self::StateFile { .. } | Self::Audit(_) => "io",
            Self::PodNetns { .. } => "netns",
            Self::Listeners { .. } => "listeners",
            Self::Uplink(_) | Self::UplinkRefused(_) => "uplink",
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
