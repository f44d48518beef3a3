//! The closed loop from the command line: the service graph, baselines and
//! anomalies, stored flows, suggestions and their review. Every command
//! prints a readable table by default and the controller's document with
//! `-o json` or `-o yaml`.

use anyhow::{Result, anyhow};
use bulkhead_api::controller::v1 as pb;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::control::Target;

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

fn print_doc(v: &Value, output: Output) -> Result<bool> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(v)?),
        Output::Human => return Ok(false),
    }
    Ok(true)
}

fn doc(d: pb::Document) -> Result<Value> {
    Ok(serde_json::from_str(&d.json)?)
}

fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T> {
    r.map(tonic::Response::into_inner).map_err(|s| anyhow!("{}", s.message()))
}

/// "ns/Kind/name", a CIDR, "node n1", "service ns/name".
pub fn entity(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "workload" => format!("{}/{}", s("namespace"), s("name")),
        "service" => format!("svc:{}/{}", s("namespace"), s("name")),
        "world" => format!("world:{}", s("cidr")),
        "host" => format!("host:{}", s("node")),
        _ => v.to_string(),
    }
}

fn proto(n: u64) -> String {
    match n {
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        1 => "ICMP".into(),
        other => other.to_string(),
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map(|t| t.strftime("%H:%M:%S").to_string()).unwrap_or_default()
}

/// `bulkhead graph`.
pub async fn graph(target: &Target, namespace: Option<String>, blast: Option<String>, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let req = pb::GraphRequest {
        namespace: namespace.unwrap_or_default(),
        blast_radius_from: blast.clone().unwrap_or_default(),
    };
    let v = doc(rpc(c.graph(req).await)?)?;
    if print_doc(&v, output)? {
        return Ok(());
    }
    if blast.is_some() {
        let reach = v["reachable"].as_array().cloned().unwrap_or_default();
        println!("{} can reach {} entities under the policies in force:", entity(&v["from"]), reach.len());
        for e in &reach {
            println!("  {}", entity(e));
        }
        return Ok(());
    }
    let edges = v["edges"].as_array().cloned().unwrap_or_default();
    println!("{} entities, {} edges", v["nodes"].as_array().map_or(0, Vec::len), edges.len());
    println!("{:<34} {:<34} {:<10} {:>7} {:>7} {:>7} {:>7}", "FROM", "TO", "PORT", "CONNS", "FWD", "DROP", "AUDIT");
    for e in &edges {
        let via = e["service"]
            .as_object()
            .map(|s| format!(" via {}:{}", s["name"].as_str().unwrap_or(""), s["port"]))
            .unwrap_or_default();
        println!(
            "{:<34} {:<34} {:<10} {:>7} {:>7} {:>7} {:>7}{via}",
            entity(&e["src"]),
            entity(&e["dst"]),
            format!("{}/{}", proto(u(e, "protocol")), u(e, "port")),
            u(e, "connections"),
            u(e, "forwarded"),
            u(e, "dropped"),
            u(e, "audit"),
        );
    }
    Ok(())
}

/// `bulkhead baseline`: learning progress and anomalies.
pub async fn baseline(target: &Target, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let v = doc(rpc(c.baselines(pb::BaselinesRequest {}).await)?)?;
    if print_doc(&v, output)? {
        return Ok(());
    }
    let workloads = v["workloads"].as_array().cloned().unwrap_or_default();
    let stable = workloads.iter().filter(|w| w["phase"] == "stable").count();
    println!(
        "{stable}/{} workloads stable (learning window {} s, quiet period {} s)",
        workloads.len(),
        v["window_seconds"],
        v["quiet_seconds"]
    );
    for w in &workloads {
        println!(
            "  {:<40} {:<9} {:>4} edges",
            entity(&w["workload"]),
            w["phase"].as_str().unwrap_or(""),
            u(w, "edges")
        );
    }
    let anomalies = v["anomalies"].as_array().cloned().unwrap_or_default();
    println!("{} anomalies", anomalies.len());
    for a in &anomalies {
        let e = &a["edge"];
        println!(
            "  #{:<4} {} {:<8} {} -> {} {}/{}: {} connections ({} dropped), first {}",
            u(a, "id"),
            entity(&a["workload"]),
            a["side"].as_str().unwrap_or(""),
            entity(&e["src"]),
            entity(&e["dst"]),
            proto(u(e, "protocol")),
            u(e, "port"),
            u(a, "connections"),
            u(a, "dropped"),
            time(a["first_seen_ns"].as_i64().unwrap_or(0)),
        );
    }
    Ok(())
}

/// Filters of `bulkhead flows` (stored flows at the controller).
#[derive(Args, Debug, Default, Clone)]
pub struct FlowFilters {
    /// Either end in this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Either end is this pod ("ns/name" or name).
    #[arg(long)]
    pub pod: Option<String>,
    /// Either end belongs to this workload ("ns/name" or name).
    #[arg(long)]
    pub workload: Option<String>,
    /// forwarded, dropped or audit.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only flows newer than this (e.g. 30s, 5m, 2h).
    #[arg(long, value_parser = parse_age)]
    pub since: Option<i64>,
    /// Only flows older than this (e.g. 1m).
    #[arg(long, value_parser = parse_age)]
    pub until: Option<i64>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
}

/// "90s", "5m", "2h", "1d" as nanoseconds.
fn parse_age(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| format!("{s:?}: expected a number and s, m, h or d, e.g. 5m"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use s, m, h or d")),
    };
    Ok(n.saturating_mul(secs).saturating_mul(1_000_000_000))
}

/// `bulkhead flows` with filters: stored flows from the controller.
pub async fn stored_flows(target: &Target, f: FlowFilters, output: Output) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64;
    let mut c = target.client().await?;
    let q = pb::FlowQuery {
        namespace: f.namespace.unwrap_or_default(),
        pod: f.pod.unwrap_or_default(),
        workload: f.workload.unwrap_or_default(),
        verdict: f.verdict.unwrap_or_default(),
        port: f.port.map(u32::from).unwrap_or(0),
        since_ns: f.since.map(|a| now - a).unwrap_or(0),
        until_ns: f.until.map(|a| now - a).unwrap_or(0),
        limit: f.limit,
    };
    let v = doc(rpc(c.flows(q).await)?)?;
    if print_doc(&v, output)? {
        return Ok(());
    }
    for r in v.as_array().cloned().unwrap_or_default() {
        let pod = |k: &str, e: &str| {
            let p = r[k].as_str().unwrap_or("");
            if p.is_empty() { entity(&r[e]) } else { format!("{p} ({})", entity(&r[e])) }
        };
        println!(
            "{} {:<8} {:<9} {} -> {}:{} {} {}",
            time(r["time_ns"].as_i64().unwrap_or(0)),
            r["node"].as_str().unwrap_or(""),
            r["verdict"].as_str().unwrap_or("").to_uppercase(),
            pod("src_pod", "src"),
            pod("dst_pod", "dst"),
            u(&r, "dst_port"),
            proto(u(&r, "protocol")),
            r["observation"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

/// `bulkhead suggest`.
pub async fn suggest(target: &Target, namespace: Option<String>, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let actor = whoami();
    let v = doc(rpc(c.suggest(pb::SuggestRequest { namespace: namespace.unwrap_or_default(), actor }).await)?)?;
    if print_doc(&v, output)? {
        return Ok(());
    }
    for r in v.as_array().cloned().unwrap_or_default() {
        let s = &r["suggestion"];
        let warnings = s["warnings"].as_array().cloned().unwrap_or_default();
        println!(
            "# suggestion {} ({}{}) for {}: {} rules",
            u(&r, "id"),
            r["status"].as_str().unwrap_or(""),
            if s["stable"] == true { "" } else { ", baseline still learning" },
            entity(&s["workload"]),
            s["rules"].as_array().map_or(0, Vec::len),
        );
        for w in &warnings {
            println!("# warning: {}", w.as_str().unwrap_or(""));
        }
        println!("---\n{}", serde_yaml::to_string(&s["policy"])?);
    }
    Ok(())
}

/// What `bulkhead review` does.
#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// Every suggestion and its status.
    List,
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

fn whoami() -> String {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into())
}

/// `bulkhead review ...`.
pub async fn review(target: &Target, cmd: ReviewCommand, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let actor = whoami();
    let req = match &cmd {
        ReviewCommand::List => pb::ReviewRequest { action: "list".into(), ..Default::default() },
        ReviewCommand::Show { id } => pb::ReviewRequest { action: "show".into(), id: *id, ..Default::default() },
        ReviewCommand::Approve { id, reason } | ReviewCommand::Reject { id, reason } => pb::ReviewRequest {
            action: if matches!(cmd, ReviewCommand::Approve { .. }) { "approve" } else { "reject" }.into(),
            id: *id,
            actor,
            reason: reason.clone(),
            ..Default::default()
        },
        ReviewCommand::Apply { id, mode, reason } => {
            pb::ReviewRequest { action: "apply".into(), id: *id, mode: mode.clone(), actor, reason: reason.clone() }
        }
    };
    let v = doc(rpc(c.review(req).await)?)?;
    if print_doc(&v, output)? {
        return Ok(());
    }
    match cmd {
        ReviewCommand::List => {
            println!("{:<5} {:<10} {:<40} {:>5} {:>8}", "ID", "STATUS", "WORKLOAD", "RULES", "WARNINGS");
            for r in v.as_array().cloned().unwrap_or_default() {
                let s = &r["suggestion"];
                println!(
                    "{:<5} {:<10} {:<40} {:>5} {:>8}",
                    u(&r, "id"),
                    r["status"].as_str().unwrap_or(""),
                    entity(&s["workload"]),
                    s["rules"].as_array().map_or(0, Vec::len),
                    s["warnings"].as_array().map_or(0, Vec::len),
                );
            }
        }
        ReviewCommand::Show { .. } => show(&v),
        _ => println!("suggestion {} is now {}", u(&v, "id"), v["status"].as_str().unwrap_or("")),
    }
    Ok(())
}

fn show(v: &Value) {
    let s = &v["suggestion"];
    println!("suggestion {} for {}: {}", u(v, "id"), entity(&s["workload"]), v["status"].as_str().unwrap_or(""));
    println!("{}", v["yaml"].as_str().unwrap_or(""));
    for r in s["rules"].as_array().cloned().unwrap_or_default() {
        println!(
            "evidence {} {}: {} connections from/to {} on {}",
            r["side"].as_str().unwrap_or(""),
            u(&r, "index"),
            u(&r, "connections"),
            r["peers"]
                .as_array()
                .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            r["ports"]
                .as_array()
                .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        );
    }
    for w in s["warnings"].as_array().cloned().unwrap_or_default() {
        println!("warning: {}", w.as_str().unwrap_or(""));
    }
    let diff = v["diff"].as_array().cloned().unwrap_or_default();
    if diff.is_empty() {
        println!("diff: no policy of this name in force");
    } else {
        println!("diff against the policy in force:");
        for l in diff {
            println!("  {}", l.as_str().unwrap_or(""));
        }
    }
    for p in v["also_in_force"].as_array().cloned().unwrap_or_default() {
        println!("also selecting these pods: {}", p.as_str().unwrap_or(""));
    }
    let w = &v["what_if"];
    let drops = w["would_drop"].as_array().cloned().unwrap_or_default();
    println!(
        "what-if over the recorded window: {} flows replayed, {} would be dropped ({} not replayable, {} already dropped)",
        u(w, "replayed"),
        drops.len(),
        u(w, "not_replayable"),
        u(w, "already_dropped")
    );
    for d in drops.iter().take(20) {
        let f = &d["flow"];
        println!("  would drop: {} -> {}:{}", entity(&f["src"]), entity(&f["dst"]), u(f, "dst_port"));
    }
    if let Some(t) = v["audit_since_ns"].as_i64() {
        println!("in audit since {}", time(t));
    }
    println!("would-drop flows reported in audit mode: {}", u(v, "would_drop_total"));
    for f in v["would_drop"].as_array().cloned().unwrap_or_default().iter().take(20) {
        println!(
            "  {} {} -> {}:{}",
            time(f["time_ns"].as_i64().unwrap_or(0)),
            entity(&f["src"]),
            entity(&f["dst"]),
            u(f, "dst_port")
        );
    }
    for r in v["reviews"].as_array().cloned().unwrap_or_default() {
        println!(
            "history: {} {} by {} {}",
            time(r["time_ns"].as_i64().unwrap_or(0)),
            r["action"].as_str().unwrap_or(""),
            r["actor"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        );
    }
}
