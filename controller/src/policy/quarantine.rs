//! Quarantines, owned by the controller: made through its API or by
//! Quarantine objects, persisted before anything is enforced, and carried
//! in every node's desired state, so they survive any restart of the
//! controller or an agent. A pod quarantine ends with its pod (by uid: a
//! new pod of the same name is not cut off); a workload quarantine cuts
//! off every pod of the workload, including pods created later.

pub mod desk;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bulkhead_api::v1::quarantine::{QuarantineState, TargetKind};
use bulkhead_graph::Entity;
use bulkhead_policy::quarantine::Target;
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::policy::store::Model;

/// One quarantine and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Id, never reused.
    pub id: u64,
    /// What it cuts off.
    pub target: Target,
    /// For a pod: the uid of the pod it was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Why.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When, nanoseconds since the epoch.
    pub created_ns: i64,
    /// The Quarantine object it comes from, if any ("Quarantine ns/name").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Active, released or ended.
    pub state: QuarantineState,
    /// Who released it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When it was released or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ns: Option<i64>,
    /// Why it was released or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl Record {
    /// Pod or workload.
    pub fn kind(&self) -> TargetKind {
        match self.target {
            Target::Pod { .. } => TargetKind::Pod,
            Target::Workload { .. } => TargetKind::Workload,
        }
    }

    /// Whether it cuts off `pod` (its key and uid) of workload `workload`.
    fn covers(&self, key: &str, uid: &str, workload: &Entity) -> bool {
        if self.state != QuarantineState::Active {
            return false;
        }
        match &self.target {
            Target::Pod { namespace, name } => {
                key.split_once('/') == Some((namespace.as_str(), name.as_str()))
                    && self.pod_uid.as_deref().is_none_or(|u| u == uid)
            }
            Target::Workload { namespace, name } => matches!(
                workload,
                Entity::Workload { namespace: ns, name: n, .. } if &**ns == namespace && &**n == name
            ),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    next_id: u64,
    records: Vec<Record>,
}

/// Every quarantine, persisted in the state dir.
#[derive(Debug)]
pub struct Book {
    path: PathBuf,
    records: BTreeMap<u64, Record>,
    next_id: u64,
}

/// A pod a quarantine cuts off.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CutPod {
    /// "namespace/name".
    pub pod: String,
    /// Its uid.
    pub uid: String,
    /// Its node.
    pub node: String,
}

/// A change to the book made in memory and not saved yet.
#[must_use = "a staged change is committed or it is not durable"]
#[derive(Debug)]
pub struct Staged {
    id: u64,
    /// The record before the change (none: the change created it).
    before: Option<Record>,
}

impl Book {
    /// Loads the book, or starts an empty one.
    pub fn load(path: &Path) -> Result<Self, ControllerError> {
        let file: File = crate::policy::files::read_json(path)?;
        let records: BTreeMap<u64, Record> = file.records.into_iter().map(|r| (r.id, r)).collect();
        let next_id = file.next_id.max(records.keys().max().map_or(1, |m| m + 1));
        Ok(Self { path: path.to_path_buf(), records, next_id })
    }

    /// Writes the book and syncs it to disk: a quarantine is durable before
    /// it is answered.
    fn save(&self) -> Result<(), ControllerError> {
        let file = File { next_id: self.next_id, records: self.records.values().cloned().collect() };
        let text = serde_json::to_vec(&file)
            .map_err(|e| ControllerError::StateFile { path: self.path.clone(), message: e.to_string() })?;
        crate::policy::files::write_durable(&self.path, &text)
    }

    /// One record.
    pub fn get(&self, id: u64) -> Option<&Record> {
        self.records.get(&id)
    }

    /// Every record, newest first.
    pub fn all(&self) -> impl Iterator<Item = &Record> {
        self.records.values().rev()
    }

    /// Active quarantines.
    pub fn active(&self) -> usize {
        self.records.values().filter(|r| r.state == QuarantineState::Active).count()
    }

    /// The pods of `model` a record cuts off.
    pub fn pods_of(&self, record: &Record, model: &Model) -> Vec<CutPod> {
        cut(std::slice::from_ref(record), model)
    }

    /// The uids of every pod of `model` that an active quarantine cuts off.
    pub fn cut_uids(&self, model: &Model) -> BTreeSet<String> {
        let active: Vec<Record> =
            self.records.values().filter(|r| r.state == QuarantineState::Active).cloned().collect();
        cut(&active, model).into_iter().map(|p| p.uid).collect()
    }

    /// Records a new quarantine of `target`, durably. An active quarantine
    /// of the same target is returned instead of a second one.
    pub fn create(
        &mut self,
        target: Target,
        reason: &str,
        by: &str,
        object: Option<String>,
        model: &Model,
        now_ns: i64,
    ) -> Result<(Record, bool), ControllerError> {
        match self.stage_create(target, reason, by, object, model, now_ns)? {
            (record, Some(staged)) => {
                self.commit(staged)?;
                Ok((record, true))
            }
            (record, None) => Ok((record, false)),
        }
    }

    /// Makes a change [`Book::stage_create`] or [`Book::stage_release`]
    /// staged durable, or undoes it when it cannot be saved: what is not
    /// durable is not made.
    pub fn commit(&mut self, staged: Staged) -> Result<(), ControllerError> {
        let Err(e) = self.save() else { return Ok(()) };
        match staged.before {
            Some(before) => self.records.insert(staged.id, before),
            None => self.records.remove(&staged.id),
        };
        Err(e)
    }

    /// [`Book::create`] in memory only, until [`Book::commit`]; no change
    /// (None) when an active quarantine of the same target is returned.
    pub fn stage_create(
        &mut self,
        target: Target,
        reason: &str,
        by: &str,
        object: Option<String>,
        model: &Model,
        now_ns: i64,
    ) -> Result<(Record, Option<Staged>), ControllerError> {
        if let Some(r) = self.records.values().find(|r| r.state == QuarantineState::Active && r.target == target) {
            return Ok((r.clone(), None));
        }
        let pod_uid = match &target {
            Target::Pod { namespace, name } => {
                let key = format!("{namespace}/{name}");
                Some(model.pods.get(&key).map(|e| e.uid.clone()).ok_or_else(|| {
                    ControllerError::NotFound(format!("pod {key} is not in the inventory (nothing to quarantine)"))
                })?)
            }
            Target::Workload { .. } => None,
        };
        let record = Record {
            id: self.next_id,
            target,
            pod_uid,
            reason: reason.to_string(),
            created_by: by.to_string(),
            created_ns: now_ns,
            object,
            state: QuarantineState::Active,
            released_by: None,
            ended_ns: None,
            end_reason: None,
        };
        self.next_id += 1;
        self.records.insert(record.id, record.clone());
        Ok((record.clone(), Some(Staged { id: record.id, before: None })))
    }

    /// Releases an active quarantine, durably; returns the record and the
    /// pods it cut off until now.
    pub fn release(
        &mut self,
        id: u64,
        by: &str,
        reason: &str,
        model: &Model,
        now_ns: i64,
    ) -> Result<(Record, Vec<CutPod>), ControllerError> {
        let (record, pods, staged) = self.stage_release(id, by, reason, model, now_ns)?;
        self.commit(staged)?;
        Ok((record, pods))
    }

    /// [`Book::release`] in memory only, until [`Book::commit`].
    pub fn stage_release(
        &mut self,
        id: u64,
        by: &str,
        reason: &str,
        model: &Model,
        now_ns: i64,
    ) -> Result<(Record, Vec<CutPod>, Staged), ControllerError> {
        let Some(current) = self.records.get(&id).cloned() else {
            return Err(ControllerError::NotFound(format!("quarantine {id}")));
        };
        if current.state != QuarantineState::Active {
            return Err(ControllerError::Conflict(format!(
                "quarantine {id} is already {}",
                if current.state == QuarantineState::Ended { "ended" } else { "released" }
            )));
        }
        let pods = self.pods_of(&current, model);
        let mut next = current.clone();
        next.state = QuarantineState::Released;
        next.released_by = Some(by.to_string());
        next.ended_ns = Some(now_ns);
        next.end_reason = Some(reason.to_string());
        self.records.insert(id, next.clone());
        Ok((next, pods, Staged { id, before: Some(current) }))
    }

    /// Ends the pod quarantines whose pod is gone (deleted, or replaced by
    /// another pod of the same name), durably; returns them.
    pub fn end_deleted(&mut self, model: &Model, now_ns: i64) -> Result<Vec<Record>, ControllerError> {
        let uids: BTreeSet<&str> = model.pods.values().map(|e| e.uid.as_str()).collect();
        let gone: Vec<u64> = self
            .records
            .values()
            .filter(|r| r.state == QuarantineState::Active)
            .filter(|r| r.pod_uid.as_deref().is_some_and(|u| !uids.contains(u)))
            .map(|r| r.id)
            .collect();
        let mut ended = Vec::new();
        for id in gone {
            if let Some(r) = self.records.get_mut(&id) {
                r.state = QuarantineState::Ended;
                r.ended_ns = Some(now_ns);
                r.end_reason = Some("the pod was deleted".into());
                ended.push(r.clone());
            }
        }
        if !ended.is_empty() {
            self.save()?;
        }
        Ok(ended)
    }

    /// Follows the Quarantine objects of `model`: a new object makes a
    /// quarantine, a deleted one releases its quarantine. Returns what
    /// changed (made, released).
    pub fn follow_objects(
        &mut self,
        model: &Model,
        now_ns: i64,
    ) -> Result<(Vec<Record>, Vec<Record>), ControllerError> {
        let wanted: BTreeMap<String, (&Target, &String)> =
            model.quarantines.iter().map(|(r, t, reason)| (r.to_string(), (t, reason))).collect();
        let by_object: BTreeMap<String, u64> = self
            .records
            .values()
            .filter(|r| r.state == QuarantineState::Active)
            .filter_map(|r| r.object.clone().map(|o| (o, r.id)))
            .collect();
        let mut released = Vec::new();
        for (object, id) in &by_object {
            let changed = wanted.get(object).is_none_or(|(t, reason)| {
                self.records.get(id).is_some_and(|r| &r.target != *t || &r.reason != *reason)
            });
            if changed {
                let (r, _) = self.release(
                    *id,
                    &format!("system:{object}"),
                    "the Quarantine object was deleted or changed",
                    model,
                    now_ns,
                )?;
                released.push(r);
            }
        }
        let mut made = Vec::new();
        for (object, (target, reason)) in wanted {
            let live = self
                .records
                .values()
                .any(|r| r.state == QuarantineState::Active && r.object.as_deref() == Some(&object));
            if live {
                continue;
            }
            // A pod that does not exist (yet) cannot be pinned by uid: the object waits for it.
            if matches!(target, Target::Pod { .. })
                && !model.pods.contains_key(&format!("{}/{}", target.namespace(), target.name()))
            {
                continue;
            }
            let (r, new) =
                self.create(target.clone(), reason, &format!("system:{object}"), Some(object.clone()), model, now_ns)?;
            if new {
                made.push(r);
            }
        }
        Ok((made, released))
    }
}

/// The pods of `model` that `records` cut off.
fn cut(records: &[Record], model: &Model) -> Vec<CutPod> {
    let mut out = Vec::new();
    for (key, extras) in &model.pods {
        let Some(pod) = model.inventory.pods.get(key) else { continue };
        let workload = model.workload_of(pod);
        if records.iter().any(|r| r.covers(key, &extras.uid, &workload)) {
            out.push(CutPod { pod: key.clone(), uid: extras.uid.clone(), node: pod.node.clone() });
        }
    }
    out
}
