//! The service graph at the namespace, workload and pod levels, over a time
//! range; the difference between two windows; the blast radius; baselines
//! and anomalies. A tenant sees edges with an end in its namespaces, the
//! other end collapsed to its namespace.

use std::collections::BTreeMap;

use bulkhead_api::v1::Page;
use bulkhead_api::v1::baselines::{Anomaly, AnomalyQuery, Baselines, Phase, ScanSummary, WorkloadBaseline};
use bulkhead_api::v1::graph::{
    Allowed, AllowedEdge, AllowedQuery, BlastRadius, Graph, GraphDiff, GraphDiffQuery, GraphEdge, GraphNode,
    GraphQuery, Level,
};
use bulkhead_graph::{EdgeKey, EdgeStats, Entity};
use bulkhead_model::proto;

use super::{Op, Service, ServiceError, cursor_in, cursor_out, page_size, time, view};
use crate::auth::{Principal, Scope};
use crate::observation::flows::now_ns;
use crate::observation::flows::query::aggregate;
use crate::observation::flows::reach::{MAX_PAIRS, TooManyPairs};
use crate::observation::storage::{FlowFilter, Named};

/// The pod level covers the last hour unless told otherwise.
const POD_LEVEL_DEFAULT_NS: i64 = 3_600_000_000_000;

/// Edges by (source id, destination id, protocol, port, service), merged.
type Edges = BTreeMap<(String, String, u8, u16, Option<String>), (EdgeKey, EdgeStats)>;

/// Builds a graph document from entity edges, in `scope`, at `level`.
#[derive(Default)]
struct Builder {
    nodes: BTreeMap<String, GraphNode>,
    edges: Edges,
}

impl Builder {
    fn node(&mut self, scope: &Scope, level: Level, e: &Entity, pod: &str) -> String {
        let n = view::node(scope, level, e, pod);
        let id = n.id.clone();
        self.nodes.entry(id.clone()).or_insert(n);
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn edge(
        &mut self,
        scope: &Scope,
        level: Level,
        src: (&Entity, &str),
        dst: (&Entity, &str),
        key: &EdgeKey,
        s: &EdgeStats,
    ) {
        if !view::visible(scope, src.0) && !view::visible(scope, dst.0) {
            return;
        }
        let a = self.node(scope, level, src.0, src.1);
        let b = self.node(scope, level, dst.0, dst.1);
        let service = key
            .service
            .as_ref()
            .filter(|r| scope.contains(&r.namespace))
            .map(|r| format!("{}/{}:{}", r.namespace, r.name, r.port));
        let entry = self
            .edges
            .entry((a, b, key.protocol, key.port, service))
            .or_insert_with(|| (key.clone(), EdgeStats::default()));
        entry.1.merge(s);
    }

    fn finish(self, scope: &Scope, level: Level, since_ns: Option<i64>, until_ns: Option<i64>) -> Graph {
        let edges = self.edges.iter().map(|((a, b, ..), (key, s))| view::edge(scope, a, b, key, s)).collect();
        Graph { level, since_ns, until_ns, nodes: self.nodes.into_values().collect(), edges }
    }
}

fn edge_id(e: &GraphEdge) -> (String, String, String, u16, Option<String>) {
    (e.source.clone(), e.destination.clone(), e.protocol.clone(), e.port, e.service.clone())
}

fn workload_named(field: &str, s: &str) -> Result<(String, String), ServiceError> {
    match Named::parse(s) {
        Some(Named { namespace: Some(ns), name }) => Ok((ns, name)),
        _ => Err(ServiceError::bad(field, format!("{s:?}: expected \"namespace/name\" of a workload"))),
    }
}

impl Service {
    /// The graph at `level` over `[since, until)`.
    async fn graph_at(
        &self,
        who: &Principal,
        level: Level,
        namespace: Option<String>,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Graph, ServiceError> {
        let scope = who.scope.clone();
        let mut b = Builder::default();
        if level == Level::Pod {
            let since_ns = since_ns.or(Some(until_ns.unwrap_or_else(now_ns) - POD_LEVEL_DEFAULT_NS));
            let f = FlowFilter {
                namespace: namespace.clone(),
                since_ns,
                until_ns,
                scope: scope.namespaces(),
                ..Default::default()
            };
            let edges = self.ctx.with_observation(move |p| Ok(p.pod_edges(&f)?)).await?;
            for e in edges {
                let (src, dst) = (aggregate(e.src), aggregate(e.dst));
                let key = EdgeKey { protocol: e.protocol, port: e.port, service: None };
                let mut stats = EdgeStats {
                    connections: e.connections,
                    bytes: e.bytes,
                    first_seen_ns: e.first_seen_ns,
                    last_seen_ns: e.last_seen_ns,
                    ..Default::default()
                };
                match e.verdict {
                    bulkhead_model::Verdict::Forwarded => stats.forwarded = e.connections,
                    bulkhead_model::Verdict::Dropped => stats.dropped = e.connections,
                    bulkhead_model::Verdict::Audit => stats.audit = e.connections,
                }
                b.edge(&scope, level, (&src, &e.src_pod), (&dst, &e.dst_pod), &key, &stats);
            }
            return Ok(b.finish(&scope, level, since_ns, until_ns));
        }
        let ns = namespace.clone();
        let g =
            self.ctx.with_observation(move |p| Ok(p.graph_view_between(ns.as_deref(), since_ns, until_ns)?)).await?;
        for e in &g.edges {
            b.edge(&scope, level, (&e.src, ""), (&e.dst, ""), &e.key, &e.stats);
        }
        // Entities of the namespace (or the tenant's) without edges still belong on the map.
        for n in &g.nodes {
            if view::visible(&scope, n) && n.namespace().is_some() {
                b.node(&scope, level, n, "");
            }
        }
        Ok(b.finish(&scope, level, since_ns, until_ns))
    }

    /// The graph `q` asks for.
    pub async fn graph(&self, who: &Principal, q: GraphQuery) -> Result<Graph, ServiceError> {
        self.authorize(who, Op::Graph, "graph")?;
        let (since, until) = (time("since", q.since.as_deref())?, time("until", q.until.as_deref())?);
        if let (Some(a), Some(b)) = (since, until)
            && a >= b
        {
            return Err(ServiceError::bad("until", "must be after since"));
        }
        self.graph_at(who, q.level.unwrap_or_default(), q.namespace, since, until).await
    }

    /// Edges new in `[until, then_until)` and gone since `[since, until)`.
    pub async fn graph_diff(&self, who: &Principal, q: GraphDiffQuery) -> Result<GraphDiff, ServiceError> {
        self.authorize(who, Op::GraphDiff, "graph")?;
        let level = q.level.unwrap_or_default();
        let since = time("since", Some(&q.since))?;
        let until = time("until", Some(&q.until))?;
        let then = time("then_until", q.then_until.as_deref())?.or(Some(now_ns()));
        if since >= until || until >= then {
            return Err(ServiceError::bad("until", "windows must be in order: since < until < then_until"));
        }
        let before = self.graph_at(who, level, q.namespace.clone(), since, until).await?;
        let after = self.graph_at(who, level, q.namespace, until, then).await?;
        let old: BTreeMap<_, &GraphEdge> = before.edges.iter().map(|e| (edge_id(e), e)).collect();
        let new: BTreeMap<_, &GraphEdge> = after.edges.iter().map(|e| (edge_id(e), e)).collect();
        let appeared: Vec<GraphEdge> =
            new.iter().filter(|(k, _)| !old.contains_key(*k)).map(|(_, e)| (*e).clone()).collect();
        let vanished: Vec<GraphEdge> =
            old.iter().filter(|(k, _)| !new.contains_key(*k)).map(|(_, e)| (*e).clone()).collect();
        let mut nodes: BTreeMap<String, GraphNode> = BTreeMap::new();
        for n in before.nodes.into_iter().chain(after.nodes) {
            let used = appeared.iter().chain(&vanished).any(|e| e.source == n.id || e.destination == n.id);
            if used {
                nodes.insert(n.id.clone(), n);
            }
        }
        Ok(GraphDiff { level, new: appeared, vanished, nodes: nodes.into_values().collect() })
    }

    /// Everything workload `workload` ("namespace/name") can reach.
    pub async fn blast_radius(&self, who: &Principal, workload: String) -> Result<BlastRadius, ServiceError> {
        self.authorize(who, Op::BlastRadius, &workload)?;
        let (ns, _) = workload_named("workload", &workload)?;
        self.in_scope(who, Op::BlastRadius, &workload, &ns)?;
        let model = self.ctx.with_policy(|s| Ok(s.model().clone())).await?;
        let from = workload.clone();
        let radius = self
            .ctx
            .with_observation(move |p| p.blast_radius(&model, &from).map_err(crate::error::ControllerError::NotFound))
            .await?;
        let scope = &who.scope;
        let mut reachable: BTreeMap<String, GraphNode> = BTreeMap::new();
        for e in &radius.reachable {
            let n = view::node(scope, Level::Workload, e, "");
            reachable.entry(n.id.clone()).or_insert(n);
        }
        Ok(BlastRadius {
            from: view::node(scope, Level::Workload, &radius.from, ""),
            reachable: reachable.into_values().collect(),
        })
    }

    /// What the policies in force allow between workloads, each edge marked
    /// observed or not; a peer outside the caller's scope is its namespace.
    pub async fn allowed(&self, who: &Principal, q: AllowedQuery) -> Result<Allowed, ServiceError> {
        let target = q.namespace.clone().unwrap_or_else(|| "allowed edges".into());
        self.authorize(who, Op::AllowedEdges, &target)?;
        if let Some(ns) = &q.namespace {
            self.in_scope(who, Op::AllowedEdges, &target, ns)?;
        }
        let model = self.ctx.with_policy(|s| Ok(s.model().clone())).await?;
        let namespace = q.namespace.clone();
        let edges = self
            .ctx
            .with_observation(move |p| {
                Ok(p.allowed_edges(&model, namespace.as_deref()).map_err(|TooManyPairs(pairs)| pairs))
            })
            .await?
            .map_err(|pairs| {
                ServiceError::bad(
                    "namespace",
                    format!(
                        "comparing every workload with every other means {pairs} pairs (at most {MAX_PAIRS}): name a namespace"
                    ),
                )
            })?;
        let scope = &who.scope;
        let mut out = Builder::default();
        let mut allowed = std::collections::BTreeSet::new();
        for e in edges.iter().filter(|e| view::visible(scope, &e.src) || view::visible(scope, &e.dst)) {
            let (a, b) = (out.node(scope, Level::Workload, &e.src, ""), out.node(scope, Level::Workload, &e.dst, ""));
            allowed.insert((a, b, e.protocol, e.port, e.observed));
        }
        Ok(Allowed {
            nodes: out.nodes.into_values().collect(),
            edges: allowed
                .into_iter()
                .map(|(source, destination, protocol, port, observed)| AllowedEdge {
                    source,
                    destination,
                    protocol: proto::name(protocol),
                    port,
                    observed,
                })
                .collect(),
        })
    }

    /// Baselines of the workloads in scope.
    pub async fn baselines(&self, who: &Principal) -> Result<Baselines, ServiceError> {
        self.authorize(who, Op::Baselines, "baselines")?;
        let scope = who.scope.clone();
        Ok(self
            .ctx
            .with_observation(move |p| {
                let cfg = p.learner().config();
                let workloads = p
                    .learner()
                    .workloads()
                    .iter()
                    .filter(|(w, _)| view::visible(&scope, w))
                    .filter_map(|(w, b)| {
                        Some(WorkloadBaseline {
                            workload: view::workload_ref(w)?,
                            phase: match b.phase {
                                bulkhead_graph::baseline::Phase::Learning => Phase::Learning,
                                bulkhead_graph::baseline::Phase::Stable => Phase::Stable,
                            },
                            first_seen_ns: b.first_seen_ns,
                            last_new_edge_ns: b.last_new_edge_ns,
                            stable_since_ns: b.stable_since_ns,
                            edges: b.edges,
                        })
                    })
                    .collect();
                Ok(Baselines {
                    window_seconds: cfg.window_ns / 1_000_000_000,
                    quiet_seconds: cfg.quiet_ns / 1_000_000_000,
                    workloads,
                })
            })
            .await?)
    }

    /// Anomalies of workloads in scope, newest first, a page at a time. An
    /// anomaly belongs to the workload whose baseline it breaks: another
    /// tenant's workload calling in shows as this tenant's ingress anomaly,
    /// never as that workload's own egress one (which would name it).
    pub async fn anomalies(&self, who: &Principal, q: AnomalyQuery) -> Result<Page<Anomaly>, ServiceError> {
        self.authorize(who, Op::Anomalies, "anomalies")?;
        let limit = page_size(q.limit)?;
        let before = cursor_in("anomalies", q.cursor.as_deref())?;
        let since = time("since", q.since.as_deref())?;
        let workload = q
            .workload
            .as_deref()
            .map(|w| {
                Named::parse(w)
                    .ok_or_else(|| ServiceError::bad("workload", format!("{w:?} is not \"namespace/name\" or a name")))
            })
            .transpose()?;
        let scope = who.scope.clone();
        let mut all = self
            .ctx
            .with_observation(move |p| Ok(p.learner().anomalies().into_iter().cloned().collect::<Vec<_>>()))
            .await?;
        all.sort_by_key(|a| std::cmp::Reverse(a.id));
        let matching = all.into_iter().filter(|a| {
            scope.either(a.workload.namespace(), None)
                && q.namespace.as_ref().is_none_or(|ns| [a.edge.src.namespace(), a.edge.dst.namespace()].contains(&Some(ns.as_str())))
                && workload.as_ref().is_none_or(|w| {
                    matches!(&a.workload, Entity::Workload { namespace, name, .. } if **name == *w.name && w.namespace.as_deref().is_none_or(|n| n == &**namespace))
                })
                && since.is_none_or(|t| a.last_seen_ns >= t)
                && q.kind.is_none_or(|k| a.kind == k)
                && before.is_none_or(|b| a.id < b)
        });
        let mut items: Vec<Anomaly> = Vec::new();
        let mut more = false;
        for a in matching {
            if items.len() == limit {
                more = true;
                break;
            }
            let Some(w) = view::workload_ref(&a.workload) else { continue };
            let ip = a.evidence.first().map(|f| (f.src_ip, f.dst_ip));
            let unspecified = std::net::IpAddr::from([0, 0, 0, 0]);
            let (sip, dip) = ip.unwrap_or((unspecified, unspecified));
            let source = view::peer(&who.scope, &a.edge.src, a.evidence.first().map_or("", |f| &f.src_pod), sip);
            let scan = a.scan.as_ref().map(|s| ScanSummary {
                source_ip: s.source_ip,
                source_pod: if source.pod.is_some() { s.source_pod.clone() } else { String::new() },
                ports: s.ports,
                hosts: s.hosts,
                sample_ports: s.sample_ports.clone(),
                folded: s.folded,
                unlearned: s.unlearned,
            });
            items.push(Anomaly {
                id: a.id,
                kind: a.kind,
                scan,
                workload: w,
                side: a.side,
                source,
                destination: view::peer(&who.scope, &a.edge.dst, a.evidence.first().map_or("", |f| &f.dst_pod), dip),
                protocol: proto::name(a.edge.protocol),
                port: a.edge.port,
                first_seen_ns: a.first_seen_ns,
                last_seen_ns: a.last_seen_ns,
                connections: a.connections,
                dropped: a.dropped,
                evidence: a.evidence.iter().map(|f| view::flow(&who.scope, 0, f)).collect(),
            });
        }
        let next_cursor = if more { items.last().map(|a| cursor_out("anomalies", a.id)) } else { None };
        Ok(Page { items, next_cursor })
    }
}
