//! The findings of one port, each only when its condition holds, each with
//! the facts it rests on.

use std::collections::BTreeSet;

use bulkhead_model::exposure::{ExposureClass, FindingKind};
use bulkhead_policy::inventory::Inventory;

use super::entries::Backend;
use super::reach::{Reach, Sources};
use super::{ExposedPort, Finding, TENANT_LABEL};
use crate::{Entity, apps};

/// How many workloads a finding names.
const NAMED: usize = 10;

fn tenant<'a>(inv: &'a Inventory, ns: &str) -> Option<&'a str> {
    inv.namespaces.get(ns).and_then(|n| n.labels.get(TENANT_LABEL)).map(String::as_str)
}

/// A port's findings.
pub(super) fn of(
    inv: &Inventory,
    p: &ExposedPort,
    reach: &Reach,
    backends: &[Backend<'_>],
    sources: &Sources<'_>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let what = match &p.service {
        Some(s) => format!("service {}/{s} port {}", p.namespace, p.port),
        None => match p.workloads.first() {
            Some(Entity::Workload { namespace, kind, name }) => format!("{kind} {namespace}/{name} port {}", p.port),
            _ => format!("port {}", p.port),
        },
    };
    if let Some(db) = p.database_guess()
        && (p.can_reach.world.is_some() || p.can_reach.every_namespace)
    {
        let mut evidence = Vec::new();
        if let Some(w) = &p.can_reach.world {
            evidence.push(format!("world: {w}"));
        }
        if p.can_reach.every_namespace {
            evidence.push(format!("every namespace: {} namespaces may connect", p.can_reach.namespaces.len()));
        }
        let whom = if p.can_reach.world.is_some() { "the world" } else { "every namespace" };
        out.push(Finding {
            kind: FindingKind::DatabaseExposed,
            message: format!("{what} looks like {db} and is reachable from {whom}"),
            evidence,
            workloads: Vec::new(),
        });
    }
    if let Some(own) = tenant(inv, &p.namespace) {
        let foreign: Vec<String> = p
            .can_reach
            .namespaces
            .iter()
            .filter_map(|n| {
                tenant(inv, &n.namespace).filter(|t| *t != own).map(|t| format!("{} (tenant {t})", n.namespace))
            })
            .collect();
        if !foreign.is_empty() {
            out.push(Finding {
                kind: FindingKind::CrossTenant,
                message: format!(
                    "{what} of tenant {own} is reachable from {} namespace(s) of other tenants",
                    foreign.len()
                ),
                evidence: foreign,
                workloads: Vec::new(),
            });
        }
    }
    if !reach.rules.is_empty() {
        let used: BTreeSet<&Entity> = p.did_reach.iter().map(|r| &r.source).collect();
        let (first, total) = sources.unused(reach, &used, &p.workloads, NAMED);
        if total > 0 {
            let rules = reach.rules.iter().cloned().collect::<Vec<_>>().join(", ");
            out.push(Finding {
                kind: FindingKind::UnusedPath,
                message: format!("{what}: {total} workload(s) are allowed but never connected in the window"),
                evidence: vec![format!("allowed by {rules}")],
                workloads: first,
            });
        }
    }
    // Traffic to a port its pods were read not to listen on was refused or
    // stray (a late reply), not a use of the port.
    let unserved = p.listening.as_ref().is_some_and(|l| l.open.is_empty());
    if !p.declared && !p.did_reach.is_empty() && !unserved {
        let connections: u64 = p.did_reach.iter().map(|r| r.connections).sum();
        out.push(Finding {
            kind: FindingKind::Undeclared,
            message: format!(
                "{what} received traffic but no container declares {}/{:?}",
                p.protocol.as_str(),
                p.targets
            ),
            evidence: vec![format!("{connections} connection(s) from {} source(s) in the window", p.did_reach.len())],
            workloads: p.did_reach.iter().take(NAMED).map(|r| r.source.clone()).collect(),
        });
    }
    if let Some(l) = &p.listening {
        let targets: Vec<String> = p.targets.iter().map(u16::to_string).collect();
        let port = format!("{}/{}", p.protocol.as_str(), targets.join(","));
        if !p.declared && !l.open.is_empty() {
            out.push(Finding {
                kind: FindingKind::ListeningUndeclared,
                message: format!("{what}: {} pod(s) listen on {port} but no container declares it", l.open.len()),
                evidence: l.open.iter().take(NAMED).map(|pod| format!("{pod} listens on {port}")).collect(),
                workloads: Vec::new(),
            });
        }
        if p.declared && !(l.closed.is_empty() && l.loopback_only.is_empty()) {
            let shut = l.closed.len() + l.loopback_only.len();
            let mut evidence: Vec<String> =
                l.closed.iter().take(NAMED).map(|pod| format!("{pod}: no socket on {port}")).collect();
            evidence.extend(
                l.loopback_only
                    .iter()
                    .take(NAMED)
                    .map(|pod| format!("{pod}: {port} is bound to loopback only, which other pods cannot reach")),
            );
            out.push(Finding {
                kind: FindingKind::NotListening,
                message: format!("{what}: {shut} of {} pod(s) read do not listen on {port}", l.pods_read),
                evidence,
                workloads: Vec::new(),
            });
        }
    }
    if let (Some(declared), Some(speaks)) = (p.declared_protocol, p.speaks)
        && !apps::consistent(declared, speaks)
    {
        let evidence = p
            .heard
            .iter()
            .map(|h| {
                let class = h.protocol.map_or("unrecognised bytes", |a| a.as_str());
                let mut line = format!(
                    "{class}: {} sample(s) from clients, {} from the server",
                    h.heard.client_samples, h.heard.server_samples
                );
                if !h.heard.hosts.is_empty() {
                    line.push_str(&format!("; names {}", h.heard.hosts.iter().cloned().collect::<Vec<_>>().join(", ")));
                }
                line
            })
            .collect();
        let name = if p.name.is_empty() { String::new() } else { format!(" ({})", p.name) };
        out.push(Finding {
            kind: FindingKind::ProtocolMismatch,
            message: format!("{what}{name} declares {declared} but its traffic is {speaks}"),
            evidence,
            workloads: Vec::new(),
        });
    }
    if p.class == ExposureClass::InternetFacing && (!p.policed || sources.unprotected(backends, p.protocol)) {
        let why = if p.policed {
            "no ingress policy selects its pods".to_string()
        } else {
            "it runs on the host network, where no pod policy applies".to_string()
        };
        out.push(Finding {
            kind: FindingKind::NoPolicy,
            message: format!("{what} is internet-facing and {why}"),
            evidence: p.exposed_by.iter().map(|e| e.detail.clone()).collect(),
            workloads: Vec::new(),
        });
    }
    out
}
