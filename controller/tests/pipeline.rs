//! The flow pipeline on its own, fed wire batches as agents send them:
//! enrichment by flow time (a recycled address), both-ends dedup, loss
//! counting per stage, a restart that resumes from the stored cursor with
//! the graph, baselines and suggestions intact, and the review workflow's
//! transitions with what-if.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::flow::v1::{Direction as FlowDirection, EventType, Verdict as FlowVerdict};
use bulkhead_api::v1::review::ReviewStatus as Status;
use bulkhead_controller::observation::flows::Pipeline;
use bulkhead_controller::observation::review;
use bulkhead_controller::observation::storage::SqliteStorage;
use bulkhead_controller::observation::storage::{FlowFilter, Named};
use bulkhead_controller::policy::store::{Model, Store};
use bulkhead_graph::Entity;
use bulkhead_graph::baseline::LearningConfig;
use bulkhead_model::Mode;
use bulkhead_model::Verdict;
use bulkhead_policy::objects::parse_documents;

/// A scratch directory removed on drop, even when the test fails.
struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("bulkhead-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pod(name: &str, app: &str, ip: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {{app: {app}, pod-template-hash: abc12}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {app}-abc12, uid: u-{name}, controller: true}}]\nspec: {{nodeName: n1, containers: [{{name: c}}]}}\nstatus: {{podIPs: [{{ip: {ip}}}]}}\n"
    )
}

fn model(pods: &[(&str, &str, &str)]) -> Model {
    let mut yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_string();
    for (n, a, ip) in pods {
        yaml.push_str(&pod(n, a, ip));
    }
    Store::default().applied(parse_documents("t", &yaml).unwrap()).0.model("c1").unwrap()
}

fn flow(t: i64, dir: &str, src: &str, sport: u32, dst: &str, dport: u32, verdict: &str) -> pb::Flow {
    pb::Flow {
        time_unix_nanos: t,
        node: "n1".into(),
        event: if verdict == "dropped" { EventType::Denied } else { EventType::New } as i32,
        src_ip: src.into(),
        src_port: sport,
        dst_ip: dst.into(),
        dst_port: dport,
        protocol: "TCP".into(),
        direction: if dir == "egress" { FlowDirection::Egress } else { FlowDirection::Ingress } as i32,
        verdict: match verdict {
            "dropped" => FlowVerdict::Dropped,
            "audit" => FlowVerdict::Audit,
            _ => FlowVerdict::Forwarded,
        } as i32,
        ..Default::default()
    }
}

fn batch(epoch: u64, last_seq: u64, flows: Vec<pb::Flow>) -> pb::FlowBatch {
    pb::FlowBatch { flows, epoch, last_seq, ..Default::default() }
}

fn learning() -> LearningConfig {
    LearningConfig { window_ns: 1_000_000_000, quiet_ns: 1_000_000_000, evidence_per_anomaly: 5, ..Default::default() }
}

fn open(dir: &Scratch) -> Pipeline {
    let store = SqliteStorage::open(&dir.0.join("flows.db"), 10_000).unwrap();
    Pipeline::open(Box::new(store), learning()).unwrap()
}

fn deployment(name: &str) -> Entity {
    Entity::Workload { namespace: "shop".into(), kind: "Deployment".into(), name: name.into() }
}

#[test]
fn flows_become_graph_baselines_and_reviewed_suggestions_and_survive_a_restart() {
    let dir = Scratch::new("pipeline");
    let mut p = open(&dir);
    // web (10.1.0.5) calls cart (10.1.0.6); the connection is seen at both ends.
    p.update_inventory(&model(&[("web-1", "web", "10.1.0.5"), ("cart-1", "cart", "10.1.0.6")]));
    let t0 = bulkhead_controller::observation::flows::now_ns();
    p.ingest(
        "n1",
        pb::FlowBatch {
            buffer_lost: 3,
            kernel_lost_total: 2,
            ..batch(
                7,
                2,
                vec![
                    flow(t0, "egress", "10.1.0.5", 40000, "10.1.0.6", 7070, "forwarded"),
                    flow(t0 + 1, "ingress", "10.1.0.5", 40000, "10.1.0.6", 7070, "forwarded"),
                    pb::Flow { src_ip: "not-an-ip".into(), ..flow(t0, "egress", "", 1, "10.1.0.6", 1, "forwarded") },
                ],
            )
        },
    );
    // The same agent run reports its kernel losses as a running total.
    p.ingest("n1", pb::FlowBatch { kernel_lost_total: 5, ..batch(7, 3, vec![]) });
    p.tick(t0 + 1_000);
    let stats = p.stats().clone();
    assert_eq!((stats.received, stats.records, stats.stored), (3, 2, 2));
    assert_eq!(stats.lost.get("agent_buffer"), Some(&3));
    assert_eq!(stats.lost.get("kernel"), Some(&5));
    assert_eq!(stats.lost.get("undecodable"), Some(&1));
    let view = p.graph_view(None);
    assert_eq!(view.edges.len(), 1, "seen at both ends, counted once");
    assert_eq!((view.edges[0].src.clone(), view.edges[0].dst.clone()), (deployment("web"), deployment("cart")));
    assert_eq!(view.edges[0].stats.connections, 1);

    // web-1 goes away and its address is given to a new pod of another
    // workload; a late flow of web-1 still names web, a later one names db.
    let t_gone = bulkhead_controller::observation::flows::now_ns();
    p.update_inventory(&model(&[("cart-1", "cart", "10.1.0.6")]));
    p.update_inventory(&model(&[("cart-1", "cart", "10.1.0.6"), ("db-1", "db", "10.1.0.5")]));
    let t_new = bulkhead_controller::observation::flows::now_ns() + 1;
    p.ingest(
        "n1",
        batch(
            7,
            5,
            vec![
                flow(t_gone - 1, "egress", "10.1.0.5", 40001, "10.1.0.6", 7070, "forwarded"),
                flow(t_new, "egress", "10.1.0.5", 40002, "10.1.0.6", 7070, "forwarded"),
            ],
        ),
    );
    p.tick(t_new + 1_000);
    let query = |f: FlowFilter| {
        let mut out: Vec<_> = p.query_flows(&f, None, 1000).unwrap().into_iter().map(|(_, r)| r).collect();
        out.reverse();
        out
    };
    let flows = query(FlowFilter { port: Some(7070), ..Default::default() });
    let egress: Vec<_> =
        flows.iter().filter(|f| f.src_port > 40000).map(|f| (f.src.clone(), f.src_pod.clone())).collect();
    assert_eq!(egress, vec![(deployment("web"), "shop/web-1".into()), (deployment("db"), "shop/db-1".into())]);
    let by_pod = query(FlowFilter { pod: Named::parse("db-1"), ..Default::default() });
    assert_eq!(by_pod.len(), 1);
    assert!(query(FlowFilter { verdict: Some(Verdict::Dropped), ..Default::default() }).is_empty());

    // Baselines become stable; a suggestion is generated and reviewed.
    p.tick(bulkhead_controller::observation::flows::now_ns() + 10_000_000_000);
    let suggestions = review::suggest(&mut p, Some("shop"), "tester").unwrap();
    let cart = suggestions.iter().find(|r| r.suggestion.workload == deployment("cart")).unwrap();
    assert_eq!(cart.status, Status::Pending);
    let yaml = serde_yaml::to_string(&cart.suggestion.policy).unwrap();
    assert!(yaml.contains("app: db") && yaml.contains("port: 7070"), "{yaml}");
    // web is gone: its learned edge is reported, not turned into a selector.
    assert!(!yaml.contains("app: web"), "{yaml}");
    assert!(
        cart.suggestion.warnings.iter().any(|w| w.contains("shop/Deployment/web no longer exists")),
        "{:?}",
        cart.suggestion.warnings
    );
    assert!(!yaml.contains("pod-template-hash"), "{yaml}");
    let id = cart.id;
    // Not approved yet: cannot be applied.
    assert!(review::staged_yaml(&p, id, Mode::Audit).is_err());
    review::decide(&mut p, id, true, "alice", "looks right").unwrap();
    let staged = review::staged_yaml(&p, id, Mode::Audit).unwrap();
    assert!(staged.contains("bulkhead.dev/mode: audit"), "{staged}");
    review::applied(&mut p, id, Mode::Audit, "alice", "").unwrap();
    // Unchanged on the next run: same id, same status.
    let again = review::suggest(&mut p, Some("shop"), "tester").unwrap();
    assert_eq!(again.iter().find(|r| r.id == id).map(|r| r.status), Some(Status::Audit));
    // A rejected policy is not proposed again.
    let db = again.iter().find(|r| r.suggestion.workload == deployment("db")).unwrap().id;
    review::decide(&mut p, db, false, "alice", "db talks to nobody").unwrap();
    let third = review::suggest(&mut p, Some("shop"), "tester").unwrap();
    assert_eq!(
        third.iter().find(|r| r.suggestion.workload == deployment("db")).map(|r| (r.id, r.status)),
        Some((db, Status::Rejected))
    );
    let cursor = p.cursor("n1").unwrap();
    assert_eq!((cursor.epoch, cursor.seq), (7, 5));
    let edges_before = p.graph_view(None).edges;
    drop(p);

    // A restart loses none of it.
    let mut p = open(&dir);
    p.update_inventory(&model(&[("cart-1", "cart", "10.1.0.6"), ("db-1", "db", "10.1.0.5")]));
    assert_eq!(p.cursor("n1").map(|c| (c.epoch, c.seq)), Some((7, 5)));
    assert_eq!(p.graph_view(None).edges, edges_before);
    assert_eq!(p.stats().lost.values().sum::<u64>(), 9);
    // The agent's running totals were stored with the cursor: not counted twice.
    p.ingest("n1", pb::FlowBatch { kernel_lost_total: 5, ..batch(7, 6, vec![]) });
    assert_eq!(p.stats().lost.get("kernel"), Some(&5));
    assert_eq!(p.learner().workloads().len(), 3);
    let r = review::record(&p, id).unwrap();
    assert_eq!(r.status, Status::Audit);
    let detail = review::detail(&p, &model(&[("cart-1", "cart", "10.1.0.6")]), id, None, learning()).unwrap();
    assert_eq!(
        detail.reviews.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["suggest", "approve", "apply-audit"]
    );
    assert_eq!(detail.reviews[1].actor, "alice");
    // A rejected transition names the state it found.
    let e = review::decide(&mut p, id, false, "bob", "").unwrap_err().to_string();
    assert!(e.contains("Audit"), "{e}");
}

#[test]
fn a_flood_over_every_port_folds_into_one_scan_edge_and_its_own_loss_is_counted() {
    let dir = Scratch::new("pipeline-flood");
    let mut p = open(&dir);
    p.update_inventory(&model(&[
        ("web-1", "web", "10.1.0.5"),
        ("cart-1", "cart", "10.1.0.6"),
        ("db-1", "db", "10.1.0.7"),
    ]));
    let t0 = bulkhead_controller::observation::flows::now_ns();
    let limit = learning().scan.edge_ports as u32;
    // web tries 20 000 ports of cart, in batches as an agent sends them; the
    // kernel suppressed 9 of web's events before each one it sent.
    let mut seq = 0;
    for chunk in 0..20u32 {
        let flows = (0..1000u32)
            .map(|i| {
                let port = chunk * 1000 + i + 1;
                pb::Flow {
                    suppressed: 9,
                    ..flow(t0 + i64::from(port), "egress", "10.1.0.5", 10000 + port, "10.1.0.6", port, "forwarded")
                }
            })
            .collect();
        seq += 1000;
        p.ingest("n1", batch(7, seq, flows));
    }
    // cart keeps calling db normally meanwhile
    p.ingest(
        "n1",
        batch(
            7,
            seq + 2,
            vec![
                flow(t0, "egress", "10.1.0.6", 41000, "10.1.0.7", 5432, "forwarded"),
                flow(t0 + 1, "egress", "10.1.0.6", 41001, "10.1.0.7", 5432, "forwarded"),
            ],
        ),
    );
    p.tick(t0 + 30_000_000_000);
    let stats = p.stats().clone();
    assert_eq!(stats.lost.get("source_rate"), Some(&180_000), "the flood's own loss, carried in its events");
    let edges = p.graph().edges();
    let flood: Vec<_> = edges.iter().filter(|e| e.0 == deployment("web") && e.1 == deployment("cart")).collect();
    assert_eq!(flood.len(), limit as usize + 1, "the first ports, then one scan edge");
    let scan = flood.iter().find(|e| e.2.is_folded()).unwrap();
    assert_eq!(scan.3.connections, u64::from(20_000 - limit), "the scan edge keeps the counts");
    let normal: Vec<_> = edges.iter().filter(|e| e.0 == deployment("cart")).collect();
    assert_eq!((normal.len(), normal[0].2.port, normal[0].3.connections), (1, 5432, 2));
    let learned = p.learner().edges().keys().filter(|e| e.src == deployment("web")).count();
    assert!(learned <= limit as usize + 1, "the baselines are bounded too: {learned}");
    // the stored edge aggregates stay bounded, and so does a graph rebuilt from them
    drop(p);
    let p = open(&dir);
    assert_eq!(p.graph().edges().iter().filter(|e| e.0 == deployment("web")).count(), limit as usize + 1);
}
