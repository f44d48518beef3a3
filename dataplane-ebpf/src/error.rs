//! Errors of the dataplane layer, each naming what it was doing.

use std::path::PathBuf;

/// Everything that can go wrong loading, attaching or talking to the eBPF side.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("loading eBPF object {object}: {source}")]
    Load {
        object: &'static str,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("program {program} missing from its object or of the wrong type")]
    MissingProgram { program: &'static str },
    #[error("{action} program {program}: {source}")]
    Program {
        action: &'static str,
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("{action} link {path}: {message}")]
    Link { action: &'static str, path: PathBuf, message: String },
    #[error("opening pinned map {path}: {source}")]
    OpenMap {
        path: PathBuf,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("{op} on map {map}: {source}")]
    MapOp {
        op: &'static str,
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown {kind} code {code}")]
    UnknownCode { kind: &'static str, code: u32 },
    #[error("unknown {kind} {name:?}")]
    UnknownName { kind: &'static str, name: String },
    #[error("{what} is full ({capacity} entries); the update was not applied")]
    Capacity { what: &'static str, capacity: usize },
    #[error("BPF_PROG_TEST_RUN of {program}: {source}")]
    TestRun {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("flow ring: {0}")]
    Ring(#[source] std::io::Error),
}

impl DataplaneError {
    pub(crate) fn map_op(op: &'static str, map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |e| Self::MapOp { op, map, source: Box::new(e) }
    }
}
