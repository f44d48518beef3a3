//! Prometheus metrics (`bulkhead_*`). Kernel counters are per-CPU map values,
//! read at scrape time and exported as monotonically increasing counters.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bulkhead_dataplane::Reason;
use bulkhead_dataplane::abi;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::flows::FlowHub;
use crate::node::Node;

/// Agent-side metrics; kernel counters are appended at scrape time.
pub struct Metrics {
    registry: Registry,
    apply: Family<Vec<(String, String)>, Counter>,
    /// Quarantines performed.
    pub quarantines: Counter,
    /// Set once the gRPC socket serves: what `/readyz` answers.
    pub ready: std::sync::atomic::AtomicBool,
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
    /// Registers the agent's own families.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bulkhead");
        let apply = Family::<Vec<(String, String)>, Counter>::default();
        let quarantines = Counter::default();
        registry.register("state_apply", "Desired-state applies by result (error label on failure)", apply.clone());
        registry.register("quarantine", "Quarantines performed through the API", quarantines.clone());
        Self { registry, apply, quarantines, ready: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Counts one apply; `Err` carries the error's metric label.
    pub fn record_apply(&self, result: Result<(), &'static str>) {
        let label = match result {
            Ok(()) => "ok",
            Err(l) => l,
        };
        self.apply.get_or_create(&vec![("result".into(), label.into())]).inc();
    }

    /// The whole exposition text.
    pub fn render(&self, node: &Mutex<Node>, hub: &FlowHub) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        // `encode` ends with "# EOF"; kernel families go before it.
        if let Some(i) = out.rfind("# EOF") {
            out.truncate(i);
        }
        let Ok(node) = node.lock() else { return out };
        let node_label = format!("node=\"{}\"", node.name());
        if let Ok(stats) = node.maps().stats() {
            let by =
                |rows: &[(u32, &str)]| rows.iter().map(|(i, l)| (l.to_string(), stats.get(*i))).collect::<Vec<_>>();
            let verdicts = by(&[
                (abi::BH_STAT_PKTS_FORWARDED, "forwarded"),
                (abi::BH_STAT_PKTS_DROPPED, "dropped"),
                (abi::BH_STAT_PKTS_AUDIT, "audit"),
            ]);
            family(
                &mut out,
                "bulkhead_datapath_packets",
                "counter",
                "Packets by verdict.",
                &node_label,
                "verdict",
                &verdicts,
            );
            let reasons: Vec<_> = Reason::ALL
                .iter()
                .filter(|r| r.code() > 0 && r.code() < 32)
                .map(|r| (r.as_str().to_string(), stats.drops_for(*r)))
                .collect();
            family(
                &mut out,
                "bulkhead_datapath_drops",
                "counter",
                "Dropped packets by stable reason.",
                &node_label,
                "reason",
                &reasons,
            );
            let outcomes = by(&[
                (abi::BH_STAT_EVENTS_SENT, "sent"),
                (abi::BH_STAT_EVENTS_LOST, "lost"),
                (abi::BH_STAT_EVENTS_SUPPRESSED, "suppressed"),
                (abi::BH_STAT_DENY_EVENTS_RATELIMITED, "ratelimited"),
                (abi::BH_STAT_EVENTS_RATELIMITED, "over_source_budget"),
            ]);
            let help = "Kernel flow events by outcome; lost means the ring was full, over_source_budget that their initiating address was over its rate.";
            family(&mut out, "bulkhead_flow_events", "counter", help, &node_label, "outcome", &outcomes);
            let samples = by(&[
                (abi::BH_STAT_SAMPLES_SENT, "sent"),
                (abi::BH_STAT_SAMPLES_OVER_BUDGET, "over_budget"),
                (abi::BH_STAT_SAMPLES_LOST, "lost"),
                (abi::BH_STAT_SAMPLES_DISABLED, "disabled"),
            ]);
            let help = "Payload samples for type identification by outcome; every one not sent is a skipped sample.";
            family(&mut out, "bulkhead_payload_samples", "counter", help, &node_label, "outcome", &samples);
            let new = [(String::new(), stats.get(abi::BH_STAT_CT_NEW))];
            family(
                &mut out,
                "bulkhead_connections_new",
                "counter",
                "Connections admitted to conntrack.",
                &node_label,
                "",
                &new,
            );
        }
        let lost = [(String::new(), hub.client_lost.load(Ordering::Relaxed))];
        family(
            &mut out,
            "bulkhead_flows_client_lost",
            "counter",
            "Flows a slow client missed.",
            &node_label,
            "",
            &lost,
        );
        let bad = [(String::new(), hub.undecodable.load(Ordering::Relaxed))];
        let help = "Flow records the agent could not decode (kernel and agent ABI out of step).";
        family(&mut out, "bulkhead_flow_records_undecodable", "counter", help, &node_label, "", &bad);
        let published = [(String::new(), hub.published.load(Ordering::Relaxed))];
        family(
            &mut out,
            "bulkhead_flows_published",
            "counter",
            "Flows published by the agent.",
            &node_label,
            "",
            &published,
        );
        let endpoints = [(String::new(), node.live_endpoint_ids().len() as u64)];
        family(
            &mut out,
            "bulkhead_endpoints",
            "gauge",
            "Endpoints attached on this node.",
            &node_label,
            "",
            &endpoints,
        );
        out.push_str("# EOF\n");
        out
    }
}

/// Appends one OpenMetrics family: HELP and TYPE, then one sample per row,
/// labelled with the node and (when `label` is not empty) `label=row`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, node_label: &str, label: &str, rows: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    let suffix = if kind == "counter" { "_total" } else { "" };
    for (value_label, v) in rows {
        let labels =
            if label.is_empty() { node_label.to_string() } else { format!("{node_label},{label}=\"{value_label}\"") };
        let _ = writeln!(out, "{name}{suffix}{{{labels}}} {v}");
    }
}

/// Serves `/metrics`, and the probes `/healthz` (the node's state is
/// usable) and `/readyz` (the gRPC socket serves too), on `addr` until the
/// process ends. The probes answer no data.
pub async fn serve(
    addr: std::net::SocketAddr,
    node: Arc<Mutex<Node>>,
    hub: Arc<FlowHub>,
    metrics: Arc<Metrics>,
) -> Result<(), std::io::Error> {
    use axum::http::StatusCode;
    let healthy = {
        let node = node.clone();
        move || node.lock().is_ok()
    };
    let live = healthy.clone();
    let ready_metrics = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (node, hub, metrics) = (node.clone(), hub.clone(), metrics.clone());
                async move {
                    let body =
                        tokio::task::spawn_blocking(move || metrics.render(&node, &hub)).await.unwrap_or_default();
                    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                }
            }),
        )
        .route(
            "/healthz",
            axum::routing::get(move || {
                let ok = live();
                async move {
                    if ok {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "node state poisoned\n")
                    }
                }
            }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ok = healthy() && ready_metrics.ready.load(std::sync::atomic::Ordering::Relaxed);
                async move {
                    if ok {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not serving yet\n")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
