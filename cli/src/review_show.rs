//! `bulkhead review show`, readable: the policy, its evidence, the diff
//! against the policy in force, what-if, would-drops in audit, history.

use bulkhead_api::v1::review::ReviewDetail;

use crate::closed_loop::{peer, time};

/// Prints one suggestion in full.
pub fn print(d: &ReviewDetail) {
    let r = &d.record;
    println!(
        "suggestion {} for {}/{}: {}",
        r.id,
        r.workload.namespace,
        r.workload.name,
        format!("{:?}", r.status).to_lowercase()
    );
    println!("{}", d.yaml);
    for e in &r.rules {
        println!(
            "evidence {} {}: {} connections from/to {} on {}",
            e.side,
            e.index,
            e.connections,
            e.peers.join(", "),
            e.ports.join(", ")
        );
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    if d.diff.is_empty() {
        println!("diff: no policy of this name in force");
    } else {
        println!("diff against the policy in force:");
        for l in &d.diff {
            println!("  {l}");
        }
    }
    for p in &d.also_in_force {
        println!("also selecting these pods: {p}");
    }
    let w = &d.what_if;
    println!(
        "what-if over the recorded window: {} flows replayed, {} would be dropped ({} not replayable, {} already dropped)",
        w.replayed,
        w.would_drop.len(),
        w.not_replayable,
        w.already_dropped
    );
    for x in w.would_drop.iter().take(20) {
        println!("  would drop: {} -> {}:{}", peer(&x.flow.source), peer(&x.flow.destination), x.flow.dst_port);
    }
    if let Some(t) = r.audit_since_ns {
        println!("in audit since {}", time(t));
    }
    println!("would-drop flows reported in audit mode: {}", d.would_drop_total);
    for f in d.would_drop.iter().take(20) {
        println!("  {} {} -> {}:{}", time(f.time_ns), peer(&f.source), peer(&f.destination), f.dst_port);
    }
    for h in &d.history {
        println!("history: {} {} by {} {}", time(h.time_ns), h.action, h.actor, h.reason);
    }
}
