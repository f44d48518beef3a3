//! The exposure report, scoped: a tenant gets the ports of its namespaces,
//! with workloads of other namespaces shown as their namespace. The edges
//! of the window are read under the pipeline's lock; the report is computed
//! after it is released, so flows keep flowing meanwhile.

use std::collections::BTreeMap;

use bulkhead_api::v1::exposure::{
    CanReach, ExposedBy, ExposedPort, Exposure, ExposureQuery, Finding, FindingCount, HeardProtocol, Listening,
    NamespaceReach, Reached,
};
use bulkhead_api::v1::graph::{GraphNode, Level};
use bulkhead_graph::Entity;
use bulkhead_graph::exposure::{self, Input};
use bulkhead_policy::inventory::Pod;

use super::{Op, Service, ServiceError, time, view};
use crate::auth::{Principal, Scope};
use crate::error::ControllerError;
use crate::observation::flows::now_ns;

/// "Did reach" covers the last day unless told otherwise.
const DEFAULT_WINDOW_NS: i64 = 24 * 3_600_000_000_000;

/// Nodes in `scope`, each once (redacted ones collapse into their namespace).
fn nodes<'a>(scope: &Scope, es: impl IntoIterator<Item = &'a Entity>) -> Vec<GraphNode> {
    let mut out: BTreeMap<String, GraphNode> = BTreeMap::new();
    for e in es {
        let n = view::node(scope, Level::Workload, e, "");
        out.entry(n.id.clone()).or_insert(n);
    }
    out.into_values().collect()
}

fn document(scope: &Scope, p: exposure::ExposedPort) -> ExposedPort {
    let mut reached: BTreeMap<String, Reached> = BTreeMap::new();
    for r in &p.did_reach {
        let source = view::node(scope, Level::Workload, &r.source, "");
        let e =
            reached.entry(source.id.clone()).or_insert(Reached { source, connections: 0, dropped: 0, last_seen_ns: 0 });
        e.connections += r.connections;
        e.dropped += r.dropped;
        e.last_seen_ns = e.last_seen_ns.max(r.last_seen_ns);
    }
    let mut did_reach: Vec<Reached> = reached.into_values().collect();
    did_reach.sort_by(|a, b| b.connections.cmp(&a.connections).then_with(|| a.source.id.cmp(&b.source.id)));
    ExposedPort {
        workloads: nodes(scope, &p.workloads),
        class: p.class,
        exposed_by: p.exposed_by.into_iter().map(|e| ExposedBy { via: e.via, detail: e.detail }).collect(),
        protocol: p.protocol.as_str().to_string(),
        port: p.port,
        targets: p.targets,
        name: p.name,
        declared_protocol: p.declared_protocol,
        speaks: p.speaks,
        heard: p
            .heard
            .into_iter()
            .map(|h| HeardProtocol {
                protocol: h.protocol,
                client_samples: h.heard.client_samples,
                server_samples: h.heard.server_samples,
                last_seen_ns: h.heard.last_ns,
                hosts: h.heard.hosts.into_iter().collect(),
                alpn: h.heard.alpn.into_iter().collect(),
                methods: h.heard.methods.into_iter().collect(),
            })
            .collect(),
        declared: p.declared,
        policed: p.policed,
        listening: p.listening.map(|l| Listening {
            pods_read: l.pods_read as u64,
            open: l.open,
            loopback_only: l.loopback_only,
            closed: l.closed,
            read_ns: l.read_ns,
        }),
        can_reach: CanReach {
            world: p.can_reach.world,
            namespaces: p
                .can_reach
                .namespaces
                .into_iter()
                .map(|n| NamespaceReach { namespace: n.namespace, workloads: n.workloads as u64, of: n.of as u64 })
                .collect(),
            every_namespace: p.can_reach.every_namespace,
            workloads: nodes(scope, &p.can_reach.workloads),
            workloads_total: p.can_reach.workloads_total as u64,
        },
        did_reach,
        findings: p
            .findings
            .into_iter()
            .map(|f| Finding {
                kind: f.kind,
                message: f.message,
                evidence: f.evidence,
                workloads: nodes(scope, &f.workloads),
            })
            .collect(),
        namespace: p.namespace,
        service: p.service,
    }
}

impl Service {
    /// The exposure report `q` asks for.
    pub async fn exposure(&self, who: &Principal, q: ExposureQuery) -> Result<Exposure, ServiceError> {
        let target = q.namespace.clone().unwrap_or_else(|| "exposure".into());
        self.authorize(who, Op::Exposure, &target)?;
        if let Some(ns) = &q.namespace {
            self.in_scope(who, Op::Exposure, &target, ns)?;
        }
        let until = now_ns();
        let since = time("since", q.since.as_deref())?.unwrap_or(until - DEFAULT_WINDOW_NS);
        if since >= until {
            return Err(ServiceError::bad("since", "must be in the past"));
        }
        let model = self.ctx.with_policy(|s| Ok(s.model().clone())).await?;
        let (observed, apps) = self
            .ctx
            .with_observation(move |p| {
                let g = p.graph_view_between(None, Some(since), Some(until))?;
                let edges = g.edges.into_iter().map(|e| (e.src, e.dst, e.key, e.stats)).collect::<Vec<_>>();
                Ok((edges, p.apps().clone()))
            })
            .await?;
        let sockets: exposure::Sockets = self
            .ctx
            .nodes
            .lock()
            .map(|nodes| nodes.values().flat_map(|n| n.sockets.clone()).collect())
            .unwrap_or_default();
        let report = tokio::task::spawn_blocking(move || {
            let workload_of = |pod: &Pod| model.workload_of(pod);
            let input = Input {
                inventory: &model.inventory,
                policies: &model.policies,
                workload_of: &workload_of,
                observed: &observed,
                apps: &apps,
                since_ns: since,
                sockets: &sockets,
            };
            exposure::report(&input)
        })
        .await
        .map_err(|e| ControllerError::Serve { what: "exposure report", message: format!("worker failed: {e}") })?;
        let scope = &who.scope;
        let visible = exposure::Exposure {
            ports: report
                .ports
                .into_iter()
                .filter(|p| scope.contains(&p.namespace) && q.namespace.as_ref().is_none_or(|ns| *ns == p.namespace))
                .filter(|p| q.finding.is_none_or(|k| p.findings.iter().any(|f| f.kind == k)))
                .collect(),
        };
        let counts = visible.finding_counts();
        let ports: Vec<ExposedPort> = visible.ports.into_iter().map(|p| document(scope, p)).collect();
        Ok(Exposure {
            since_ns: since,
            until_ns: until,
            ports,
            findings: counts.into_iter().map(|(kind, count)| FindingCount { kind, count: count as u64 }).collect(),
        })
    }
}
