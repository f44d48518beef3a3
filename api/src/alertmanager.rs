//! Alertmanager's webhook payload (version 4), which Bulkhead posts to a
//! receiver so that anything that takes Alertmanager's notifications
//! (incident tools, chat bridges, a relay into Alertmanager itself) takes
//! Bulkhead's alerts unchanged. Field names are Alertmanager's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the payload format.
pub const VERSION: &str = "4";

/// Alertmanager's zero time: an alert with no end yet.
pub const NO_END: &str = "0001-01-01T00:00:00Z";

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Happening now.
    Firing,
    /// Over.
    Resolved,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Identifying labels; `alertname` and `severity` always.
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`, for people.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, or [`NO_END`].
    pub ends_at: String,
    /// Where the alert can be seen (the console).
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// A stable hash of the labels.
    pub fingerprint: String,
}

/// One notification: a group of alerts with the labels they share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// [`VERSION`].
    pub version: String,
    /// Identifies the group.
    pub group_key: String,
    /// Alerts left out of this message.
    pub truncated_alerts: u64,
    /// Firing when any alert is.
    pub status: AlertStatus,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is made by.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has, with the same value.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has, with the same value.
    pub common_annotations: BTreeMap<String, String>,
    /// The sender's address for people (the console).
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

fn common(maps: impl Iterator<Item = BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut out: Option<BTreeMap<String, String>> = None;
    for m in maps {
        out = Some(match out {
            None => m,
            Some(c) => c.into_iter().filter(|(k, v)| m.get(k) == Some(v)).collect(),
        });
    }
    out.unwrap_or_default()
}

/// The fingerprint of a label set: FNV-1a over the sorted pairs, as 16 hex
/// digits (Alertmanager's is a hash of the same kind; only stability matters).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl Message {
    /// One message of `alerts`, all grouped by `alertname`.
    pub fn group(receiver: &str, external_url: &str, alerts: Vec<Alert>) -> Self {
        let name = alerts.first().and_then(|a| a.labels.get("alertname")).cloned().unwrap_or_default();
        let group_labels = BTreeMap::from([("alertname".to_string(), name.clone())]);
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Self {
            version: VERSION.into(),
            group_key: format!("{{}}:{{alertname=\"{name}\"}}"),
            truncated_alerts: 0,
            status,
            receiver: receiver.into(),
            common_labels: common(alerts.iter().map(|a| a.labels.clone())),
            common_annotations: common(alerts.iter().map(|a| a.annotations.clone())),
            group_labels,
            external_url: external_url.into(),
            alerts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, ns: &str) -> Alert {
        let labels = BTreeMap::from([
            ("alertname".to_string(), name.to_string()),
            ("namespace".to_string(), ns.to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]);
        Alert {
            status: AlertStatus::Firing,
            fingerprint: fingerprint(&labels),
            labels,
            annotations: BTreeMap::from([("summary".to_string(), format!("in {ns}"))]),
            starts_at: "2026-12-03T00:00:00Z".into(),
            ends_at: NO_END.into(),
            generator_url: "https://bulkhead.example/#/anomalies".into(),
        }
    }

    #[test]
    fn a_group_has_alertmanagers_field_names_and_common_labels() {
        let m = Message::group("ops", "https://bulkhead.example", vec![alert("A", "shop"), alert("A", "bank")]);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["version"], "4");
        assert_eq!(v["groupKey"], "{}:{alertname=\"A\"}");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["externalURL"], "https://bulkhead.example");
        assert_eq!(v["groupLabels"], serde_json::json!({"alertname": "A"}));
        assert_eq!(v["commonLabels"], serde_json::json!({"alertname": "A", "severity": "critical"}));
        assert_eq!(v["commonAnnotations"], serde_json::json!({}));
        assert_eq!(v["alerts"][0]["generatorURL"], "https://bulkhead.example/#/anomalies");
        assert_eq!(v["alerts"][0]["endsAt"], NO_END);
        assert_ne!(v["alerts"][0]["fingerprint"], v["alerts"][1]["fingerprint"]);
        assert_eq!(serde_json::from_value::<Message>(v).unwrap(), m);
    }
}
