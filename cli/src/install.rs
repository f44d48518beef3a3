//! `bulkhead install` and `bulkhead uninstall`: everything a cluster needs,
//! printed as one YAML stream for `kubectl apply -f -` (Linkerd's pattern),
//! so what is applied can be read, diffed and kept in Git first.

mod agent;
mod cleanup;
mod controller;
mod policies;
mod rbac;
mod render;
mod secrets;

use anyhow::{Result, bail};
use bulkhead_model::Mode;
use clap::Args;
use serde_json::{Value, json};

/// The controller's HTTPS port: API and console.
pub const API_PORT: u16 = 8443;
/// The controller's agents port (mTLS, and enrollment for agents without a certificate).
pub const AGENTS_PORT: u16 = bulkhead_api::tunnel::AGENTS_PORT;
/// The ConfigMap of revoked agents (not printed: created by the operator when needed).
pub const REVOKED_CONFIG_MAP: &str = "bulkhead-revoked-agents";
/// The controller's metrics and health port (plain HTTP, no data beyond counters).
pub const CONTROLLER_METRICS_PORT: u16 = 9090;
/// The agent's metrics and health port, on each node's address (host network).
pub const AGENT_METRICS_PORT: u16 = 9964;
/// The Secret holding the controller's serving certificate (type kubernetes.io/tls).
pub const TLS_SECRET: &str = "bulkhead-controller-tls";
/// The Secret holding the API's tokens file (hashes only).
pub const TOKENS_SECRET: &str = "bulkhead-tokens";
/// The Secret holding the first admin token itself.
pub const ADMIN_TOKEN_SECRET: &str = "bulkhead-admin-token";
/// The Secret holding the generated CA (certificate and key).
pub const CA_SECRET: &str = "bulkhead-ca";

/// `bulkhead install` options.
#[derive(Args, Clone)]
pub struct InstallArgs {
    /// The namespace Bulkhead's own pods run in.
    #[arg(long, default_value = "bulkhead-system")]
    pub namespace: String,
    /// The cluster's name, carried by every pod identity (and by flows between clusters).
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// What pods without a bulkhead.dev/mode annotation get: learn (observe
    /// only), audit (log what would be dropped) or enforce. `learn`, so that
    /// installing never breaks a running cluster.
    #[arg(long, default_value = "learn")]
    pub mode: String,
    /// The image of both the agent and the controller.
    #[arg(long, default_value = concat!("bulkhead:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The image pull policy.
    #[arg(long, default_value = "IfNotPresent", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: String,
    /// Also print Secrets with a new CA, the controller's certificate and a
    /// first admin token. Without it, create the Secrets bulkhead-controller-tls
    /// (kubernetes.io/tls, with ca.crt) and bulkhead-ca (ca.crt and ca.key, the
    /// CA that signs agents) yourself, e.g. with cert-manager, and sign in with
    /// Kubernetes tokens bound to the bulkhead-admin ClusterRole.
    #[arg(long)]
    pub generate_secrets: bool,
    /// Size of the controller's state volume (flows, audit log, numbering).
    #[arg(long, default_value = "10Gi")]
    pub state_size: String,
    /// StorageClass of that volume [default: the cluster's default].
    #[arg(long)]
    pub storage_class: Option<String>,
    /// Keep the controller's state in an emptyDir instead (lost with the pod:
    /// the audit log too). For trials only.
    #[arg(long, conflicts_with_all = ["state_size", "storage_class"])]
    pub ephemeral_state: bool,
    /// The namespace whose pods may scrape the controller's metrics.
    #[arg(long, default_value = "monitoring")]
    pub metrics_namespace: String,
    /// Two controller replicas (a StatefulSet, each with its own state
    /// volume) and leader election on a Lease: the standby takes over
    /// within about 15 s of the leader's last renewal.
    #[arg(long)]
    pub ha: bool,
}

/// `bulkhead uninstall` options.
#[derive(Args, Clone)]
pub struct UninstallArgs {
    /// The namespace Bulkhead was installed in.
    #[arg(long, default_value = "bulkhead-system")]
    pub namespace: String,
    /// Print instead, for `kubectl apply -f -` after the uninstall, the
    /// DaemonSet that detaches Bulkhead's programs from every node.
    #[arg(long)]
    pub node_cleanup: bool,
    /// The image the cleanup runs (the one installed).
    #[arg(long, default_value = concat!("bulkhead:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The cleanup's image pull policy.
    #[arg(long, default_value = "IfNotPresent", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: String,
}

/// The labels every object carries; `component` tells the pieces apart.
pub fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": format!("bulkhead-{component}"),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "bulkhead",
        "app.kubernetes.io/version": env!("CARGO_PKG_VERSION"),
    })
}

/// The labels that select one component's pods (a subset of `labels`, which never changes across versions).
pub fn selector(component: &str) -> Value {
    json!({ "app.kubernetes.io/name": format!("bulkhead-{component}") })
}

/// Metadata of a namespaced object of `component`.
pub fn meta(name: &str, namespace: &str, component: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(component) })
}

fn check(a: &InstallArgs) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if !name_ok(&a.namespace) {
        bail!("--namespace {:?}: expected a DNS label (lowercase letters, digits and '-', at most 63)", a.namespace);
    }
    if !name_ok(&a.metrics_namespace) {
        bail!("--metrics-namespace {:?}: expected a DNS label", a.metrics_namespace);
    }
    if !name_ok(&a.cluster) {
        bail!("--cluster {:?}: expected a DNS label (it names identities)", a.cluster);
    }
    a.mode.parse::<Mode>().map_err(|e: bulkhead_model::CodeError| anyhow::anyhow!("--mode {:?}: {e}", a.mode))?;
    if a.image.is_empty() || a.image.chars().any(char::is_whitespace) {
        bail!("--image {:?}: expected an image reference", a.image);
    }
    if let Some(class) = &a.storage_class
        && !name_ok(class)
    {
        bail!("--storage-class {class:?}: expected a DNS label");
    }
    Ok(())
}

/// Every object of an install, in the order `kubectl apply` should create
/// them: the namespace and CRDs first, workloads last.
pub fn objects(a: &InstallArgs) -> Result<Vec<Value>> {
    check(a)?;
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": a.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "bulkhead",
                // The agent needs host networking and capabilities.
                "pod-security.kubernetes.io/enforce": "privileged",
            },
        },
    })];
    out.extend(rbac::crds()?);
    out.extend(rbac::objects(&a.namespace));
    if a.ha {
        out.extend(rbac::leader_election(&a.namespace));
    }
    if a.generate_secrets {
        out.extend(secrets::objects(&a.namespace)?);
    }
    out.extend(policies::objects(a));
    out.extend(controller::objects(a));
    out.push(agent::daemon_set(a));
    Ok(out)
}

/// The install as a YAML stream, with the reasons for the agent's
/// privileges written beside them.
pub fn install(a: &InstallArgs) -> Result<String> {
    let objects = objects(a)?;
    let mut out = format!(
        "# Bulkhead {} — generated by `bulkhead install`; apply with `kubectl apply -f -`.\n",
        env!("CARGO_PKG_VERSION")
    );
    for o in &objects {
        out.push_str("---\n");
        out.push_str(&render::yaml(o, &agent::REASONS)?);
    }
    if a.generate_secrets {
        eprintln!(
            "bulkhead install: the first admin token is in Secret {ADMIN_TOKEN_SECRET}; read it with\n  kubectl -n {} get secret {ADMIN_TOKEN_SECRET} -o jsonpath='{{.data.token}}' | base64 -d",
            a.namespace
        );
    }
    Ok(out)
}

/// What removes Bulkhead, for `kubectl delete -f -`, in the order that keeps
/// pods protected longest: the controller goes first (agents keep enforcing
/// the last state), then the agents, then everything else. Programs stay
/// attached on the nodes until `bulkhead node-cleanup` runs there
/// (`--node-cleanup` prints the DaemonSet that runs it everywhere).
pub fn uninstall(a: &UninstallArgs) -> Result<String> {
    if a.node_cleanup {
        let mut out = String::from(
            "# Detaches Bulkhead from every node: `bulkhead uninstall --node-cleanup | kubectl apply -f -`,\n# then `kubectl -n bulkhead-cleanup rollout status daemonset/bulkhead-node-cleanup`\n# and `kubectl delete namespace bulkhead-cleanup`.\n",
        );
        for o in cleanup::objects(&a.image, &a.image_pull_policy) {
            out.push_str("---\n");
            out.push_str(&render::yaml(&o, &[])?);
        }
        return Ok(out);
    }
    let full = InstallArgs {
        namespace: a.namespace.clone(),
        cluster: "default".into(),
        mode: "learn".into(),
        image: "bulkhead".into(),
        image_pull_policy: "IfNotPresent".into(),
        generate_secrets: true,
        state_size: "1Gi".into(),
        storage_class: None,
        ephemeral_state: false,
        metrics_namespace: "monitoring".into(),
        ha: false,
    };
    if a.image.is_empty() {
        bail!("--image: expected an image reference");
    }
    // Whichever way it was installed: one replica or two.
    let mut objects = objects(&full)?;
    for o in self::objects(&InstallArgs { ha: true, ..full })? {
        if !objects.iter().any(|k| k["kind"] == o["kind"] && k["metadata"]["name"] == o["metadata"]["name"]) {
            objects.push(o);
        }
    }
    let rank = |o: &Value| match o["kind"].as_str() {
        Some("Deployment" | "StatefulSet") => 0,
        Some("DaemonSet") => 1,
        Some("CustomResourceDefinition") => 3,
        Some("Namespace") => 4,
        _ => 2,
    };
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| rank(o));
    let mut out = String::from(
        "# Removes Bulkhead: `bulkhead uninstall | kubectl delete --ignore-not-found -f -`.\n# Deleting the CRDs deletes every BulkheadClusterPolicy and Quarantine (sig-network's ClusterNetworkPolicies stay).\n",
    );
    for o in ordered {
        let reference = json!({
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "metadata": o["metadata"].get("namespace").map_or_else(
                || json!({ "name": o["metadata"]["name"] }),
                |ns| json!({ "name": o["metadata"]["name"], "namespace": ns }),
            ),
        });
        out.push_str("---\n");
        out.push_str(&render::yaml(&reference, &[])?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
