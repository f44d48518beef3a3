//! Quarantine from the command line, through the controller (which owns
//! quarantines, persists them and pushes them to the agents at once).

use anyhow::{Result, bail};
use bulkhead_api::v1::quarantine::{Quarantine, QuarantineQuery, QuarantineRequest, QuarantineState, ReleaseQuery};
use clap::Subcommand;

use crate::client::{Target, all_pages};
use crate::closed_loop::{Output, print_doc, time};

fn print_one(q: &Quarantine) {
    let kind = format!("{:?}", q.kind).to_lowercase();
    let state = match q.state {
        QuarantineState::Active => "quarantined",
        QuarantineState::Released => "released",
        QuarantineState::Ended => "ended (its pod was deleted)",
    };
    println!("quarantine {}: {kind} {}/{} {state}", q.id, q.namespace, q.name);
    let done = if q.state == QuarantineState::Active { "cut off" } else { "let go" };
    for p in &q.pods {
        let how = match (p.enforced, p.agent_micros) {
            (true, Some(us)) => format!("{done} (map write {us} µs)"),
            (true, None) => done.to_string(),
            (false, _) => format!("NOT ENFORCED YET: {}", p.error),
        };
        println!("  {} on {} (endpoint {}): {how}", p.pod, p.node, p.endpoint_id);
    }
    if let Some(us) = q.enforced_micros {
        println!("  request to every agent's report: {:.1} ms", us as f64 / 1000.0);
    }
}

/// `bulkhead quarantine POD|--workload W --reason R`.
pub async fn quarantine(
    target: &Target,
    pod: Option<String>,
    workload: Option<String>,
    reason: String,
    output: Output,
) -> Result<()> {
    if reason.trim().is_empty() {
        bail!("--reason: say why (it is recorded and audited)");
    }
    let mut c = target.client().await?;
    let q = c.quarantine(QuarantineRequest { pod, workload, reason }).await?;
    if !print_doc(&q, output)? {
        print_one(&q);
    }
    Ok(())
}

/// `bulkhead release ID|POD --reason R`: by quarantine id, or the active quarantine of a pod.
pub async fn release(target: &Target, what: String, reason: String, output: Output) -> Result<()> {
    if reason.trim().is_empty() {
        bail!("--reason: say why (it is recorded and audited)");
    }
    let mut c = target.client().await?;
    let id = match what.parse::<u64>() {
        Ok(id) => id,
        Err(_) => {
            let (ns, name) = what
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("{what:?}: expected a quarantine id or namespace/name"))?;
            let page = c
                .quarantines(QuarantineQuery {
                    namespace: Some(ns.into()),
                    state: Some(QuarantineState::Active),
                    limit: Some(1000),
                    cursor: None,
                })
                .await?;
            let found: Vec<&Quarantine> =
                page.items.iter().filter(|q| q.name == name || q.pods.iter().any(|p| p.pod == what)).collect();
            match found.as_slice() {
                [one] => one.id,
                [] => bail!("no active quarantine of {what}"),
                many => bail!(
                    "{what} is in {} active quarantines ({}); release one by id",
                    many.len(),
                    many.iter().map(|q| q.id.to_string()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let q = c.release(id, ReleaseQuery { reason }).await?;
    if !print_doc(&q, output)? {
        print_one(&q);
    }
    Ok(())
}

/// What `bulkhead quarantines` lists.
#[derive(Subcommand, Debug)]
pub enum QuarantinesCommand {
    /// Active and past quarantines, newest first.
    List {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only active ones.
        #[arg(long)]
        active: bool,
    },
}

/// `bulkhead quarantines list`.
pub async fn list(target: &Target, namespace: Option<String>, active: bool, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let all = all_pages!(c.quarantines(QuarantineQuery {
        namespace,
        state: active.then_some(QuarantineState::Active),
        limit: Some(1000),
        cursor: None,
    }));
    if print_doc(&all, output)? {
        return Ok(());
    }
    println!("{:<5} {:<9} {:<40} {:>5} {:<9} {:<22} REASON", "ID", "KIND", "TARGET", "PODS", "STATE", "BY");
    for q in &all {
        println!(
            "{:<5} {:<9} {:<40} {:>5} {:<9} {:<22} {} ({})",
            q.id,
            format!("{:?}", q.kind).to_lowercase(),
            format!("{}/{}", q.namespace, q.name),
            q.pods.len(),
            format!("{:?}", q.state).to_lowercase(),
            q.created_by,
            q.reason,
            time(q.created_ns)
        );
    }
    Ok(())
}
