//! Loading the conformance suite and its models. Included by path in both tests that run
//! it: against the evaluator and the compiled entries
//! (policy/tests/semantics.rs) and on real traffic (tests/e2e.rs).

use std::path::{Path, PathBuf};

use bulkhead_policy::conformance::Case;

/// Every case of tests/conformance/{netpol,tiers,cnp}, named "dir/file-stem", in file order.
pub fn cases() -> Vec<(String, Case)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance");
    let mut files: Vec<PathBuf> = ["netpol", "tiers", "cnp"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = format!(
                "{}/{}",
                p.parent().unwrap().file_name().unwrap().to_string_lossy(),
                p.file_stem().unwrap().to_string_lossy()
            );
            let case = Case::parse(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, case)
        })
        .collect()
}

/// A model's Namespace and Pod objects, as YAML.
pub fn model_text(model: bulkhead_policy::conformance::Model) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance").join(model.file());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
