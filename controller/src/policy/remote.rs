//! Pods of other clusters, as the hub shares them (`bulkhead hub
//! --share-pods` reads each member's pods every [`POLL`] and gives them to
//! every other member): they become peers whose identities carry their
//! cluster's name, so a `clusters:` peer matches traffic from them. A
//! cluster the hub cannot read keeps its last pods on the others (they do
//! not turn into unknown addresses while a link flaps).

use std::net::IpAddr;
use std::time::Duration;

use bulkhead_api::v1::Page;
use bulkhead_api::v1::inventory::Pod as PodDoc;
use bulkhead_policy::inventory::Pod;

use crate::hub::Members;
use crate::service::ServiceError;

/// How often the hub reads and shares each member's pods.
pub const POLL: Duration = Duration::from_secs(5);
/// The most pages of pods taken from one cluster in one poll.
const MAX_PAGES: usize = 1000;

/// The most pods taken from one other cluster.
pub const MAX_REMOTE_PODS: usize = 20_000;

/// Why `ip` cannot be a pod's address: loopback, unspecified, link-local
/// (the metadata service), multicast or broadcast addresses would give
/// another cluster's identity to what is no pod.
fn not_a_pod(ip: IpAddr) -> Option<&'static str> {
    let v6_link_local = |v6: &std::net::Ipv6Addr| (v6.segments()[0] & 0xffc0) == 0xfe80;
    match ip {
        ip if ip.is_loopback() => Some("a loopback address"),
        ip if ip.is_unspecified() => Some("the unspecified address"),
        ip if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if v6_link_local(&v6) => Some("a link-local address"),
        _ => None,
    }
}

/// A remote cluster's pods as peers of this one; the first address that
/// does not parse, or is no pod's, refuses them all, naming the pod.
pub fn peers(cluster: &str, docs: Vec<PodDoc>) -> Result<Vec<Pod>, ServiceError> {
    if docs.len() > MAX_REMOTE_PODS {
        return Err(ServiceError::bad("pods", format!("{} pods; at most {MAX_REMOTE_PODS} per cluster", docs.len())));
    }
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut ips = Vec::new();
            for (j, ip) in d.ips.iter().enumerate() {
                let bad = |why: String| {
                    let what = format!("pod {}/{}: {ip:?}: {why}", d.namespace, d.name);
                    ServiceError::bad(&format!("pods[{i}].ips[{j}]"), what)
                };
                let addr: IpAddr = ip.parse().map_err(|e| bad(format!("{e}")))?;
                if let Some(why) = not_a_pod(addr) {
                    return Err(bad(format!("{why} is no pod's")));
                }
                ips.push(addr);
            }
            if d.namespace.is_empty() || d.name.is_empty() {
                return Err(ServiceError::bad(&format!("pods[{i}]"), "namespace and name are required"));
            }
            Ok(Pod {
                cluster: cluster.to_string(),
                namespace: d.namespace,
                name: d.name,
                labels: d.labels,
                node: format!("{cluster}/{}", d.node),
                ips,
                ports: Vec::new(),
                declared: Vec::new(),
                host_ports: Vec::new(),
            })
        })
        .collect()
}

/// Every pod the member named `cluster` reports, page by page.
pub async fn pods_of(members: &Members, cluster: &str) -> Result<Vec<PodDoc>, ServiceError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = match &cursor {
            Some(c) => format!("/api/v1/pods?limit=1000&cursor={c}"),
            None => "/api/v1/pods?limit=1000".to_string(),
        };
        let page: Page<PodDoc> = members.send(cluster, reqwest::Method::GET, &path, None::<&()>).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => return Ok(out),
        }
    }
    Err(ServiceError::Unavailable(format!("cluster {cluster}: more than {MAX_PAGES} pages of pods")))
}
