//! The audit log, as the API lists it. A tenant sees the records about its
//! namespaces.

use bulkhead_api::audit::AuditFilter;
use bulkhead_api::v1::Page;
use bulkhead_api::v1::audit::{AuditEntry, AuditQuery};

use super::{Op, Service, ServiceError, cursor_in, cursor_out, page_size, time};
use crate::auth::Principal;

impl Service {
    /// Audit records, newest first, a page at a time.
    pub async fn audit(&self, who: &Principal, q: AuditQuery) -> Result<Page<AuditEntry>, ServiceError> {
        self.authorize(who, Op::Audit, "audit log")?;
        let limit = page_size(q.limit)?;
        let before = cursor_in("audit", q.cursor.as_deref())?;
        let since_ms = time("since", q.since.as_deref())?.map(|ns| (ns / 1_000_000).max(0) as u64);
        let namespaces = match (q.namespace, who.scope.namespaces()) {
            (Some(ns), Some(own)) if !own.contains(&ns) => {
                return Err(self.refuse(
                    who,
                    Op::Audit,
                    "audit log",
                    vec![ns.clone()],
                    format!("{} may not read the audit log of namespace {ns}", who.user),
                ));
            }
            (Some(ns), _) => Some(vec![ns]),
            (None, own) => own,
        };
        let filter = AuditFilter { user: q.user, action: q.action, outcome: q.outcome, namespaces, since_ms };
        let log = self.ctx.audit.clone();
        let (items, next) = tokio::task::spawn_blocking(move || log.read(&filter, before, limit))
            .await
            .map_err(|e| ServiceError::Internal(format!("reading the audit log: {e}")))?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Page { items, next_cursor: next.map(|n| cursor_out("audit", n)) })
    }
}
