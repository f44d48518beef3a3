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
        Self { registry, apply, quarantines }
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
        let name = node.name().to_string();
        if let Ok(stats) = node.maps().stats() {
            let _ = writeln!(
                out,
                "# HELP bulkhead_datapath_packets Packets by verdict.\n# TYPE bulkhead_datapath_packets counter"
            );
            for (idx, verdict) in [
                (abi::BH_STAT_PKTS_FORWARDED, "forwarded"),
                (abi::BH_STAT_PKTS_DROPPED, "dropped"),
                (abi::BH_STAT_PKTS_AUDIT, "audit"),
            ] {
                let _ = writeln!(
                    out,
                    "bulkhead_datapath_packets_total{{node=\"{name}\",verdict=\"{verdict}\"}} {}",
                    stats.get(idx)
                );
            }
            let _ = writeln!(
                out,
                "# HELP bulkhead_datapath_drops Dropped packets by stable reason.\n# TYPE bulkhead_datapath_drops counter"
            );
            for r in Reason::ALL.iter().filter(|r| r.code() > 0 && r.code() < 32) {
                let _ = writeln!(
                    out,
                    "bulkhead_datapath_drops_total{{node=\"{name}\",reason=\"{}\"}} {}",
                    r.as_str(),
                    stats.drops_for(*r)
                );
            }
            let _ = writeln!(
                out,
                "# HELP bulkhead_flow_events Kernel flow events by outcome; lost means the ring was full.\n# TYPE bulkhead_flow_events counter"
            );
            for (idx, outcome) in [
                (abi::BH_STAT_EVENTS_SENT, "sent"),
                (abi::BH_STAT_EVENTS_LOST, "lost"),
                (abi::BH_STAT_EVENTS_SUPPRESSED, "suppressed"),
                (abi::BH_STAT_DENY_EVENTS_RATELIMITED, "ratelimited"),
            ] {
                let _ = writeln!(
                    out,
                    "bulkhead_flow_events_total{{node=\"{name}\",outcome=\"{outcome}\"}} {}",
                    stats.get(idx)
                );
            }
            let _ = writeln!(
                out,
                "# HELP bulkhead_connections_new Connections admitted to conntrack.\n# TYPE bulkhead_connections_new counter"
            );
            let _ =
                writeln!(out, "bulkhead_connections_new_total{{node=\"{name}\"}} {}", stats.get(abi::BH_STAT_CT_NEW));
        }
        let _ = writeln!(
            out,
            "# HELP bulkhead_flows_client_lost Flows a slow client missed.\n# TYPE bulkhead_flows_client_lost counter"
        );
        let _ = writeln!(
            out,
            "bulkhead_flows_client_lost_total{{node=\"{name}\"}} {}",
            hub.client_lost.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP bulkhead_flows_published Flows published by the agent.\n# TYPE bulkhead_flows_published counter"
        );
        let _ = writeln!(
            out,
            "bulkhead_flows_published_total{{node=\"{name}\"}} {}",
            hub.published.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP bulkhead_endpoints Endpoints attached on this node.\n# TYPE bulkhead_endpoints gauge"
        );
        let _ = writeln!(out, "bulkhead_endpoints{{node=\"{name}\"}} {}", node.live_endpoint_ids().len());
        out.push_str("# EOF\n");
        out
    }
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    node: Arc<Mutex<Node>>,
    hub: Arc<FlowHub>,
    metrics: Arc<Metrics>,
) -> Result<(), std::io::Error> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (node, hub, metrics) = (node.clone(), hub.clone(), metrics.clone());
            async move {
                let body = tokio::task::spawn_blocking(move || metrics.render(&node, &hub)).await.unwrap_or_default();
                ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
