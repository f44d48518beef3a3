//! One client of the controller's API over either transport: gRPC on the
//! root-only socket (the zero-config default for root on the host), or
//! HTTPS with a bearer token (`--server URL --token-file F`, kubectl-style,
//! or `BULKHEAD_SERVER` / `BULKHEAD_TOKEN`). Both answer the same documents
//! (`bulkhead_api::v1`), so every command prints the same whichever it used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bulkhead_api::controller::v1 as pb;
use bulkhead_api::controller::v1::controller_client::ControllerClient;
use bulkhead_api::v1::audit::{AuditEntry, AuditQuery};
use bulkhead_api::v1::baselines::{Anomaly, AnomalyQuery, Baselines};
use bulkhead_api::v1::blocks::{Block, BlockQuery, BlockRequest};
use bulkhead_api::v1::convert::ConvertError;
use bulkhead_api::v1::exposure::{Exposure, ExposureQuery};
use bulkhead_api::v1::flows::{Flow, FlowQuery, StreamEvent};
use bulkhead_api::v1::graph::{BlastRadius, Graph, GraphDiff, GraphDiffQuery, GraphQuery};
use bulkhead_api::v1::inventory::{Namespace, Pod, PodQuery, Service, Workload};
use bulkhead_api::v1::policies::{ChangeRequest, ChangeResult, ExplainQuery, Explanation, PolicyInForce, PolicyQuery};
use bulkhead_api::v1::quarantine::{Quarantine, QuarantineQuery, QuarantineRequest, ReleaseQuery};
use bulkhead_api::v1::review::{
    ApplyRequest, DecisionRequest, ExportQuery, PolicyList, ReviewDetail, ReviewQuery, ReviewRecord, SuggestRequest,
};
use bulkhead_api::v1::status::Status;
use bulkhead_api::v1::trail::{Trail, TrailQuery};
use bulkhead_api::v1::{Page, Problem, WhoAmI};
use clap::Args;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

/// Where the controller's API is, and how to authenticate.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// The controller's HTTPS API, e.g. https://127.0.0.1:8443 [default: the socket].
    #[arg(long, env = "BULKHEAD_SERVER", global = true)]
    pub server: Option<String>,
    /// A file holding the bearer token for --server.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the server's certificate [default: the system's roots].
    #[arg(long, env = "BULKHEAD_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// The controller's API socket [default: the lab's, else /run/bulkhead/controller.sock].
    #[arg(long, env = "BULKHEAD_CONTROLLER", global = true)]
    pub socket: Option<PathBuf>,
    /// Lab whose controller to use when neither --server nor --socket is given.
    #[arg(long, default_value = "lab", global = true)]
    pub lab: String,
    /// Seconds an HTTPS request may take before the CLI gives up with an
    /// error (the --follow streams are not limited).
    #[arg(long, env = "BULKHEAD_TIMEOUT", default_value_t = 60, value_name = "SECONDS", global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

impl Target {
    fn socket(&self) -> PathBuf {
        if let Some(s) = &self.socket {
            return s.clone();
        }
        let lab = bulkhead_lab::state::dir(&self.lab).join("controller.sock");
        if lab.exists() { lab } else { PathBuf::from("/run/bulkhead/controller.sock") }
    }

    /// A connected client.
    pub async fn client(&self) -> Result<Client> {
        match &self.server {
            Some(url) => Ok(Client::Http(Http::new(
                url,
                self.token()?,
                self.ca_file.as_deref(),
                std::time::Duration::from_secs(self.timeout),
            )?)),
            None => {
                let socket = self.socket();
                let c = bulkhead_api::connect_controller(&socket)
                    .await
                    .with_context(|| format!("is the controller running? (socket {})", socket.display()))?;
                Ok(Client::Grpc(c))
            }
        }
    }

    fn token(&self) -> Result<String> {
        if let Some(f) = &self.token_file {
            let t = std::fs::read_to_string(f).with_context(|| format!("reading the token file {}", f.display()))?;
            return Ok(t.trim().to_string());
        }
        match std::env::var("BULKHEAD_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
            _ => bail!("--server needs a token: --token-file FILE or BULKHEAD_TOKEN"),
        }
    }
}

/// The name the caller states over the socket (the kernel vouches for the uid).
pub fn actor() -> String {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into())
}

/// The HTTPS transport.
#[derive(Debug, Clone)]
pub struct Http {
    base: String,
    token: String,
    client: reqwest::Client,
    /// How long one request may take.
    timeout: std::time::Duration,
}

impl Http {
    fn new(url: &str, token: String, ca: Option<&Path>, timeout: std::time::Duration) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") && !base.starts_with("http://") {
            bail!("--server {url:?}: expected https://HOST:PORT");
        }
        let mut b = reqwest::Client::builder().use_rustls_tls().connect_timeout(std::time::Duration::from_secs(10));
        // The system's roots are always trusted; a CA file adds a private CA (the lab's).
        if let Some(path) = ca {
            let pem = std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Self { base, token, client: b.build().context("building the HTTPS client")?, timeout })
    }

    async fn answer<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
        let resp = r.timeout(self.timeout).send().await.map_err(|e| {
            if e.is_timeout() {
                anyhow!("the controller's API did not answer within {:?} (raise --timeout)", self.timeout)
            } else {
                anyhow!(e).context("calling the controller's API")
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.context("reading the answer")?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .with_context(|| format!("the answer is not the expected document: {text}"));
        }
        match serde_json::from_str::<Problem>(&text) {
            Ok(p) => bail!("{} ({})", p.detail, p.status),
            Err(_) => bail!("{status}: {text}"),
        }
    }

    async fn get<Q: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, q: &Q) -> Result<T> {
        self.answer(self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).query(q)).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.answer(self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(body)).await
    }

    async fn delete<Q: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, q: &Q) -> Result<T> {
        self.answer(self.client.delete(format!("{}{path}", self.base)).bearer_auth(&self.token).query(q)).await
    }
}

/// A client over one transport.
#[derive(Debug, Clone)]
pub enum Client {
    /// The socket.
    Grpc(ControllerClient<Channel>),
    /// HTTPS.
    Http(Http),
}

fn request<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = actor().parse() {
        r.metadata_mut().insert(bulkhead_api::ACTOR_METADATA, v);
    }
    r
}

fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T> {
    r.map(tonic::Response::into_inner).map_err(|s| anyhow!("{}", s.message()))
}

fn doc<P, D: TryFrom<P, Error = ConvertError>>(p: P) -> Result<D> {
    D::try_from(p).map_err(|e| anyhow!("the controller answered an invalid document: {e}"))
}

/// One operation on both transports: the gRPC call with its request
/// message, and the HTTP method and path.
macro_rules! op {
    ($self:ident, grpc $method:ident($msg:expr), http $h:ident => $http:expr) => {
        match $self {
            Client::Grpc(c) => doc(rpc(c.$method(request($msg)).await)?),
            Client::Http($h) => $http.await,
        }
    };
}

/// Every page of a listing: calls `client.method(query)` and follows its
/// cursors until the last page.
macro_rules! all_pages {
    ($c:ident . $method:ident ($q:expr)) => {{
        let mut q = $q;
        let mut all = Vec::new();
        loop {
            let page = $c.$method(q.clone()).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(n) => q.cursor = Some(n),
                None => break,
            }
        }
        all
    }};
}
pub(crate) use all_pages;

impl Client {
    /// Who the server says the caller is.
    pub async fn whoami(&mut self) -> Result<WhoAmI> {
        op!(self, grpc who_am_i(pb::WhoAmIRequest {}), http h => h.get("/api/v1/whoami", &()))
    }
    /// The controller's status.
    pub async fn status(&mut self) -> Result<Status> {
        op!(self, grpc status(pb::StatusRequest {}), http h => h.get("/api/v1/status", &()))
    }
    /// Namespaces.
    pub async fn namespaces(&mut self) -> Result<Vec<Namespace>> {
        match self {
            Client::Grpc(c) => rpc(c.list_namespaces(request(pb::ListNamespacesRequest {})).await)?
                .items
                .into_iter()
                .map(doc)
                .collect(),
            Client::Http(h) => h.get("/api/v1/namespaces", &()).await,
        }
    }
    /// Pods, a page.
    pub async fn pods(&mut self, q: PodQuery) -> Result<Page<Pod>> {
        op!(self, grpc list_pods(pb::PodQuery::from(q.clone())), http h => h.get("/api/v1/pods", &q))
    }
    /// Workloads.
    pub async fn workloads(&mut self, namespace: Option<String>) -> Result<Vec<Workload>> {
        match self {
            Client::Grpc(c) => rpc(c.list_workloads(request(pb::WorkloadQuery { namespace })).await)?
                .items
                .into_iter()
                .map(doc)
                .collect(),
            Client::Http(h) => h.get("/api/v1/workloads", &[("namespace", namespace)]).await,
        }
    }
    /// Services.
    pub async fn services(&mut self, namespace: Option<String>) -> Result<Vec<Service>> {
        match self {
            Client::Grpc(c) => rpc(c.list_services(request(pb::ServiceQuery { namespace })).await)?
                .items
                .into_iter()
                .map(doc)
                .collect(),
            Client::Http(h) => h.get("/api/v1/services", &[("namespace", namespace)]).await,
        }
    }
    /// Stored flows, a page.
    pub async fn flows(&mut self, q: FlowQuery) -> Result<Page<Flow>> {
        op!(self, grpc flows(pb::FlowQuery::from(q.clone())), http h => h.get("/api/v1/flows", &q))
    }
    /// The graph.
    pub async fn graph(&mut self, q: GraphQuery) -> Result<Graph> {
        op!(self, grpc graph(pb::GraphQuery::from(q.clone())), http h => h.get("/api/v1/graph", &q))
    }
    /// The graph's change between two windows.
    pub async fn graph_diff(&mut self, q: GraphDiffQuery) -> Result<GraphDiff> {
        op!(self, grpc graph_diff(pb::GraphDiffQuery::from(q.clone())), http h => h.get("/api/v1/graph/diff", &q))
    }
    /// A workload's blast radius.
    pub async fn blast_radius(&mut self, workload: String) -> Result<BlastRadius> {
        let q = [("workload", workload.clone())];
        op!(self, grpc blast_radius(pb::BlastRadiusRequest { workload }), http h => h.get("/api/v1/graph/blast-radius", &q))
    }
    /// The exposure report.
    pub async fn exposure(&mut self, q: ExposureQuery) -> Result<Exposure> {
        op!(self, grpc exposure(pb::ExposureQuery::from(q.clone())), http h => h.get("/api/v1/exposure", &q))
    }
    /// Baselines.
    pub async fn baselines(&mut self) -> Result<Baselines> {
        op!(self, grpc baselines(pb::BaselinesRequest {}), http h => h.get("/api/v1/baselines", &()))
    }
    /// Anomalies, a page.
    pub async fn anomalies(&mut self, q: AnomalyQuery) -> Result<Page<Anomaly>> {
        op!(self, grpc anomalies(pb::AnomalyQuery::from(q.clone())), http h => h.get("/api/v1/anomalies", &q))
    }
    /// Generates suggestions.
    pub async fn suggest(&mut self, q: SuggestRequest) -> Result<Vec<ReviewRecord>> {
        match self {
            Client::Grpc(c) => {
                rpc(c.suggest(request(pb::SuggestRequest::from(q))).await)?.items.into_iter().map(doc).collect()
            }
            Client::Http(h) => h.post("/api/v1/suggestions", &q).await,
        }
    }
    /// The suggested policies as a Kubernetes List.
    pub async fn export(&mut self, q: ExportQuery) -> Result<PolicyList> {
        op!(self, grpc export_suggestions(pb::ExportQuery::from(q.clone())), http h => h.get("/api/v1/suggestions/export", &q))
    }
    /// Review records, a page.
    pub async fn reviews(&mut self, q: ReviewQuery) -> Result<Page<ReviewRecord>> {
        op!(self, grpc list_reviews(pb::ReviewQuery::from(q.clone())), http h => h.get("/api/v1/suggestions", &q))
    }
    /// One suggestion in full.
    pub async fn review(&mut self, id: u64) -> Result<ReviewDetail> {
        op!(self, grpc get_review(pb::ReviewId { id }), http h => h.get(&format!("/api/v1/suggestions/{id}"), &()))
    }
    /// Approves or rejects.
    pub async fn decide(&mut self, id: u64, approve: bool, d: DecisionRequest) -> Result<ReviewRecord> {
        let verb = if approve { "approve" } else { "reject" };
        match self {
            Client::Grpc(c) => {
                let msg = pb::ReviewDecision::from((id, d));
                let r = if approve { c.approve(request(msg)).await } else { c.reject(request(msg)).await };
                doc(rpc(r)?)
            }
            Client::Http(h) => h.post(&format!("/api/v1/suggestions/{id}/{verb}"), &d).await,
        }
    }
    /// Applies in audit or enforces.
    pub async fn apply_review(&mut self, id: u64, a: ApplyRequest) -> Result<ReviewRecord> {
        op!(self, grpc apply_review(pb::ReviewApply::from((id, a.clone()))), http h => h.post(&format!("/api/v1/suggestions/{id}/apply"), &a))
    }
    /// Policies in force.
    pub async fn policies(&mut self, q: PolicyQuery) -> Result<Vec<PolicyInForce>> {
        match self {
            Client::Grpc(c) => {
                rpc(c.list_policies(request(pb::PolicyQuery::from(q))).await)?.items.into_iter().map(doc).collect()
            }
            Client::Http(h) => h.get("/api/v1/policies", &q).await,
        }
    }
    /// Applies or deletes objects.
    pub async fn change(&mut self, delete: bool, c: ChangeRequest) -> Result<ChangeResult> {
        match self {
            Client::Grpc(g) => {
                let msg = request(pb::ChangeRequest::from(c));
                doc(rpc(if delete { g.delete(msg).await } else { g.apply(msg).await })?)
            }
            Client::Http(h) => h.post(if delete { "/api/v1/policies/delete" } else { "/api/v1/policies" }, &c).await,
        }
    }
    /// Explains a verdict.
    pub async fn explain(&mut self, q: ExplainQuery) -> Result<Explanation> {
        op!(self, grpc explain(pb::ExplainQuery::from(q.clone())), http h => h.get("/api/v1/explain", &q))
    }
    /// Quarantines.
    pub async fn quarantine(&mut self, q: QuarantineRequest) -> Result<Quarantine> {
        op!(self, grpc quarantine(pb::QuarantineRequest::from(q.clone())), http h => h.post("/api/v1/quarantines", &q))
    }
    /// Releases.
    pub async fn release(&mut self, id: u64, q: ReleaseQuery) -> Result<Quarantine> {
        op!(self, grpc release(pb::ReleaseRequest::from((id, q.clone()))), http h => h.delete(&format!("/api/v1/quarantines/{id}"), &q))
    }
    /// Quarantines, a page.
    pub async fn quarantines(&mut self, q: QuarantineQuery) -> Result<Page<Quarantine>> {
        op!(self, grpc list_quarantines(pb::QuarantineQuery::from(q.clone())), http h => h.get("/api/v1/quarantines", &q))
    }
    /// Blocks an IP or CIDR.
    pub async fn block(&mut self, b: BlockRequest) -> Result<Block> {
        op!(self, grpc block(pb::BlockRequest::from(b.clone())), http h => h.post("/api/v1/blocks", &b))
    }
    /// Lifts a block.
    pub async fn unblock(&mut self, id: u64, q: ReleaseQuery) -> Result<Block> {
        op!(self, grpc unblock(pb::ReleaseRequest::from((id, q.clone()))), http h => h.delete(&format!("/api/v1/blocks/{id}"), &q))
    }
    /// The block list, a page.
    pub async fn blocks(&mut self, q: BlockQuery) -> Result<Page<Block>> {
        op!(self, grpc list_blocks(pb::BlockQuery::from(q.clone())), http h => h.get("/api/v1/blocks", &q))
    }
    /// The access trail of a pod.
    pub async fn trail(&mut self, q: TrailQuery) -> Result<Trail> {
        op!(self, grpc trail(pb::TrailQuery::from(q.clone())), http h => h.get("/api/v1/trail", &q))
    }
    /// The audit log, a page.
    pub async fn audit(&mut self, q: AuditQuery) -> Result<Page<AuditEntry>> {
        op!(self, grpc audit(pb::AuditQuery::from(q.clone())), http h => h.get("/api/v1/audit", &q))
    }

    /// The live flow stream.
    pub async fn stream(
        &mut self,
        q: FlowQuery,
    ) -> Result<std::pin::Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send>>> {
        match self {
            Client::Grpc(c) => {
                let s = rpc(c.stream_flows(request(pb::FlowQuery::from(q))).await)?;
                Ok(Box::pin(s.map(|e| e.map_err(|s| anyhow!("{}", s.message())).and_then(doc))))
            }
            Client::Http(h) => {
                let resp = h
                    .client
                    .get(format!("{}/api/v1/flows/stream", h.base))
                    .bearer_auth(&h.token)
                    .query(&q)
                    .send()
                    .await
                    .context("calling the controller's API")?;
                if !resp.status().is_success() {
                    let text = resp.text().await.unwrap_or_default();
                    match serde_json::from_str::<Problem>(&text) {
                        Ok(p) => bail!("{} ({})", p.detail, p.status),
                        Err(_) => bail!("{text}"),
                    }
                }
                Ok(Box::pin(sse_events(resp.bytes_stream())))
            }
        }
    }
}

/// Server-sent events into stream events.
fn sse_events(
    bytes: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<StreamEvent>> + Send {
    let state = (Box::pin(bytes), String::new());
    futures::stream::unfold(state, |(mut bytes, mut buf)| async move {
        loop {
            if let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                let parsed = match event.as_str() {
                    "flow" => serde_json::from_str(&data).map(|f| Some(StreamEvent::Flow(Box::new(f)))),
                    "lost" => serde_json::from_str(&data).map(|l| Some(StreamEvent::Lost(l))),
                    _ => Ok(None),
                };
                match parsed {
                    Ok(Some(e)) => return Some((Ok(e), (bytes, buf))),
                    Ok(None) => continue,
                    Err(e) => return Some((Err(anyhow!("unreadable event: {e}")), (bytes, buf))),
                }
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(e)) => return Some((Err(anyhow!("stream: {e}")), (bytes, buf))),
                None => return None,
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_the_server_never_answers_ends_with_a_clear_error() {
        // Accepts, reads, and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                let (c, _) = listener.accept().await.unwrap();
                conns.push(c);
            }
        });
        let h = Http::new(&url, "t".into(), None, std::time::Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        let err = h.get::<_, WhoAmI>("/api/v1/whoami", &()).await.unwrap_err().to_string();
        assert!(err.contains("did not answer within 300ms (raise --timeout)"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        held.abort();
    }
}
