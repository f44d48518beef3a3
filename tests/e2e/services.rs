//! Services as kube-proxy makes them, with the lab's cluster DNS: pods
//! resolve service names over real DNS traffic to kube-dns, connect to the
//! ClusterIP, and are DNATed to a backend in the node. Egress policy sees
//! the ClusterIP and allows it exactly when the pod may reach a backend on
//! the target port; DNS itself must be allowed like any other traffic.

use crate::support::{Lab, pod};

fn manifests() -> String {
    let egress = |name: &str, app: &str, to: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: x}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  policyTypes: [Egress]\n  egress: [{to}]\n"
        )
    };
    let dns = "{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]}";
    let web = "{to: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}";
    [
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: x}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}\n".to_string(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n".to_string(),
        pod("x", "a", "a", &[]),
        pod("x", "c", "c", &[]),
        pod("x", "d", "d", &[]),
        egress("a-web-and-dns", "a", &format!("{web}, {dns}")),
        egress("c-dns-only", "c", dns),
        egress("d-web-only", "d", web),
    ]
    .concat()
}

fn services(cni: &str) {
    let lab = Lab::up(&format!("svc-{cni}"), cni, 2, &manifests());
    let web_ip = lab.state.services.iter().find(|s| s.key() == "x/web").unwrap().cluster_ip.to_string();
    // Ten tries reach both backends, on a's node and on the other one.
    for i in 0..10 {
        assert!(lab.probe("x/a", "x/web", 80, false, false), "a -> web by name, try {i} over {cni}");
    }
    assert!(!lab.probe("x/c", "x/web", 80, false, false), "c resolves web but may not reach a backend");
    assert!(!lab.probe("x/d", "x/web", 80, false, false), "d may reach web but not DNS, so the name fails");
    assert!(lab.probe("x/d", &web_ip, 80, false, false), "d reaches the ClusterIP without DNS");
    assert!(!lab.probe("x/a", &web_ip, 81, false, false), "no such service port");
    let explain = lab.bulkhead(&["policy", "explain", "--lab", &lab.name, "x/a", "x/web:80"]);
    assert!(explain.contains("ALLOWED") && explain.contains("service x/web -> x/a-web-and-dns#0"), "{explain}");
    let explain = lab.bulkhead(&["policy", "explain", "--lab", &lab.name, "x/c", "x/web:80"]);
    assert!(explain.contains("DENIED") && explain.contains("isolated by x/c-dns-only"), "{explain}");
}

#[test]
fn service_names_resolve_and_cluster_ips_follow_backend_policy_on_bridge() {
    services("bridge");
}

#[test]
fn service_names_resolve_and_cluster_ips_follow_backend_policy_on_ptp() {
    services("ptp");
}
