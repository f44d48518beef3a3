//! The agents port: TLS with client certificates of Bulkhead's CA, the node
//! taken from the certificate, revoked certificates and nodes refused (and
//! cut off when revoked later), and every admission and refusal audited.
//! An admitted connection is pumped between the socket and the gRPC channel
//! the controller calls the agent on, so the controller can cut it at will.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_api::audit::{AuditLog, Caller, Event};
use bulkhead_api::tunnel::{self, tls};
use bulkhead_api::v1::audit::Outcome;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

use super::Directory;
use super::budget::RefusalBudget;
use super::directory::Connection;
use super::enroll::{EnrollConfig, EnrollService, Enroller};
use super::revoked::RevocationFile;
use crate::error::ControllerError;

/// Audited when an agent's connection is admitted.
pub const CONNECTED: &str = "agent-connected";
/// Audited when a connection is refused (handshake, certificate, revoked).
pub const REFUSED: &str = "agent-refused";
/// Audited when a live connection is cut because its entry was revoked.
pub const REVOKED: &str = "agent-revoked";

/// How long an anonymous connection may stay to enroll.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a dialer may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the revoked-agents file is checked for changes.
const REVOCATION_CHECK: Duration = Duration::from_secs(1);
/// Bytes buffered between the socket and the channel, each way.
const PUMP_BUFFER: usize = 256 * 1024;

/// The agents port's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentListen {
    /// Where agents dial.
    pub addr: SocketAddr,
    /// Bulkhead's CA (PEM): agent certificates must chain to it.
    pub ca: PathBuf,
    /// The controller's certificate for this port (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Revoked nodes and certificates, one per line (read again on change).
    pub revoked: Option<PathBuf>,
    /// Whether agents without a certificate may enroll, and how.
    pub enroll: Option<EnrollConfig>,
}

/// Called with each node that connects for the first time.
pub type OnFirst = Arc<dyn Fn(String) + Send + Sync>;

/// What each connection's task needs.
struct Port {
    acceptor: tokio_rustls::TlsAcceptor,
    directory: Arc<Directory>,
    audit: AuditLog,
    revoked: Option<Arc<std::sync::Mutex<RevocationFile>>>,
    enroller: Option<Arc<Enroller>>,
    on_first: OnFirst,
    budget: Arc<RefusalBudget>,
    /// Refused enrollments each address may write one by one.
    enroll_refusals: Arc<RefusalBudget>,
    /// Enrollments each address may attempt per minute.
    enroll_attempts: Arc<RefusalBudget>,
    /// Connections without a certificate open at once.
    anonymous: Arc<tokio::sync::Semaphore>,
}

/// Connections without a certificate (enrolling agents) open at once.
const MAX_ANONYMOUS: usize = 64;
/// What budgeted refusals count, and the target their lines name.
const HANDSHAKES: &str = "refused handshakes";
const PORT_TARGET: &str = "the agents port";
/// See [`HANDSHAKES`].
pub(super) const ENROLLMENTS: &str = "refused enrollments";
/// See [`HANDSHAKES`].
pub(super) const ENROLL_TARGET: &str = "enrollment";
/// How often windows whose time is up are written down.
const BUDGET_FLUSH: Duration = Duration::from_secs(5);

/// Who an audit line of the agents port names: the node, or an unknown agent at `peer`.
pub(super) fn caller(node: Option<&str>, peer: &str) -> Caller {
    Caller {
        actor: node.map_or_else(|| "unknown agent".to_string(), |n| format!("agent:{n}")),
        role: None,
        uid: None,
        pid: None,
        source: peer.to_string(),
        scope: None,
    }
}

/// Writes one audit line; a failure to write is logged, never answered.
pub(super) fn audit(log: &AuditLog, who: &Caller, outcome: Outcome, action: &str, target: &str, detail: &str) {
    if let Err(e) = log.event(who, outcome, Event { action, target, detail, ..Default::default() }) {
        tracing::error!(error = %e, action, "auditing an agent connection");
    }
}

/// Audits a refusal of a peer known only by its address `ip`, within
/// `budget`, after the counts of `what` the budget left out before.
pub(super) fn audit_budgeted(
    log: &AuditLog,
    budget: &RefusalBudget,
    ip: std::net::IpAddr,
    what: &str,
    who: &Caller,
    target: &str,
    detail: &str,
) {
    let admit = budget.check(ip, std::time::Instant::now());
    audit_unwritten(log, what, target, &admit.unwritten);
    if admit.write {
        audit(log, who, Outcome::Refused, REFUSED, target, detail);
    }
}

/// One line per address for refusals a budget did not write one by one.
fn audit_unwritten(log: &AuditLog, what: &str, target: &str, counts: &[(std::net::IpAddr, u32)]) {
    for (ip, n) in counts {
        let detail = format!("{n} more {what} from {ip} were not written one by one");
        audit(log, &caller(None, &ip.to_string()), Outcome::Refused, REFUSED, target, &detail);
    }
}

fn fingerprint(der: &[u8]) -> String {
    let hex: String = Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Binds nothing itself: checks the files, so a bad certificate stops the
/// controller at start with the file named.
pub fn acceptor(cfg: &AgentListen) -> Result<tokio_rustls::TlsAcceptor, ControllerError> {
    tls::acceptor(&cfg.ca, &cfg.cert, &cfg.key, cfg.enroll.is_some())
        .map_err(|e| ControllerError::Serve { what: "the agents port", message: e.to_string() })
}

/// What the agents port serves besides the listener itself.
pub struct Serving {
    /// The TLS side, from [`acceptor`].
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The revoked-agents file, already read once.
    pub revoked: Option<RevocationFile>,
    /// Signs certificates for enrolling agents, if enrollment is on.
    pub enroller: Option<Arc<Enroller>>,
    /// Where admitted agents are registered.
    pub directory: Arc<Directory>,
    /// Where admissions and refusals are written.
    pub audit: AuditLog,
    /// Called with each node that connects for the first time.
    pub on_first: OnFirst,
}

/// Serves the agents port on `listener` until the process ends.
pub async fn serve(listener: TcpListener, s: Serving) {
    let revoked = s.revoked.map(|r| Arc::new(std::sync::Mutex::new(r)));
    let port = Arc::new(Port {
        acceptor: s.acceptor,
        directory: s.directory,
        audit: s.audit,
        revoked: revoked.clone(),
        enroller: s.enroller,
        on_first: s.on_first,
        budget: Arc::new(RefusalBudget::default()),
        enroll_refusals: Arc::new(RefusalBudget::new(super::enroll::REFUSALS_PER_MINUTE)),
        enroll_attempts: Arc::new(RefusalBudget::new(super::enroll::ATTEMPTS_PER_MINUTE)),
        anonymous: Arc::new(tokio::sync::Semaphore::new(MAX_ANONYMOUS)),
    });
    tokio::spawn(flush_budgets(port.clone()));
    if let Some(file) = revoked {
        tokio::spawn(follow_revocations(file, port.clone()));
    }
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                tokio::spawn(connection(port.clone(), tcp, peer));
            }
            Err(e) => {
                // Out of descriptors and the like: wait, never spin.
                tracing::error!(error = %e, "accepting an agent connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes down what the budgets left out, once each window closes.
async fn flush_budgets(port: Arc<Port>) {
    let mut tick = tokio::time::interval(BUDGET_FLUSH);
    loop {
        tick.tick().await;
        let now = std::time::Instant::now();
        audit_unwritten(&port.audit, HANDSHAKES, PORT_TARGET, &port.budget.expired(now));
        audit_unwritten(&port.audit, ENROLLMENTS, ENROLL_TARGET, &port.enroll_refusals.expired(now));
        // Attempt windows carry no refusals of their own to write.
        let _ = port.enroll_attempts.expired(now);
    }
}

/// Re-reads the revoked-agents file when it changes and cuts every live
/// connection it now names.
async fn follow_revocations(file: Arc<std::sync::Mutex<RevocationFile>>, port: Arc<Port>) {
    let mut tick = tokio::time::interval(REVOCATION_CHECK);
    loop {
        tick.tick().await;
        let current = {
            let Ok(mut f) = file.lock() else { return };
            match f.reload() {
                Ok(false) => continue,
                Ok(true) => f.current().clone(),
                Err(e) => {
                    tracing::error!(error = %e, "revoked agents not re-read; the last good list stays in force");
                    continue;
                }
            }
        };
        tracing::info!(entries = current.len(), "revoked agents re-read");
        for c in port.directory.cut_where(|c| current.covers(c)) {
            tracing::warn!(node = %c.node, fingerprint = %c.fingerprint, "agent revoked: connection cut");
            let who = caller(None, "controller");
            let who = Caller { actor: "system:revocations".into(), ..who };
            let detail = format!("{} from {}: revoked while connected", c.fingerprint, c.peer);
            audit(&port.audit, &who, Outcome::Ok, REVOKED, &format!("node {}", c.node), &detail);
        }
    }
}

async fn connection(port: Arc<Port>, tcp: TcpStream, peer_addr: SocketAddr) {
    let peer = peer_addr.to_string();
    let refuse = |node: Option<&str>, detail: String| {
        tracing::warn!(%peer, node = node.unwrap_or("?"), %detail, "agent refused");
        match node {
            // Who failed the handshake is known only by address: each gets a budget.
            None => audit_budgeted(
                &port.audit,
                &port.budget,
                peer_addr.ip(),
                HANDSHAKES,
                &caller(None, &peer),
                PORT_TARGET,
                &detail,
            ),
            Some(n) => {
                audit(&port.audit, &caller(node, &peer), Outcome::Refused, REFUSED, &format!("node {n}"), &detail)
            }
        }
    };
    let (node, mut io) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls::accept(&port.acceptor, tcp)).await {
        Ok(Ok(tls::Accepted::Agent(node, io))) => (node, io),
        Ok(Ok(tls::Accepted::Anonymous(io))) => return enrollment(&port, io, peer_addr).await,
        Ok(Err(e)) => return refuse(None, e.to_string()),
        Err(_) => return refuse(None, format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")),
    };
    let der = io.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let info =
        Connection { node: node.clone(), peer: peer.clone(), fingerprint: fingerprint(&der), since_unix_ms: now_ms() };
    if let Some(file) = &port.revoked {
        // A poisoned list refuses: fail closed.
        if file.lock().map(|f| f.current().covers(&info)).unwrap_or(true) {
            return refuse(Some(&node), format!("{} is revoked", info.fingerprint));
        }
    }
    let (near, mut far) = tokio::io::duplex(PUMP_BUFFER);
    let mut pump = Box::pin(tokio::io::copy_bidirectional(&mut io, &mut far));
    let channel = tokio::select! {
        c = tunnel::channel(near) => c,
        ended = &mut pump => {
            let why = ended.err().map_or_else(|| "closed".to_string(), |e| e.to_string());
            return refuse(Some(&node), format!("the connection ended before gRPC started: {why}"));
        }
    };
    let channel = match channel {
        Ok(c) => c,
        Err(e) => return refuse(Some(&node), e.to_string()),
    };
    let joined = match port.directory.join(channel, info.clone()) {
        Ok(j) => j,
        Err(e) => return refuse(Some(&node), e.to_string()),
    };
    // The list may have been re-read between the check and the join.
    if let Some(file) = &port.revoked
        && file.lock().map(|f| f.current().covers(&info)).unwrap_or(true)
    {
        port.directory.left(&node, joined.id);
        return refuse(Some(&node), format!("{} was revoked while it joined", info.fingerprint));
    }
    tracing::info!(%node, %peer, fingerprint = %info.fingerprint, "agent connected");
    audit(&port.audit, &caller(Some(&node), &peer), Outcome::Ok, CONNECTED, &format!("node {node}"), &info.fingerprint);
    if joined.first {
        (port.on_first)(node.clone());
    }
    tokio::select! {
        ended = &mut pump => match ended {
            Ok(_) => tracing::info!(%node, "agent disconnected"),
            Err(e) => tracing::warn!(%node, error = %e, "agent connection lost"),
        },
        _ = joined.cut.notified() => tracing::info!(%node, "agent connection cut (replaced or revoked)"),
    }
    port.directory.left(&node, joined.id);
}

/// Serves only enrollment to a client without a certificate, for a while.
async fn enrollment(port: &Arc<Port>, io: tokio_rustls::server::TlsStream<TcpStream>, peer_addr: SocketAddr) {
    let peer = peer_addr.to_string();
    let Some(enroller) = port.enroller.clone() else {
        // The acceptor admits no anonymous client without enrollment on.
        tracing::error!(%peer, "an anonymous connection without enrollment; closed");
        return;
    };
    let Ok(_permit) = port.anonymous.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "too many connections enrolling at once; closed");
        return;
    };
    let service = EnrollService {
        enroller,
        revoked: port.revoked.clone(),
        audit: port.audit.clone(),
        peer: peer_addr,
        attempts: port.enroll_attempts.clone(),
        refusals: port.enroll_refusals.clone(),
        used: std::sync::atomic::AtomicBool::new(false),
    };
    let routes =
        tonic::service::Routes::new(bulkhead_api::agent::v1::enrollment_server::EnrollmentServer::new(service));
    match tokio::time::timeout(ENROLL_TIMEOUT, tunnel::serve(io, routes, ())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "enrollment connection ended"),
        Err(_) => tracing::debug!(%peer, "enrollment connection timed out"),
    }
}
