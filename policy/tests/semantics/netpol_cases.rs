//! The transcribed upstream NetworkPolicy cases and our cluster-tier cases,
//! checked without a kernel: every truth table against the evaluator and
//! against the compiled entries.
//! The lab runs the same cases on real traffic (tests/e2e/conformance.rs).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bulkhead_policy::compile::Compiler;
use bulkhead_policy::conformance::{Table, patch_labels};
use bulkhead_policy::evaluate::{Evaluator, PolicySet};
use bulkhead_policy::inventory::{Inventory, Namespace, Pod};
use bulkhead_policy::netpol::NetworkPolicy;
use bulkhead_policy::objects::{Object, parse_documents};

use super::dataplane::Simulated;
use crate::suite::cases;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The model with addresses: pods alternate between two nodes, dual-stack.
pub fn model() -> Inventory {
    let text = std::fs::read_to_string(repo().join("tests/conformance/model.yaml")).unwrap();
    let mut inv = Inventory::new("lab");
    let mut i = 0u8;
    for obj in parse_documents("model.yaml", &text).unwrap() {
        match obj {
            Object::Namespace(ns) => inv.put_namespace(Namespace::try_from(&ns).unwrap()),
            Object::Pod(mut pod) => {
                i += 1;
                let node = 1 + i % 2;
                let status = pod.status.get_or_insert_default();
                status.pod_ips = Some(vec![
                    k8s_openapi::api::core::v1::PodIP { ip: format!("10.244.{node}.{}", 10 + i) },
                    k8s_openapi::api::core::v1::PodIP { ip: format!("fd00:10:244:{node}::{}", 10 + i) },
                ]);
                pod.spec.get_or_insert_default().node_name = Some(format!("n{node}"));
                inv.put_pod(Pod::from_object(&pod, "lab").unwrap().unwrap());
            }
            other => panic!("unexpected object in the model: {other:?}"),
        }
    }
    inv.nodes.insert("n1".into(), vec!["172.30.0.1".parse().unwrap()]);
    inv.nodes.insert("n2".into(), vec!["172.30.0.2".parse().unwrap()]);
    inv
}

#[test]
fn upstream_netpol_cases_hold_in_the_evaluator_and_the_compiled_entries() {
    let base = model();
    let ips: BTreeMap<String, IpAddr> = base.pods.values().map(|p| (p.key(), p.ips[0])).collect();
    let all_ips: BTreeMap<String, Vec<IpAddr>> = base.pods.values().map(|p| (p.key(), p.ips.clone())).collect();
    let pods: Vec<String> = ips.keys().cloned().collect();
    let all = cases();
    assert!(all.len() >= 50, "only {} cases found", all.len());
    let mut failures = Vec::new();
    let mut tables = 0;
    let mut compiler = Compiler::new();
    for (file, case) in &all {
        let mut inv = base.clone();
        for (si, step) in case.steps.iter().enumerate() {
            for (name, ns) in inv.namespaces.iter_mut() {
                patch_labels(&mut ns.labels, step.namespace_labels.get(name));
            }
            for (key, pod) in inv.pods.iter_mut() {
                patch_labels(&mut pod.labels, step.pod_labels.get(key));
            }
            let mut set = PolicySet::default();
            for obj in parse_documents(file, &step.policies_yaml(&ips).unwrap()).unwrap() {
                match obj {
                    Object::NetworkPolicy(np) => set.put_network(NetworkPolicy::try_from(&np).unwrap()),
                    Object::ClusterNetworkPolicy(cp) => set.put_cluster(cp.as_ref().try_into().unwrap()),
                    other => panic!("{file}: unexpected {other:?}"),
                }
            }
            let eval = Evaluator::new(&inv, &set);
            let compiled = compiler.compile(&inv, &set).unwrap();
            let sim = Simulated::new(&compiled, &all_ips);
            for probe in &step.probes {
                tables += 1;
                let expected = Table::parse(&probe.expect).unwrap();
                let proto = Some(probe.protocol);
                let by_eval =
                    Table::build(&pods, |a, b| a == b || eval.connection(ips[a], ips[b], proto, probe.port).allowed);
                let by_dp = Table::build(&pods, |a, b| a == b || sim.allows(ips[a], ips[b], proto, probe.port));
                if let Some(d) = expected.diff(&by_eval) {
                    failures.push(format!("{file} step {si} {}/{} (evaluator): {d}", probe.protocol, probe.port));
                }
                if let Some(d) = by_eval.diff(&by_dp) {
                    failures.push(format!(
                        "{file} step {si} {}/{} (compiled vs evaluator): {d}",
                        probe.protocol, probe.port
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failing tables:\n{}", failures.len(), failures.join("\n"));
    assert!(tables >= 60, "only {tables} tables checked");
}
