//! Decoding flow events from the ring buffer into typed records.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use aya::maps::{Map, MapData, RingBuf};
use serde::Serialize;
use tokio::io::unix::AsyncFd;

use crate::abi::{self, bh_flow_event, bh_sample_event};
use crate::error::DataplaneError;
use crate::model::{Direction, EventType, Reason, Verdict};
use crate::pins::PinLayout;

/// One decoded event, addresses in the connection's original direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowEvent {
    /// Wall-clock time the kernel stamped the event.
    pub time: SystemTime,
    /// Why the event was emitted.
    pub event: EventType,
    /// Host-side interface index of the pod the event was seen at.
    pub ifindex: u32,
    /// Dataplane id of that pod's endpoint.
    pub endpoint_id: u32,
    /// Source address of the connection's first packet.
    pub src_ip: IpAddr,
    /// Destination address of the connection's first packet.
    pub dst_ip: IpAddr,
    /// Source port, host byte order; the echo identifier for ICMP echo.
    pub src_port: u16,
    /// Destination port, host byte order; the echo identifier for ICMP echo.
    pub dst_port: u16,
    /// IANA protocol number (see `model::proto`).
    pub protocol: u8,
    /// Security identity of the source.
    pub src_identity: u32,
    /// Security identity of the destination.
    pub dst_identity: u32,
    /// Direction relative to the pod.
    pub direction: Direction,
    /// What the dataplane did with the connection or attempt.
    pub verdict: Verdict,
    /// Why the dataplane decided so.
    pub reason: Reason,
    /// Policy rule that decided the verdict; 0 when no rule matched.
    pub rule_id: u32,
    /// Packets in the original direction so far (1 for an untracked denial).
    pub packets_fwd: u64,
    /// Bytes in the original direction so far.
    pub bytes_fwd: u64,
    /// Packets in the reply direction so far.
    pub packets_rev: u64,
    /// Bytes in the reply direction so far.
    pub bytes_rev: u64,
    /// Union of the TCP flags seen in both directions.
    pub tcp_flags: u8,
    /// Whether the packet that produced the event was a reply.
    pub is_reply: bool,
    /// Events of the same initiating address the kernel suppressed since its
    /// previous event, over that address's budget: its own loss, carried.
    pub suppressed: u32,
    /// For a `Sample` event, the bytes, to classify and forget: never
    /// serialized, so a payload cannot leave the node by accident.
    #[serde(skip)]
    pub sample: Option<PayloadSample>,
}

/// The first payload bytes of one way of a connection (see `bh_sample_event`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayloadSample {
    /// The packet's whole L4 payload length.
    pub payload_len: u16,
    /// Bytes from payload offset 0 (the first `BH_SAMPLE_TLS_HEAD` of a
    /// ClientHello when `tls_ext` is set).
    pub head: Vec<u8>,
    /// A ClientHello's bytes from its first extension, and that offset.
    pub tls_ext: Option<(u16, Vec<u8>)>,
}

impl PayloadSample {
    fn from_abi(s: &bh_sample_event) -> Self {
        let captured = usize::from(s.captured).min(s.data.len());
        if s.tls_ext_at == 0 {
            return Self { payload_len: s.payload_len, head: s.data[..captured].to_vec(), tls_ext: None };
        }
        let head = (abi::BH_SAMPLE_TLS_HEAD as usize).min(captured);
        Self {
            payload_len: s.payload_len,
            head: s.data[..head].to_vec(),
            tls_ext: Some((s.tls_ext_at, s.data[head..captured].to_vec())),
        }
    }
}

/// An address as the kernel stores it (IPv4 as ::ffff:a.b.c.d), back as IPv4 or IPv6.
pub fn mapped_addr(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

fn addr(bytes: [u8; 16], family: u8) -> IpAddr {
    if family == 4 { mapped_addr(bytes) } else { IpAddr::V6(Ipv6Addr::from(bytes)) }
}

/// Converts the kernel's CLOCK_MONOTONIC stamps to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_zero: SystemTime,
}

impl Clock {
    /// Samples both clocks now.
    pub fn new() -> Self {
        let mono = monotonic_ns();
        Self { wall_at_zero: SystemTime::now() - Duration::from_nanos(mono) }
    }
    /// Wall time of a monotonic stamp.
    pub fn wall(&self, mono_ns: u64) -> SystemTime {
        self.wall_at_zero + Duration::from_nanos(mono_ns)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

impl FlowEvent {
    /// Decodes one ring record. Unknown codes are errors, not guesses.
    pub fn decode(raw: &[u8], clock: &Clock) -> Result<Self, DataplaneError> {
        if raw.len() < std::mem::size_of::<bh_flow_event>() {
            return Err(DataplaneError::UnknownCode { kind: "flow event length", code: raw.len() as u32 });
        }
        let mut ev = bh_flow_event::default();
        let dst = abi::as_bytes_mut(&mut ev);
        dst.copy_from_slice(&raw[..dst.len()]);
        let mut decoded = Self::from_abi(&ev, clock)?;
        if decoded.event == EventType::Sample {
            if raw.len() < std::mem::size_of::<bh_sample_event>() {
                return Err(DataplaneError::UnknownCode { kind: "sample event length", code: raw.len() as u32 });
            }
            let mut s = bh_sample_event::default();
            let dst = abi::as_bytes_mut(&mut s);
            dst.copy_from_slice(&raw[..dst.len()]);
            decoded.sample = Some(PayloadSample::from_abi(&s));
        }
        Ok(decoded)
    }

    /// Builds the typed record from the ABI struct.
    pub fn from_abi(ev: &bh_flow_event, clock: &Clock) -> Result<Self, DataplaneError> {
        Ok(Self {
            time: clock.wall(ev.ts_ns),
            event: EventType::try_from(ev.type_)?,
            ifindex: ev.ifindex,
            endpoint_id: ev.endpoint_id,
            src_ip: addr(ev.saddr, ev.family),
            dst_ip: addr(ev.daddr, ev.family),
            src_port: ev.sport,
            dst_port: ev.dport,
            protocol: ev.protocol,
            src_identity: ev.src_identity,
            dst_identity: ev.dst_identity,
            direction: Direction::try_from(ev.direction)?,
            verdict: Verdict::try_from(ev.verdict)?,
            reason: Reason::try_from(ev.reason)?,
            rule_id: ev.rule_id,
            packets_fwd: ev.packets_fwd,
            bytes_fwd: ev.bytes_fwd,
            packets_rev: ev.packets_rev,
            bytes_rev: ev.bytes_rev,
            tcp_flags: ev.tcp_flags,
            is_reply: ev.is_reply != 0,
            suppressed: ev.suppressed,
            sample: None,
        })
    }
}

/// Reads the pinned flow ring. Only one reader per node should exist: the agent.
pub struct FlowReader {
    ring: AsyncFd<RingBuf<MapData>>,
    clock: Clock,
}

impl std::fmt::Debug for FlowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowReader").finish_non_exhaustive()
    }
}

impl FlowReader {
    /// Opens the node's pinned ring.
    pub fn open(pins: &PinLayout) -> Result<Self, DataplaneError> {
        let ring = open_ring(pins)?;
        #[allow(deprecated)]
        let ring = AsyncFd::new(ring).map_err(DataplaneError::Ring)?;
        Ok(Self { ring, clock: Clock::new() })
    }

    /// Waits for events and returns every one available (at least one).
    /// Records that fail to decode are counted in the second value.
    pub async fn next_batch(&mut self) -> Result<(Vec<FlowEvent>, u64), DataplaneError> {
        loop {
            let mut guard = self.ring.readable_mut().await.map_err(DataplaneError::Ring)?;
            let (out, bad) = drain_ring(guard.get_inner_mut(), &self.clock);
            guard.clear_ready();
            if !out.is_empty() || bad > 0 {
                return Ok((out, bad));
            }
        }
    }
}

/// Opens the node's pinned flow ring (without the async wrapper).
pub fn open_ring(pins: &PinLayout) -> Result<RingBuf<MapData>, DataplaneError> {
    let path = pins.map("bh_flows");
    let map = MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .map_err(|e| DataplaneError::OpenMap { path: path.clone(), source: Box::new(e) })?;
    RingBuf::try_from(map).map_err(|e| DataplaneError::OpenMap { path, source: Box::new(e) })
}

/// Decodes every record in the ring now; the second value counts records
/// that did not decode (an ABI mismatch), which are never silently ignored.
pub fn drain_ring(ring: &mut RingBuf<MapData>, clock: &Clock) -> (Vec<FlowEvent>, u64) {
    let mut out = Vec::new();
    let mut bad = 0;
    while let Some(item) = ring.next() {
        match FlowEvent::decode(&item, clock) {
            Ok(ev) => out.push(ev),
            Err(_) => bad += 1,
        }
    }
    (out, bad)
}
