//! Errors of the dataplane layer, each naming what it was doing.

use std::path::PathBuf;

/// Everything that can go wrong loading, attaching or talking to the eBPF side.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Loading an eBPF object into the kernel failed.
    #[error("loading eBPF object {object}: {source}")]
    Load {
        /// Name of the object (`tc_from_pod`, `tc_to_pod`, `xdp_quarantine` or `xdp_prefilter`).
        object: &'static str,
        /// The loader's error, boxed to keep the enum small.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A program was not found in its object, or had an unexpected program type.
    #[error("program {program} missing from its object or of the wrong type")]
    MissingProgram {
        /// Name of the program looked up.
        program: &'static str,
    },
    /// Loading or attaching a program failed.
    #[error("{action} program {program}: {source}")]
    Program {
        /// What was being done, e.g. "loading".
        action: &'static str,
        /// Name of the program.
        program: &'static str,
        /// The program error, boxed to keep the enum small.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// Pinning, opening or adopting a bpffs link or program pin failed.
    #[error("{action} link {path}: {message}")]
    Link {
        /// What was being done, e.g. "pinning program".
        action: &'static str,
        /// The bpffs pin path involved.
        path: PathBuf,
        /// The underlying error, already rendered as text.
        message: String,
    },
    /// Opening a map pinned in bpffs failed.
    #[error("opening pinned map {path}: {source}")]
    OpenMap {
        /// The map's pin path.
        path: PathBuf,
        /// The map error, boxed to keep the enum small.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A lookup, update or delete on a pinned map failed.
    #[error("{op} on map {map}: {source}")]
    MapOp {
        /// The operation, e.g. "insert".
        op: &'static str,
        /// Name of the map, e.g. "bh_policy".
        map: &'static str,
        /// The map error, boxed to keep the enum small.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A filesystem operation on the pin directories failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "removing pin".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value from the kernel side is not one this build knows (ABI drift).
    #[error("unknown {kind} code {code}")]
    UnknownCode {
        /// Which enum or field the value belongs to.
        kind: &'static str,
        /// The offending raw value.
        code: u32,
    },
    /// A code from the kernel side, or a name, that matches no variant of
    /// a shared enumeration.
    #[error(transparent)]
    Code(#[from] bulkhead_model::CodeError),
    /// An update needed more entries than a kernel map or slot holds.
    #[error("{what} is full ({capacity} entries); the update was not applied")]
    Capacity {
        /// What ran out, e.g. "port ranges for one peer".
        what: &'static str,
        /// The limit, in entries.
        capacity: usize,
    },
    /// `BPF_PROG_TEST_RUN` of a program failed.
    #[error("BPF_PROG_TEST_RUN of {program}: {source}")]
    TestRun {
        /// Name of the program run.
        program: &'static str,
        /// The program error, boxed to keep the enum small.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// Polling the flow ring buffer's file descriptor failed.
    #[error("flow ring: {0}")]
    Ring(#[source] std::io::Error),
}

impl DataplaneError {
    pub(crate) fn map_op(op: &'static str, map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |e| Self::MapOp { op, map, source: Box::new(e) }
    }
}
