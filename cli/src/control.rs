//! Commands that talk to the controller: `controller`, `apply`, `delete`,
//! `policy explain` and `status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_api::controller::v1 as pb;
use clap::Args;

/// Where the controller's API socket is.
#[derive(Args, Clone)]
pub struct Target {
    /// The controller's API socket [default: the lab's, else /run/bulkhead/controller.sock].
    #[arg(long, env = "BULKHEAD_CONTROLLER", global = true)]
    pub socket: Option<PathBuf>,
    /// Lab whose controller to use when --socket is not given.
    #[arg(long, default_value = "lab", global = true)]
    pub lab: String,
}

impl Target {
    fn socket(&self) -> PathBuf {
        if let Some(s) = &self.socket {
            return s.clone();
        }
        let lab = bulkhead_lab::state::dir(&self.lab).join("controller.sock");
        if lab.exists() { lab } else { PathBuf::from("/run/bulkhead/controller.sock") }
    }

    pub async fn client(&self) -> Result<pb::controller_client::ControllerClient<tonic::transport::Channel>> {
        let socket = self.socket();
        bulkhead_api::connect_controller(&socket)
            .await
            .with_context(|| format!("is the controller running? (socket {})", socket.display()))
    }
}

/// `bulkhead controller` options.
#[derive(Args)]
pub struct ControllerArgs {
    /// Cluster name carried by every pod identity.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Manifest files or directories read at start (Namespace, Pod, Node,
    /// Service, EndpointSlice, NetworkPolicy, ClusterNetworkPolicy).
    #[arg(short = 'f', long = "manifests")]
    manifests: Vec<PathBuf>,
    /// An agent: NODE=SOCKET. Repeat for every node.
    #[arg(long = "agent", value_parser = parse_agent)]
    agents: Vec<(String, PathBuf)>,
    /// Mode of pods without a bulkhead.dev/mode annotation: learn, audit or enforce.
    #[arg(long, default_value = "enforce")]
    mode: String,
    /// Objects, numbering and audit log.
    #[arg(long, default_value = "/var/lib/bulkhead/controller")]
    state_dir: PathBuf,
    /// The API socket (root-only).
    #[arg(long, default_value = "/run/bulkhead/controller.sock")]
    socket: PathBuf,
    /// Also watch the Kubernetes API (in-cluster service account, or KUBECONFIG):
    /// Namespaces, Nodes, Pods, Services, EndpointSlices, NetworkPolicies and
    /// ClusterNetworkPolicies.
    #[arg(long)]
    kubernetes: bool,
    /// Serve Prometheus metrics (`bulkhead_controller_*`) on this address.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Raw flows kept in the flow store (state dir flows.db); the oldest are
    /// evicted first and counted.
    #[arg(long, default_value_t = 1_000_000)]
    max_flows: u64,
    /// Each workload learns its baseline for at least this many seconds...
    #[arg(long, default_value_t = 3600)]
    learn_window: u64,
    /// ...and is stable once no new edge appeared for this many seconds.
    #[arg(long, default_value_t = 600)]
    learn_quiet: u64,
    /// Run in this network namespace (the lab's fabric); entered before anything starts.
    #[arg(long)]
    pub netns: Option<PathBuf>,
}

fn parse_agent(s: &str) -> Result<(String, PathBuf), String> {
    let (node, path) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NODE=SOCKET"))?;
    if node.is_empty() || path.is_empty() {
        return Err(format!("{s:?}: expected NODE=SOCKET"));
    }
    Ok((node.to_string(), PathBuf::from(path)))
}

/// Runs the controller.
pub async fn controller(a: ControllerArgs) -> Result<()> {
    let mode = a.mode.parse().map_err(|e: bulkhead_model::CodeError| anyhow::anyhow!("--mode: {e}"))?;
    let agents: BTreeMap<String, PathBuf> = a.agents.into_iter().collect();
    if agents.is_empty() {
        tracing::warn!("no --agent given: the controller compiles but pushes to nobody");
    }
    let cfg = bulkhead_controller::Config {
        cluster: a.cluster,
        state_dir: a.state_dir,
        socket: a.socket,
        mode,
        agents,
        manifests: a.manifests,
        kubernetes: a.kubernetes,
        metrics_addr: a.metrics_addr,
        max_flows: a.max_flows,
        learning: bulkhead_graph::baseline::LearningConfig {
            window_ns: (a.learn_window as i64).saturating_mul(1_000_000_000),
            quiet_ns: (a.learn_quiet as i64).saturating_mul(1_000_000_000),
            evidence_per_anomaly: 10,
        },
    };
    bulkhead_controller::run::run(cfg).await?;
    Ok(())
}

fn read_inputs(files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for f in files {
        if f == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
            out.push(("stdin".to_string(), s));
        } else {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            out.push((f.display().to_string(), text));
        }
    }
    Ok(out)
}

/// Waits until every node enforces `generation`, reporting progress.
async fn wait_enforced(target: &Target, generation: u64, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut client = target.client().await?;
    loop {
        let s = client.status(pb::StatusRequest {}).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
        let behind: Vec<&pb::NodeSync> = s.nodes.iter().filter(|n| n.applied_generation < generation).collect();
        if behind.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            let list: Vec<String> = behind
                .iter()
                .map(|n| {
                    format!(
                        "{} (at {}{}{})",
                        n.node,
                        n.applied_generation,
                        if n.error.is_empty() { "" } else { ": " },
                        n.error
                    )
                })
                .collect();
            bail!("generation {generation} not enforced after {timeout:?} on: {}", list.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `apply -f` and `delete -f`: all files go as one all-or-nothing request each.
pub async fn change(target: &Target, files: &[PathBuf], delete: bool, wait: bool) -> Result<()> {
    let mut client = target.client().await?;
    let mut last = 0;
    for (source, yaml) in read_inputs(files)? {
        let req = pb::ChangeRequest { yaml, source: source.clone(), actor: crate::actor() };
        let r = if delete { client.delete(req).await } else { client.apply(req).await }
            .map_err(|s| anyhow::anyhow!("{source}: {}", s.message()))?
            .into_inner();
        let verb = if delete { "deleted" } else { "configured" };
        for c in &r.changed {
            println!("{c} {verb}");
        }
        for c in &r.unchanged {
            println!("{c} unchanged");
        }
        for c in &r.skipped {
            println!("{source}: skipped {c} (not a kind the controller uses)");
        }
        last = r.generation;
        if !r.changed.is_empty() {
            eprintln!("generation {} compiled in {} ms", r.generation, r.compile_micros / 1000);
        }
    }
    if wait && last > 0 {
        let took = wait_enforced(target, last, Duration::from_secs(60)).await?;
        eprintln!("enforced on every node after {} ms", took.as_millis());
    }
    Ok(())
}

/// `policy explain FROM TO:PORT[/PROTO]`.
pub async fn explain(target: &Target, from: &str, to: &str, json: bool) -> Result<()> {
    let bracketed = to.strip_prefix('[').and_then(|r| r.split_once(']'));
    let (dest, port, protocol) = match (to.parse::<std::net::IpAddr>(), bracketed) {
        // A bare IPv6 address has colons but no port.
        (Ok(_), _) => (to.to_string(), 0, "ICMP".to_string()),
        (_, Some((addr, rest))) => match rest.strip_prefix(':') {
            Some(rest) => {
                let (p, proto) = rest.split_once('/').unwrap_or((rest, "TCP"));
                let port: u32 = p.parse().with_context(|| format!("{to:?}: port {p:?} is not a number"))?;
                (addr.to_string(), port, proto.to_ascii_uppercase())
            }
            None => (addr.to_string(), 0, "ICMP".to_string()),
        },
        _ => match to.rsplit_once(':') {
            Some((d, rest)) => {
                let (p, proto) = rest.split_once('/').unwrap_or((rest, "TCP"));
                let port: u32 = p.parse().with_context(|| format!("{to:?}: port {p:?} is not a number"))?;
                (d.to_string(), port, proto.to_ascii_uppercase())
            }
            None => (to.to_string(), 0, "ICMP".to_string()),
        },
    };
    let mut client = target.client().await?;
    let r = client
        .explain(pb::ExplainRequest { from: from.into(), to: dest, port, protocol: protocol.clone() })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    if json {
        let v = serde_json::json!({
            "allowed": r.allowed, "from": r.from_address, "to": r.to_address, "port": port, "protocol": protocol,
            "egress": {"allowed": r.egress_allowed, "decided_by": r.egress},
            "ingress": {"allowed": r.ingress_allowed, "decided_by": r.ingress},
        });
        println!("{v}");
        return Ok(());
    }
    let verdict = |a: bool| if a { "ALLOWED" } else { "DENIED" };
    println!("{from} ({}) -> {to} ({}): {}", r.from_address, r.to_address, verdict(r.allowed));
    if !r.egress.is_empty() {
        println!("  egress of the source:       {} by {}", verdict(r.egress_allowed), r.egress);
    }
    if !r.ingress.is_empty() {
        println!("  ingress of the destination: {} by {}", verdict(r.ingress_allowed), r.ingress);
    }
    Ok(())
}

/// `bulkhead status`.
pub async fn status(target: &Target, json: bool) -> Result<()> {
    let mut client = target.client().await?;
    let s = client.status(pb::StatusRequest {}).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
    if json {
        let nodes: Vec<_> = s
            .nodes
            .iter()
            .map(|n| serde_json::json!({"node": n.node, "applied_generation": n.applied_generation, "in_sync": n.applied_generation == s.generation && n.error.is_empty(), "error": n.error, "endpoints": n.endpoints, "policy_entries": n.policy_entries}))
            .collect();
        let flows: serde_json::Value = serde_json::from_str(&s.flows_json).unwrap_or(serde_json::Value::Null);
        let v = serde_json::json!({"generation": s.generation, "pods": s.pods, "network_policies": s.network_policies, "cluster_policies": s.cluster_policies, "identities": s.identities, "policy_entries": s.policy_entries, "last_error": s.last_error, "nodes": nodes, "flows": flows});
        println!("{v}");
        return Ok(());
    }
    println!(
        "generation {}: {} pods, {} NetworkPolicies, {} ClusterNetworkPolicies, {} identities, {} entries",
        s.generation, s.pods, s.network_policies, s.cluster_policies, s.identities, s.policy_entries
    );
    if !s.last_error.is_empty() {
        println!("last rejected change: {}", s.last_error);
    }
    if let Ok(f) = serde_json::from_str::<serde_json::Value>(&s.flows_json) {
        let n = |k: &str| f[k].as_u64().unwrap_or(0);
        let lost: u64 = f["lost"].as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0);
        let stages: Vec<String> =
            f["lost"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect()).unwrap_or_default();
        println!(
            "flows: received {}, connections {}, stored {}, evicted {}, lost {lost}{}, anomalies {}",
            n("received"),
            n("records"),
            n("stored"),
            n("evicted"),
            if stages.is_empty() { String::new() } else { format!(" ({})", stages.join(", ")) },
            n("anomalies"),
        );
    }
    for n in &s.nodes {
        let state = if n.applied_generation == s.generation && n.error.is_empty() { "in sync" } else { "BEHIND" };
        println!(
            "  {:<20} {:<8} generation {} endpoints {} entries {} {}",
            n.node, state, n.applied_generation, n.endpoints, n.policy_entries, n.error
        );
    }
    Ok(())
}
