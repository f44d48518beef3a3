//! The closed loop from the command line: stored and live flows, the
//! service graph, baselines and anomalies, suggestions and their review.
//! Every command prints a readable table by default, and the API's document
//! with `-o json` or `-o yaml`.

use anyhow::{Result, bail};
use bulkhead_api::v1::baselines::AnomalyQuery;
use bulkhead_api::v1::flows::{Flow, FlowQuery, Peer, PeerKind, Side, StreamEvent};
use bulkhead_api::v1::graph::{GraphDiffQuery, GraphNode, GraphQuery, Level};
use bulkhead_api::v1::review::{ApplyRequest, DecisionRequest, ExportQuery, PolicyList, ReviewQuery, SuggestRequest};
use bulkhead_model::{Mode, Verdict};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use serde::Serialize;

use crate::client::{Target, all_pages};

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable.
    Human,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `v` as JSON or YAML; false for human output (the caller prints).
pub fn print_doc<T: Serialize>(v: &T, output: Output) -> Result<bool> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(v)?),
        Output::Human => return Ok(false),
    }
    Ok(true)
}

/// "HH:MM:SS" of nanoseconds since the epoch.
pub fn time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map(|t| t.strftime("%H:%M:%S").to_string()).unwrap_or_default()
}

/// One end of a flow, readable.
pub fn peer(p: &Peer) -> String {
    let ns = p.namespace.as_deref().unwrap_or("");
    let name = p.name.as_deref().unwrap_or("");
    match p.kind {
        PeerKind::Workload => match &p.pod {
            Some(pod) => format!("{ns}/{pod}"),
            None => format!("{ns}/{name}"),
        },
        PeerKind::Service => format!("svc:{ns}/{name}"),
        PeerKind::World => format!("world:{}", p.ip.as_deref().unwrap_or("")),
        PeerKind::Host => format!("host:{name}"),
        PeerKind::Namespace => format!("ns:{ns}"),
    }
}

/// A graph node, readable: `namespace/name`, or the name alone.
pub fn node(n: &GraphNode) -> String {
    match &n.namespace {
        Some(ns) if n.kind != bulkhead_api::v1::graph::NodeKind::Namespace => format!("{ns}/{}", n.name),
        _ => n.name.clone(),
    }
}

/// `bulkhead graph`.
pub async fn graph(target: &Target, g: GraphArgs, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    if let Some(from) = g.blast_radius {
        let r = c.blast_radius(from).await?;
        if print_doc(&r, output)? {
            return Ok(());
        }
        println!("{} can reach {} entities under the policies in force:", node(&r.from), r.reachable.len());
        for n in &r.reachable {
            println!("  {}", node(n));
        }
        return Ok(());
    }
    if let Some(before) = g.diff_since.clone() {
        let until = g.diff_until.clone().ok_or_else(|| anyhow::anyhow!("--diff-since needs --diff-until"))?;
        let level = g.level();
        let d = c
            .graph_diff(GraphDiffQuery {
                level: Some(level),
                namespace: g.namespace,
                since: before,
                until,
                then_until: None,
            })
            .await?;
        if print_doc(&d, output)? {
            return Ok(());
        }
        let name = |id: &str| d.nodes.iter().find(|n| n.id == id).map(node).unwrap_or_else(|| id.to_string());
        for (what, edges) in [("NEW", &d.new), ("VANISHED", &d.vanished)] {
            for e in edges {
                println!(
                    "{what:<9} {} -> {} {}/{} ({} connections)",
                    name(&e.source),
                    name(&e.destination),
                    e.protocol,
                    e.port,
                    e.connections
                );
            }
        }
        return Ok(());
    }
    let q = GraphQuery { level: Some(g.level()), namespace: g.namespace, since: g.since, until: g.until };
    let graph = c.graph(q).await?;
    if print_doc(&graph, output)? {
        return Ok(());
    }
    let name = |id: &str| graph.nodes.iter().find(|n| n.id == id).map(node).unwrap_or_else(|| id.to_string());
    println!("{} nodes, {} edges", graph.nodes.len(), graph.edges.len());
    println!("{:<34} {:<34} {:<10} {:>7} {:>7} {:>7} {:>7}", "FROM", "TO", "PORT", "CONNS", "FWD", "DROP", "AUDIT");
    for e in &graph.edges {
        let via = e.service.as_ref().map(|s| format!(" via {s}")).unwrap_or_default();
        println!(
            "{:<34} {:<34} {:<10} {:>7} {:>7} {:>7} {:>7}{via}",
            name(&e.source),
            name(&e.destination),
            format!("{}/{}", e.protocol, e.port),
            e.connections,
            e.forwarded,
            e.dropped,
            e.audit,
        );
    }
    Ok(())
}

/// Options of `bulkhead graph`.
#[derive(Args, Debug, Clone)]
pub struct GraphArgs {
    /// namespace, workload or pod.
    #[arg(long, value_enum, default_value = "workload")]
    pub level: LevelArg,
    /// Only edges touching this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// From (RFC 3339 or a duration ago: 15m, 2h).
    #[arg(long)]
    pub since: Option<String>,
    /// To.
    #[arg(long)]
    pub until: Option<String>,
    /// Instead: everything this workload ("namespace/name") can reach,
    /// directly or transitively, under the policies in force.
    #[arg(long)]
    pub blast_radius: Option<String>,
    /// Instead: edges new since the window --diff-since..--diff-until, and vanished ones.
    #[arg(long)]
    pub diff_since: Option<String>,
    /// End of the first window of --diff-since.
    #[arg(long)]
    pub diff_until: Option<String>,
}

/// A graph level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    /// Namespaces.
    Namespace,
    /// Workloads.
    Workload,
    /// Pods.
    Pod,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::Namespace => Level::Namespace,
            LevelArg::Workload => Level::Workload,
            LevelArg::Pod => Level::Pod,
        }
    }
}

impl GraphArgs {
    fn level(&self) -> Level {
        self.level.into()
    }
}

/// `bulkhead baseline`: learning progress and anomalies.
pub async fn baseline(target: &Target, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let b = c.baselines().await?;
    let anomalies = c.anomalies(AnomalyQuery { limit: Some(1000), ..Default::default() }).await?.items;
    #[derive(Serialize)]
    struct Doc<'a> {
        #[serde(flatten)]
        baselines: &'a bulkhead_api::v1::baselines::Baselines,
        anomalies: &'a [bulkhead_api::v1::baselines::Anomaly],
    }
    if print_doc(&Doc { baselines: &b, anomalies: &anomalies }, output)? {
        return Ok(());
    }
    let stable = b.workloads.iter().filter(|w| w.phase == bulkhead_api::v1::baselines::Phase::Stable).count();
    println!(
        "{stable}/{} workloads stable (learning window {} s, quiet period {} s)",
        b.workloads.len(),
        b.window_seconds,
        b.quiet_seconds
    );
    for w in &b.workloads {
        let name = format!("{}/{}", w.workload.namespace, w.workload.name);
        println!("  {name:<40} {:<9} {:>4} edges", format!("{:?}", w.phase).to_lowercase(), w.edges);
    }
    println!("{} anomalies", anomalies.len());
    for a in &anomalies {
        if let Some(s) = &a.scan {
            println!(
                "  #{:<4} {:<10} {} ({}) tried {} ports on {} hosts: {} attempts ({} dropped), first {}; ports {:?}",
                a.id,
                a.kind,
                peer(&a.source),
                s.source_ip,
                s.ports,
                s.hosts,
                a.connections,
                a.dropped,
                time(a.first_seen_ns),
                s.sample_ports,
            );
            continue;
        }
        println!(
            "  #{:<4} {:<10} {}/{} {:<8} {} -> {} {}/{}: {} connections ({} dropped), first {}",
            a.id,
            a.kind,
            a.workload.namespace,
            a.workload.name,
            a.side,
            peer(&a.source),
            peer(&a.destination),
            a.protocol,
            a.port,
            a.connections,
            a.dropped,
            time(a.first_seen_ns),
        );
    }
    Ok(())
}

/// Filters of `bulkhead flows`.
#[derive(Args, Debug, Default, Clone)]
pub struct FlowFilters {
    /// An end in this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// An end is this pod ("ns/name" or name).
    #[arg(long)]
    pub pod: Option<String>,
    /// An end belongs to this workload ("ns/name" or name).
    #[arg(long)]
    pub workload: Option<String>,
    /// Which end --namespace, --pod and --workload apply to: either, source or destination.
    #[arg(long)]
    pub side: Option<String>,
    /// forwarded, dropped or audit.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// TCP, UDP, SCTP, ICMP.
    #[arg(long)]
    pub protocol: Option<String>,
    /// The rule that decided (e.g. shop/web#ingress[0]).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only flows newer than this (30s, 5m, 2h, or an RFC 3339 time).
    #[arg(long)]
    pub since: Option<String>,
    /// Only flows older than this.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
}

impl FlowFilters {
    fn query(&self) -> Result<FlowQuery> {
        let verdict = self
            .verdict
            .as_deref()
            .map(str::parse::<Verdict>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--verdict: {e}"))?;
        let side = match self.side.as_deref() {
            None => None,
            Some("either") => Some(Side::Either),
            Some("source") => Some(Side::Source),
            Some("destination") => Some(Side::Destination),
            Some(other) => bail!("--side {other:?}: expected either, source or destination"),
        };
        let now = now_ns();
        for (flag, v) in [("--since", &self.since), ("--until", &self.until)] {
            if let Some(v) = v {
                bulkhead_api::v1::time::parse(v, now).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
            }
        }
        Ok(FlowQuery {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            workload: self.workload.clone(),
            side,
            verdict,
            port: self.port,
            protocol: self.protocol.clone(),
            rule: self.rule.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            limit: None,
            cursor: None,
        })
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn flow_line(f: &Flow) -> String {
    let why = match (&f.rule, &f.drop_reason) {
        (Some(r), _) => format!("rule {r}"),
        (None, Some(d)) => d.to_string(),
        _ => String::new(),
    };
    format!(
        "{} {:<8} {:<9} {} -> {}:{} {} {} {}",
        time(f.time_ns),
        f.node,
        f.verdict.as_str().to_uppercase(),
        peer(&f.source),
        peer(&f.destination),
        f.dst_port,
        f.protocol,
        f.observation,
        why
    )
}

/// `bulkhead flows`: stored flows, the newest `--limit` of them, oldest first.
pub async fn stored_flows(target: &Target, f: FlowFilters, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let mut q = f.query()?;
    let want = f.limit as usize;
    let mut all: Vec<Flow> = Vec::new();
    loop {
        q.limit = Some((want - all.len()).min(bulkhead_api::v1::MAX_PAGE) as u32);
        let page = c.flows(q.clone()).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) if all.len() < want => q.cursor = Some(next),
            _ => break,
        }
    }
    all.reverse();
    if print_doc(&all, output)? {
        return Ok(());
    }
    for f in &all {
        println!("{}", flow_line(f));
    }
    Ok(())
}

/// `bulkhead flows --follow`: the controller's live stream.
pub async fn follow(target: &Target, f: FlowFilters, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let mut stream = c.stream(f.query()?).await?;
    while let Some(e) = stream.next().await {
        match e? {
            StreamEvent::Flow(flow) => match output {
                Output::Human => println!("{}", flow_line(&flow)),
                _ => println!("{}", serde_json::to_string(&flow)?),
            },
            StreamEvent::Lost(l) => {
                eprintln!("lost {} flows (this client was too slow; {} since it connected)", l.lost, l.total)
            }
        }
    }
    Ok(())
}

/// `bulkhead suggest`: records suggestions for review; `-o yaml|json`
/// prints the policies themselves as a Kubernetes List for `kubectl apply -f`.
pub async fn suggest(target: &Target, namespace: Option<String>, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let records = c.suggest(SuggestRequest { namespace }).await?;
    let list = PolicyList::new(records.iter().filter(|r| r.policy.spec.is_some()).map(|r| r.policy.clone()).collect());
    if print_doc(&list, output)? {
        return Ok(());
    }
    for r in &records {
        println!(
            "# suggestion {} ({}{}) for {}/{}: {} rules",
            r.id,
            format!("{:?}", r.status).to_lowercase(),
            if r.stable { "" } else { ", baseline still learning" },
            r.workload.namespace,
            r.workload.name,
            r.rules.len(),
        );
        for w in &r.warnings {
            println!("# warning: {w}");
        }
        println!("---\n{}", serde_yaml::to_string(&r.policy)?);
    }
    Ok(())
}

/// What `bulkhead review` does.
#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// Every suggestion and its status.
    List,
    /// The suggested NetworkPolicies themselves, as a Kubernetes List (YAML
    /// unless -o json): every one but rejected and superseded ones.
    Export {
        /// Only workloads of this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// One suggestion: policy, evidence, diff, what-if, would-drops in audit, history.
    Show {
        /// Suggestion id.
        id: u64,
    },
    /// Approve a pending suggestion.
    Approve {
        /// Suggestion id.
        id: u64,
        /// Why (kept with the review).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject a pending or approved suggestion.
    Reject {
        /// Suggestion id.
        id: u64,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Apply an approved suggestion: first --mode audit, then --mode enforce.
    Apply {
        /// Suggestion id.
        id: u64,
        /// audit or enforce.
        #[arg(long)]
        mode: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// `bulkhead review ...`.
pub async fn review(target: &Target, cmd: ReviewCommand, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let record = match cmd {
        ReviewCommand::List => {
            let mut all = all_pages!(c.reviews(ReviewQuery { limit: Some(1000), ..Default::default() }));
            all.reverse();
            if print_doc(&all, output)? {
                return Ok(());
            }
            println!("{:<5} {:<10} {:<40} {:>5} {:>8}", "ID", "STATUS", "WORKLOAD", "RULES", "WARNINGS");
            for r in &all {
                let w = format!("{}/{}", r.workload.namespace, r.workload.name);
                println!(
                    "{:<5} {:<10} {w:<40} {:>5} {:>8}",
                    r.id,
                    format!("{:?}", r.status).to_lowercase(),
                    r.rules.len(),
                    r.warnings.len()
                );
            }
            return Ok(());
        }
        ReviewCommand::Export { namespace } => {
            let list = c.export(ExportQuery { namespace, status: None }).await?;
            let output = if output == Output::Human { Output::Yaml } else { output };
            print_doc(&list, output)?;
            return Ok(());
        }
        ReviewCommand::Show { id } => {
            let d = c.review(id).await?;
            if !print_doc(&d, output)? {
                crate::review_show::print(&d);
            }
            return Ok(());
        }
        ReviewCommand::Approve { id, reason } => c.decide(id, true, DecisionRequest { reason }).await?,
        ReviewCommand::Reject { id, reason } => c.decide(id, false, DecisionRequest { reason }).await?,
        ReviewCommand::Apply { id, mode, reason } => {
            let mode: Mode = mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
            let record = c.apply_review(id, ApplyRequest { mode, reason }).await?;
            // Answers once every node enforces it, as `apply` does: a probe
            // right after sees the new mode.
            let generation = c.status().await?.generation;
            let took = crate::control::wait_enforced(target, generation, std::time::Duration::from_secs(60)).await?;
            eprintln!("enforced on every node after {} ms", took.as_millis());
            record
        }
    };
    if !print_doc(&record, output)? {
        println!("suggestion {} is now {}", record.id, format!("{:?}", record.status).to_lowercase());
    }
    Ok(())
}
