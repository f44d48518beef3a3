//! The ClusterNetworkPolicy CRD in `deploy/crds/` is generated from the Rust
//! types. This test fails when they drift apart; regenerate with
//! `BULKHEAD_UPDATE_CRDS=1 cargo test -p bulkhead-policy --test crd`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use bulkhead_policy::cluster::ClusterNetworkPolicy;
use kube_core::CustomResourceExt;

#[test]
fn the_crd_manifest_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/clusternetworkpolicies.bulkhead.dev.yaml");
    let generated = format!(
        "# Generated from policy/src/cluster.rs; do not edit. Regenerate with\n# BULKHEAD_UPDATE_CRDS=1 cargo test -p bulkhead-policy --test crd\n{}",
        serde_yaml::to_string(&ClusterNetworkPolicy::crd()).unwrap()
    );
    if std::env::var_os("BULKHEAD_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(on_disk == generated, "{} is out of date; regenerate it (see the top of this test)", path.display());
    let crd = ClusterNetworkPolicy::crd();
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.group, "bulkhead.dev");
}
