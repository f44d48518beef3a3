//! The objects the controller holds, and the validated model built from
//! them. Changes are made on a copy and committed only once the copy
//! validates and compiles, so a bad update never touches what is enforced.

use std::collections::BTreeMap;

use bulkhead_policy::PolicyError;
use bulkhead_policy::cluster::ClusterPolicy;
use bulkhead_policy::evaluate::PolicySet;
use bulkhead_policy::inventory::{HostNetworkPod, Inventory, Namespace, Pod, Service, endpoint_slice_addresses};
use bulkhead_policy::netpol::NetworkPolicy;
use bulkhead_policy::objects::{Object, ObjectRef};
use bulkhead_policy::quarantine::Target;
use bulkhead_policy::routes::{ingress_backends, route_backends};

/// Annotation choosing learn, audit or enforce: on a pod, its namespace, or
/// (audit or enforce only) a NetworkPolicy, for the pods it selects that do
/// not say themselves, over their namespace's mode: how the review workflow
/// stages a suggestion. The Kubernetes source drops it from NetworkPolicies;
/// only the controller's root-only API sets it.
pub const MODE_ANNOTATION: &str = "bulkhead.dev/mode";

use bulkhead_model::Mode;

/// What the controller knows about a pod beyond policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodExtras {
    /// The pod's or its namespace's mode, if annotated.
    pub mode: Option<Mode>,
    /// The pod's uid (or "namespace/name" when it has none): endpoint ids follow it.
    pub uid: String,
    /// The owning workload's kind and name, through owner references
    /// ("Pod" and its own name for a bare pod).
    pub workload: (String, String),
}

/// The workload that owns a pod: its controller owner, with a ReplicaSet
/// made by a Deployment (named `<deployment>-<pod-template-hash>`) traced
/// to the Deployment.
pub fn owner_workload(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    let Some(owner) = owners.iter().find(|o| o.controller == Some(true)).or(owners.first()) else {
        return ("Pod".into(), meta.name.clone().unwrap_or_default());
    };
    if owner.kind == "ReplicaSet"
        && let Some(hash) = meta.labels.as_ref().and_then(|l| l.get("pod-template-hash"))
        && let Some(deployment) = owner.name.strip_suffix(&format!("-{hash}"))
    {
        return ("Deployment".into(), deployment.to_string());
    }
    (owner.kind.clone(), owner.name.clone())
}

/// The validated model: what the compiler and the evaluator consume.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The cluster.
    pub inventory: Inventory,
    /// Every policy.
    pub policies: PolicySet,
    /// Per pod ("namespace/name"), what the agent needs besides policy.
    pub pods: BTreeMap<String, PodExtras>,
    /// Quarantine objects: (the object, its target, its reason).
    pub quarantines: Vec<(ObjectRef, Target, String)>,
}

impl Model {
    /// The workload a pod belongs to, as flows and the graph name it (a
    /// pod without an owner is its own workload).
    pub fn workload_of(&self, pod: &Pod) -> bulkhead_graph::Entity {
        let (kind, name) = match self.pods.get(&pod.key()) {
            Some(e) => (e.workload.0.as_str(), e.workload.1.as_str()),
            None => ("Pod", pod.name.as_str()),
        };
        bulkhead_graph::Entity::Workload {
            namespace: pod.namespace.as_str().into(),
            kind: kind.into(),
            name: name.into(),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Objects created, changed or deleted.
    pub changed: Vec<String>,
    /// Objects sent but identical to what was there (or already absent).
    pub unchanged: Vec<String>,
    /// Documents of kinds the controller does not use.
    pub skipped: Vec<String>,
}

/// Every object, by kind, namespace and name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    objects: BTreeMap<ObjectRef, Object>,
}

impl Store {
    /// A copy with the objects added or replaced.
    pub fn applied(&self, objs: Vec<Object>) -> (Store, Changes) {
        let mut next = self.clone();
        let mut changes = Changes::default();
        for obj in objs {
            let r = obj.reference();
            if let Object::Other { api_version, kind } = &obj {
                changes.skipped.push(format!("{api_version} {kind}"));
                continue;
            }
            if next.objects.get(&r) == Some(&obj) {
                changes.unchanged.push(r.to_string());
            } else {
                changes.changed.push(r.to_string());
                next.objects.insert(r, obj);
            }
        }
        (next, changes)
    }

    /// A copy without the objects named.
    pub fn forgotten(&self, refs: &[ObjectRef]) -> (Store, Changes) {
        let mut next = self.clone();
        let mut changes = Changes::default();
        for r in refs {
            match next.objects.remove(r) {
                Some(_) => changes.changed.push(r.to_string()),
                None => changes.unchanged.push(r.to_string()),
            }
        }
        (next, changes)
    }

    /// A copy with the objects removed.
    pub fn deleted(&self, objs: Vec<Object>) -> (Store, Changes) {
        let (mut refs, mut skipped) = (Vec::new(), Vec::new());
        for obj in objs {
            match &obj {
                Object::Other { api_version, kind } => skipped.push(format!("{api_version} {kind}")),
                _ => refs.push(obj.reference()),
            }
        }
        let (next, mut changes) = self.forgotten(&refs);
        changes.skipped = skipped;
        (next, changes)
    }

    /// A copy where `listed` are all there is of `kind`; `objects` are the
    /// listed ones to store (a listed object left out keeps its stored version).
    pub fn relisted(
        &self,
        kind: &str,
        objects: Vec<Object>,
        listed: &std::collections::BTreeSet<ObjectRef>,
    ) -> (Store, Changes) {
        let gone: Vec<Object> = self
            .objects
            .iter()
            .filter(|(r, _)| r.kind == kind && !listed.contains(r))
            .map(|(_, o)| o.clone())
            .collect();
        let (next, mut changes) = self.applied(objects);
        let (next, deleted) = next.deleted(gone);
        changes.changed.extend(deleted.changed);
        (next, changes)
    }

    /// Checks one object on its own, exactly as `model` does, so an object
    /// that passes here cannot fail the model by itself.
    pub fn validate(obj: &Object, cluster: &str) -> Result<(), PolicyError> {
        match obj {
            Object::Namespace(ns) => {
                Namespace::try_from(ns)?;
                mode_of(&ns.metadata, "Namespace", None).map(|_| ())
            }
            Object::Pod(pod) => {
                let Some(p) = Pod::from_object(pod, cluster)? else { return Ok(()) };
                mode_of(&pod.metadata, "Pod", Some(&p.namespace)).map(|_| ())
            }
            Object::Node(node) => node_ips(node).map(|_| ()),
            Object::Service(svc) => Service::try_from(svc.as_ref()).map(|_| ()),
            Object::EndpointSlice(s) => endpoint_slice_addresses(s).map(|_| ()),
            Object::NetworkPolicy(np) => NetworkPolicy::try_from(np).map(|_| ()),
            Object::ClusterNetworkPolicy(cp) => ClusterPolicy::try_from(cp.as_ref()).map(|_| ()),
            Object::BulkheadClusterPolicy(cp) => ClusterPolicy::try_from(cp.as_ref()).map(|_| ()),
            Object::Quarantine(q) => <(Target, String)>::try_from(q.as_ref()).map(|_| ()),
            Object::Ingress(i) => ingress_backends(i).map(|_| ()),
            Object::Route(r) => route_backends(r).map(|_| ()),
            Object::Other { .. } => Ok(()),
        }
    }

    /// What `fail_closed` rewrote in the stored cluster policies, one line
    /// per rule, from their annotation.
    pub fn failed_closed(&self) -> Vec<String> {
        self.objects.values().filter_map(Object::failed_closed).flat_map(str::lines).map(str::to_string).collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object as one YAML stream.
    pub fn to_yaml(&self) -> Result<String, PolicyError> {
        let mut out = String::new();
        for o in self.objects.values() {
            out.push_str("---\n");
            out.push_str(&o.to_yaml()?);
        }
        Ok(out)
    }

    /// An object, by reference.
    pub fn get(&self, r: &ObjectRef) -> Option<&Object> {
        self.objects.get(r)
    }

    /// Validates every object into the model. The first invalid object fails it all.
    pub fn model(&self, cluster: &str) -> Result<Model, PolicyError> {
        let mut m = Model { inventory: Inventory::new(cluster), ..Default::default() };
        let mut ns_modes = BTreeMap::new();
        let mut slices: BTreeMap<String, Vec<std::net::IpAddr>> = BTreeMap::new();
        let mut policy_modes = Vec::new();
        for o in self.objects.values() {
            match o {
                Object::Namespace(ns) => {
                    let n = Namespace::try_from(ns)?;
                    if let Some(mode) = mode_of(&ns.metadata, "Namespace", None)? {
                        ns_modes.insert(n.name.clone(), mode);
                    }
                    m.inventory.put_namespace(n);
                }
                Object::Node(node) => {
                    let ips = node_ips(node)?;
                    let name = node.metadata.name.clone().unwrap_or_default();
                    m.inventory.node_labels.insert(name.clone(), node.metadata.labels.clone().unwrap_or_default());
                    m.inventory.nodes.insert(name, ips);
                }
                Object::Pod(pod) => {
                    if let Some(h) = HostNetworkPod::from_object(pod)? {
                        m.inventory.host_network.insert(format!("{}/{}", h.namespace, h.name), h);
                    }
                    let Some(p) = Pod::from_object(pod, cluster)? else { continue };
                    let extras = PodExtras {
                        mode: mode_of(&pod.metadata, "Pod", Some(&p.namespace))?,
                        uid: pod.metadata.uid.clone().unwrap_or_else(|| p.key()),
                        workload: owner_workload(&pod.metadata),
                    };
                    m.pods.insert(p.key(), extras);
                    m.inventory.put_pod(p);
                }
                Object::Service(svc) => m.inventory.put_service(Service::try_from(svc.as_ref())?),
                Object::EndpointSlice(s) => {
                    let (svc, addrs) = endpoint_slice_addresses(s)?;
                    slices.entry(svc).or_default().extend(addrs);
                }
                Object::NetworkPolicy(np) => {
                    let p = NetworkPolicy::try_from(np)?;
                    // Staged by the review workflow: audit or enforce (learn is not staging).
                    if let Some(mode) = mode_of(&np.metadata, "NetworkPolicy", Some(&p.namespace))?
                        && mode != Mode::Learn
                    {
                        policy_modes.push((p.namespace.clone(), p.pod_selector.clone(), mode));
                    }
                    m.policies.put_network(p);
                }
                Object::ClusterNetworkPolicy(cp) => m.policies.put_cluster(ClusterPolicy::try_from(cp.as_ref())?),
                Object::BulkheadClusterPolicy(cp) => m.policies.put_cluster(ClusterPolicy::try_from(cp.as_ref())?),
                Object::Quarantine(q) => {
                    let (target, reason) = <(Target, String)>::try_from(q.as_ref())?;
                    m.quarantines.push((o.reference(), target, reason));
                }
                Object::Ingress(i) => m.inventory.routes.extend(ingress_backends(i)?),
                Object::Route(r) => m.inventory.routes.extend(route_backends(r)?),
                Object::Other { .. } => {}
            }
        }
        for (svc, addrs) in slices {
            if let Some(s) = m.inventory.services.get_mut(&svc) {
                s.endpoints = Some(addrs);
            }
        }
        for (key, extras) in m.pods.iter_mut() {
            if extras.mode.is_none()
                && let Some(p) = m.inventory.pods.get(key)
            {
                // A staged policy's mode, the most lenient of those that
                // select the pod, so staging one never drops traffic.
                let staged = policy_modes
                    .iter()
                    .filter(|(ns, sel, _)| *ns == p.namespace && sel.matches(&p.labels))
                    .map(|(_, _, mode)| *mode)
                    .min_by_key(|mode| match mode {
                        Mode::Learn => 0,
                        Mode::Audit => 1,
                        Mode::Enforce => 2,
                    });
                // A staged policy is more specific than its namespace's mode.
                extras.mode = staged.or(ns_modes.get(&p.namespace).copied());
            }
        }
        Ok(m)
    }
}

/// A node's addresses (InternalIP and ExternalIP).
fn node_ips(node: &k8s_openapi::api::core::v1::Node) -> Result<Vec<std::net::IpAddr>, PolicyError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut ips = Vec::new();
    for (i, a) in node.status.iter().flat_map(|s| s.addresses.iter().flatten()).enumerate() {
        if a.type_ == "InternalIP" || a.type_ == "ExternalIP" {
            let ip = a.address.parse().map_err(|_| PolicyError::Invalid {
                object: format!("Node {name}"),
                field: format!("status.addresses[{i}].address"),
                message: format!("invalid IP {:?}", a.address),
            })?;
            ips.push(ip);
        }
    }
    Ok(ips)
}

fn mode_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Option<Mode>, PolicyError> {
    let Some(v) = meta.annotations.as_ref().and_then(|a| a.get(MODE_ANNOTATION)) else {
        return Ok(None);
    };
    let name = meta.name.clone().unwrap_or_default();
    v.parse().map(Some).map_err(|e: bulkhead_model::CodeError| PolicyError::Invalid {
        object: match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
        field: format!("metadata.annotations.{MODE_ANNOTATION}"),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use bulkhead_policy::objects::parse_documents;

    use super::*;

    const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, annotations: {bulkhead.dev/mode: audit}}\n";
    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: {nodeName: n1, containers: [{name: c}]}\nstatus: {podIPs: [{ip: 10.0.0.1}]}\n";

    #[test]
    fn a_bad_object_leaves_the_store_as_it_was() {
        let (store, c) = Store::default().applied(parse_documents("t", &format!("{NS}---\n{POD}")).unwrap());
        assert_eq!(c.changed.len(), 2);
        let model = store.model("lab").unwrap();
        assert_eq!(model.pods["x/a"].mode, Some(Mode::Audit), "namespace annotation applies to its pods");
        let bad = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: nonsense}}]}]}\n";
        let (candidate, _) = store.applied(parse_documents("t", bad).unwrap());
        let e = candidate.model("lab").unwrap_err().to_string();
        assert!(e.contains("NetworkPolicy x/p: spec.ingress[0].from[0].ipBlock.cidr"), "{e}");
        assert_eq!(store.len(), 2, "the committed store is untouched");
        let (again, c) = store.applied(parse_documents("t", POD).unwrap());
        assert_eq!((c.changed.len(), c.unchanged.len()), (0, 1));
        let (gone, c) = again.deleted(parse_documents("t", POD).unwrap());
        assert_eq!((c.changed.len(), gone.len()), (1, 1));
        let round = Store::default().applied(parse_documents("t", &store.to_yaml().unwrap()).unwrap()).0;
        assert_eq!(round, store, "the persisted form reads back identically");
    }

    #[test]
    fn a_staged_policy_sets_the_mode_of_its_pods_over_their_namespace_but_never_learn() {
        let staged = |mode: &str| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: s, namespace: x, annotations: {{bulkhead.dev/mode: {mode}}}}}\nspec: {{podSelector: {{matchLabels: {{app: a}}}}}}\n"
            )
        };
        let base = Store::default().applied(parse_documents("t", &format!("{NS}---\n{POD}")).unwrap()).0;
        let (s, _) = base.applied(parse_documents("t", &staged("enforce")).unwrap());
        assert_eq!(s.model("lab").unwrap().pods["x/a"].mode, Some(Mode::Enforce), "staged over the namespace's audit");
        let (s, _) = base.applied(parse_documents("t", &staged("learn")).unwrap());
        assert_eq!(s.model("lab").unwrap().pods["x/a"].mode, Some(Mode::Audit), "learn is not a staging mode");
    }
}
