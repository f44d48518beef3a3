//! Lab errors, naming the file, object or command at fault.

use std::path::PathBuf;

/// Everything the lab can fail at.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A manifest document is malformed.
    #[error("{file} document {document}: {field}: {message}")]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// Index of the YAML document within the file, from 0.
        document: usize,
        /// Dotted path of the offending field, e.g. "spec.replicas".
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request or the lab's contents are inconsistent; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The lab's controller failed or did not bring the agents in sync.
    #[error("controller: {0}")]
    Controller(String),
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "reading manifest".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An external command could not be run or exited unsuccessfully.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Why it failed.
        message: String,
    },
    /// The named lab has no saved state.
    #[error("lab {0} is not up (no state under /run/bulkhead/labs)")]
    NotUp(String),
    /// The named pod is not part of the lab.
    #[error("no pod {0} in the lab")]
    UnknownPod(String),
    /// A node's agent could not be reached or rejected a request.
    #[error("agent of node {node}: {message}")]
    Agent {
        /// Name of the node.
        node: String,
        /// The agent's or transport's error message.
        message: String,
    },
    /// Switching into a network namespace failed.
    #[error("{source}")]
    Netns {
        /// Path of the namespace.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<bulkhead_cni::CniError>,
    },
}
