//! `--share-pods`: the hub reads every member's pods and gives them to
//! every other member, so each cluster's identities for another cluster's
//! pods carry that cluster's name and `clusters:` peers match them. A
//! member the hub cannot read keeps its last pods on the others.

use bulkhead_api::v1::hub::{RemotePods, RemotePodsTaken};
use bulkhead_api::v1::status::Status;

use super::Members;
use crate::policy::remote::{POLL, pods_of};

/// Shares pods for ever, every [`POLL`].
pub async fn run(members: Members) {
    let names: Vec<String> = members.list().map(|m| m.name.clone()).collect();
    loop {
        for from in &names {
            // The name the hub gives a member is the one its pods carry
            // elsewhere: it must be the member's own, or `clusters:` peers
            // would name one cluster and match another.
            match members.send::<Status>(from, reqwest::Method::GET, "/api/v1/status", None::<&()>).await {
                Ok(st) if st.cluster == *from => {}
                Ok(st) => {
                    tracing::error!(member = %from, cluster = %st.cluster, "the member's --cluster is not its --member name: its pods are not shared");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(cluster = %from, error = %e, "reading a member's status (the others keep its last pods)");
                    continue;
                }
            }
            let pods = match pods_of(&members, from).await {
                Ok(p) => RemotePods { pods: p },
                Err(e) => {
                    tracing::warn!(cluster = %from, error = %e, "reading a member's pods (the others keep its last ones)");
                    continue;
                }
            };
            for to in names.iter().filter(|n| *n != from) {
                let path = format!("/api/v1/remote-clusters/{from}/pods");
                match members.send::<RemotePodsTaken>(to, reqwest::Method::PUT, &path, Some(&pods)).await {
                    Ok(t) if t.changed => {
                        tracing::info!(from = %from, to = %to, pods = t.pods, generation = t.generation, "pods shared")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(from = %from, to = %to, error = %e, "sharing pods with a member"),
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
