//! The Kubernetes API as an inventory source: one kube-rs watcher per kind
//! (Namespaces, Nodes, Pods, Services, EndpointSlices, Ingresses, NetworkPolicies,
//! sig-network's ClusterNetworkPolicies, and Bulkhead's BulkheadClusterPolicies and
//! Quarantines), turned into store updates. A full
//! (re)list replaces every object of its kind, so deletions missed while
//! disconnected are caught up.

use std::fmt::Debug;

use bulkhead_policy::cluster;
use bulkhead_policy::objects::{Object, ObjectRef};
use bulkhead_policy::quarantine::{self, Quarantine};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as net;
use kube::api::{ApiResource, DynamicObject};
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
    /// An object that cannot be read was deleted: its stored version goes.
    Forget(ObjectRef),
    /// A complete listing of one kind: everything else of that kind is gone.
    Relist {
        /// The kind listed.
        kind: &'static str,
        /// Every object of the kind that could be read.
        objects: Vec<Object>,
        /// Objects listed that could not be read: their stored versions stay.
        unreadable: Vec<ObjectRef>,
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
    let (mut listing, mut unreadable): (Vec<Object>, Vec<ObjectRef>) = Default::default();
    watcher::watcher(api, watcher::Config::default()).default_backoff().filter_map(move |ev| {
        let out = match ev {
            Err(e) => Some(Err(ControllerError::Watch { kind, message: watch_error(kind, &e) })),
            Ok(Event::Init) => {
                listing.clear();
                unreadable.clear();
                None
            }
            Ok(Event::InitApply(k)) => {
                let r = reference(kind, &k);
                match convert(k) {
                    Ok(o) => {
                        listing.push(o);
                        None
                    }
                    Err(e) => {
                        unreadable.push(r);
                        Some(Err(e))
                    }
                }
            }
            Ok(Event::InitDone) => Some(Ok(Update::Relist {
                kind,
                objects: std::mem::take(&mut listing),
                unreadable: std::mem::take(&mut unreadable),
            })),
            Ok(Event::Apply(k)) => Some(convert(k).map(Update::Apply)),
            Ok(Event::Delete(k)) => {
                let r = reference(kind, &k);
                Some(Ok(convert(k).map_or(Update::Forget(r), Update::Delete)))
            }
        };
        futures::future::ready(out)
    })
}

/// Kind, namespace and name of an object as the watcher delivered it.
fn reference<K: Resource>(kind: &str, k: &K) -> ObjectRef {
    ObjectRef {
        kind: kind.to_string(),
        namespace: k.meta().namespace.clone().unwrap_or_default(),
        name: k.meta().name.clone().unwrap_or_default(),
    }
}

/// One object read as its own type, its apiVersion and kind filled in when
/// the list left them out.
fn typed<K>(kind: &'static str, mut d: DynamicObject) -> Result<K, ControllerError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let name = d.metadata.name.clone().unwrap_or_default();
    if d.types.is_none() {
        d.types = Some(kube::api::TypeMeta {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
        });
    }
    serde_json::to_value(&d).and_then(serde_json::from_value).map_err(|e| ControllerError::Watch {
        kind,
        message: format!("{kind} {name} cannot be read, so it is not enforced: {e}"),
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

/// What a retired `bulkhead.dev/v1alpha1` ClusterNetworkPolicy left in the
/// cluster after an upgrade is told: it is not enforced until migrated.
pub fn retired_warning(name: &str) -> String {
    format!(
        "bulkhead.dev/v1alpha1 ClusterNetworkPolicy {name} is retired and NOT enforced: \
         kubectl get clusternetworkpolicies.bulkhead.dev {name} -o yaml | bulkhead policy migrate -f - | kubectl apply -f -, \
         then kubectl delete clusternetworkpolicies.bulkhead.dev {name}"
    )
}

/// Names of the retired `bulkhead.dev/v1alpha1` ClusterNetworkPolicies
/// still stored in the cluster (none when their CRD is gone).
pub async fn retired_policies(client: Client) -> Result<Vec<String>, ControllerError> {
    let kind = "ClusterNetworkPolicy (bulkhead.dev/v1alpha1)";
    let resource = ApiResource {
        group: "bulkhead.dev".into(),
        version: "v1alpha1".into(),
        api_version: cluster::legacy::API_VERSION.into(),
        kind: cluster::KIND.into(),
        plural: "clusternetworkpolicies".into(),
    };
    match Api::<DynamicObject>::all_with(client, &resource).list(&Default::default()).await {
        Ok(list) => Ok(list.items.into_iter().filter_map(|o| o.metadata.name).collect()),
        Err(kube::Error::Api(r)) if r.code == 404 => Ok(Vec::new()),
        Err(e) => Err(ControllerError::Watch { kind, message: e.to_string() }),
    }
}

/// The watcher of a cluster-tier kind, read object by object and failed closed.
fn cluster_tier<K>(
    client: &Client,
    kind: &'static str,
    fix: fn(&mut K) -> Vec<String>,
    wrap: fn(K) -> Object,
) -> futures::stream::BoxStream<'static, Result<Update, ControllerError>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Send + 'static,
{
    let api = Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    events(api, kind, move |d| {
        let mut o: K = typed(kind, d)?;
        for w in fix(&mut o) {
            tracing::warn!(warning = %w, kind, "object from the Kubernetes API failed closed");
        }
        Ok(wrap(o))
    })
    .boxed()
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
        // The upstream CRD is not ours and may be newer than Bulkhead (and
        // another Bulkhead version's may be newer too): their objects are
        // read one by one, so one that cannot be read never fails the list,
        // and what cannot be enforced as written fails closed, as upstream asks.
        cluster_tier(&client, cluster::KIND, cluster::fail_closed, |o| Object::ClusterNetworkPolicy(Box::new(o))),
        cluster_tier(&client, cluster::BULKHEAD_KIND, cluster::fail_closed_extension, |o| {
            Object::BulkheadClusterPolicy(Box::new(o))
        }),
        events(Api::<Quarantine>::all(client.clone()), quarantine::KIND, |o| Ok(Object::Quarantine(Box::new(o))))
            .boxed(),
    ])
}
