//! mTLS on the agents' port. The controller accepts only client
//! certificates of Bulkhead's CA that name a node under [`AGENT_DOMAIN`], and
//! learns from the certificate which node dialed: no agent can speak for
//! another. The agent verifies the controller's certificate against the
//! same CA.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The DNS suffix an agent certificate names its node under.
pub const AGENT_DOMAIN: &str = "agent.bulkhead.invalid";

/// TLS on a tunnel failed; each variant names the file or the peer.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is unreadable or holds nothing usable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration was refused by rustls.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The handshake failed (an unknown CA, a wrong name, a closed socket).
    #[error("TLS handshake with {peer}: {source}")]
    Handshake {
        /// Who was on the other end.
        peer: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The peer's certificate names no node.
    #[error("the certificate of {peer} names no agent (expected one DNS name NODE.{AGENT_DOMAIN})")]
    NoNode {
        /// Who was on the other end.
        peer: String,
    },
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |message: String| TlsError::File { path: path.to_path_buf(), message };
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("reading certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("reading certificates: {e}")))?;
    if chain.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(chain)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::File { path: path.to_path_buf(), message: format!("reading the private key: {e}") })
}

fn roots(ca: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots
            .add(c)
            .map_err(|e| TlsError::File { path: ca.to_path_buf(), message: format!("not a CA certificate: {e}") })?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The controller's side: its certificate, and client certificates of `ca`
/// required, or, with `anonymous`, optional (a client without one may only
/// enroll; a client with a bad one is still refused at the handshake).
pub fn acceptor(ca: &Path, cert: &Path, key_file: &Path, anonymous: bool) -> Result<TlsAcceptor, TlsError> {
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
    let builder = if anonymous { builder.allow_unauthenticated() } else { builder };
    let verifier = builder.build().map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert)?, key(key_file)?)
        .map_err(|e| TlsError::Config(format!("the certificate and key do not make a TLS identity: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The agent's side: its certificate, and the controller's verified against `ca`.
pub fn connector(ca: &Path, cert: &Path, key_file: &Path) -> Result<TlsConnector, TlsError> {
    client(ca, Some((certs(cert)?, key(key_file)?)))
}

/// [`connector`] with the certificate and key in memory (PEM), as enrollment returns them.
pub fn connector_from_pem(ca: &Path, cert: &str, key_pem: &str) -> Result<TlsConnector, TlsError> {
    let bad = |message: String| TlsError::Config(format!("the enrolled identity: {message}"));
    let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("reading the certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(format!("reading the key: {e}")))?;
    client(ca, Some((chain, key)))
}

/// A connector without a client certificate: it can only enroll.
pub fn anonymous_connector(ca: &Path) -> Result<TlsConnector, TlsError> {
    client(ca, None)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client(ca: &Path, identity: Option<Identity>) -> Result<TlsConnector, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("the certificate and key do not make a TLS identity: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The node an agent certificate (DER, already verified) names.
pub fn agent_node(cert: &[u8]) -> Option<String> {
    let der = CertificateDer::from(cert);
    let parsed = webpki::EndEntityCert::try_from(&der).ok()?;
    let suffix = format!(".{AGENT_DOMAIN}");
    let names: Vec<String> =
        parsed.valid_dns_names().filter_map(|n| n.strip_suffix(suffix.as_str()).map(str::to_string)).collect();
    match <[String; 1]>::try_from(names) {
        Ok([one]) if !one.is_empty() => Some(one),
        _ => None,
    }
}

/// A connection past its handshake.
pub enum Accepted {
    /// An agent, and the node its certificate names.
    Agent(String, tokio_rustls::server::TlsStream<TcpStream>),
    /// A client without a certificate (only when the acceptor allows it).
    Anonymous(tokio_rustls::server::TlsStream<TcpStream>),
}

/// Completes the handshake of an accepted connection and says which node
/// dialed, if any did.
pub async fn accept(acceptor: &TlsAcceptor, tcp: TcpStream) -> Result<Accepted, TlsError> {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "an unknown peer".into());
    let tls = acceptor.accept(tcp).await.map_err(|source| TlsError::Handshake { peer: peer.clone(), source })?;
    let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Ok(Accepted::Anonymous(tls));
    };
    match agent_node(leaf) {
        Some(node) => Ok(Accepted::Agent(node, tls)),
        None => Err(TlsError::NoNode { peer }),
    }
}

/// Dials the controller at `addr`, verifying it as `server_name`.
pub async fn dial(
    connector: &TlsConnector,
    addr: &str,
    server_name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| TlsError::Config(format!("{server_name:?} is not a server name: {e}")))?;
    let tcp =
        TcpStream::connect(addr).await.map_err(|source| TlsError::Handshake { peer: addr.to_string(), source })?;
    connector.connect(name, tcp).await.map_err(|source| TlsError::Handshake { peer: addr.to_string(), source })
}
