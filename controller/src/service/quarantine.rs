//! Quarantine, owned by the controller. A quarantine is pushed at once to
//! each affected pod's agent through its fast path (not at the next sync)
//! while it is saved, and answered once it is durable and every agent
//! reports the drop enforced, with the timings. The new desired state, which carries it
//! through any restart, follows in the background.

use std::time::Instant;

use bulkhead_api::agent::v1 as agent_pb;
use bulkhead_api::audit::Event;
use bulkhead_api::v1::Page;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::quarantine::{
    Quarantine, QuarantineQuery, QuarantineRequest, QuarantineState, QuarantinedPod, ReleaseQuery,
};
use bulkhead_policy::quarantine::Target;

use super::{Op, Service, ServiceError, cursor_in, cursor_out, page_size};
use crate::auth::Principal;
use crate::error::ControllerError;
use crate::policy::quarantine::desk::{Desk, QuarantineCut, View};
use crate::policy::quarantine::{Book, Record};

/// Where the desk announces a decision it has made and is saving.
type Announce = Box<dyn FnOnce(QuarantineCut) + Send>;

/// How long the fast path waits for one agent.
const FAST_PATH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A record as a document, with the pods it cuts off now.
pub(super) fn document(r: &Record, pods: Vec<QuarantinedPod>, enforced_micros: Option<u64>) -> Quarantine {
    Quarantine {
        id: r.id,
        kind: r.kind(),
        namespace: r.target.namespace().to_string(),
        name: r.target.name().to_string(),
        state: r.state,
        reason: r.reason.clone(),
        created_by: r.created_by.clone(),
        created_ns: r.created_ns,
        object: r.object.clone(),
        released_by: r.released_by.clone(),
        ended_ns: r.ended_ns,
        end_reason: r.end_reason.clone(),
        pods,
        enforced_micros,
    }
}

/// "namespace/name" into its parts, naming `field` when it is not that.
fn split(field: &str, v: &str) -> Result<(String, String), ServiceError> {
    match v.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok((ns.into(), name.into())),
        _ => Err(ServiceError::bad(field, format!("{v:?}: expected \"namespace/name\""))),
    }
}

impl Service {
    /// Tells each affected pod's agent now; returns the pods with what each
    /// agent reported.
    async fn fast_path(&self, cut: &QuarantineCut, quarantine: bool, who: &Principal) -> Vec<QuarantinedPod> {
        let calls = cut.pods.iter().map(|(pod, endpoint)| {
            let ctx = self.ctx.clone();
            let (pod, endpoint) = (pod.clone(), *endpoint);
            let req = agent_pb::QuarantineRequest {
                endpoint_id: endpoint.unwrap_or(0),
                pod: pod.pod.clone(),
                actor: who.signature(),
                reason: cut.record.end_reason.clone().unwrap_or_else(|| cut.record.reason.clone()),
                generation: cut.floor,
            };
            async move {
                let mut doc = QuarantinedPod {
                    pod: pod.pod.clone(),
                    node: pod.node.clone(),
                    endpoint_id: endpoint.unwrap_or(0),
                    enforced: false,
                    agent_micros: None,
                    error: String::new(),
                };
                if endpoint.is_none() {
                    doc.error = "not on its node yet: the next desired state carries the quarantine".into();
                    return doc;
                }
                let call = async {
                    let mut client = ctx.agent(&pod.node).await?;
                    let r = if quarantine { client.quarantine(req).await } else { client.release(req).await };
                    r.map(tonic::Response::into_inner).map_err(|s| {
                        ctx.forget_agent(&pod.node);
                        s.message().to_string()
                    })
                };
                match tokio::time::timeout(FAST_PATH_TIMEOUT, call).await {
                    Ok(Ok(r)) => {
                        doc.enforced = r.quarantined == quarantine;
                        doc.agent_micros = Some(r.took_micros);
                        if !doc.enforced {
                            doc.error = "the agent's state still quarantines it; the next desired state decides".into();
                        }
                    }
                    Ok(Err(e)) => doc.error = format!("agent of node {}: {e}; the desired state carries it", pod.node),
                    Err(_) => doc.error = format!("agent of node {} did not answer in {FAST_PATH_TIMEOUT:?}", pod.node),
                }
                doc
            }
        });
        futures::future::join_all(calls).await
    }

    /// Enforces a decision: the agents' fast path
    /// first (nothing competes with it; the answer waits for it alone), then
    /// the new desired state, which carries the decision through restarts
    /// and to agents the fast path missed. Runs as its own task, so a caller
    /// that goes away does not stop it halfway.
    async fn enforce(&self, cut: QuarantineCut, quarantine: bool, who: &Principal) -> Vec<QuarantinedPod> {
        let (svc, who) = (self.clone(), who.clone());
        let pods: Vec<QuarantinedPod> = cut
            .pods
            .iter()
            .map(|(p, _)| QuarantinedPod {
                pod: p.pod.clone(),
                node: p.node.clone(),
                endpoint_id: 0,
                enforced: false,
                agent_micros: None,
                error: "enforcement was interrupted; the desired state carries it".into(),
            })
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            // Answered as soon as the agents have it; the push follows.
            let _ = tx.send(svc.fast_path(&cut, quarantine, &who).await);
            if let Err(e) = svc.ctx.with_policy(|s| s.reconcile()).await {
                tracing::error!(error = %e, "pushing the desired state after a quarantine change");
            }
        });
        rx.await.unwrap_or(pods)
    }

    /// Runs a desk decision (`quarantine` or release) and enforces what the
    /// desk announces while it saves it; nothing when it announces none.
    async fn decide_and_enforce(
        &self,
        quarantine: bool,
        who: &Principal,
        decide: impl FnOnce(&Desk, Announce) -> Result<QuarantineCut, ControllerError> + Send + 'static,
    ) -> Result<(QuarantineCut, Vec<QuarantinedPod>), ServiceError> {
        let (tx, announced) = tokio::sync::oneshot::channel();
        let announce: Announce = Box::new(move |cut| {
            let _ = tx.send(cut);
        });
        let enforced = async {
            match announced.await {
                Ok(cut) => self.enforce(cut, quarantine, who).await,
                Err(_) => Vec::new(),
            }
        };
        let (decided, pods) = tokio::join!(self.ctx.with_desk(move |d| decide(d, announce)), enforced);
        Ok((decided?, pods))
    }

    /// Quarantines a pod or every pod of a workload. Runs as its own task:
    /// a caller that goes away (a closed connection, a timeout) cannot leave
    /// a decision saved but never pushed or audited.
    pub async fn quarantine(&self, who: &Principal, req: QuarantineRequest) -> Result<Quarantine, ServiceError> {
        let (svc, who) = (self.clone(), who.clone());
        tokio::spawn(async move { svc.quarantine_now(&who, req).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("the quarantine task failed: {e}")))?
    }

    async fn quarantine_now(&self, who: &Principal, req: QuarantineRequest) -> Result<Quarantine, ServiceError> {
        let started = Instant::now();
        let (field, value) = match (&req.pod, &req.workload) {
            (Some(p), None) => ("pod", p.clone()),
            (None, Some(w)) => ("workload", w.clone()),
            _ => return Err(ServiceError::bad("pod", "give exactly one of pod and workload")),
        };
        let target_name = format!("{field} {value}");
        self.authorize(who, Op::Quarantine, &target_name)?;
        let (ns, name) = split(field, &value)?;
        let (pod, workload) = if field == "pod" { (Some(name.as_str()), None) } else { (None, Some(name.as_str())) };
        let (target, reason) =
            bulkhead_policy::quarantine::target(&ns, pod, workload, &req.reason, "quarantine request").map_err(
                |e| match e {
                    bulkhead_policy::PolicyError::Invalid { field, message, .. } => ServiceError::bad(&field, message),
                    other => ServiceError::bad(field, other.to_string()),
                },
            )?;
        self.in_scope(who, Op::Quarantine, &target_name, &ns)?;
        if let Target::Workload { namespace, name } = &target {
            let (ns2, n2) = (namespace.clone(), name.clone());
            let view = self.ctx.desk.view();
            let m = &view.model;
            let exists = m.inventory.pods.values().any(|p| {
                matches!(m.workload_of(p), bulkhead_graph::Entity::Workload { namespace, name, .. } if *namespace == *ns2 && *name == *n2)
            });
            if !exists {
                return Err(ServiceError::not_found(format!(
                    "workload {namespace}/{name} (no pod of it is in the inventory)"
                )));
            }
        }
        let by = who.clone();
        let (cut, pods) =
            self.decide_and_enforce(true, who, move |d, announce| d.quarantine(target, &reason, &by, announce)).await?;
        if !cut.created {
            // Already in force: answer it as it stands.
            return self.quarantine_doc(who, Op::Quarantine, cut.record.id).await;
        }
        let micros = started.elapsed().as_micros() as u64;
        let pod_list: Vec<String> =
            pods.iter().map(|p| format!("{} ({})", p.pod, if p.enforced { "enforced" } else { &p.error })).collect();
        let detail = format!("{}; pods: {}; {micros} µs", cut.record.reason, pod_list.join(", "));
        let target = format!("quarantine {} ({})", cut.record.id, cut.record.target.describe());
        let event = Event {
            action: Op::Quarantine.name(),
            target: &target,
            namespaces: vec![ns],
            detail: &detail,
            before: None,
            after: Some("active".into()),
        };
        self.audited(who, Outcome::Ok, event)?;
        self.ctx.metrics.record_quarantine(micros);
        self.ctx.metrics.record_quarantine_action("quarantine", who.via.actor_kind());
        Ok(document(&cut.record, pods, Some(micros)))
    }

    /// Releases a quarantine; traffic is restored at once. Runs as its own
    /// task, as [`Service::quarantine`] does.
    pub async fn release(&self, who: &Principal, id: u64, q: ReleaseQuery) -> Result<Quarantine, ServiceError> {
        let (svc, who) = (self.clone(), who.clone());
        tokio::spawn(async move { svc.release_now(&who, id, q).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("the release task failed: {e}")))?
    }

    async fn release_now(&self, who: &Principal, id: u64, q: ReleaseQuery) -> Result<Quarantine, ServiceError> {
        let started = Instant::now();
        let target = format!("quarantine {id}");
        self.authorize(who, Op::Release, &target)?;
        if q.reason.trim().is_empty() {
            return Err(ServiceError::bad("reason", "say why (it is recorded and audited)"));
        }
        let current = self.ctx.desk.read(|b| b.get(id).cloned())?;
        let Some(current) = current else { return Err(ServiceError::not_found(target)) };
        self.in_scope(who, Op::Release, &target, current.target.namespace())?;
        let (by, reason) = (who.clone(), q.reason.trim().to_string());
        let (cut, pods) =
            self.decide_and_enforce(false, who, move |d, announce| d.release(id, &reason, &by, announce)).await?;
        let micros = started.elapsed().as_micros() as u64;
        let event = Event {
            action: Op::Release.name(),
            target: &format!("quarantine {id} ({})", cut.record.target.describe()),
            namespaces: vec![cut.record.target.namespace().to_string()],
            detail: &format!("{}; {micros} µs", q.reason.trim()),
            before: Some("active".into()),
            after: Some("released".into()),
        };
        self.audited(who, Outcome::Ok, event)?;
        self.ctx.metrics.record_quarantine_action("release", who.via.actor_kind());
        // The pods it let go, each `enforced` when its agent lifted the cut.
        Ok(document(&cut.record, pods, Some(micros)))
    }

    /// The pods an active record cuts off now, as the last desired state
    /// has them, each `enforced` once its node applied a state made after it.
    fn current_pods(&self, book: &Book, view: &View, r: &Record) -> Vec<QuarantinedPod> {
        if r.state != QuarantineState::Active {
            return Vec::new();
        }
        book.pods_of(r, &view.model)
            .into_iter()
            .map(|p| {
                let endpoint = view.endpoints.get(&p.uid).copied();
                let applied = self.ctx.node_generation(&p.node).is_some_and(|g| g > r.created_ns as u64 / 1000);
                QuarantinedPod {
                    pod: p.pod,
                    node: p.node,
                    endpoint_id: endpoint.unwrap_or(0),
                    enforced: endpoint.is_some() && applied,
                    agent_micros: None,
                    error: String::new(),
                }
            })
            .collect()
    }

    async fn quarantine_doc(&self, who: &Principal, op: Op, id: u64) -> Result<Quarantine, ServiceError> {
        let view = self.ctx.desk.view();
        let doc = self
            .ctx
            .desk
            .read(|b| b.get(id).map(|r| document(r, self.current_pods(b, &view, r), None)))?
            .ok_or_else(|| ServiceError::not_found(format!("quarantine {id}")))?;
        self.in_scope(who, op, &format!("quarantine {id}"), &doc.namespace)?;
        Ok(doc)
    }

    /// One quarantine.
    pub async fn quarantine_get(&self, who: &Principal, id: u64) -> Result<Quarantine, ServiceError> {
        self.authorize(who, Op::QuarantineGet, &format!("quarantine {id}"))?;
        self.quarantine_doc(who, Op::QuarantineGet, id).await
    }

    /// Quarantines in scope, newest first, a page at a time.
    pub async fn quarantines(&self, who: &Principal, q: QuarantineQuery) -> Result<Page<Quarantine>, ServiceError> {
        self.authorize(who, Op::Quarantines, "quarantines")?;
        let limit = page_size(q.limit)?;
        let before = cursor_in("quarantines", q.cursor.as_deref())?;
        let scope = who.scope.clone();
        let view = self.ctx.desk.view();
        let mut items = self.ctx.desk.read(|b| {
            b.all()
                .filter(|r| scope.contains(r.target.namespace()))
                .filter(|r| q.namespace.as_ref().is_none_or(|ns| ns == r.target.namespace()))
                .filter(|r| q.state.is_none_or(|st| r.state == st))
                .filter(|r| before.is_none_or(|b| r.id < b))
                .take(limit + 1)
                .map(|r| document(r, self.current_pods(b, &view, r), None))
                .collect::<Vec<_>>()
        })?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(|r| cursor_out("quarantines", r.id)) } else { None };
        Ok(Page { items, next_cursor })
    }
}
