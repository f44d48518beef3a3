//! The directory of agents: node → how to reach it now. Sync, flow reading
//! and the quarantine fast path all ask here, so an agent that dialed again
//! is used by all of them at once, and a revoked one by none.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, watch};
use tonic::transport::Channel;

use crate::error::ControllerError;

/// One agent connection over the network, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Connection {
    /// The node its certificate names.
    pub node: String,
    /// Where it dialed from.
    pub peer: String,
    /// SHA-256 of its certificate, `sha256:HEX` (what a revocation names).
    pub fingerprint: String,
    /// When it connected, milliseconds since the epoch.
    pub since_unix_ms: u64,
}

struct Tunnel {
    channel: Channel,
    id: u64,
    info: Connection,
    cut: Arc<Notify>,
}

enum Link {
    /// A socket on this host; the channel is opened on first use and kept.
    Unix { path: PathBuf, channel: Option<Channel> },
    /// The agent's own connection, while it lasts.
    Tunnel(Tunnel),
    /// A network agent that was connected and is not now.
    Gone,
}

struct Entry {
    link: Link,
    /// Bumped whenever the node's link changes, to wake its tasks.
    changes: watch::Sender<u64>,
}

impl Entry {
    fn new(link: Link) -> Self {
        Self { link, changes: watch::channel(0).0 }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// What `join` tells the connection's task.
#[derive(Debug)]
pub struct Joined {
    /// Names this connection in `left`.
    pub id: u64,
    /// Notified when the connection must close (replaced or revoked).
    pub cut: Arc<Notify>,
    /// The node had no tasks yet: the caller starts them.
    pub first: bool,
}

/// Node → its agent's link.
#[derive(Default)]
pub struct Directory {
    entries: Mutex<BTreeMap<String, Entry>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("nodes", &self.nodes()).finish()
    }
}

fn unreachable(node: &str, reason: impl Into<String>) -> ControllerError {
    ControllerError::AgentUnreachable { node: node.to_string(), reason: reason.into() }
}

impl Directory {
    /// A directory of agents on this host's Unix sockets.
    pub fn with_sockets(sockets: &BTreeMap<String, PathBuf>) -> Self {
        let entries = sockets
            .iter()
            .map(|(node, path)| (node.clone(), Entry::new(Link::Unix { path: path.clone(), channel: None })))
            .collect();
        Self { entries: Mutex::new(entries), next_id: AtomicU64::new(1) }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Entry>>, ControllerError> {
        self.entries.lock().map_err(|_| ControllerError::Serve {
            what: "agent directory",
            message: "lock poisoned by an earlier panic".into(),
        })
    }

    /// Every node the directory has known, connected or not.
    pub fn nodes(&self) -> Vec<String> {
        self.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// The agents connected over the network now.
    pub fn connections(&self) -> Vec<Connection> {
        let Ok(m) = self.lock() else { return Vec::new() };
        m.values()
            .filter_map(|e| match &e.link {
                Link::Tunnel(t) => Some(t.info.clone()),
                _ => None,
            })
            .collect()
    }

    /// A channel to `node`'s agent now.
    pub async fn channel(&self, node: &str) -> Result<Channel, ControllerError> {
        let path = {
            let m = self.lock()?;
            match m.get(node).map(|e| &e.link) {
                None => return Err(unreachable(node, "no agent is known for this node")),
                Some(Link::Gone) => return Err(unreachable(node, "its agent is not connected; it dials again")),
                Some(Link::Tunnel(t)) => return Ok(t.channel.clone()),
                Some(Link::Unix { channel: Some(c), .. }) => return Ok(c.clone()),
                Some(Link::Unix { path, channel: None }) => path.clone(),
            }
        };
        let channel = bulkhead_api::unix_channel(&path).await.map_err(|e| unreachable(node, e.to_string()))?;
        if let Some(Entry { link: Link::Unix { channel: slot, .. }, .. }) = self.lock()?.get_mut(node) {
            *slot = Some(channel.clone());
        }
        Ok(channel)
    }

    /// After a failed call: a socket's channel is opened again next time.
    pub fn forget(&self, node: &str) {
        if let Ok(mut m) = self.lock()
            && let Some(Entry { link: Link::Unix { channel, .. }, .. }) = m.get_mut(node)
        {
            *channel = None;
        }
    }

    /// Wakes when `node`'s link changes (an agent dialed in or left).
    pub fn watch(&self, node: &str) -> Option<watch::Receiver<u64>> {
        self.lock().ok()?.get(node).map(|e| e.changes.subscribe())
    }

    /// Records `node`'s new connection. One dialed before it is cut: a node
    /// has one agent, and the newest connection is the live one.
    pub fn join(&self, channel: Channel, info: Connection) -> Result<Joined, ControllerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cut = Arc::new(Notify::new());
        let node = info.node.clone();
        let tunnel = Link::Tunnel(Tunnel { channel, id, info, cut: cut.clone() });
        let mut m = self.lock()?;
        let first = match m.get_mut(&node) {
            Some(entry) => {
                if let Link::Tunnel(old) = std::mem::replace(&mut entry.link, tunnel) {
                    old.cut.notify_one();
                }
                entry.changed();
                false
            }
            None => {
                m.insert(node, Entry::new(tunnel));
                true
            }
        };
        Ok(Joined { id, cut, first })
    }

    /// Connection `id` of `node` closed (nothing if a newer one replaced it).
    pub fn left(&self, node: &str, id: u64) {
        if let Ok(mut m) = self.lock()
            && let Some(entry) = m.get_mut(node)
            && matches!(&entry.link, Link::Tunnel(t) if t.id == id)
        {
            entry.link = Link::Gone;
            entry.changed();
        }
    }

    /// Cuts every live connection `revoked` names, and says which.
    pub fn cut_where(&self, revoked: impl Fn(&Connection) -> bool) -> Vec<Connection> {
        let Ok(mut m) = self.lock() else { return Vec::new() };
        let mut cut = Vec::new();
        for entry in m.values_mut() {
            if matches!(&entry.link, Link::Tunnel(t) if revoked(&t.info))
                && let Link::Tunnel(t) = std::mem::replace(&mut entry.link, Link::Gone)
            {
                t.cut.notify_one();
                cut.push(t.info);
                entry.changed();
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(node: &str, fp: &str) -> Connection {
        Connection { node: node.into(), peer: "172.30.0.1:40000".into(), fingerprint: fp.into(), since_unix_ms: 1 }
    }

    fn lazy() -> Channel {
        tonic::transport::Endpoint::from_static("http://agent.invalid").connect_lazy()
    }

    #[tokio::test]
    async fn a_redial_replaces_and_cuts_the_old_connection_and_a_late_close_of_it_changes_nothing() {
        let dir = Directory::default();
        let first = dir.join(lazy(), info("n1", "sha256:aa")).unwrap();
        assert!(first.first);
        let woken = dir.watch("n1").unwrap();
        let second = dir.join(lazy(), info("n1", "sha256:bb")).unwrap();
        assert!(!second.first);
        assert!(woken.has_changed().unwrap(), "the node's tasks are woken");
        // The old connection was told to close.
        tokio::time::timeout(std::time::Duration::from_secs(1), first.cut.notified()).await.unwrap();
        dir.left("n1", first.id);
        assert_eq!(dir.connections()[0].fingerprint, "sha256:bb", "the old connection's close is ignored");
        assert!(dir.channel("n1").await.is_ok());
        dir.left("n1", second.id);
        let err = dir.channel("n1").await.unwrap_err().to_string();
        assert!(err.contains("not connected"), "{err}");
        let err = dir.channel("n2").await.unwrap_err().to_string();
        assert!(err.contains("no agent is known"), "{err}");
    }

    #[tokio::test]
    async fn revocation_cuts_only_what_it_names() {
        let dir = Directory::default();
        let a = dir.join(lazy(), info("n1", "sha256:aa")).unwrap();
        let _b = dir.join(lazy(), info("n2", "sha256:bb")).unwrap();
        let cut = dir.cut_where(|c| c.fingerprint == "sha256:aa");
        assert_eq!(cut.iter().map(|c| c.node.as_str()).collect::<Vec<_>>(), ["n1"]);
        tokio::time::timeout(std::time::Duration::from_secs(1), a.cut.notified()).await.unwrap();
        assert!(dir.channel("n1").await.is_err());
        assert!(dir.channel("n2").await.is_ok());
        assert_eq!(dir.nodes(), ["n1", "n2"], "a cut node stays known, so its sync reports it out of sync");
    }
}
