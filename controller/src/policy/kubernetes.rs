//! The Kubernetes API as an inventory source: one kube-rs watcher per kind
//! (Namespaces, Nodes, Pods, Services, EndpointSlices, Ingresses, NetworkPolicies,
//! sig-network's ClusterNetworkPolicies, and Bulkhead's BulkheadClusterPolicies and
//! Quarantines), turned into store updates. A full
//! (re)list replaces every object of its kind, so deletions missed while
//! disconnected are caught up.

use std::fmt::Debug;

use bulkhead_policy::cluster::{self, BulkheadClusterPolicy, ClusterNetworkPolicy};
use bulkhead_policy::objects::Object;
use bulkhead_policy::quarantine::{self, Quarantine};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as net;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::error::ControllerError;

/// One change seen on the API.
#[derive(Debug, Clone)]
pub enum Update {
    /// An object was added or modified.
    Apply(Object),
    /// An object was deleted.
    Delete(Object),
    /// A complete listing of one kind: everything else of that kind is gone.
    Relist {
        /// The kind listed.
        kind: &'static str,
        /// Every object of the kind.
        objects: Vec<Object>,
    },
}

fn events<K, F>(
    api: Api<K>,
    kind: &'static str,
    convert: F,
) -> impl Stream<Item = Result<Update, ControllerError>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(K) -> Result<Object, ControllerError> + Send + Sync + 'static,
{
    let mut listing: Vec<Object> = Vec::new();
    watcher::watcher(api, watcher::Config::default()).default_backoff().filter_map(move |ev| {
        let out = match ev {
            Err(e) => Some(Err(ControllerError::Watch { kind, message: watch_error(kind, &e) })),
            Ok(Event::Init) => {
                listing.clear();
                None
            }
            Ok(Event::InitApply(k)) => match convert(k) {
                Ok(o) => {
                    listing.push(o);
                    None
                }
                Err(e) => Some(Err(e)),
            },
            Ok(Event::InitDone) => Some(Ok(Update::Relist { kind, objects: std::mem::take(&mut listing) })),
            Ok(Event::Apply(k)) => Some(convert(k).map(Update::Apply)),
            Ok(Event::Delete(k)) => Some(convert(k).map(Update::Delete)),
        };
        futures::future::ready(out)
    })
}

/// The watcher's error, with what to do when a kind's CRD is missing (the
/// upstream ClusterNetworkPolicy CRD is the user's to install).
fn watch_error(kind: &str, e: &watcher::Error) -> String {
    let text = e.to_string();
    let missing = matches!(e, watcher::Error::InitialListFailed(kube::Error::Api(r)) | watcher::Error::WatchFailed(kube::Error::Api(r)) if r.code == 404);
    if !missing {
        return text;
    }
    match kind {
        cluster::KIND => format!(
            "{text}: the policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy CRD is not installed \
             (install it from kubernetes-sigs/network-policy-api v0.2.0 to use it; Bulkhead keeps asking)"
        ),
        _ => format!("{text}: the CRD of {kind} is not installed (run `bulkhead install | kubectl apply -f -`)"),
    }
}

/// Every change of every kind policy depends on, merged into one stream.
/// Watch errors are yielded and retried with kube-rs's default backoff, never fatal.
pub fn updates(client: Client) -> impl Stream<Item = Result<Update, ControllerError>> + Send + 'static {
    futures::stream::select_all(vec![
        events(Api::<core::Namespace>::all(client.clone()), "Namespace", |o| Ok(Object::Namespace(o))).boxed(),
        events(Api::<core::Node>::all(client.clone()), "Node", |o| Ok(Object::Node(Box::new(o)))).boxed(),
        events(Api::<core::Pod>::all(client.clone()), "Pod", |o| Ok(Object::Pod(Box::new(o)))).boxed(),
        events(Api::<core::Service>::all(client.clone()), "Service", |o| Ok(Object::Service(Box::new(o)))).boxed(),
        events(Api::<discovery::EndpointSlice>::all(client.clone()), "EndpointSlice", |o| Ok(Object::EndpointSlice(o)))
            .boxed(),
        events(Api::<net::NetworkPolicy>::all(client.clone()), "NetworkPolicy", |mut o| {
            // Staging a policy in audit is the review workflow's decision,
            // made over the controller's root-only API: a namespace user who
            // may write NetworkPolicies must not switch pods out of enforce.
            if let Some(a) = o.metadata.annotations.as_mut() {
                a.remove(crate::policy::store::MODE_ANNOTATION);
            }
            Ok(Object::NetworkPolicy(o))
        })
        .boxed(),
        events(Api::<net::Ingress>::all(client.clone()), "Ingress", |o| Ok(Object::Ingress(Box::new(o)))).boxed(),
        events(Api::<ClusterNetworkPolicy>::all(client.clone()), cluster::KIND, |mut o| {
            // The API server's CRD may be newer than Bulkhead: what cannot
            // be enforced as written fails closed, as upstream asks.
            for w in cluster::fail_closed(&mut o) {
                tracing::warn!(warning = %w, "ClusterNetworkPolicy from the Kubernetes API");
            }
            Ok(Object::ClusterNetworkPolicy(Box::new(o)))
        })
        .boxed(),
        events(Api::<BulkheadClusterPolicy>::all(client.clone()), cluster::BULKHEAD_KIND, |o| {
            Ok(Object::BulkheadClusterPolicy(Box::new(o)))
        })
        .boxed(),
        events(Api::<Quarantine>::all(client.clone()), quarantine::KIND, |o| Ok(Object::Quarantine(Box::new(o))))
            .boxed(),
    ])
}
