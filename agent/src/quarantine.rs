//! Quarantine, kept apart from the node lock: an on-call responder's cut must
//! not wait behind a long apply. One small lock serialises every write to the
//! quarantine map, from the API and from applies alike, so neither can undo
//! the other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulkhead_dataplane::flow::monotonic_ns;
use bulkhead_dataplane::{Maps, PinLayout};

use crate::error::AgentError;
use bulkhead_api::audit::AuditLog;
use bulkhead_api::audit::Caller;

/// What the last applied state says about endpoints, as quarantine needs it.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    /// "namespace/pod" → endpoint id.
    pub names: BTreeMap<String, u32>,
    /// Endpoints whose programs are attached.
    pub attached: BTreeSet<u32>,
    /// Quarantined by the desired state itself.
    pub desired: BTreeSet<u32>,
}

struct Inner {
    maps: Maps,
    /// Quarantined through the API; survives applies until released.
    api: BTreeSet<u32>,
    roster: Roster,
}

/// The node's quarantines.
pub struct Quarantines {
    inner: Mutex<Inner>,
    audit: AuditLog,
}

impl std::fmt::Debug for Quarantines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantines").finish_non_exhaustive()
    }
}

impl Quarantines {
    /// Opens its own handle on the pinned maps. `api` are the endpoints found
    /// quarantined at start that the desired state does not quarantine.
    pub fn new(pins: &PinLayout, audit: AuditLog, api: BTreeSet<u32>, roster: Roster) -> Result<Self, AgentError> {
        Ok(Self { inner: Mutex::new(Inner { maps: Maps::open(pins)?, api, roster }), audit })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, AgentError> {
        self.inner.lock().map_err(|_| AgentError::Serve { what: "quarantine", message: "lock poisoned".into() })
    }

    fn find(roster: &Roster, endpoint_id: u32, pod: &str) -> Result<(u32, String), AgentError> {
        let found = if endpoint_id != 0 {
            roster.names.iter().find(|(_, id)| **id == endpoint_id)
        } else {
            roster.names.iter().find(|(name, _)| name.as_str() == pod)
        };
        found.map(|(name, id)| (*id, name.clone())).ok_or_else(|| {
            AgentError::UnknownEndpoint(if endpoint_id != 0 { endpoint_id.to_string() } else { pod.to_string() })
        })
    }

    fn record(&self, caller: &Caller, action: &str, id: u32, name: &str, reason: &str) -> Result<(), AgentError> {
        self.audit.record_by(caller, action, &format!("{name} (endpoint {id})"), reason)?;
        Ok(())
    }

    /// Cuts an endpoint off both ways. The map write is the enforcement and
    /// comes first; the audit record follows before the caller hears of it.
    pub fn quarantine(
        &self,
        endpoint_id: u32,
        pod: &str,
        reason: &str,
        caller: &Caller,
    ) -> Result<(u32, Duration), AgentError> {
        let (id, name, took, attached) = {
            let mut inner = self.lock()?;
            let (id, name) = Self::find(&inner.roster, endpoint_id, pod)?;
            let started = Instant::now();
            inner.maps.quarantine(id, monotonic_ns())?;
            let took = started.elapsed();
            inner.api.insert(id);
            (id, name, took, inner.roster.attached.contains(&id))
        };
        self.record(caller, "quarantine", id, &name, reason)?;
        if !attached {
            // Never report a cut that is not enforced: a pod without programs is not cut off.
            return Err(AgentError::NotAttached { pod: name, reason: "its programs are not attached".into() });
        }
        Ok((id, took))
    }

    /// Lifts an API quarantine; the record is written before anything changes.
    /// Returns whether the desired state still quarantines the endpoint.
    pub fn release(
        &self,
        endpoint_id: u32,
        pod: &str,
        reason: &str,
        caller: &Caller,
    ) -> Result<(u32, bool), AgentError> {
        let (id, name) = {
            let inner = self.lock()?;
            Self::find(&inner.roster, endpoint_id, pod)?
        };
        self.record(caller, "release", id, &name, reason)?;
        let mut inner = self.lock()?;
        inner.api.remove(&id);
        let still = inner.roster.desired.contains(&id);
        if !still {
            inner.maps.release(id)?;
        }
        Ok((id, still))
    }

    /// Before an apply changes anything: quarantine what the new state (or the
    /// API) quarantines. Returns the number of map writes.
    pub fn cut_before_apply(&self, desired: &BTreeSet<u32>, candidates: &BTreeSet<u32>) -> Result<u32, AgentError> {
        let mut inner = self.lock()?;
        let wanted: BTreeSet<u32> = desired.union(&inner.api).copied().collect();
        let already: BTreeSet<u32> = inner.maps.quarantined(candidates.iter().copied())?.into_iter().collect();
        let mut writes = 0;
        for id in wanted.difference(&already) {
            inner.maps.quarantine(*id, monotonic_ns())?;
            writes += 1;
        }
        Ok(writes)
    }

    /// After an apply: publish the new roster, then make the map match exactly
    /// what the state or the API quarantines. Returns the number of map writes.
    pub fn settle_after_apply(&self, roster: Roster, candidates: &BTreeSet<u32>) -> Result<u32, AgentError> {
        let mut inner = self.lock()?;
        let wanted: BTreeSet<u32> = roster.desired.union(&inner.api).copied().collect();
        inner.roster = roster;
        let present: BTreeSet<u32> = inner.maps.quarantined(candidates.iter().copied())?.into_iter().collect();
        let mut writes = 0;
        // An API release may have raced with this apply: the new state wins for its own quarantines.
        for id in wanted.difference(&present) {
            inner.maps.quarantine(*id, monotonic_ns())?;
            writes += 1;
        }
        for id in present.difference(&wanted) {
            inner.maps.release(*id)?;
            writes += 1;
        }
        Ok(writes)
    }

    /// Endpoint ids quarantined through the API.
    pub fn api_quarantined(&self) -> BTreeSet<u32> {
        self.lock().map(|i| i.api.clone()).unwrap_or_default()
    }
}
