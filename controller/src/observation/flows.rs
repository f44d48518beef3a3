//! The flow pipeline: agents' flows, enriched with the inventory as it was
//! at flow time, into the service graph, the learner and storage. Loss is
//! counted at every stage (kernel ring, agent buffer, undecodable records,
//! storage failures) and reported, never dropped silently; storage is
//! batched, one transaction per tick, with each agent's cursor in the same
//! transaction so a restart resumes exactly where the stored data ends.

pub mod collect;
pub mod enrich;
pub mod history;
pub mod query;
pub mod reach;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::ring::SeqRing;
use bulkhead_api::v1::status::FlowPipeline;
use bulkhead_graph::apps::AppObservations;
use bulkhead_graph::baseline::{Learner, LearningConfig};
use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord, Pairing, ServiceGraph};
use rustc_hash::FxHashMap;

use crate::observation::storage::{Commit, Cursor, EdgeBucket, FlowStore, StorageError};
use crate::policy::store::Model;
use history::History;

/// Flows the live stream keeps for readers that fall behind: 16 s at
/// 1 000 flows/s. It is held whatever the load, so it is part of the
/// controller's fixed memory (about 400 bytes a flow).
pub const STREAM_BUFFER: usize = 16_384;

/// Width of the stored edge aggregates' time buckets.
pub const BUCKET_NS: i64 = 60_000_000_000;
/// The learner is saved at least this often while only counts change.
const LEARNER_SAVE_NS: i64 = 30_000_000_000;

/// The pipeline's state.
pub struct Pipeline {
    store: Box<dyn FlowStore>,
    pairing: Pairing,
    graph: ServiceGraph,
    learner: Learner,
    history: History,
    pending: Commit,
    buckets: FxHashMap<(i64, Entity, Entity, EdgeKey), EdgeStats>,
    cursors: BTreeMap<String, Cursor>,
    stats: FlowPipeline,
    learner_changed: bool,
    learner_saved_ns: i64,
    stream: Arc<SeqRing<FlowRecord>>,
    apps: AppObservations,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn bucket_of(t: i64) -> i64 {
    t - t.rem_euclid(BUCKET_NS)
}

impl Pipeline {
    /// Restores the graph, the learner, cursors and loss counts from `store`.
    pub fn open(store: Box<dyn FlowStore>, learning: LearningConfig) -> Result<Self, StorageError> {
        let mut graph = ServiceGraph::default();
        for b in store.edges(i64::MIN, i64::MAX)? {
            graph.add_stats(&b.src, &b.dst, b.key, &b.stats);
        }
        let mut learner = match store.learner()? {
            Some(json) => serde_json::from_str(&json).map_err(|e| StorageError::Decode {
                path: "learner".into(),
                what: "baselines",
                message: e.to_string(),
            })?,
            None => Learner::new(learning),
        };
        learner.set_config(learning);
        let cursors = store.cursors()?.into_iter().map(|c| (c.node.clone(), c)).collect();
        let stats = FlowPipeline {
            lost: store.lost()?.into_iter().collect(),
            evicted: store.evicted()?,
            anomalies: learner.anomaly_count() as u64,
            ..Default::default()
        };
        Ok(Self {
            store,
            pairing: Pairing::default(),
            graph,
            learner,
            history: History::default(),
            pending: Commit::default(),
            buckets: FxHashMap::default(),
            cursors,
            stats,
            learner_changed: false,
            learner_saved_ns: now_ns(),
            stream: Arc::new(SeqRing::new(STREAM_BUFFER)),
            apps: AppObservations::default(),
        })
    }

    /// Where to resume reading a node's agent.
    pub fn cursor(&self, node: &str) -> Option<Cursor> {
        self.cursors.get(node).cloned()
    }

    /// Takes a new inventory, effective now.
    pub fn update_inventory(&mut self, model: &Model) {
        self.history.update(model, now_ns());
    }

    fn lose(&mut self, stage: &str, n: u64) {
        if n > 0 {
            *self.stats.lost.entry(stage.to_string()).or_default() += n;
            self.pending.lost.push((stage.to_string(), n));
        }
    }

    /// Takes one batch from a node's agent.
    pub fn ingest(&mut self, node: &str, batch: pb::FlowBatch) {
        self.stats.received += batch.flows.len() as u64;
        self.lose("agent_buffer", batch.buffer_lost);
        // The agent reports running totals per run; the cursor holds what was counted of them.
        let (kernel_seen, undecodable_seen) = self
            .cursors
            .get(node)
            .filter(|c| c.epoch == batch.epoch)
            .map_or((0, 0), |c| (c.kernel_lost_total, c.undecodable_total));
        self.lose("kernel", batch.kernel_lost_total.saturating_sub(kernel_seen));
        self.lose("undecodable", batch.undecodable_total.saturating_sub(undecodable_seen));
        // A flooding source's own events, suppressed in the kernel and carried by its next one.
        self.lose("source_rate", batch.flows.iter().map(|f| u64::from(f.suppressed)).sum());
        self.pending.flows.reserve(batch.flows.len());
        let first_new = self.pending.flows.len();
        let arrival = now_ns();
        for f in &batch.flows {
            match enrich::app_seen(f, &self.history) {
                Ok(Some(seen)) => {
                    self.stats.samples += 1;
                    self.apps.add(&seen);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "payload sample not readable");
                    self.lose("undecodable", 1);
                    continue;
                }
            }
            match enrich::enrich(f, &self.history) {
                Ok(Some(r)) => {
                    if let Some((counted, k)) = self.pairing.observe_at(&r, arrival) {
                        let counted = counted.into_owned();
                        self.counted(&counted, k);
                    }
                    self.stats.records += 1;
                    self.pending.flows.push(r);
                }
                Ok(None) => self.stats.not_connections += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "flow not readable");
                    self.lose("undecodable", 1);
                }
            }
        }
        self.stream.publish_all(self.pending.flows[first_new..].iter().cloned());
        let cursor = Cursor {
            node: node.to_string(),
            epoch: batch.epoch,
            seq: batch.last_seq,
            kernel_lost_total: batch.kernel_lost_total.max(kernel_seen),
            undecodable_total: batch.undecodable_total.max(undecodable_seen),
        };
        self.cursors.insert(node.to_string(), cursor);
    }

    fn counted(&mut self, r: &FlowRecord, key: EdgeKey) {
        let key = self.graph.fold(&r.src, &r.dst, &key, self.learner.config().scan.edge_ports);
        self.graph.add(r, &key);
        let before = (self.learner.edges().len(), self.learner.workloads().len());
        let anomalies = self.learner.observe(r, &key);
        if !anomalies.is_empty() || before != (self.learner.edges().len(), self.learner.workloads().len()) {
            self.learner_changed = true;
        }
        self.stats.anomalies = self.learner.anomaly_count() as u64;
        self.buckets.entry((bucket_of(r.time_ns), r.src.clone(), r.dst.clone(), key)).or_default().add(r);
    }

    /// Counts connections whose twin never came, advances the baselines and
    /// stores everything since the last tick in one transaction.
    pub fn tick(&mut self, now: i64) {
        for (r, k) in self.pairing.flush(now) {
            self.counted(&r, k);
        }
        if !self.learner.tick(now).is_empty() {
            self.learner_changed = true;
        }
        let save_learner = self.learner_changed || now - self.learner_saved_ns > LEARNER_SAVE_NS;
        let mut commit = std::mem::take(&mut self.pending);
        commit.edges = self
            .buckets
            .drain()
            .map(|((bucket_ns, src, dst, key), stats)| EdgeBucket { bucket_ns, src, dst, key, stats })
            .collect();
        commit.cursors = self.cursors.values().cloned().collect();
        if save_learner {
            commit.learner = serde_json::to_string(&self.learner).ok();
        }
        match self.store.commit(&commit) {
            Ok(a) => {
                self.stats.stored += a.stored;
                self.stats.evicted += a.evicted;
                self.stats.storage_error.clear();
                if save_learner {
                    self.learner_changed = false;
                    self.learner_saved_ns = now;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, flows = commit.flows.len(), "flow store commit failed");
                self.stats.storage_error = e.to_string();
                // The flows are gone; what was counted as lost is kept for the next commit.
                self.pending.lost.extend(commit.lost);
                self.lose("storage", commit.flows.len() as u64);
            }
        }
    }

    /// What the ports pods serve were heard speaking, since the controller started.
    pub fn apps(&self) -> &AppObservations {
        &self.apps
    }

    /// What the pipeline did.
    pub fn stats(&self) -> &FlowPipeline {
        &self.stats
    }

    /// Anomalies made since the last call, once each (see
    /// [`Learner::take_fresh`]), for alerts and response rules.
    pub fn take_fresh_anomalies(&mut self, now_ns: i64) -> Vec<bulkhead_graph::baseline::Anomaly> {
        self.learner.take_fresh(now_ns)
    }

    /// The learner.
    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    /// The service graph.
    pub fn graph(&self) -> &ServiceGraph {
        &self.graph
    }

    /// The inventory history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Every enriched flow as it arrives, numbered, for live readers.
    pub fn stream(&self) -> Arc<SeqRing<FlowRecord>> {
        self.stream.clone()
    }

    /// The store (for queries and the review workflow).
    pub fn store(&self) -> &dyn FlowStore {
        self.store.as_ref()
    }

    /// The store, to write review records.
    pub fn store_mut(&mut self) -> &mut dyn FlowStore {
        self.store.as_mut()
    }
}
