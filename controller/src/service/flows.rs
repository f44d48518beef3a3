//! Stored flows, a page at a time, and the live flow stream. Both take the
//! same filters and the caller's scope; a tenant sees flows with at least
//! one end in its namespaces, the other end redacted to its namespace.

use std::sync::Arc;

use bulkhead_api::ring::SeqRing;
use bulkhead_api::v1::Page;
use bulkhead_api::v1::flows::{Flow, FlowQuery, Lost, StreamEvent};
use bulkhead_graph::FlowRecord;
use tokio::sync::watch;

use super::{Op, Service, ServiceError, cursor_in, cursor_out, page_size, time, view};
use crate::auth::{Principal, Scope};
use crate::observation::storage::{FlowFilter, Named};

/// The most flows one stream read sends at once.
const STREAM_BATCH: usize = 256;

/// The filters of `q` for `scope`, validated.
pub fn filter(q: &FlowQuery, scope: &Scope) -> Result<FlowFilter, ServiceError> {
    let named = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                Named::parse(s)
                    .ok_or_else(|| ServiceError::bad(field, format!("{s:?} is not \"namespace/name\" or a name")))
            })
            .transpose()
    };
    if let Some(ns) = &q.namespace
        && !bulkhead_policy::quarantine::valid_name(ns)
    {
        return Err(ServiceError::bad("namespace", format!("{ns:?} is not a namespace name")));
    }
    let protocol = q
        .protocol
        .as_deref()
        .map(|p| {
            bulkhead_model::proto::parse(p).ok_or_else(|| {
                ServiceError::bad("protocol", format!("{p:?}: expected TCP, UDP, SCTP, ICMP, ICMPv6 or a number"))
            })
        })
        .transpose()?;
    let since_ns = time("since", q.since.as_deref())?;
    let until_ns = time("until", q.until.as_deref())?;
    if let (Some(a), Some(b)) = (since_ns, until_ns)
        && a >= b
    {
        return Err(ServiceError::bad("until", "must be after since"));
    }
    Ok(FlowFilter {
        namespace: q.namespace.clone(),
        pod: named("pod", &q.pod)?,
        workload: named("workload", &q.workload)?,
        side: q.side.unwrap_or_default(),
        verdict: q.verdict,
        port: q.port,
        protocol,
        rule: q.rule.clone(),
        since_ns,
        until_ns,
        scope: scope.namespaces(),
    })
}

/// A live reader of the flow stream: filtered, redacted, and told when it
/// falls behind.
#[derive(Debug)]
pub struct FlowSubscription {
    ring: Arc<SeqRing<FlowRecord>>,
    watch: watch::Receiver<u64>,
    filter: FlowFilter,
    scope: Scope,
    cursor: u64,
    lost_total: u64,
    epoch: u64,
}

impl FlowSubscription {
    /// The next events: flows after the cursor that pass the filter, and a
    /// `Lost` event first when flows left the buffer before this reader got
    /// them. Waits until there is something to send.
    pub async fn next(&mut self) -> Vec<StreamEvent> {
        loop {
            let read = self.ring.read_after(self.cursor, STREAM_BATCH);
            let mut out = Vec::new();
            if read.skipped > 0 {
                self.lost_total += read.skipped;
                out.push(StreamEvent::Lost(Lost {
                    lost: read.skipped,
                    total: self.lost_total,
                    resumed_at: read.last_seq + 1 - read.items.len() as u64,
                }));
            }
            let first = read.last_seq + 1 - read.items.len() as u64;
            for (i, f) in read.items.iter().enumerate() {
                if self.filter.matches(f) {
                    out.push(StreamEvent::Flow(Box::new(view::flow(&self.scope, first + i as u64, f))));
                }
            }
            self.cursor = read.last_seq;
            if !out.is_empty() {
                return out;
            }
            if read.items.is_empty() && self.watch.changed().await.is_err() {
                return out;
            }
        }
    }

    /// The event id of a flow with sequence number `seq`: "epoch-seq", so a
    /// resumed stream knows whether the numbers are still this run's.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }
}

impl Service {
    /// Stored flows passing `q`, newest first, a page at a time.
    pub async fn flows(&self, who: &Principal, q: FlowQuery) -> Result<Page<Flow>, ServiceError> {
        self.authorize(who, Op::Flows, "flows")?;
        let f = filter(&q, &who.scope)?;
        let limit = page_size(q.limit)?;
        let before = cursor_in("flows", q.cursor.as_deref())?;
        let rows = self.ctx.with_observation(move |p| Ok(p.query_flows(&f, before, limit + 1)?)).await?;
        let more = rows.len() > limit;
        let items: Vec<Flow> = rows.iter().take(limit).map(|(id, r)| view::flow(&who.scope, *id, r)).collect();
        let next_cursor = if more { items.last().map(|f| cursor_out("flows", f.id)) } else { None };
        Ok(Page { items, next_cursor })
    }

    /// A live reader of flows passing `q`, from the flow after `q.cursor`
    /// (a previous event's id), or from now.
    pub async fn subscribe(&self, who: &Principal, q: FlowQuery) -> Result<FlowSubscription, ServiceError> {
        self.authorize(who, Op::StreamFlows, "flows")?;
        let mut f = filter(&q, &who.scope)?;
        // Times bound stored flows; a live stream starts now.
        (f.since_ns, f.until_ns) = (None, None);
        let ring = self.ctx.stream.clone();
        let cursor = match q.cursor.as_deref() {
            None => ring.last_seq(),
            Some(c) => {
                let bad = || ServiceError::bad("cursor", format!("{c:?} is not an event id of this stream"));
                let (epoch, seq) = c.split_once('-').ok_or_else(bad)?;
                let (epoch, seq): (u64, u64) = (epoch.parse().map_err(|_| bad())?, seq.parse().map_err(|_| bad())?);
                // Another controller run numbered its own flows: start from the oldest kept.
                if epoch == self.ctx.stream_epoch { seq } else { ring.first_seq().saturating_sub(1) }
            }
        };
        let watch = ring.watch();
        Ok(FlowSubscription {
            ring,
            watch,
            filter: f,
            scope: who.scope.clone(),
            cursor,
            lost_total: 0,
            epoch: self.ctx.stream_epoch,
        })
    }
}
