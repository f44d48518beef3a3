//! Commands that run or talk to the controller: `controller`, `apply`,
//! `delete`, `policy explain` and `status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_api::v1::policies::{ChangeRequest, ExplainQuery};
use clap::Args;

use crate::client::Target;

/// `bulkhead controller` options.
#[derive(Args)]
pub struct ControllerArgs {
    /// Cluster name carried by every pod identity.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Manifest files or directories read at start (Namespace, Pod, Node,
    /// Service, EndpointSlice, NetworkPolicy, ClusterNetworkPolicy, BulkheadClusterPolicy).
    #[arg(short = 'f', long = "manifests")]
    manifests: Vec<PathBuf>,
    /// An agent on this host: NODE=SOCKET (repeatable). Agents on the
    /// network need none: they register on --agent-listen.
    #[arg(long = "agent", value_parser = parse_agent)]
    agents: Vec<(String, PathBuf)>,
    /// Serve the agents port here: agents dial it with mTLS and register
    /// (the node comes from their certificate).
    #[arg(long, value_name = "ADDR", requires_all = ["agent_tls_ca", "agent_tls_cert", "agent_tls_key"])]
    agent_listen: Option<std::net::SocketAddr>,
    /// Bulkhead's CA (PEM): agent certificates must chain to it.
    #[arg(long, value_name = "FILE", requires = "agent_listen")]
    agent_tls_ca: Option<PathBuf>,
    /// The controller's certificate for the agents port (PEM).
    #[arg(long, value_name = "FILE", requires = "agent_listen")]
    agent_tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "agent_listen")]
    agent_tls_key: Option<PathBuf>,
    /// Revoked agents: one node name or sha256:FINGERPRINT per line, read
    /// again whenever the file changes (live connections it names are cut).
    #[arg(long, value_name = "FILE", requires = "agent_listen")]
    revoked_agents: Option<PathBuf>,
    /// Let agents without a certificate enroll: the CA's private key (PEM,
    /// the key of --agent-tls-ca), to sign a 24-hour certificate for the
    /// node a TokenReview of the agent's pod-bound token names. Needs
    /// --kubernetes.
    #[arg(long, value_name = "FILE", requires_all = ["agent_listen", "kubernetes"])]
    agent_enroll_ca_key: Option<PathBuf>,
    /// The only ServiceAccount that may enroll agents, as NAMESPACE:NAME.
    #[arg(long, value_name = "NS:NAME", default_value = "bulkhead-system:bulkhead-agent")]
    agent_service_account: String,
    /// The audience agents' tokens must be issued for.
    #[arg(long, value_name = "AUDIENCE", default_value = bulkhead_controller::agents::enroll::AUDIENCE)]
    agent_token_audience: String,
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
    /// Run as one of several replicas: the holder of the Lease --ha-lease
    /// leads (agents, changes); the others serve reads. Needs --kubernetes.
    #[arg(long, requires = "kubernetes")]
    ha: bool,
    /// The namespace of the Lease and of the state ConfigMap (the controller's own).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE", default_value = "bulkhead-system")]
    ha_namespace: String,
    /// This replica's identity in the Lease [default: the host name, a pod's name].
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    ha_identity: Option<String>,
    /// The Lease the replicas compete for.
    #[arg(long, value_name = "NAME", default_value = bulkhead_controller::ha::lease::DEFAULT_LEASE)]
    ha_lease: String,
    /// The ConfigMap the leader keeps its state in.
    #[arg(long, value_name = "NAME", default_value = bulkhead_controller::ha::persist::DEFAULT_STATE)]
    ha_state: String,
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
    /// Scan detection: the sliding window, in seconds...
    #[arg(long, default_value_t = 5)]
    scan_window: u64,
    /// ...in which this many distinct ports of one host make a port scan...
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(2..))]
    scan_ports: u32,
    /// ...or this many distinct hosts a host sweep...
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(2..))]
    scan_hosts: u32,
    /// ...when at least this share of the attempts, in percent, was dropped
    /// by policy (0 in learn mode, where nothing is).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    scan_dropped_percent: u8,
    /// A scan ends after this many seconds without an attempt.
    #[arg(long, default_value_t = 60)]
    scan_quiet: u64,
    /// Distinct ports between two entities kept as edges of their own; every
    /// further port is counted on one scan edge (port 0).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    scan_edge_ports: u32,
    /// Quarantine the source workload of every anomaly of this kind
    /// automatically (port_scan, host_sweep or new_edge; repeatable; none by
    /// default). Audited as the rule `rule:auto-quarantine/KIND`; a person releases it.
    #[arg(long = "auto-quarantine", value_name = "KIND")]
    auto_quarantine: Vec<bulkhead_model::AnomalyKind>,
    /// Post every alert (anomalies, automatic quarantines) to this URL in
    /// Alertmanager's webhook format (repeatable).
    #[arg(long = "alert-webhook", value_name = "URL", value_parser = parse_webhook)]
    alert_webhooks: Vec<String>,
    /// The console's address for the alerts' links (default: the API's URL).
    #[arg(long, value_name = "URL")]
    alert_external_url: Option<String>,

    /// Run in this network namespace (the lab's fabric); entered before anything
    /// starts, after the API's address is bound (so it stays on the host).
    #[arg(long)]
    pub netns: Option<PathBuf>,
    /// Serve the HTTPS API on this address (port 0: any free port; see --api-addr-file).
    #[arg(long)]
    pub api_addr: Option<std::net::SocketAddr>,
    /// The API's certificate chain (PEM).
    #[arg(long, requires = "api_tls_key")]
    api_tls_cert: Option<PathBuf>,
    /// The API's private key (PEM).
    #[arg(long, requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
    /// Serve the API as plain HTTP (loopback addresses only).
    #[arg(long)]
    api_plaintext: bool,
    /// Write the API's URL here once it listens.
    #[arg(long)]
    api_addr_file: Option<PathBuf>,
    /// The API's tokens file (user, role, namespaces and SHA-256 of each token).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Serve the web console's built files from DIR at `/` (default: this
    /// source tree's `ui/dist`, when built).
    #[arg(long, value_name = "DIR")]
    console_dir: Option<PathBuf>,
}

impl ControllerArgs {
    /// The HTTP API's configuration, if asked for.
    pub fn api(&self) -> Option<bulkhead_controller::http::ApiConfig> {
        let addr = self.api_addr?;
        Some(bulkhead_controller::http::ApiConfig {
            addr,
            tls: self.api_tls_cert.clone().zip(self.api_tls_key.clone()),
            plaintext: self.api_plaintext,
            addr_file: self.api_addr_file.clone(),
            tokens: self.tokens_file.clone(),
            console: self.console_dir.clone().or_else(bulkhead_controller::http::console::default_dir),
        })
    }
}

fn seconds(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1_000_000_000)
}

fn parse_webhook(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_string()),
        Ok(u) => Err(format!("{s:?}: expected an http:// or https:// URL with a host, not {}:", u.scheme())),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

fn parse_agent(s: &str) -> Result<(String, PathBuf), String> {
    let (node, path) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NODE=SOCKET"))?;
    if node.is_empty() || path.is_empty() {
        return Err(format!("{s:?}: expected NODE=SOCKET"));
    }
    Ok((node.to_string(), PathBuf::from(path)))
}

/// Runs the controller; `api` is the HTTP API's listener, bound before any namespace was entered.
pub async fn controller(a: ControllerArgs, api: Option<std::net::TcpListener>) -> Result<()> {
    let mode = a.mode.parse().map_err(|e: bulkhead_model::CodeError| anyhow::anyhow!("--mode: {e}"))?;
    let api_cfg = a.api();
    let agents: BTreeMap<String, PathBuf> = a.agents.into_iter().collect();
    if agents.is_empty() && a.agent_listen.is_none() {
        tracing::warn!("neither --agent nor --agent-listen given: the controller compiles but pushes to nobody");
    }
    let enroll = match a.agent_enroll_ca_key {
        Some(ca_key) => {
            let (ns, name) = a
                .agent_service_account
                .split_once(':')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
                .ok_or_else(|| {
                    anyhow::anyhow!("--agent-service-account {:?}: expected NAMESPACE:NAME", a.agent_service_account)
                })?;
            Some(bulkhead_controller::agents::enroll::EnrollConfig {
                ca_key,
                service_account: format!("system:serviceaccount:{ns}:{name}"),
                audience: a.agent_token_audience,
            })
        }
        None => None,
    };
    let agent_listen = match (a.agent_listen, a.agent_tls_ca, a.agent_tls_cert, a.agent_tls_key) {
        (Some(addr), Some(ca), Some(cert), Some(key)) => Some(bulkhead_controller::agents::listen::AgentListen {
            addr,
            ca,
            cert,
            key,
            revoked: a.revoked_agents,
            enroll,
        }),
        _ => None,
    };
    let ha = if a.ha {
        let identity = match a.ha_identity.filter(|i| !i.is_empty()) {
            Some(i) => i,
            None => nix::unistd::gethostname()
                .map_err(|e| anyhow::anyhow!("--ha-identity not given and no host name: {e}"))?
                .to_string_lossy()
                .into_owned(),
        };
        Some(bulkhead_controller::ha::HaConfig {
            namespace: a.ha_namespace,
            lease: a.ha_lease,
            state: a.ha_state,
            identity,
        })
    } else {
        None
    };
    let cfg = bulkhead_controller::Config {
        cluster: a.cluster,
        state_dir: a.state_dir,
        socket: a.socket,
        mode,
        agents,
        agent_listen,
        ha,
        manifests: a.manifests,
        kubernetes: a.kubernetes,
        metrics_addr: a.metrics_addr,
        max_flows: a.max_flows,
        learning: bulkhead_graph::baseline::LearningConfig {
            window_ns: seconds(a.learn_window),
            quiet_ns: seconds(a.learn_quiet),
            evidence_per_anomaly: 10,
            scan: bulkhead_graph::scan::ScanConfig {
                window_ns: seconds(a.scan_window),
                ports: a.scan_ports,
                hosts: a.scan_hosts,
                dropped_percent: a.scan_dropped_percent,
                quiet_ns: seconds(a.scan_quiet),
                edge_ports: a.scan_edge_ports as usize,
                ..Default::default()
            },
        },
        api: api_cfg,
        response: bulkhead_controller::response::ResponseConfig {
            auto_quarantine: a.auto_quarantine.into_iter().collect(),
            webhooks: a.alert_webhooks,
            external_url: a.alert_external_url,
        },
    };
    bulkhead_controller::run::run(cfg, api).await?;
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
pub(crate) async fn wait_enforced(target: &Target, generation: u64, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut client = target.client().await?;
    loop {
        let s = client.status().await?;
        let behind: Vec<_> = s.nodes.iter().filter(|n| n.applied_generation < generation).collect();
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
        let r = client
            .change(delete, ChangeRequest { yaml, source: source.clone() })
            .await
            .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
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
    let port = u16::try_from(port).map_err(|_| anyhow::anyhow!("{to:?}: port {port} is above 65535"))?;
    let r = client
        .explain(ExplainQuery {
            from: from.into(),
            to: dest,
            port: (port != 0).then_some(port),
            protocol: Some(protocol),
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let verdict = |a: bool| if a { "ALLOWED" } else { "DENIED" };
    println!("{from} ({}) -> {to} ({}): {}", r.from_address, r.to_address, verdict(r.allowed));
    if let Some(e) = &r.egress {
        println!("  egress of the source:       {} by {}", verdict(e.allowed), e.decided_by);
    }
    if let Some(i) = &r.ingress {
        println!("  ingress of the destination: {} by {}", verdict(i.allowed), i.decided_by);
    }
    Ok(())
}

/// `bulkhead status`.
pub async fn status(target: &Target, json: bool) -> Result<()> {
    let mut client = target.client().await?;
    let s = client.status().await?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!(
        "cluster {}, generation {}: {} pods, {} NetworkPolicies, {} ClusterNetworkPolicies, {} identities, {} entries, {} quarantines",
        s.cluster,
        s.generation,
        s.pods,
        s.network_policies,
        s.cluster_policies,
        s.identities,
        s.policy_entries,
        s.quarantines_active
    );
    for w in &s.policy_warnings {
        println!("policy warning: {w}");
    }
    if !s.last_error.is_empty() {
        println!("last rejected change: {}", s.last_error);
    }
    let f = &s.flows;
    let stages: Vec<String> = f.lost.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "flows: received {}, connections {}, stored {}, evicted {}, lost {}{}, anomalies {}",
        f.received,
        f.records,
        f.stored,
        f.evicted,
        f.lost_total(),
        if stages.is_empty() { String::new() } else { format!(" ({})", stages.join(", ")) },
        f.anomalies,
    );
    for n in &s.nodes {
        let state = if n.in_sync { "in sync" } else { "BEHIND" };
        println!(
            "  {:<20} {:<8} generation {} endpoints {} entries {} {}",
            n.node, state, n.applied_generation, n.endpoints, n.policy_entries, n.error
        );
    }
    for u in &s.unprotected {
        println!("  NOT PROTECTED {} on {}: {}", u.pod, u.node, u.reason);
    }
    Ok(())
}
