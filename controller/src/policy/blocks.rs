//! The cluster's block list, owned by the controller: IPs and CIDRs
//! dropped both ways on every node before policy. Each block is saved
//! (synced to disk) before it is pushed, carried in every node's desired
//! state, and ends when a person lifts it or when its time runs out. The
//! agents lift an expired block on their own too, so it ends on time while
//! the controller is away.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bulkhead_api::agent::v1 as agent_pb;
use bulkhead_api::v1::blocks::{Block, BlockState};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;

/// The most prefixes in force at once: what one node's map holds.
pub const MAX_ACTIVE: usize = bulkhead_model::MAX_BLOCKS as usize;

/// One block and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Id, never reused; also the id in the nodes' maps.
    pub id: u64,
    /// The prefix, host bits zero.
    pub net: IpNetwork,
    /// Why.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When, nanoseconds since the epoch.
    pub created_ns: i64,
    /// When it ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ns: Option<i64>,
    /// Active, lifted or expired.
    pub state: BlockState,
    /// Who lifted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
    /// When it was lifted or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ns: Option<i64>,
    /// Why it was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl Record {
    /// The document of the API.
    pub fn document(&self) -> Block {
        Block {
            id: self.id,
            cidr: self.net.to_string(),
            state: self.state,
            reason: self.reason.clone(),
            created_by: self.created_by.clone(),
            created_ns: self.created_ns,
            expires_ns: self.expires_ns,
            lifted_by: self.lifted_by.clone(),
            ended_ns: self.ended_ns,
            end_reason: self.end_reason.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    next_id: u64,
    records: Vec<Record>,
}

/// Every block, persisted in the state dir.
#[derive(Debug)]
pub struct Book {
    path: PathBuf,
    records: BTreeMap<u64, Record>,
    next_id: u64,
}

/// An IP or CIDR as the user wrote it, as a prefix with host bits zero.
/// A bare address is one host; host bits set are refused, not rounded, so a
/// typo never blocks more than asked.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    let s = s.trim();
    let net: IpNetwork = s.parse().map_err(|e| format!("{s:?} is neither an IP address nor a CIDR: {e}"))?;
    if net.network() != net.ip() {
        return Err(format!("{s} has host bits set; did you mean {}/{}?", net.network(), net.prefix()));
    }
    if net.prefix() == 0 {
        return Err(format!("{s} would block every address; block narrower prefixes"));
    }
    Ok(net)
}

impl Book {
    /// Loads the book, or starts an empty one.
    pub fn load(path: &Path) -> Result<Self, ControllerError> {
        let file: File = crate::policy::files::read_json(path)?;
        let records: BTreeMap<u64, Record> = file.records.into_iter().map(|r| (r.id, r)).collect();
        let next_id = file.next_id.max(records.keys().max().map_or(1, |m| m + 1));
        Ok(Self { path: path.to_path_buf(), records, next_id })
    }

    fn save(&self) -> Result<(), ControllerError> {
        let file = File { next_id: self.next_id, records: self.records.values().cloned().collect() };
        let text = serde_json::to_vec(&file)
            .map_err(|e| ControllerError::StateFile { path: self.path.clone(), message: e.to_string() })?;
        crate::policy::files::write_durable(&self.path, &text)
    }

    /// Runs `change` on a copy of the records and keeps it only once saved:
    /// a block that could not be made durable was never made.
    fn saved<T>(&mut self, change: impl FnOnce(&mut Self) -> T) -> Result<T, ControllerError> {
        let (records, next_id) = (self.records.clone(), self.next_id);
        let out = change(self);
        if let Err(e) = self.save() {
            (self.records, self.next_id) = (records, next_id);
            return Err(e);
        }
        Ok(out)
    }

    /// Every record, newest first.
    pub fn all(&self) -> impl Iterator<Item = &Record> {
        self.records.values().rev()
    }

    /// One record.
    pub fn get(&self, id: u64) -> Option<&Record> {
        self.records.get(&id)
    }

    /// Blocks in force.
    pub fn active(&self) -> impl Iterator<Item = &Record> {
        self.records.values().filter(|r| r.state == BlockState::Active)
    }

    /// Blocks `net`, durably. An active block of the same prefix is
    /// returned as it stands (`false`: nothing was made).
    pub fn block(
        &mut self,
        net: IpNetwork,
        reason: &str,
        by: &str,
        expires_ns: Option<i64>,
        now_ns: i64,
    ) -> Result<(Record, bool), ControllerError> {
        if let Some(r) = self.active().find(|r| r.net == net) {
            return Ok((r.clone(), false));
        }
        if self.active().count() >= MAX_ACTIVE {
            return Err(ControllerError::Conflict(format!(
                "{MAX_ACTIVE} blocks are in force, the most a node holds; lift some or block wider prefixes"
            )));
        }
        let record = self.saved(|b| {
            let r = Record {
                id: b.next_id,
                net,
                reason: reason.to_string(),
                created_by: by.to_string(),
                created_ns: now_ns,
                expires_ns,
                state: BlockState::Active,
                lifted_by: None,
                ended_ns: None,
                end_reason: None,
            };
            b.next_id += 1;
            b.records.insert(r.id, r.clone());
            r
        })?;
        Ok((record, true))
    }

    /// Lifts block `id`, durably.
    pub fn lift(&mut self, id: u64, reason: &str, by: &str, now_ns: i64) -> Result<Record, ControllerError> {
        let Some(r) = self.records.get(&id) else { return Err(ControllerError::NotFound(format!("block {id}"))) };
        if r.state != BlockState::Active {
            return Err(ControllerError::Conflict(format!(
                "block {id} ({}) is already {}",
                r.net,
                state_name(r.state)
            )));
        }
        self.saved(|b| {
            b.records.get_mut(&id).map(|r| {
                r.state = BlockState::Lifted;
                r.lifted_by = Some(by.to_string());
                r.ended_ns = Some(now_ns);
                r.end_reason = Some(reason.to_string());
                r.clone()
            })
        })?
        .ok_or_else(|| ControllerError::NotFound(format!("block {id}")))
    }

    /// Ends every block whose time is up at `now_ns`, durably; the ended ones.
    pub fn expire(&mut self, now_ns: i64) -> Result<Vec<Record>, ControllerError> {
        let due: Vec<u64> = self.active().filter(|r| r.expires_ns.is_some_and(|t| t <= now_ns)).map(|r| r.id).collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        self.saved(|b| {
            let mut ended = Vec::with_capacity(due.len());
            for id in &due {
                if let Some(r) = b.records.get_mut(id) {
                    r.state = BlockState::Expired;
                    r.ended_ns = r.expires_ns;
                    ended.push(r.clone());
                }
            }
            ended
        })
    }

    /// The block list every node's desired state carries.
    pub fn entries(&self) -> Vec<agent_pb::BlockEntry> {
        self.active()
            .map(|r| agent_pb::BlockEntry { id: r.id, cidr: r.net.to_string(), expires_ns: r.expires_ns.unwrap_or(0) })
            .collect()
    }
}

fn state_name(s: BlockState) -> &'static str {
    match s {
        BlockState::Active => "active",
        BlockState::Lifted => "lifted",
        BlockState::Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn book(name: &str) -> (Book, Dir) {
        let dir = Dir(std::env::temp_dir().join(format!("bulkhead-blocks-{name}-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        (Book::load(&dir.0.join("blocks.json")).unwrap(), dir)
    }

    #[test]
    fn addresses_and_prefixes_parse_exactly() {
        assert_eq!(parse_cidr("203.0.113.7").unwrap().to_string(), "203.0.113.7/32");
        assert_eq!(parse_cidr(" 2001:db8::/32 ").unwrap().to_string(), "2001:db8::/32");
        assert!(parse_cidr("203.0.113.7/24").unwrap_err().contains("did you mean 203.0.113.0/24"));
        assert!(parse_cidr("0.0.0.0/0").unwrap_err().contains("every address"));
        assert!(parse_cidr("evil").unwrap_err().contains("neither an IP address nor a CIDR"));
    }

    #[test]
    fn blocks_are_durable_deduplicated_lifted_and_expired() {
        let (mut b, dir) = book("life");
        let net = parse_cidr("203.0.113.0/24").unwrap();
        let (r, made) = b.block(net, "scan", "alice", Some(2_000), 1_000).unwrap();
        assert!(made && r.id == 1);
        let (again, made) = b.block(net, "again", "bob", None, 1_100).unwrap();
        assert!(!made && again.id == 1, "an active block of the same prefix is returned");
        let (other, _) = b.block(parse_cidr("198.51.100.9").unwrap(), "c2", "alice", None, 1_200).unwrap();
        assert_eq!(b.entries().len(), 2);
        assert!(b.expire(1_999).unwrap().is_empty());
        let ended = b.expire(2_000).unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].state, ended[0].ended_ns), (BlockState::Expired, Some(2_000)));
        let lifted = b.lift(other.id, "false positive", "carol", 3_000).unwrap();
        assert_eq!((lifted.state, lifted.lifted_by.as_deref()), (BlockState::Lifted, Some("carol")));
        assert!(matches!(b.lift(other.id, "x", "carol", 3_001), Err(ControllerError::Conflict(_))));
        assert!(matches!(b.lift(99, "x", "carol", 3_001), Err(ControllerError::NotFound(_))));
        assert!(b.entries().is_empty());
        // Reloaded from disk: the same history, ids never reused.
        let mut again = Book::load(&dir.0.join("blocks.json")).unwrap();
        assert_eq!(again.all().count(), 2);
        let (r3, _) = again.block(net, "again", "alice", None, 4_000).unwrap();
        assert_eq!(r3.id, 3);
    }

    #[test]
    fn a_block_that_cannot_be_saved_is_not_made() {
        let (mut b, dir) = book("unsaved");
        std::fs::remove_dir_all(&dir.0).unwrap();
        let err = b.block(parse_cidr("203.0.113.7").unwrap(), "x", "alice", None, 1).unwrap_err();
        assert!(matches!(err, ControllerError::Io { .. }), "{err}");
        assert_eq!(b.all().count(), 0);
        assert!(b.entries().is_empty());
    }
}
