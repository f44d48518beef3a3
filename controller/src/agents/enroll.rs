//! Enrollment: an agent on a Kubernetes node that holds no certificate
//! proves which node it runs on with its pod's bound ServiceAccount token,
//! and the controller signs a short-lived client certificate for that node
//! on the agent's own key. The node comes from the API server's
//! TokenReview (`authentication.kubernetes.io/node-name`, on Kubernetes
//! 1.30+), never from the request, so an agent cannot enroll as another
//! node. Every enrollment and every refusal is audited.

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::audit::{AuditLog, Caller};
use bulkhead_api::v1::audit::Outcome;
use rcgen::CertificateSigningRequestParams;

use super::revoked::{self, RevocationFile};
use crate::auth::AuthError;
use crate::auth::kubernetes::token_review;
use crate::auth::pki::{Ca, Pem};
use crate::error::ControllerError;

/// Audited when a certificate is signed for an agent.
pub const ENROLLED: &str = "agent-enrolled";
/// The audience agents' tokens are issued for, unless configured otherwise.
pub const AUDIENCE: &str = "bulkhead-agent";
/// The TokenReview extra that names the node of a pod-bound token.
pub const NODE_EXTRA: &str = "authentication.kubernetes.io/node-name";
/// How long an enrolled certificate is valid. An agent enrolls again on
/// every dial, so this bounds only how long a stolen key stays useful.
pub const VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// The largest signing request read.
const MAX_CSR: usize = 16 * 1024;

/// Enrollment's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollConfig {
    /// The CA's private key (PEM); its certificate is the agents port's CA.
    pub ca_key: PathBuf,
    /// The only user that may enroll: `system:serviceaccount:NS:NAME`.
    pub service_account: String,
    /// The audience tokens must be issued for.
    pub audience: String,
}

/// Signs agent certificates after a TokenReview.
pub struct Enroller {
    ca: Ca,
    client: kube::Client,
    config: EnrollConfig,
}

impl Enroller {
    /// Reads the CA (its certificate `ca_cert` and the configured key) once, at start.
    pub fn new(config: EnrollConfig, ca_cert: &std::path::Path, client: kube::Client) -> Result<Self, ControllerError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| ControllerError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source: e,
            })
        };
        let ca = Ca::from_pem(Pem { cert: read(ca_cert)?, key: read(&config.ca_key)? })?;
        Ok(Self { ca, client, config })
    }

    /// Checks `token`, then signs `csr_pem`'s key for the token's node.
    async fn sign(
        &self,
        token: &str,
        csr_pem: &str,
        revoked: Option<&std::sync::Mutex<RevocationFile>>,
    ) -> Result<(String, pb::EnrollResponse), (Option<String>, tonic::Status)> {
        if csr_pem.len() > MAX_CSR {
            return Err((
                None,
                tonic::Status::invalid_argument(format!("the signing request is over {MAX_CSR} bytes")),
            ));
        }
        let refused = |user: Option<String>, e: AuthError| {
            let status = match e {
                AuthError::Backend(_) => tonic::Status::unavailable(e.to_string()),
                _ => tonic::Status::permission_denied(e.to_string()),
            };
            (user, status)
        };
        let (user, info) = token_review(&self.client, token, std::slice::from_ref(&self.config.audience))
            .await
            .map_err(|e| refused(None, e))?;
        if user != self.config.service_account {
            let expected = self.config.service_account.clone();
            return Err(refused(Some(user.clone()), AuthError::NotAnAgent { user, expected }));
        }
        let nodes = info.extra.as_ref().and_then(|x| x.get(NODE_EXTRA)).cloned().unwrap_or_default();
        let node = match <[String; 1]>::try_from(nodes) {
            Ok([node]) if revoked::node_name(&node) => node,
            _ => return Err(refused(Some(user.clone()), AuthError::NoNode { user })),
        };
        // A poisoned list refuses: fail closed.
        if let Some(file) = revoked
            && file.lock().map(|f| f.current().covers_node(&node)).unwrap_or(true)
        {
            return Err(refused(Some(user), AuthError::Revoked { node }));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| (Some(user.clone()), tonic::Status::invalid_argument(format!("the signing request: {e}"))))?;
        let (cert_pem, until) = self
            .ca
            .agent_for_key(&node, &csr.public_key, VALIDITY)
            .map_err(|e| (Some(user.clone()), tonic::Status::internal(e.to_string())))?;
        let reply = pb::EnrollResponse {
            cert_pem,
            node: node.clone(),
            not_after_unix_ms: u64::try_from(until.as_millis()).unwrap_or(u64::MAX),
        };
        Ok((user, reply))
    }
}

/// The Enrollment service for one anonymous connection from `peer`.
pub struct EnrollService {
    /// Signs.
    pub enroller: std::sync::Arc<Enroller>,
    /// The revoked-agents file, if any.
    pub revoked: Option<std::sync::Arc<std::sync::Mutex<RevocationFile>>>,
    /// The audit log.
    pub audit: AuditLog,
    /// The dialer's address.
    pub peer: std::net::SocketAddr,
    /// Enrollments each address may attempt per minute (each costs a TokenReview).
    pub attempts: std::sync::Arc<super::budget::RefusalBudget>,
    /// Refusals each address may write to the audit log one by one.
    pub refusals: std::sync::Arc<super::budget::RefusalBudget>,
    /// Whether this connection has enrolled already: one call per connection.
    pub used: std::sync::atomic::AtomicBool,
}

/// Enrollments an address may attempt per minute.
pub const ATTEMPTS_PER_MINUTE: u32 = 60;
/// Refused enrollments an address may write one by one per minute.
pub const REFUSALS_PER_MINUTE: u32 = 30;

impl EnrollService {
    /// Audits a refusal within the address's budget (the rest are counted
    /// and written by the agents port's timer).
    fn refused(&self, user: Option<&str>, status: &tonic::Status) {
        use super::listen::{ENROLL_TARGET, ENROLLMENTS, audit_budgeted};
        let who = self.who(user);
        audit_budgeted(&self.audit, &self.refusals, self.peer.ip(), ENROLLMENTS, &who, ENROLL_TARGET, status.message());
    }

    fn who(&self, user: Option<&str>) -> Caller {
        Caller {
            actor: user.map_or_else(|| "unknown agent".to_string(), str::to_string),
            ..super::listen::caller(None, &format!("{} (enrollment)", self.peer))
        }
    }
}

#[tonic::async_trait]
impl pb::enrollment_server::Enrollment for EnrollService {
    async fn enroll(
        &self,
        request: tonic::Request<pb::EnrollRequest>,
    ) -> Result<tonic::Response<pb::EnrollResponse>, tonic::Status> {
        if self.used.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(tonic::Status::resource_exhausted("one enrollment per connection: dial again"));
        }
        let ip = self.peer.ip();
        if !self.attempts.check(ip, std::time::Instant::now()).write {
            let status = tonic::Status::resource_exhausted(format!(
                "more than {ATTEMPTS_PER_MINUTE} enrollments a minute from {ip}: wait"
            ));
            self.refused(None, &status);
            return Err(status);
        }
        let req = request.into_inner();
        match self.enroller.sign(&req.token, &req.csr_pem, self.revoked.as_deref()).await {
            Ok((user, reply)) => {
                tracing::info!(node = %reply.node, peer = %self.peer, "agent enrolled");
                let detail = format!("certificate valid until {} ms since the epoch", reply.not_after_unix_ms);
                let target = format!("node {}", reply.node);
                super::listen::audit(&self.audit, &self.who(Some(&user)), Outcome::Ok, ENROLLED, &target, &detail);
                Ok(tonic::Response::new(reply))
            }
            Err((user, status)) => {
                tracing::warn!(peer = %self.peer, reason = %status.message(), "enrollment refused");
                self.refused(user.as_deref(), &status);
                Err(status)
            }
        }
    }
}
