//! `cargo xtask test [ARGS]...`: set the machine up, build the binary the end-to-end tests
//! drive, then test.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::cmd;

/// `target_directory` from `cargo metadata` (honours `CARGO_TARGET_DIR` and cargo config).
pub fn target_dir() -> Result<PathBuf> {
    let json = cmd::stdout(cmd::cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let metadata: serde_json::Value =
        serde_json::from_str(&json).context("parsing `cargo metadata` output")?;
    let dir = metadata["target_directory"].as_str().context("`cargo metadata` has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// Whether cargo arguments (before any `--`) already choose packages, in which case adding
/// `--workspace` would override the choice.
fn selects_packages(args: &[String]) -> bool {
    args.iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg.starts_with("-p") || arg.starts_with("--package") || arg == "--workspace")
}

pub fn run(args: &[String]) -> Result<()> {
    // A fresh machine needs the toolchain pieces first; on a set-up one this is quick.
    crate::setup::run()?;
    cmd::run(cmd::cargo().args(["build", "--package", "sockstrace"]))?;
    let bin = target_dir()?.join("debug").join("sockstrace");
    if !bin.is_file() {
        bail!("`cargo build` succeeded but {} is missing", bin.display());
    }
    eprintln!("+ export SOCKSTRACE_BIN={}", bin.display());
    let mut test = cmd::cargo();
    test.env("SOCKSTRACE_BIN", &bin).arg("test");
    if !selects_packages(args) {
        test.arg("--workspace");
    }
    cmd::run(test.args(args))
}

#[cfg(test)]
mod tests {
    use super::selects_packages;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn package_choice_is_respected() {
        assert!(selects_packages(&args(&["-p", "sockstrace", "kernel"])));
        assert!(selects_packages(&args(&["--package=sockstrace-tests"])));
        assert!(selects_packages(&args(&["-psockstrace"])));
        assert!(!selects_packages(&args(&["kernel", "--", "--nocapture"])));
        assert!(!selects_packages(&args(&["--", "-p"])));
        assert!(!selects_packages(&[]));
    }
}
