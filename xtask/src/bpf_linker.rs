//! bpf-linker, built against nightly's own libLLVM so both speak the same bitcode.
//!
//! Recipe: make a prefix whose `lib/libLLVM.so` links to nightly's
//! `lib/libLLVM.so.<ver>-rust-<ver>-nightly`, then
//! `LLVM_PREFIX=<prefix> cargo install bpf-linker --no-default-features --features llvm-<major>`.
//! The prefix also gets a link under the library's soname, so the rpath bpf-linker's build
//! embeds resolves it even outside `rustup run`.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, toolchain};

fn version_command() -> Command {
    let mut version = Command::new("rustup");
    version.args(["run", toolchain::NIGHTLY, "bpf-linker", "--version"]);
    version
}

/// `bpf-linker --version` as nightly runs it, if it works.
fn working_version() -> Option<String> {
    let out = cmd::stdout(&mut version_command()).ok()?;
    Some(out.trim().to_owned())
}

/// Installs bpf-linker unless `rustup run nightly bpf-linker --version` already works.
pub fn ensure() -> Result<()> {
    if let Some(version) = working_version() {
        cmd::report("bpf-linker", &format!("ok: already present ({version})"));
        return Ok(());
    }
    let major = toolchain::llvm_major()?;
    let prefix = llvm_prefix(major)?;
    eprintln!(
        "setup: building bpf-linker against nightly's LLVM {major} (prefix {}); this takes a few minutes",
        prefix.display()
    );
    cmd::run(
        cmd::cargo()
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "--locked", "--force", "bpf-linker"])
            .args(["--no-default-features", "--features", &format!("llvm-{major}")]),
    )?;
    let Some(version) = working_version() else {
        bail!("bpf-linker was installed but `{}` still fails", cmd::display(&version_command()));
    };
    cmd::report("bpf-linker", &format!("installed ({version}, LLVM {major})"));
    Ok(())
}

/// Creates (or refreshes) `<cache>/sockstrace/llvm-<major>` with links to nightly's libLLVM.
fn llvm_prefix(major: u32) -> Result<PathBuf> {
    let sysroot_lib = toolchain::sysroot()?.join("lib");
    let libllvm = find_libllvm(&sysroot_lib)?;
    let prefix = cmd::cache_dir()?.join("sockstrace").join(format!("llvm-{major}"));
    let lib = prefix.join("lib");
    if lib.exists() {
        fs::remove_dir_all(&lib).with_context(|| format!("removing {}", lib.display()))?;
    }
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let soname = libllvm.file_name().context("libLLVM path has no file name")?;
    for name in [Path::new("libLLVM.so"), Path::new(soname)] {
        let link = lib.join(name);
        symlink(&libllvm, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), libllvm.display()))?;
    }
    Ok(prefix)
}

/// The real shared object `libLLVM.so.<ver>-rust-<ver>...` in nightly's `lib/`.
fn find_libllvm(sysroot_lib: &Path) -> Result<PathBuf> {
    let entries = fs::read_dir(sysroot_lib).with_context(|| format!("listing {}", sysroot_lib.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", sysroot_lib.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    match pick_libllvm(&names) {
        Some(name) => Ok(sysroot_lib.join(name)),
        None => {
            bail!("no libLLVM.so.<ver>-rust-<ver> in {} (found: {})", sysroot_lib.display(), names.join(", "))
        }
    }
}

/// Picks the real library among a directory's names. `libLLVM-<major>-rust-*.so` is only a
/// linker script pointing at it, so it is not a candidate.
fn pick_libllvm(names: &[String]) -> Option<&str> {
    names
        .iter()
        .map(String::as_str)
        .filter(|name| name.starts_with("libLLVM.so.") && name.contains("-rust-"))
        .min()
}

#[cfg(test)]
mod tests {
    use super::pick_libllvm;

    #[test]
    fn picks_the_real_library_not_the_linker_script() {
        let names: Vec<String> = [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "librustc_driver-b5a965480ee51f9a.so",
            "rustlib",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(pick_libllvm(&names), Some("libLLVM.so.22.1-rust-1.97.0-nightly"));
        assert_eq!(pick_libllvm(&names[2..]), None);
    }
}
