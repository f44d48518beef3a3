//! The web console in a real browser (Debian's Chromium through
//! playwright-core) against a lab running two tenants' apps: the scenarios
//! of `ui/e2e/run.mjs` (log in, the map, flow filters, a suggestion from
//! diff to enforce, quarantine from the map with a real probe blocked and
//! restored, a flow's source blocked and lifted with a real probe, a
//! tenant's view, a viewer's missing controls and the API's
//! refusal, the other views), each failing on any console error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_model::Role;

use crate::e2e::api::{manifests, wait_for};
use crate::support::{Api, BIN, Lab};

/// The longest the scenarios may take together.
const TIMEOUT: Duration = Duration::from_secs(600);

fn ui() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui")
}

#[test]
fn the_console_drives_the_lab_in_a_real_browser() {
    let ui = ui();
    assert!(
        ui.join("dist/index.html").is_file(),
        "the console is not built: run `make console` (ui/dist/index.html missing)"
    );
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `make console` (npm ci in ui/)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} missing: run scripts/install-deps.sh (apt-get install chromium)"
    );

    let lab = Lab::up_with("ui", "bridge", 2, &manifests(), &["--learn-window", "3", "--learn-quiet", "2"]);
    let api = Api::of(&lab);
    let admin = api.lab_token("admin");
    let viewer = api.lab_token("viewer");
    let tenant = api.add_tokens(&[("shop-viewer", Role::Viewer, Some(&["shop"]))]).remove(0);
    wait_for("stable baselines", Duration::from_secs(90), || {
        let b = api.get("/api/v1/baselines", &admin);
        let w = b["workloads"].as_array().unwrap();
        w.len() >= 4 && w.iter().all(|x| x["phase"] == "stable")
    });

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let mut child = Command::new("node")
        .arg(ui.join("e2e/run.mjs"))
        .current_dir(&ui)
        .env("BULKHEAD_URL", &api.url)
        .env("ADMIN_TOKEN", &admin)
        .env("VIEWER_TOKEN", &viewer)
        .env("TENANT_TOKEN", &tenant)
        .env("BULKHEAD_BIN", BIN)
        .env("LAB", &lab.name)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js 20) runs the browser scenarios");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser scenarios took longer than {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}\n{stderr}\nscreenshots in {}", shots.display());
    assert!(status.success(), "browser scenarios failed:\n{stdout}\n{stderr}\nscreenshots in {}", shots.display());
    assert!(stdout.lines().filter(|l| l.starts_with("ok ")).count() >= 8, "every scenario ran:\n{stdout}");
}
