//! What the policies in force let workloads reach: the blast radius of one
//! workload (transitively), and the allowed edges between workloads, to lay
//! over what was observed. Both ask the one policy evaluator about one
//! address per workload, on the ports its pods declare or traffic to it used.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bulkhead_graph::{Entity, ServiceGraph};
use bulkhead_policy::evaluate::Evaluator;
use bulkhead_policy::ports::Protocol;
use serde::Serialize;

use super::Pipeline;
use super::query::aggregate;
use crate::policy::store::Model;

/// The most (source, destination) workload pairs one allowed-edges query
/// evaluates; past it the caller must name a namespace.
pub const MAX_PAIRS: usize = 250_000;

/// What a workload can reach under the policies in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlastRadius {
    /// The workload asked about.
    pub from: Entity,
    /// Everything it can open connections to, directly or through what it reaches.
    pub reachable: Vec<Entity>,
}

/// One connection the policies in force allow between two workloads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AllowedEdge {
    /// Source workload.
    pub src: Entity,
    /// Destination workload.
    pub dst: Entity,
    /// IANA protocol number.
    pub protocol: u8,
    /// Destination port.
    pub port: u16,
    /// Whether traffic was seen on it.
    pub observed: bool,
}

/// An allowed-edges query refused for the number of pairs it would evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPairs(pub usize);

/// One address and the ports to try per workload, and the evaluator.
struct Reach<'m> {
    addr: BTreeMap<Entity, IpAddr>,
    ports: BTreeMap<Entity, BTreeSet<(u8, u16)>>,
    eval: Evaluator<'m>,
    model: &'m Model,
}

impl<'m> Reach<'m> {
    fn new(model: &'m Model, graph: &ServiceGraph) -> Self {
        let mut addr: BTreeMap<Entity, IpAddr> = BTreeMap::new();
        let mut ports: BTreeMap<Entity, BTreeSet<(u8, u16)>> = BTreeMap::new();
        for pod in model.inventory.pods.values() {
            let Some(ip) = pod.ips.first() else { continue };
            let w = model.workload_of(pod);
            addr.entry(w.clone()).or_insert(*ip);
            ports.entry(w).or_default().extend(pod.declared.iter().map(|(protocol, port)| (protocol.number(), *port)));
        }
        for (_, dst, key, _) in graph.edges() {
            ports.entry(dst).or_default().insert((key.protocol, key.port));
        }
        Self { addr, ports, eval: Evaluator::new(&model.inventory, &model.policies), model }
    }

    fn target(&self, e: &Entity) -> Option<IpAddr> {
        match e {
            Entity::Workload { .. } => self.addr.get(e).copied(),
            Entity::World { cidr } => Some(cidr.network()),
            Entity::Host { node } => self.model.inventory.nodes.get(&**node).and_then(|ips| ips.first().copied()),
            Entity::Service { .. } => None,
        }
    }

    /// The (protocol, port) pairs of `b` that `a` may connect to.
    fn allowed_ports<'a>(&'a self, a: &Entity, b: &Entity) -> impl Iterator<Item = (u8, u16)> + 'a {
        let pair = self.addr.get(a).copied().zip(self.target(b));
        self.ports.get(b).into_iter().flatten().copied().filter(move |(proto, port)| {
            pair.is_some_and(|(src, dst)| self.eval.connection(src, dst, Protocol::from_number(*proto), *port).allowed)
        })
    }
}

impl Pipeline {
    /// Everything workload `from` ("namespace/name") can reach transitively:
    /// A reaches B when some pod of A may connect to some pod of B on a port
    /// B's pods declare or traffic to B was seen on, as the policy
    /// evaluator decides. Every current workload is a candidate, and every
    /// external entity seen in flows.
    pub fn blast_radius(&self, model: &Model, from: &str) -> Result<BlastRadius, String> {
        let (ns, name) = from.split_once('/').ok_or_else(|| format!("{from:?}: expected namespace/name"))?;
        let start = self
            .history()
            .workloads()
            .keys()
            .find(|w| matches!(w, Entity::Workload { namespace, name: n, .. } if &**namespace == ns && &**n == name))
            .cloned()
            .ok_or_else(|| format!("no workload {from}"))?;
        let reach = Reach::new(model, self.graph());
        let mut graph = self.graph().clone();
        for w in reach.addr.keys() {
            graph.add_entity(w);
        }
        let reachable = graph
            .blast_radius(&start, |a, b| reach.allowed_ports(a, b).next().is_some())
            .into_iter()
            .map(aggregate)
            .collect::<BTreeSet<_>>();
        Ok(BlastRadius { from: start, reachable: reachable.into_iter().collect() })
    }

    /// Every (source workload, destination workload, protocol, port) the
    /// policies in force allow, with an end in `namespace` when given,
    /// marked with whether traffic was observed on it. Pairs of a workload
    /// with itself are included (pods of one workload calling each other).
    pub fn allowed_edges(&self, model: &Model, namespace: Option<&str>) -> Result<Vec<AllowedEdge>, TooManyPairs> {
        let reach = Reach::new(model, self.graph());
        let workloads: Vec<&Entity> = reach.addr.keys().collect();
        let in_ns = |e: &Entity| namespace.is_none_or(|ns| e.namespace() == Some(ns));
        let near = workloads.iter().filter(|w| in_ns(w)).count();
        let pairs = if namespace.is_some() { near * workloads.len() * 2 } else { workloads.len() * workloads.len() };
        if pairs > MAX_PAIRS {
            return Err(TooManyPairs(pairs));
        }
        let observed: BTreeSet<(Entity, Entity, u8, u16)> =
            self.graph().edges().into_iter().map(|(a, b, k, _)| (a, b, k.protocol, k.port)).collect();
        let mut out = BTreeSet::new();
        for a in &workloads {
            for b in &workloads {
                if !in_ns(a) && !in_ns(b) {
                    continue;
                }
                for (protocol, port) in reach.allowed_ports(a, b) {
                    let seen = observed.contains(&((*a).clone(), (*b).clone(), protocol, port));
                    out.insert(AllowedEdge { src: (*a).clone(), dst: (*b).clone(), protocol, port, observed: seen });
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}
