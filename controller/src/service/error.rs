//! What an operation answers when it does not succeed. Each variant maps to
//! one HTTP status and problem type, and one gRPC code, and names the
//! object and field at fault where the request was.

use bulkhead_api::v1::Problem;
use bulkhead_policy::PolicyError;

use crate::error::ControllerError;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role or scope does not allow it (audited).
    #[error("{detail}")]
    Forbidden {
        /// Who may not do what, and why.
        detail: String,
    },
    /// What the request names does not exist.
    #[error("{detail}")]
    NotFound {
        /// The object.
        object: String,
        /// What is missing.
        detail: String,
    },
    /// The request is invalid.
    #[error("{detail}")]
    BadRequest {
        /// The object at fault, if the request carried one.
        object: Option<String>,
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// The object is not in a state that allows it.
    #[error("{detail}")]
    Conflict {
        /// The object.
        object: String,
        /// Why not.
        detail: String,
    },
    /// The request body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// Something the operation needs is not available now (retry).
    #[error("{0}")]
    Unavailable(String),
    /// The controller failed.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// A bad request naming the field.
    pub fn bad(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::BadRequest { object: None, field: Some(field.to_string()), detail: format!("{field}: {detail}") }
    }

    /// A missing object.
    pub fn not_found(object: impl Into<String>) -> Self {
        let object = object.into();
        Self::NotFound { detail: format!("{object} does not exist"), object }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated(_) => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::BadRequest { .. } => 400,
            Self::Conflict { .. } => 409,
            Self::TooLarge(_) => 413,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// A short stable label (metrics, problem types).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::BadRequest { .. } => "bad_request",
            Self::Conflict { .. } => "conflict",
            Self::TooLarge(_) => "too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// As `application/problem+json`.
    pub fn problem(&self) -> Problem {
        let (object, field) = match self {
            Self::NotFound { object, .. } | Self::Conflict { object, .. } => (Some(object.clone()), None),
            Self::BadRequest { object, field, .. } => (object.clone(), field.clone()),
            _ => (None, None),
        };
        let title = match self {
            Self::Unauthenticated(_) => "Not authenticated",
            Self::Forbidden { .. } => "Not allowed",
            Self::NotFound { .. } => "Not found",
            Self::BadRequest { .. } => "Invalid request",
            Self::Conflict { .. } => "Conflict",
            Self::TooLarge(_) => "Request too large",
            Self::Unavailable(_) => "Unavailable",
            Self::Internal(_) => "Controller error",
        };
        Problem {
            kind: format!("https://bulkhead.dev/problems/{}", self.label().replace('_', "-")),
            title: title.to_string(),
            status: self.status(),
            detail: self.to_string(),
            object,
            field,
        }
    }

    /// As a gRPC status.
    pub fn grpc(&self) -> tonic::Status {
        let msg = self.to_string();
        match self {
            Self::Unauthenticated(_) => tonic::Status::unauthenticated(msg),
            Self::Forbidden { .. } => tonic::Status::permission_denied(msg),
            Self::NotFound { .. } => tonic::Status::not_found(msg),
            Self::BadRequest { .. } => tonic::Status::invalid_argument(msg),
            Self::Conflict { .. } => tonic::Status::failed_precondition(msg),
            Self::TooLarge(_) => tonic::Status::resource_exhausted(msg),
            Self::Unavailable(_) => tonic::Status::unavailable(msg),
            Self::Internal(_) => tonic::Status::internal(msg),
        }
    }
}

impl From<ControllerError> for ServiceError {
    fn from(e: ControllerError) -> Self {
        match e {
            ControllerError::Policy(PolicyError::Invalid { object, field, message }) => Self::BadRequest {
                detail: format!("{object}: {field}: {message}"),
                object: Some(object),
                field: Some(field),
            },
            ControllerError::Policy(p @ PolicyError::Document { .. }) => {
                Self::BadRequest { object: None, field: Some("yaml".into()), detail: p.to_string() }
            }
            ControllerError::Policy(p) => Self::BadRequest { object: None, field: None, detail: p.to_string() },
            ControllerError::BadRequest(detail) => Self::BadRequest { object: None, field: None, detail },
            ControllerError::Field { field, message } => Self::bad(field, message),
            ControllerError::NotFound(detail) => Self::NotFound { object: detail.clone(), detail },
            ControllerError::Conflict(detail) => Self::Conflict { object: String::new(), detail },
            ControllerError::EndpointIdsExhausted(_) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
