//! The HTTP API's changing operations, the suggestion export, and the live
//! flow stream (server-sent events).

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bulkhead_api::v1::blocks::{Block, BlockRequest};
use bulkhead_api::v1::flows::{FlowQuery, StreamEvent};
use bulkhead_api::v1::hub::{RemotePods, RemotePodsTaken};
use bulkhead_api::v1::policies::{ChangeRequest, ChangeResult};
use bulkhead_api::v1::quarantine::{Quarantine, QuarantineRequest, ReleaseQuery};
use bulkhead_api::v1::review::{ApplyRequest, DecisionRequest, ExportQuery, PolicyList, ReviewRecord, SuggestRequest};
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use super::done;
use super::extract::{ApiError, Id, J, Problems, Q, Who};
use crate::policy::state::ChangeKind;
use crate::service::{Op, Service, ServiceError};

/// Generates suggestions from the baselines and records them as pending.
#[utoipa::path(post, path = "/api/v1/suggestions", tag = "review", request_body = SuggestRequest,
    responses((status = 200, body = Vec<ReviewRecord>), Problems))]
pub async fn suggest(
    State(s): State<Service>,
    Who(who): Who,
    J(req): J<SuggestRequest>,
) -> Result<Json<Vec<ReviewRecord>>, ApiError> {
    let r = s.suggest(&who, req).await;
    done(&s, Op::Suggest, r)
}

/// How to answer the export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Only suggestions for workloads of this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only suggestions in this state (default: all but rejected and superseded).
    #[serde(default)]
    pub status: Option<bulkhead_api::v1::review::ReviewStatus>,
    /// `json` (default) or `yaml` (what `kubectl apply -f` and git take).
    #[serde(default)]
    pub format: Option<Format>,
}

/// An export format.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// The suggested NetworkPolicies themselves, as a Kubernetes List.
#[utoipa::path(get, path = "/api/v1/suggestions/export", tag = "review", params(ExportParams),
    responses((status = 200, description = "The List, as JSON or (format=yaml) YAML", content((PolicyList = "application/json"), (PolicyList = "application/yaml"))), Problems))]
pub async fn export(State(s): State<Service>, Who(who): Who, Q(q): Q<ExportParams>) -> Result<Response, ApiError> {
    let r = s.export(&who, ExportQuery { namespace: q.namespace, status: q.status }).await;
    let list = done(&s, Op::Export, r)?.0;
    match q.format {
        Some(Format::Yaml) => {
            let text = serde_yaml::to_string(&list).map_err(|e| ApiError(ServiceError::Internal(e.to_string())))?;
            Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response())
        }
        _ => Ok(Json(list).into_response()),
    }
}

/// Approves a suggestion.
#[utoipa::path(post, path = "/api/v1/suggestions/{id}/approve", tag = "review", request_body = DecisionRequest,
    params(("id" = u64, Path, description = "Suggestion id")), responses((status = 200, body = ReviewRecord), Problems))]
pub async fn approve(
    State(s): State<Service>,
    Who(who): Who,
    Id(id): Id,
    J(req): J<DecisionRequest>,
) -> Result<Json<ReviewRecord>, ApiError> {
    let r = s.decide(&who, id, true, req).await;
    done(&s, Op::Approve, r)
}

/// Rejects a suggestion; the same policy is not proposed again.
#[utoipa::path(post, path = "/api/v1/suggestions/{id}/reject", tag = "review", request_body = DecisionRequest,
    params(("id" = u64, Path, description = "Suggestion id")), responses((status = 200, body = ReviewRecord), Problems))]
pub async fn reject(
    State(s): State<Service>,
    Who(who): Who,
    Id(id): Id,
    J(req): J<DecisionRequest>,
) -> Result<Json<ReviewRecord>, ApiError> {
    let r = s.decide(&who, id, false, req).await;
    done(&s, Op::Reject, r)
}

/// Applies an approved suggestion in audit, or enforces it.
#[utoipa::path(post, path = "/api/v1/suggestions/{id}/apply", tag = "review", request_body = ApplyRequest,
    params(("id" = u64, Path, description = "Suggestion id")), responses((status = 200, body = ReviewRecord), Problems))]
pub async fn apply_suggestion(
    State(s): State<Service>,
    Who(who): Who,
    Id(id): Id,
    J(req): J<ApplyRequest>,
) -> Result<Json<ReviewRecord>, ApiError> {
    let op = if req.mode == bulkhead_model::Mode::Enforce { Op::ApplyEnforce } else { Op::ApplyAudit };
    let r = s.apply_review(&who, id, req).await;
    done(&s, op, r)
}

/// Adds or replaces objects (NetworkPolicy, ClusterNetworkPolicy, Quarantine…), all or nothing.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies", request_body = ChangeRequest,
    responses((status = 200, body = ChangeResult), Problems))]
pub async fn apply(
    State(s): State<Service>,
    Who(who): Who,
    J(req): J<ChangeRequest>,
) -> Result<Json<ChangeResult>, ApiError> {
    let r = s.change(&who, ChangeKind::Apply, req).await;
    done(&s, Op::Apply, r)
}

/// Deletes the objects the YAML names (kind, namespace and name), all or nothing.
#[utoipa::path(post, path = "/api/v1/policies/delete", tag = "policies", request_body = ChangeRequest,
    responses((status = 200, body = ChangeResult), Problems))]
pub async fn delete(
    State(s): State<Service>,
    Who(who): Who,
    J(req): J<ChangeRequest>,
) -> Result<Json<ChangeResult>, ApiError> {
    let r = s.change(&who, ChangeKind::Delete, req).await;
    done(&s, Op::Delete, r)
}

/// Quarantines a pod, or every pod of a workload; answers when the agents report the drop enforced.
#[utoipa::path(post, path = "/api/v1/quarantines", tag = "quarantine", request_body = QuarantineRequest,
    responses((status = 201, body = Quarantine), Problems))]
pub async fn quarantine(
    State(s): State<Service>,
    Who(who): Who,
    J(req): J<QuarantineRequest>,
) -> Result<(StatusCode, Json<Quarantine>), ApiError> {
    let r = s.quarantine(&who, req).await;
    done(&s, Op::Quarantine, r).map(|j| (StatusCode::CREATED, j))
}

/// Takes another cluster's pods as peers (the hub shares them), so this
/// cluster's identities for their addresses carry that cluster's name.
#[utoipa::path(put, path = "/api/v1/remote-clusters/{cluster}/pods", tag = "hub", request_body = RemotePods,
    params(("cluster" = String, Path, description = "The other cluster's name")),
    responses((status = 200, body = RemotePodsTaken), Problems))]
pub async fn remote_pods(
    State(s): State<Service>,
    Who(who): Who,
    axum::extract::Path(cluster): axum::extract::Path<String>,
    J(req): J<RemotePods>,
) -> Result<Json<RemotePodsTaken>, ApiError> {
    let r = s.set_remote_pods(&who, &cluster, req).await;
    done(&s, Op::SetRemotePods, r)
}

/// Releases a quarantine.
#[utoipa::path(delete, path = "/api/v1/quarantines/{id}", tag = "quarantine",
    params(("id" = u64, Path, description = "Quarantine id"), ReleaseQuery), responses((status = 200, body = Quarantine), Problems))]
pub async fn release(
    State(s): State<Service>,
    Who(who): Who,
    Id(id): Id,
    Q(q): Q<ReleaseQuery>,
) -> Result<Json<Quarantine>, ApiError> {
    let r = s.release(&who, id, q).await;
    done(&s, Op::Release, r)
}

/// Blocks an IP or CIDR on every node, both ways, before policy; answers once saved and pushed.
#[utoipa::path(post, path = "/api/v1/blocks", tag = "blocks", request_body = BlockRequest,
    responses((status = 201, body = Block), Problems))]
pub async fn block(
    State(s): State<Service>,
    Who(who): Who,
    J(req): J<BlockRequest>,
) -> Result<(StatusCode, Json<Block>), ApiError> {
    let r = s.block(&who, req).await;
    done(&s, Op::Block, r).map(|j| (StatusCode::CREATED, j))
}

/// Lifts a block.
#[utoipa::path(delete, path = "/api/v1/blocks/{id}", tag = "blocks",
    params(("id" = u64, Path, description = "Block id"), ReleaseQuery), responses((status = 200, body = Block), Problems))]
pub async fn unblock(
    State(s): State<Service>,
    Who(who): Who,
    Id(id): Id,
    Q(q): Q<ReleaseQuery>,
) -> Result<Json<Block>, ApiError> {
    let r = s.unblock(&who, id, q).await;
    done(&s, Op::Unblock, r)
}

/// Live flows as server-sent events: `flow` events (id "epoch-seq", data a
/// Flow) and `lost` events (data a Lost) when this client fell behind.
/// Resume with `Last-Event-ID` or `cursor`.
#[utoipa::path(get, path = "/api/v1/flows/stream", tag = "flows", params(FlowQuery),
    responses((status = 200, description = "A text/event-stream of flow and lost events", body = StreamEvent, content_type = "text/event-stream"), Problems))]
pub async fn stream(
    State(s): State<Service>,
    Who(who): Who,
    headers: HeaderMap,
    Q(mut q): Q<FlowQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        q.cursor = Some(last.to_string());
    }
    let r = s.subscribe(&who, q).await;
    s.context().metrics.record_request(
        "http",
        Op::StreamFlows.name(),
        r.as_ref().map_or_else(ServiceError::label, |_| "ok"),
    );
    let sub = r.map_err(ApiError)?;
    let events = futures::stream::unfold(sub, |mut sub| async move {
        let batch = sub.next().await;
        if batch.is_empty() {
            return None;
        }
        let out: Vec<Result<Event, Infallible>> = batch
            .into_iter()
            .map(|e| {
                let ev = match &e {
                    StreamEvent::Flow(f) => Event::default().event("flow").id(sub.event_id(f.id)),
                    StreamEvent::Lost(_) => Event::default().event("lost"),
                };
                let data = match &e {
                    StreamEvent::Flow(f) => serde_json::to_string(f),
                    StreamEvent::Lost(l) => serde_json::to_string(l),
                };
                Ok(ev.data(data.unwrap_or_default()))
            })
            .collect();
        Some((futures::stream::iter(out), sub))
    });
    use futures::StreamExt;
    Ok(Sse::new(events.flatten()).keep_alive(KeepAlive::default()))
}
