//! The automatic quarantine: the source workload of an anomaly of a kind
//! the operator named is quarantined by the rule itself, audited under the
//! rule's name (`rule:auto-quarantine/KIND`), and released like any other
//! quarantine, by a person.

use std::collections::BTreeMap;

use bulkhead_api::audit::Event;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::quarantine::QuarantineRequest;
use bulkhead_graph::Entity;
use bulkhead_graph::baseline::Anomaly;

use super::alerts::{alert, describe};
use crate::auth::Principal;
use crate::service::Service;

/// The rule's audited name for an anomaly kind.
pub fn rule_name(kind: bulkhead_model::AnomalyKind) -> String {
    format!("auto-quarantine/{kind}")
}

/// Quarantines the anomaly's source workload; the alert saying so, or why
/// it could not be done. Nothing when the source is not a workload.
pub(super) async fn quarantine_source(
    service: &Service,
    a: &Anomaly,
    external: &str,
) -> Option<bulkhead_api::alertmanager::Alert> {
    let Entity::Workload { namespace, name, .. } = &a.edge.src else {
        tracing::info!(id = a.id, source = %describe(&a.edge.src), "auto-quarantine: the source is not a workload");
        return None;
    };
    let who = Principal::rule(&rule_name(a.kind));
    let target = format!("{namespace}/{name}");
    let reason = format!("automatic: {} anomaly {} ({} attempts, {} dropped)", a.kind, a.id, a.connections, a.dropped);
    let req = QuarantineRequest { pod: None, workload: Some(target.clone()), reason: reason.clone() };
    let (summary, outcome) = match service.quarantine(&who, req).await {
        Ok(q) => (format!("{target} quarantined by rule {} (quarantine {})", who.user, q.id), "quarantined"),
        Err(e) => {
            tracing::error!(id = a.id, %target, error = %e, "auto-quarantine failed");
            let detail = format!("{reason}: {e}");
            let event = Event {
                action: "quarantine",
                target: &format!("workload {target}"),
                namespaces: vec![namespace.to_string()],
                detail: &detail,
                before: None,
                after: None,
            };
            if let Err(audit) = service.context().audit.event(&who.caller(), Outcome::Failed, event) {
                tracing::error!(error = %audit, "auditing a failed auto-quarantine");
            }
            (format!("rule {} could not quarantine {target}: {e}", who.user), "failed")
        }
    };
    let labels = BTreeMap::from([
        ("alertname".to_string(), "BulkheadAutoQuarantine".to_string()),
        ("severity".to_string(), "critical".to_string()),
        ("namespace".to_string(), namespace.to_string()),
        ("workload".to_string(), target.clone()),
        ("anomaly_id".to_string(), a.id.to_string()),
        ("rule".to_string(), who.user.clone()),
        ("outcome".to_string(), outcome.to_string()),
    ]);
    Some(alert(labels, summary, reason, a.last_seen_ns, format!("{external}/#/quarantine")))
}
