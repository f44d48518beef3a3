//! The inventory as it was at any moment: which pod (and workload) held an
//! address when. A flow is enriched with the pod that held its addresses at
//! flow time, so a recycled pod IP is never attributed to the pod that got
//! it later, however late the flow arrives.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_graph::Entity;
use bulkhead_graph::suggest::{UNSTABLE_LABELS, WorkloadInfo};
use rustc_hash::FxHashMap;

use crate::policy::store::Model;

/// A pod as flows name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAt {
    /// "namespace/name".
    pub key: String,
    /// Its workload.
    pub workload: Entity,
}

#[derive(Debug, Clone)]
struct Interval {
    to_ns: Option<i64>,
    pod: Arc<PodAt>,
}

/// Address history plus what is current (services, nodes, workloads).
#[derive(Debug, Default)]
pub struct History {
    by_ip: FxHashMap<IpAddr, Vec<Interval>>,
    /// Every pod seen ("namespace/name") and its workload, with when it was
    /// last current: agents name the pods of a flow at flow time.
    by_pod: FxHashMap<String, (i64, Entity)>,
    services: HashMap<IpAddr, (Arc<str>, Arc<str>)>,
    /// (ClusterIP, protocol, service port) → the one backend workload and target port.
    backends: HashMap<(IpAddr, u8, u16), (Entity, u16)>,
    nodes: HashMap<IpAddr, Arc<str>>,
    node_ips: BTreeMap<String, Vec<IpAddr>>,
    workloads: BTreeMap<Entity, WorkloadInfo>,
    /// When each current workload first appeared in the inventory.
    present_since: BTreeMap<Entity, i64>,
}

/// Closed intervals older than this are forgotten (no agent buffers a flow that long).
const KEEP_CLOSED_NS: i64 = 24 * 3_600 * 1_000_000_000;

impl History {
    /// Records the model as the inventory from `now_ns` on. A holder is
    /// taken to have held its address since the previous holder left (or
    /// forever): flows buffered by agents may predate the controller.
    pub fn update(&mut self, model: &Model, now_ns: i64) {
        let mut current: HashMap<IpAddr, Arc<PodAt>> = HashMap::new();
        let mut labels: BTreeMap<Entity, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
        for (key, pod) in &model.inventory.pods {
            let workload = model.workload_of(pod);
            self.by_pod.insert(key.clone(), (now_ns, workload.clone()));
            labels.entry(workload.clone()).or_default().push(&pod.labels);
            let at = Arc::new(PodAt { key: key.clone(), workload });
            for ip in &pod.ips {
                current.insert(*ip, at.clone());
            }
        }
        for (ip, intervals) in &mut self.by_ip {
            if let Some(last) = intervals.last_mut()
                && last.to_ns.is_none()
                && current.get(ip).is_none_or(|p| **p != *last.pod)
            {
                last.to_ns = Some(now_ns);
            }
            intervals.retain(|i| i.to_ns.is_none_or(|t| now_ns - t < KEEP_CLOSED_NS));
        }
        self.by_ip.retain(|_, v| !v.is_empty());
        self.by_pod.retain(|_, (seen, _)| now_ns - *seen < KEEP_CLOSED_NS);
        for (ip, pod) in current {
            let list = self.by_ip.entry(ip).or_default();
            if list.last().is_none_or(|l| l.to_ns.is_some()) {
                list.push(Interval { to_ns: None, pod });
            }
        }
        self.services = model
            .inventory
            .services
            .values()
            .flat_map(|s| {
                s.cluster_ips.iter().map(move |ip| (*ip, (s.namespace.as_str().into(), s.name.as_str().into())))
            })
            .collect();
        self.backends = backends(model);
        self.nodes = model
            .inventory
            .nodes
            .iter()
            .flat_map(|(n, ips)| ips.iter().map(move |ip| (*ip, Arc::from(n.as_str()))))
            .collect();
        self.node_ips = model.inventory.nodes.clone();
        self.workloads = labels
            .into_iter()
            .map(|(w, sets)| {
                let mut common: BTreeMap<String, String> = sets.first().map(|l| (*l).clone()).unwrap_or_default();
                common
                    .retain(|k, v| !UNSTABLE_LABELS.contains(&k.as_str()) && sets.iter().all(|l| l.get(k) == Some(v)));
                let since = *self.present_since.entry(w.clone()).or_insert(now_ns);
                (w, WorkloadInfo { selector: common, present_since_ns: Some(since) })
            })
            .collect();
        self.present_since.retain(|w, _| self.workloads.contains_key(w));
    }

    /// The pod that held `ip` at `time_ns`: the earliest holder whose hold
    /// had not ended by then (a flow in a gap belongs to the next holder;
    /// the previous one was gone).
    pub fn pod_at(&self, ip: IpAddr, time_ns: i64) -> Option<&PodAt> {
        let list = self.by_ip.get(&ip)?;
        list.iter().find(|i| i.to_ns.is_none_or(|t| time_ns < t)).map(|i| &*i.pod)
    }

    /// What an address was at `time_ns`: a pod's workload (with the pod), a
    /// node, or the world.
    pub fn entity(&self, ip: IpAddr, time_ns: i64) -> (Entity, String) {
        if let Some(p) = self.pod_at(ip, time_ns) {
            return (p.workload.clone(), p.key.clone());
        }
        if let Some(node) = self.nodes.get(&ip) {
            return (Entity::Host { node: node.clone() }, String::new());
        }
        (Entity::World { cidr: ip.into() }, String::new())
    }

    /// The one workload behind a service port, and its target port.
    pub fn backend(&self, ip: IpAddr, protocol: u8, port: u16) -> Option<(Entity, u16)> {
        self.backends.get(&(ip, protocol, port)).cloned()
    }

    /// What an address was at `time_ns`, preferring the pod the agent named
    /// at flow time ("namespace/name", empty if none): that survives a
    /// controller restart, which the address history does not.
    pub fn entity_named(&self, ip: IpAddr, time_ns: i64, agent_pod: &str) -> (Entity, String) {
        if !agent_pod.is_empty()
            && let Some((_, w)) = self.by_pod.get(agent_pod)
        {
            return (w.clone(), agent_pod.to_string());
        }
        self.entity(ip, time_ns)
    }

    /// The service whose ClusterIP this is.
    pub fn service(&self, ip: IpAddr) -> Option<&(Arc<str>, Arc<str>)> {
        self.services.get(&ip)
    }

    /// The workloads that exist now, with their selectors.
    pub fn workloads(&self) -> &BTreeMap<Entity, WorkloadInfo> {
        &self.workloads
    }

    /// Node addresses.
    pub fn node_ips(&self) -> &BTreeMap<String, Vec<IpAddr>> {
        &self.node_ips
    }

    /// Whether a stored flow's addresses still mean what was recorded.
    pub fn still_valid(&self, f: &bulkhead_graph::FlowRecord, now_ns: i64) -> bool {
        let same = |ip: IpAddr, e: &Entity| match e {
            Entity::Service { .. } => true,
            _ => self.entity(ip, now_ns).0 == *e,
        };
        same(f.src_ip, &f.src) && same(f.dst_ip, &f.dst)
    }
}

/// For every service port whose backends all belong to one workload and
/// agree on the target port: that workload and port.
fn backends(model: &Model) -> HashMap<(IpAddr, u8, u16), (Entity, u16)> {
    let mut out = HashMap::new();
    for svc in model.inventory.services.values() {
        let pods: Vec<_> = model.inventory.backends(svc).collect();
        for sp in &svc.ports {
            let mut found: Option<(Entity, u16)> = None;
            let mut unique = !pods.is_empty();
            for pod in &pods {
                match (&found, sp.target_on(pod).map(|t| (model.workload_of(pod), t))) {
                    (_, None) => unique = false,
                    (None, Some(c)) => found = Some(c),
                    (Some(f), Some(c)) if *f != c => unique = false,
                    _ => {}
                }
            }
            if let (true, Some(f)) = (unique, found) {
                for ip in &svc.cluster_ips {
                    out.insert((*ip, sp.protocol.number(), sp.port), f.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use bulkhead_policy::objects::parse_documents;

    use super::*;
    use crate::policy::store::Store;

    fn model(pods: &[(&str, &str, &str)]) -> Model {
        let mut yaml = String::new();
        for (name, owner, ip) in pods {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: x\n  labels: {{app: {owner}, pod-template-hash: h1}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {owner}-h1, uid: u, controller: true}}]\nspec: {{nodeName: n1, containers: [{{name: c}}]}}\nstatus: {{podIPs: [{{ip: {ip}}}]}}\n"
            ));
        }
        Store::default().applied(parse_documents("t", &yaml).unwrap()).0.model("c").unwrap()
    }

    fn deployment(name: &str) -> Entity {
        Entity::Workload { namespace: "x".into(), kind: "Deployment".into(), name: name.into() }
    }

    #[test]
    fn a_recycled_address_is_attributed_by_flow_time() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let mut h = History::default();
        h.update(&model(&[("web-1", "web", "10.0.0.9")]), 1_000);
        // web-1 goes away at 2 000; db-1 gets its address at 3 000.
        h.update(&model(&[]), 2_000);
        h.update(&model(&[("db-1", "db", "10.0.0.9")]), 3_000);
        assert_eq!(h.entity(ip, 500).0, deployment("web"), "before the controller started: the first holder");
        assert_eq!(h.entity(ip, 1_999), (deployment("web"), "x/web-1".to_string()), "a late flow of web-1");
        assert_eq!(h.entity(ip, 2_500).0, deployment("db"), "in the gap: the next holder");
        assert_eq!(h.entity(ip, 3_001), (deployment("db"), "x/db-1".to_string()));
        assert_eq!(h.workloads()[&deployment("db")].selector, BTreeMap::from([("app".into(), "db".into())]));
        assert!(matches!(h.entity("192.0.2.1".parse().unwrap(), 0).0, Entity::World { .. }));
    }
}
