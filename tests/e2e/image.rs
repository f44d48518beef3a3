//! The OCI image built FROM scratch by `scripts/build-image.sh`: unpacked
//! by umoci and entered with chroot, so nothing of the host is visible, the
//! binary runs with only the libraries the image carries, as the user the
//! image names, and the console the controller serves is inside.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_image_runs_the_binary_with_only_its_own_files() {
    let dir = Scratch(std::env::temp_dir().join(format!("bulkhead-image-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layout = dir.0.join("layout");
    run(Command::new("bash")
        .arg(repo.join("scripts/build-image.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_bulkhead"), "--tag", "e2e"])
        .arg(&layout));
    let bundle = dir.0.join("bundle");
    run(Command::new("umoci").args(["unpack", "--image", &format!("{}:e2e", layout.display())]).arg(&bundle));

    // What a runtime would start: the entrypoint, as the image's user.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"][0], "/usr/local/bin/bulkhead", "{}", config["process"]);
    assert_eq!(config["process"]["user"]["uid"], 65532);

    let rootfs = bundle.join("rootfs");
    let version = run(Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .args(["/usr/local/bin/bulkhead", "--version"]));
    assert_eq!(version.trim(), format!("bulkhead {}", env!("CARGO_PKG_VERSION")));
    // More than --version: the install generator runs inside too.
    let manifests = run(Command::new("chroot").arg(&rootfs).args(["/usr/local/bin/bulkhead", "install"]));
    assert!(manifests.contains("kind: DaemonSet"));
    assert!(rootfs.join("usr/share/bulkhead/console/index.html").is_file(), "the console is in the image");

    // Nothing beyond what the binary needs: no shell, no package manager.
    assert!(!rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin").exists());
    // And the chroot sees nothing of the host: without the image's libc the binary cannot start.
    let libc = ["lib/x86_64-linux-gnu/libc.so.6", "lib/aarch64-linux-gnu/libc.so.6"]
        .iter()
        .map(|l| rootfs.join(l))
        .find(|p| p.exists())
        .expect("the image carries libc");
    std::fs::remove_file(&libc).unwrap();
    let out = Command::new("chroot").arg(&rootfs).args(["/usr/local/bin/bulkhead", "--version"]).output().unwrap();
    assert!(!out.status.success(), "ran without libc: the chroot leaks host files");
}
