//! The controller's gRPC API. Changes are accepted only over its root-only
//! Unix socket, from callers whose kernel-verified credentials pass, and
//! every change (or rejected attempt) is audited.

use std::sync::{Arc, Mutex};

use bulkhead_api::controller::v1 as pb;
use bulkhead_api::controller::v1::controller_server::Controller;
use tonic::{Request, Response, Status};

use crate::error::ControllerError;
use bulkhead_api::audit::Caller;

use crate::state::{ChangeKind, State};

/// Shared by every RPC.
#[derive(Clone)]
pub struct ControllerService {
    /// The controller's state.
    pub state: Arc<Mutex<State>>,
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

impl ControllerService {
    async fn with_state<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, Status> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = state.lock().map_err(|_| Status::internal("controller state lock poisoned"))?;
            f(&mut s).map_err(status)
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
    }
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
        self.with_state(|s| Ok(s.status())).await.map(Response::new)
    }
}
