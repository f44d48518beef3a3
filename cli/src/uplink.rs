//! The agent's flags for reaching its controller over the network.

use std::path::PathBuf;

use anyhow::{Result, bail};
use bulkhead_agent::uplink::{Identity, Uplink};
use clap::Args;

/// `bulkhead agent` options for the controller connection (mTLS).
#[derive(Args, Debug)]
pub struct UplinkArgs {
    /// Dial the controller's agents port at HOST:PORT and serve it over
    /// that connection (mTLS; the Unix socket keeps working too).
    #[arg(long, value_name = "HOST:PORT", env = "BULKHEAD_CONTROLLER_ADDR", requires = "controller_ca")]
    controller: Option<String>,
    /// The name the controller's certificate must carry [default: HOST of --controller].
    #[arg(long, value_name = "NAME", requires = "controller")]
    controller_name: Option<String>,
    /// Bulkhead's CA (PEM), to verify the controller.
    #[arg(long, value_name = "FILE", requires = "controller")]
    controller_ca: Option<PathBuf>,
    /// This node's certificate (PEM), naming NODE.agent.bulkhead.invalid.
    #[arg(long, value_name = "FILE", requires_all = ["controller", "tls_key"], conflicts_with = "enroll_token")]
    tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["controller", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// Instead of a certificate: enroll with this pod-bound ServiceAccount
    /// token (a projected volume with the controller's agent audience); the
    /// controller signs a certificate for the node the token names.
    #[arg(long, value_name = "FILE", requires = "controller")]
    enroll_token: Option<PathBuf>,
}

impl UplinkArgs {
    /// The connection to make, if one was asked for.
    pub fn uplink(self) -> Result<Option<Uplink>> {
        let (Some(addr), Some(ca)) = (self.controller, self.controller_ca) else {
            return Ok(None);
        };
        if !addr.contains(':') {
            bail!("--controller {addr:?}: expected HOST:PORT");
        }
        let identity = match (self.tls_cert, self.tls_key, self.enroll_token) {
            (Some(cert), Some(key), None) => Identity::Files { cert, key },
            (None, None, Some(token)) => Identity::Enroll { token },
            _ => bail!("--controller needs either --tls-cert and --tls-key, or --enroll-token"),
        };
        let server_name = self.controller_name.unwrap_or_else(|| Uplink::default_server_name(&addr));
        Ok(Some(Uplink { addr, server_name, ca, identity }))
    }
}
