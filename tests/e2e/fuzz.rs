//! Schemathesis (PyPI) fuzzes the lab's API from the OpenAPI document it
//! serves, as an admin, bounded in examples: no server error, no crash, and
//! every answer conforms to the schema it documents. The live stream is
//! left out (it never ends).

use std::path::Path;
use std::process::Command;

use crate::support::{Api, Lab, pod};

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let st = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/st");
    assert!(st.exists(), "{} is missing: run scripts/install-deps.sh (it installs schemathesis)", st.display());
    let manifests = [
        pod("shop", "web", "web", &["80"]),
        pod("shop", "db", "db", &["5432"]),
        pod("bank", "ledger", "ledger", &["9000"]),
    ]
    .concat();
    let lab = Lab::up("fuzz", "bridge", 1, &manifests);
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let status: serde_json::Value =
        serde_json::from_str(&lab.bulkhead(&["lab", "status", "--name", &lab.name, "-o", "json"])).unwrap();
    let ca = status["api"]["ca_file"].as_str().unwrap().to_string();
    // Schemathesis writes its state into the working directory: give it its own.
    let work = std::env::temp_dir().join(format!("bulkhead-fuzz-{}", lab.name));
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new(&st)
        .current_dir(&work)
        .args(["run", &format!("{}/api/v1/openapi.json", api.url)])
        .args(["--tls-verify", &ca, "-H", &format!("Authorization: Bearer {admin}")])
        .args(["-c", "not_a_server_error,response_schema_conformance,content_type_conformance"])
        .args(["-n", "15", "-w", "2", "--seed", "7", "--request-timeout", "30", "--continue-on-failure"])
        .args(["--exclude-path", "/api/v1/flows/stream"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&work);
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(!text.contains("Server error") && text.contains("passed"), "{text}");
    assert!(!text.contains("nresolvable reference"), "parts of the schema could not be tested:\n{text}");
    // The controller is still up and still enforcing.
    assert_eq!(api.call("GET", "/api/v1/status", Some(&admin), None).status, 200);
}
