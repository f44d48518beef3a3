//! What the controller does on its own when something happens: each new
//! anomaly is counted, quarantines its source workload when the automatic
//! rule is on for its kind, and is posted, with what the rule did, to the
//! alert webhooks. Exposure findings are recounted for the metrics. Runs as
//! background tasks over what the learner hands out once a second.

pub mod alerts;
mod rule;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_model::AnomalyKind;

use crate::auth::Principal;
use crate::context::Context;
use crate::observation::flows::now_ns;
use crate::service::Service;

/// The response settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseConfig {
    /// Anomaly kinds whose source workload is quarantined automatically
    /// (none by default).
    pub auto_quarantine: BTreeSet<AnomalyKind>,
    /// URLs that get every alert, in Alertmanager's webhook format.
    pub webhooks: Vec<String>,
    /// The console's address, for the alerts' links (default: the API's URL).
    pub external_url: Option<String>,
}

/// Hands out new anomalies every second: counted, the rule applied, alerted.
pub async fn run(service: Service, cfg: ResponseConfig, api_url: Option<String>) {
    let ctx: Arc<Context> = service.context().clone();
    let external = cfg.external_url.clone().or(api_url).unwrap_or_default();
    let sender = alerts::Sender::new(&cfg.webhooks, &external, ctx.metrics.clone());
    tokio::spawn(count_findings(service.clone()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut lost_seen = 0;
    loop {
        tick.tick().await;
        let taken = ctx.with_observation(|p| Ok((p.take_fresh_anomalies(now_ns()), p.learner().fresh_lost()))).await;
        let (fresh, lost) = match taken {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "reading new anomalies");
                continue;
            }
        };
        if lost > lost_seen {
            ctx.metrics.record_alerts("lost", lost - lost_seen);
            lost_seen = lost;
        }
        let mut out = Vec::new();
        for a in &fresh {
            ctx.metrics.record_anomaly(a.kind);
            tracing::warn!(id = a.id, kind = %a.kind, connections = a.connections, "anomaly");
            out.push(alerts::anomaly(a, &external));
            if cfg.auto_quarantine.contains(&a.kind)
                && let Some(alert) = rule::quarantine_source(&service, a, &external).await
            {
                out.push(alert);
            }
        }
        sender.send(out).await;
    }
}

/// How often the findings gauges are recounted.
const FINDINGS_EVERY: Duration = Duration::from_secs(60);

/// Recounts the exposure findings for the metrics, once a minute.
async fn count_findings(service: Service) {
    let who = Principal::system("metrics");
    let mut tick = tokio::time::interval(FINDINGS_EVERY);
    loop {
        tick.tick().await;
        match service.exposure(&who, Default::default()).await {
            Ok(report) => {
                let counts: Vec<_> = report.findings.iter().map(|c| (c.kind, c.count)).collect();
                service.context().metrics.record_findings(&counts);
            }
            Err(e) => tracing::warn!(error = %e, "counting exposure findings"),
        }
    }
}
