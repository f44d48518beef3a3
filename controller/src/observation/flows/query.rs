//! Read-only views of the pipeline for the API: filtered flows, the graph
//! (with world addresses aggregated), and baselines with anomalies.

use std::collections::BTreeMap;

use bulkhead_graph::baseline::{Anomaly, WorkloadBaseline};
use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord};
use bulkhead_model::Verdict;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::Pipeline;
use crate::observation::storage::StorageError;
use crate::policy::store::Model;

/// Filters of `bulkhead flows`; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowQuery {
    /// Either end in this namespace.
    #[serde(default)]
    pub namespace: String,
    /// Either end is this pod ("namespace/name" or a name).
    #[serde(default)]
    pub pod: String,
    /// Either end is this workload (its name, or "namespace/name").
    #[serde(default)]
    pub workload: String,
    /// forwarded, dropped or audit.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Destination port (as observed).
    #[serde(default)]
    pub port: Option<u16>,
    /// From (nanoseconds since the epoch), inclusive.
    #[serde(default)]
    pub since_ns: Option<i64>,
    /// To, exclusive.
    #[serde(default)]
    pub until_ns: Option<i64>,
    /// At most this many, the newest (default 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn workload_matches(e: &Entity, want: &str) -> bool {
    match e {
        Entity::Workload { namespace, name, .. } => {
            want == &**name || want.split_once('/').is_some_and(|(ns, n)| ns == &**namespace && n == &**name)
        }
        _ => false,
    }
}

fn pod_matches(pod: &str, want: &str) -> bool {
    !pod.is_empty() && (pod == want || pod.rsplit('/').next() == Some(want))
}

impl FlowQuery {
    /// Whether a record passes the filters.
    pub fn matches(&self, f: &FlowRecord) -> bool {
        (self.namespace.is_empty()
            || f.src.namespace() == Some(self.namespace.as_str())
            || f.dst.namespace() == Some(self.namespace.as_str()))
            && (self.pod.is_empty() || pod_matches(&f.src_pod, &self.pod) || pod_matches(&f.dst_pod, &self.pod))
            && (self.workload.is_empty()
                || workload_matches(&f.src, &self.workload)
                || workload_matches(&f.dst, &self.workload))
            && self.verdict.is_none_or(|v| f.verdict == v)
            && self.port.is_none_or(|p| f.dst_port == p)
    }
}

/// One edge of the graph view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeView {
    /// Source.
    pub src: Entity,
    /// Destination.
    pub dst: Entity,
    /// Protocol, delivered port, service.
    #[serde(flatten)]
    pub key: EdgeKey,
    /// Counts.
    #[serde(flatten)]
    pub stats: EdgeStats,
}

/// The graph as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GraphView {
    /// Entities.
    pub nodes: Vec<Entity>,
    /// Edges.
    pub edges: Vec<EdgeView>,
}

/// World addresses shown as their /24 (IPv4) or /64 (IPv6).
fn aggregate(e: Entity) -> Entity {
    match e {
        Entity::World { cidr } => {
            let prefix = if cidr.is_ipv4() { 24 } else { 64 };
            let net = IpNetwork::new(cidr.ip(), prefix).ok().and_then(|n| IpNetwork::new(n.network(), prefix).ok());
            Entity::World { cidr: net.unwrap_or(cidr) }
        }
        other => other,
    }
}

/// A workload's baseline as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineView {
    /// The workload.
    pub workload: Entity,
    /// Its learning state.
    #[serde(flatten)]
    pub state: WorkloadBaseline,
}

/// Every baseline and anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Baselines {
    /// Learning window and quiet period, seconds.
    pub window_seconds: i64,
    /// Quiet period, seconds.
    pub quiet_seconds: i64,
    /// Per workload.
    pub workloads: Vec<BaselineView>,
    /// Anomalies, oldest first.
    pub anomalies: Vec<Anomaly>,
}

impl Pipeline {
    /// Stored flows passing `q`, oldest first, the newest `limit` of them.
    pub fn query_flows(&self, q: &FlowQuery) -> Result<Vec<FlowRecord>, StorageError> {
        let all =
            self.store().flows(q.since_ns.unwrap_or(i64::MIN), q.until_ns.unwrap_or(i64::MAX), usize::MAX >> 1)?;
        let mut out: Vec<FlowRecord> = all.into_iter().filter(|f| q.matches(f)).collect();
        let limit = q.limit.unwrap_or(1000);
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }

    /// The graph (of a namespace, if given).
    pub fn graph_view(&self, namespace: Option<&str>) -> GraphView {
        let g = match namespace {
            Some(ns) => self.graph().subgraph(ns),
            None => self.graph().clone(),
        };
        let mut edges: BTreeMap<(Entity, Entity, EdgeKey), EdgeStats> = BTreeMap::new();
        for (src, dst, key, stats) in g.edges() {
            edges.entry((aggregate(src), aggregate(dst), key)).or_default().merge(&stats);
        }
        // A connection seen only at its destination does not know the
        // service its source addressed: fold it into the edge that does,
        // when there is exactly one.
        let unnamed: Vec<(Entity, Entity, EdgeKey)> = edges.keys().filter(|k| k.2.service.is_none()).cloned().collect();
        for k in unnamed {
            let named: Vec<&(Entity, Entity, EdgeKey)> = edges
                .keys()
                .filter(|o| o.0 == k.0 && o.1 == k.1 && o.2.protocol == k.2.protocol && o.2.port == k.2.port)
                .filter(|o| o.2.service.is_some())
                .collect();
            if let [one] = named.as_slice() {
                let one = (*one).clone();
                if let Some(stats) = edges.remove(&k)
                    && let Some(e) = edges.get_mut(&one)
                {
                    e.merge(&stats);
                }
            }
        }
        let mut nodes: Vec<Entity> = g.entities().into_iter().map(aggregate).collect();
        nodes.sort();
        nodes.dedup();
        GraphView {
            nodes,
            edges: edges.into_iter().map(|((src, dst, key), stats)| EdgeView { src, dst, key, stats }).collect(),
        }
    }

    /// Baselines and anomalies.
    pub fn baselines(&self) -> Baselines {
        let cfg = self.learner().config();
        Baselines {
            window_seconds: cfg.window_ns / 1_000_000_000,
            quiet_seconds: cfg.quiet_ns / 1_000_000_000,
            workloads: self
                .learner()
                .workloads()
                .iter()
                .map(|(w, s)| BaselineView { workload: w.clone(), state: s.clone() })
                .collect(),
            anomalies: self.learner().anomalies().into_iter().cloned().collect(),
        }
    }
}

/// What a workload can reach under the policies in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlastRadius {
    /// The workload asked about.
    pub from: Entity,
    /// Everything it can open connections to, directly or through what it reaches.
    pub reachable: Vec<Entity>,
}

impl Pipeline {
    /// Everything workload `from` ("namespace/name") can reach transitively:
    /// A reaches B when some pod of A may connect to some pod of B on a port
    /// B's pods declare or traffic to B was seen on, as the policy
    /// evaluator decides. Every current workload is a candidate, and every
    /// external entity seen in flows.
    pub fn blast_radius(&self, model: &Model, from: &str) -> Result<BlastRadius, String> {
        use bulkhead_policy::evaluate::Evaluator;
        use bulkhead_policy::ports::Protocol;
        let (ns, name) = from.split_once('/').ok_or_else(|| format!("{from:?}: expected namespace/name"))?;
        let start = self
            .history()
            .workloads()
            .keys()
            .find(|w| matches!(w, Entity::Workload { namespace, name: n, .. } if &**namespace == ns && &**n == name))
            .cloned()
            .ok_or_else(|| format!("no workload {from}"))?;
        // One address per workload, and every (protocol, port) to try per destination.
        let mut addr: BTreeMap<Entity, std::net::IpAddr> = BTreeMap::new();
        let mut ports: BTreeMap<Entity, std::collections::BTreeSet<(u8, u16)>> = BTreeMap::new();
        for pod in model.inventory.pods.values() {
            let Some(ip) = pod.ips.first() else { continue };
            let w = model.workload_of(pod);
            addr.entry(w.clone()).or_insert(*ip);
            ports.entry(w).or_default().extend(pod.ports.iter().map(|p| (p.protocol.number(), p.port)));
        }
        let mut graph = self.graph().clone();
        for (_, dst, key, _) in self.graph().edges() {
            ports.entry(dst).or_default().insert((key.protocol, key.port));
        }
        for w in addr.keys() {
            graph.add_entity(w);
        }
        let eval = Evaluator::new(&model.inventory, &model.policies);
        let target = |e: &Entity| match e {
            Entity::Workload { .. } => addr.get(e).copied(),
            Entity::World { cidr } => Some(cidr.network()),
            Entity::Host { node } => model.inventory.nodes.get(&**node).and_then(|ips| ips.first().copied()),
            Entity::Service { .. } => None,
        };
        let allowed = |a: &Entity, b: &Entity| {
            let (Some(src), Some(dst)) = (addr.get(a), target(b)) else { return false };
            ports.get(b).is_some_and(|set| {
                set.iter().any(|(proto, port)| eval.connection(*src, dst, Protocol::from_number(*proto), *port).allowed)
            })
        };
        let reachable =
            graph.blast_radius(&start, allowed).into_iter().map(aggregate).collect::<std::collections::BTreeSet<_>>();
        Ok(BlastRadius { from: start, reachable: reachable.into_iter().collect() })
    }
}
