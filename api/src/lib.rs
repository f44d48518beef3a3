//! The versioned gRPC contract of Bulkhead's node agent, and a client that
//! reaches an agent over its Unix socket.

/// `bulkhead.agent.v1`: generated from `proto/bulkhead/agent/v1/agent.proto`.
pub mod agent {
    /// Version 1 of the agent API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bulkhead.agent.v1");
    }
}

use std::path::{Path, PathBuf};

use agent::v1::agent_client::AgentClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connecting to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The agent's Unix socket could not be connected to.
    #[error("connecting to agent socket {path}: {source}")]
    Socket {
        /// Path of the socket.
        path: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to an agent listening on a Unix socket (agents in the lab live in
/// node namespaces, so a filesystem socket is how the host reaches them).
pub async fn connect_unix(path: &Path) -> Result<AgentClient<Channel>, ConnectError> {
    let socket = path.to_path_buf();
    let channel = Endpoint::from_static("http://agent.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError::Socket { path: path.to_path_buf(), source })?;
    Ok(AgentClient::new(channel)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024))
}
