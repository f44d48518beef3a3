//! Suggestions and their review. Generating, approving, rejecting and
//! staging in audit need the reviewer role, enforcing the admin role; a
//! tenant acts only on its namespaces' workloads. Decisions are audited
//! before they are stored, so none is ever stored unaudited.

use bulkhead_api::audit::Event;
use bulkhead_api::v1::Page;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::review::{
    ApplyRequest, DecisionRequest, ExportQuery, PolicyList, ReviewAction, ReviewDetail, ReviewQuery, ReviewRecord,
    ReviewStatus, RuleEvidence, SuggestRequest, WhatIf, WouldDrop,
};
use bulkhead_model::Mode;
use bulkhead_policy::objects::{ObjectRef, parse_documents};

use super::{Op, Service, ServiceError, cursor_in, cursor_out, page_size, view};
use crate::auth::{Principal, Scope};
use crate::observation::review::{self, Record};
use crate::policy::state::ChangeKind;

/// A stored suggestion as a document.
pub fn record(r: Record) -> Option<ReviewRecord> {
    let workload = view::workload_ref(&r.suggestion.workload)?;
    Some(ReviewRecord {
        id: r.id,
        status: r.status,
        workload,
        stable: r.suggestion.stable,
        created_ns: r.created_ns,
        updated_ns: r.updated_ns,
        audit_since_ns: r.audit_since_ns,
        enforced_since_ns: r.enforced_since_ns,
        rules: r
            .suggestion
            .rules
            .iter()
            .map(|e| RuleEvidence {
                side: e.side,
                index: e.index as u32,
                peers: e.peers.clone(),
                ports: e.ports.clone(),
                connections: e.connections,
                first_seen_ns: e.first_seen_ns,
                last_seen_ns: e.last_seen_ns,
                services: e.services.clone(),
            })
            .collect(),
        warnings: r.suggestion.warnings,
        policy: r.suggestion.policy,
    })
}

fn visible(scope: &Scope, r: &ReviewRecord) -> bool {
    scope.contains(&r.workload.namespace)
}

impl Service {
    /// Every stored suggestion the caller may see.
    async fn records(&self, who: &Principal) -> Result<Vec<ReviewRecord>, ServiceError> {
        let all = self.ctx.with_observation(|p| review::records(p)).await?;
        Ok(all.into_iter().filter_map(record).filter(|r| visible(&who.scope, r)).collect())
    }

    /// One suggestion, if the caller may see it (else as if it did not exist).
    async fn one(&self, who: &Principal, op: Op, id: u64) -> Result<ReviewRecord, ServiceError> {
        let r = self.ctx.with_observation(move |p| review::record(p, id)).await?;
        let doc = record(r).ok_or_else(|| ServiceError::not_found(format!("suggestion {id}")))?;
        self.in_scope(who, op, &format!("suggestion {id}"), &doc.workload.namespace)?;
        Ok(doc)
    }

    /// Generates suggestions from the baselines (of a namespace; a tenant's
    /// namespaces) and records them as pending.
    pub async fn suggest(&self, who: &Principal, req: SuggestRequest) -> Result<Vec<ReviewRecord>, ServiceError> {
        self.authorize(who, Op::Suggest, "suggestions")?;
        let namespaces: Vec<Option<String>> = match (&req.namespace, who.scope.namespaces()) {
            (Some(ns), _) => {
                self.in_scope(who, Op::Suggest, &format!("suggestions for namespace {ns}"), ns)?;
                vec![Some(ns.clone())]
            }
            (None, Some(own)) => own.into_iter().map(Some).collect(),
            (None, None) => vec![None],
        };
        let target = match &req.namespace {
            Some(ns) => format!("suggestions for namespace {ns}"),
            None => "suggestions".to_string(),
        };
        let event = Event {
            action: Op::Suggest.name(),
            target: &target,
            namespaces: namespaces.iter().flatten().cloned().collect(),
            ..Default::default()
        };
        self.audited(who, Outcome::Ok, event)?;
        let actor = who.signature();
        let made = self
            .ctx
            .with_observation(move |p| {
                let mut out = Vec::new();
                for ns in &namespaces {
                    out.extend(review::suggest(p, ns.as_deref(), &actor)?);
                }
                Ok(out)
            })
            .await?;
        Ok(made.into_iter().filter_map(record).collect())
    }

    /// The suggested policies themselves, as a Kubernetes List.
    pub async fn export(&self, who: &Principal, q: ExportQuery) -> Result<PolicyList, ServiceError> {
        self.authorize(who, Op::Export, "suggestions")?;
        let items = self
            .records(who)
            .await?
            .into_iter()
            .filter(|r| q.namespace.as_ref().is_none_or(|ns| &r.workload.namespace == ns))
            .filter(|r| match q.status {
                Some(s) => r.status == s,
                None => !matches!(r.status, ReviewStatus::Rejected | ReviewStatus::Superseded),
            })
            .filter(|r| r.policy.spec.is_some())
            .map(|r| r.policy)
            .collect();
        Ok(PolicyList::new(items))
    }

    /// Review records, newest first, a page at a time.
    pub async fn reviews(&self, who: &Principal, q: ReviewQuery) -> Result<Page<ReviewRecord>, ServiceError> {
        self.authorize(who, Op::Reviews, "suggestions")?;
        let limit = page_size(q.limit)?;
        let before = cursor_in("reviews", q.cursor.as_deref())?;
        let mut all = self.records(who).await?;
        all.sort_by_key(|a| std::cmp::Reverse(a.id));
        let mut items: Vec<ReviewRecord> = all
            .into_iter()
            .filter(|r| q.namespace.as_ref().is_none_or(|ns| &r.workload.namespace == ns))
            .filter(|r| q.status.is_none_or(|s| r.status == s))
            .filter(|r| before.is_none_or(|b| r.id < b))
            .take(limit + 1)
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(|r| cursor_out("reviews", r.id)) } else { None };
        Ok(Page { items, next_cursor })
    }

    /// One suggestion in full: YAML, diff against the policy in force,
    /// what-if, would-drops in audit, history.
    pub async fn review(&self, who: &Principal, id: u64) -> Result<ReviewDetail, ServiceError> {
        self.authorize(who, Op::Review, &format!("suggestion {id}"))?;
        let doc = self.one(who, Op::Review, id).await?;
        let oref = ObjectRef {
            kind: "NetworkPolicy".into(),
            namespace: doc.policy.metadata.namespace.clone().unwrap_or_default(),
            name: doc.policy.metadata.name.clone().unwrap_or_default(),
        };
        let (model, existing) =
            self.ctx.with_policy(move |s| Ok((s.model().clone(), s.object(&oref).cloned()))).await?;
        let learning = self.ctx.learning;
        let d = self.ctx.with_observation(move |p| review::detail(p, &model, id, existing.as_ref(), learning)).await?;
        let scope = &who.scope;
        Ok(ReviewDetail {
            record: doc,
            yaml: d.yaml,
            diff: d.diff,
            also_in_force: d.also_in_force,
            what_if: WhatIf {
                replayed: d.what_if.replayed,
                not_replayable: d.what_if.not_replayable,
                already_dropped: d.what_if.already_dropped,
                would_drop: d
                    .what_if
                    .would_drop
                    .iter()
                    .map(|w| WouldDrop {
                        flow: view::flow(scope, 0, &w.flow),
                        egress: w.egress.clone(),
                        ingress: w.ingress.clone(),
                    })
                    .collect(),
            },
            would_drop: d.would_drop.iter().map(|f| view::flow(scope, 0, f)).collect(),
            would_drop_total: d.would_drop_total,
            history: d
                .reviews
                .into_iter()
                .map(|r| ReviewAction { action: r.action, actor: r.actor, time_ns: r.time_ns, reason: r.reason })
                .collect(),
        })
    }

    /// Approves or rejects a suggestion.
    pub async fn decide(
        &self,
        who: &Principal,
        id: u64,
        approve: bool,
        req: DecisionRequest,
    ) -> Result<ReviewRecord, ServiceError> {
        let op = if approve { Op::Approve } else { Op::Reject };
        let target = format!("suggestion {id}");
        self.authorize(who, op, &target)?;
        let doc = self.one(who, op, id).await?;
        let event = Event {
            action: op.name(),
            target: &target,
            namespaces: vec![doc.workload.namespace.clone()],
            detail: &req.reason,
            before: Some(format!("{:?}", doc.status).to_lowercase()),
            after: Some(if approve { "approved" } else { "rejected" }.into()),
        };
        // Audited first: a decision is never stored unaudited.
        self.audited(who, Outcome::Ok, event)?;
        let actor = who.signature();
        let r = self.ctx.with_observation(move |p| review::decide(p, id, approve, &actor, &req.reason)).await?;
        record(r).ok_or_else(|| ServiceError::not_found(target))
    }

    /// Applies an approved suggestion in audit, or enforces it, through the
    /// same all-or-nothing change as `apply`.
    pub async fn apply_review(
        &self,
        who: &Principal,
        id: u64,
        req: ApplyRequest,
    ) -> Result<ReviewRecord, ServiceError> {
        let target = format!("suggestion {id}");
        let op = match req.mode {
            Mode::Audit => Op::ApplyAudit,
            Mode::Enforce => Op::ApplyEnforce,
            Mode::Learn => return Err(ServiceError::bad("mode", "must be audit or enforce")),
        };
        self.authorize(who, op, &target)?;
        let doc = self.one(who, op, id).await?;
        let mode = req.mode;
        let yaml = self.ctx.with_observation(move |p| review::staged_yaml(p, id, mode)).await?;
        let source = target.clone();
        let objs = parse_documents(&source, &yaml).map_err(crate::error::ControllerError::from)?;
        let report = match self.ctx.with_policy(move |s| s.change(ChangeKind::Apply, &source, objs)).await {
            Ok(r) => r,
            Err(e) => {
                let detail = e.to_string();
                let event = Event {
                    action: op.name(),
                    target: &target,
                    namespaces: vec![doc.workload.namespace.clone()],
                    detail: &detail,
                    ..Default::default()
                };
                self.audited(who, Outcome::Failed, event)?;
                return Err(e.into());
            }
        };
        for c in &report.objects {
            let detail = format!("generation {}, {}", report.generation, req.reason);
            let object = c.target.to_string();
            let event = Event {
                action: op.name(),
                target: &object,
                namespaces: vec![c.target.namespace.clone()],
                detail: &detail,
                before: c.before.as_ref().and_then(|o| o.to_yaml().ok()),
                after: c.after.as_ref().and_then(|o| o.to_yaml().ok()),
            };
            self.audited(who, Outcome::Ok, event)?;
        }
        let actor = who.signature();
        let r = self.ctx.with_observation(move |p| review::applied(p, id, mode, &actor, &req.reason)).await?;
        record(r).ok_or_else(|| ServiceError::not_found(target))
    }
}
