//! Running a piece of work inside another network namespace.

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
