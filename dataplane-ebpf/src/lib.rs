//! Bulkhead's dataplane: the eBPF programs (C, compiled by `build.rs` and
//! embedded here), the kernel/user ABI generated from their shared header,
//! and the typed Rust layer the agent uses to load, attach, pin and talk to
//! them.
//!
//! This crate is the only place where `unsafe` is allowed, and only in
//! [`abi`] (plain-old-data markers) and [`testrun`] is none needed.

#[allow(unsafe_code)]
pub mod abi;
pub mod error;
pub mod flow;
pub mod loader;
pub mod maps;
pub mod model;
pub mod packet;
pub mod pins;
pub mod table;
pub mod testrun;
pub mod transition;

pub use error::DataplaneError;
pub use flow::{FlowEvent, FlowReader};
pub use loader::Dataplane;
pub use maps::Maps;
pub use model::{Action, Direction, EventType, Mode, Reason, Verdict};
pub use pins::PinLayout;

/// The compiled programs, one object per attach point.
pub mod objects {
    /// TC ingress on the host-side veth: traffic from the pod (pod egress policy).
    pub const TC_FROM_POD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tc_from_pod.bpf.o"));
    /// TC egress on the host-side veth: traffic to the pod (pod ingress policy).
    pub const TC_TO_POD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tc_to_pod.bpf.o"));
    /// One hash lookup and pass: the floor the per-packet benchmark compares against.
    pub const BENCH_FLOOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench_floor.bpf.o"));
    /// XDP on the host-side veth: fast drop for quarantined pods.
    pub const XDP_QUARANTINE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdp_quarantine.bpf.o"));
    /// XDP on the node's uplink: the block list's prefilter.
    pub const XDP_PREFILTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdp_prefilter.bpf.o"));
}
