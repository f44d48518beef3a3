//! `bulkhead lab status -o json`: what scripts and tests need to reach the
//! lab. Its `api` member is a documented contract:
//! `{"api": {"url": "https://127.0.0.1:PORT", "ca_file": PATH, "tokens": {"admin": PATH, "viewer": PATH}}}`,
//! each PATH a file holding one token (or the CA certificate).

use serde::Serialize;

use crate::api::ApiContract;
use crate::error::LabError;
use crate::state::LabState;

/// One pod as the report lists it.
#[derive(Debug, Serialize)]
pub struct PodReport {
    /// "namespace/name".
    pub pod: String,
    /// Node index, from 1.
    pub node: usize,
    /// Addresses.
    pub ips: Vec<String>,
    /// Attached, quarantined, or why it is not protected, as its agent reports.
    pub state: String,
}

/// One node as the report lists it.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// The generation its agent enforces, when it answered.
    pub generation: Option<u64>,
    /// Why its agent did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The lab's name.
    pub name: String,
    /// The controller's HTTPS API.
    pub api: Option<ApiContract>,
    /// The nodes.
    pub nodes: Vec<NodeReport>,
    /// The pods.
    pub pods: Vec<PodReport>,
}

/// The report of `lab`, asking each agent what it enforces.
pub async fn report(lab: &LabState) -> Result<Report, LabError> {
    let mut nodes = Vec::new();
    let mut states = std::collections::BTreeMap::new();
    for n in &lab.nodes {
        let status = match bulkhead_api::connect_unix(&n.socket).await {
            Ok(mut c) => c
                .get_status(bulkhead_api::agent::v1::StatusRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(|s| s.message().to_string()),
            Err(e) => Err(e.to_string()),
        };
        match status {
            Ok(s) => {
                for e in &s.endpoints {
                    let state = if e.quarantined {
                        "quarantined".to_string()
                    } else if e.attached {
                        "attached".to_string()
                    } else {
                        format!("NOT PROTECTED: {}", e.error)
                    };
                    states.insert(e.pod.clone(), state);
                }
                nodes.push(NodeReport { name: n.name.clone(), generation: Some(s.generation), error: None });
            }
            Err(e) => nodes.push(NodeReport { name: n.name.clone(), generation: None, error: Some(e) }),
        }
    }
    let pods = lab
        .pods
        .iter()
        .map(|p| PodReport {
            pod: p.key(),
            node: p.node,
            ips: p.ips.iter().map(|i| i.to_string()).collect(),
            state: states.get(&p.key()).cloned().unwrap_or_else(|| "unknown".into()),
        })
        .collect();
    Ok(Report { name: lab.name.clone(), api: lab.api.as_ref().map(ApiContract::from), nodes, pods })
}
