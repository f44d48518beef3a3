//! Where flows and what is derived from them are kept, behind a trait so a
//! ClickHouse sink can replace the embedded default for clusters that
//! outgrow one machine. The default is SQLite with real transactions
//! (`storage/sqlite.rs`): a controller restart loses nothing.

mod sqlite;

use bulkhead_graph::{EdgeKey, EdgeStats, Entity, FlowRecord};

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

/// What appending raw flows did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Records stored.
    pub stored: u64,
    /// Oldest records dropped to stay within the size cap (counted, never silent).
    pub evicted: u64,
}

/// The controller's flow store.
pub trait FlowStore: Send {
    /// Stores raw flows in one transaction, evicting the oldest beyond the cap.
    fn append_flows(&mut self, flows: &[FlowRecord]) -> Result<Appended, StorageError>;
    /// Raw flows with `from_ns <= time < to_ns`, oldest first, at most `limit`.
    fn flows(&self, from_ns: i64, to_ns: i64, limit: usize) -> Result<Vec<FlowRecord>, StorageError>;
    /// Adds edge counts into their buckets in one transaction (counts sum,
    /// first/last seen widen).
    fn add_edges(&mut self, buckets: &[EdgeBucket]) -> Result<(), StorageError>;
    /// Edge buckets with `from_ns <= bucket < to_ns`.
    fn edges(&self, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeBucket>, StorageError>;
    /// Raw flows evicted by the size cap since the store was created.
    fn evicted(&self) -> Result<u64, StorageError>;
}
