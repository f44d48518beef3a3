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

/// Who asked for an enforcement change, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who the caller says it is.
    pub actor: String,
    /// Caller's Unix uid from the socket's peer credentials.
    pub uid: Option<u32>,
    /// Caller's process id from the socket's peer credentials.
    pub pid: Option<i32>,
}

impl Caller {
    /// The caller of a request that may change enforcement: only over a
    /// Unix socket (so the kernel vouches for the peer), only as root or
    /// one of `allowed_uids`, and only with a stated actor. `server` names
    /// the socket's owner in errors ("agent", "controller").
    pub fn from_request<T>(
        req: &tonic::Request<T>,
        actor: &str,
        allowed_uids: &[u32],
        server: &str,
    ) -> Result<Self, tonic::Status> {
        let cred = req.extensions().get::<tonic::transport::server::UdsConnectInfo>().and_then(|i| i.peer_cred);
        let Some(cred) = cred else {
            return Err(tonic::Status::unauthenticated(format!(
                "enforcement changes are accepted only over the {server}'s Unix socket"
            )));
        };
        if cred.uid() != 0 && !allowed_uids.contains(&cred.uid()) {
            return Err(tonic::Status::permission_denied(format!("uid {} may not change enforcement", cred.uid())));
        }
        if actor.trim().is_empty() {
            return Err(tonic::Status::invalid_argument("actor: say who is asking (it goes to the audit log)"));
        }
        Ok(Self { actor: actor.to_string(), uid: Some(cred.uid()), pid: cred.pid() })
    }
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

    /// Records `action` on `target` by `caller`.
    pub fn record_by(&self, caller: &Caller, action: &str, target: &str, detail: &str) -> Result<(), AuditError> {
        self.record(AuditRecord {
            time_unix_ms: 0,
            actor: &caller.actor,
            peer_uid: caller.uid,
            peer_pid: caller.pid,
            action,
            target,
            detail,
        })
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
