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

/// The controller's side: its certificate, and client certificates of `ca` required.
pub fn acceptor(ca: &Path, cert: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
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
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(certs(cert)?, key(key_file)?)
        .map_err(|e| TlsError::Config(format!("the certificate and key do not make a TLS identity: {e}")))?;
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

/// Completes the handshake of an accepted connection and says which node dialed.
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<(String, tokio_rustls::server::TlsStream<TcpStream>), TlsError> {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "an unknown peer".into());
    let tls = acceptor.accept(tcp).await.map_err(|source| TlsError::Handshake { peer: peer.clone(), source })?;
    let node = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| agent_node(c));
    match node {
        Some(node) => Ok((node, tls)),
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
