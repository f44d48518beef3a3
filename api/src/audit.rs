//! Append-only audit log of every enforcement change, shared by the agent
//! and the controller so both write the same record shape: who, what, when.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Writing an audit record failed; the caller must then refuse the change.
#[derive(Debug, thiserror::Error)]
#[error("writing audit log {path}: {source}")]
pub struct AuditError {
    /// The log file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord<'a> {
    /// Milliseconds since the Unix epoch; set by `AuditLog::record`.
    pub time_unix_ms: u128,
    /// Who the caller says it is.
    pub actor: &'a str,
    /// Who the kernel says the caller is (Unix socket peer credentials).
    pub peer_uid: Option<u32>,
    /// Peer process id from the socket's credentials, if known.
    pub peer_pid: Option<i32>,
    /// What was done, e.g. "apply" or a quarantine action.
    pub action: &'a str,
    /// What it was done to: the node, an object, or "namespace/pod (endpoint N)".
    pub target: &'a str,
    /// Free-form details, e.g. the generation applied or the quarantine reason.
    pub detail: &'a str,
}

/// The log file (JSON lines).
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// Log at `path`; created on first write.
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf() }
    }

    /// Appends and flushes one record before the caller reports success.
    pub fn record(&self, mut rec: AuditRecord<'_>) -> Result<(), AuditError> {
        rec.time_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let err = |source| AuditError { path: self.path.clone(), source };
        let mut line = serde_json::to_vec(&rec).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(err)?;
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
