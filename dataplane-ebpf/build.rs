//! Compiles the eBPF programs with clang and generates the Rust ABI types
//! from the one C header both sides share.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One object per attach point; each is embedded into the crate.
const PROGRAMS: &[&str] = &["tc_from_pod", "tc_to_pod", "xdp_quarantine", "xdp_prefilter", "bench_floor"];

fn main() -> Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let bpf_dir = manifest.join("bpf");
    println!("cargo:rerun-if-changed={}", bpf_dir.display());
    println!("cargo:rerun-if-env-changed=BULKHEAD_CLANG");

    let clang = env::var("BULKHEAD_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    for prog in PROGRAMS {
        compile(&clang, &bpf_dir, &out, prog)?;
    }
    generate_abi(&bpf_dir, &out)
}

fn compile(clang: &str, bpf_dir: &Path, out: &Path, prog: &str) -> Result<()> {
    let src = bpf_dir.join(format!("{prog}.bpf.c"));
    let obj = out.join(format!("{prog}.bpf.o"));
    let status = Command::new(clang)
        .args(["-target", "bpf", "-D__TARGET_ARCH_x86", "-O2", "-g", "-Wall", "-Werror"])
        .arg("-I")
        .arg(bpf_dir.join("include"))
        .arg("-I")
        .arg(bpf_dir)
        // uapi asm/ headers live in the multiarch directory on Debian.
        .args(["-I", "/usr/include/x86_64-linux-gnu"])
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .with_context(|| {
            format!("running {clang}: install it with scripts/install-deps.sh (Debian package clang-19)")
        })?;
    if !status.success() {
        bail!("{clang} failed to compile {}", src.display());
    }
    Ok(())
}

fn generate_abi(bpf_dir: &Path, out: &Path) -> Result<()> {
    let header = bpf_dir.join("include").join("bulkhead_abi.h");
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        // Lay the types out exactly as the BPF target sees them; bindgen then
        // asserts at compile time that the Rust structs match field by field.
        .clang_args(["--target=bpf", "-D__BPF__", "-I/usr/include/x86_64-linux-gnu"])
        .allowlist_type("bh_.*")
        .allowlist_var("BH_.*")
        .derive_default(true)
        .derive_debug(true)
        .derive_copy(true)
        .derive_eq(true)
        .derive_hash(true)
        .prepend_enum_name(false)
        .use_core()
        .layout_tests(true)
        .generate()
        .context("bindgen could not process bulkhead_abi.h")?;
    bindings.write_to_file(out.join("abi.rs")).context("writing generated abi.rs")?;
    Ok(())
}
