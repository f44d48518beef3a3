//! Controller metrics (`bulkhead_controller_*`): changes by source and
//! result (the error's label on failure), compile time, the generation,
//! whether each node enforces it and why not, the flow pipeline, and API
//! requests by result.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use bulkhead_api::v1::status::Status;

use crate::context::Context;

type Labels = Vec<(String, String)>;

/// The controller's metric families.
pub struct Metrics {
    registry: Registry,
    changes: Family<Labels, Counter>,
    compile: Histogram,
    generation: Gauge,
    objects: Family<Labels, Gauge>,
    in_sync: Family<Labels, Gauge>,
    flows: Family<Labels, Gauge>,
    flows_lost: Family<Labels, Gauge>,
    syncs: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    quarantine: Histogram,
    blocks: Family<Labels, Counter>,
    anomalies: Family<Labels, Counter>,
    quarantines: Family<Labels, Counter>,
    findings: Family<Labels, Gauge>,
    alerts: Family<Labels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bulkhead_controller");
        let changes = Family::<Labels, Counter>::default();
        let compile = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let generation = Gauge::default();
        let objects = Family::<Labels, Gauge>::default();
        let in_sync = Family::<Labels, Gauge>::default();
        let flows = Family::<Labels, Gauge>::default();
        let flows_lost = Family::<Labels, Gauge>::default();
        let syncs = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let quarantine = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let blocks = Family::<Labels, Counter>::default();
        let anomalies = Family::<Labels, Counter>::default();
        let quarantines = Family::<Labels, Counter>::default();
        let findings = Family::<Labels, Gauge>::default();
        let alerts = Family::<Labels, Counter>::default();
        registry.register(
            "anomalies",
            "Anomalies raised, by kind (new_edge, port_scan, host_sweep)",
            anomalies.clone(),
        );
        registry.register(
            "quarantines",
            "Quarantines made and released, by action (quarantine, release) and by whom (person, rule, system)",
            quarantines.clone(),
        );
        registry.register(
            "findings",
            "Exposure findings now, by kind (database_exposed, cross_tenant, unused_path, undeclared, no_policy)",
            findings.clone(),
        );
        registry.register(
            "alerts",
            "Alerts posted to the webhooks, by result (sent, failed, lost: never handed out, too many waiting)",
            alerts.clone(),
        );
        registry.register("blocks", "Block-list changes by action (block, unblock, expired)", blocks.clone());
        registry.register(
            "quarantine_seconds",
            "From a quarantine request's arrival to every agent's report that the drop is enforced",
            quarantine.clone(),
        );
        registry.register(
            "syncs",
            "Agent reconciles by node and result (ok, or connect, status, apply, unprotected, timeout)",
            syncs.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by transport (http, grpc), operation and result (ok, or the problem: unauthenticated, forbidden, not_found, bad_request, conflict, unavailable, internal)",
            requests.clone(),
        );
        registry.register(
            "flows",
            "Flow pipeline running totals since the store was created: received, records, stored, evicted (retention), anomalies",
            flows.clone(),
        );
        registry.register(
            "flows_lost",
            "Flows lost, by stage (kernel, agent_buffer, undecodable, storage), since the store was created",
            flows_lost.clone(),
        );
        registry.register(
            "changes",
            "Changes by source (api, kubernetes) and result (ok or the error label)",
            changes.clone(),
        );
        registry.register("compile_seconds", "Time to validate and compile a change", compile.clone());
        registry.register("generation", "Generation of the desired state", generation.clone());
        registry.register(
            "objects",
            "Pods, NetworkPolicies, ClusterNetworkPolicies and identities in the model",
            objects.clone(),
        );
        registry.register("node_in_sync", "1 when the node's agent enforces the current generation", in_sync.clone());
        Self {
            registry,
            changes,
            compile,
            generation,
            objects,
            in_sync,
            flows,
            flows_lost,
            syncs,
            requests,
            quarantine,
            blocks,
            anomalies,
            quarantines,
            findings,
            alerts,
        }
    }

    /// Counts one anomaly.
    pub fn record_anomaly(&self, kind: bulkhead_model::AnomalyKind) {
        self.anomalies.get_or_create(&vec![("kind".into(), kind.as_str().into())]).inc();
    }

    /// Counts a quarantine made or released, and by whom (`person`, `rule`, `system`).
    pub fn record_quarantine_action(&self, action: &'static str, by: &'static str) {
        self.quarantines.get_or_create(&vec![("action".into(), action.into()), ("by".into(), by.into())]).inc();
    }

    /// Sets the number of exposure findings of each kind.
    pub fn record_findings(&self, counts: &[(bulkhead_model::exposure::FindingKind, u64)]) {
        for kind in bulkhead_model::exposure::FindingKind::ALL {
            let n = counts.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
            self.findings
                .get_or_create(&vec![("kind".into(), kind.as_str().into())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts alerts by result (`sent`, `failed`, `lost`).
    pub fn record_alerts(&self, result: &'static str, n: u64) {
        self.alerts.get_or_create(&vec![("result".into(), result.into())]).inc_by(n);
    }

    /// Counts one block-list change.
    pub fn record_block(&self, action: &'static str) {
        self.blocks.get_or_create(&vec![("action".into(), action.into())]).inc();
    }

    /// Counts one change and, if it compiled, its compile time.
    pub fn record_change(&self, source: &str, result: Result<f64, &'static str>) {
        let label = match result {
            Ok(seconds) => {
                self.compile.observe(seconds);
                "ok"
            }
            Err(l) => l,
        };
        self.changes.get_or_create(&vec![("source".into(), source.into()), ("result".into(), label.into())]).inc();
    }

    /// Counts one reconcile of a node's agent.
    pub fn record_sync(&self, node: &str, result: Result<(), &'static str>) {
        let label = result.err().unwrap_or("ok");
        self.syncs.get_or_create(&vec![("node".into(), node.into()), ("result".into(), label.into())]).inc();
    }

    /// Records how long a quarantine took to be enforced.
    pub fn record_quarantine(&self, micros: u64) {
        self.quarantine.observe(micros as f64 / 1e6);
    }

    /// Counts one API request.
    pub fn record_request(&self, transport: &'static str, operation: &'static str, result: &'static str) {
        self.requests
            .get_or_create(&vec![
                ("transport".into(), transport.into()),
                ("operation".into(), operation.into()),
                ("result".into(), result.into()),
            ])
            .inc();
    }

    /// Sets the flow pipeline's figures (rendered with the next `render`).
    pub fn record_flows(&self, stats: &bulkhead_api::v1::status::FlowPipeline) {
        for (what, n) in [
            ("received", stats.received),
            ("records", stats.records),
            ("stored", stats.stored),
            ("evicted", stats.evicted),
            ("anomalies", stats.anomalies),
        ] {
            self.flows.get_or_create(&vec![("what".into(), what.into())]).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for stage in ["kernel", "source_rate", "agent_buffer", "undecodable", "storage"] {
            let n = stats.lost.get(stage).copied().unwrap_or(0);
            self.flows_lost
                .get_or_create(&vec![("stage".into(), stage.into())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The exposition text, with gauges set from `st` (the status now).
    pub fn render(&self, st: &Status) -> String {
        self.record_flows(&st.flows);
        self.generation.set(i64::try_from(st.generation).unwrap_or(i64::MAX));
        for (kind, n) in [
            ("pods", st.pods),
            ("network_policies", st.network_policies),
            ("cluster_policies", st.cluster_policies),
            ("identities", st.identities),
            ("policy_entries", st.policy_entries),
        ] {
            self.objects.get_or_create(&vec![("kind".into(), kind.into())]).set(i64::from(n));
        }
        for n in &st.nodes {
            self.in_sync.get_or_create(&vec![("node".into(), n.node.clone())]).set(i64::from(n.in_sync));
        }
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics`, and the probes `/healthz` and `/readyz` (the
/// controller's state answers), on `addr` until the process ends. The
/// probes answer no data. A standby is ready too (drains and rolling
/// updates need it); the Services follow the leader's pod label instead.
pub async fn serve(addr: std::net::SocketAddr, ctx: Arc<Context>) -> Result<(), std::io::Error> {
    let probe = ctx.clone();
    let probe = move || {
        let ctx = probe.clone();
        async move {
            match ctx.status().await {
                Ok(_) => (axum::http::StatusCode::OK, "ok\n".to_string()),
                Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let ctx = ctx.clone();
                async move {
                    let body = match ctx.status().await {
                        Ok(st) => ctx.metrics.render(&st),
                        Err(e) => format!("# status unavailable: {e}\n"),
                    };
                    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                }
            }),
        )
        .route("/healthz", axum::routing::get(probe.clone()))
        .route("/readyz", axum::routing::get(probe));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
