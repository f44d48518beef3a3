//! Append-only audit log of every enforcement change and every refusal,
//! shared by the agent and the controller so both write the same record
//! shape: who (user, role, source), what (action, target, namespaces, before
//! and after), whether it happened, and when.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bulkhead_model::Role;
use serde::{Deserialize, Serialize};

use crate::v1::audit::{AuditEntry, Outcome};

/// Writing or reading the audit log failed; a change that cannot be
/// audited is refused.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    /// The log file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// One audited action, as stored (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch; set when written.
    pub time_unix_ms: u64,
    /// Who: the authenticated user, or the name a socket caller states.
    pub actor: String,
    /// Their role, when authenticated by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Who the kernel says the caller is (Unix socket peer credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_uid: Option<u32>,
    /// Peer process id from the socket's credentials, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_pid: Option<i32>,
    /// Where the request came from: a network address, or the socket peer.
    #[serde(default)]
    pub source: String,
    /// What was done, e.g. "apply", "quarantine", "approve".
    pub action: String,
    /// What it was done to: an object, a suggestion, "namespace/pod (endpoint N)".
    pub target: String,
    /// The namespaces the target is in (empty for cluster-wide objects and nodes).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Done, refused or failed.
    #[serde(default = "ok")]
    pub outcome: Outcome,
    /// Details: the reason given, the generation, why it was refused.
    pub detail: String,
    /// The target before, when it changed (YAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The target after, when it changed (YAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

fn ok() -> Outcome {
    Outcome::Ok
}

/// Who asked, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated user, or the name a socket caller states.
    pub actor: String,
    /// Their role, when the API authenticated them.
    pub role: Option<Role>,
    /// Unix uid from the socket's peer credentials.
    pub uid: Option<u32>,
    /// Process id from the socket's peer credentials.
    pub pid: Option<i32>,
    /// Where the request came from.
    pub source: String,
    /// The caller's namespaces, for a tenant.
    pub scope: Option<Vec<String>>,
}

impl Caller {
    /// The caller of a request that may change enforcement: only over a
    /// Unix socket (so the kernel vouches for the peer) as root or one of
    /// `allowed_uids`, or over the mTLS tunnel the agent dialed to its
    /// controller, and only with a stated actor. `server` names
    /// the socket's owner in errors ("agent", "controller").
    pub fn from_request<T>(
        req: &tonic::Request<T>,
        actor: &str,
        allowed_uids: &[u32],
        server: &str,
    ) -> Result<Self, tonic::Status> {
        let tunnel = req.extensions().get::<crate::tunnel::TunnelPeer>();
        let cred = req.extensions().get::<tonic::transport::server::UdsConnectInfo>().and_then(|i| i.peer_cred);
        let (uid, pid, source) = match (tunnel, cred) {
            // Over a tunnel the agent dialed, the peer is the controller it verified.
            (Some(peer), _) => (None, None, format!("controller {} (mTLS)", peer.controller)),
            (None, Some(cred)) => {
                if cred.uid() != 0 && !allowed_uids.contains(&cred.uid()) {
                    return Err(tonic::Status::permission_denied(format!(
                        "uid {} may not change enforcement",
                        cred.uid()
                    )));
                }
                let source = match cred.pid() {
                    Some(pid) => format!("unix uid {} pid {pid}", cred.uid()),
                    None => format!("unix uid {}", cred.uid()),
                };
                (Some(cred.uid()), cred.pid(), source)
            }
            (None, None) => {
                return Err(tonic::Status::unauthenticated(format!(
                    "enforcement changes are accepted only over the {server}'s Unix socket or its controller tunnel"
                )));
            }
        };
        if actor.trim().is_empty() {
            return Err(tonic::Status::invalid_argument("actor: say who is asking (it goes to the audit log)"));
        }
        Ok(Self { actor: actor.to_string(), role: None, uid, pid, source, scope: None })
    }
}

/// What is audited, beyond who did it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event<'a> {
    /// The action.
    pub action: &'a str,
    /// Its target.
    pub target: &'a str,
    /// The target's namespaces.
    pub namespaces: Vec<String>,
    /// Details.
    pub detail: &'a str,
    /// Before (YAML), when it changed.
    pub before: Option<String>,
    /// After (YAML), when it changed.
    pub after: Option<String>,
}

/// Filters of `AuditLog::read`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this user.
    pub user: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only records about one of these namespaces (a tenant's scope, or one asked for).
    pub namespaces: Option<Vec<String>>,
    /// Only records at or after this time, milliseconds since the epoch.
    pub since_ms: Option<u64>,
}

impl AuditFilter {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.user.as_ref().is_none_or(|u| &r.actor == u)
            && self.action.as_ref().is_none_or(|a| &r.action == a)
            && self.outcome.is_none_or(|o| r.outcome == o)
            && self.namespaces.as_ref().is_none_or(|ns| r.namespaces.iter().any(|n| ns.contains(n)))
            && self.since_ms.is_none_or(|t| r.time_unix_ms >= t)
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

    fn err(&self) -> impl Fn(std::io::Error) -> AuditError + '_ {
        |source| AuditError { path: self.path.clone(), source }
    }

    /// Appends and flushes one record before the caller reports anything.
    pub fn record(&self, mut rec: AuditRecord) -> Result<(), AuditError> {
        rec.time_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut line = serde_json::to_vec(&rec).map_err(|e| (self.err())(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(self.err())?;
        f.write_all(&line).map_err(self.err())?;
        f.sync_data().map_err(self.err())
    }

    /// Records `event` by `caller` with its outcome.
    pub fn event(&self, caller: &Caller, outcome: Outcome, event: Event<'_>) -> Result<(), AuditError> {
        self.record(AuditRecord {
            time_unix_ms: 0,
            actor: caller.actor.clone(),
            role: caller.role,
            peer_uid: caller.uid,
            peer_pid: caller.pid,
            source: caller.source.clone(),
            action: event.action.to_string(),
            target: event.target.to_string(),
            namespaces: event.namespaces,
            outcome,
            detail: event.detail.to_string(),
            before: event.before,
            after: event.after,
        })
    }

    /// Records `action` on `target` by `caller`, done.
    pub fn record_by(&self, caller: &Caller, action: &str, target: &str, detail: &str) -> Result<(), AuditError> {
        self.event(caller, Outcome::Ok, Event { action, target, detail, ..Default::default() })
    }

    /// Records passing `filter`, newest first: at most `limit` of those
    /// before position `before` (exclusive; `None` from the end), and the
    /// position to continue from when more remain. Positions are line
    /// numbers from 1. An unreadable line is returned as a failed record
    /// naming its line, never skipped.
    pub fn read(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), AuditError> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(e) => return Err((self.err())(e)),
        };
        let mut matching: Vec<AuditEntry> = Vec::new();
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let id = i as u64 + 1;
            if before.is_some_and(|b| id >= b) {
                break;
            }
            let line = line.map_err(self.err())?;
            let rec = serde_json::from_str::<AuditRecord>(&line).unwrap_or_else(|e| AuditRecord {
                time_unix_ms: 0,
                actor: String::new(),
                role: None,
                peer_uid: None,
                peer_pid: None,
                source: String::new(),
                action: "unreadable".into(),
                target: format!("{} line {id}", self.path.display()),
                namespaces: Vec::new(),
                outcome: Outcome::Failed,
                detail: e.to_string(),
                before: None,
                after: None,
            });
            if filter.matches(&rec) || (rec.action == "unreadable" && filter.namespaces.is_none()) {
                matching.push(entry(id, rec));
            }
        }
        matching.reverse();
        let more = matching.len() > limit;
        matching.truncate(limit);
        let next = if more { matching.last().map(|e| e.id) } else { None };
        Ok((matching, next))
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn entry(id: u64, r: AuditRecord) -> AuditEntry {
    AuditEntry {
        id,
        time_unix_ms: r.time_unix_ms,
        user: r.actor,
        role: r.role,
        source: if r.source.is_empty() {
            r.peer_uid.map(|u| format!("unix uid {u}")).unwrap_or_default()
        } else {
            r.source
        },
        action: r.action,
        target: r.target,
        namespaces: r.namespaces,
        outcome: r.outcome,
        detail: r.detail,
        before: r.before,
        after: r.after,
    }
}
