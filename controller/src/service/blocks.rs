//! The block list. A block is cluster-wide (every node drops the prefix
//! both ways), so only a responder whose scope is the whole cluster may
//! make or lift one; tenants may read the list, which is where their
//! traffic may be going. Each block is saved before it is pushed, and
//! answered once saved and pushed; the agents enforce it when they apply
//! the next desired state, within the sync's usual latency.

use bulkhead_api::audit::Event;
use bulkhead_api::v1::Page;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::blocks::{Block, BlockQuery, BlockRequest};
use bulkhead_api::v1::quarantine::ReleaseQuery;

use super::{Op, Service, ServiceError, cursor_in, cursor_out, now_ns, page_size};
use crate::auth::Principal;
use crate::policy::blocks::parse_cidr;

/// The longest reason kept; longer is an error, not truncated.
const MAX_REASON: usize = 1024;

fn reason(r: &str) -> Result<String, ServiceError> {
    match r.trim() {
        "" => Err(ServiceError::bad("reason", "say why (it is recorded and audited)")),
        r if r.len() > MAX_REASON => Err(ServiceError::bad("reason", format!("longer than {MAX_REASON} bytes"))),
        r => Ok(r.to_string()),
    }
}

impl Service {
    /// Refuses a tenant: a block reaches every namespace.
    fn cluster_wide(&self, who: &Principal, op: Op, target: &str) -> Result<(), ServiceError> {
        if !who.scope.is_tenant() {
            return Ok(());
        }
        let why = format!(
            "{} may not {}: a block applies to every namespace, and their scope is a tenant's",
            who.user,
            op.describe()
        );
        Err(self.refuse(who, op, target, who.scope.namespaces().unwrap_or_default(), why))
    }

    /// Blocks an IP or CIDR on every node, both ways, optionally for a span.
    pub async fn block(&self, who: &Principal, req: BlockRequest) -> Result<Block, ServiceError> {
        let target = format!("block {}", req.cidr.trim());
        self.authorize(who, Op::Block, &target)?;
        self.cluster_wide(who, Op::Block, &target)?;
        let net = parse_cidr(&req.cidr).map_err(|m| ServiceError::bad("cidr", m))?;
        let why = reason(&req.reason)?;
        let expires_ns = req
            .expires_in
            .as_deref()
            .map(|s| bulkhead_api::v1::time::span(s).map(|d| now_ns().saturating_add(d)))
            .transpose()
            .map_err(|m| ServiceError::bad("expires_in", m))?;
        let by = who.clone();
        let reason_for_state = why.clone();
        let (record, made) = self.ctx.with_policy(move |s| s.block(net, &reason_for_state, &by, expires_ns)).await?;
        if made {
            let until = record.expires_ns.map_or_else(|| "until lifted".to_string(), |t| format!("until {t} ns"));
            let event = Event {
                action: Op::Block.name(),
                target: &format!("block {} ({})", record.id, record.net),
                detail: &format!("{why}; {until}"),
                before: None,
                after: Some("active".into()),
                ..Default::default()
            };
            self.audited(who, Outcome::Ok, event)?;
            self.ctx.metrics.record_block("block");
        }
        Ok(record.document())
    }

    /// Lifts a block on every node.
    pub async fn unblock(&self, who: &Principal, id: u64, q: ReleaseQuery) -> Result<Block, ServiceError> {
        let target = format!("block {id}");
        self.authorize(who, Op::Unblock, &target)?;
        self.cluster_wide(who, Op::Unblock, &target)?;
        let why = reason(&q.reason)?;
        let by = who.clone();
        let reason_for_state = why.clone();
        let record = self.ctx.with_policy(move |s| s.unblock(id, &reason_for_state, &by)).await?;
        let event = Event {
            action: Op::Unblock.name(),
            target: &format!("block {id} ({})", record.net),
            detail: &why,
            before: Some("active".into()),
            after: Some("lifted".into()),
            ..Default::default()
        };
        self.audited(who, Outcome::Ok, event)?;
        self.ctx.metrics.record_block("unblock");
        Ok(record.document())
    }

    /// The block list, newest first, a page at a time.
    pub async fn blocks(&self, who: &Principal, q: BlockQuery) -> Result<Page<Block>, ServiceError> {
        self.authorize(who, Op::Blocks, "blocks")?;
        let limit = page_size(q.limit)?;
        let before = cursor_in("blocks", q.cursor.as_deref())?;
        let mut items = self
            .ctx
            .with_policy(move |s| {
                Ok(s.blocks()
                    .all()
                    .filter(|r| q.state.is_none_or(|st| r.state == st))
                    .filter(|r| before.is_none_or(|b| r.id < b))
                    .take(limit + 1)
                    .map(|r| r.document())
                    .collect::<Vec<_>>())
            })
            .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(|b| cursor_out("blocks", b.id)) } else { None };
        Ok(Page { items, next_cursor })
    }
}
