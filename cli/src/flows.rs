//! `bulkhead lab flows`: every flow event of every agent of a lab (new,
//! denied, closed, counters), straight from the agents.

use anyhow::{Context, Result};
use bulkhead_api::agent::v1 as pb;
use bulkhead_api::v1::convert::{self, ConvertError};
use bulkhead_lab::LabState;
use bulkhead_model::Verdict;
use tokio_stream::StreamExt;

fn workload(w: &Option<pb::Workload>, ip: &str, port: u32) -> String {
    match w {
        Some(w) if !w.pod.is_empty() => format!("{}/{}:{port}", w.namespace, w.pod),
        Some(w) if w.identity == 1 => format!("host({ip}):{port}"),
        _ => format!("{ip}:{port}"),
    }
}

/// The name of a wire enumeration value, or the number when it is not one.
fn name<T: std::fmt::Display>(decoded: Result<T, ConvertError>, raw: i32) -> String {
    decoded.map_or_else(|_| raw.to_string(), |v| v.to_string())
}

fn human(f: &pb::Flow) -> String {
    let t = time_of(f.time_unix_nanos);
    let verdict = match convert::verdict(f.verdict, "verdict") {
        Ok(Verdict::Dropped) => "DROPPED",
        Ok(Verdict::Audit) => "AUDIT(would drop)",
        _ => "FORWARDED",
    };
    let reason = name(convert::reason(f.drop_reason, "drop_reason"), f.drop_reason);
    let why = if f.rule_name.is_empty() { reason } else { format!("rule {}", f.rule_name) };
    format!(
        "{t} {:<10} {:<9} {:<17} {} -> {} {} {} pkts {}/{} bytes {}/{} {}",
        f.node,
        name(convert::event_type(f.event, "event"), f.event),
        verdict,
        workload(&f.source, &f.src_ip, f.src_port),
        workload(&f.destination, &f.dst_ip, f.dst_port),
        f.protocol,
        name(convert::direction(f.direction, "direction"), f.direction),
        f.packets_fwd,
        f.packets_rev,
        f.bytes_fwd,
        f.bytes_rev,
        why
    )
}

fn time_of(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let ms = nanos.rem_euclid(1_000_000_000) / 1_000_000;
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}.{ms:03}", day / 3600, (day / 60) % 60, day % 60)
}

/// Prints recent flows of every node, then (with follow) live ones.
pub async fn show(lab: &str, follow: bool, json: bool) -> Result<()> {
    let state = LabState::load(lab)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<pb::FlowBatch>(64);
    for node in &state.nodes {
        let mut client =
            bulkhead_api::connect_unix(&node.socket).await.with_context(|| format!("agent of {}", node.name))?;
        let mut stream = client
            .stream_flows(pb::FlowFilter { follow, ..Default::default() })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(batch)) = stream.next().await {
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut all = Vec::new();
    while let Some(batch) = rx.recv().await {
        if batch.lost > 0 {
            eprintln!("lost {} flows (client too slow or kernel ring full)", batch.lost);
        }
        if follow {
            for f in &batch.flows {
                println!("{}", if json { serde_json::to_string(&flow_json(f))? } else { human(f) });
            }
        } else {
            all.extend(batch.flows);
        }
    }
    all.sort_by_key(|f| f.time_unix_nanos);
    for f in &all {
        println!("{}", if json { serde_json::to_string(&flow_json(f))? } else { human(f) });
    }
    Ok(())
}

fn flow_json(f: &pb::Flow) -> serde_json::Value {
    let w = |w: &Option<pb::Workload>| {
        w.as_ref().map(
            |w| serde_json::json!({"identity": w.identity, "namespace": w.namespace, "pod": w.pod, "labels": w.labels}),
        )
    };
    serde_json::json!({
        "time_unix_nanos": f.time_unix_nanos, "node": f.node, "event": name(convert::event_type(f.event, "event"), f.event),
        "src_ip": f.src_ip, "src_port": f.src_port, "dst_ip": f.dst_ip, "dst_port": f.dst_port,
        "protocol": f.protocol, "source": w(&f.source), "destination": w(&f.destination),
        "direction": name(convert::direction(f.direction, "direction"), f.direction),
        "verdict": name(convert::verdict(f.verdict, "verdict"), f.verdict),
        "drop_reason": name(convert::reason(f.drop_reason, "drop_reason"), f.drop_reason),
        "rule_id": f.rule_id, "rule_name": f.rule_name,
        "packets_fwd": f.packets_fwd, "bytes_fwd": f.bytes_fwd, "packets_rev": f.packets_rev, "bytes_rev": f.bytes_rev,
        "tcp_flags": f.tcp_flags, "is_reply": f.is_reply,
    })
}
