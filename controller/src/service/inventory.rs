//! Status and inventory: what the controller knows of the cluster, in the
//! caller's scope.

use std::collections::BTreeMap;

use bulkhead_api::v1::Page;
use bulkhead_api::v1::inventory::{
    Namespace, Pod, PodQuery, Service as ServiceDoc, ServicePort, Workload, WorkloadRef,
};
use bulkhead_api::v1::status::Status;
use bulkhead_policy::inventory::TargetPort;

use super::{Op, Service, ServiceError, cursor_in, cursor_out, page_size, view};
use crate::auth::{Principal, Scope};
use crate::observation::storage::Named;
use crate::policy::state::State;

fn named(field: &str, v: Option<&str>) -> Result<Option<Named>, ServiceError> {
    v.map(|s| {
        Named::parse(s).ok_or_else(|| ServiceError::bad(field, format!("{s:?} is not \"namespace/name\" or a name")))
    })
    .transpose()
}

/// Every pod of the model in scope, as documents, sorted by key.
fn pods(s: &State, scope: &Scope) -> Result<Vec<Pod>, crate::error::ControllerError> {
    let model = s.model();
    let cut = s.desk().read(|b| b.cut_uids(model))?;
    Ok(model
        .inventory
        .pods
        .values()
        .filter(|p| scope.contains(&p.namespace))
        .map(|p| {
            let extras = model.pods.get(&p.key());
            Pod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                node: p.node.clone(),
                ips: p.ips.iter().map(|i| i.to_string()).collect(),
                labels: p.labels.clone(),
                workload: view::workload_ref(&model.workload_of(p)).unwrap_or(WorkloadRef {
                    namespace: p.namespace.clone(),
                    kind: "Pod".into(),
                    name: p.name.clone(),
                }),
                mode: extras.and_then(|e| e.mode).unwrap_or(s.default_mode()),
                quarantined: extras.is_some_and(|e| cut.contains(&e.uid)),
            }
        })
        .collect())
}

impl Service {
    /// The controller's status. A tenant sees its own pods, policies and
    /// unprotected pods, and no other tenant's rejected change.
    pub async fn status(&self, who: &Principal) -> Result<Status, ServiceError> {
        self.authorize(who, Op::Status, "status")?;
        let mut st = self.ctx.status().await?;
        if let Scope::Namespaces(_) = &who.scope {
            let scope = who.scope.clone();
            let (pods, policies) = self
                .ctx
                .with_policy(move |s| {
                    let m = s.model();
                    let pods = m.inventory.pods.values().filter(|p| scope.contains(&p.namespace)).count();
                    let policies = m.policies.network.values().filter(|p| scope.contains(&p.namespace)).count();
                    Ok((pods as u32, policies as u32))
                })
                .await?;
            st.pods = pods;
            st.network_policies = policies;
            st.last_error.clear();
            st.unprotected.retain(|u| u.pod.split_once('/').is_some_and(|(ns, _)| who.scope.contains(ns)));
        }
        Ok(st)
    }

    /// Namespaces in scope.
    pub async fn namespaces(&self, who: &Principal) -> Result<Vec<Namespace>, ServiceError> {
        self.authorize(who, Op::Namespaces, "namespaces")?;
        let scope = who.scope.clone();
        Ok(self
            .ctx
            .with_policy(move |s| {
                let m = s.model();
                Ok(m.inventory
                    .namespaces
                    .values()
                    .filter(|n| scope.contains(&n.name))
                    .map(|n| Namespace {
                        name: n.name.clone(),
                        labels: n.labels.clone(),
                        mode: s.namespace_mode(&n.name),
                    })
                    .collect())
            })
            .await?)
    }

    /// Pods in scope, filtered, a page at a time.
    pub async fn pods(&self, who: &Principal, q: PodQuery) -> Result<Page<Pod>, ServiceError> {
        self.authorize(who, Op::Pods, "pods")?;
        let limit = page_size(q.limit)?;
        let after = cursor_in("pods", q.cursor.as_deref())?;
        let workload = named("workload", q.workload.as_deref())?;
        let scope = who.scope.clone();
        let all = self.ctx.with_policy(move |s| pods(s, &scope)).await?;
        let matching: Vec<Pod> = all
            .into_iter()
            .filter(|p| q.namespace.as_ref().is_none_or(|ns| &p.namespace == ns))
            .filter(|p| q.pod.as_ref().is_none_or(|n| p.name.contains(n.as_str())))
            .filter(|p| {
                workload.as_ref().is_none_or(|w| {
                    w.name == p.workload.name && w.namespace.as_ref().is_none_or(|ns| ns == &p.workload.namespace)
                })
            })
            .collect();
        let start = after.map_or(0, |a| a as usize);
        let items: Vec<Pod> = matching.iter().skip(start).take(limit).cloned().collect();
        let next = (start + items.len() < matching.len()).then(|| cursor_out("pods", (start + items.len()) as u64));
        Ok(Page { items, next_cursor: next })
    }

    /// Workloads in scope (of a namespace).
    pub async fn workloads(&self, who: &Principal, namespace: Option<String>) -> Result<Vec<Workload>, ServiceError> {
        self.authorize(who, Op::Workloads, "workloads")?;
        let scope = who.scope.clone();
        let all = self.ctx.with_policy(move |s| pods(s, &scope)).await?;
        let mut by: BTreeMap<WorkloadRef, Workload> = BTreeMap::new();
        for p in all.into_iter().filter(|p| namespace.as_ref().is_none_or(|ns| &p.namespace == ns)) {
            let w = by.entry(p.workload.clone()).or_insert_with(|| Workload {
                workload: p.workload.clone(),
                pods: Vec::new(),
                labels: p.labels.clone(),
            });
            w.labels.retain(|k, v| p.labels.get(k) == Some(v));
            w.pods.push(p.name);
        }
        Ok(by.into_values().collect())
    }

    /// Services in scope (of a namespace).
    pub async fn services(&self, who: &Principal, namespace: Option<String>) -> Result<Vec<ServiceDoc>, ServiceError> {
        self.authorize(who, Op::Services, "services")?;
        let scope = who.scope.clone();
        Ok(self
            .ctx
            .with_policy(move |s| {
                Ok(s.model()
                    .inventory
                    .services
                    .values()
                    .filter(|svc| scope.contains(&svc.namespace))
                    .filter(|svc| namespace.as_ref().is_none_or(|ns| &svc.namespace == ns))
                    .map(|svc| ServiceDoc {
                        namespace: svc.namespace.clone(),
                        name: svc.name.clone(),
                        cluster_ips: svc.cluster_ips.iter().map(|i| i.to_string()).collect(),
                        ports: svc
                            .ports
                            .iter()
                            .map(|p| ServicePort {
                                name: p.name.clone(),
                                protocol: p.protocol.as_str().into(),
                                port: p.port,
                                target_port: match &p.target {
                                    TargetPort::Number(n) => n.to_string(),
                                    TargetPort::Named(n) => n.clone(),
                                },
                            })
                            .collect(),
                    })
                    .collect())
            })
            .await?)
    }
}
