//! The embedded default store: one SQLite file (WAL), raw flows capped by
//! count with the oldest evicted first and counted (`sqlite/flow_log.rs`),
//! and edge aggregates per time bucket upserted in transactions.

mod flow_log;

use std::path::{Path, PathBuf};

use bulkhead_graph::FlowRecord;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Appended, Commit, Cursor, Document, EdgeBucket, FlowFilter, FlowStore, PodEdge, StorageError, Table};

/// SQLite flow store.
#[derive(Debug)]
pub struct SqliteStorage {
    conn: Connection,
    path: PathBuf,
    max_flows: u64,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS edges (
  bucket_ns INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL, key TEXT NOT NULL,
  connections INTEGER NOT NULL, forwarded INTEGER NOT NULL, dropped INTEGER NOT NULL, audit INTEGER NOT NULL,
  bytes INTEGER NOT NULL, first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL,
  PRIMARY KEY (bucket_ns, src, dst, key));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (node TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, kernel INTEGER NOT NULL, undecodable INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS suggestions (id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, record TEXT NOT NULL);
";

impl SqliteStorage {
    /// Opens (or creates) the store, keeping at most `max_flows` raw flows.
    pub fn open(path: &Path, max_flows: u64) -> Result<Self, StorageError> {
        let s = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| db(&s, "opening", e))?;
        conn.execute_batch(SCHEMA).map_err(|e| db(&s, "creating the schema", e))?;
        conn.execute_batch(flow_log::SCHEMA).map_err(|e| db(&s, "creating the flow table", e))?;
        let moved = flow_log::migrate(&conn, &s)?;
        if moved > 0 {
            tracing::info!(flows = moved, path = %s, "flows moved to the current schema");
        }
        Ok(Self { conn, path: path.to_path_buf(), max_flows })
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

fn db(path: &str, action: &'static str, e: rusqlite::Error) -> StorageError {
    StorageError::Database { path: path.to_string(), action, message: e.to_string() }
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, what: &'static str, text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Decode {
        path: path.to_string(),
        what,
        message: e.to_string(),
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl FlowStore for SqliteStorage {
    fn commit(&mut self, c: &Commit) -> Result<Appended, StorageError> {
        let name = self.name();
        let tx = self.conn.transaction().map_err(|e| db(&name, "starting a transaction", e))?;
        flow_log::insert(&tx, &name, &c.flows)?;
        let mut excess = 0;
        if !c.flows.is_empty() {
            excess = flow_log::count(&tx, &name)?.saturating_sub(self.max_flows);
        }
        if excess > 0 {
            flow_log::evict(&tx, &name, excess)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('evicted', ?1) ON CONFLICT(name) DO UPDATE SET value = value + ?1",
                params![excess as i64],
            )
            .map_err(|e| db(&name, "counting evictions", e))?;
        }
        {
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO edges VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT(bucket_ns, src, dst, key) DO UPDATE SET
                       connections = connections + excluded.connections, forwarded = forwarded + excluded.forwarded,
                       dropped = dropped + excluded.dropped, audit = audit + excluded.audit, bytes = bytes + excluded.bytes,
                       first_seen_ns = MIN(first_seen_ns, excluded.first_seen_ns),
                       last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
                )
                .map_err(|e| db(&name, "preparing edge upsert", e))?;
            for b in &c.edges {
                let s = &b.stats;
                up.execute(params![
                    b.bucket_ns,
                    json(&b.src),
                    json(&b.dst),
                    json(&b.key),
                    s.connections as i64,
                    s.forwarded as i64,
                    s.dropped as i64,
                    s.audit as i64,
                    s.bytes as i64,
                    s.first_seen_ns,
                    s.last_seen_ns
                ])
                .map_err(|e| db(&name, "upserting an edge", e))?;
            }
        }
        for cur in &c.cursors {
            tx.execute(
                "INSERT INTO cursors VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(node) DO UPDATE SET epoch = ?2, seq = ?3, kernel = ?4, undecodable = ?5",
                params![
                    cur.node,
                    cur.epoch as i64,
                    cur.seq as i64,
                    cur.kernel_lost_total as i64,
                    cur.undecodable_total as i64
                ],
            )
            .map_err(|e| db(&name, "storing a cursor", e))?;
        }
        if let Some(l) = &c.learner {
            tx.execute(
                "INSERT INTO blobs VALUES ('learner', ?1) ON CONFLICT(name) DO UPDATE SET value = ?1",
                params![l],
            )
            .map_err(|e| db(&name, "storing baselines", e))?;
        }
        for (stage, n) in &c.lost {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = value + ?2",
                params![format!("lost:{stage}"), *n as i64],
            )
            .map_err(|e| db(&name, "counting losses", e))?;
        }
        tx.commit().map_err(|e| db(&name, "committing", e))?;
        Ok(Appended { stored: c.flows.len() as u64, evicted: excess })
    }

    fn query(&self, f: &FlowFilter, before: Option<u64>, limit: usize) -> Result<Vec<(u64, FlowRecord)>, StorageError> {
        flow_log::query(&self.conn, &self.name(), f, before, limit)
    }

    fn pod_edges(&self, f: &FlowFilter) -> Result<Vec<PodEdge>, StorageError> {
        flow_log::pod_edges(&self.conn, &self.name(), f)
    }

    fn edges(&self, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeBucket>, StorageError> {
        let name = self.name();
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT bucket_ns, src, dst, key, connections, forwarded, dropped, audit, bytes, first_seen_ns, last_seen_ns
                 FROM edges WHERE bucket_ns >= ?1 AND bucket_ns < ?2 ORDER BY bucket_ns, src, dst, key",
            )
            .map_err(|e| db(&name, "preparing an edge query", e))?;
        type Row = (i64, String, String, String, [i64; 5], i64, i64);
        let rows = q
            .query_map(params![from_ns, to_ns], |r| -> rusqlite::Result<Row> {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                    r.get(9)?,
                    r.get(10)?,
                ))
            })
            .map_err(|e| db(&name, "querying edges", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (bucket_ns, src, dst, key, n, first, last) = row.map_err(|e| db(&name, "reading an edge", e))?;
            out.push(EdgeBucket {
                bucket_ns,
                src: decode(&name, "entity", &src)?,
                dst: decode(&name, "entity", &dst)?,
                key: decode(&name, "edge key", &key)?,
                stats: bulkhead_graph::EdgeStats {
                    connections: n[0] as u64,
                    forwarded: n[1] as u64,
                    dropped: n[2] as u64,
                    audit: n[3] as u64,
                    bytes: n[4] as u64,
                    first_seen_ns: first,
                    last_seen_ns: last,
                },
            });
        }
        Ok(out)
    }

    fn evicted(&self) -> Result<u64, StorageError> {
        let name = self.name();
        let v: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE name = 'evicted'", [], |r| r.get(0))
            .optional()
            .map_err(|e| db(&name, "reading the eviction count", e))?;
        Ok(v.unwrap_or(0) as u64)
    }

    fn cursors(&self) -> Result<Vec<Cursor>, StorageError> {
        let name = self.name();
        let mut q = self
            .conn
            .prepare_cached("SELECT node, epoch, seq, kernel, undecodable FROM cursors")
            .map_err(|e| db(&name, "preparing", e))?;
        let rows = q
            .query_map([], |r| {
                Ok(Cursor {
                    node: r.get(0)?,
                    epoch: r.get::<_, i64>(1)? as u64,
                    seq: r.get::<_, i64>(2)? as u64,
                    kernel_lost_total: r.get::<_, i64>(3)? as u64,
                    undecodable_total: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| db(&name, "reading cursors", e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| db(&name, "reading a cursor", e))
    }

    fn learner(&self) -> Result<Option<String>, StorageError> {
        let name = self.name();
        self.conn
            .query_row("SELECT value FROM blobs WHERE name = 'learner'", [], |r| r.get(0))
            .optional()
            .map_err(|e| db(&name, "reading baselines", e))
    }

    fn lost(&self) -> Result<Vec<(String, u64)>, StorageError> {
        let name = self.name();
        let mut q = self
            .conn
            .prepare_cached("SELECT name, value FROM meta WHERE name LIKE 'lost:%' ORDER BY name")
            .map_err(|e| db(&name, "preparing", e))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| db(&name, "reading losses", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(|e| db(&name, "reading a loss", e))?;
            out.push((k.trim_start_matches("lost:").to_string(), v));
        }
        Ok(out)
    }

    fn put_document(&mut self, table: Table, doc: &Document) -> Result<u64, StorageError> {
        let name = self.name();
        let t = table.name();
        if doc.id == 0 {
            self.conn
                .execute(&format!("INSERT INTO {t} (subject, record) VALUES (?1, ?2)"), params![doc.subject, doc.json])
                .map_err(|e| db(&name, "inserting a document", e))?;
            Ok(self.conn.last_insert_rowid() as u64)
        } else {
            self.conn
                .execute(
                    &format!("INSERT INTO {t} (id, subject, record) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET subject = ?2, record = ?3"),
                    params![doc.id as i64, doc.subject, doc.json],
                )
                .map_err(|e| db(&name, "replacing a document", e))?;
            Ok(doc.id)
        }
    }

    fn document(&self, table: Table, id: u64) -> Result<Option<Document>, StorageError> {
        let name = self.name();
        let t = table.name();
        self.conn
            .query_row(&format!("SELECT id, subject, record FROM {t} WHERE id = ?1"), params![id as i64], |r| {
                Ok(Document { id: r.get::<_, i64>(0)? as u64, subject: r.get(1)?, json: r.get(2)? })
            })
            .optional()
            .map_err(|e| db(&name, "reading a document", e))
    }

    fn documents(&self, table: Table, subject: Option<&str>) -> Result<Vec<Document>, StorageError> {
        let name = self.name();
        let t = table.name();
        let mut q = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, subject, record FROM {t} WHERE ?1 IS NULL OR subject = ?1 ORDER BY id"
            ))
            .map_err(|e| db(&name, "preparing", e))?;
        let rows = q
            .query_map(params![subject], |r| {
                Ok(Document { id: r.get::<_, i64>(0)? as u64, subject: r.get(1)?, json: r.get(2)? })
            })
            .map_err(|e| db(&name, "reading documents", e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| db(&name, "reading a document", e))
    }
}

#[cfg(test)]
mod tests {
    use bulkhead_graph::{EdgeKey, EdgeStats, Entity};
    use bulkhead_model::{Direction, Verdict};

    use super::*;

    fn flow(t: i64) -> FlowRecord {
        let w = |n: &str| Entity::Workload { namespace: "x".into(), kind: "Deployment".into(), name: n.into() };
        FlowRecord {
            time_ns: t,
            observation: Direction::Egress,
            node: "n1".into(),
            src: w("a"),
            dst: w("b"),
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 40000,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: 80,
            protocol: 6,
            service: None,
            verdict: Verdict::Forwarded,
            bytes: 10,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
            rule: None,
            drop_reason: None,
            packets: 0,
        }
    }

    #[test]
    fn flows_survive_a_reopen_and_the_cap_evicts_the_oldest_counted() {
        let dir = std::env::temp_dir().join(format!("bulkhead-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flows.db");
        {
            let mut s = SqliteStorage::open(&path, 5).unwrap();
            let r = s.append_flows(&(0..4).map(flow).collect::<Vec<_>>()).unwrap();
            assert_eq!(r, Appended { stored: 4, evicted: 0 });
            let r = s.append_flows(&(4..7).map(flow).collect::<Vec<_>>()).unwrap();
            assert_eq!(r.evicted, 2);
        }
        let s = SqliteStorage::open(&path, 5).unwrap();
        let window = |from, to| FlowFilter { since_ns: Some(from), until_ns: Some(to), ..Default::default() };
        let mut kept: Vec<i64> = s.query(&window(0, 100), None, 100).unwrap().iter().map(|(_, f)| f.time_ns).collect();
        kept.reverse();
        assert_eq!(kept, vec![2, 3, 4, 5, 6], "the oldest went first, and a reopen keeps the rest");
        assert_eq!(s.evicted().unwrap(), 2, "evictions are counted, never silent");
        assert_eq!(s.query(&window(3, 5), None, 100).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Records of every shape the filters distinguish.
    fn varied(i: i64) -> FlowRecord {
        let w = |ns: &str, name: &str| Entity::Workload {
            namespace: ns.into(),
            kind: "Deployment".into(),
            name: name.into(),
        };
        let mut f = flow(i);
        let names = ["web", "api", "db"];
        let nss = ["shop", "bank", "ops"];
        f.src = w(nss[(i % 3) as usize], names[(i % 2) as usize]);
        f.src_pod = format!("{}/{}-{}", nss[(i % 3) as usize], names[(i % 2) as usize], i % 4);
        f.dst = match i % 5 {
            0 => Entity::World { cidr: "192.0.2.0/24".parse().unwrap() },
            1 => Entity::Service { namespace: "bank".into(), name: "ledger".into() },
            _ => w(nss[((i + 1) % 3) as usize], names[((i / 2) % 3) as usize]),
        };
        if matches!(f.dst, Entity::Workload { .. }) {
            f.dst_pod = format!("{}/{}-0", f.dst.namespace().unwrap_or(""), names[((i / 2) % 3) as usize]);
        }
        f.verdict = [Verdict::Forwarded, Verdict::Dropped, Verdict::Audit][(i % 3) as usize];
        f.dst_port = [80, 5432, 53][(i % 3) as usize];
        f.protocol = if i % 7 == 0 { 17 } else { 6 };
        f.rule = (i % 4 == 0).then(|| "shop/p#ingress[0]".into());
        f.observation = if i % 2 == 0 { Direction::Egress } else { Direction::Ingress };
        f
    }

    #[test]
    fn sql_filters_answer_exactly_what_the_filter_means_and_pages_cover_everything_once() {
        use bulkhead_api::v1::flows::Side;
        let dir = std::env::temp_dir().join(format!("bulkhead-filters-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = SqliteStorage::open(&dir.join("flows.db"), 10_000).unwrap();
        let all: Vec<FlowRecord> = (0..300).map(varied).collect();
        s.append_flows(&all).unwrap();
        let named = |t: &str| crate::observation::storage::Named::parse(t);
        let mut filters = vec![FlowFilter::default()];
        for side in [Side::Either, Side::Source, Side::Destination] {
            filters.push(FlowFilter { namespace: Some("bank".into()), side, ..Default::default() });
            filters.push(FlowFilter { pod: named("web-1"), side, ..Default::default() });
            filters.push(FlowFilter { pod: named("shop/web-2"), side, ..Default::default() });
            filters.push(FlowFilter { workload: named("api"), side, ..Default::default() });
            filters.push(FlowFilter { workload: named("ops/db"), side, ..Default::default() });
        }
        filters.push(FlowFilter { verdict: Some(Verdict::Dropped), port: Some(5432), ..Default::default() });
        filters.push(FlowFilter { protocol: Some(17), rule: Some("shop/p#ingress[0]".into()), ..Default::default() });
        filters.push(FlowFilter {
            since_ns: Some(50),
            until_ns: Some(120),
            scope: Some(vec!["ops".into()]),
            ..Default::default()
        });
        filters.push(FlowFilter {
            scope: Some(vec!["bank".into(), "shop".into()]),
            verdict: Some(Verdict::Audit),
            ..Default::default()
        });
        filters.push(FlowFilter { scope: Some(Vec::new()), ..Default::default() });
        for f in &filters {
            let want: Vec<i64> = all.iter().filter(|r| f.matches(r)).map(|r| r.time_ns).rev().collect();
            // Read in pages of 7: together they are exactly the matching flows, newest first.
            let (mut got, mut before) = (Vec::new(), None);
            loop {
                let page = s.query(f, before, 7).unwrap();
                if page.is_empty() {
                    break;
                }
                before = page.last().map(|(id, _)| *id);
                got.extend(page.into_iter().map(|(_, r)| r.time_ns));
            }
            assert_eq!(got, want, "{f:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flows_of_the_first_schema_are_moved_not_lost() {
        let dir = std::env::temp_dir().join(format!("bulkhead-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flows.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE flows (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ns INTEGER NOT NULL, record TEXT NOT NULL);").unwrap();
            for i in 0..3 {
                c.execute("INSERT INTO flows (time_ns, record) VALUES (?1, ?2)", params![i, json(&flow(i))]).unwrap();
            }
        }
        let s = SqliteStorage::open(&path, 10).unwrap();
        let got: Vec<i64> = s.query(&FlowFilter::default(), None, 10).unwrap().iter().map(|(_, f)| f.time_ns).collect();
        assert_eq!(got, vec![2, 1, 0]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn edge_buckets_add_up() {
        let dir = std::env::temp_dir().join(format!("bulkhead-edges-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = SqliteStorage::open(&dir.join("flows.db"), 100).unwrap();
        let f = flow(0);
        let key = EdgeKey { protocol: 6, port: 80, service: None };
        let stats = |n: u64, first: i64, last: i64| EdgeStats {
            connections: n,
            forwarded: n,
            bytes: 10 * n,
            first_seen_ns: first,
            last_seen_ns: last,
            ..EdgeStats::default()
        };
        let b = |n, first, last| EdgeBucket {
            bucket_ns: 0,
            src: f.src.clone(),
            dst: f.dst.clone(),
            key: key.clone(),
            stats: stats(n, first, last),
        };
        s.add_edges(&[b(2, 5, 9)]).unwrap();
        s.add_edges(&[b(3, 1, 7)]).unwrap();
        let got = s.edges(0, 1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].stats, stats(5, 1, 9));
        assert!(s.edges(1, 10).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
