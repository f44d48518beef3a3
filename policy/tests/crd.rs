//! The CRDs in `deploy/crds/` (BulkheadClusterPolicy, Quarantine) are
//! generated from the Rust types. This test fails when they drift apart;
//! regenerate with
//! `BULKHEAD_UPDATE_CRDS=1 cargo test -p bulkhead-policy --test crd`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use bulkhead_policy::cluster::BulkheadClusterPolicy;
use bulkhead_policy::quarantine::Quarantine;
use kube_core::CustomResourceExt;

/// Fails when `deploy/crds/FILE` differs from the CRD generated from `source`.
fn matches_on_disk(
    file: &str,
    source: &str,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds").join(file);
    let generated = format!(
        "# Generated from {source}; do not edit. Regenerate with\n# BULKHEAD_UPDATE_CRDS=1 cargo test -p bulkhead-policy --test crd\n{}",
        serde_yaml::to_string(crd).unwrap()
    );
    if std::env::var_os("BULKHEAD_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(on_disk == generated, "{} is out of date; regenerate it (see the top of this test)", path.display());
}

#[test]
fn the_crd_manifests_match_the_rust_types() {
    let crd = BulkheadClusterPolicy::crd();
    matches_on_disk("bulkheadclusterpolicies.bulkhead.dev.yaml", "policy/src/cluster/spec.rs", &crd);
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.group, "bulkhead.dev");
    let crd = Quarantine::crd();
    matches_on_disk("quarantines.bulkhead.dev.yaml", "policy/src/quarantine.rs", &crd);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.group, "bulkhead.dev");
}
