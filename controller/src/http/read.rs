//! The HTTP API's reading operations. Each handler authenticates, calls the
//! service layer and answers its document as JSON; the OpenAPI document is
//! generated from these annotations.

use axum::Json;
use axum::extract::State;
use bulkhead_api::v1::audit::{AuditEntry, AuditQuery};
use bulkhead_api::v1::baselines::{Anomaly, AnomalyQuery, Baselines};
use bulkhead_api::v1::blocks::{Block, BlockQuery};
use bulkhead_api::v1::exposure::{Exposure, ExposureQuery};
use bulkhead_api::v1::flows::{Flow, FlowQuery};
use bulkhead_api::v1::graph::{Allowed, AllowedQuery, BlastRadius, Graph, GraphDiff, GraphDiffQuery, GraphQuery};
use bulkhead_api::v1::inventory::{Namespace, Pod, PodQuery, Service as ServiceDoc, Workload};
use bulkhead_api::v1::policies::{ExplainQuery, Explanation, PolicyInForce, PolicyQuery};
use bulkhead_api::v1::quarantine::{Quarantine, QuarantineQuery};
use bulkhead_api::v1::review::{ReviewDetail, ReviewQuery, ReviewRecord};
use bulkhead_api::v1::status::Status;
use bulkhead_api::v1::trail::{Trail, TrailQuery};
use bulkhead_api::v1::{Page, WhoAmI};
use serde::Deserialize;
use utoipa::IntoParams;

use super::done;
use super::extract::{ApiError, Id, Problems, Q, Who};
use crate::service::{Op, Service};

/// A namespace filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamespaceQuery {
    /// Only this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A workload, "namespace/name".
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkloadParam {
    /// The workload, "namespace/name".
    pub workload: String,
}

/// Who the server says the caller is; the console follows it.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses((status = 200, body = WhoAmI), Problems))]
pub async fn whoami(State(s): State<Service>, Who(who): Who) -> Result<Json<WhoAmI>, ApiError> {
    done(&s, Op::WhoAmI, Ok(s.whoami(&who)))
}

/// Generation, nodes' sync state, unprotected pods, the flow pipeline.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = Status), Problems))]
pub async fn status(State(s): State<Service>, Who(who): Who) -> Result<Json<Status>, ApiError> {
    let r = s.status(&who).await;
    done(&s, Op::Status, r)
}

/// Namespaces in the caller's scope.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "inventory",
    responses((status = 200, body = Vec<Namespace>), Problems))]
pub async fn namespaces(State(s): State<Service>, Who(who): Who) -> Result<Json<Vec<Namespace>>, ApiError> {
    let r = s.namespaces(&who).await;
    done(&s, Op::Namespaces, r)
}

/// Pods, filtered, a page at a time.
#[utoipa::path(get, path = "/api/v1/pods", tag = "inventory", params(PodQuery),
    responses((status = 200, body = Page<Pod>), Problems))]
pub async fn pods(State(s): State<Service>, Who(who): Who, Q(q): Q<PodQuery>) -> Result<Json<Page<Pod>>, ApiError> {
    let r = s.pods(&who, q).await;
    done(&s, Op::Pods, r)
}

/// Workloads and their pods.
#[utoipa::path(get, path = "/api/v1/workloads", tag = "inventory", params(NamespaceQuery),
    responses((status = 200, body = Vec<Workload>), Problems))]
pub async fn workloads(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<NamespaceQuery>,
) -> Result<Json<Vec<Workload>>, ApiError> {
    let r = s.workloads(&who, q.namespace).await;
    done(&s, Op::Workloads, r)
}

/// Services.
#[utoipa::path(get, path = "/api/v1/services", tag = "inventory", params(NamespaceQuery),
    responses((status = 200, body = Vec<ServiceDoc>), Problems))]
pub async fn services(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<NamespaceQuery>,
) -> Result<Json<Vec<ServiceDoc>>, ApiError> {
    let r = s.services(&who, q.namespace).await;
    done(&s, Op::Services, r)
}

/// Stored flows, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", params(FlowQuery),
    responses((status = 200, body = Page<Flow>), Problems))]
pub async fn flows(State(s): State<Service>, Who(who): Who, Q(q): Q<FlowQuery>) -> Result<Json<Page<Flow>>, ApiError> {
    let r = s.flows(&who, q).await;
    done(&s, Op::Flows, r)
}

/// The service graph at a level, over a time range.
#[utoipa::path(get, path = "/api/v1/graph", tag = "graph", params(GraphQuery),
    responses((status = 200, body = Graph), Problems))]
pub async fn graph(State(s): State<Service>, Who(who): Who, Q(q): Q<GraphQuery>) -> Result<Json<Graph>, ApiError> {
    let r = s.graph(&who, q).await;
    done(&s, Op::Graph, r)
}

/// Edges new in the second window and gone since the first.
#[utoipa::path(get, path = "/api/v1/graph/diff", tag = "graph", params(GraphDiffQuery),
    responses((status = 200, body = GraphDiff), Problems))]
pub async fn graph_diff(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<GraphDiffQuery>,
) -> Result<Json<GraphDiff>, ApiError> {
    let r = s.graph_diff(&who, q).await;
    done(&s, Op::GraphDiff, r)
}

/// Everything a workload can reach under the policies in force.
#[utoipa::path(get, path = "/api/v1/graph/blast-radius", tag = "graph", params(WorkloadParam),
    responses((status = 200, body = BlastRadius), Problems))]
pub async fn blast_radius(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<WorkloadParam>,
) -> Result<Json<BlastRadius>, ApiError> {
    let r = s.blast_radius(&who, q.workload).await;
    done(&s, Op::BlastRadius, r)
}

/// What the policies in force allow between workloads, marked observed or
/// not: allowed but never used is where to tighten.
#[utoipa::path(get, path = "/api/v1/graph/allowed", tag = "graph", params(AllowedQuery),
    responses((status = 200, body = Allowed), Problems))]
pub async fn allowed(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<AllowedQuery>,
) -> Result<Json<Allowed>, ApiError> {
    let r = s.allowed(&who, q).await;
    done(&s, Op::AllowedEdges, r)
}

/// Every service and workload port: how far it is exposed, who the
/// policies in force let reach it, who did in the window, and the findings.
#[utoipa::path(get, path = "/api/v1/exposure", tag = "exposure", params(ExposureQuery),
    responses((status = 200, body = Exposure), Problems))]
pub async fn exposure(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<ExposureQuery>,
) -> Result<Json<Exposure>, ApiError> {
    let r = s.exposure(&who, q).await;
    done(&s, Op::Exposure, r)
}

/// Baselines of the workloads.
#[utoipa::path(get, path = "/api/v1/baselines", tag = "graph",
    responses((status = 200, body = Baselines), Problems))]
pub async fn baselines(State(s): State<Service>, Who(who): Who) -> Result<Json<Baselines>, ApiError> {
    let r = s.baselines(&who).await;
    done(&s, Op::Baselines, r)
}

/// Anomalies, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "graph", params(AnomalyQuery),
    responses((status = 200, body = Page<Anomaly>), Problems))]
pub async fn anomalies(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<AnomalyQuery>,
) -> Result<Json<Page<Anomaly>>, ApiError> {
    let r = s.anomalies(&who, q).await;
    done(&s, Op::Anomalies, r)
}

/// Suggestions and their review state, newest first.
#[utoipa::path(get, path = "/api/v1/suggestions", tag = "review", params(ReviewQuery),
    responses((status = 200, body = Page<ReviewRecord>), Problems))]
pub async fn suggestions(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<ReviewQuery>,
) -> Result<Json<Page<ReviewRecord>>, ApiError> {
    let r = s.reviews(&who, q).await;
    done(&s, Op::Reviews, r)
}

/// One suggestion in full: YAML, diff, what-if, would-drops, history.
#[utoipa::path(get, path = "/api/v1/suggestions/{id}", tag = "review", params(("id" = u64, Path, description = "Suggestion id")),
    responses((status = 200, body = ReviewDetail), Problems))]
pub async fn suggestion(State(s): State<Service>, Who(who): Who, Id(id): Id) -> Result<Json<ReviewDetail>, ApiError> {
    let r = s.review(&who, id).await;
    done(&s, Op::Review, r)
}

/// Policies in force.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", params(PolicyQuery),
    responses((status = 200, body = Vec<PolicyInForce>), Problems))]
pub async fn policies(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<PolicyQuery>,
) -> Result<Json<Vec<PolicyInForce>>, ApiError> {
    let r = s.policies(&who, q).await;
    done(&s, Op::Policies, r)
}

/// "Can A reach B:port?", and the rule that decides it.
#[utoipa::path(get, path = "/api/v1/explain", tag = "policies", params(ExplainQuery),
    responses((status = 200, body = Explanation), Problems))]
pub async fn explain(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<ExplainQuery>,
) -> Result<Json<Explanation>, ApiError> {
    let r = s.explain(&who, q).await;
    done(&s, Op::Explain, r)
}

/// Quarantines, newest first.
#[utoipa::path(get, path = "/api/v1/quarantines", tag = "quarantine", params(QuarantineQuery),
    responses((status = 200, body = Page<Quarantine>), Problems))]
pub async fn quarantines(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<QuarantineQuery>,
) -> Result<Json<Page<Quarantine>>, ApiError> {
    let r = s.quarantines(&who, q).await;
    done(&s, Op::Quarantines, r)
}

/// The block list, newest first.
#[utoipa::path(get, path = "/api/v1/blocks", tag = "blocks", params(BlockQuery),
    responses((status = 200, body = Page<Block>), Problems))]
pub async fn blocks(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<BlockQuery>,
) -> Result<Json<Page<Block>>, ApiError> {
    let r = s.blocks(&who, q).await;
    done(&s, Op::Blocks, r)
}

/// The access trail of a pod over a window (default: the last 30 minutes).
#[utoipa::path(get, path = "/api/v1/trail", tag = "incident", params(TrailQuery),
    responses((status = 200, body = Trail), Problems))]
pub async fn trail(State(s): State<Service>, Who(who): Who, Q(q): Q<TrailQuery>) -> Result<Json<Trail>, ApiError> {
    let r = s.trail(&who, q).await;
    done(&s, Op::Trail, r)
}

/// The same trail's connections as CSV, one row per connection group (hop 1: the pod's own, hop 2: its peers').
#[utoipa::path(get, path = "/api/v1/trail/csv", tag = "incident", params(TrailQuery),
    responses((status = 200, body = String, content_type = "text/csv"), Problems))]
pub async fn trail_csv(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<TrailQuery>,
) -> Result<([(axum::http::header::HeaderName, &'static str); 2], String), ApiError> {
    let r = s.trail(&who, q).await;
    let Json(t) = done(&s, Op::Trail, r)?;
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"trail.csv\""),
    ];
    Ok((headers, t.to_csv()))
}

/// One quarantine.
#[utoipa::path(get, path = "/api/v1/quarantines/{id}", tag = "quarantine", params(("id" = u64, Path, description = "Quarantine id")),
    responses((status = 200, body = Quarantine), Problems))]
pub async fn quarantine(State(s): State<Service>, Who(who): Who, Id(id): Id) -> Result<Json<Quarantine>, ApiError> {
    let r = s.quarantine_get(&who, id).await;
    done(&s, Op::QuarantineGet, r)
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), Problems))]
pub async fn audit(
    State(s): State<Service>,
    Who(who): Who,
    Q(q): Q<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let r = s.audit(&who, q).await;
    done(&s, Op::Audit, r)
}
