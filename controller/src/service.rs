//! The controller's gRPC API. Changes are accepted only over its root-only
//! Unix socket, from callers whose kernel-verified credentials pass, and
//! every change (or rejected attempt) is audited.

use std::sync::{Arc, Mutex};

use bulkhead_api::controller::v1 as pb;
use bulkhead_api::controller::v1::controller_server::Controller;
use tonic::{Request, Response, Status};

use crate::error::ControllerError;
use bulkhead_api::audit::Caller;

use crate::observation::flows::Pipeline;
use crate::observation::flows::query::FlowQuery;
use crate::observation::review;
use crate::policy::state::{ChangeKind, State};
use bulkhead_graph::baseline::LearningConfig;
use bulkhead_model::Mode;
use bulkhead_model::Verdict;
use bulkhead_policy::objects::ObjectRef;

/// Shared by every RPC.
#[derive(Clone)]
pub struct ControllerService {
    /// The controller's state.
    pub state: Arc<Mutex<State>>,
    /// The flow pipeline (graph, baselines, store, review workflow).
    pub flows: Arc<Mutex<Pipeline>>,
    /// Learning window and quiet period (what-if replays the window).
    pub learning: LearningConfig,
}

impl std::fmt::Debug for ControllerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerService").finish_non_exhaustive()
    }
}

fn caller<T>(req: &Request<T>, actor: &str) -> Result<Caller, Status> {
    Caller::from_request(req, actor, &[], "controller")
}

fn status(e: ControllerError) -> Status {
    match e {
        ControllerError::Policy(_) | ControllerError::BadRequest(_) => Status::invalid_argument(e.to_string()),
        ControllerError::NotFound(_) => Status::not_found(e.to_string()),
        ControllerError::EndpointIdsExhausted(_) => Status::resource_exhausted(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn document<T: serde::Serialize>(v: &T) -> Result<Response<pb::Document>, Status> {
    serde_json::to_string(v)
        .map(|json| Response::new(pb::Document { json }))
        .map_err(|e| Status::internal(format!("encoding the answer: {e}")))
}

impl ControllerService {
    async fn with_flows<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Pipeline) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, Status> {
        locked(self.flows.clone(), "flow pipeline", f).await
    }

    async fn with_state<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, Status> {
        locked(self.state.clone(), "controller state", f).await
    }
}

/// Runs `f` on what `m` guards, off the async threads (both locks can be
/// held through compiles and store reads).
async fn locked<S: Send + 'static, T: Send + 'static>(
    m: Arc<Mutex<S>>,
    what: &'static str,
    f: impl FnOnce(&mut S) -> Result<T, ControllerError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(move || {
        let mut guard = m.lock().map_err(|_| Status::internal(format!("{what} lock poisoned")))?;
        f(&mut guard).map_err(status)
    })
    .await
    .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn apply(&self, req: Request<pb::ChangeRequest>) -> Result<Response<pb::ChangeResponse>, Status> {
        let who = caller(&req, &req.get_ref().actor)?;
        let r = req.into_inner();
        self.with_state(move |s| s.change(ChangeKind::Apply, &r, &who)).await.map(Response::new)
    }

    async fn delete(&self, req: Request<pb::ChangeRequest>) -> Result<Response<pb::ChangeResponse>, Status> {
        let who = caller(&req, &req.get_ref().actor)?;
        let r = req.into_inner();
        self.with_state(move |s| s.change(ChangeKind::Delete, &r, &who)).await.map(Response::new)
    }

    async fn explain(&self, req: Request<pb::ExplainRequest>) -> Result<Response<pb::ExplainResponse>, Status> {
        let r = req.into_inner();
        self.with_state(move |s| s.explain(&r)).await.map(Response::new)
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Response<pb::ControllerStatus>, Status> {
        let mut st = self.with_state(|s| Ok(s.status())).await?;
        st.flows_json = self.with_flows(|p| Ok(serde_json::to_string(p.stats()).unwrap_or_default())).await?;
        Ok(Response::new(st))
    }

    async fn flows(&self, req: Request<pb::FlowQuery>) -> Result<Response<pb::Document>, Status> {
        let q = flow_query(req.into_inner())?;
        let flows = self.with_flows(move |p| Ok(p.query_flows(&q)?)).await?;
        document(&flows)
    }

    async fn graph(&self, req: Request<pb::GraphRequest>) -> Result<Response<pb::Document>, Status> {
        let r = req.into_inner();
        if !r.blast_radius_from.is_empty() {
            let model = self.with_state(|s| Ok(s.model().clone())).await?;
            let from = r.blast_radius_from;
            let radius =
                self.with_flows(move |p| p.blast_radius(&model, &from).map_err(ControllerError::NotFound)).await?;
            return document(&radius);
        }
        let ns = r.namespace;
        let view = self.with_flows(move |p| Ok(p.graph_view((!ns.is_empty()).then_some(ns.as_str())))).await?;
        document(&view)
    }

    async fn baselines(&self, _req: Request<pb::BaselinesRequest>) -> Result<Response<pb::Document>, Status> {
        document(&self.with_flows(|p| Ok(p.baselines())).await?)
    }

    async fn suggest(&self, req: Request<pb::SuggestRequest>) -> Result<Response<pb::Document>, Status> {
        // It records suggestions and can supersede approved ones: root-only and audited.
        let who = caller(&req, &req.get_ref().actor)?;
        let r = req.into_inner();
        let actor = actor_of(&who);
        let ns = r.namespace;
        let detail = format!("suggest (namespace {ns:?})");
        self.with_state(move |s| s.audit_review(&who, &detail)).await?;
        let out = self.with_flows(move |p| review::suggest(p, (!ns.is_empty()).then_some(ns.as_str()), &actor)).await?;
        document(&out)
    }

    async fn review(&self, req: Request<pb::ReviewRequest>) -> Result<Response<pb::Document>, Status> {
        let action = req.get_ref().action.clone();
        match action.as_str() {
            "list" => document(&self.with_flows(|p| review::records(p)).await?),
            "show" => {
                let id = req.into_inner().id;
                let policy = self.with_flows(move |p| review::record(p, id)).await?.suggestion.policy.metadata;
                let oref = ObjectRef {
                    kind: "NetworkPolicy".into(),
                    namespace: policy.namespace.unwrap_or_default(),
                    name: policy.name.unwrap_or_default(),
                };
                let (model, existing) =
                    self.with_state(move |s| Ok((s.model().clone(), s.object(&oref).cloned()))).await?;
                let learning = self.learning;
                document(&self.with_flows(move |p| review::detail(p, &model, id, existing.as_ref(), learning)).await?)
            }
            "approve" | "reject" => {
                let who = caller(&req, &req.get_ref().actor)?;
                let r = req.into_inner();
                let approve = action == "approve";
                let actor = actor_of(&who);
                // Audited first: a decision is never stored unaudited.
                let audit_detail = format!("suggestion {} {} ({})", r.id, action, r.reason);
                self.with_state(move |s| s.audit_review(&who, &audit_detail)).await?;
                let rec = self.with_flows(move |p| review::decide(p, r.id, approve, &actor, &r.reason)).await?;
                document(&rec)
            }
            "apply" => {
                let who = caller(&req, &req.get_ref().actor)?;
                let r = req.into_inner();
                let mode: Mode = r
                    .mode
                    .parse()
                    .map_err(|e: bulkhead_model::CodeError| Status::invalid_argument(format!("--mode: {e}")))?;
                if mode == Mode::Learn {
                    return Err(Status::invalid_argument("--mode must be audit or enforce"));
                }
                let id = r.id;
                let yaml = self.with_flows(move |p| review::staged_yaml(p, id, mode)).await?;
                let change = pb::ChangeRequest { yaml, source: format!("suggestion {id}"), actor: r.actor.clone() };
                let who2 = who.clone();
                self.with_state(move |s| s.change(ChangeKind::Apply, &change, &who2)).await?;
                let actor = actor_of(&who);
                let reason = r.reason;
                document(&self.with_flows(move |p| review::applied(p, id, mode, &actor, &reason)).await?)
            }
            other => Err(Status::invalid_argument(format!(
                "unknown review action {other:?}; expected list, show, approve, reject or apply"
            ))),
        }
    }
}

/// The stated name and the verified uid, as review records keep them.
fn actor_of(who: &Caller) -> String {
    match who.uid {
        Some(uid) => format!("{} (uid {uid})", who.actor),
        None => who.actor.clone(),
    }
}

fn flow_query(q: pb::FlowQuery) -> Result<FlowQuery, Status> {
    let verdict = match q.verdict.as_str() {
        "" => None,
        "forwarded" => Some(Verdict::Forwarded),
        "dropped" => Some(Verdict::Dropped),
        "audit" => Some(Verdict::Audit),
        other => {
            return Err(Status::invalid_argument(format!("verdict {other:?}: expected forwarded, dropped or audit")));
        }
    };
    let port = match q.port {
        0 => None,
        p => Some(u16::try_from(p).map_err(|_| Status::invalid_argument(format!("port {p} is above 65535")))?),
    };
    Ok(FlowQuery {
        namespace: q.namespace,
        pod: q.pod,
        workload: q.workload,
        verdict,
        port,
        since_ns: (q.since_ns != 0).then_some(q.since_ns),
        until_ns: (q.until_ns != 0).then_some(q.until_ns),
        limit: (q.limit != 0).then_some(q.limit as usize),
    })
}
