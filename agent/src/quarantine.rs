//! Quarantine, kept apart from the node lock: an on-call responder's cut must
//! not wait behind a long apply. One small lock serialises every write to the
//! quarantine map, from the API and from applies alike, so neither can undo
//! the other.
//!
//! The controller owns quarantines and carries them in every desired state;
//! its fast path (this API) changes the map at once and says from which
//! generation on the desired state carries the decision. Until the agent
//! applies a state that new, the fast-path decision holds over older states
//! still in flight; from then on the state decides.

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

/// A fast-path decision and how long it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Override {
    quarantined: bool,
    /// Until a desired state of at least this generation is applied
    /// (`u64::MAX`: until released through the API).
    until: u64,
}

struct Inner {
    maps: Maps,
    /// Fast-path decisions not yet carried by an applied desired state.
    overrides: BTreeMap<u32, Override>,
    roster: Roster,
}

/// What should be quarantined under a state of `generation` that
/// quarantines `desired`: the state's, with the fast-path decisions it does
/// not carry yet over it.
fn wanted(desired: &BTreeSet<u32>, overrides: &BTreeMap<u32, Override>, generation: u64) -> BTreeSet<u32> {
    let mut wanted = desired.clone();
    for (id, o) in overrides.iter().filter(|(_, o)| o.until > generation) {
        if o.quarantined {
            wanted.insert(*id);
        } else {
            wanted.remove(id);
        }
    }
    wanted
}

fn until(generation: u64) -> u64 {
    if generation == 0 { u64::MAX } else { generation }
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
    /// Opens its own handle on the pinned maps. `found` are the endpoints
    /// found quarantined at start that the saved desired state (of
    /// `generation`) does not quarantine: they stay cut off until a newer
    /// state decides.
    pub fn new(
        pins: &PinLayout,
        audit: AuditLog,
        found: BTreeSet<u32>,
        generation: u64,
        roster: Roster,
    ) -> Result<Self, AgentError> {
        let overrides = found
            .into_iter()
            .map(|id| (id, Override { quarantined: true, until: generation.saturating_add(1) }))
            .collect();
        Ok(Self { inner: Mutex::new(Inner { maps: Maps::open(pins)?, overrides, roster }), audit })
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
        generation: u64,
    ) -> Result<(u32, Duration), AgentError> {
        let (id, name, took, attached) = {
            let mut inner = self.lock()?;
            let (id, name) = Self::find(&inner.roster, endpoint_id, pod)?;
            let started = Instant::now();
            inner.maps.quarantine(id, monotonic_ns())?;
            let took = started.elapsed();
            inner.overrides.insert(id, Override { quarantined: true, until: until(generation) });
            (id, name, took, inner.roster.attached.contains(&id))
        };
        self.record(caller, "quarantine", id, &name, reason)?;
        if !attached {
            // Never report a cut that is not enforced: a pod without programs is not cut off.
            return Err(AgentError::NotAttached { pod: name, reason: "its programs are not attached".into() });
        }
        Ok((id, took))
    }

    /// Lifts a quarantine; the record is written before anything changes.
    /// With a `generation` (the controller's fast path), the release holds
    /// over older desired states; without, it lifts only an API quarantine
    /// and the desired state still decides. Returns whether the endpoint is
    /// still quarantined.
    pub fn release(
        &self,
        endpoint_id: u32,
        pod: &str,
        reason: &str,
        caller: &Caller,
        generation: u64,
    ) -> Result<(u32, bool), AgentError> {
        let (id, name) = {
            let inner = self.lock()?;
            Self::find(&inner.roster, endpoint_id, pod)?
        };
        self.record(caller, "release", id, &name, reason)?;
        let mut inner = self.lock()?;
        if generation == 0 {
            inner.overrides.remove(&id);
        } else {
            inner.overrides.insert(id, Override { quarantined: false, until: generation });
        }
        let still = wanted(&inner.roster.desired, &inner.overrides, 0).contains(&id);
        if !still {
            inner.maps.release(id)?;
        }
        Ok((id, still))
    }

    /// Before an apply of a state of `generation` changes anything:
    /// quarantine what it (with the fast-path decisions it does not carry
    /// yet) quarantines. Returns the number of map writes.
    pub fn cut_before_apply(
        &self,
        desired: &BTreeSet<u32>,
        candidates: &BTreeSet<u32>,
        generation: u64,
    ) -> Result<u32, AgentError> {
        let mut inner = self.lock()?;
        let wanted = wanted(desired, &inner.overrides, generation);
        let already: BTreeSet<u32> = inner.maps.quarantined(candidates.iter().copied())?.into_iter().collect();
        let mut writes = 0;
        for id in wanted.difference(&already) {
            inner.maps.quarantine(*id, monotonic_ns())?;
            writes += 1;
        }
        Ok(writes)
    }

    /// After an apply of a state of `generation`: publish the new roster,
    /// forget the fast-path decisions the state carries, then make the map
    /// match exactly what is wanted. Returns the number of map writes.
    pub fn settle_after_apply(
        &self,
        roster: Roster,
        candidates: &BTreeSet<u32>,
        generation: u64,
    ) -> Result<u32, AgentError> {
        let mut inner = self.lock()?;
        inner.overrides.retain(|_, o| o.until > generation);
        let wanted = wanted(&roster.desired, &inner.overrides, generation);
        inner.roster = roster;
        let present: BTreeSet<u32> = inner.maps.quarantined(candidates.iter().copied())?.into_iter().collect();
        let mut writes = 0;
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

    /// Endpoint ids quarantined by fast-path decisions the applied state does not carry yet.
    pub fn api_quarantined(&self) -> BTreeSet<u32> {
        self.lock()
            .map(|i| i.overrides.iter().filter(|(_, o)| o.quarantined).map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }
}
