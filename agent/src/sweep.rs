//! Periodic housekeeping: expire idle connections (emitting their close
//! flows with final counters), detach pods whose interface vanished, and
//! lift blocks whose time is up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_dataplane::FlowEvent;
use bulkhead_dataplane::abi;
use bulkhead_dataplane::flow::{Clock, mapped_addr, monotonic_ns};
use bulkhead_dataplane::model::{Direction, EventType, Reason, Verdict, proto};

use crate::flows::FlowHub;
use crate::node::Node;

/// The kernel's timeout for an entry (`bh_ct_timeout` in `lib/conntrack.h`), from the shared ABI values.
fn timeout_ns(v: &abi::bh_ct_value, protocol: u8) -> u64 {
    let secs = if v.state & abi::BH_CT_F_CLOSED as u8 != 0 {
        abi::BH_CT_CLOSED_TIMEOUT_S
    } else if protocol == proto::TCP {
        if v.state & abi::BH_CT_F_SEEN_REPLY as u8 != 0 {
            abi::BH_CT_TCP_EST_TIMEOUT_S
        } else {
            abi::BH_CT_TCP_SYN_TIMEOUT_S
        }
    } else if protocol == proto::ICMP || protocol == proto::ICMPV6 {
        abi::BH_CT_ICMP_TIMEOUT_S
    } else {
        abi::BH_CT_UDP_TIMEOUT_S
    };
    u64::from(secs) * 1_000_000_000
}

/// One pass: returns how many entries were expired.
pub fn sweep_once(node: &Mutex<Node>, hub: &FlowHub, clock: &Clock) -> usize {
    let Ok(mut node) = node.lock() else { return 0 };
    if let Ok(stats) = node.maps().stats() {
        hub.kernel_lost.store(stats.get(abi::BH_STAT_EVENTS_LOST), std::sync::atomic::Ordering::Relaxed);
    }
    if let Err(e) = node.reap_vanished() {
        tracing::warn!(error = %e, "reaping vanished interfaces");
    }
    if let Err(e) = node.sync_blocks() {
        tracing::warn!(error = %e, "lifting expired blocks");
    }
    let live = node.live_endpoint_ids();
    let enricher = node.enricher();
    let entries = match node.maps().conntrack() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "reading conntrack");
            return 0;
        }
    };
    let now = monotonic_ns();
    let mut expired = 0;
    for e in entries {
        let (k, v) = (e.key, e.value);
        let idle = now.saturating_sub(v.last_seen_ns);
        let orphan = !live.contains(&k.endpoint_id);
        if idle <= timeout_ns(&v, k.protocol) && !orphan {
            continue;
        }
        // The snapshot may be stale: a packet may have revived the entry since.
        if !orphan && node.maps().conntrack_entry(&k).is_some_and(|now_v| now_v.last_seen_ns != v.last_seen_ns) {
            continue;
        }
        if let Err(err) = node.maps_mut().remove_conntrack(&k) {
            tracing::warn!(error = %err, "removing expired conntrack entry");
            continue;
        }
        expired += 1;
        if v.state & abi::BH_CT_F_CLOSED as u8 != 0 {
            continue; // its close event was emitted by the kernel
        }
        let (Ok(direction), Ok(verdict), Ok(reason)) =
            (Direction::try_from(k.direction), Verdict::try_from(v.verdict), Reason::try_from(v.reason))
        else {
            continue;
        };
        let (src, dst) = (mapped_addr(k.saddr), mapped_addr(k.daddr));
        let (src_identity, dst_identity) = match direction {
            Direction::Egress => (enricher.identity_of(src), v.remote_identity),
            Direction::Ingress => (v.remote_identity, enricher.identity_of(dst)),
        };
        let ev = FlowEvent {
            time: clock.wall(now),
            event: EventType::Closed,
            ifindex: 0,
            endpoint_id: k.endpoint_id,
            src_ip: src,
            dst_ip: dst,
            src_port: k.sport,
            dst_port: k.dport,
            protocol: k.protocol,
            src_identity,
            dst_identity,
            direction,
            verdict,
            reason,
            rule_id: v.rule_id,
            packets_fwd: v.packets_fwd,
            bytes_fwd: v.bytes_fwd,
            packets_rev: v.packets_rev,
            bytes_rev: v.bytes_rev,
            tcp_flags: v.tcp_flags_fwd | v.tcp_flags_rev,
            is_reply: false,
            suppressed: 0,
            sample: None,
        };
        hub.publish(enricher.flow(&ev));
    }
    expired
}

/// Runs the sweep every `every` until the process ends.
pub async fn run(node: Arc<Mutex<Node>>, hub: Arc<FlowHub>, every: Duration) {
    let clock = Clock::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (n, h) = (node.clone(), hub.clone());
        let _ = tokio::task::spawn_blocking(move || sweep_once(&n, &h, &clock)).await;
    }
}
