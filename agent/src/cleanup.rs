//! Removing a node's enforcement for good (uninstall): every program, map
//! and link lives under the node's pin directory, so removing it detaches
//! all of them once no agent holds them. Run only after the agent stopped:
//! a running agent keeps its links until it exits.

use std::path::{Path, PathBuf};

use bulkhead_dataplane::PinLayout;

use crate::error::AgentError;

/// What a cleanup removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The pin directory.
    pub path: PathBuf,
    /// Link pins removed (one per interface and hook): the attachments undone.
    pub links: usize,
    /// Whether anything was pinned at all.
    pub existed: bool,
}

/// Removes the pins of `node` under the default root.
pub fn remove_pins(node: &str) -> Result<Cleaned, AgentError> {
    remove_at(&PinLayout::for_node(node))
}

/// Removes the pins of `layout`.
pub fn remove_at(layout: &PinLayout) -> Result<Cleaned, AgentError> {
    let path = layout.root().to_path_buf();
    if !path.exists() {
        return Ok(Cleaned { path, links: 0, existed: false });
    }
    let links = count(&layout.links());
    std::fs::remove_dir_all(&path).map_err(|source| AgentError::Io {
        action: "removing pins",
        path: path.clone(),
        source,
    })?;
    Ok(Cleaned { path, links, existed: true })
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_missing_directory_is_nothing_to_do_and_a_present_one_goes_entirely() {
        let root = std::env::temp_dir().join(format!("bh-cleanup-{}", std::process::id()));
        let layout = PinLayout::at(&root);
        let none = remove_at(&layout).unwrap();
        assert!(!none.existed && none.links == 0);
        std::fs::create_dir_all(layout.links()).unwrap();
        std::fs::create_dir_all(layout.maps()).unwrap();
        for f in ["7-from_pod", "7-to_pod"] {
            std::fs::write(layout.links().join(f), b"").unwrap();
        }
        let done = remove_at(&layout).unwrap();
        assert!(done.existed && done.links == 2, "{done:?}");
        assert!(!root.exists());
    }
}
