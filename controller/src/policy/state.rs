//! The controller's state and its one way of changing: validate a candidate,
//! compile it, and only then commit, persist, audit and push.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bulkhead_api::agent::v1 as agent_pb;
use bulkhead_api::audit::{AuditLog, Event};
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::policies::{Explanation, SideDecision};
use bulkhead_api::v1::status::{NodeSync, Status, UnprotectedPod};
use bulkhead_model::Mode;
use bulkhead_policy::compile::{Compiled, Compiler};
use bulkhead_policy::evaluate::Evaluator;
use bulkhead_policy::objects::{Object, ObjectRef, parse_documents};
use bulkhead_policy::ports::Protocol;
use tokio::sync::watch;
use tracing::instrument;

use crate::auth::Principal;
use crate::error::ControllerError;
use crate::policy::files::write_atomic;
use crate::policy::ids::Ids;
use crate::policy::quarantine::Book;
use crate::policy::quarantine::desk::{Desk, View};
use crate::policy::store::{Changes, Model, Store};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name of the cluster, carried by every pod identity.
    pub cluster: String,
    /// Where objects, numbering and the audit log are kept.
    pub state_dir: PathBuf,
    /// The API's Unix socket.
    pub socket: PathBuf,
    /// Mode of pods without a `bulkhead.dev/mode` annotation.
    pub mode: Mode,
    /// Agent socket by node name (agents on this host).
    pub agents: BTreeMap<String, PathBuf>,
    /// The agents port, where agents on the network register.
    pub agent_listen: Option<crate::agents::listen::AgentListen>,
    /// Two replicas and a Lease (needs `kubernetes`); `None`: this one leads.
    pub ha: Option<crate::ha::HaConfig>,
    /// Manifest files or directories read at start, over the stored objects.
    pub manifests: Vec<PathBuf>,
    /// Also watch the Kubernetes API (in-cluster config or KUBECONFIG).
    pub kubernetes: bool,
    /// Serve Prometheus metrics here.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Raw flows kept in the flow store (oldest evicted first, counted).
    pub max_flows: u64,
    /// Learning window and quiet period of the baselines.
    pub learning: bulkhead_graph::baseline::LearningConfig,
    /// The HTTP API, if served.
    pub api: Option<crate::http::ApiConfig>,
    /// The automatic quarantine rule and the alert webhooks.
    pub response: crate::response::ResponseConfig,
}

/// Add or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Add or replace.
    Apply,
    /// Remove.
    Delete,
}

/// What each node's sync task watches: the node's latest desired state.
pub type DesiredRx = watch::Receiver<Arc<agent_pb::DesiredState>>;

/// What a node's sync task last found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Its sync state.
    pub sync: NodeSync,
    /// Its pods the agent could not protect.
    pub unprotected: Vec<UnprotectedPod>,
    /// What its pods listen on, by the agent's last reads.
    pub sockets: bulkhead_graph::exposure::Sockets,
}

/// Each node's sync state, written by the sync tasks.
pub type SyncReport = Arc<std::sync::Mutex<BTreeMap<String, NodeReport>>>;

/// One object a change created, replaced or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    /// The object.
    pub target: ObjectRef,
    /// What was there before, if anything.
    pub before: Option<Object>,
    /// What is there now, if anything.
    pub after: Option<Object>,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeReport {
    /// Generation after it.
    pub generation: u64,
    /// Changed, unchanged and skipped, by name.
    pub changes: Changes,
    /// Each changed object, before and after.
    pub objects: Vec<ObjectChange>,
    /// Time to validate and compile, microseconds.
    pub compile_micros: u64,
}

/// Everything the controller holds.
pub struct State {
    cfg: Config,
    store: Store,
    model: Model,
    compiler: Compiler,
    compiled: Compiled,
    ids: Ids,
    last_error: String,
    /// Retired ClusterNetworkPolicies the cluster still stores.
    retired: Vec<String>,
    /// Pods of other clusters, by cluster, as their controllers report them.
    remote: BTreeMap<String, Vec<bulkhead_policy::inventory::Pod>>,
    senders: BTreeMap<String, watch::Sender<Arc<agent_pb::DesiredState>>>,
    /// The last reconcile's quarantine cut and generation, for nodes that join between reconciles.
    last_turn: (BTreeSet<String>, u64),
    audit: AuditLog,
    desk: Desk,
    blocks: crate::policy::blocks::Book,
    views: watch::Sender<Arc<View>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Written by the per-node sync tasks.
    pub sync: SyncReport,
    models: watch::Sender<Arc<Model>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("generation", &self.ids.generation).finish_non_exhaustive()
    }
}

fn read_manifests(paths: &[PathBuf]) -> Result<Vec<bulkhead_policy::objects::Object>, ControllerError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| ControllerError::Io {
                action: "listing",
                path: p.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| ControllerError::Io {
            action: "reading",
            path: f.clone(),
            source,
        })?;
        out.extend(parse_documents(&f.display().to_string(), &text)?);
    }
    for o in &mut out {
        o.strip_internal();
    }
    Ok(out)
}

impl State {
    /// Loads stored objects, applies the manifests over them, compiles, and
    /// prepares one desired-state channel per agent.
    pub fn open(cfg: Config) -> Result<(Self, BTreeMap<String, DesiredRx>), ControllerError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| ControllerError::Io {
            action: "creating state dir",
            path: cfg.state_dir.clone(),
            source,
        })?;
        let store_path = cfg.state_dir.join("objects.yaml");
        let mut store = Store::default();
        if let Ok(text) = std::fs::read_to_string(&store_path) {
            store = store.applied(parse_documents(&store_path.display().to_string(), &text)?).0;
        }
        let (store, _) = store.applied(read_manifests(&cfg.manifests)?);
        let model = store.model(&cfg.cluster)?;
        let ids = Ids::load(&cfg.state_dir.join("ids.json"))?;
        let mut compiler = Compiler::with_identities(ids.identities.clone(), ids.next_identity);
        let compiled = compiler.compile(&model.inventory, &model.policies)?;
        let mut senders = BTreeMap::new();
        let mut receivers = BTreeMap::new();
        for node in cfg.agents.keys() {
            let (tx, rx) = watch::channel(Arc::new(agent_pb::DesiredState::default()));
            senders.insert(node.clone(), tx);
            receivers.insert(node.clone(), rx);
        }
        let audit = AuditLog::new(&cfg.state_dir.join("audit.log"));
        let (desk, views) = Desk::new(Book::load(&cfg.state_dir.join("quarantines.json"))?);
        let blocks = crate::policy::blocks::Book::load(&cfg.state_dir.join("blocks.json"))?;
        let mut state = Self {
            cfg,
            store,
            model,
            compiler,
            compiled,
            ids,
            last_error: String::new(),
            retired: Vec::new(),
            remote: BTreeMap::new(),
            senders,
            last_turn: Default::default(),
            audit,
            desk,
            blocks,
            views,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            sync: SyncReport::default(),
            models: watch::channel(Arc::new(Model::default())).0,
        };
        state.persist()?;
        state.reconcile()?;
        Ok((state, receivers))
    }

    /// The desired-state channel of `node`, made when an agent registers
    /// for a node the controller pushed nothing to yet: filled at once with
    /// the current generation, so joining costs the other nodes nothing.
    pub fn join(&mut self, node: &str) -> Result<DesiredRx, ControllerError> {
        if let Some(tx) = self.senders.get(node) {
            return Ok(tx.subscribe());
        }
        let (cut, generation) = self.last_turn.clone();
        let desired = self.desired_for(node, generation, &cut, self.blocks.entries())?;
        self.ids.save(&self.cfg.state_dir.join("ids.json"))?;
        let (tx, rx) = watch::channel(Arc::new(desired));
        self.senders.insert(node.to_string(), tx);
        self.views.send_modify(|v| {
            *v = Arc::new(View {
                model: v.model.clone(),
                endpoints: self.ids.endpoints.clone(),
                generation: v.generation,
            })
        });
        Ok(rx)
    }

    /// `node`'s desired state at `generation`: its endpoints and entries,
    /// the cut, and the block list every node enforces.
    fn desired_for(
        &mut self,
        node: &str,
        generation: u64,
        cut: &BTreeSet<String>,
        blocks: Vec<agent_pb::BlockEntry>,
    ) -> Result<agent_pb::DesiredState, ControllerError> {
        let desired = crate::policy::desired::for_node(
            node,
            generation,
            &self.compiled,
            &self.model,
            &mut self.ids,
            self.cfg.mode,
            cut,
        )?;
        Ok(agent_pb::DesiredState { blocks, ..desired })
    }

    fn persist(&self) -> Result<(), ControllerError> {
        write_atomic(&self.cfg.state_dir.join("objects.yaml"), self.store.to_yaml()?.as_bytes())
    }

    /// Pushes a new generation of every node's desired state to its sync task.
    #[instrument(skip(self), fields(generation))]
    pub fn reconcile(&mut self) -> Result<u64, ControllerError> {
        let model = Arc::new(self.model.clone());
        self.models.send_replace(model.clone());
        let ids = &mut self.ids;
        let turn = self.desk.turn(&self.model, || ids.next_generation())?;
        self.audit_quarantines(turn.changed);
        let (cut, generation) = (turn.cut, turn.generation);
        tracing::Span::current().record("generation", generation);
        let blocks = self.blocks.entries();
        let nodes: Vec<String> = self.senders.keys().cloned().collect();
        for node in nodes {
            let desired = self.desired_for(&node, generation, &cut, blocks.clone())?;
            if let Some(tx) = self.senders.get(&node) {
                tx.send_replace(Arc::new(desired));
            }
        }
        self.last_turn = (cut, generation);
        let uids: BTreeSet<String> = self.model.pods.values().map(|p| p.uid.clone()).collect();
        let rules: BTreeSet<String> =
            self.compiled.endpoints.values().flat_map(|e| e.entries.iter().map(|x| x.rule.clone())).collect();
        self.ids.retain(&uids, &rules);
        (self.ids.identities, self.ids.next_identity) = self.compiler.identities();
        self.ids.save(&self.cfg.state_dir.join("ids.json"))?;
        self.views.send_replace(Arc::new(View { model, endpoints: self.ids.endpoints.clone(), generation }));
        Ok(generation)
    }

    /// Applies or deletes `objs`, all or nothing. `source` names where they
    /// came from. Auditing is the caller's: it knows who asked.
    #[instrument(skip(self, objs), fields(objects = objs.len()))]
    pub fn change(
        &mut self,
        kind: ChangeKind,
        source: &str,
        objs: Vec<Object>,
    ) -> Result<ChangeReport, ControllerError> {
        let started = Instant::now();
        let result = self.try_change(kind, source, objs);
        let micros = started.elapsed().as_micros() as u64;
        self.metrics.record_change("api", result.as_ref().map(|_| micros as f64 / 1e6).map_err(ControllerError::label));
        match result {
            Ok((changes, objects, generation)) => {
                self.last_error.clear();
                Ok(ChangeReport { generation, changes, objects, compile_micros: micros })
            }
            Err(e) => {
                self.last_error = e.to_string();
                Err(e)
            }
        }
    }

    fn try_change(
        &mut self,
        kind: ChangeKind,
        source: &str,
        mut objs: Vec<Object>,
    ) -> Result<(Changes, Vec<ObjectChange>, u64), ControllerError> {
        for o in &mut objs {
            o.strip_internal();
        }
        if objs.is_empty() {
            return Err(ControllerError::Field { field: "yaml", message: format!("{source}: no objects") });
        }
        let refs: Vec<ObjectRef> = objs.iter().map(Object::reference).collect();
        let (candidate, changes) = match kind {
            ChangeKind::Apply => self.store.applied(objs),
            ChangeKind::Delete => self.store.deleted(objs),
        };
        if changes.changed.is_empty() {
            return Ok((changes, Vec::new(), self.ids.generation));
        }
        let changed: BTreeSet<&String> = changes.changed.iter().collect();
        let objects: Vec<ObjectChange> = refs
            .into_iter()
            .filter(|r| changed.contains(&r.to_string()))
            .map(|r| ObjectChange { before: self.store.get(&r).cloned(), after: candidate.get(&r).cloned(), target: r })
            .collect();
        let generation = self.commit(candidate)?;
        Ok((changes, objects, generation))
    }

    /// Validates and compiles a candidate store; only then makes it current,
    /// persists it and pushes the result.
    fn commit(&mut self, candidate: Store) -> Result<u64, ControllerError> {
        let mut model = candidate.model(&self.cfg.cluster)?;
        model.inventory.remote_pods = self.remote.values().flatten().cloned().collect();
        let mut compiler = self.compiler.clone();
        let compiled = compiler.compile(&model.inventory, &model.policies)?;
        self.store = candidate;
        self.model = model;
        self.compiler = compiler;
        self.compiled = compiled;
        self.persist()?;
        self.reconcile()
    }

    /// Takes a batch of changes from the Kubernetes API. Objects that are
    /// invalid on their own are left out (and reported); if the rest still
    /// does not compile, the batch is refused and the last good state stays.
    #[instrument(skip(self, updates), fields(updates = updates.len()))]
    pub fn ingest(&mut self, updates: Vec<crate::policy::kubernetes::Update>) -> Result<u64, ControllerError> {
        let mut errors = Vec::new();
        let (candidate, changed) = self.with_updates(&self.store, &updates, &mut errors);
        if !errors.is_empty() {
            self.metrics.record_change("kubernetes", Err("invalid"));
            for e in &errors {
                tracing::warn!(error = %e, "object from the Kubernetes API refused; the rest is applied");
            }
        }
        if changed == 0 {
            if !errors.is_empty() {
                self.last_error = errors.join("; ");
            }
            return Ok(self.ids.generation);
        }
        let started = Instant::now();
        let result = match self.commit(candidate) {
            Err(e) if updates.len() > 1 => {
                // The batch as a whole does not compile: take what does, one by one.
                tracing::warn!(error = %e, "batch refused; applying its updates one at a time");
                errors.push(e.to_string());
                for u in &updates {
                    let (c, n) = self.with_updates(&self.store, std::slice::from_ref(u), &mut Vec::new());
                    if n > 0
                        && let Err(e) = self.commit(c)
                    {
                        errors.push(e.to_string());
                    }
                }
                Ok(self.ids.generation)
            }
            other => other,
        };
        match result {
            Ok(g) => {
                self.metrics.record_change("kubernetes", Ok(started.elapsed().as_secs_f64()));
                self.last_error = errors.join("; ");
                Ok(g)
            }
            Err(e) => {
                self.metrics.record_change("kubernetes", Err(e.label()));
                self.last_error = e.to_string();
                Err(e)
            }
        }
    }

    /// `store` with the updates applied, leaving out objects invalid on
    /// their own (an invalid object in a relist keeps its stored version),
    /// and the number of objects changed.
    fn with_updates(
        &self,
        store: &Store,
        updates: &[crate::policy::kubernetes::Update],
        errors: &mut Vec<String>,
    ) -> (Store, usize) {
        use crate::policy::kubernetes::Update;
        let cluster = &self.cfg.cluster;
        let mut keep = |o: &bulkhead_policy::objects::Object| match Store::validate(o, cluster) {
            Ok(()) => true,
            Err(e) => {
                errors.push(e.to_string());
                false
            }
        };
        let mut candidate = store.clone();
        let mut changed = 0;
        for u in updates {
            let (next, c) = match u {
                Update::Apply(o) if keep(o) => candidate.applied(vec![o.clone()]),
                Update::Apply(_) => continue,
                Update::Delete(o) => candidate.deleted(vec![o.clone()]),
                Update::Forget(r) => candidate.forgotten(std::slice::from_ref(r)),
                Update::Relist { kind, objects, unreadable } => {
                    let listed = objects
                        .iter()
                        .map(bulkhead_policy::objects::Object::reference)
                        .chain(unreadable.iter().cloned())
                        .collect();
                    let valid: Vec<_> = objects.iter().filter(|o| keep(o)).cloned().collect();
                    candidate.relisted(kind, valid, &listed)
                }
            };
            changed += c.changed.len();
            candidate = next;
        }
        (candidate, changed)
    }

    fn resolve(&self, what: &str) -> Result<IpAddr, ControllerError> {
        if let Ok(ip) = what.parse() {
            return Ok(ip);
        }
        if let Some(p) = self.model.inventory.pods.get(what) {
            return p
                .ips
                .iter()
                .find(|i| i.is_ipv4())
                .or(p.ips.first())
                .copied()
                .ok_or_else(|| ControllerError::NotFound(format!("pod {what} has no address")));
        }
        if let Some(s) = self.model.inventory.services.get(what) {
            return s
                .cluster_ips
                .first()
                .copied()
                .ok_or_else(|| ControllerError::NotFound(format!("service {what} has no ClusterIP")));
        }
        Err(ControllerError::NotFound(format!(
            "{what:?} is not an IP address, a known pod or a known service (use namespace/name)"
        )))
    }

    /// The verdict on a connection and what decided each side. `from` and
    /// `to` are addresses or "namespace/name" of a pod (or, for `to`, a service).
    pub fn explain(
        &self,
        from: &str,
        to: &str,
        port: Option<u16>,
        protocol: Option<&str>,
    ) -> Result<Explanation, ControllerError> {
        let from_ip = self.resolve(from)?;
        let to_ip = self.resolve(to)?;
        let name = protocol.unwrap_or("TCP").to_ascii_uppercase();
        let proto = match name.as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            "ICMP" => None,
            other => {
                return Err(ControllerError::Field {
                    field: "protocol",
                    message: format!("{other:?}: expected TCP, UDP, SCTP or ICMP"),
                });
            }
        };
        let port = port.unwrap_or(0);
        if proto.is_some() && port == 0 {
            return Err(ControllerError::Field {
                field: "port",
                message: "a port is required for TCP, UDP and SCTP".into(),
            });
        }
        if from_ip.is_ipv4() != to_ip.is_ipv4() {
            return Err(ControllerError::Field {
                field: "to",
                message: format!("{from_ip} and {to_ip} are of different address families"),
            });
        }
        let v = Evaluator::new(&self.model.inventory, &self.model.policies).connection(from_ip, to_ip, proto, port);
        let side = |d: &Option<bulkhead_policy::evaluate::Decision>| {
            d.as_ref().map(|d| SideDecision { allowed: d.allowed, decided_by: d.by.name() })
        };
        Ok(Explanation {
            allowed: v.allowed,
            from_address: from_ip.to_string(),
            to_address: to_ip.to_string(),
            port,
            protocol: name,
            egress: side(&v.egress),
            ingress: side(&v.ingress),
        })
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// Follows the committed model (the flow pipeline's inventory).
    pub fn models(&self) -> watch::Receiver<Arc<Model>> {
        self.models.subscribe()
    }

    /// The committed model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// A stored object, by kind, namespace and name.
    pub fn object(&self, r: &bulkhead_policy::objects::ObjectRef) -> Option<&bulkhead_policy::objects::Object> {
        self.store.get(r)
    }

    /// Generation, inventory, sync state and unprotected pods (without
    /// the flow pipeline, which the observation side adds).
    pub fn status(&self) -> Status {
        let reports: Vec<NodeReport> = self.sync.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        // A node no Node object names, no socket was given for, and whose
        // agent is gone (it once dialed in) is no node of this cluster now.
        let reports: Vec<NodeReport> = reports
            .into_iter()
            .filter(|r| {
                let node = &r.sync.node;
                self.model.inventory.nodes.contains_key(node)
                    || self.cfg.agents.contains_key(node)
                    || r.sync.error.is_empty()
            })
            .collect();
        Status {
            generation: self.ids.generation,
            pods: self.model.inventory.pods.len() as u32,
            network_policies: self.model.policies.network.len() as u32,
            cluster_policies: self.model.policies.cluster.len() as u32,
            identities: self.compiled.identities.len() as u32,
            policy_entries: self.compiled.entry_count() as u32,
            last_error: self.last_error.clone(),
            nodes: reports
                .iter()
                .map(|r| NodeSync {
                    in_sync: r.sync.error.is_empty() && r.sync.applied_generation == self.ids.generation,
                    ..r.sync.clone()
                })
                .collect(),
            unprotected: reports.into_iter().flat_map(|r| r.unprotected).collect(),
            flows: Default::default(),
            quarantines_active: self.desk.read(|b| b.active()).unwrap_or(0) as u32,
            policy_warnings: self
                .store
                .failed_closed()
                .into_iter()
                .chain(self.retired.iter().map(|n| crate::policy::kubernetes::retired_warning(n)))
                .collect(),
            cluster: self.cfg.cluster.clone(),
        }
    }

    /// Takes the pods another cluster reports, as peers, and recompiles
    /// when they changed; says whether they did, and the generation.
    pub fn set_remote(
        &mut self,
        cluster: &str,
        pods: Vec<bulkhead_policy::inventory::Pod>,
    ) -> Result<(bool, u64), ControllerError> {
        if self.remote.get(cluster) == Some(&pods) {
            return Ok((false, self.ids.generation));
        }
        // One address is one cluster's: a second claim is refused whole.
        for (other, theirs) in self.remote.iter().filter(|(c, _)| c.as_str() != cluster) {
            let held: BTreeSet<IpAddr> = theirs.iter().flat_map(|p| p.ips.iter().copied()).collect();
            let clash = pods.iter().find_map(|p| p.ips.iter().find(|ip| held.contains(ip)).map(|ip| (p, ip)));
            if let Some((p, ip)) = clash {
                return Err(ControllerError::BadRequest(format!(
                    "cluster {cluster}: pod {}: address {ip} is a pod of cluster {other} already",
                    p.key()
                )));
            }
        }
        let before = self.remote.insert(cluster.to_string(), pods);
        match self.commit(self.store.clone()) {
            Ok(g) => Ok((true, g)),
            Err(e) => {
                match before {
                    Some(b) => self.remote.insert(cluster.to_string(), b),
                    None => self.remote.remove(cluster),
                };
                Err(e)
            }
        }
    }

    /// Records the retired ClusterNetworkPolicies still in the cluster.
    pub fn set_retired(&mut self, names: Vec<String>) {
        self.retired = names;
    }

    /// This cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cfg.cluster
    }

    /// The mode of pods that do not say.
    pub fn default_mode(&self) -> Mode {
        self.cfg.mode
    }

    /// The mode a namespace's annotation sets, if any.
    pub fn namespace_mode(&self, namespace: &str) -> Option<Mode> {
        let r = ObjectRef { kind: "Namespace".into(), namespace: String::new(), name: namespace.to_string() };
        match self.store.get(&r) {
            Some(Object::Namespace(ns)) => ns
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::policy::store::MODE_ANNOTATION))
                .and_then(|m| m.parse().ok()),
            _ => None,
        }
    }

    /// The namespace of the pod or service at `ip`, if any.
    pub fn namespace_of(&self, ip: IpAddr) -> Option<String> {
        let inv = &self.model.inventory;
        inv.pods
            .values()
            .find(|p| p.ips.contains(&ip))
            .map(|p| p.namespace.clone())
            .or_else(|| inv.services.values().find(|s| s.cluster_ips.contains(&ip)).map(|s| s.namespace.clone()))
    }

    /// The quarantines, behind their own lock.
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// Where the controller keeps its state.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.cfg.state_dir
    }

    /// The block list.
    pub fn blocks(&self) -> &crate::policy::blocks::Book {
        &self.blocks
    }

    /// Blocks `net` on every node: saved, then pushed. An active block of
    /// the same prefix is returned as it stands (`false`).
    pub fn block(
        &mut self,
        net: ipnetwork::IpNetwork,
        reason: &str,
        by: &Principal,
        expires_ns: Option<i64>,
    ) -> Result<(crate::policy::blocks::Record, bool), ControllerError> {
        let now = crate::observation::flows::now_ns();
        let (record, made) = self.blocks.block(net, reason, &by.signature(), expires_ns, now)?;
        if made {
            self.reconcile()?;
        }
        Ok((record, made))
    }

    /// Lifts block `id` on every node: saved, then pushed.
    pub fn unblock(
        &mut self,
        id: u64,
        reason: &str,
        by: &Principal,
    ) -> Result<crate::policy::blocks::Record, ControllerError> {
        let now = crate::observation::flows::now_ns();
        let record = self.blocks.lift(id, reason, &by.signature(), now)?;
        self.reconcile()?;
        Ok(record)
    }

    /// Ends the blocks whose time is up, audits each as the controller's
    /// own action, and pushes the shorter list (the agents have already
    /// lifted them on their own clocks).
    pub fn expire_blocks(&mut self) -> Result<usize, ControllerError> {
        let ended = self.blocks.expire(crate::observation::flows::now_ns())?;
        if ended.is_empty() {
            return Ok(0);
        }
        let who = Principal::system("controller");
        for r in &ended {
            let target = format!("block {} ({})", r.id, r.net);
            let detail = format!("expired; made by {} because: {}", r.created_by, r.reason);
            let event = Event {
                action: "block-expired",
                target: &target,
                detail: &detail,
                before: Some("active".into()),
                after: Some("expired".into()),
                ..Default::default()
            };
            if let Err(e) = self.audit.event(&who.caller(), Outcome::Ok, event) {
                tracing::error!(error = %e, "auditing an expired block");
            }
            self.metrics.record_block("expired");
        }
        self.reconcile()?;
        Ok(ended.len())
    }

    /// Audits the quarantines a reconcile changed, as the controller's
    /// own actions.
    fn audit_quarantines(&self, events: Vec<(crate::policy::quarantine::Record, &'static str, String)>) {
        for (r, action, detail) in events {
            let who = Principal::system(r.object.as_deref().unwrap_or("controller"));
            let target = format!("quarantine {} ({})", r.id, r.target.describe());
            let event = Event {
                action,
                target: &target,
                namespaces: vec![r.target.namespace().to_string()],
                detail: &detail,
                ..Default::default()
            };
            if let Err(e) = self.audit.event(&who.caller(), Outcome::Ok, event) {
                tracing::error!(error = %e, "auditing a quarantine the controller changed");
            }
        }
    }
}
