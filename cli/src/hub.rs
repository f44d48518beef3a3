//! `bulkhead hub`: the flags of the multi-cluster view and their check.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use bulkhead_controller::http::ApiConfig;
use bulkhead_controller::hub::{HubConfig, Member};

/// `bulkhead hub`.
#[derive(clap::Args)]
pub struct HubArgs {
    /// A member cluster, `NAME=URL,TOKEN[,CA_FILE]`: its controller's API,
    /// a token of that API (responder or above, cluster-wide, to quarantine
    /// through the hub; `@FILE` reads it from a file) and the CA its
    /// certificate chains to. Once per cluster.
    #[arg(long = "member", required = true, value_name = "NAME=URL,TOKEN[,CA_FILE]")]
    members: Vec<String>,
    /// The hub's name, recorded with every quarantine it sends.
    #[arg(long, default_value = "hub")]
    name: String,
    /// Serve the hub's HTTPS API here (port 0: any free port; see --addr-file).
    #[arg(long, default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// The hub's certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The hub's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP (loopback addresses only).
    #[arg(long)]
    plaintext: bool,
    /// Write the hub's URL here once it listens.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Who may call the hub: a tokens file in the controller's format
    /// (cluster-wide holders only; viewers read, responders quarantine).
    #[arg(long)]
    tokens_file: PathBuf,
    /// The hub's audit log is written here (`audit.log`).
    #[arg(long, default_value = "/var/lib/bulkhead-hub")]
    state_dir: PathBuf,
    /// Give every member the other members' pods every few seconds, so a
    /// `clusters:` peer matches traffic from them (the member tokens must
    /// then be admins').
    #[arg(long)]
    share_pods: bool,
}

impl std::fmt::Debug for HubArgs {
    /// The member specs may hold tokens: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|m| m.split('=').next().unwrap_or_default()).collect();
        f.debug_struct("HubArgs")
            .field("members", &names)
            .field("name", &self.name)
            .field("listen", &self.listen)
            .finish()
    }
}

impl HubArgs {
    /// The hub's configuration, every member spec checked.
    pub fn config(&self) -> Result<HubConfig> {
        let members = self.members.iter().map(|m| m.parse::<Member>()).collect::<Result<Vec<_>, _>>()?;
        Ok(HubConfig {
            name: self.name.clone(),
            members,
            api: ApiConfig {
                addr: self.listen,
                tls: self.tls_cert.clone().zip(self.tls_key.clone()),
                plaintext: self.plaintext,
                addr_file: self.addr_file.clone(),
                tokens: Some(self.tokens_file.clone()),
                console: None,
            },
            state_dir: self.state_dir.clone(),
            share_pods: self.share_pods,
        })
    }
}
