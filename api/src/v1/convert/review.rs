//! Suggestions and their review, and the export of suggested policies.
//! Approve, reject and apply take the suggestion's id in the URL path over
//! HTTP and in the message over gRPC, so they convert as `(id, body)`.

use super::enums::{direction, mode, review_status};
use super::{ConvertError, list, optional_enum, required, to_pb};
use crate::controller::v1 as pb;
use crate::flow::v1 as flow_pb;
use crate::v1::review::{
    ApplyRequest, DecisionRequest, ExportQuery, PolicyList, ReviewAction, ReviewDetail, ReviewQuery, ReviewRecord,
    RuleEvidence, SuggestRequest, WhatIf, WouldDrop,
};

impl From<RuleEvidence> for pb::RuleEvidence {
    fn from(r: RuleEvidence) -> Self {
        Self {
            side: flow_pb::Direction::from(r.side) as i32,
            index: r.index,
            peers: r.peers,
            ports: r.ports,
            connections: r.connections,
            first_seen_ns: r.first_seen_ns,
            last_seen_ns: r.last_seen_ns,
            services: r.services,
        }
    }
}

impl TryFrom<pb::RuleEvidence> for RuleEvidence {
    type Error = ConvertError;
    fn try_from(r: pb::RuleEvidence) -> Result<Self, ConvertError> {
        Ok(Self {
            side: direction(r.side, "side")?,
            index: r.index,
            peers: r.peers,
            ports: r.ports,
            connections: r.connections,
            first_seen_ns: r.first_seen_ns,
            last_seen_ns: r.last_seen_ns,
            services: r.services,
        })
    }
}

impl From<ReviewRecord> for pb::ReviewRecord {
    fn from(r: ReviewRecord) -> Self {
        Self {
            id: r.id,
            status: pb::ReviewStatus::from(r.status) as i32,
            workload: Some(r.workload.into()),
            stable: r.stable,
            created_ns: r.created_ns,
            updated_ns: r.updated_ns,
            audit_since_ns: r.audit_since_ns,
            enforced_since_ns: r.enforced_since_ns,
            policy: Some(r.policy.into()),
            rules: to_pb(r.rules),
            warnings: r.warnings,
        }
    }
}

impl TryFrom<pb::ReviewRecord> for ReviewRecord {
    type Error = ConvertError;
    fn try_from(r: pb::ReviewRecord) -> Result<Self, ConvertError> {
        Ok(Self {
            id: r.id,
            status: review_status(r.status, "status")?,
            workload: required(r.workload, "workload")?,
            stable: r.stable,
            created_ns: r.created_ns,
            updated_ns: r.updated_ns,
            audit_since_ns: r.audit_since_ns,
            enforced_since_ns: r.enforced_since_ns,
            policy: required(r.policy, "policy")?,
            rules: list(r.rules, "rules")?,
            warnings: r.warnings,
        })
    }
}

impl From<ReviewAction> for pb::ReviewAction {
    fn from(a: ReviewAction) -> Self {
        Self { action: a.action, actor: a.actor, time_ns: a.time_ns, reason: a.reason }
    }
}

impl TryFrom<pb::ReviewAction> for ReviewAction {
    type Error = ConvertError;
    fn try_from(a: pb::ReviewAction) -> Result<Self, ConvertError> {
        Ok(Self { action: a.action, actor: a.actor, time_ns: a.time_ns, reason: a.reason })
    }
}

impl From<WouldDrop> for pb::WouldDrop {
    fn from(w: WouldDrop) -> Self {
        Self { flow: Some(w.flow.into()), egress: w.egress, ingress: w.ingress }
    }
}

impl TryFrom<pb::WouldDrop> for WouldDrop {
    type Error = ConvertError;
    fn try_from(w: pb::WouldDrop) -> Result<Self, ConvertError> {
        Ok(Self { flow: required(w.flow, "flow")?, egress: w.egress, ingress: w.ingress })
    }
}

impl From<WhatIf> for pb::WhatIf {
    fn from(w: WhatIf) -> Self {
        Self {
            replayed: w.replayed,
            not_replayable: w.not_replayable,
            already_dropped: w.already_dropped,
            would_drop: to_pb(w.would_drop),
        }
    }
}

impl TryFrom<pb::WhatIf> for WhatIf {
    type Error = ConvertError;
    fn try_from(w: pb::WhatIf) -> Result<Self, ConvertError> {
        Ok(Self {
            replayed: w.replayed,
            not_replayable: w.not_replayable,
            already_dropped: w.already_dropped,
            would_drop: list(w.would_drop, "would_drop")?,
        })
    }
}

impl From<ReviewDetail> for pb::ReviewDetail {
    fn from(d: ReviewDetail) -> Self {
        Self {
            record: Some(d.record.into()),
            yaml: d.yaml,
            diff: d.diff,
            also_in_force: d.also_in_force,
            what_if: Some(d.what_if.into()),
            would_drop: to_pb(d.would_drop),
            would_drop_total: d.would_drop_total,
            history: to_pb(d.history),
        }
    }
}

impl TryFrom<pb::ReviewDetail> for ReviewDetail {
    type Error = ConvertError;
    fn try_from(d: pb::ReviewDetail) -> Result<Self, ConvertError> {
        Ok(Self {
            record: required(d.record, "record")?,
            yaml: d.yaml,
            diff: d.diff,
            also_in_force: d.also_in_force,
            what_if: required(d.what_if, "what_if")?,
            would_drop: list(d.would_drop, "would_drop")?,
            would_drop_total: d.would_drop_total,
            history: list(d.history, "history")?,
        })
    }
}

impl From<ReviewQuery> for pb::ReviewQuery {
    fn from(q: ReviewQuery) -> Self {
        Self {
            namespace: q.namespace,
            status: q.status.map(|s| pb::ReviewStatus::from(s) as i32),
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

impl TryFrom<pb::ReviewQuery> for ReviewQuery {
    type Error = ConvertError;
    fn try_from(q: pb::ReviewQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            namespace: q.namespace,
            status: optional_enum(q.status, "status", review_status)?,
            limit: q.limit,
            cursor: q.cursor,
        })
    }
}

impl From<SuggestRequest> for pb::SuggestRequest {
    fn from(r: SuggestRequest) -> Self {
        Self { namespace: r.namespace }
    }
}

impl TryFrom<pb::SuggestRequest> for SuggestRequest {
    type Error = ConvertError;
    fn try_from(r: pb::SuggestRequest) -> Result<Self, ConvertError> {
        Ok(Self { namespace: r.namespace })
    }
}

/// Approve or reject suggestion `id`.
impl From<(u64, DecisionRequest)> for pb::ReviewDecision {
    fn from((id, d): (u64, DecisionRequest)) -> Self {
        Self { id, reason: d.reason }
    }
}

/// The suggestion's id and the decision's body.
impl TryFrom<pb::ReviewDecision> for (u64, DecisionRequest) {
    type Error = ConvertError;
    fn try_from(d: pb::ReviewDecision) -> Result<Self, ConvertError> {
        Ok((d.id, DecisionRequest { reason: d.reason }))
    }
}

/// Apply suggestion `id` in audit, or enforce it.
impl From<(u64, ApplyRequest)> for pb::ReviewApply {
    fn from((id, a): (u64, ApplyRequest)) -> Self {
        Self { id, mode: pb::Mode::from(a.mode) as i32, reason: a.reason }
    }
}

/// The suggestion's id and the request's body; the mode is required.
impl TryFrom<pb::ReviewApply> for (u64, ApplyRequest) {
    type Error = ConvertError;
    fn try_from(a: pb::ReviewApply) -> Result<Self, ConvertError> {
        Ok((a.id, ApplyRequest { mode: mode(a.mode, "mode")?, reason: a.reason }))
    }
}

impl From<ExportQuery> for pb::ExportQuery {
    fn from(q: ExportQuery) -> Self {
        Self { namespace: q.namespace, status: q.status.map(|s| pb::ReviewStatus::from(s) as i32) }
    }
}

impl TryFrom<pb::ExportQuery> for ExportQuery {
    type Error = ConvertError;
    fn try_from(q: pb::ExportQuery) -> Result<Self, ConvertError> {
        Ok(Self { namespace: q.namespace, status: optional_enum(q.status, "status", review_status)? })
    }
}

impl From<PolicyList> for pb::PolicyList {
    fn from(l: PolicyList) -> Self {
        Self { api_version: l.api_version, kind: l.kind, items: to_pb(l.items) }
    }
}

impl TryFrom<pb::PolicyList> for PolicyList {
    type Error = ConvertError;
    fn try_from(l: pb::PolicyList) -> Result<Self, ConvertError> {
        Ok(Self { api_version: l.api_version, kind: l.kind, items: list(l.items, "items")? })
    }
}

page!(pb::ReviewPage, ReviewRecord);
items!(pb::ReviewRecordList, ReviewRecord);

#[cfg(test)]
mod tests {
    use bulkhead_model::{Direction, Mode};

    use super::*;
    use crate::v1::Page;
    use crate::v1::convert::flows::tests::flow;
    use crate::v1::convert::k8s::tests::policy;
    use crate::v1::inventory::WorkloadRef;
    use crate::v1::review::ReviewStatus;

    fn record(id: u64, status: ReviewStatus) -> ReviewRecord {
        ReviewRecord {
            id,
            status,
            workload: WorkloadRef { namespace: "shop".into(), kind: "Deployment".into(), name: "web".into() },
            stable: true,
            created_ns: 1,
            updated_ns: 2,
            audit_since_ns: Some(3),
            enforced_since_ns: None,
            policy: policy(),
            rules: vec![RuleEvidence {
                side: Direction::Ingress,
                index: 0,
                peers: vec!["shop/Deployment/front".into()],
                ports: vec!["TCP/8080".into()],
                connections: 12,
                first_seen_ns: 4,
                last_seen_ns: 5,
                services: vec!["shop/web:80".into()],
            }],
            warnings: vec!["selector overlaps shop/other".into()],
        }
    }

    #[test]
    fn review_documents_round_trip() -> Result<(), ConvertError> {
        let detail = ReviewDetail {
            record: record(7, ReviewStatus::Audit),
            yaml: "kind: NetworkPolicy\n".into(),
            diff: vec!["+  - port: 8080".into(), "   podSelector:".into()],
            also_in_force: vec!["shop/default-deny".into()],
            what_if: WhatIf {
                replayed: 100,
                not_replayable: 2,
                already_dropped: 1,
                would_drop: vec![
                    WouldDrop { flow: flow(1), egress: Some("default deny".into()), ingress: None },
                    WouldDrop { flow: flow(2), egress: None, ingress: Some("shop/web".into()) },
                ],
            },
            would_drop: vec![flow(3)],
            would_drop_total: 1,
            history: vec![ReviewAction {
                action: "approve".into(),
                actor: "alice".into(),
                time_ns: 9,
                reason: "looks right".into(),
            }],
        };
        assert_eq!(ReviewDetail::try_from(pb::ReviewDetail::from(detail.clone()))?, detail);

        let page = Page { items: vec![record(1, ReviewStatus::Pending)], next_cursor: Some("1".into()) };
        assert_eq!(Page::<ReviewRecord>::try_from(pb::ReviewPage::from(page.clone()))?, page);
        let records = vec![record(2, ReviewStatus::Superseded), record(3, ReviewStatus::Enforced)];
        assert_eq!(Vec::<ReviewRecord>::try_from(pb::ReviewRecordList::from(records.clone()))?, records);
        let export = PolicyList::new(vec![policy(), policy()]);
        assert_eq!(PolicyList::try_from(pb::PolicyList::from(export.clone()))?, export);
        Ok(())
    }

    #[test]
    fn review_requests_round_trip() -> Result<(), ConvertError> {
        let q = ReviewQuery {
            namespace: Some("shop".into()),
            status: Some(ReviewStatus::Approved),
            limit: Some(5),
            cursor: None,
        };
        assert_eq!(ReviewQuery::try_from(pb::ReviewQuery::from(q.clone()))?, q);
        let s = SuggestRequest { namespace: Some("shop".into()) };
        assert_eq!(SuggestRequest::try_from(pb::SuggestRequest::from(s.clone()))?, s);
        let e = ExportQuery { namespace: None, status: Some(ReviewStatus::Rejected) };
        assert_eq!(ExportQuery::try_from(pb::ExportQuery::from(e.clone()))?, e);
        let d = (4, DecisionRequest { reason: "reviewed".into() });
        assert_eq!(<(u64, DecisionRequest)>::try_from(pb::ReviewDecision::from(d.clone()))?, d);
        let a = (5, ApplyRequest { mode: Mode::Enforce, reason: "a week in audit".into() });
        assert_eq!(<(u64, ApplyRequest)>::try_from(pb::ReviewApply::from(a.clone()))?, a);
        Ok(())
    }

    #[test]
    fn a_record_without_its_policy_is_refused() {
        let mut r = pb::ReviewRecord::from(record(1, ReviewStatus::Pending));
        r.policy = None;
        assert_eq!(ReviewRecord::try_from(r).err().map(|e| e.field), Some("policy".to_string()));
        let apply = pb::ReviewApply { id: 1, mode: pb::Mode::Unspecified as i32, reason: String::new() };
        assert_eq!(<(u64, ApplyRequest)>::try_from(apply).err().map(|e| e.field), Some("mode".to_string()));
    }
}
