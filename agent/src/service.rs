//! The gRPC service. Enforcement-changing calls are only reachable through a
//! root-only Unix socket; the kernel-verified peer credentials are checked and
//! written to the audit log with the caller's stated identity.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::agent::v1::agent_server::Agent;
use futures::Stream;
use std::sync::atomic::Ordering;

use tonic::{Request, Response, Status};

use crate::flows::FlowHub;
use crate::metrics::Metrics;
use bulkhead_api::audit::Caller;

use crate::node::Node;
use crate::quarantine::Quarantines;

/// Shared by every RPC.
#[derive(Clone)]
pub struct AgentService {
    /// The node's dataplane and state; apply and queries take this lock.
    pub node: Arc<Mutex<Node>>,
    /// Quarantine works without the node lock.
    pub quarantines: Arc<Quarantines>,
    /// Recent flows and the live fan-out to `StreamFlows` streams.
    pub hub: Arc<FlowHub>,
    /// Agent-side Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Unix uids allowed to change enforcement (root always is).
    pub allowed_uids: Vec<u32>,
}

impl std::fmt::Debug for AgentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentService").finish_non_exhaustive()
    }
}

impl AgentService {
    /// XDP fast drop follows quarantines, once the node lock is free; TC
    /// enforces the quarantine meanwhile.
    fn refresh_xdp_later(&self) {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || {
            if let Ok(mut n) = node.lock()
                && let Err(e) = n.refresh_xdp()
            {
                tracing::warn!(error = %e, "XDP fast drop not updated; TC still enforces quarantines");
            }
        });
    }
}

fn caller<T>(req: &Request<T>, actor: &str, allowed: &[u32]) -> Result<Caller, Status> {
    Caller::from_request(req, actor, allowed, "agent")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Status> + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

fn lock(node: &Mutex<Node>) -> Result<std::sync::MutexGuard<'_, Node>, Status> {
    node.lock().map_err(|_| Status::internal("node state lock poisoned by an earlier panic"))
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<pb::FlowBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    #[tracing::instrument(skip_all, fields(generation = req.get_ref().generation))]
    async fn apply_state(&self, req: Request<pb::DesiredState>) -> Result<Response<pb::ApplyStateResponse>, Status> {
        let who = caller(&req, "apply", &self.allowed_uids)?;
        let (node, metrics) = (self.node.clone(), self.metrics.clone());
        let state = req.into_inner();
        let report = blocking(move || {
            let mut n = lock(&node)?;
            let r = n.apply(state);
            metrics.record_apply(r.as_ref().map(|_| ()).map_err(|e| e.label()));
            let report = r.map_err(Status::from)?;
            n.audit_apply(&who, &report).map_err(Status::from)?;
            Ok(report)
        })
        .await?;
        Ok(Response::new(pb::ApplyStateResponse {
            generation: report.generation,
            endpoints_attached: report.attached,
            problems: report
                .problems
                .into_iter()
                .map(|(endpoint_id, pod, error)| pb::EndpointProblem { endpoint_id, pod, error })
                .collect(),
            map_writes: report.map_writes,
            took_micros: report.took.as_micros() as u64,
        }))
    }

    async fn quarantine(
        &self,
        req: Request<pb::QuarantineRequest>,
    ) -> Result<Response<pb::QuarantineResponse>, Status> {
        let who = caller(&req, &req.get_ref().actor, &self.allowed_uids)?;
        let (quarantines, metrics) = (self.quarantines.clone(), self.metrics.clone());
        let r = req.into_inner();
        // Not behind the node lock: a long apply must not delay a cut.
        let (id, took) = blocking(move || {
            quarantines.quarantine(r.endpoint_id, &r.pod, &r.reason, &who, r.generation).map_err(Status::from)
        })
        .await?;
        self.refresh_xdp_later();
        metrics.quarantines.inc();
        tracing::warn!(endpoint = id, took_us = took.as_micros() as u64, "endpoint quarantined");
        Ok(Response::new(pb::QuarantineResponse {
            endpoint_id: id,
            quarantined: true,
            took_micros: took.as_micros() as u64,
        }))
    }

    async fn release(&self, req: Request<pb::QuarantineRequest>) -> Result<Response<pb::QuarantineResponse>, Status> {
        let who = caller(&req, &req.get_ref().actor, &self.allowed_uids)?;
        let quarantines = self.quarantines.clone();
        let r = req.into_inner();
        let (id, still) = blocking(move || {
            quarantines.release(r.endpoint_id, &r.pod, &r.reason, &who, r.generation).map_err(Status::from)
        })
        .await?;
        self.refresh_xdp_later();
        Ok(Response::new(pb::QuarantineResponse { endpoint_id: id, quarantined: still, took_micros: 0 }))
    }

    async fn get_status(&self, _req: Request<pb::StatusRequest>) -> Result<Response<pb::AgentStatus>, Status> {
        let node = self.node.clone();
        let mut status = blocking(move || lock(&node)?.status().map_err(Status::from)).await?;
        status.flows_lost = self.hub.client_lost.load(Ordering::Relaxed);
        Ok(Response::new(status))
    }

    type StreamFlowsStream = FlowStream;

    async fn stream_flows(&self, req: Request<pb::FlowFilter>) -> Result<Response<FlowStream>, Status> {
        let filter = req.into_inner();
        let hub = self.hub.clone();
        let epoch = hub.epoch;
        // A reader of this run resumes after its cursor; anyone else starts at the oldest flow.
        let mut cursor = if filter.epoch == epoch { filter.after_seq } else { 0 };
        // A reader of an earlier run (the agent restarted) missed whatever of
        // this run already left the buffer.
        let mut missed = if filter.epoch != 0 && filter.epoch != epoch { hub.first_seq() - 1 } else { 0 };
        let follow = filter.follow;
        let stream = async_stream(move |tx| async move {
            let mut watch = hub.watch();
            let mut kernel_seen = hub.kernel_lost.load(Ordering::Relaxed);
            loop {
                watch.borrow_and_update();
                let read = hub.read_after(cursor, 512);
                if read.items.is_empty() && read.skipped == 0 && missed == 0 {
                    if !follow || watch.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                cursor = read.last_seq;
                let skipped = read.skipped + std::mem::take(&mut missed);
                if skipped > 0 {
                    hub.client_lost.fetch_add(skipped, Ordering::Relaxed);
                }
                let kernel_now = hub.kernel_lost.load(Ordering::Relaxed);
                let lost = skipped + kernel_now.saturating_sub(kernel_seen);
                kernel_seen = kernel_now;
                let batch = pb::FlowBatch {
                    flows: read.items.iter().map(|f| (**f).clone()).collect(),
                    lost,
                    last_seq: read.last_seq,
                    epoch,
                    buffer_lost: skipped,
                    kernel_lost_total: kernel_now,
                    undecodable_total: hub.undecodable.load(Ordering::Relaxed),
                };
                // Waits while the reader is behind: backpressure to this
                // task, never to the dataplane.
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A stream fed by a task through a bounded channel (backpressure to the task).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<pb::FlowBatch, Status>> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::FlowBatch, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
