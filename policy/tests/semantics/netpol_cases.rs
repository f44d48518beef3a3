//! The transcribed upstream NetworkPolicy and ClusterNetworkPolicy cases and
//! our cluster-tier cases, checked without a kernel: every truth table and
//! every check against the evaluator and against the compiled entries.
//! The lab runs the same cases on real traffic (tests/e2e/conformance.rs).

use std::collections::BTreeMap;
use std::net::IpAddr;

use bulkhead_policy::compile::Compiler;
use bulkhead_policy::conformance::{Model, Table, patch_labels};
use bulkhead_policy::evaluate::{Evaluator, PolicySet};
use bulkhead_policy::inventory::{Inventory, Namespace, Pod};
use bulkhead_policy::netpol::NetworkPolicy;
use bulkhead_policy::objects::{Object, parse_documents};

use super::dataplane::Simulated;
use crate::suite::{cases, model_text};

/// A model with addresses: pods alternate between two nodes, dual-stack.
pub fn model(which: Model) -> Inventory {
    let text = model_text(which);
    let mut inv = Inventory::new("lab");
    let mut i = 0u8;
    for obj in parse_documents(which.file(), &text).unwrap() {
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
fn upstream_netpol_and_cnp_cases_hold_in_the_evaluator_and_the_compiled_entries() {
    let bases: BTreeMap<Model, Inventory> = [Model::Xyz, Model::Houses].into_iter().map(|m| (m, model(m))).collect();
    let all = cases();
    assert!(all.len() >= 70, "only {} cases found", all.len());
    let mut failures = Vec::new();
    let (mut tables, mut checks) = (0, 0);
    let mut compiler = Compiler::new();
    for (file, case) in &all {
        let base = &bases[&case.model];
        let ips: BTreeMap<String, IpAddr> = base.pods.values().map(|p| (p.key(), p.ips[0])).collect();
        let all_ips: BTreeMap<String, Vec<IpAddr>> = base.pods.values().map(|p| (p.key(), p.ips.clone())).collect();
        let pods: Vec<String> = ips.keys().cloned().collect();
        for (si, step) in case.steps.iter().enumerate() {
            // Labels are relative to the model, step by step.
            let mut inv = base.clone();
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
                    Object::BulkheadClusterPolicy(cp) => set.put_cluster(cp.as_ref().try_into().unwrap()),
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
            for c in &step.checks {
                checks += 1;
                let (Some(a), Some(b)) = (ips.get(&c.from), ips.get(&c.to)) else {
                    panic!("{file} step {si}: {} or {} is not in the {:?} model", c.from, c.to, case.model);
                };
                let d = eval.connection(*a, *b, Some(c.protocol), c.port);
                let by_dp = sim.allows(*a, *b, Some(c.protocol), c.port);
                if d.allowed != c.connected || by_dp != c.connected {
                    failures.push(format!(
                        "{file} step {si} {} -> {} {}/{}: expected {}, evaluator {} ({:?}), compiled {}",
                        c.from, c.to, c.protocol, c.port, c.connected, d.allowed, d, by_dp
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failing tables or checks:\n{}", failures.len(), failures.join("\n"));
    assert!(tables >= 60 && checks >= 250, "only {tables} tables and {checks} checks");
}

/// The policies of a YAML stream.
fn policy_set(yaml: &str) -> PolicySet {
    let mut set = PolicySet::default();
    for obj in parse_documents("t", yaml).unwrap() {
        match obj {
            Object::NetworkPolicy(np) => set.put_network(NetworkPolicy::try_from(&np).unwrap()),
            Object::ClusterNetworkPolicy(cp) => set.put_cluster(cp.as_ref().try_into().unwrap()),
            Object::BulkheadClusterPolicy(cp) => set.put_cluster(cp.as_ref().try_into().unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    set
}

fn pod_ips(inv: &Inventory) -> BTreeMap<String, Vec<IpAddr>> {
    inv.pods.values().map(|p| (p.key(), p.ips.clone())).collect()
}

/// A pod's own node always reaches it (kubelet probes), but what the pod may
/// send its node is the policies' to decide: an egress Deny to `nodes` keeps
/// it off its own kubelet too. Evaluator and compiled entries agree.
#[test]
fn the_own_node_exemption_is_for_traffic_from_the_node_only() {
    use bulkhead_policy::ports::Protocol::Tcp;
    let mut inv = model(Model::Houses);
    for n in ["n1", "n2"] {
        inv.node_labels.insert(n.into(), Default::default());
    }
    let pod = inv.pods.values().next().unwrap().clone();
    let own = inv.nodes[&pod.node][0];
    let other = inv.nodes.iter().find(|(n, _)| **n != pod.node).map(|(_, ips)| ips[0]).unwrap();
    let yaml = format!(
        "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {{name: no-kubelet}}
spec:
  tier: Admin
  priority: 1
  subject: {{namespaces: {{}}}}
  egress:
  - {{action: Deny, to: [{{nodes: {{}}}}], protocols: [{{tcp: {{destinationPort: {{number: 10250}}}}}}]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-ingress, namespace: {}}}
spec: {{podSelector: {{}}, policyTypes: [Ingress]}}
",
        pod.namespace
    );
    let set = policy_set(&yaml);
    let eval = Evaluator::new(&inv, &set);
    let compiled = Compiler::new().compile(&inv, &set).unwrap();
    let sim = Simulated::new(&compiled, &pod_ips(&inv));
    let both = |from: IpAddr, to: IpAddr, port: u16| {
        let (e, s) = (eval.connection(from, to, Some(Tcp), port).allowed, sim.allows(from, to, Some(Tcp), port));
        assert_eq!(e, s, "{from} -> {to}:{port}: evaluator {e}, compiled {s}");
        e
    };
    let ip = pod.ips[0];
    assert!(!both(ip, own, 10250), "the pod's own kubelet is denied");
    assert!(!both(ip, other, 10250), "another node's kubelet is denied");
    assert!(both(ip, own, 22), "other ports of its node are not");
    assert!(both(own, ip, 8080), "its own node reaches it under an ingress default deny");
    assert!(!both(other, ip, 8080), "another node does not");
}

/// Pods of other clusters are peers by their cluster: a `clusters` peer
/// matches them, this cluster's pod and namespace selectors never do (even
/// with the same namespace and labels), and an address this cluster holds
/// stays its own. Evaluator and compiled entries agree.
#[test]
fn pods_of_other_clusters_match_by_cluster_only() {
    use bulkhead_policy::inventory::Pod as InvPod;
    use bulkhead_policy::ports::Protocol::Tcp;
    let mut inv = model(Model::Xyz);
    let target = inv.pods.values().next().unwrap().clone();
    let neighbour =
        inv.pods.values().find(|p| p.namespace == target.namespace && p.key() != target.key()).unwrap().clone();
    let remote = |cluster: &str, ip: IpAddr| InvPod {
        cluster: cluster.into(),
        name: "caller".into(),
        node: format!("{cluster}/n1"),
        ips: vec![ip],
        ports: vec![],
        declared: vec![],
        host_ports: vec![],
        ..target.clone()
    };
    let (east, west): (IpAddr, IpAddr) = ("10.245.0.5".parse().unwrap(), "10.246.0.5".parse().unwrap());
    // A service whose backend is `neighbour`, and a pod of east with the
    // very same namespace and name: a services peer is this cluster's.
    let twin: IpAddr = "10.245.0.6".parse().unwrap();
    inv.put_service(bulkhead_policy::inventory::Service {
        namespace: target.namespace.clone(),
        name: "svc".into(),
        selector: None,
        cluster_ips: vec![],
        ports: vec![],
        endpoints: Some(neighbour.ips.clone()),
        exposure: Default::default(),
    });
    let twin_pod = InvPod { name: neighbour.name.clone(), ..remote("east", twin) };
    inv.remote_pods = vec![remote("east", east), remote("west", west), remote("east", target.ips[0]), twin_pod];
    let yaml = format!(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: same-namespace, namespace: {ns}}}
spec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{}}}}]}}]}}
---
apiVersion: bulkhead.dev/v1alpha2
kind: BulkheadClusterPolicy
metadata: {{name: from-east}}
spec:
  tier: Admin
  priority: 1
  subject: {{pods: {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}, podSelector: {{}}}}}}
  ingress:
  - {{action: Accept, from: [{{clusters: [east]}}], protocols: [{{tcp: {{destinationPort: {{number: 81}}}}}}]}}
  - {{action: Accept, from: [{{services: [{{namespace: {ns}, name: svc}}]}}], protocols: [{{tcp: {{destinationPort: {{number: 82}}}}}}]}}
",
        ns = target.namespace
    );
    let set = policy_set(&yaml);
    let eval = Evaluator::new(&inv, &set);
    let compiled = Compiler::new().compile(&inv, &set).unwrap();
    let sim = Simulated::new(&compiled, &pod_ips(&inv));
    let to = target.ips[0];
    let both = |from: IpAddr, port: u16| {
        let (e, s) = (eval.connection(from, to, Some(Tcp), port).allowed, sim.allows(from, to, Some(Tcp), port));
        assert_eq!(e, s, "{from} -> {to}:{port}: evaluator {e}, compiled {s}");
        e
    };
    assert!(both(east, 81), "a pod of east, by its cluster");
    assert!(!both(east, 80), "not a pod of this namespace, whatever its labels");
    assert!(!both(west, 81), "another cluster is not east");
    assert!(both(neighbour.ips[0], 80), "this cluster's neighbour by the NetworkPolicy");
    assert!(both(neighbour.ips[0], 82), "the service's backend by the services peer");
    assert!(!both(twin, 82), "a pod of east named like the backend is not the service's");
    let owners: Vec<&str> = compiled.ipcache.iter().filter(|e| e.net.ip() == to).map(|e| e.owner.as_str()).collect();
    assert_eq!(owners, [target.key()], "the address stays the local pod's");
    assert!(
        compiled
            .ipcache
            .iter()
            .any(|e| e.net.ip() == east && e.owner == "east/".to_string() + &target.namespace + "/caller")
    );
    assert!(!compiled.endpoints.keys().any(|k| k.contains("caller")), "pods of other clusters are not enforced here");
}
