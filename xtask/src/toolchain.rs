//! The nightly toolchain (with `rust-src`) that builds the eBPF object, and facts about it.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

/// The rustup toolchain aya-build uses for the eBPF crate.
pub const NIGHTLY: &str = "nightly";

fn rustup() -> Command {
    Command::new("rustup")
}

/// Installs nightly if absent, then `rust-src` for it.
pub fn ensure_nightly() -> Result<()> {
    if !cmd::succeeds(rustup().arg("--version")) {
        bail!("rustup is not on PATH; install it (https://rustup.rs) and source ~/.cargo/env");
    }
    if cmd::succeeds(rustup().args(["run", NIGHTLY, "rustc", "--version"])) {
        cmd::report("rust toolchain nightly", "ok: already present");
    } else {
        cmd::run(rustup().args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))?;
        cmd::report("rust toolchain nightly", "installed");
    }
    let installed = cmd::stdout(rustup().args(["component", "list", "--installed", "--toolchain", NIGHTLY]))?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        cmd::report("nightly component rust-src", "ok: already present");
    } else {
        cmd::run(rustup().args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))?;
        cmd::report("nightly component rust-src", "installed");
    }
    Ok(())
}

/// Components `.ci/run` uses on the default toolchain.
const DEFAULT_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// Adds rustfmt and clippy to the toolchain that builds the workspace, if missing.
pub fn ensure_default_components() -> Result<()> {
    let installed = cmd::stdout(rustup().args(["component", "list", "--installed"]))?;
    for component in DEFAULT_COMPONENTS {
        let item = format!("component {component}");
        if installed.lines().any(|line| line.starts_with(component)) {
            cmd::report(&item, "ok: already present");
        } else {
            cmd::run(rustup().args(["component", "add", component]))?;
            cmd::report(&item, "installed");
        }
    }
    Ok(())
}

/// The LLVM major version of nightly's rustc, from the `LLVM version: X.Y.Z` line of `-vV`.
pub fn llvm_major() -> Result<u32> {
    let verbose = cmd::stdout(rustup().args(["run", NIGHTLY, "rustc", "-vV"]))?;
    parse_llvm_major(&verbose).context("`rustc +nightly -vV` printed no `LLVM version:` line")
}

fn parse_llvm_major(verbose_version: &str) -> Option<u32> {
    let version = verbose_version.lines().find_map(|line| line.strip_prefix("LLVM version:"))?;
    version.trim().split('.').next()?.parse().ok()
}

/// nightly's sysroot (`rustc +nightly --print sysroot`).
pub fn sysroot() -> Result<PathBuf> {
    let sysroot = cmd::stdout(rustup().args(["run", NIGHTLY, "rustc", "--print", "sysroot"]))?;
    Ok(PathBuf::from(sysroot.trim()))
}

#[cfg(test)]
mod tests {
    use super::parse_llvm_major;

    #[test]
    fn llvm_major_from_verbose_version() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                  host: x86_64-unknown-linux-gnu\nrelease: 1.97.0-nightly\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(vv), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.0.0\n"), None);
    }
}
