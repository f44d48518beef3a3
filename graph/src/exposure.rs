//! Exposure: every service port and workload port, how far it is exposed,
//! what it says it speaks, who the policies in force let reach it (the
//! world, namespaces, workloads) and who did in a window, and the findings
//! that follow. "Can reach" asks the one policy evaluator; "did reach" reads
//! the service graph.

mod entries;
mod findings;
mod listening;
mod reach;

use std::collections::BTreeMap;

use bulkhead_model::exposure::{AppProtocol, Exposer, ExposureClass, FindingKind};
use bulkhead_policy::evaluate::PolicySet;
use bulkhead_policy::inventory::{Inventory, Pod};
use bulkhead_policy::ports::Protocol;
use serde::Serialize;

pub use self::listening::{Listening, PodSockets, Sockets};
use crate::apps::{self, AppObservations, Heard};
use crate::{EdgeKey, EdgeStats, Entity};

/// The namespace label naming a namespace's tenant: ports reachable from
/// another tenant's namespaces are a finding.
pub const TENANT_LABEL: &str = "bulkhead.dev/tenant";

/// The most workloads one port lists by name as able to reach it; the
/// per-namespace counts stay complete.
pub const MAX_LISTED_WORKLOADS: usize = 50;

/// What the report is computed from.
pub struct Input<'a> {
    /// The cluster.
    pub inventory: &'a Inventory,
    /// The policies in force.
    pub policies: &'a PolicySet,
    /// The workload a pod belongs to.
    pub workload_of: &'a dyn Fn(&Pod) -> Entity,
    /// The edges observed in the window.
    pub observed: &'a [(Entity, Entity, EdgeKey, EdgeStats)],
    /// What the ports' payload samples said.
    pub apps: &'a AppObservations,
    /// Start of the window, nanoseconds since the epoch: older samples do not count.
    pub since_ns: i64,
    /// What the pods the agents read listen on.
    pub sockets: &'a Sockets,
}

/// One thing that makes a port reachable from outside, with its detail
/// ("NodePort 30080", "Ingress shop/web").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ExposedBy {
    /// What it is.
    pub via: Exposer,
    /// Which one.
    pub detail: String,
}

/// How many of a namespace's workloads may reach a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceReach {
    /// The namespace.
    pub namespace: String,
    /// Workloads of it the policies let connect.
    pub workloads: usize,
    /// Its workloads.
    pub of: usize,
}

/// Who the policies in force let reach a port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CanReach {
    /// How an outside address reaches it, when one can; `None` when none can
    /// (or the port is not exposed outside the cluster).
    pub world: Option<String>,
    /// Namespaces with at least one workload that may connect.
    pub namespaces: Vec<NamespaceReach>,
    /// Whether every namespace with workloads, other than the port's own, may.
    pub every_namespace: bool,
    /// Workloads that may connect, at most `MAX_LISTED_WORKLOADS`.
    pub workloads: Vec<Entity>,
    /// How many workloads may connect.
    pub workloads_total: usize,
}

/// Who connected to a port in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reached {
    /// The source: a workload, a world prefix or a node.
    pub source: Entity,
    /// Connections or attempts.
    pub connections: u64,
    /// Of which dropped by policy.
    pub dropped: u64,
    /// Last seen, nanoseconds since the epoch.
    pub last_seen_ns: i64,
}

/// One finding, with what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it reports.
    pub kind: FindingKind,
    /// One sentence for a person.
    pub message: String,
    /// The facts behind it: rules, addresses, counts (never workload names,
    /// which a tenant may not see: those are `workloads`).
    pub evidence: Vec<String>,
    /// The workloads it is about (sources that connected, or could and did not).
    pub workloads: Vec<Entity>,
}

/// What a port's payload samples of one class said, over its workloads
/// and target ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeardProtocol {
    /// The class; `None` for bytes no rule recognised.
    pub protocol: Option<AppProtocol>,
    /// Samples, and their fields.
    #[serde(flatten)]
    pub heard: Heard,
}

/// One exposed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposedPort {
    /// Namespace.
    pub namespace: String,
    /// The service, for service ports.
    pub service: Option<String>,
    /// The workloads serving it.
    pub workloads: Vec<Entity>,
    /// How far it is exposed.
    pub class: ExposureClass,
    /// What exposes it outside the cluster.
    pub exposed_by: Vec<ExposedBy>,
    /// Protocol.
    pub protocol: Protocol,
    /// The port clients address: the service port, the host port, or the container port.
    pub port: u16,
    /// The port(s) the workloads receive it on.
    pub targets: Vec<u16>,
    /// The port's name, if any.
    pub name: String,
    /// What its declaration (appProtocol, port name) says it speaks.
    pub declared_protocol: Option<AppProtocol>,
    /// What observed traffic speaks (see `apps::speaks`).
    pub speaks: Option<AppProtocol>,
    /// Every class the samples said, most samples first.
    pub heard: Vec<HeardProtocol>,
    /// Whether some container declares the target port.
    pub declared: bool,
    /// Whether pod policy can apply (not on a host-network pod).
    pub policed: bool,
    /// Whether its pods listen on it, when an agent read them.
    pub listening: Option<Listening>,
    /// Who the policies in force let reach it.
    pub can_reach: CanReach,
    /// Who did in the window, most connections first.
    pub did_reach: Vec<Reached>,
    /// Findings.
    pub findings: Vec<Finding>,
}

impl ExposedPort {
    /// The database protocol it may speak, for database findings: its
    /// declaration's, else the well-known use of its port. Either suffices,
    /// since a declaration is only a hint.
    pub fn database_guess(&self) -> Option<AppProtocol> {
        self.speaks.filter(|a| a.is_database()).or(self.declared_protocol.filter(|a| a.is_database())).or_else(|| {
            self.targets
                .iter()
                .chain([&self.port])
                .find_map(|p| AppProtocol::well_known(*p).filter(|a| a.is_database()))
        })
    }
}

/// The exposure report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// Every port, by namespace, then service or workload, then port.
    pub ports: Vec<ExposedPort>,
}

impl Exposure {
    /// How many findings of each kind.
    pub fn finding_counts(&self) -> BTreeMap<FindingKind, usize> {
        let mut out = BTreeMap::new();
        for f in self.ports.iter().flat_map(|p| &p.findings) {
            *out.entry(f.kind).or_insert(0) += 1;
        }
        out
    }
}

/// Builds the report: every service port, every workload port no service
/// fronts, every host port and host-network port, and every port traffic
/// reached or a pod listens on that nothing declares.
pub fn report(input: &Input<'_>) -> Exposure {
    let entries = entries::collect(input);
    let sources = reach::Sources::new(input);
    let observed = entries::ObservedIndex::new(input.observed);
    let mut ports = Vec::with_capacity(entries.len());
    for (mut p, backends) in entries {
        let r = sources.can_reach(input, &p, &backends);
        p.can_reach = r.can.clone();
        heard(input, &mut p);
        p.listening = listening::of(input.sockets, p.protocol, &backends);
        p.did_reach = observed.reached(&p);
        p.findings = findings::of(input.inventory, &p, &r, &backends, &sources);
        ports.push(p);
    }
    Exposure { ports }
}

/// Sums the samples of the port's workloads on its target ports.
fn heard(input: &Input<'_>, p: &mut ExposedPort) {
    if input.apps.is_empty() {
        return;
    }
    let mut by: apps::PortApps = std::collections::BTreeMap::new();
    for w in &p.workloads {
        for t in &p.targets {
            for (a, h) in input.apps.of(w, p.protocol.number(), *t, input.since_ns) {
                let e = by.entry(a).or_default();
                e.client_samples += h.client_samples;
                e.server_samples += h.server_samples;
                e.first_ns = if e.first_ns == 0 { h.first_ns } else { e.first_ns.min(h.first_ns) };
                e.last_ns = e.last_ns.max(h.last_ns);
                for (set, add) in [(&mut e.hosts, h.hosts), (&mut e.alpn, h.alpn), (&mut e.methods, h.methods)] {
                    set.extend(add.into_iter().take(apps::MAX_VALUES.saturating_sub(set.len())));
                }
            }
        }
    }
    p.speaks = apps::speaks(&by);
    let mut heard: Vec<HeardProtocol> =
        by.into_iter().map(|(protocol, heard)| HeardProtocol { protocol, heard }).collect();
    heard.sort_by(|a, b| b.heard.samples().cmp(&a.heard.samples()).then_with(|| a.protocol.cmp(&b.protocol)));
    p.heard = heard;
}

#[cfg(test)]
mod tests;
