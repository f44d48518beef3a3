//! The review workflow. A suggestion is recorded `pending`; an operator
//! approves or rejects it, then applies it in two stages: `audit` (the
//! policy is in force but its pods only report what it would drop) and
//! `enforce`. Every step is stored with who did it and when. What-if replays
//! the recorded flows through the suggestion before it is applied, and in
//! audit the would-drop flows are collected per suggestion.

mod diff;

use std::collections::BTreeSet;

use bulkhead_api::v1::review::ReviewStatus;
use bulkhead_graph::baseline::LearningConfig;
use bulkhead_graph::suggest::{self, Suggestion};
use bulkhead_graph::whatif::{WhatIf, what_if};
use bulkhead_graph::{Entity, FlowRecord};
use bulkhead_model::{Direction, Verdict};
use bulkhead_policy::evaluate::PolicySet;
use bulkhead_policy::netpol::NetworkPolicy;
use bulkhead_policy::objects::Object;
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::observation::flows::{Pipeline, now_ns};
use crate::observation::storage::{Document, FlowFilter, Named, Table};
use crate::policy::store::{MODE_ANNOTATION, Model};
use bulkhead_model::Mode;

/// A stored suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Id.
    pub id: u64,
    /// Status.
    pub status: ReviewStatus,
    /// When it was created.
    pub created_ns: i64,
    /// Last change.
    pub updated_ns: i64,
    /// When it was applied in audit mode.
    pub audit_since_ns: Option<i64>,
    /// When it was enforced.
    pub enforced_since_ns: Option<i64>,
    /// The suggestion (policy, evidence, warnings).
    pub suggestion: Suggestion,
}

/// One review action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The suggestion.
    pub suggestion: u64,
    /// approve, reject, apply-audit, apply-enforce, suggest.
    pub action: String,
    /// Who (the caller's stated name and verified uid).
    pub actor: String,
    /// When.
    pub time_ns: i64,
    /// Why, as given.
    pub reason: String,
}

/// A suggestion in full, for `review show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    /// The record.
    #[serde(flatten)]
    pub record: Record,
    /// The policy as YAML.
    pub yaml: String,
    /// Against the object of the same name in force: "+"/"-"/" " lines, empty when there is none.
    pub diff: Vec<String>,
    /// Other policies in force that select the workload's pods.
    pub also_in_force: Vec<String>,
    /// Replay of the recorded flows of the learning window through the policies in force plus this one.
    pub what_if: WhatIf,
    /// In audit: the flows the staged policy would have dropped (at most 100, newest last).
    pub would_drop: Vec<FlowRecord>,
    /// How many there were in all.
    pub would_drop_total: u64,
    /// Every review action on it.
    pub reviews: Vec<Review>,
}

fn decode<T: for<'de> Deserialize<'de>>(doc: &Document) -> Result<T, ControllerError> {
    serde_json::from_str(&doc.json).map_err(|e| ControllerError::StateFile {
        path: "flows.db".into(),
        message: format!("review record {} is unreadable: {e}", doc.id),
    })
}

fn encode<T: Serialize>(v: &T) -> Result<String, ControllerError> {
    serde_json::to_string(v).map_err(|e| ControllerError::StateFile {
        path: "flows.db".into(),
        message: format!("cannot encode a review record: {e}"),
    })
}

/// What suggestions are looked up by: "namespace/Kind/name".
fn subject(w: &Entity) -> String {
    match w {
        Entity::Workload { namespace, kind, name } => format!("{namespace}/{kind}/{name}"),
        other => format!("{other:?}"),
    }
}

/// A stored suggestion; its id is the row's (a new record is stored before it has one).
fn decode_record(doc: &Document) -> Result<Record, ControllerError> {
    let mut r: Record = decode(doc)?;
    r.id = doc.id;
    Ok(r)
}

/// Every stored suggestion, by id.
pub fn records(p: &Pipeline) -> Result<Vec<Record>, ControllerError> {
    p.store().documents(Table::Suggestions, None)?.iter().map(decode_record).collect()
}

/// One stored suggestion.
pub fn record(p: &Pipeline, id: u64) -> Result<Record, ControllerError> {
    match p.store().document(Table::Suggestions, id)? {
        Some(doc) => decode_record(&doc),
        None => Err(ControllerError::NotFound(format!("suggestion {id}"))),
    }
}

fn save(p: &mut Pipeline, r: &mut Record) -> Result<(), ControllerError> {
    let doc = Document { id: r.id, subject: subject(&r.suggestion.workload), json: encode(r)? };
    r.id = p.store_mut().put_document(Table::Suggestions, &doc)?;
    Ok(())
}

fn log(p: &mut Pipeline, id: u64, action: &str, actor: &str, reason: &str) -> Result<(), ControllerError> {
    let r =
        Review { suggestion: id, action: action.into(), actor: actor.into(), time_ns: now_ns(), reason: reason.into() };
    p.store_mut().put_document(Table::Reviews, &Document { id: 0, subject: id.to_string(), json: encode(&r)? })?;
    Ok(())
}

fn spec_of(s: &Suggestion) -> String {
    serde_json::to_string(&s.policy.spec).unwrap_or_default()
}

/// Generates suggestions (of `namespace`) and records them: a suggestion
/// whose policy is unchanged keeps its id and status (its evidence is
/// refreshed); a changed one supersedes a pending or approved predecessor.
pub fn suggest(p: &mut Pipeline, namespace: Option<&str>, actor: &str) -> Result<Vec<Record>, ControllerError> {
    let inventory = suggest::Inventory {
        workloads: p.history().workloads().clone(),
        nodes: p.history().node_ips().clone(),
        now_ns: now_ns(),
    };
    let fresh = suggest::suggest(p.learner(), &inventory, namespace);
    let mut existing = records(p)?;
    let mut out = Vec::new();
    let now = now_ns();
    for s in fresh {
        if s.policy.spec.is_none() {
            continue;
        }
        let live = existing
            .iter_mut()
            .rev()
            .find(|r| r.suggestion.workload == s.workload && r.status != ReviewStatus::Superseded);
        // A rejected policy stays rejected: the same policy is not proposed again.
        if let Some(r) = &live
            && r.status == ReviewStatus::Rejected
            && spec_of(&r.suggestion) == spec_of(&s)
        {
            out.push(Record::clone(r));
            continue;
        }
        let live = live.filter(|r| r.status != ReviewStatus::Rejected);
        let mut record = match live {
            Some(r) if spec_of(&r.suggestion) == spec_of(&s) => {
                r.suggestion = s;
                r.updated_ns = now;
                r.clone()
            }
            other => {
                if let Some(old) = other
                    && matches!(old.status, ReviewStatus::Pending | ReviewStatus::Approved)
                {
                    old.status = ReviewStatus::Superseded;
                    old.updated_ns = now;
                    let mut old = old.clone();
                    save(p, &mut old)?;
                }
                Record {
                    id: 0,
                    status: ReviewStatus::Pending,
                    created_ns: now,
                    updated_ns: now,
                    audit_since_ns: None,
                    enforced_since_ns: None,
                    suggestion: s,
                }
            }
        };
        let new = record.id == 0;
        save(p, &mut record)?;
        if new {
            log(p, record.id, "suggest", actor, "")?;
        }
        out.push(record);
    }
    Ok(out)
}

/// Approves or rejects.
pub fn decide(p: &mut Pipeline, id: u64, approve: bool, actor: &str, reason: &str) -> Result<Record, ControllerError> {
    let mut r = record(p, id)?;
    if !matches!(r.status, ReviewStatus::Pending | ReviewStatus::Approved) {
        return Err(ControllerError::Conflict(format!(
            "suggestion {id} is {:?}; only pending or approved suggestions can be {}",
            r.status,
            if approve { "approved" } else { "rejected" }
        )));
    }
    r.status = if approve { ReviewStatus::Approved } else { ReviewStatus::Rejected };
    r.updated_ns = now_ns();
    save(p, &mut r)?;
    log(p, id, if approve { "approve" } else { "reject" }, actor, reason)?;
    Ok(r)
}

/// Whether a suggestion in `status` may be applied in `mode`: audit needs
/// an approved suggestion; enforce an approved or audited one.
fn may_apply(r: &Record, mode: Mode) -> Result<(), ControllerError> {
    let ok = match mode {
        Mode::Audit => matches!(r.status, ReviewStatus::Approved | ReviewStatus::Audit),
        Mode::Enforce => matches!(r.status, ReviewStatus::Approved | ReviewStatus::Audit | ReviewStatus::Enforced),
        Mode::Learn => false,
    };
    if ok {
        return Ok(());
    }
    Err(ControllerError::Conflict(format!(
        "suggestion {} is {:?}: apply --mode audit needs an approved suggestion, --mode enforce an approved or audited one",
        r.id, r.status
    )))
}

/// The YAML to apply for `mode`, after checking the transition.
pub fn staged_yaml(p: &Pipeline, id: u64, mode: Mode) -> Result<String, ControllerError> {
    let r = record(p, id)?;
    may_apply(&r, mode)?;
    let mut policy = r.suggestion.policy.clone();
    let annotations = policy.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(MODE_ANNOTATION.into(), if mode == Mode::Audit { "audit" } else { "enforce" }.into());
    serde_yaml::to_string(&policy)
        .map_err(|e| ControllerError::StateFile { path: "flows.db".into(), message: format!("suggestion {id}: {e}") })
}

/// Records that the suggestion was applied in `mode`.
pub fn applied(p: &mut Pipeline, id: u64, mode: Mode, actor: &str, reason: &str) -> Result<Record, ControllerError> {
    let mut r = record(p, id)?;
    // Checked again: another request may have changed it meanwhile.
    may_apply(&r, mode)?;
    let now = now_ns();
    match mode {
        Mode::Audit => {
            r.status = ReviewStatus::Audit;
            r.audit_since_ns = Some(now);
        }
        _ => {
            r.status = ReviewStatus::Enforced;
            r.enforced_since_ns = Some(now);
        }
    }
    r.updated_ns = now;
    save(p, &mut r)?;
    log(p, id, if mode == Mode::Audit { "apply-audit" } else { "apply-enforce" }, actor, reason)?;
    Ok(r)
}

/// The most recorded flows what-if replays, and audit counts.
const REPLAY_MAX: usize = 1_000_000;

/// The filter naming a workload entity.
fn named(w: &Entity) -> Option<Named> {
    match w {
        Entity::Workload { namespace, name, .. } => {
            Some(Named { namespace: Some(namespace.to_string()), name: name.to_string() })
        }
        _ => None,
    }
}

/// The workload's side of a flow: its egress, or its ingress.
fn touches(w: &Entity, f: &FlowRecord) -> bool {
    (f.src == *w && f.observation == Direction::Egress) || (f.dst == *w && f.observation == Direction::Ingress)
}

/// Everything about one suggestion, with what-if against `model` and
/// `existing` (the object of the same name in force, as YAML).
pub fn detail(
    p: &Pipeline,
    model: &Model,
    id: u64,
    existing: Option<&Object>,
    learning: LearningConfig,
) -> Result<Detail, ControllerError> {
    let record = record(p, id)?;
    let s = &record.suggestion;
    let yaml = serde_yaml::to_string(&s.policy)
        .map_err(|e| ControllerError::StateFile { path: "flows.db".into(), message: e.to_string() })?;
    let diff = match existing {
        Some(o) => diff::lines(&o.to_yaml()?, &yaml),
        None => Vec::new(),
    };
    let proposed = NetworkPolicy::try_from(&s.policy)?;
    let pods: Vec<_> = model
        .inventory
        .pods
        .values()
        .filter(|pod| {
            Some(pod.namespace.as_str()) == s.workload.namespace() && proposed.pod_selector.matches(&pod.labels)
        })
        .collect();
    let also_in_force: BTreeSet<String> = model
        .policies
        .network
        .values()
        .filter(|np| np.key() != proposed.key())
        .filter(|np| pods.iter().any(|pod| pod.namespace == np.namespace && np.pod_selector.matches(&pod.labels)))
        .map(|np| format!("NetworkPolicy {}", np.key()))
        .collect();
    let mut policies: PolicySet = model.policies.clone();
    policies.put_network(proposed);
    let now = now_ns();
    let window = learning.window_ns.max(learning.quiet_ns);
    let of_workload = FlowFilter { workload: named(&s.workload), ..Default::default() };
    let mut recent: Vec<FlowRecord> = p
        .store()
        .query(&FlowFilter { since_ns: Some(now - window), ..of_workload.clone() }, None, REPLAY_MAX)?
        .into_iter()
        .map(|(_, f)| f)
        .filter(|f| touches(&s.workload, f))
        .collect();
    recent.reverse();
    let history = p.history();
    let what_if = what_if(&model.inventory, &policies, &recent, |f| history.still_valid(f, now));
    let (would_drop, would_drop_total) = match record.audit_since_ns {
        Some(since) => {
            let filter = FlowFilter { since_ns: Some(since), verdict: Some(Verdict::Audit), ..of_workload };
            let mut all: Vec<FlowRecord> = p
                .store()
                .query(&filter, None, REPLAY_MAX)?
                .into_iter()
                .map(|(_, f)| f)
                .filter(|f| touches(&s.workload, f))
                .collect();
            all.reverse();
            let total = all.len() as u64;
            (all.into_iter().rev().take(100).rev().collect(), total)
        }
        None => (Vec::new(), 0),
    };
    let reviews =
        p.store().documents(Table::Reviews, Some(&id.to_string()))?.iter().map(decode).collect::<Result<_, _>>()?;
    Ok(Detail {
        record,
        yaml,
        diff,
        also_in_force: also_in_force.into_iter().collect(),
        what_if,
        would_drop,
        would_drop_total,
        reviews,
    })
}
