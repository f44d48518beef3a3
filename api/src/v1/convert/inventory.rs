//! What the controller knows of the cluster (namespaces, pods, workloads,
//! services) and its own health.

use super::enums::mode;
use super::{ConvertError, list, optional_enum, port, required, to_pb};
use crate::controller::v1 as pb;
use crate::v1::inventory::{Namespace, Pod, PodQuery, Service, ServicePort, Workload, WorkloadRef};
use crate::v1::status::{FlowPipeline, NodeSync, Status, UnprotectedPod};

impl From<Namespace> for pb::Namespace {
    fn from(n: Namespace) -> Self {
        Self { name: n.name, labels: n.labels.into_iter().collect(), mode: n.mode.map(|m| pb::Mode::from(m) as i32) }
    }
}

impl TryFrom<pb::Namespace> for Namespace {
    type Error = ConvertError;
    fn try_from(n: pb::Namespace) -> Result<Self, ConvertError> {
        Ok(Self { name: n.name, labels: n.labels.into_iter().collect(), mode: optional_enum(n.mode, "mode", mode)? })
    }
}

impl From<WorkloadRef> for pb::WorkloadRef {
    fn from(w: WorkloadRef) -> Self {
        Self { namespace: w.namespace, kind: w.kind, name: w.name }
    }
}

impl TryFrom<pb::WorkloadRef> for WorkloadRef {
    type Error = ConvertError;
    fn try_from(w: pb::WorkloadRef) -> Result<Self, ConvertError> {
        Ok(Self { namespace: w.namespace, kind: w.kind, name: w.name })
    }
}

impl From<Pod> for pb::Pod {
    fn from(p: Pod) -> Self {
        Self {
            namespace: p.namespace,
            name: p.name,
            node: p.node,
            ips: p.ips,
            labels: p.labels.into_iter().collect(),
            workload: Some(p.workload.into()),
            mode: pb::Mode::from(p.mode) as i32,
            quarantined: p.quarantined,
        }
    }
}

impl TryFrom<pb::Pod> for Pod {
    type Error = ConvertError;
    fn try_from(p: pb::Pod) -> Result<Self, ConvertError> {
        Ok(Self {
            namespace: p.namespace,
            name: p.name,
            node: p.node,
            ips: p.ips,
            labels: p.labels.into_iter().collect(),
            workload: required(p.workload, "workload")?,
            mode: mode(p.mode, "mode")?,
            quarantined: p.quarantined,
        })
    }
}

impl From<Workload> for pb::Workload {
    fn from(w: Workload) -> Self {
        Self { workload: Some(w.workload.into()), pods: w.pods, labels: w.labels.into_iter().collect() }
    }
}

impl TryFrom<pb::Workload> for Workload {
    type Error = ConvertError;
    fn try_from(w: pb::Workload) -> Result<Self, ConvertError> {
        Ok(Self { workload: required(w.workload, "workload")?, pods: w.pods, labels: w.labels.into_iter().collect() })
    }
}

impl From<ServicePort> for pb::ServicePort {
    fn from(p: ServicePort) -> Self {
        Self { name: p.name, protocol: p.protocol, port: u32::from(p.port), target_port: p.target_port }
    }
}

impl TryFrom<pb::ServicePort> for ServicePort {
    type Error = ConvertError;
    fn try_from(p: pb::ServicePort) -> Result<Self, ConvertError> {
        Ok(Self { name: p.name, protocol: p.protocol, port: port(p.port, "port")?, target_port: p.target_port })
    }
}

impl From<Service> for pb::Service {
    fn from(s: Service) -> Self {
        Self { namespace: s.namespace, name: s.name, cluster_ips: s.cluster_ips, ports: to_pb(s.ports) }
    }
}

impl TryFrom<pb::Service> for Service {
    type Error = ConvertError;
    fn try_from(s: pb::Service) -> Result<Self, ConvertError> {
        Ok(Self { namespace: s.namespace, name: s.name, cluster_ips: s.cluster_ips, ports: list(s.ports, "ports")? })
    }
}

impl From<PodQuery> for pb::PodQuery {
    fn from(q: PodQuery) -> Self {
        Self { namespace: q.namespace, workload: q.workload, pod: q.pod, limit: q.limit, cursor: q.cursor }
    }
}

impl TryFrom<pb::PodQuery> for PodQuery {
    type Error = ConvertError;
    fn try_from(q: pb::PodQuery) -> Result<Self, ConvertError> {
        Ok(Self { namespace: q.namespace, workload: q.workload, pod: q.pod, limit: q.limit, cursor: q.cursor })
    }
}

page!(pb::PodPage, Pod);
items!(pb::NamespaceList, Namespace);
items!(pb::WorkloadList, Workload);
items!(pb::ServiceList, Service);

impl From<Status> for pb::Status {
    fn from(s: Status) -> Self {
        Self {
            generation: s.generation,
            pods: s.pods,
            network_policies: s.network_policies,
            cluster_policies: s.cluster_policies,
            identities: s.identities,
            policy_entries: s.policy_entries,
            last_error: s.last_error,
            nodes: to_pb(s.nodes),
            unprotected: to_pb(s.unprotected),
            flows: Some(s.flows.into()),
            quarantines_active: s.quarantines_active,
            policy_warnings: s.policy_warnings,
            cluster: s.cluster,
        }
    }
}

impl TryFrom<pb::Status> for Status {
    type Error = ConvertError;
    fn try_from(s: pb::Status) -> Result<Self, ConvertError> {
        Ok(Self {
            generation: s.generation,
            pods: s.pods,
            network_policies: s.network_policies,
            cluster_policies: s.cluster_policies,
            identities: s.identities,
            policy_entries: s.policy_entries,
            last_error: s.last_error,
            nodes: list(s.nodes, "nodes")?,
            unprotected: list(s.unprotected, "unprotected")?,
            flows: required(s.flows, "flows")?,
            quarantines_active: s.quarantines_active,
            policy_warnings: s.policy_warnings,
            cluster: s.cluster,
        })
    }
}

impl From<NodeSync> for pb::NodeSync {
    fn from(n: NodeSync) -> Self {
        Self {
            node: n.node,
            applied_generation: n.applied_generation,
            in_sync: n.in_sync,
            error: n.error,
            endpoints: n.endpoints,
            policy_entries: n.policy_entries,
        }
    }
}

impl TryFrom<pb::NodeSync> for NodeSync {
    type Error = ConvertError;
    fn try_from(n: pb::NodeSync) -> Result<Self, ConvertError> {
        Ok(Self {
            node: n.node,
            applied_generation: n.applied_generation,
            in_sync: n.in_sync,
            error: n.error,
            endpoints: n.endpoints,
            policy_entries: n.policy_entries,
        })
    }
}

impl From<UnprotectedPod> for pb::UnprotectedPod {
    fn from(u: UnprotectedPod) -> Self {
        Self { pod: u.pod, node: u.node, reason: u.reason }
    }
}

impl TryFrom<pb::UnprotectedPod> for UnprotectedPod {
    type Error = ConvertError;
    fn try_from(u: pb::UnprotectedPod) -> Result<Self, ConvertError> {
        Ok(Self { pod: u.pod, node: u.node, reason: u.reason })
    }
}

impl From<FlowPipeline> for pb::FlowPipeline {
    fn from(f: FlowPipeline) -> Self {
        Self {
            received: f.received,
            records: f.records,
            not_connections: f.not_connections,
            samples: f.samples,
            stored: f.stored,
            evicted: f.evicted,
            lost: f.lost.into_iter().collect(),
            anomalies: f.anomalies,
            storage_error: f.storage_error,
        }
    }
}

impl TryFrom<pb::FlowPipeline> for FlowPipeline {
    type Error = ConvertError;
    fn try_from(f: pb::FlowPipeline) -> Result<Self, ConvertError> {
        Ok(Self {
            received: f.received,
            records: f.records,
            not_connections: f.not_connections,
            samples: f.samples,
            stored: f.stored,
            evicted: f.evicted,
            lost: f.lost.into_iter().collect(),
            anomalies: f.anomalies,
            storage_error: f.storage_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bulkhead_model::Mode;

    use super::*;
    use crate::v1::Page;

    fn labels() -> BTreeMap<String, String> {
        [("app", "web"), ("tier", "front")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn workload() -> WorkloadRef {
        WorkloadRef { namespace: "shop".into(), kind: "Deployment".into(), name: "web".into() }
    }

    #[test]
    fn inventory_round_trips() -> Result<(), ConvertError> {
        let namespaces = vec![
            Namespace { name: "shop".into(), labels: labels(), mode: Some(Mode::Enforce) },
            Namespace { name: "empty".into(), labels: BTreeMap::new(), mode: None },
        ];
        assert_eq!(Vec::<Namespace>::try_from(pb::NamespaceList::from(namespaces.clone()))?, namespaces);
        let pod = Pod {
            namespace: "shop".into(),
            name: "web-1".into(),
            node: "node-a".into(),
            ips: vec!["10.0.0.5".into(), "fd00::5".into()],
            labels: labels(),
            workload: workload(),
            mode: Mode::Learn,
            quarantined: true,
        };
        let page = Page { items: vec![pod], next_cursor: Some("web-1".into()) };
        assert_eq!(Page::<Pod>::try_from(pb::PodPage::from(page.clone()))?, page);
        let workloads = vec![Workload { workload: workload(), pods: vec!["web-1".into()], labels: labels() }];
        assert_eq!(Vec::<Workload>::try_from(pb::WorkloadList::from(workloads.clone()))?, workloads);
        let services = vec![Service {
            namespace: "shop".into(),
            name: "web".into(),
            cluster_ips: vec!["10.96.0.10".into()],
            ports: vec![
                ServicePort { name: "http".into(), protocol: "TCP".into(), port: 80, target_port: "8080".into() },
                ServicePort { name: String::new(), protocol: "UDP".into(), port: 53, target_port: "dns".into() },
            ],
        }];
        assert_eq!(Vec::<Service>::try_from(pb::ServiceList::from(services.clone()))?, services);
        let q = PodQuery {
            namespace: Some("shop".into()),
            workload: Some("web".into()),
            pod: Some("web".into()),
            limit: Some(10),
            cursor: None,
        };
        assert_eq!(PodQuery::try_from(pb::PodQuery::from(q.clone()))?, q);
        Ok(())
    }

    #[test]
    fn status_round_trips() -> Result<(), ConvertError> {
        let status = Status {
            generation: 1_700_000_000_000_000,
            pods: 12,
            network_policies: 3,
            cluster_policies: 1,
            identities: 20,
            policy_entries: 140,
            last_error: "NetworkPolicy shop/bad: invalid port".into(),
            nodes: vec![NodeSync {
                node: "node-a".into(),
                applied_generation: 7,
                in_sync: false,
                error: "unreachable".into(),
                endpoints: 4,
                policy_entries: 30,
            }],
            unprotected: vec![UnprotectedPod {
                pod: "shop/macvlan-1".into(),
                node: "node-a".into(),
                reason: "no host-side interface".into(),
            }],
            flows: FlowPipeline {
                received: 100,
                records: 90,
                not_connections: 10,
                samples: 4,
                stored: 88,
                evicted: 5,
                lost: [("kernel".to_string(), 2), ("storage".to_string(), 0)].into_iter().collect(),
                anomalies: 1,
                storage_error: String::new(),
            },
            quarantines_active: 2,
            policy_warnings: vec![
                "ClusterNetworkPolicy c: spec.egress[0]: …; the rule is left out (fail closed)".into(),
            ],
            cluster: "prod".into(),
        };
        assert_eq!(Status::try_from(pb::Status::from(status.clone()))?, status);
        let mut missing = pb::Status::from(status);
        missing.flows = None;
        assert_eq!(Status::try_from(missing).err().map(|e| e.field), Some("flows".to_string()));
        Ok(())
    }
}
