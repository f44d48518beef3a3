//! Entering network namespaces: the one helper every Bulkhead process uses,
//! the agent and controller on a node as much as the lab.

use std::fs::File;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use crate::CniError;

/// Opens a netns file so that it can be entered and also referred to by fd
/// from the node side (nsid lookup), without racing against the pod being
/// deleted between the two uses.
pub(crate) fn open(netns: &Path) -> Result<File, CniError> {
    File::open(netns).map_err(|source| CniError::NetnsOpen { netns: netns.to_path_buf(), source })
}

/// Runs `work` inside the network namespace `ns_file` (opened from `netns`).
///
/// `setns(2)` changes the namespace of the *calling thread* only, and a thread
/// that moved can leak its namespace into whatever the caller does next (or
/// into a runtime's worker pool). So the work runs on a short-lived scoped
/// thread that is the only one ever to enter the pod namespace, and that
/// thread dies with it; the caller's thread never changes namespace.
pub(crate) fn run_in<T, F>(netns: &Path, ns_file: &File, work: F) -> Result<T, CniError>
where
    T: Send,
    F: FnOnce() -> Result<T, CniError> + Send,
{
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("bulkhead-netns".to_owned())
            .spawn_scoped(scope, || {
                setns(ns_file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| CniError::NetnsEnter { netns: netns.to_path_buf(), source })?;
                work()
            })
            .map_err(|source| CniError::NetnsThreadSpawn { netns: netns.to_path_buf(), source })?;
        handle.join().map_err(|_panic| CniError::NetnsThreadPanicked { netns: netns.to_path_buf() })?
    })
}

/// Runs `work` on a helper thread inside the network namespace at `netns`,
/// for callers outside this crate (the agent reads a pod's socket tables
/// this way). The caller's thread never changes namespace.
pub fn in_netns<T, F>(netns: &Path, work: F) -> Result<T, CniError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let ns_file = open(netns)?;
    run_in(netns, &ns_file, || Ok(work()))
}

/// Moves the calling thread into the network namespace at `netns`, for a
/// process that starts inside a node's namespace (`--netns`) before it
/// spawns any thread, or a thread that lives there for good. Anything
/// shorter runs in the namespace with [`in_netns`] instead.
pub fn enter(netns: &Path) -> Result<(), CniError> {
    let ns_file = open(netns)?;
    setns(&ns_file, CloneFlags::CLONE_NEWNET)
        .map_err(|source| CniError::NetnsEnter { netns: netns.to_path_buf(), source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entering_names_what_is_wrong_and_the_own_namespace_is_a_no_op() {
        let missing = enter(Path::new("/nonexistent/netns")).unwrap_err();
        assert!(matches!(missing, CniError::NetnsOpen { .. }), "{missing}");
        // A file that is no namespace: setns refuses it, and says which file.
        let not_ns = enter(Path::new("/proc/self/status")).unwrap_err();
        assert!(matches!(not_ns, CniError::NetnsEnter { .. }), "{not_ns}");
        assert!(not_ns.to_string().contains("/proc/self/status"), "{not_ns}");
        let own =
            in_netns(Path::new("/proc/self/ns/net"), || std::fs::read_link("/proc/thread-self/ns/net").ok()).unwrap();
        assert_eq!(own, std::fs::read_link("/proc/self/ns/net").ok());
    }
}
