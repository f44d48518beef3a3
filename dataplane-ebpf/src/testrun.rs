//! Running the real programs on crafted packets through `BPF_PROG_TEST_RUN`,
//! for the unit tests of the C code and the per-packet benchmark.
//!
//! Test runs execute in the caller's network namespace with the skb on the
//! loopback device, so `skb->ifindex` (and XDP's ingress ifindex) is 1: a test
//! registers its endpoint under ifindex [`TEST_IFINDEX`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use aya::programs::{TestRun, TestRunOptions};

use crate::error::DataplaneError;
use crate::flow::{Clock, FlowEvent, drain_ring, open_ring};
use crate::loader::{Dataplane, PROG_FROM_POD, PROG_PREFILTER, PROG_TO_POD, PROG_XDP};
use crate::maps::Maps;
use crate::pins::PinLayout;

/// The ifindex test-run packets arrive on (loopback).
pub const TEST_IFINDEX: u32 = 1;

/// `TC_ACT_SHOT`.
pub const TC_DROP: u32 = 2;
/// `TC_ACT_UNSPEC` (-1): pass and let later programs in the chain run.
pub const TC_PASS: u32 = u32::MAX;
/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;

/// Which program to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// TC on traffic from the pod (pod egress policy).
    FromPod,
    /// TC on traffic to the pod (pod ingress policy).
    ToPod,
    /// XDP quarantine fast drop.
    Xdp,
    /// XDP block-list prefilter of the node's uplink.
    Prefilter,
}

/// The result of one test run.
#[derive(Debug, Clone, Copy)]
pub struct RunResult {
    /// The program's return code (see `TC_DROP`, `TC_PASS`, `XDP_DROP`, `XDP_PASS`).
    pub retval: u32,
    /// Average time per repetition, as the kernel measured it.
    pub per_run: Duration,
}

/// A private copy of the dataplane (own pins, own maps) that removes itself on drop.
pub struct TestBed {
    /// The test bed's private pin directories.
    pub pins: PinLayout,
    /// The loaded programs.
    pub dataplane: Dataplane,
    /// The test bed's maps, for setting up endpoints and policy.
    pub maps: Maps,
    ring: RingBuf<MapData>,
    clock: Clock,
}

impl std::fmt::Debug for TestBed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBed").field("pins", &self.pins).finish_non_exhaustive()
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestBed {
    /// Loads the programs under a unique pin directory named after `label`.
    pub fn new(label: &str) -> Result<Self, DataplaneError> {
        let unique = format!("{label}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let pins = PinLayout::at(std::path::Path::new(crate::pins::DEFAULT_ROOT).join("test").join(unique));
        let dataplane = match Dataplane::load(&pins) {
            Ok(d) => d,
            Err(e) => {
                let _ = pins.remove_all();
                return Err(e);
            }
        };
        let maps = Maps::open(&pins)?;
        let ring = open_ring(&pins)?;
        Ok(Self { pins, dataplane, maps, ring, clock: Clock::new() })
    }

    /// Runs `hook` on `packet` `repeat` times.
    pub fn run(&mut self, hook: Hook, packet: &[u8], repeat: u32) -> Result<RunResult, DataplaneError> {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(packet);
        opts.repeat = repeat.max(1);
        let (name, res) = match hook {
            Hook::FromPod => (PROG_FROM_POD, self.dataplane.tc_program(true)?.test_run(opts)),
            Hook::ToPod => (PROG_TO_POD, self.dataplane.tc_program(false)?.test_run(opts)),
            Hook::Xdp => (PROG_XDP, self.dataplane.xdp_program()?.test_run(opts)),
            Hook::Prefilter => (PROG_PREFILTER, self.dataplane.prefilter_program()?.test_run(opts)),
        };
        let r = res.map_err(|e| DataplaneError::TestRun { program: name, source: Box::new(e) })?;
        Ok(RunResult { retval: r.return_value, per_run: r.duration })
    }

    /// Every flow event emitted so far (drains the ring).
    pub fn flows(&mut self) -> Vec<FlowEvent> {
        drain_ring(&mut self.ring, &self.clock).0
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        let _ = self.pins.remove_all();
        // The shared parent goes with the last test bed (it fails while others remain).
        if let Some(parent) = self.pins.root().parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
