//! The lab's HTTPS API and agents port: a CA and a server certificate made
//! for the lab, each node's agent certificate, an admin and a viewer token,
//! and where the controller listens. Scripts find
//! all of it with `bulkhead lab status -o json`, whose `api` member is a
//! documented contract:
//! `{"api": {"url": "https://127.0.0.1:PORT", "ca_file": PATH, "tokens": {"admin": PATH, "viewer": PATH}}}`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bulkhead_controller::auth::pki::Ca;
use bulkhead_controller::auth::tokens::{self, TokenEntry};
use bulkhead_model::Role;
use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// The files of each token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFiles {
    /// A token with the admin role, cluster-wide.
    pub admin: PathBuf,
    /// A token with the viewer role, cluster-wide.
    pub viewer: PathBuf,
}

/// The lab's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabApi {
    /// Where it listens, once the controller reported it ("" before).
    pub url: String,
    /// The lab CA's certificate (PEM): trust it to reach `url`.
    pub ca_file: PathBuf,
    /// Token files, one token each.
    pub tokens: TokenFiles,
    /// The server's certificate chain.
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// The controller's tokens file (hashes).
    pub tokens_file: PathBuf,
    /// Where the controller writes its URL.
    pub addr_file: PathBuf,
}

/// What `lab status -o json` promises under `api`: the URL, the CA and the
/// token files, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiContract {
    /// "https://127.0.0.1:PORT".
    pub url: String,
    /// The CA certificate (PEM).
    pub ca_file: PathBuf,
    /// Token files by role.
    pub tokens: TokenFiles,
}

impl From<&LabApi> for ApiContract {
    fn from(a: &LabApi) -> Self {
        Self { url: a.url.clone(), ca_file: a.ca_file.clone(), tokens: a.tokens.clone() }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LabError + use<> {
    let path = path.to_path_buf();
    move |source| LabError::Io { action, path, source }
}

/// Writes `text` readable by its owner only.
fn secret(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(io("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io("restricting", path))
}

fn tls_err(e: bulkhead_controller::ControllerError) -> LabError {
    LabError::Invalid(format!("the lab's TLS certificate: {e}"))
}

/// The lab's API files in `dir`, made on first use and kept after (so
/// scripts holding a token or the CA keep working across `lab up`).
pub fn prepare(dir: &Path) -> Result<LabApi, LabError> {
    let d = dir.join("api");
    std::fs::create_dir_all(&d).map_err(io("creating", &d))?;
    let api = LabApi {
        url: String::new(),
        ca_file: d.join("ca.pem"),
        tokens: TokenFiles { admin: d.join("admin.token"), viewer: d.join("viewer.token") },
        cert_file: d.join("server.pem"),
        key_file: d.join("server.key"),
        tokens_file: d.join("tokens.yaml"),
        addr_file: d.join("url"),
    };
    if !api.cert_file.exists() || !api.key_file.exists() || !api.ca_file.exists() || !ca_key(&api).exists() {
        certificates(&api)?;
    }
    let revoked = revoked_file(&api);
    if !revoked.exists() {
        std::fs::write(
            &revoked,
            "# One node name or sha256:FINGERPRINT per line; the controller re-reads it on change.\n",
        )
        .map_err(io("writing", &revoked))?;
    }
    if !api.tokens_file.exists() || !api.tokens.admin.exists() || !api.tokens.viewer.exists() {
        let mut entries = Vec::new();
        for (user, role, file) in
            [("lab-admin", Role::Admin, &api.tokens.admin), ("lab-viewer", Role::Viewer, &api.tokens.viewer)]
        {
            let token = tokens::generate().map_err(io("reading /dev/urandom", Path::new("/dev/urandom")))?;
            secret(file, &format!("{token}\n"))?;
            entries.push(TokenEntry { user: user.into(), role, namespaces: None, sha256: tokens::hash(&token) });
        }
        let text = tokens::TokenFile::to_yaml(&entries).map_err(|e| LabError::Invalid(e.to_string()))?;
        secret(&api.tokens_file, &text)?;
    }
    Ok(api)
}

const CA_NAME: &str = "Bulkhead lab CA";

fn ca_key(api: &LabApi) -> PathBuf {
    api.ca_file.with_file_name("ca.key")
}

fn certificates(api: &LabApi) -> Result<(), LabError> {
    let ca = Ca::generate(CA_NAME).map_err(tls_err)?;
    // The API on the host's loopback, and the agents port on the fabric.
    let ips = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V4(CONTROLLER_IP)];
    let server = ca.server("bulkhead-controller", &["localhost".to_string()], &ips).map_err(tls_err)?;
    // Agents signed by an older CA would not verify: start their files over.
    let _ = std::fs::remove_dir_all(agents_dir(api));
    std::fs::write(&api.ca_file, &ca.pem.cert).map_err(io("writing", &api.ca_file))?;
    secret(&ca_key(api), &ca.pem.key)?;
    std::fs::write(&api.cert_file, &server.cert).map_err(io("writing", &api.cert_file))?;
    secret(&api.key_file, &server.key)
}

/// The controller's address on the fabric, where agents dial its agents port.
pub const CONTROLLER_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 254);
/// The agents port's address, as agents dial it.
pub fn agents_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from((CONTROLLER_IP, bulkhead_api::tunnel::AGENTS_PORT))
}

/// A node's agent certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFiles {
    /// The certificate (PEM), naming the node.
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
}

fn agents_dir(api: &LabApi) -> PathBuf {
    api.ca_file.with_file_name("agents")
}

/// The revoked-agents file the lab's controller follows (empty at first).
pub fn revoked_file(api: &LabApi) -> PathBuf {
    api.ca_file.with_file_name("revoked-agents")
}

/// `node`'s agent certificate, signed by the lab's CA when first asked for.
pub fn agent_files(api: &LabApi, node: &str) -> Result<AgentFiles, LabError> {
    let d = agents_dir(api);
    std::fs::create_dir_all(&d).map_err(io("creating", &d))?;
    let files = AgentFiles { cert: d.join(format!("{node}.pem")), key: d.join(format!("{node}.key")) };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let ca = load_ca(api)?;
    let pem = ca.agent(node).map_err(tls_err)?;
    std::fs::write(&files.cert, &pem.cert).map_err(io("writing", &files.cert))?;
    secret(&files.key, &pem.key)?;
    Ok(files)
}

/// The lab's CA, to sign more certificates (a test's stranger is signed by another).
pub fn load_ca(api: &LabApi) -> Result<Ca, LabError> {
    let cert = std::fs::read_to_string(&api.ca_file).map_err(io("reading", &api.ca_file))?;
    let key = std::fs::read_to_string(ca_key(api)).map_err(io("reading", &ca_key(api)))?;
    Ca::from_pem(bulkhead_controller::auth::pki::Pem { cert, key }).map_err(tls_err)
}
