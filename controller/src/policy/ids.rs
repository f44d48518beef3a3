//! Numbers the agents see, kept stable across controller restarts: endpoint
//! ids (never reused, so a quarantine can never move to another pod), rule
//! ids for flows, security identities, and the desired-state generation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::policy::files::write_atomic;

use bulkhead_model::MAX_ENDPOINT_ID;

/// The persisted numbering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    /// Endpoint id by pod uid.
    pub endpoints: BTreeMap<String, u32>,
    /// The last endpoint id handed out.
    pub last_endpoint: u32,
    /// Rule id by rule name.
    pub rules: BTreeMap<String, u32>,
    /// The last rule id handed out.
    pub last_rule: u32,
    /// The last generation pushed.
    pub generation: u64,
    /// Security identity numbers by what they stand for: kept across
    /// restarts so a number never changes meaning under a running dataplane.
    #[serde(default)]
    pub identities: Vec<(bulkhead_policy::identity::IdentityKey, u32)>,
    /// The next identity number to hand out.
    #[serde(default)]
    pub next_identity: u32,
}

impl Ids {
    /// Loads the numbering, or starts afresh when there is none.
    pub fn load(path: &Path) -> Result<Self, ControllerError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| ControllerError::StateFile { path: path.to_path_buf(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ControllerError::Io { action: "reading", path: path.to_path_buf(), source }),
        }
    }

    /// Saves atomically.
    pub fn save(&self, path: &Path) -> Result<(), ControllerError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ControllerError::StateFile { path: path.to_path_buf(), message: e.to_string() })?;
        write_atomic(path, text.as_bytes())
    }

    /// The endpoint id of a pod, allocating one for a new pod.
    pub fn endpoint(&mut self, uid: &str) -> Result<u32, ControllerError> {
        if let Some(id) = self.endpoints.get(uid) {
            return Ok(*id);
        }
        if self.last_endpoint >= MAX_ENDPOINT_ID {
            return Err(ControllerError::EndpointIdsExhausted(MAX_ENDPOINT_ID));
        }
        self.last_endpoint += 1;
        self.endpoints.insert(uid.to_string(), self.last_endpoint);
        Ok(self.last_endpoint)
    }

    /// The id of a rule name (0 stays "no rule").
    pub fn rule(&mut self, name: &str) -> u32 {
        if let Some(id) = self.rules.get(name) {
            return *id;
        }
        self.last_rule += 1;
        self.rules.insert(name.to_string(), self.last_rule);
        self.last_rule
    }

    /// Forgets pods and rules that are gone; their numbers stay retired.
    pub fn retain(&mut self, pods: &BTreeSet<String>, rules: &BTreeSet<String>) {
        self.endpoints.retain(|k, _| pods.contains(k));
        self.rules.retain(|k, _| rules.contains(k));
    }

    /// The next generation: above every earlier one, even across restarts
    /// and even if the numbering file was lost (it follows the clock).
    pub fn next_generation(&mut self) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        self.generation = now.max(self.generation + 1);
        self.generation
    }
}
