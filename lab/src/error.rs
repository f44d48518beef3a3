//! Lab errors, naming the file, object or command at fault.

use std::path::PathBuf;

/// Everything the lab can fail at.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{file} document {document}: {field}: {message}")]
    Manifest { file: PathBuf, document: usize, field: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("lab {0} is not up (no state under /run/bulkhead/labs)")]
    NotUp(String),
    #[error("no pod {0} in the lab")]
    UnknownPod(String),
    #[error("agent of node {node}: {message}")]
    Agent { node: String, message: String },
    #[error("entering network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}
