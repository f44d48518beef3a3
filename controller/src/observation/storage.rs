//! Where flows and what is derived from them are kept, behind a trait so a
//! ClickHouse sink can replace the embedded default for clusters that
//! outgrow one machine. The default is SQLite with real transactions
//! (`storage/sqlite.rs`): a controller restart loses nothing.

mod filter;
mod sqlite;

use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord};
use bulkhead_model::Verdict;

pub use filter::{FlowFilter, Named};
pub use sqlite::SqliteStorage;

/// Storage failures, naming the store and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database refused an operation.
    #[error("flow store {path}: {action}: {message}")]
    Database {
        /// The database file.
        path: String,
        /// What was being done.
        action: &'static str,
        /// The engine's message.
        message: String,
    },
    /// A stored record could not be decoded (written by another version?).
    #[error("flow store {path}: undecodable {what}: {message}")]
    Decode {
        /// The database file.
        path: String,
        /// What could not be decoded.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// One edge's counts over one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeBucket {
    /// Start of the bucket, nanoseconds since the epoch.
    pub bucket_ns: i64,
    /// Source entity.
    pub src: Entity,
    /// Destination entity.
    pub dst: Entity,
    /// Protocol, port and service.
    pub key: EdgeKey,
    /// What was seen in the bucket.
    pub stats: EdgeStats,
}

/// Connections between two pods (or a pod and an entity without pods) on
/// one protocol, port and verdict, from the raw flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEdge {
    /// Source entity.
    pub src: Entity,
    /// Source pod ("namespace/name"), empty when not a pod.
    pub src_pod: String,
    /// Destination entity.
    pub dst: Entity,
    /// Destination pod, empty when not a pod.
    pub dst_pod: String,
    /// IANA protocol number.
    pub protocol: u8,
    /// Delivered port.
    pub port: u16,
    /// Verdict.
    pub verdict: Verdict,
    /// Connections.
    pub connections: u64,
    /// Bytes.
    pub bytes: u64,
    /// First seen.
    pub first_seen_ns: i64,
    /// Last seen.
    pub last_seen_ns: i64,
}

/// What a commit did to raw flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Records stored.
    pub stored: u64,
    /// Oldest records dropped to stay within the size cap (counted, never silent).
    pub evicted: u64,
}

/// How far the controller has read one agent's flow buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Node name.
    pub node: String,
    /// The agent run the sequence number belongs to.
    pub epoch: u64,
    /// Last sequence number stored.
    pub seq: u64,
    /// The agent's running loss totals (kernel ring, undecodable) in that
    /// run, as last stored: a restart does not count them again.
    pub kernel_lost_total: u64,
    /// See `kernel_lost_total`.
    pub undecodable_total: u64,
}

/// Everything one ingestion step changed, stored in one transaction, so a
/// restart resumes each agent exactly where the stored data ends.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// Raw flows.
    pub flows: Vec<FlowRecord>,
    /// Edge counts to add.
    pub edges: Vec<EdgeBucket>,
    /// Agent cursors after these flows.
    pub cursors: Vec<Cursor>,
    /// The learner (baselines, anomalies) as JSON, when it changed.
    pub learner: Option<String>,
    /// Losses to add, by stage.
    pub lost: Vec<(String, u64)>,
}

/// A stored record of the review workflow (a suggestion or a review), as
/// JSON with its id and the columns it is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Id (0 to let the store assign one).
    pub id: u64,
    /// What it is about (a suggestion's workload, a review's suggestion id).
    pub subject: String,
    /// The record.
    pub json: String,
}

/// The controller's flow store.
pub trait FlowStore: Send {
    /// Stores a commit in one transaction, evicting the oldest raw flows beyond the cap.
    fn commit(&mut self, c: &Commit) -> Result<Appended, StorageError>;
    /// Raw flows passing `filter`, newest first, with their ids: at most
    /// `limit` of those with an id below `before` (from the newest when `None`).
    fn query(
        &self,
        filter: &FlowFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, FlowRecord)>, StorageError>;
    /// Connections passing `filter` between pods, each counted once.
    fn pod_edges(&self, filter: &FlowFilter) -> Result<Vec<PodEdge>, StorageError>;
    /// Edge buckets with `from_ns <= bucket < to_ns`.
    fn edges(&self, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeBucket>, StorageError>;
    /// Raw flows evicted by the size cap since the store was created.
    fn evicted(&self) -> Result<u64, StorageError>;
    /// Every agent cursor.
    fn cursors(&self) -> Result<Vec<Cursor>, StorageError>;
    /// The last committed learner.
    fn learner(&self) -> Result<Option<String>, StorageError>;
    /// Losses by stage, since the store was created.
    fn lost(&self) -> Result<Vec<(String, u64)>, StorageError>;
    /// Inserts (id 0) or replaces a document of `table` ("suggestions" or
    /// "reviews"); returns its id.
    fn put_document(&mut self, table: Table, doc: &Document) -> Result<u64, StorageError>;
    /// Documents of `table`, by id, optionally only those about `subject`.
    fn documents(&self, table: Table, subject: Option<&str>) -> Result<Vec<Document>, StorageError>;
    /// One document of `table` by id.
    fn document(&self, table: Table, id: u64) -> Result<Option<Document>, StorageError>;

    /// Stores raw flows alone.
    fn append_flows(&mut self, flows: &[FlowRecord]) -> Result<Appended, StorageError> {
        self.commit(&Commit { flows: flows.to_vec(), ..Default::default() })
    }
    /// Adds edge counts alone.
    fn add_edges(&mut self, buckets: &[EdgeBucket]) -> Result<(), StorageError> {
        self.commit(&Commit { edges: buckets.to_vec(), ..Default::default() }).map(|_| ())
    }
}

/// The review workflow's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Suggested policies and their status.
    Suggestions,
    /// Every review action.
    Reviews,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Suggestions => "suggestions",
            Table::Reviews => "reviews",
        }
    }
}
