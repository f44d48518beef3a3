//! gRPC over a connection the server side opened. An agent dials the
//! controller (a node can always reach out, and the agent knows when to come
//! back), then serves its Agent API over that one connection, while the
//! controller is the HTTP/2 client on it. The protocol is the one the Unix
//! socket carries; only who dials is turned around.

pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint, Uri};

/// The controller's agents port, where agents dial (the lab and the install use it).
pub const AGENTS_PORT: u16 = 8444;
/// How often each side pings an idle tunnel, so a dead peer is noticed.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the tunnel counts as dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A tunnel failed.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// Serving over the tunnel ended with an error (not a clean close).
    #[error("serving over the tunnel: {0}")]
    Serve(String),
    /// The client side could not start HTTP/2 on the tunnel.
    #[error("opening gRPC over the tunnel: {0}")]
    Open(#[source] tonic::transport::Error),
}

/// Who is on the far side of a tunnel the agent dialed: the controller it
/// verified at the handshake. Every request served over the tunnel carries
/// it, so the agent can audit calls that arrive without a Unix peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPeer {
    /// The controller's address and the name its certificate was verified for.
    pub controller: String,
}

/// Serves `routes` over `io` until the peer closes it (the agent side, and
/// the controller's enrollment). Each request carries `peer` as an
/// extension (the agent's [`TunnelPeer`]), so handlers know who is calling.
pub async fn serve<T, P>(io: T, routes: tonic::service::Routes, peer: P) -> Result<(), TunnelError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    P: Clone + Send + Sync + 'static,
{
    let routes =
        tower::ServiceExt::map_request(routes.prepare(), move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            req
        });
    let service = hyper_util::service::TowerToHyperService::new(routes);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http2_only();
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .max_frame_size(1 << 20);
    builder.serve_connection(TokioIo::new(io), service).await.map_err(|e| TunnelError::Serve(e.to_string()))
}

/// A channel whose one connection is `io` (the controller side). Once the
/// tunnel closes, every call fails with "the agent's tunnel closed" until
/// the agent dials again and a new channel replaces this one.
pub async fn channel<T>(io: T) -> Result<Channel, TunnelError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let slot = Arc::new(Mutex::new(Some(io)));
    Endpoint::from_static("http://agent.tunnel.invalid")
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let io = slot.lock().ok().and_then(|mut s| s.take());
            async move {
                io.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotConnected, "the agent's tunnel closed; it dials again")
                })
            }
        }))
        .await
        .map_err(TunnelError::Open)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::agent::v1 as pb;

    /// An agent API that answers its status, served by the side that dialed.
    struct Agent;

    fn peer() -> TunnelPeer {
        TunnelPeer { controller: "the test's controller".into() }
    }

    fn no() -> tonic::Status {
        tonic::Status::unimplemented("not in this test")
    }

    #[tonic::async_trait]
    impl pb::agent_server::Agent for Agent {
        type StreamFlowsStream = tokio_stream::Empty<Result<pb::FlowBatch, tonic::Status>>;
        async fn apply_state(
            &self,
            _: tonic::Request<pb::DesiredState>,
        ) -> Result<tonic::Response<pb::ApplyStateResponse>, tonic::Status> {
            Err(no())
        }
        async fn quarantine(
            &self,
            _: tonic::Request<pb::QuarantineRequest>,
        ) -> Result<tonic::Response<pb::QuarantineResponse>, tonic::Status> {
            Err(no())
        }
        async fn release(
            &self,
            _: tonic::Request<pb::QuarantineRequest>,
        ) -> Result<tonic::Response<pb::QuarantineResponse>, tonic::Status> {
            Err(no())
        }
        async fn get_status(
            &self,
            req: tonic::Request<pb::StatusRequest>,
        ) -> Result<tonic::Response<pb::AgentStatus>, tonic::Status> {
            // The tunnel's peer rides on every request.
            if req.extensions().get::<TunnelPeer>() != Some(&peer()) {
                return Err(tonic::Status::unauthenticated("the request does not carry the tunnel's peer"));
            }
            Ok(tonic::Response::new(pb::AgentStatus { node: "n1".into(), generation: 42, ..Default::default() }))
        }
        async fn stream_flows(
            &self,
            _: tonic::Request<pb::FlowFilter>,
        ) -> Result<tonic::Response<Self::StreamFlowsStream>, tonic::Status> {
            Err(no())
        }
    }

    #[tokio::test]
    async fn the_dialer_serves_and_the_listener_calls_until_the_tunnel_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dialer = tokio::spawn(async move {
            let io = tokio::net::TcpStream::connect(addr).await.unwrap();
            serve(io, tonic::service::Routes::new(pb::agent_server::AgentServer::new(Agent)), peer()).await
        });
        let (accepted, _) = listener.accept().await.unwrap();
        let mut client = pb::agent_client::AgentClient::new(channel(accepted).await.unwrap());
        for _ in 0..3 {
            let status = client.get_status(pb::StatusRequest {}).await.unwrap().into_inner();
            assert_eq!((status.node.as_str(), status.generation), ("n1", 42));
        }
        let err = client.apply_state(pb::DesiredState::default()).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented, "the agent's own answer comes back: {err}");
        dialer.abort();
        let _ = dialer.await;
        // The call in flight when it closed is cancelled; later ones say why they cannot go out.
        let first = client.get_status(pb::StatusRequest {}).await.unwrap_err();
        assert!(matches!(first.code(), tonic::Code::Cancelled | tonic::Code::Unavailable), "{first}");
        let later = client.get_status(pb::StatusRequest {}).await.unwrap_err();
        assert_eq!(later.code(), tonic::Code::Unavailable, "{later}");
        assert!(format!("{later:?}").contains("tunnel closed"), "{later:?}");
    }

    /// CA, controller and agent files in a directory of the test's own.
    struct Pki {
        dir: std::path::PathBuf,
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Pki {
        fn new(tag: &str) -> Pki {
            use bulkhead_controller::auth::pki::Ca;
            let dir = std::env::temp_dir().join(format!("bh-tunnel-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let ca = Ca::generate("test CA").unwrap();
            let rogue = Ca::generate("rogue CA").unwrap();
            let server = ca.server("bulkhead-controller", &["bulkhead-controller".into()], &[]).unwrap();
            let files = [
                ("ca.pem", ca.pem.cert.clone()),
                ("server.pem", server.cert.clone()),
                ("server.key", server.key.clone()),
            ];
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            for (name, pem) in
                [("n1", ca.agent("n1").unwrap()), ("rogue", rogue.agent("n1").unwrap()), ("server", server)]
            {
                std::fs::write(dir.join(format!("{name}-client.pem")), pem.cert).unwrap();
                std::fs::write(dir.join(format!("{name}-client.key")), pem.key).unwrap();
            }
            Pki { dir }
        }

        fn connector(&self, who: &str) -> tokio_rustls::TlsConnector {
            let d = &self.dir;
            tls::connector(
                &d.join("ca.pem"),
                &d.join(format!("{who}-client.pem")),
                &d.join(format!("{who}-client.key")),
            )
            .unwrap()
        }
    }

    #[tokio::test]
    async fn over_mtls_the_controller_learns_the_node_from_the_certificate_and_refuses_strangers() {
        let pki = Pki::new("mtls");
        let d = &pki.dir;
        let acceptor = tls::acceptor(&d.join("ca.pem"), &d.join("server.pem"), &d.join("server.key"), false).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();

        let good = pki.connector("n1");
        let dialed = addr.clone();
        let agent = tokio::spawn(async move {
            let io = tls::dial(&good, &dialed, "bulkhead-controller").await.unwrap();
            serve(io, tonic::service::Routes::new(pb::agent_server::AgentServer::new(Agent)), peer()).await
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let tls::Accepted::Agent(node, io) = tls::accept(&acceptor, tcp).await.unwrap() else {
            panic!("n1's certificate was not seen");
        };
        assert_eq!(node, "n1");
        let mut client = pb::agent_client::AgentClient::new(channel(io).await.unwrap());
        assert_eq!(client.get_status(pb::StatusRequest {}).await.unwrap().into_inner().node, "n1");
        agent.abort();

        // A certificate of another CA, and the controller's own server
        // certificate used as a client one, are refused at the handshake.
        for who in ["rogue", "server"] {
            let connector = pki.connector(who);
            let dialed = addr.clone();
            let dialer =
                tokio::spawn(async move { tls::dial(&connector, &dialed, "bulkhead-controller").await.map(|_| ()) });
            let (tcp, _) = listener.accept().await.unwrap();
            let refused = tls::accept(&acceptor, tcp).await;
            assert!(refused.is_err(), "{who}: accepted");
            let _ = dialer.await;
        }

        // Without a certificate: refused, unless the acceptor lets clients
        // enroll; then it is anonymous, and a stranger is still refused.
        let open = tls::acceptor(&d.join("ca.pem"), &d.join("server.pem"), &d.join("server.key"), true).unwrap();
        for (acceptor, who, admitted) in [(&acceptor, None, false), (&open, None, true), (&open, Some("rogue"), false)]
        {
            let connector = match who {
                None => tls::anonymous_connector(&d.join("ca.pem")).unwrap(),
                Some(w) => pki.connector(w),
            };
            let dialed = addr.clone();
            let dialer =
                tokio::spawn(async move { tls::dial(&connector, &dialed, "bulkhead-controller").await.map(|_| ()) });
            let (tcp, _) = listener.accept().await.unwrap();
            let accepted = tls::accept(acceptor, tcp).await;
            assert_eq!(matches!(accepted, Ok(tls::Accepted::Anonymous(_))), admitted, "{who:?}");
            let _ = dialer.await;
        }

        // The agent refuses a controller whose name does not match.
        let connector = pki.connector("n1");
        let dialed = addr.clone();
        let wrong = tokio::spawn(async move { tls::dial(&connector, &dialed, "someone-else").await.map(|_| ()) });
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tls::accept(&acceptor, tcp).await;
        let err = wrong.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("handshake"), "{err}");
    }
}
