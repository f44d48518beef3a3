//! `bulkhead exposure`: the exposure report as a table, then its findings.

use anyhow::Result;
use bulkhead_api::v1::exposure::{ExposedPort, ExposureQuery};
use bulkhead_model::exposure::FindingKind;
use clap::Args;

use crate::client::Target;
use crate::closed_loop::{Output, node, print_doc};

/// What to report on.
#[derive(Args, Clone, Debug)]
pub struct ExposureArgs {
    /// Only ports of this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Start of the "did reach" window: 30m, 24h (the default), or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only ports with this finding: database_exposed, cross_tenant, unused_path, undeclared, no_policy.
    #[arg(long)]
    pub finding: Option<FindingKind>,
}

fn what(p: &ExposedPort) -> String {
    let owner = match (&p.service, p.workloads.first()) {
        (Some(s), _) => format!("svc/{s}"),
        (None, Some(w)) => w.name.clone(),
        (None, None) => "-".into(),
    };
    format!("{}/{owner}:{}/{}", p.namespace, p.port, p.protocol)
}

/// The declared type and what the payload samples heard: `http`, `http>tls`, `-`.
fn kind_of(p: &ExposedPort) -> String {
    let declared = p.declared_protocol.map_or("-", |a| a.as_str());
    match (p.declared_protocol, p.speaks) {
        (Some(d), Some(heard)) if bulkhead_graph::apps::consistent(d, heard) => declared.to_string(),
        (_, Some(heard)) => format!("{declared}>{heard}"),
        _ => declared.to_string(),
    }
}

fn world(p: &ExposedPort) -> &'static str {
    match (&p.can_reach.world, p.class) {
        (Some(_), _) => "yes",
        (None, bulkhead_model::exposure::ExposureClass::InternetFacing) => "no",
        (None, _) => "-",
    }
}

fn namespaces(p: &ExposedPort) -> String {
    if p.can_reach.every_namespace {
        return format!("all ({})", p.can_reach.namespaces.len());
    }
    let names: Vec<&str> = p.can_reach.namespaces.iter().map(|n| n.namespace.as_str()).collect();
    if names.is_empty() { "none".into() } else { names.join(",") }
}

/// How many of the port's pods listen on it (`2/2`), or `-` when none was read.
fn open(p: &ExposedPort) -> String {
    p.listening.as_ref().map_or_else(|| "-".to_string(), |l| format!("{}/{}", l.open.len(), l.pods_read))
}

/// Prints the report.
pub async fn show(target: &Target, args: ExposureArgs, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let q = ExposureQuery { namespace: args.namespace, since: args.since, finding: args.finding };
    let r = c.exposure(q).await?;
    if print_doc(&r, output)? {
        return Ok(());
    }
    if r.ports.is_empty() {
        println!("no ports (nothing in scope matches)");
        return Ok(());
    }
    println!(
        "{:<44} {:<17} {:<16} {:<7} {:<6} {:<24} {:>6} {:>8}",
        "PORT", "CLASS", "TYPE", "OPEN", "WORLD", "NAMESPACES", "DID", "FINDINGS"
    );
    for p in &r.ports {
        let did: u64 = p.did_reach.iter().map(|d| d.connections).sum();
        println!(
            "{:<44} {:<17} {:<16} {:<7} {:<6} {:<24} {:>6} {:>8}",
            what(p),
            p.class.as_str(),
            kind_of(p),
            open(p),
            world(p),
            namespaces(p),
            did,
            p.findings.len()
        );
    }
    let findings: Vec<_> = r.ports.iter().flat_map(|p| p.findings.iter().map(move |f| (p, f))).collect();
    if findings.is_empty() {
        println!("\nno findings");
        return Ok(());
    }
    println!("\nfindings:");
    for (p, f) in findings {
        println!("  [{}] {}", f.kind, f.message);
        for e in &f.evidence {
            println!("      {e}");
        }
        if !f.workloads.is_empty() {
            println!("      workloads: {}", f.workloads.iter().map(node).collect::<Vec<_>>().join(", "));
        }
        if let Some(w) = p.can_reach.world.as_ref().filter(|_| f.kind == FindingKind::NoPolicy) {
            println!("      world: {w}");
        }
    }
    Ok(())
}
