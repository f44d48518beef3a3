//! The agent's own connection to the controller over the network: it dials
//! the controller's agents port with its node certificate, then serves its
//! Agent API over that connection, and dials again with backoff whenever it
//! drops. Enforcement never waits on it: the last applied state stays
//! pinned while the controller is away (fail static).
//!
//! The certificate is either given (files, as the lab and a CA of your own
//! issue them) or enrolled: before each dial the agent makes a new key and
//! has the controller sign it, proving its node with the pod's bound
//! ServiceAccount token. The key never leaves the process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::tunnel::{self, TunnelPeer, tls};

use crate::error::AgentError;

/// First wait after a failed or dropped connection.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between dials: a restarted controller has every agent
/// back within about this long (plus up to a fifth, spread at random so
/// a whole cluster does not dial in lockstep).
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The wait after the controller refused to enroll this node (revoked, or
/// the wrong ServiceAccount): it may be lifted, but not within seconds.
const RETRY_REFUSED: Duration = Duration::from_secs(30);
/// A connection that lasted this long was healthy: the next dial is quick again.
const HEALTHY: Duration = Duration::from_secs(10);
/// How long one dial and handshake may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the controller is and how to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// `HOST:PORT` of the controller's agents port (its Service in a cluster).
    pub addr: String,
    /// The name the controller's certificate must carry (a DNS name or an IP).
    pub server_name: String,
    /// Bulkhead's CA (PEM).
    pub ca: PathBuf,
    /// How the agent proves its node.
    pub identity: Identity,
}

/// How an agent proves which node it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A certificate naming `NODE.agent.bulkhead.invalid`, and its key (PEM files).
    Files {
        /// The certificate.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// A ServiceAccount token file (projected, bound to the pod, read again
    /// on every enrollment since the kubelet rotates it).
    Enroll {
        /// The token file.
        token: PathBuf,
    },
}

/// The TLS connectors, made once from the files.
pub struct Dialer {
    /// The node certificate's, for [`Identity::Files`].
    fixed: Option<tokio_rustls::TlsConnector>,
    /// Without a certificate, to enroll.
    anonymous: Option<tokio_rustls::TlsConnector>,
}

impl Uplink {
    /// The name to verify when none is given: the host part of `addr`.
    pub fn default_server_name(addr: &str) -> String {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']').to_string()
    }
}

/// The wait before dial number `failures` (from 1).
fn backoff(failures: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(8)).min(RETRY_MAX)
}

/// `wait` plus up to a fifth of it, from the clock's nanoseconds.
fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    wait + wait.mul_f64(f64::from(nanos % 1000) / 5000.0)
}

/// Checks the files once, at startup: a bad certificate or a missing token
/// is a clear error then, not a log line every few seconds.
pub fn dialer(up: &Uplink) -> Result<Dialer, AgentError> {
    let bad = |e: tls::TlsError| AgentError::Uplink(e.to_string());
    match &up.identity {
        Identity::Files { cert, key } => {
            Ok(Dialer { fixed: Some(tls::connector(&up.ca, cert, key).map_err(bad)?), anonymous: None })
        }
        Identity::Enroll { token } => {
            read_token(token)?;
            Ok(Dialer { fixed: None, anonymous: Some(tls::anonymous_connector(&up.ca).map_err(bad)?) })
        }
    }
}

fn read_token(path: &Path) -> Result<String, AgentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AgentError::Uplink(format!("the ServiceAccount token {}: {e}", path.display())))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(AgentError::Uplink(format!("the ServiceAccount token {} is empty", path.display())));
    }
    Ok(token)
}

/// Has the controller sign a new key for `node`, over a connection without
/// a certificate; refuses a certificate for any other node.
async fn enroll(
    up: &Uplink,
    anonymous: &tokio_rustls::TlsConnector,
    token: &Path,
    node: &str,
) -> Result<tokio_rustls::TlsConnector, AgentError> {
    let fail = |what: &str, e: String| AgentError::Uplink(format!("enrolling: {what}: {e}"));
    let key = rcgen::KeyPair::generate().map_err(|e| fail("making a key", e.to_string()))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|r| r.pem())
        .map_err(|e| fail("making the signing request", e.to_string()))?;
    let token = read_token(token)?;
    let io = tls::dial(anonymous, &up.addr, &up.server_name).await.map_err(|e| fail("dialing", e.to_string()))?;
    let channel = tunnel::channel(io).await.map_err(|e| fail("opening gRPC", e.to_string()))?;
    let reply = pb::enrollment_client::EnrollmentClient::new(channel)
        .enroll(pb::EnrollRequest { token, csr_pem: csr })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::PermissionDenied => AgentError::UplinkRefused(s.message().to_string()),
            _ => fail("the controller answered", s.message().to_string()),
        })?
        .into_inner();
    if reply.node != node {
        return Err(fail("the certificate", format!("names node {:?}, this is {node:?}", reply.node)));
    }
    tracing::info!(node, not_after_unix_ms = reply.not_after_unix_ms, "enrolled");
    tls::connector_from_pem(&up.ca, &reply.cert_pem, &key.serialize_pem())
        .map_err(|e| fail("the certificate", e.to_string()))
}

/// The connector for the next dial: the fixed one, or a freshly enrolled one.
async fn connector(up: &Uplink, dialer: &Dialer, node: &str) -> Result<tokio_rustls::TlsConnector, AgentError> {
    match (&up.identity, &dialer.fixed, &dialer.anonymous) {
        (_, Some(fixed), _) => Ok(fixed.clone()),
        (Identity::Enroll { token }, None, Some(anonymous)) => enroll(up, anonymous, token, node).await,
        _ => Err(AgentError::Uplink("no TLS identity".into())),
    }
}

/// One dial of the controller as `node`, enrolling first if that is how
/// this agent gets its certificate.
pub async fn dial(
    up: &Uplink,
    dialer: &Dialer,
    node: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, AgentError> {
    let connector = connector(up, dialer, node).await?;
    tls::dial(&connector, &up.addr, &up.server_name).await.map_err(|e| AgentError::Uplink(e.to_string()))
}

/// Dials `up` as `node` and serves `routes` over each connection, forever.
pub async fn run(up: Uplink, node: String, dialer: Dialer, routes: tonic::service::Routes) {
    let peer = TunnelPeer { controller: format!("{} as {}", up.addr, up.server_name) };
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        match tokio::time::timeout(DIAL_TIMEOUT, dial(&up, &dialer, &node)).await {
            Ok(Ok(io)) => {
                tracing::info!(controller = %up.addr, "connected to the controller");
                let ended = tunnel::serve(io, routes.clone(), peer.clone()).await;
                match ended {
                    Ok(()) => {
                        tracing::warn!(controller = %up.addr, "the controller closed the connection; dialing again")
                    }
                    Err(e) => tracing::warn!(controller = %up.addr, error = %e, "connection to the controller lost"),
                }
            }
            Ok(Err(AgentError::UplinkRefused(why))) => {
                // Asking again at once would only fill the controller's audit log.
                tracing::error!(controller = %up.addr, reason = %why, "the controller refused to enroll this node");
                tokio::time::sleep(jittered(RETRY_REFUSED)).await;
                continue;
            }
            Ok(Err(e)) => tracing::warn!(controller = %up.addr, error = %e, failures, "cannot reach the controller"),
            Err(_) => tracing::warn!(controller = %up.addr, failures, "dialing the controller timed out"),
        }
        failures = if started.elapsed() >= HEALTHY { 1 } else { failures.saturating_add(1) };
        tokio::time::sleep(jittered(backoff(failures))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_back_off_to_a_ceiling() {
        assert_eq!(backoff(1), RETRY_FIRST);
        assert_eq!(backoff(2), RETRY_FIRST * 2);
        assert_eq!(backoff(30), RETRY_MAX);
    }

    #[test]
    fn the_server_name_defaults_to_the_host() {
        assert_eq!(Uplink::default_server_name("172.30.0.254:8444"), "172.30.0.254");
        assert_eq!(Uplink::default_server_name("[fd00::1]:8444"), "fd00::1");
        assert_eq!(
            Uplink::default_server_name("bulkhead-controller.bulkhead-system.svc:8444"),
            "bulkhead-controller.bulkhead-system.svc"
        );
    }
}
