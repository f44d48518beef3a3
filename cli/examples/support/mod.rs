//! What the lab benchmarks share: the lab they bring up and remove, and
//! bystander pods that make a cluster the size a figure is quoted at.

#![allow(dead_code)]

use std::path::PathBuf;

/// Removes the lab on drop, also when the benchmark panics.
pub struct Down(pub String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = bulkhead_lab::down(&self.0);
    }
}

/// The release `bulkhead` binary next to the running example.
pub fn exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("bulkhead");
    assert!(exe.exists(), "build the binary first: cargo build --release ({})", exe.display());
    exe
}

/// `pods` bystander pods in `namespace`, in Deployments of at most 100
/// (the lab caps replicas), each document preceded by `---`.
pub fn bystanders(namespace: &str, pods: usize) -> String {
    let mut out = String::new();
    let mut left = pods;
    let mut i = 0;
    while left > 0 {
        let n = left.min(100);
        out.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: filler-{i}, namespace: {namespace}}}\nspec:\n  replicas: {n}\n  template:\n    metadata: {{labels: {{app: filler-{i}}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
        ));
        left -= n;
        i += 1;
    }
    out
}

/// Brings up lab `name` from `manifests` on the bridge CNI, enforcing,
/// about 240 pods per node (at least 2 nodes) so attach times and figures
/// stay comparable; any earlier lab of that name is removed first. The
/// guard removes it again.
pub async fn up(name: &str, manifests: &str, pods: usize) -> (Down, bulkhead_lab::state::LabState) {
    let exe = exe();
    let _ = bulkhead_lab::down(name);
    let guard = Down(name.to_string());
    let file = std::env::temp_dir().join(format!("bulkhead-{name}.yaml"));
    std::fs::write(&file, manifests).unwrap();
    let opts = bulkhead_lab::UpOptions {
        name: name.to_string(),
        files: vec![file],
        cni: "bridge".into(),
        nodes: pods.div_ceil(240).max(2),
        default_mode: "enforce".into(),
        exe,
        learn: (0, 0),
        controller_args: Vec::new(),
        agent_args: Vec::new(),
        pod_cidr: bulkhead_lab::cidr::DEFAULT.into(),
    };
    (guard, bulkhead_lab::up(&opts).await.unwrap())
}

/// A server (`srv`, port 8000) and a client (`cli`) in `namespace`, and
/// bystanders up to `pods` pods in all.
pub fn server_and_client(namespace: &str, pods: usize) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: srv, namespace: {namespace}, labels: {{app: srv}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 8000}}]}}]}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: cli, namespace: {namespace}, labels: {{app: cli}}}}\nspec: {{containers: [{{name: c}}]}}\n"
    );
    out.push_str(&bystanders(namespace, pods.saturating_sub(2)));
    out
}

/// p50, p99 and max of `v`, as JSON.
pub fn quantiles(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    serde_json::json!({"p50": at(0.5), "p99": at(0.99), "max": v[v.len() - 1]})
}

/// Whether the probe connects now (5 ms timeout).
pub async fn connects(lab: &bulkhead_lab::state::LabState, p: &bulkhead_lab::probe::Probe) -> bool {
    let (state, probe) = (lab.clone(), p.clone());
    let run = move || bulkhead_lab::probe::run(&state, &[probe], std::time::Duration::from_millis(5));
    tokio::task::spawn_blocking(run).await.unwrap().unwrap()[0].connected
}

/// An HTTPS client trusting the lab API's CA.
pub fn https_client(ca_file: &std::path::Path) -> reqwest::Client {
    let ca = std::fs::read(ca_file).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}
