//! The tokens file: who holds which bearer token, with what role and in
//! which namespaces. Only SHA-256 hashes of the tokens are stored, so the
//! file reveals no token; tokens are compared in constant time.
//!
//! ```yaml
//! tokens:
//! - user: alice
//!   role: admin            # viewer | responder | reviewer | admin
//!   sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
//! - user: shop-team
//!   role: reviewer
//!   namespaces: [shop]     # absent: cluster-wide
//!   sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
//! ```

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use bulkhead_model::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Scope;

/// One token holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The user's name, as audit records show it.
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// The namespaces the user is scoped to; absent for cluster-wide access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

impl TokenEntry {
    /// The entry's scope.
    pub fn scope(&self) -> Scope {
        super::scope_of(self.namespaces.as_deref())
    }
}

/// The file's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Every token holder.
    pub tokens: Vec<TokenEntry>,
    #[serde(skip)]
    hashes: Vec<[u8; 32]>,
}

/// The tokens file is unreadable or invalid; the controller does not start.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// It could not be read.
    #[error("reading tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry is invalid.
    #[error("tokens file {path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `tokens[2].sha256`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Lowercase hex SHA-256 of a token, as the file stores it.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A new random token (32 bytes from the kernel, hex).
pub fn generate() -> Result<String, std::io::Error> {
    use std::io::Read;
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal without an early exit, so timing tells nothing of where two hashes differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenFile {
    /// Reads and validates the file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenFileError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|(field, message)| TokenFileError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        })
    }

    /// Parses and validates a document; errors name the field.
    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        let mut file: TokenFile = serde_yaml::from_str(text).map_err(|e| ("tokens".to_string(), e.to_string()))?;
        let mut users = std::collections::BTreeSet::new();
        for (i, t) in file.tokens.iter().enumerate() {
            let field = |f: &str| format!("tokens[{i}].{f}");
            if t.user.trim().is_empty() {
                return Err((field("user"), "must not be empty".into()));
            }
            if !users.insert(t.user.clone()) {
                return Err((field("user"), format!("{:?} appears twice", t.user)));
            }
            let h = unhex(&t.sha256.to_ascii_lowercase())
                .ok_or_else(|| (field("sha256"), "expected 64 hex digits (sha256sum of the token)".to_string()))?;
            if file.hashes.iter().any(|o| same(o, &h)) {
                return Err((field("sha256"), "the same token is given to two users".into()));
            }
            if let Some(ns) = &t.namespaces {
                if ns.is_empty() {
                    return Err((
                        field("namespaces"),
                        "an empty list grants nothing; leave it out for cluster-wide access".into(),
                    ));
                }
                if let Some(bad) = ns.iter().find(|n| n.is_empty() || n.len() > 63) {
                    return Err((field("namespaces"), format!("{bad:?} is not a namespace name")));
                }
            }
            file.hashes.push(h);
        }
        Ok(file)
    }

    /// The holder of `token`, if any. Every entry is compared, so the time
    /// taken does not depend on which one matches.
    pub fn verify(&self, token: &str) -> Option<&TokenEntry> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (entry, h) in self.tokens.iter().zip(&self.hashes) {
            if same(h, &digest) {
                found = Some(entry);
            }
        }
        found
    }

    /// A file of `entries`, as YAML (what `load` reads).
    pub fn to_yaml(entries: &[TokenEntry]) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(&TokenFile { tokens: entries.to_vec(), hashes: Vec::new() })
    }

    /// Number of token holders.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_verify_by_hash_and_bad_entries_name_their_field() {
        let doc = format!(
            "tokens:\n- {{user: alice, role: admin, sha256: {}}}\n- {{user: shop, role: viewer, namespaces: [shop], sha256: {}}}\n",
            hash("s3cret"),
            hash("other")
        );
        let f = TokenFile::parse(&doc).unwrap();
        assert_eq!(f.verify("s3cret").map(|e| e.user.as_str()), Some("alice"));
        assert_eq!(f.verify("other").map(|e| e.scope()), Some(Scope::Namespaces(["shop".to_string()].into())));
        assert!(f.verify("s3cre").is_none() && f.verify("").is_none());
        let bad = TokenFile::parse("tokens:\n- {user: bob, role: root, sha256: aa}\n").unwrap_err();
        assert_eq!(bad.0, "tokens");
        assert!(bad.1.contains("root"), "{bad:?}");
        let bad = TokenFile::parse("tokens:\n- {user: bob, role: admin, sha256: abc}\n").unwrap_err();
        assert_eq!(bad.0, "tokens[0].sha256");
        let dup = format!(
            "tokens:\n- {{user: a, role: admin, sha256: {0}}}\n- {{user: b, role: viewer, sha256: {0}}}\n",
            hash("x")
        );
        assert_eq!(TokenFile::parse(&dup).unwrap_err().0, "tokens[1].sha256");
    }
}

/// The tokens file as the server uses it: re-read when it changes (checked
/// at most once a second), so tokens are added and revoked without a
/// restart. A change that does not parse is refused loudly and the last
/// valid file stays in force.
#[derive(Debug)]
pub struct TokenSource {
    path: PathBuf,
    state: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    file: TokenFile,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// How often the file is checked for changes.
const RECHECK: Duration = Duration::from_secs(1);

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TokenSource {
    /// Reads the file; the server does not start without a valid one.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let file = TokenFile::load(path)?;
        let state = Loaded { file, modified: modified(path), checked: Instant::now() };
        Ok(Self { path: path.to_path_buf(), state: RwLock::new(state) })
    }

    fn refresh(&self) {
        let stale = self.state.read().map(|s| s.checked.elapsed() >= RECHECK).unwrap_or(false);
        if !stale {
            return;
        }
        let Ok(mut s) = self.state.write() else { return };
        s.checked = Instant::now();
        let now = modified(&self.path);
        if now == s.modified {
            return;
        }
        s.modified = now;
        match TokenFile::load(&self.path) {
            Ok(file) => {
                tracing::info!(path = %self.path.display(), holders = file.len(), "tokens file reloaded");
                s.file = file;
            }
            Err(e) => {
                tracing::error!(error = %e, "tokens file changed but is invalid; the previous tokens stay in force")
            }
        }
    }

    /// The holder of `token`, if any, from the file as it is now.
    pub fn verify(&self, token: &str) -> Option<TokenEntry> {
        self.refresh();
        self.state.read().ok().and_then(|s| s.file.verify(token).cloned())
    }

    /// Number of token holders.
    pub fn len(&self) -> usize {
        self.state.read().map(|s| s.file.len()).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
