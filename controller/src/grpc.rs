//! The gRPC transport of the service layer, for the CLI on the controller's
//! root-only Unix socket. The kernel vouches for the caller (uid 0: an admin
//! of the whole cluster); the name it states travels in the metadata
//! `bulkhead-actor`. Each method converts the typed message into the
//! request document (refusing what does not convert, with the field), calls
//! the service layer, and converts the answer back.

use std::pin::Pin;

use bulkhead_api::controller::v1 as pb;
use bulkhead_api::controller::v1::controller_server::Controller;
use bulkhead_api::v1::convert::ConvertError;
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::auth::Principal;
use crate::policy::state::ChangeKind;
use crate::service::{Op, Service, ServiceError};

/// The gRPC server over the service layer.
#[derive(Clone, Debug)]
pub struct Grpc {
    service: Service,
}

impl Grpc {
    /// The transport over `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// The socket peer as a principal: only root, as the socket is root-only.
fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    let cred = req.extensions().get::<tonic::transport::server::UdsConnectInfo>().and_then(|i| i.peer_cred);
    let Some(cred) = cred else {
        return Err(Status::unauthenticated("the controller's gRPC API is served only on its Unix socket"));
    };
    if cred.uid() != 0 {
        return Err(Status::permission_denied(format!("uid {} may not use the controller's socket", cred.uid())));
    }
    let actor = req.metadata().get(bulkhead_api::ACTOR_METADATA).and_then(|v| v.to_str().ok()).unwrap_or_default();
    Ok(Principal::unix(actor, cred.uid(), cred.pid()))
}

fn invalid(e: ConvertError) -> Status {
    Status::invalid_argument(e.to_string())
}

impl Grpc {
    /// Runs one operation: principal, request conversion, the call, the
    /// answer's conversion, and the request metric.
    async fn call<M, D, R, P, F, Fut>(&self, op: Op, req: Request<M>, f: F) -> Result<Response<P>, Status>
    where
        D: TryFrom<M, Error = ConvertError>,
        F: FnOnce(Service, Principal, D) -> Fut,
        Fut: std::future::Future<Output = Result<R, ServiceError>>,
        P: From<R>,
    {
        let who = principal(&req)?;
        let doc = D::try_from(req.into_inner()).map_err(invalid)?;
        let result = f(self.service.clone(), who, doc).await;
        let label = result.as_ref().map_or_else(ServiceError::label, |_| "ok");
        self.service.context().metrics.record_request("grpc", op.name(), label);
        result.map(|r| Response::new(P::from(r))).map_err(|e| e.grpc())
    }
}

/// A request message that carries nothing, as a document.
struct Empty;

macro_rules! empty_from {
    ($($t:ty),+) => { $(impl TryFrom<$t> for Empty { type Error = ConvertError; fn try_from(_: $t) -> Result<Self, ConvertError> { Ok(Empty) } })+ };
}
empty_from!(pb::WhoAmIRequest, pb::StatusRequest, pb::ListNamespacesRequest, pb::BaselinesRequest);

/// A request that names one object by id.
struct Id(u64);

macro_rules! id_from {
    ($($t:ty),+) => { $(impl TryFrom<$t> for Id { type Error = ConvertError; fn try_from(r: $t) -> Result<Self, ConvertError> { Ok(Id(r.id)) } })+ };
}
id_from!(pb::ReviewId, pb::QuarantineId);

/// An optional namespace.
struct Namespace(Option<String>);

macro_rules! namespace_from {
    ($($t:ty),+) => { $(impl TryFrom<$t> for Namespace { type Error = ConvertError; fn try_from(r: $t) -> Result<Self, ConvertError> { Ok(Namespace(r.namespace)) } })+ };
}
namespace_from!(pb::WorkloadQuery, pb::ServiceQuery);

/// A workload named in a request.
struct Workload(String);

impl TryFrom<pb::BlastRadiusRequest> for Workload {
    type Error = ConvertError;
    fn try_from(r: pb::BlastRadiusRequest) -> Result<Self, ConvertError> {
        Ok(Workload(r.workload))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Controller for Grpc {
    async fn who_am_i(&self, req: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmI>, Status> {
        self.call(Op::WhoAmI, req, |s, who, Empty| async move { Ok(s.whoami(&who)) }).await
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::Status>, Status> {
        self.call(Op::Status, req, |s, who, Empty| async move { s.status(&who).await }).await
    }

    async fn list_namespaces(
        &self,
        req: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::NamespaceList>, Status> {
        self.call(Op::Namespaces, req, |s, who, Empty| async move { s.namespaces(&who).await }).await
    }

    async fn list_pods(&self, req: Request<pb::PodQuery>) -> Result<Response<pb::PodPage>, Status> {
        self.call(Op::Pods, req, |s, who, q| async move { s.pods(&who, q).await }).await
    }

    async fn list_workloads(&self, req: Request<pb::WorkloadQuery>) -> Result<Response<pb::WorkloadList>, Status> {
        self.call(Op::Workloads, req, |s, who, Namespace(ns)| async move { s.workloads(&who, ns).await }).await
    }

    async fn list_services(&self, req: Request<pb::ServiceQuery>) -> Result<Response<pb::ServiceList>, Status> {
        self.call(Op::Services, req, |s, who, Namespace(ns)| async move { s.services(&who, ns).await }).await
    }

    async fn flows(&self, req: Request<pb::FlowQuery>) -> Result<Response<pb::FlowPage>, Status> {
        self.call(Op::Flows, req, |s, who, q| async move { s.flows(&who, q).await }).await
    }

    type StreamFlowsStream = EventStream;

    async fn stream_flows(&self, req: Request<pb::FlowQuery>) -> Result<Response<EventStream>, Status> {
        let who = principal(&req)?;
        let q = bulkhead_api::v1::flows::FlowQuery::try_from(req.into_inner()).map_err(invalid)?;
        let mut sub = self.service.subscribe(&who, q).await.map_err(|e| e.grpc())?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let events = sub.next().await;
                if events.is_empty() {
                    return;
                }
                for e in events {
                    // A slow reader holds this task back; the stream's buffer counts what it misses.
                    if tx.send(Ok(pb::StreamEvent::from(e))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn graph(&self, req: Request<pb::GraphQuery>) -> Result<Response<pb::Graph>, Status> {
        self.call(Op::Graph, req, |s, who, q| async move { s.graph(&who, q).await }).await
    }

    async fn graph_diff(&self, req: Request<pb::GraphDiffQuery>) -> Result<Response<pb::GraphDiff>, Status> {
        self.call(Op::GraphDiff, req, |s, who, q| async move { s.graph_diff(&who, q).await }).await
    }

    async fn blast_radius(&self, req: Request<pb::BlastRadiusRequest>) -> Result<Response<pb::BlastRadius>, Status> {
        self.call(Op::BlastRadius, req, |s, who, Workload(w)| async move { s.blast_radius(&who, w).await }).await
    }

    async fn allowed_edges(&self, req: Request<pb::AllowedQuery>) -> Result<Response<pb::Allowed>, Status> {
        self.call(Op::AllowedEdges, req, |s, who, q: bulkhead_api::v1::graph::AllowedQuery| async move {
            s.allowed(&who, q).await
        })
        .await
    }

    async fn exposure(&self, req: Request<pb::ExposureQuery>) -> Result<Response<pb::Exposure>, Status> {
        self.call(Op::Exposure, req, |s, who, q: bulkhead_api::v1::exposure::ExposureQuery| async move {
            s.exposure(&who, q).await
        })
        .await
    }

    async fn baselines(&self, req: Request<pb::BaselinesRequest>) -> Result<Response<pb::Baselines>, Status> {
        self.call(Op::Baselines, req, |s, who, Empty| async move { s.baselines(&who).await }).await
    }

    async fn anomalies(&self, req: Request<pb::AnomalyQuery>) -> Result<Response<pb::AnomalyPage>, Status> {
        self.call(Op::Anomalies, req, |s, who, q| async move { s.anomalies(&who, q).await }).await
    }

    async fn suggest(&self, req: Request<pb::SuggestRequest>) -> Result<Response<pb::ReviewRecordList>, Status> {
        self.call(Op::Suggest, req, |s, who, q| async move { s.suggest(&who, q).await }).await
    }

    async fn export_suggestions(&self, req: Request<pb::ExportQuery>) -> Result<Response<pb::PolicyList>, Status> {
        self.call(Op::Export, req, |s, who, q| async move { s.export(&who, q).await }).await
    }

    async fn list_reviews(&self, req: Request<pb::ReviewQuery>) -> Result<Response<pb::ReviewPage>, Status> {
        self.call(Op::Reviews, req, |s, who, q| async move { s.reviews(&who, q).await }).await
    }

    async fn get_review(&self, req: Request<pb::ReviewId>) -> Result<Response<pb::ReviewDetail>, Status> {
        self.call(Op::Review, req, |s, who, Id(id)| async move { s.review(&who, id).await }).await
    }

    async fn approve(&self, req: Request<pb::ReviewDecision>) -> Result<Response<pb::ReviewRecord>, Status> {
        self.call(Op::Approve, req, |s, who, (id, d)| async move { s.decide(&who, id, true, d).await }).await
    }

    async fn reject(&self, req: Request<pb::ReviewDecision>) -> Result<Response<pb::ReviewRecord>, Status> {
        self.call(Op::Reject, req, |s, who, (id, d)| async move { s.decide(&who, id, false, d).await }).await
    }

    async fn apply_review(&self, req: Request<pb::ReviewApply>) -> Result<Response<pb::ReviewRecord>, Status> {
        self.call(Op::ApplyAudit, req, |s, who, (id, a)| async move { s.apply_review(&who, id, a).await }).await
    }

    async fn list_policies(&self, req: Request<pb::PolicyQuery>) -> Result<Response<pb::PolicyInForceList>, Status> {
        self.call(Op::Policies, req, |s, who, q| async move { s.policies(&who, q).await }).await
    }

    async fn apply(&self, req: Request<pb::ChangeRequest>) -> Result<Response<pb::ChangeResult>, Status> {
        self.call(Op::Apply, req, |s, who, c| async move { s.change(&who, ChangeKind::Apply, c).await }).await
    }

    async fn delete(&self, req: Request<pb::ChangeRequest>) -> Result<Response<pb::ChangeResult>, Status> {
        self.call(Op::Delete, req, |s, who, c| async move { s.change(&who, ChangeKind::Delete, c).await }).await
    }

    async fn explain(&self, req: Request<pb::ExplainQuery>) -> Result<Response<pb::Explanation>, Status> {
        self.call(Op::Explain, req, |s, who, q| async move { s.explain(&who, q).await }).await
    }

    async fn quarantine(&self, req: Request<pb::QuarantineRequest>) -> Result<Response<pb::Quarantine>, Status> {
        self.call(Op::Quarantine, req, |s, who, q| async move { s.quarantine(&who, q).await }).await
    }

    async fn release(&self, req: Request<pb::ReleaseRequest>) -> Result<Response<pb::Quarantine>, Status> {
        self.call(Op::Release, req, |s, who, (id, q)| async move { s.release(&who, id, q).await }).await
    }

    async fn list_quarantines(
        &self,
        req: Request<pb::QuarantineQuery>,
    ) -> Result<Response<pb::QuarantinePage>, Status> {
        self.call(Op::Quarantines, req, |s, who, q| async move { s.quarantines(&who, q).await }).await
    }

    async fn get_quarantine(&self, req: Request<pb::QuarantineId>) -> Result<Response<pb::Quarantine>, Status> {
        self.call(Op::QuarantineGet, req, |s, who, Id(id)| async move { s.quarantine_get(&who, id).await }).await
    }

    async fn block(&self, req: Request<pb::BlockRequest>) -> Result<Response<pb::Block>, Status> {
        self.call(Op::Block, req, |s, who, b| async move { s.block(&who, b).await }).await
    }

    async fn unblock(&self, req: Request<pb::ReleaseRequest>) -> Result<Response<pb::Block>, Status> {
        self.call(Op::Unblock, req, |s, who, (id, q)| async move { s.unblock(&who, id, q).await }).await
    }

    async fn list_blocks(&self, req: Request<pb::BlockQuery>) -> Result<Response<pb::BlockPage>, Status> {
        self.call(Op::Blocks, req, |s, who, q| async move { s.blocks(&who, q).await }).await
    }

    async fn trail(&self, req: Request<pb::TrailQuery>) -> Result<Response<pb::Trail>, Status> {
        self.call(Op::Trail, req, |s, who, q| async move { s.trail(&who, q).await }).await
    }

    async fn audit(&self, req: Request<pb::AuditQuery>) -> Result<Response<pb::AuditPage>, Status> {
        self.call(Op::Audit, req, |s, who, q| async move { s.audit(&who, q).await }).await
    }
}
