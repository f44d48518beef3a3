//! The revoked-agents file: one entry per line, either a node name (every
//! certificate for it is refused) or `sha256:HEX` (one certificate, as the
//! controller logs it on connect). `#` starts a comment. The file is read
//! again whenever it changes; a bad edit is refused and the last good list
//! stays in force, so a typo never re-admits anyone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::directory::Connection;
use crate::error::ControllerError;

/// What is revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revoked {
    nodes: BTreeSet<String>,
    fingerprints: BTreeSet<String>,
}

/// A node name as agent certificates carry it (Kubernetes' DNS names, and
/// the lab's `LAB_nN`).
pub(crate) fn node_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl Revoked {
    /// Parses the file's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ControllerError> {
        let mut out = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |message: String| ControllerError::Revocations {
                path: path.to_path_buf(),
                message: format!("line {}: {message}", i + 1),
            };
            if let Some(hex) = line.strip_prefix("sha256:") {
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("{line:?}: a fingerprint is sha256: and 64 hex digits")));
                }
                out.fingerprints.insert(format!("sha256:{}", hex.to_ascii_lowercase()));
            } else if node_name(line) {
                out.nodes.insert(line.to_string());
            } else {
                return Err(bad(format!("{line:?} is neither a node name nor sha256:HEX")));
            }
        }
        Ok(out)
    }

    /// Whether `c` is refused.
    pub fn covers(&self, c: &Connection) -> bool {
        self.nodes.contains(&c.node) || self.fingerprints.contains(&c.fingerprint)
    }

    /// Whether every certificate of `node` is refused (before one is signed for it).
    pub fn covers_node(&self, node: &str) -> bool {
        self.nodes.contains(node)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.nodes.len() + self.fingerprints.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The file and the last good list read from it.
#[derive(Debug)]
pub struct RevocationFile {
    path: PathBuf,
    seen: Option<Stamp>,
    current: Revoked,
}

/// What the file looked like when last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// Not there, in a directory that is (an optional ConfigMap not created yet).
    Absent,
    /// Its modification time and length.
    At(SystemTime, u64),
}

fn stamp(path: &Path) -> Result<Stamp, std::io::Error> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Stamp::At(meta.modified()?, meta.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A missing directory is a wrong path, never "nobody is revoked".
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::metadata(dir)?;
            Ok(Stamp::Absent)
        }
        Err(e) => Err(e),
    }
}

impl RevocationFile {
    /// Reads `path` now: at startup a bad file or a missing directory is an
    /// error. A missing file in an existing directory revokes nobody until
    /// it appears (a ConfigMap created later).
    pub fn open(path: &Path) -> Result<Self, ControllerError> {
        let mut file = Self { path: path.to_path_buf(), seen: None, current: Revoked::default() };
        file.reload()?;
        Ok(file)
    }

    /// The list in force.
    pub fn current(&self) -> &Revoked {
        &self.current
    }

    /// Reads the file again if it changed. `Ok(true)`: a new list is in
    /// force. On an error the last good list stays.
    pub fn reload(&mut self) -> Result<bool, ControllerError> {
        let io = |e: std::io::Error| ControllerError::Revocations { path: self.path.clone(), message: e.to_string() };
        let now = stamp(&self.path).map_err(io)?;
        if self.seen == Some(now) {
            return Ok(false);
        }
        if now == Stamp::Absent && matches!(self.seen, Some(Stamp::At(..))) {
            // A list that vanished (a ConfigMap deleted) re-admits nobody.
            return Err(ControllerError::Revocations {
                path: self.path.clone(),
                message: "the file is gone; the last good list stays in force".into(),
            });
        }
        if now == Stamp::Absent {
            tracing::warn!(path = %self.path.display(), "no revoked-agents file: nobody is revoked");
            self.seen = Some(now);
            self.current = Revoked::default();
            return Ok(true);
        }
        let text = std::fs::read_to_string(&self.path).map_err(io)?;
        let parsed = Revoked::parse(&self.path, &text);
        // Seen either way: a bad edit is reported once, not every second.
        self.seen = Some(now);
        self.current = parsed?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn conn(node: &str, fp: &str) -> Connection {
        Connection { node: node.into(), peer: String::new(), fingerprint: fp.into(), since_unix_ms: 0 }
    }

    #[test]
    fn nodes_and_fingerprints_are_revoked_and_bad_lines_are_named() {
        let fp = format!("sha256:{}", "AB".repeat(32));
        let text = format!("# lost laptops\nnode-7\n\n{fp}  # re-issued\n");
        let r = Revoked::parse(Path::new("revoked"), &text).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.covers(&conn("node-7", "sha256:00")));
        assert!(r.covers(&conn("n1", &fp.to_ascii_lowercase())));
        assert!(!r.covers(&conn("n1", "sha256:00")));
        let err = Revoked::parse(Path::new("revoked"), "n1\nnode 7\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("node 7"), "{err}");
        let err = Revoked::parse(Path::new("revoked"), "sha256:abc\n").unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn a_bad_edit_keeps_the_last_good_list() {
        struct Gone(PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Gone(std::env::temp_dir().join(format!("bh-revoked-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("revoked");
        std::fs::write(&path, "n1\n").unwrap();
        let mut file = RevocationFile::open(&path).unwrap();
        assert!(file.current().covers(&conn("n1", "")));
        std::fs::write(&path, "n1\nnot a node\n").unwrap();
        assert!(file.reload().is_err());
        assert!(file.current().covers(&conn("n1", "")), "the last good list stays");
        std::fs::write(&path, "n2\n").unwrap();
        assert!(file.reload().unwrap());
        assert!(!file.current().covers(&conn("n1", "")) && file.current().covers(&conn("n2", "")));

        // A file not created yet revokes nobody; a wrong directory is an error.
        let later = dir.0.join("later");
        let mut file = RevocationFile::open(&later).unwrap();
        assert!(file.current().is_empty());
        std::fs::write(
            &later, "n3
",
        )
        .unwrap();
        assert!(file.reload().unwrap() && file.current().covers_node("n3"));
        // Gone again: the last list stays.
        std::fs::remove_file(&later).unwrap();
        assert!(file.reload().is_err());
        assert!(file.current().covers_node("n3"), "a vanished list re-admits nobody");
        let err = RevocationFile::open(&dir.0.join("no-such-dir/revoked")).unwrap_err().to_string();
        assert!(err.contains("no-such-dir"), "{err}");
    }
}
