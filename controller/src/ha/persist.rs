//! The leader's state, kept in the cluster: the state directory files that
//! agents' numbers and enforcement depend on, copied whole into one
//! ConfigMap whenever they change, and written back into a new leader's
//! state directory before it opens them. Flows and the audit log stay with
//! each replica (the audit log must never be overwritten by another's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::error::ControllerError;
use crate::policy::files::write_durable;

/// The ConfigMap's name unless configured otherwise.
pub const DEFAULT_STATE: &str = "bulkhead-controller-state";
/// The files copied: identities, endpoint and rule ids and the generation;
/// quarantines; blocks; objects applied through the API.
pub const FILES: [&str; 4] = ["ids.json", "quarantines.json", "blocks.json", "objects.yaml"];
/// How often the leader looks for changed files.
pub const EVERY: Duration = Duration::from_secs(1);
/// A ConfigMap holds at most 1 MiB; this leaves room for its metadata.
pub const MAX_BYTES: usize = 1_000_000;

/// The ConfigMap that holds the copy. Each replica writes only over the
/// version it last read or wrote: if another replica wrote since (a new
/// leader), this one's write is refused, never silently last.
pub struct ClusterState {
    api: Api<ConfigMap>,
    name: String,
    version: tokio::sync::Mutex<Option<String>>,
}

fn state_err(what: &str, e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Leadership { message: format!("{what} the state ConfigMap: {e}") }
}

impl ClusterState {
    /// ConfigMap `name` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.to_string(), version: Default::default() }
    }

    /// The copy's files, if there is a copy.
    pub async fn load(&self) -> Result<Option<BTreeMap<String, String>>, ControllerError> {
        let found = self.api.get_opt(&self.name).await.map_err(|e| state_err("reading", e))?;
        *self.version.lock().await = found.as_ref().and_then(|cm| cm.metadata.resource_version.clone());
        Ok(found.map(|cm| cm.data.unwrap_or_default()))
    }

    /// Replaces the copy with `files` (creating it the first time).
    pub async fn save(&self, files: &BTreeMap<String, String>) -> Result<(), ControllerError> {
        let size: usize = files.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_BYTES {
            return Err(state_err("writing", format!("{size} bytes is over a ConfigMap's limit ({MAX_BYTES})")));
        }
        let mut version = self.version.lock().await;
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: version.clone(),
                ..Default::default()
            },
            data: Some(files.clone()),
            ..Default::default()
        };
        let fenced = |e: kube::Error| match &e {
            kube::Error::Api(s) if s.code == 409 => {
                state_err("writing", "another replica wrote it since this one read it: this one no longer leads")
            }
            _ => state_err("writing", e),
        };
        let written = match version.as_ref() {
            Some(_) => self.api.replace(&self.name, &PostParams::default(), &cm).await.map_err(fenced)?,
            None => self.api.create(&PostParams::default(), &cm).await.map_err(fenced)?,
        };
        *version = written.metadata.resource_version;
        Ok(())
    }
}

/// The files as they are now (absent ones left out).
pub fn read(files: &[(String, PathBuf)]) -> Result<BTreeMap<String, String>, ControllerError> {
    let mut out = BTreeMap::new();
    for (key, path) in files {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                out.insert(key.clone(), text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ControllerError::Io { action: "reading", path: path.clone(), source }),
        }
    }
    Ok(out)
}

/// Writes the copy into `state_dir`, before the controller opens it. Keys
/// other than [`FILES`] are refused: the copy never names a path.
pub fn adopt(state_dir: &Path, copy: &BTreeMap<String, String>) -> Result<usize, ControllerError> {
    for key in copy.keys() {
        if !FILES.contains(&key.as_str()) {
            return Err(state_err("adopting", format!("unexpected key {key:?} (expected {FILES:?})")));
        }
    }
    std::fs::create_dir_all(state_dir).map_err(|source| ControllerError::Io {
        action: "creating",
        path: state_dir.to_path_buf(),
        source,
    })?;
    for (key, text) in copy {
        write_durable(&state_dir.join(key), text.as_bytes())?;
    }
    Ok(copy.len())
}

/// The leader's copier: every [`EVERY`], saves the files if they changed
/// since the last save that succeeded.
pub async fn follow(state: ClusterState, files: Vec<(String, PathBuf)>) {
    let mut saved: Option<BTreeMap<String, String>> = None;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let now = match read(&files) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading the state to copy into the cluster");
                continue;
            }
        };
        if saved.as_ref() == Some(&now) {
            continue;
        }
        match state.save(&now).await {
            Ok(()) => saved = Some(now),
            Err(e) => tracing::error!(error = %e, "copying the state into the cluster; trying again"),
        }
    }
}
