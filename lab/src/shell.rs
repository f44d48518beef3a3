//! Running the host tools the lab drives (ip, CNI plugins), with errors that
//! quote the command and its stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::LabError;

/// Runs a command, returning stdout; a non-zero exit is an error with stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    run_with(program, args, &[], None)
}

/// Runs with extra environment and optional stdin.
pub fn run_with(program: &str, args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Result<String, LabError> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| LabError::Command { command: command.clone(), message: e.to_string() })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| LabError::Command { command: command.clone(), message: e.to_string() })?;
    }
    let out =
        child.wait_with_output().map_err(|e| LabError::Command { command: command.clone(), message: e.to_string() })?;
    if !out.status.success() {
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if message.is_empty() {
            message = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        return Err(LabError::Command { command, message: format!("{} ({})", message, out.status) });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec NS cmd…`.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    run("ip", &full)
}
