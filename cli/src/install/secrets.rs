//! `--generate-secrets`: a new CA, the controller's serving certificate for
//! every name its Services answer to, and a first admin token, of which the
//! controller's tokens file keeps only the hash.

use anyhow::{Context, Result};
use bulkhead_controller::auth::pki::Ca;
use bulkhead_controller::auth::tokens::{self, TokenEntry, TokenFile};
use bulkhead_model::Role;
use serde_json::{Value, json};

use super::{ADMIN_TOKEN_SECRET, CA_SECRET, TLS_SECRET, TOKENS_SECRET, meta};

/// The names the controller's certificate covers.
pub fn dns_names(namespace: &str) -> Vec<String> {
    let mut out = vec!["localhost".to_string()];
    for service in ["bulkhead-controller", "bulkhead-console"] {
        out.push(service.to_string());
        out.push(format!("{service}.{namespace}"));
        out.push(format!("{service}.{namespace}.svc"));
        out.push(format!("{service}.{namespace}.svc.cluster.local"));
    }
    out
}

/// The four Secrets.
pub fn objects(namespace: &str) -> Result<Vec<Value>> {
    let ca = Ca::generate("Bulkhead CA")?;
    let ips = ["127.0.0.1".parse().context("loopback")?, "::1".parse().context("loopback")?];
    let server = ca.server("bulkhead-controller", &dns_names(namespace), &ips)?;
    let token = tokens::generate().context("reading /dev/urandom for the admin token")?;
    let entry = TokenEntry { user: "admin".into(), role: Role::Admin, namespaces: None, sha256: tokens::hash(&token) };
    let tokens_yaml = TokenFile::to_yaml(&[entry]).context("writing the tokens file")?;
    let secret = |name: &str, kind: &str, data: Value| json!({ "apiVersion": "v1", "kind": "Secret", "metadata": meta(name, namespace, "controller"), "type": kind, "stringData": data });
    Ok(vec![
        secret(CA_SECRET, "Opaque", json!({ "ca.crt": ca.pem.cert, "ca.key": ca.pem.key })),
        secret(
            TLS_SECRET,
            "kubernetes.io/tls",
            json!({ "tls.crt": server.cert, "tls.key": server.key, "ca.crt": ca.pem.cert }),
        ),
        secret(TOKENS_SECRET, "Opaque", json!({ "tokens.yaml": tokens_yaml })),
        secret(ADMIN_TOKEN_SECRET, "Opaque", json!({ "token": token, "user": "admin" })),
    ])
}
