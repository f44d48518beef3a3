//! Raw flows in SQLite: one row per observation with the columns queries
//! filter on (namespaces, names, pods, verdict, protocol, port, rule) beside
//! the record itself, so a filtered page reads only the rows it returns.

use bulkhead_api::v1::flows::Side;
use bulkhead_graph::{Entity, FlowRecord};
use bulkhead_model::{Direction, Verdict};
use rusqlite::types::ToSql;
use rusqlite::{Connection, Transaction, params};

use super::{db, decode, json};
use crate::observation::storage::{FlowFilter, PodEdge, StorageError};

/// The table and its indexes.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flow_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time_ns INTEGER NOT NULL, observation INTEGER NOT NULL,
  src_kind INTEGER NOT NULL, src_ns TEXT, src_name TEXT, src_pod TEXT NOT NULL, src_entity TEXT NOT NULL,
  dst_kind INTEGER NOT NULL, dst_ns TEXT, dst_name TEXT, dst_pod TEXT NOT NULL, dst_entity TEXT NOT NULL,
  verdict INTEGER NOT NULL, protocol INTEGER NOT NULL, dst_port INTEGER NOT NULL, rule TEXT, bytes INTEGER NOT NULL,
  record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS flow_log_time ON flow_log (time_ns);
CREATE INDEX IF NOT EXISTS flow_log_src_ns ON flow_log (src_ns, id);
CREATE INDEX IF NOT EXISTS flow_log_dst_ns ON flow_log (dst_ns, id);
CREATE INDEX IF NOT EXISTS flow_log_src_pod ON flow_log (src_pod, id);
CREATE INDEX IF NOT EXISTS flow_log_dst_pod ON flow_log (dst_pod, id);
";

const WORKLOAD: i64 = 0;
const SERVICE: i64 = 1;

fn kind(e: &Entity) -> i64 {
    match e {
        Entity::Workload { .. } => WORKLOAD,
        Entity::Service { .. } => SERVICE,
        Entity::World { .. } => 2,
        Entity::Host { .. } => 3,
    }
}

fn name(e: &Entity) -> Option<&str> {
    match e {
        Entity::Workload { name, .. } | Entity::Service { name, .. } => Some(name),
        Entity::Host { node } => Some(node),
        Entity::World { .. } => None,
    }
}

/// Inserts the flows of one commit.
pub fn insert(tx: &Transaction<'_>, path: &str, flows: &[FlowRecord]) -> Result<(), StorageError> {
    let mut ins = tx
        .prepare_cached(
            "INSERT INTO flow_log (time_ns, observation, src_kind, src_ns, src_name, src_pod, src_entity,
               dst_kind, dst_ns, dst_name, dst_pod, dst_entity, verdict, protocol, dst_port, rule, bytes, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )
        .map_err(|e| db(path, "preparing insert", e))?;
    for f in flows {
        ins.execute(params![
            f.time_ns,
            f.observation.code(),
            kind(&f.src),
            f.src.namespace(),
            name(&f.src),
            f.src_pod,
            json(&f.src),
            kind(&f.dst),
            f.dst.namespace(),
            name(&f.dst),
            f.dst_pod,
            json(&f.dst),
            f.verdict.code(),
            f.protocol,
            f.dst_port,
            f.rule.as_deref(),
            f.bytes as i64,
            json(f),
        ])
        .map_err(|e| db(path, "inserting a flow", e))?;
    }
    Ok(())
}

/// Number of stored flows: rows are a contiguous range of ids, since only
/// the oldest are ever deleted.
pub fn count(tx: &Transaction<'_>, path: &str) -> Result<u64, StorageError> {
    let n: Option<i64> = tx
        .query_row("SELECT MAX(id) - MIN(id) + 1 FROM flow_log", [], |r| r.get(0))
        .map_err(|e| db(path, "counting flows", e))?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Deletes the `n` oldest flows.
pub fn evict(tx: &Transaction<'_>, path: &str, n: u64) -> Result<(), StorageError> {
    tx.execute("DELETE FROM flow_log WHERE id < (SELECT MIN(id) FROM flow_log) + ?1", params![n as i64])
        .map_err(|e| db(path, "evicting the oldest flows", e))?;
    Ok(())
}

/// Which filter of a query names an end by an indexed column, so the query
/// can walk that index once per end instead of scanning every flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Namespace,
    Pod,
    Workload,
}

fn driver(f: &FlowFilter) -> Option<Driver> {
    if f.side != Side::Either {
        return None;
    }
    if f.namespace.is_some() {
        Some(Driver::Namespace)
    } else if f.pod.as_ref().is_some_and(|p| p.namespace.is_some()) {
        Some(Driver::Pod)
    } else if f.workload.as_ref().is_some_and(|w| w.namespace.is_some()) {
        Some(Driver::Workload)
    } else {
        None
    }
}

/// SQL conditions for `f`, their parameters appended to `args`. With
/// `driven` (an end and the filter that drives), that filter applies to
/// that end alone; every other filter keeps its meaning.
fn conditions(f: &FlowFilter, args: &mut Vec<Box<dyn ToSql>>, driven: Option<(&str, Driver)>) -> Vec<String> {
    let mut sql: Vec<String> = Vec::new();
    let arg = |v: Box<dyn ToSql>, args: &mut Vec<Box<dyn ToSql>>| {
        args.push(v);
        format!("?{}", args.len())
    };
    let all_ends: &[&str] = match f.side {
        Side::Either => &["src", "dst"],
        Side::Source => &["src"],
        Side::Destination => &["dst"],
    };
    let ends_of = |d: Driver| -> Vec<&str> {
        match driven {
            Some((end, by)) if by == d => vec![end],
            _ => all_ends.to_vec(),
        }
    };
    let any_end = |ends: &[&str], per_end: &dyn Fn(&str) -> String| {
        let parts: Vec<String> = ends.iter().map(|e| per_end(e)).collect();
        format!("({})", parts.join(" OR "))
    };
    if let Some(ns) = &f.namespace {
        let p = arg(Box::new(ns.clone()), args);
        sql.push(any_end(&ends_of(Driver::Namespace), &|e| format!("{e}_ns = {p}")));
    }
    if let Some(pod) = &f.pod {
        // Names were validated (no SQL pattern characters can reach LIKE).
        let cond = match &pod.namespace {
            Some(ns) => {
                let p = arg(Box::new(format!("{ns}/{}", pod.name)), args);
                any_end(&ends_of(Driver::Pod), &|e| format!("{e}_pod = {p}"))
            }
            None => {
                let p = arg(Box::new(format!("%/{}", pod.name)), args);
                any_end(all_ends, &|e| format!("{e}_pod LIKE {p}"))
            }
        };
        sql.push(cond);
    }
    if let Some(w) = &f.workload {
        let n = arg(Box::new(w.name.clone()), args);
        let cond = match &w.namespace {
            Some(ns) => {
                let p = arg(Box::new(ns.clone()), args);
                any_end(&ends_of(Driver::Workload), &|e| {
                    format!("({e}_ns = {p} AND {e}_kind = {WORKLOAD} AND {e}_name = {n})")
                })
            }
            None => any_end(all_ends, &|e| format!("({e}_kind = {WORKLOAD} AND {e}_name = {n})")),
        };
        sql.push(cond);
    }
    if let Some(v) = f.verdict {
        sql.push(format!("verdict = {}", arg(Box::new(v.code()), args)));
    }
    if let Some(p) = f.port {
        sql.push(format!("dst_port = {}", arg(Box::new(p), args)));
    }
    if let Some(p) = f.protocol {
        sql.push(format!("protocol = {}", arg(Box::new(p), args)));
    }
    if let Some(r) = &f.rule {
        sql.push(format!("rule = {}", arg(Box::new(r.clone()), args)));
    }
    if let Some(t) = f.since_ns {
        sql.push(format!("time_ns >= {}", arg(Box::new(t), args)));
    }
    if let Some(t) = f.until_ns {
        sql.push(format!("time_ns < {}", arg(Box::new(t), args)));
    }
    if let Some(scope) = &f.scope {
        let list: Vec<String> = scope.iter().map(|ns| arg(Box::new(ns.clone()), args)).collect();
        let list = if list.is_empty() { "NULL".to_string() } else { list.join(", ") };
        sql.push(format!("(src_ns IN ({list}) OR dst_ns IN ({list}))"));
    }
    sql
}

fn where_clause(sql: &[String]) -> String {
    if sql.is_empty() { String::new() } else { format!("WHERE {}", sql.join(" AND ")) }
}

/// Flows passing `f`, newest first: at most `limit` with an id below
/// `before` (all when `None`).
pub fn query(
    conn: &Connection,
    path: &str,
    f: &FlowFilter,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, FlowRecord)>, StorageError> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let page = |mut sql: Vec<String>, args: &mut Vec<Box<dyn ToSql>>| {
        if let Some(b) = before {
            args.push(Box::new(b as i64));
            sql.push(format!("id < ?{}", args.len()));
        }
        args.push(Box::new(limit as i64));
        format!("SELECT id, record FROM flow_log {} ORDER BY id DESC LIMIT ?{}", where_clause(&sql), args.len())
    };
    let text = match driver(f) {
        // Newest first along each end's index, then merged: reads about
        // `limit` rows per end, however many flows match.
        Some(d) => {
            let src = conditions(f, &mut args, Some(("src", d)));
            let src = page(src, &mut args);
            let dst = conditions(f, &mut args, Some(("dst", d)));
            let dst = page(dst, &mut args);
            args.push(Box::new(limit as i64));
            format!(
                "SELECT id, record FROM ({src}) UNION SELECT id, record FROM ({dst}) ORDER BY id DESC LIMIT ?{}",
                args.len()
            )
        }
        None => {
            let sql = conditions(f, &mut args, None);
            page(sql, &mut args)
        }
    };
    let mut q = conn.prepare_cached(&text).map_err(|e| db(path, "preparing a flow query", e))?;
    let params: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
    let rows = q
        .query_map(params.as_slice(), |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
        .map_err(|e| db(path, "querying flows", e))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, text) = row.map_err(|e| db(path, "reading a flow", e))?;
        out.push((id, decode(path, "flow", &text)?));
    }
    Ok(out)
}

/// Connections between pods passing `f`, each counted once: at the
/// destination's ingress, or at the source when the destination could not
/// see it (outside the cluster, or dropped at the source). A connection
/// whose destination pod's agent did not report it is not counted.
pub fn pod_edges(conn: &Connection, path: &str, f: &FlowFilter) -> Result<Vec<PodEdge>, StorageError> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut sql = conditions(f, &mut args, None);
    sql.push(format!(
        "(observation = {} OR dst_kind NOT IN ({WORKLOAD}, {SERVICE}) OR verdict = {})",
        Direction::Ingress.code(),
        Verdict::Dropped.code()
    ));
    let text = format!(
        "SELECT src_entity, src_pod, dst_entity, dst_pod, protocol, dst_port, verdict, COUNT(*), SUM(bytes), MIN(time_ns), MAX(time_ns)
         FROM flow_log {} GROUP BY src_entity, src_pod, dst_entity, dst_pod, protocol, dst_port, verdict",
        where_clause(&sql)
    );
    let mut q = conn.prepare(&text).map_err(|e| db(path, "preparing a pod graph query", e))?;
    let params: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
    type Row = (String, String, String, String, u8, u16, u8, i64, i64, i64, i64);
    let rows = q
        .query_map(params.as_slice(), |r| -> rusqlite::Result<Row> {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ))
        })
        .map_err(|e| db(path, "querying the pod graph", e))?;
    let mut out = Vec::new();
    for row in rows {
        let (src, src_pod, dst, dst_pod, protocol, port, verdict, n, bytes, first, last) =
            row.map_err(|e| db(path, "reading a pod edge", e))?;
        let verdict = Verdict::try_from(verdict).map_err(|e| StorageError::Decode {
            path: path.to_string(),
            what: "verdict",
            message: e.to_string(),
        })?;
        out.push(PodEdge {
            src: decode(path, "entity", &src)?,
            src_pod,
            dst: decode(path, "entity", &dst)?,
            dst_pod,
            protocol,
            port,
            verdict,
            connections: n as u64,
            bytes: bytes as u64,
            first_seen_ns: first,
            last_seen_ns: last,
        });
    }
    Ok(out)
}

/// Moves flows of the first schema (one JSON column) into `flow_log`, so
/// an upgrade loses none.
pub fn migrate(conn: &Connection, path: &str) -> Result<u64, StorageError> {
    let old: bool = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'flows'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| db(path, "looking for old flows", e))?
        > 0;
    if !old {
        return Ok(0);
    }
    let mut flows = Vec::new();
    {
        let mut q =
            conn.prepare("SELECT record FROM flows ORDER BY id").map_err(|e| db(path, "reading old flows", e))?;
        let rows = q.query_map([], |r| r.get::<_, String>(0)).map_err(|e| db(path, "reading old flows", e))?;
        for row in rows {
            let text = row.map_err(|e| db(path, "reading an old flow", e))?;
            flows.push(decode::<FlowRecord>(path, "flow", &text)?);
        }
    }
    let tx = conn.unchecked_transaction().map_err(|e| db(path, "starting the migration", e))?;
    insert(&tx, path, &flows)?;
    tx.execute("DROP TABLE flows", []).map_err(|e| db(path, "dropping old flows", e))?;
    tx.commit().map_err(|e| db(path, "committing the migration", e))?;
    Ok(flows.len() as u64)
}
