//! Quarantines and the audit log. Releasing takes the quarantine's id in the
//! URL path over HTTP and in the message over gRPC, so it converts as
//! `(id, body)`.

use super::enums::{outcome, quarantine_state, role, target_kind};
use super::{ConvertError, list, optional_enum, to_pb};
use crate::controller::v1 as pb;
use crate::v1::audit::{AuditEntry, AuditQuery};
use crate::v1::quarantine::{Quarantine, QuarantineQuery, QuarantineRequest, QuarantinedPod, ReleaseQuery};

impl From<QuarantineRequest> for pb::QuarantineRequest {
    fn from(r: QuarantineRequest) -> Self {
        Self { pod: r.pod, workload: r.workload, reason: r.reason }
    }
}

impl TryFrom<pb::QuarantineRequest> for QuarantineRequest {
    type Error = ConvertError;
    fn try_from(r: pb::QuarantineRequest) -> Result<Self, ConvertError> {
        Ok(Self { pod: r.pod, workload: r.workload, reason: r.reason })
    }
}

/// Release quarantine `id`.
impl From<(u64, ReleaseQuery)> for pb::ReleaseRequest {
    fn from((id, q): (u64, ReleaseQuery)) -> Self {
        Self { id, reason: q.reason }
    }
}

/// The quarantine's id and the release's body.
impl TryFrom<pb::ReleaseRequest> for (u64, ReleaseQuery) {
    type Error = ConvertError;
    fn try_from(r: pb::ReleaseRequest) -> Result<Self, ConvertError> {
        Ok((r.id, ReleaseQuery { reason: r.reason }))
    }
}

impl From<QuarantinedPod> for pb::QuarantinedPod {
    fn from(p: QuarantinedPod) -> Self {
        Self {
            pod: p.pod,
            node: p.node,
            endpoint_id: p.endpoint_id,
            enforced: p.enforced,
            agent_micros: p.agent_micros,
            error: p.error,
        }
    }
}

impl TryFrom<pb::QuarantinedPod> for QuarantinedPod {
    type Error = ConvertError;
    fn try_from(p: pb::QuarantinedPod) -> Result<Self, ConvertError> {
        Ok(Self {
            pod: p.pod,
            node: p.node,
            endpoint_id: p.endpoint_id,
            enforced: p.enforced,
            agent_micros: p.agent_micros,
            error: p.error,
        })
    }
}

impl From<Quarantine> for pb::Quarantine {
    fn from(q: Quarantine) -> Self {
        Self {
            id: q.id,
            kind: pb::TargetKind::from(q.kind) as i32,
            namespace: q.namespace,
            name: q.name,
            state: pb::QuarantineState::from(q.state) as i32,
            reason: q.reason,
            created_by: q.created_by,
            created_ns: q.created_ns,
            object: q.object,
            released_by: q.released_by,
            ended_ns: q.ended_ns,
            end_reason: q.end_reason,
            pods: to_pb(q.pods),
            enforced_micros: q.enforced_micros,
        }
    }
}

impl TryFrom<pb::Quarantine> for Quarantine {
    type Error = ConvertError;
    fn try_from(q: pb::Quarantine) -> Result<Self, ConvertError> {
        Ok(Self {
            id: q.id,
            kind: target_kind(q.kind, "kind")?,
            namespace: q.namespace,
            name: q.name,
            state: quarantine_state(q.state, "state")?,
            reason: q.reason,
            created_by: q.created_by,
            created_ns: q.created_ns,
            object: q.object,
            released_by: q.released_by,
            ended_ns: q.ended_ns,
            end_reason: q.end_reason,
            pods: list(q.pods, "pods")?,
            enforced_micros: q.enforced_micros,
        })
    }
}

impl From<QuarantineQuery> for pb::QuarantineQuery {
    fn from(q: QuarantineQuery) -> Self {
        Self {
            namespace: q.namespace,
            state: q.state.map(|s| pb::QuarantineState::from(s) as i32),
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

impl TryFrom<pb::QuarantineQuery> for QuarantineQuery {
    type Error = ConvertError;
    fn try_from(q: pb::QuarantineQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            namespace: q.namespace,
            state: optional_enum(q.state, "state", quarantine_state)?,
            limit: q.limit,
            cursor: q.cursor,
        })
    }
}

page!(pb::QuarantinePage, Quarantine);

impl From<AuditEntry> for pb::AuditEntry {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            time_unix_ms: e.time_unix_ms,
            user: e.user,
            role: e.role.map(|r| pb::Role::from(r) as i32),
            source: e.source,
            action: e.action,
            target: e.target,
            namespaces: e.namespaces,
            outcome: pb::Outcome::from(e.outcome) as i32,
            detail: e.detail,
            before: e.before,
            after: e.after,
        }
    }
}

impl TryFrom<pb::AuditEntry> for AuditEntry {
    type Error = ConvertError;
    fn try_from(e: pb::AuditEntry) -> Result<Self, ConvertError> {
        Ok(Self {
            id: e.id,
            time_unix_ms: e.time_unix_ms,
            user: e.user,
            role: optional_enum(e.role, "role", role)?,
            source: e.source,
            action: e.action,
            target: e.target,
            namespaces: e.namespaces,
            outcome: outcome(e.outcome, "outcome")?,
            detail: e.detail,
            before: e.before,
            after: e.after,
        })
    }
}

impl From<AuditQuery> for pb::AuditQuery {
    fn from(q: AuditQuery) -> Self {
        Self {
            user: q.user,
            action: q.action,
            outcome: q.outcome.map(|o| pb::Outcome::from(o) as i32),
            namespace: q.namespace,
            since: q.since,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

impl TryFrom<pb::AuditQuery> for AuditQuery {
    type Error = ConvertError;
    fn try_from(q: pb::AuditQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            user: q.user,
            action: q.action,
            outcome: optional_enum(q.outcome, "outcome", outcome)?,
            namespace: q.namespace,
            since: q.since,
            limit: q.limit,
            cursor: q.cursor,
        })
    }
}

page!(pb::AuditPage, AuditEntry);

#[cfg(test)]
mod tests {
    use bulkhead_model::Role;

    use super::*;
    use crate::v1::Page;
    use crate::v1::audit::Outcome;
    use crate::v1::quarantine::{QuarantineState, TargetKind};

    #[test]
    fn quarantines_round_trip() -> Result<(), ConvertError> {
        let active = Quarantine {
            id: 7,
            kind: TargetKind::Workload,
            namespace: "shop".into(),
            name: "web".into(),
            state: QuarantineState::Active,
            reason: "incident 42".into(),
            created_by: "alice".into(),
            created_ns: 1,
            object: Some("shop/q-web".into()),
            released_by: None,
            ended_ns: None,
            end_reason: None,
            pods: vec![
                QuarantinedPod {
                    pod: "shop/web-1".into(),
                    node: "node-a".into(),
                    endpoint_id: 3,
                    enforced: true,
                    agent_micros: Some(85),
                    error: String::new(),
                },
                QuarantinedPod {
                    pod: "shop/web-2".into(),
                    node: "node-b".into(),
                    endpoint_id: 9,
                    enforced: false,
                    agent_micros: None,
                    error: "agent unreachable".into(),
                },
            ],
            enforced_micros: Some(900),
        };
        let released = Quarantine {
            kind: TargetKind::Pod,
            state: QuarantineState::Released,
            released_by: Some("bob".into()),
            ended_ns: Some(2),
            end_reason: Some("resolved".into()),
            pods: vec![],
            enforced_micros: None,
            ..active.clone()
        };
        let page = Page { items: vec![active, released], next_cursor: None };
        assert_eq!(Page::<Quarantine>::try_from(pb::QuarantinePage::from(page.clone()))?, page);

        let request = QuarantineRequest { pod: Some("shop/web-1".into()), workload: None, reason: "incident".into() };
        assert_eq!(QuarantineRequest::try_from(pb::QuarantineRequest::from(request.clone()))?, request);
        let release = (7, ReleaseQuery { reason: "resolved".into() });
        assert_eq!(<(u64, ReleaseQuery)>::try_from(pb::ReleaseRequest::from(release.clone()))?, release);
        let q = QuarantineQuery {
            namespace: Some("shop".into()),
            state: Some(QuarantineState::Ended),
            limit: Some(20),
            cursor: Some("7".into()),
        };
        assert_eq!(QuarantineQuery::try_from(pb::QuarantineQuery::from(q.clone()))?, q);
        Ok(())
    }

    #[test]
    fn audit_round_trips() -> Result<(), ConvertError> {
        let done = AuditEntry {
            id: 1,
            time_unix_ms: 1_700_000_000_000,
            user: "alice".into(),
            role: Some(Role::Admin),
            source: "unix uid 0 pid 42".into(),
            action: "apply".into(),
            target: "NetworkPolicy shop/web".into(),
            namespaces: vec!["shop".into()],
            outcome: Outcome::Ok,
            detail: "generation 9".into(),
            before: Some("old".into()),
            after: Some("new".into()),
        };
        let refused = AuditEntry {
            id: 2,
            role: None,
            namespaces: vec![],
            outcome: Outcome::Refused,
            before: None,
            after: None,
            ..done.clone()
        };
        let page = Page { items: vec![done, refused], next_cursor: Some("2".into()) };
        assert_eq!(Page::<AuditEntry>::try_from(pb::AuditPage::from(page.clone()))?, page);
        let q = AuditQuery {
            user: Some("alice".into()),
            action: Some("apply".into()),
            outcome: Some(Outcome::Failed),
            namespace: Some("shop".into()),
            since: Some("1h".into()),
            limit: Some(10),
            cursor: None,
        };
        assert_eq!(AuditQuery::try_from(pb::AuditQuery::from(q.clone()))?, q);
        assert_eq!(AuditQuery::try_from(pb::AuditQuery::from(AuditQuery::default()))?, AuditQuery::default());
        Ok(())
    }

    #[test]
    fn an_unset_outcome_is_refused() {
        let mut e = pb::AuditEntry::from(AuditEntry {
            id: 1,
            time_unix_ms: 0,
            user: "u".into(),
            role: None,
            source: "s".into(),
            action: "a".into(),
            target: "t".into(),
            namespaces: vec![],
            outcome: Outcome::Ok,
            detail: String::new(),
            before: None,
            after: None,
        });
        e.outcome = pb::Outcome::Unspecified as i32;
        let page = pb::AuditPage { items: vec![e], next_cursor: None };
        assert_eq!(Page::<AuditEntry>::try_from(page).err().map(|e| e.field), Some("items[0].outcome".to_string()));
    }
}
