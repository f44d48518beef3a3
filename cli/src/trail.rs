//! `bulkhead trail NS/POD`: the incident timeline of a pod, readable, as a
//! document, or as the CSV a ticket takes (the same CSV the API serves).

use anyhow::Result;
use bulkhead_api::v1::graph::GraphNode;
use bulkhead_api::v1::trail::{Trail, TrailConnection, TrailQuery};
use bulkhead_model::Direction;

use crate::client::Target;
use crate::closed_loop::{Output, print_doc};

/// How `bulkhead trail` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailOutput {
    /// Readable.
    Human,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// The connections as CSV, one row per group.
    Csv,
}

fn when(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map_or_else(|_| ns.to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

fn name(n: &GraphNode) -> String {
    match &n.namespace {
        Some(ns) if n.redacted => format!("namespace {ns} (outside your namespaces)"),
        Some(ns) => format!("{ns}/{}", n.name),
        None => n.name.clone(),
    }
}

fn line(c: &TrailConnection) -> String {
    let arrow = if c.direction == Direction::Egress { "->" } else { "<-" };
    format!(
        "{} .. {}  {arrow} {:<40} {:>5}/{:<4} {:<9} x{:<6} {:>10} B{}",
        when(c.first_seen_ns),
        jiff::Timestamp::from_nanosecond(i128::from(c.last_seen_ns))
            .map_or_else(|_| String::new(), |t| t.strftime("%H:%M:%S").to_string()),
        name(&c.peer),
        c.port,
        c.protocol,
        c.verdict.as_str(),
        c.connections,
        c.bytes,
        if c.new_edge { "  NEW (not in its baseline)" } else { "" }
    )
}

fn print_human(t: &Trail) {
    let workload = t.workload.as_ref().map(|w| format!(" ({} {}/{})", w.kind, w.namespace, w.name)).unwrap_or_default();
    println!("trail of {}{workload}, {} .. {}", t.pod, when(t.since_ns), when(t.until_ns));
    println!("\nconnections ({}):", t.connections.len());
    if t.connections.is_empty() {
        println!("  none in the window");
    }
    for c in &t.connections {
        println!("  {}", line(c));
    }
    println!("\nsecond hop: what the pods it reached did next ({}):", t.second_hop.len());
    for h in &t.second_hop {
        println!("  via {} (reached {}):", name(&h.via), when(h.reached_ns));
        for c in &h.connections {
            println!("    {}", line(c));
        }
    }
    if !t.quarantines.is_empty() {
        println!("\nquarantines:");
        for q in &t.quarantines {
            let ended = q.ended_ns.map(|e| format!(" .. {}", when(e))).unwrap_or_default();
            println!(
                "  #{} {:?} {}/{} {:?} {}{ended} by {}: {}",
                q.id,
                q.kind,
                q.namespace,
                q.name,
                q.state,
                when(q.created_ns),
                q.created_by,
                q.reason
            );
        }
    }
    if !t.audit.is_empty() {
        println!("\naudit records naming it:");
        for a in &t.audit {
            let at = jiff::Timestamp::from_millisecond(a.time_unix_ms as i64)
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            println!("  {at} {} {} {} {:?}: {}", a.user, a.action, a.target, a.outcome, a.detail);
        }
    }
}

/// Fetches and prints the trail.
pub async fn show(
    target: &Target,
    pod: String,
    since: String,
    until: Option<String>,
    output: TrailOutput,
) -> Result<()> {
    let mut c = target.client().await?;
    let t = c.trail(TrailQuery { pod, since: Some(since), until }).await?;
    match output {
        TrailOutput::Csv => print!("{}", t.to_csv()),
        TrailOutput::Json => {
            print_doc(&t, Output::Json)?;
        }
        TrailOutput::Yaml => {
            print_doc(&t, Output::Yaml)?;
        }
        TrailOutput::Human => print_human(&t),
    }
    Ok(())
}
