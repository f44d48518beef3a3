//! Loading, pinning and attaching the programs.
//!
//! Loading reuses the maps already pinned for the node, so a restarted agent
//! continues with the same conntrack, policy and flow ring. Attaching adopts a
//! pinned TCX/XDP link when there is one and swaps the program inside it
//! atomically (`bpf_link_update`): there is no instant without a program.

use std::io::ErrorKind;
use std::path::Path;

use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachOptions};
use aya::programs::xdp::XdpLink;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use crate::error::DataplaneError;
use crate::objects;
use crate::pins::PinLayout;

/// Program (function) names inside the objects.
pub const PROG_FROM_POD: &str = "bh_tc_from_pod";
/// See [`PROG_FROM_POD`].
pub const PROG_TO_POD: &str = "bh_tc_to_pod";
/// See [`PROG_FROM_POD`].
pub const PROG_XDP: &str = "bh_xdp_quarantine";
/// See [`PROG_FROM_POD`].
pub const PROG_PREFILTER: &str = "bh_xdp_prefilter";

const HOOK_FROM_POD: &str = "tc-from-pod";
const HOOK_TO_POD: &str = "tc-to-pod";
const HOOK_XDP: &str = "xdp";
const HOOK_PREFILTER: &str = "prefilter";

/// The loaded programs of one node.
pub struct Dataplane {
    pins: PinLayout,
    from_pod: Ebpf,
    to_pod: Ebpf,
    xdp: Ebpf,
    prefilter: Ebpf,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane").field("pins", &self.pins).finish_non_exhaustive()
    }
}

fn load_object(name: &'static str, bytes: &[u8], pins: &PinLayout) -> Result<Ebpf, DataplaneError> {
    EbpfLoader::new()
        .default_map_pin_directory(pins.maps())
        .load(bytes)
        .map_err(|e| DataplaneError::Load { object: name, source: Box::new(e) })
}

fn prog_err(action: &'static str, program: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> DataplaneError {
    move |e| DataplaneError::Program { action, program, source: Box::new(e) }
}

fn link_err(action: &'static str, path: &Path) -> impl FnOnce(String) -> DataplaneError + use<> {
    let path = path.to_path_buf();
    move |message| DataplaneError::Link { action, path, message }
}

fn remove_pin(path: &Path) -> Result<(), DataplaneError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataplaneError::Io { action: "removing pin", path: path.to_path_buf(), source }),
    }
}

fn pinned_link(path: &Path) -> Result<Option<FdLink>, DataplaneError> {
    match PinnedLink::from_pin(path) {
        Ok(p) => Ok(Some(FdLink::from(p))),
        Err(LinkError::SyscallError(e)) if e.io_error.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(link_err("opening pinned", path)(e.to_string())),
    }
}

impl Dataplane {
    /// Loads the four programs, creating or reusing the node's pinned maps,
    /// and pins the programs under `progs/`.
    pub fn load(pins: &PinLayout) -> Result<Self, DataplaneError> {
        pins.create()?;
        let mut from_pod = load_object("tc_from_pod", objects::TC_FROM_POD, pins)?;
        let mut to_pod = load_object("tc_to_pod", objects::TC_TO_POD, pins)?;
        let mut xdp = load_object("xdp_quarantine", objects::XDP_QUARANTINE, pins)?;
        for (ebpf, name) in [(&mut from_pod, PROG_FROM_POD), (&mut to_pod, PROG_TO_POD)] {
            let prog = tc_prog(ebpf, name)?;
            prog.load().map_err(prog_err("loading", name))?;
            let path = pins.progs().join(name);
            remove_pin(&path)?;
            prog.pin(&path).map_err(|e| link_err("pinning program", &path)(e.to_string()))?;
        }
        let mut prefilter = load_object("xdp_prefilter", objects::XDP_PREFILTER, pins)?;
        for (ebpf, name) in [(&mut xdp, PROG_XDP), (&mut prefilter, PROG_PREFILTER)] {
            let prog = xdp_prog(ebpf, name)?;
            prog.load().map_err(prog_err("loading", name))?;
            let path = pins.progs().join(name);
            remove_pin(&path)?;
            prog.pin(&path).map_err(|e| link_err("pinning program", &path)(e.to_string()))?;
        }
        Ok(Self { pins: pins.clone(), from_pod, to_pod, xdp, prefilter })
    }

    /// The node's pin layout.
    pub fn pins(&self) -> &PinLayout {
        &self.pins
    }

    /// Attaches both TC programs to a pod's host-side interface, or swaps the
    /// program inside already-pinned links. Idempotent.
    pub fn attach(&mut self, ifname: &str, ifindex: u32) -> Result<(), DataplaneError> {
        let pins = self.pins.clone();
        attach_tc(&mut self.from_pod, PROG_FROM_POD, &pins, ifname, ifindex, TcAttachType::Ingress, HOOK_FROM_POD)?;
        attach_tc(&mut self.to_pod, PROG_TO_POD, &pins, ifname, ifindex, TcAttachType::Egress, HOOK_TO_POD)
    }

    /// Whether both TC links of `ifindex` are pinned.
    pub fn is_attached(&self, ifindex: u32) -> bool {
        self.pins.link(ifindex, HOOK_FROM_POD).exists() && self.pins.link(ifindex, HOOK_TO_POD).exists()
    }

    /// Detaches everything from `ifindex` by dropping the pins (the links die with their last reference).
    pub fn detach(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        for hook in [HOOK_FROM_POD, HOOK_TO_POD, HOOK_XDP] {
            remove_pin(&self.pins.link(ifindex, hook))?;
        }
        Ok(())
    }

    /// Pods' interfaces that have pinned links, from a previous agent or this one.
    pub fn attached_ifindexes(&self) -> Result<Vec<u32>, DataplaneError> {
        self.linked(|hook| hook != HOOK_PREFILTER)
    }

    /// Uplinks that have a pinned prefilter, from a previous agent or this one.
    pub fn prefilter_ifindexes(&self) -> Result<Vec<u32>, DataplaneError> {
        self.linked(|hook| hook == HOOK_PREFILTER)
    }

    /// Removes the prefilter from an uplink.
    pub fn detach_prefilter(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        remove_pin(&self.pins.link(ifindex, HOOK_PREFILTER))
    }

    /// Interface indexes of the link pins whose hook passes `keep`.
    fn linked(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<u32>, DataplaneError> {
        let dir = self.pins.links();
        let entries = std::fs::read_dir(&dir).map_err(|source| DataplaneError::Io {
            action: "listing links",
            path: dir.clone(),
            source,
        })?;
        let mut out: Vec<u32> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let (ifindex, hook) = name.split_once('-')?;
                if keep(hook) { ifindex.parse().ok() } else { None }
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Attaches the XDP fast-drop program (used while an endpoint is quarantined).
    pub fn attach_xdp(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        let path = self.pins.link(ifindex, HOOK_XDP);
        attach_xdp_link(xdp_prog(&mut self.xdp, PROG_XDP)?, PROG_XDP, ifindex, &path)
    }

    /// Attaches the block list's prefilter to one of the node's own
    /// uplinks, or swaps the program inside its pinned link. Idempotent;
    /// the link is pinned, so the prefilter outlives the agent.
    pub fn attach_prefilter(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        let path = self.pins.link(ifindex, HOOK_PREFILTER);
        attach_xdp_link(xdp_prog(&mut self.prefilter, PROG_PREFILTER)?, PROG_PREFILTER, ifindex, &path)
    }

    /// Whether the prefilter's link on `ifindex` is pinned.
    pub fn has_prefilter(&self, ifindex: u32) -> bool {
        self.pins.link(ifindex, HOOK_PREFILTER).exists()
    }

    /// Removes the XDP program from `ifindex`.
    pub fn detach_xdp(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        remove_pin(&self.pins.link(ifindex, HOOK_XDP))
    }

    /// The loaded TC program for `from_pod` or `to_pod` (tests and benches run it directly).
    pub fn tc_program(&mut self, from_pod: bool) -> Result<&mut SchedClassifier, DataplaneError> {
        if from_pod { tc_prog(&mut self.from_pod, PROG_FROM_POD) } else { tc_prog(&mut self.to_pod, PROG_TO_POD) }
    }

    /// The loaded XDP quarantine program.
    pub fn xdp_program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        xdp_prog(&mut self.xdp, PROG_XDP)
    }

    /// The loaded prefilter program (tests and benches run it directly).
    pub fn prefilter_program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        xdp_prog(&mut self.prefilter, PROG_PREFILTER)
    }
}

/// Attaches an XDP program to `ifindex` through the link pinned at `path`,
/// adopting it when it is there (an atomic program swap).
fn attach_xdp_link(prog: &mut Xdp, name: &'static str, ifindex: u32, path: &Path) -> Result<(), DataplaneError> {
    let fresh =
        |prog: &mut Xdp| prog.attach_to_if_index(ifindex, XdpMode::default()).map_err(prog_err("attaching", name));
    let id = match pinned_link(path)? {
        Some(fd) => {
            let link = XdpLink::try_from(fd).map_err(|e| link_err("adopting", path)(e.to_string()))?;
            match prog.attach_to_link(link) {
                Ok(id) => id,
                Err(_) => {
                    remove_pin(path)?;
                    fresh(prog)?
                }
            }
        }
        None => fresh(prog)?,
    };
    let link = prog.take_link(id).map_err(prog_err("taking link of", name))?;
    let fd: FdLink = link.try_into().map_err(|e: LinkError| link_err("converting", path)(e.to_string()))?;
    remove_pin(path)?;
    fd.pin(path).map_err(|e| link_err("pinning", path)(e.to_string()))?;
    Ok(())
}

fn tc_prog<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut SchedClassifier, DataplaneError> {
    ebpf.program_mut(name)
        .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
        .ok_or(DataplaneError::MissingProgram { program: name })
}

fn xdp_prog<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataplaneError> {
    ebpf.program_mut(name)
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
        .ok_or(DataplaneError::MissingProgram { program: name })
}

fn attach_tc(
    ebpf: &mut Ebpf,
    name: &'static str,
    pins: &PinLayout,
    ifname: &str,
    ifindex: u32,
    attach_type: TcAttachType,
    hook: &str,
) -> Result<(), DataplaneError> {
    let path = pins.link(ifindex, hook);
    let prog = tc_prog(ebpf, name)?;
    let fresh = |prog: &mut SchedClassifier| {
        prog.attach_with_options(ifname, attach_type, TcAttachOptions::TcxOrder(LinkOrder::first()))
            .map_err(prog_err("attaching", name))
    };
    let id = match pinned_link(&path)? {
        Some(fd) => {
            let link = SchedClassifierLink::try_from(fd).map_err(|e| link_err("adopting", &path)(e.to_string()))?;
            match prog.attach_to_link(link) {
                Ok(id) => id,
                // The interface behind a stale pin is gone (ifindex reused): start over.
                Err(_) => {
                    remove_pin(&path)?;
                    fresh(prog)?
                }
            }
        }
        None => fresh(prog)?,
    };
    let link = prog.take_link(id).map_err(prog_err("taking link of", name))?;
    let fd: FdLink = link.try_into().map_err(|e: LinkError| link_err("converting", &path)(e.to_string()))?;
    // Our fd holds the link while the old pin is replaced.
    remove_pin(&path)?;
    fd.pin(&path).map_err(|e| link_err("pinning", &path)(e.to_string()))?;
    Ok(())
}
