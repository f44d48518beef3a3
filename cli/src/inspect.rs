//! `bulkhead get …` and `bulkhead audit`: the controller's inventory, the
//! policies in force, and the audit log, as the caller may see them.

use anyhow::Result;
use bulkhead_api::v1::audit::AuditQuery;
use bulkhead_api::v1::inventory::PodQuery;
use bulkhead_api::v1::policies::PolicyQuery;
use clap::Subcommand;

use crate::client::{Target, all_pages};
use crate::closed_loop::{Output, print_doc};

/// What `bulkhead get` shows.
#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// Namespaces.
    Namespaces,
    /// Pods, with their workload, mode and quarantine.
    Pods {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Workloads and their pods.
    Workloads {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Services.
    Services {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Policies in force.
    Policies {
        /// Only this namespace (and cluster-wide policies selecting its pods).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Who the controller says you are.
    Whoami,
}

/// `bulkhead get …`.
pub async fn get(target: &Target, cmd: GetCommand, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    match cmd {
        GetCommand::Namespaces => {
            let all = c.namespaces().await?;
            if !print_doc(&all, output)? {
                for n in &all {
                    println!("{:<30} {}", n.name, n.mode.map(|m| m.to_string()).unwrap_or_default());
                }
            }
        }
        GetCommand::Pods { namespace } => {
            let all = all_pages!(c.pods(PodQuery { namespace, limit: Some(1000), ..Default::default() }));
            if !print_doc(&all, output)? {
                println!("{:<40} {:<12} {:<30} {:<8} {:<11} IPS", "POD", "NODE", "WORKLOAD", "MODE", "QUARANTINE");
                for p in &all {
                    println!(
                        "{:<40} {:<12} {:<30} {:<8} {:<11} {}",
                        format!("{}/{}", p.namespace, p.name),
                        p.node,
                        format!("{}/{}", p.workload.kind, p.workload.name),
                        p.mode,
                        if p.quarantined { "QUARANTINED" } else { "" },
                        p.ips.join(" ")
                    );
                }
            }
        }
        GetCommand::Workloads { namespace } => {
            let all = c.workloads(namespace).await?;
            if !print_doc(&all, output)? {
                for w in &all {
                    println!(
                        "{:<40} {:<12} {}",
                        format!("{}/{}", w.workload.namespace, w.workload.name),
                        w.workload.kind,
                        w.pods.join(" ")
                    );
                }
            }
        }
        GetCommand::Services { namespace } => {
            let all = c.services(namespace).await?;
            if !print_doc(&all, output)? {
                for s in &all {
                    let ports: Vec<String> =
                        s.ports.iter().map(|p| format!("{}/{}->{}", p.port, p.protocol, p.target_port)).collect();
                    println!(
                        "{:<40} {:<16} {}",
                        format!("{}/{}", s.namespace, s.name),
                        s.cluster_ips.join(","),
                        ports.join(" ")
                    );
                }
            }
        }
        GetCommand::Policies { namespace } => {
            let all = c.policies(PolicyQuery { namespace }).await?;
            if !print_doc(&all, output)? {
                for p in &all {
                    let name = match &p.namespace {
                        Some(ns) => format!("{ns}/{}", p.name),
                        None => p.name.clone(),
                    };
                    println!(
                        "{:<22} {:<40} {:<9} in {} out {} selects {}",
                        p.kind,
                        name,
                        p.mode.map(|m| m.to_string()).or(p.tier.clone()).unwrap_or_default(),
                        p.ingress_rules,
                        p.egress_rules,
                        p.selects.len()
                    );
                }
            }
        }
        GetCommand::Whoami => {
            let w = c.whoami().await?;
            if !print_doc(&w, output)? {
                let scope = w.namespaces.map(|n| n.join(", ")).unwrap_or_else(|| "the whole cluster".into());
                println!("{} ({}, by {}) in {scope}", w.user, w.role, w.via);
            }
        }
    }
    Ok(())
}

/// `bulkhead audit`.
pub async fn audit(target: &Target, q: AuditQuery, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    let page = c.audit(q).await?;
    if print_doc(&page.items, output)? {
        return Ok(());
    }
    for e in &page.items {
        let when = jiff::Timestamp::from_millisecond(e.time_unix_ms as i64).map(|t| t.to_string()).unwrap_or_default();
        println!("{when} {:<10} {:<18} {:<24} {} {:?}: {}", e.user, e.action, e.source, e.target, e.outcome, e.detail);
    }
    if page.next_cursor.is_some() {
        eprintln!("(more: raise --limit)");
    }
    Ok(())
}
