//! One task per node reads its agent's flow stream from the stored cursor
//! (the agent resends what it buffered while the controller was away) and
//! hands batches to the pipeline through a bounded queue: when the pipeline
//! is behind, reading waits, the agent buffers, and anything that leaves
//! its buffer meanwhile is counted as lost there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_api::agent::v1 as pb;
use tokio::sync::mpsc;

use super::Pipeline;

/// A batch and the node it came from.
pub type NodeBatch = (String, pb::FlowBatch);

const RETRY: Duration = Duration::from_secs(1);

/// Per node: connected or the last error.
pub type CollectReport = Arc<Mutex<std::collections::BTreeMap<String, String>>>;

fn report(r: &CollectReport, node: &str, status: String) {
    if let Ok(mut m) = r.lock() {
        m.insert(node.to_string(), status);
    }
}

/// Reads `node`'s flows forever.
pub async fn run(
    node: String,
    directory: Arc<crate::agents::Directory>,
    pipeline: Arc<Mutex<Pipeline>>,
    tx: mpsc::Sender<NodeBatch>,
    status: CollectReport,
) {
    // The stored cursor; later ones are what this task handed on.
    let mut cursor = pipeline.lock().ok().and_then(|p| p.cursor(&node)).map(|c| (c.epoch, c.seq)).unwrap_or((0, 0));
    let mut link = directory.watch(&node);
    loop {
        let result = async {
            let channel = directory.channel(&node).await.map_err(|e| e.to_string())?;
            let mut client = pb::agent_client::AgentClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
            let filter = pb::FlowFilter { follow: true, after_seq: cursor.1, epoch: cursor.0 };
            let mut stream = client.stream_flows(filter).await.map_err(|s| s.message().to_string())?.into_inner();
            report(&status, &node, String::new());
            loop {
                match stream.message().await {
                    Ok(Some(batch)) => {
                        cursor = (batch.epoch, batch.last_seq);
                        if tx.send((node.clone(), batch)).await.is_err() {
                            return Ok::<(), String>(());
                        }
                    }
                    Ok(None) => return Err("the agent closed the flow stream".to_string()),
                    Err(s) => return Err(s.message().to_string()),
                }
            }
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                report(&status, &node, e.clone());
                tracing::debug!(%node, error = %e, "flow stream (retrying)");
                directory.forget(&node);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = crate::policy::sync::relinked(&mut link) => {}
        }
    }
}

/// Feeds queued batches to the pipeline and ticks it every `tick`.
pub async fn worker(pipeline: Arc<Mutex<Pipeline>>, mut rx: mpsc::Receiver<NodeBatch>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some((node, batch)) = batch else { return };
                let p = pipeline.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut p) = p.lock() {
                        p.ingest(&node, batch);
                    }
                })
                .await;
            }
            _ = interval.tick() => {
                let p = pipeline.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut p) = p.lock() {
                        p.tick(super::now_ns());
                    }
                })
                .await;
            }
        }
    }
}
