//! Alerts out: anomalies and what the response rules did, posted to every
//! configured webhook in Alertmanager's webhook format, one message per
//! alert name, retried with backoff, each result counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_api::alertmanager::{Alert, AlertStatus, Message, NO_END, fingerprint};
use bulkhead_api::v1::time::rfc3339;
use bulkhead_graph::Entity;
use bulkhead_graph::baseline::Anomaly;
use bulkhead_model::AnomalyKind;

use crate::metrics::Metrics;

/// The receiver name the messages carry.
const RECEIVER: &str = "bulkhead";
/// Attempts per message and webhook.
const ATTEMPTS: u32 = 3;
/// How long one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The alert name of an anomaly kind.
pub fn alert_name(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::NewEdge => "BulkheadNewEdge",
        AnomalyKind::PortScan => "BulkheadPortScan",
        AnomalyKind::HostSweep => "BulkheadHostSweep",
    }
}

/// An entity as alert labels show it.
pub fn describe(e: &Entity) -> String {
    match e {
        Entity::Workload { namespace, name, .. } => format!("{namespace}/{name}"),
        Entity::Service { namespace, name } => format!("service {namespace}/{name}"),
        Entity::World { cidr } => format!("world {cidr}"),
        Entity::Host { node } => format!("node {node}"),
    }
}

/// An alert with these labels (`alertname` and `severity` among them).
pub fn alert(
    labels: BTreeMap<String, String>,
    summary: String,
    description: String,
    starts_ns: i64,
    link: String,
) -> Alert {
    Alert {
        status: AlertStatus::Firing,
        fingerprint: fingerprint(&labels),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), summary), ("description".to_string(), description)]),
        starts_at: rfc3339(starts_ns),
        ends_at: NO_END.into(),
        generator_url: link,
    }
}

/// Where the console shows an anomaly: the scanning pod's access trail from
/// 30 minutes before, else the workload's flows.
pub fn console_link(external: &str, a: &Anomaly) -> String {
    let pod = a.scan.as_ref().map(|s| s.source_pod.as_str()).filter(|p| !p.is_empty());
    match (pod, &a.workload) {
        (Some(p), _) => {
            let since = rfc3339(a.first_seen_ns.saturating_sub(30 * 60 * 1_000_000_000));
            format!("{external}/#/trail?pod={p}&since={since}")
        }
        (None, Entity::Workload { namespace, name, .. }) => format!("{external}/#/flows?workload={namespace}/{name}"),
        _ => format!("{external}/#/flows"),
    }
}

/// The alert of one anomaly.
pub fn anomaly(a: &Anomaly, external: &str) -> Alert {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), alert_name(a.kind).to_string()),
        ("severity".to_string(), if a.kind == AnomalyKind::NewEdge { "warning" } else { "critical" }.to_string()),
        ("kind".to_string(), a.kind.as_str().to_string()),
        ("anomaly_id".to_string(), a.id.to_string()),
        ("workload".to_string(), describe(&a.workload)),
        ("source".to_string(), describe(&a.edge.src)),
        ("destination".to_string(), describe(&a.edge.dst)),
    ]);
    if let Some(ns) = a.workload.namespace() {
        labels.insert("namespace".into(), ns.to_string());
    }
    let proto = bulkhead_model::proto::name(a.edge.protocol);
    let (summary, description) = match &a.scan {
        Some(s) => {
            labels.insert("source_ip".into(), s.source_ip.to_string());
            if !s.source_pod.is_empty() {
                labels.insert("pod".into(), s.source_pod.clone());
            }
            let what = if a.kind == AnomalyKind::PortScan { "port scan" } else { "host sweep" };
            (
                format!("{what} from {} ({})", describe(&a.edge.src), s.source_ip),
                format!(
                    "{} attempts ({} dropped) on {} ports of {} hosts since {}; ports {:?}",
                    a.connections,
                    a.dropped,
                    s.ports,
                    s.hosts,
                    rfc3339(a.first_seen_ns),
                    s.sample_ports
                ),
            )
        }
        None => {
            labels.insert("port".into(), a.edge.port.to_string());
            labels.insert("protocol".into(), proto.clone());
            (
                format!("new {} edge at {}", a.side, describe(&a.workload)),
                format!(
                    "{} -> {} {proto}/{}: {} connections ({} dropped), not in the stable baseline",
                    describe(&a.edge.src),
                    describe(&a.edge.dst),
                    a.edge.port,
                    a.connections,
                    a.dropped
                ),
            )
        }
    };
    alert(labels, summary, description, a.first_seen_ns, console_link(external, a))
}

/// Posts alerts to the webhooks.
pub struct Sender {
    client: Option<reqwest::Client>,
    urls: Vec<String>,
    external: String,
    metrics: Arc<Metrics>,
}

impl Sender {
    /// A sender to `urls` (none: alerts are only counted).
    pub fn new(urls: &[String], external: &str, metrics: Arc<Metrics>) -> Self {
        let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client: alerts are counted as failed");
                None
            }
        };
        Self { client, urls: urls.to_vec(), external: external.to_string(), metrics }
    }

    /// Sends `alerts`, one message per alert name to each webhook.
    pub async fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() || self.urls.is_empty() {
            return;
        }
        let mut groups: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
        for a in alerts {
            groups.entry(a.labels.get("alertname").cloned().unwrap_or_default()).or_default().push(a);
        }
        for (_, group) in groups {
            let n = group.len() as u64;
            let message = Message::group(RECEIVER, &self.external, group);
            for url in &self.urls {
                let result = if self.post(url, &message).await { "sent" } else { "failed" };
                self.metrics.record_alerts(result, n);
            }
        }
    }

    async fn post(&self, url: &str, message: &Message) -> bool {
        let Some(client) = &self.client else { return false };
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            match client.post(url).json(message).send().await {
                Ok(r) if r.status().is_success() => return true,
                Ok(r) => tracing::warn!(%url, status = %r.status(), attempt, "alert webhook refused the alerts"),
                Err(e) => tracing::warn!(%url, error = %e, attempt, "alert webhook unreachable"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        false
    }
}
