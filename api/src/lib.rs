//! The versioned gRPC contract of Bulkhead's node agent, and a client that
//! reaches an agent over its Unix socket.

/// `bulkhead.flow.v1`: generated from `proto/bulkhead/flow/v1/flow.proto`,
/// the flow enumerations (verdict, drop reason, event type, direction) the
/// agent's and the controller's APIs share, so the two cannot disagree.
pub mod flow {
    /// Version 1 of the shared flow enumerations.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bulkhead.flow.v1");
    }
}

/// `bulkhead.agent.v1`: generated from `proto/bulkhead/agent/v1/agent.proto`.
pub mod agent {
    /// Version 1 of the agent API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bulkhead.agent.v1");
    }
}

/// `bulkhead.controller.v1`: generated from `proto/bulkhead/controller/v1/controller.proto`.
pub mod controller {
    /// Version 1 of the controller API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bulkhead.controller.v1");
    }
}

/// The gRPC metadata key carrying the name a socket caller states (the
/// kernel vouches for its uid; the name is what audit records show).
pub const ACTOR_METADATA: &str = "bulkhead-actor";

pub mod alertmanager;
pub mod audit;
pub mod listen;
pub mod ring;
pub mod tunnel;
pub mod v1;

use std::path::{Path, PathBuf};

use agent::v1::agent_client::AgentClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connecting to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The Unix socket could not be connected to.
    #[error("connecting to socket {path}: {source}")]
    Socket {
        /// Path of the socket.
        path: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// A gRPC channel over a Unix socket (agents in the lab live in node
/// namespaces, and the controller's API is root-only, so a filesystem socket
/// is how clients reach both).
pub async fn unix_channel(path: &Path) -> Result<Channel, ConnectError> {
    let socket = path.to_path_buf();
    Endpoint::from_static("http://bulkhead.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError::Socket { path: path.to_path_buf(), source })
}

/// Connects to the controller's API socket.
pub async fn connect_controller(
    path: &Path,
) -> Result<controller::v1::controller_client::ControllerClient<Channel>, ConnectError> {
    Ok(controller::v1::controller_client::ControllerClient::new(unix_channel(path).await?)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024))
}

/// Connects to an agent listening on a Unix socket.
pub async fn connect_unix(path: &Path) -> Result<AgentClient<Channel>, ConnectError> {
    let channel = unix_channel(path).await?;
    Ok(AgentClient::new(channel)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024))
}
