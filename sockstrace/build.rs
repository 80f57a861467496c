//! Builds the eBPF object from `sockstrace-ebpf` and leaves it at `$OUT_DIR/sockstrace-ebpf`,
//! where `src/kernel/object.rs` embeds it with `aya::include_bytes_aligned!`.
//!
//! aya-build runs `rustup run nightly cargo build -p sockstrace-ebpf --bins --release
//! --target bpfel-unknown-none -Z build-std=core`, linking with bpf-linker, and copies each binary
//! target to `$OUT_DIR/<bin name>`. That needs nightly with `rust-src` and a bpf-linker built
//! against nightly's LLVM, which `cargo xtask setup` installs; we check for them first so a
//! missing piece fails with one clear line instead of a page of linker errors.
//!
//! `AYA_BUILD_SKIP=1` builds without the kernel layer: the embedded object is empty and
//! `kernel::probe()` reports it.

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};
use aya_build::{Package, Toolchain};

/// The eBPF crate, relative to this one.
const EBPF_DIR: &str = "../sockstrace-ebpf";
/// What the object is built from, relative to this crate: the eBPF crate (aya-build watches its
/// directory too), the shared crate inside it, and the workspace manifest and lock file that pin
/// their dependencies. We have no cargo dependency on the eBPF crate (it would build aya-ebpf
/// for the host), so these are how cargo knows to run us again.
const EBPF_SOURCES: &[&str] =
    &["../sockstrace-ebpf", "../sockstrace-ebpf/common", "../Cargo.toml", "../Cargo.lock"];
const EBPF_PACKAGE: &str = "sockstrace-ebpf";
/// Its binary target; aya-build copies it to `$OUT_DIR/<this name>`.
const EBPF_BIN: &str = "sockstrace-ebpf";
const NIGHTLY: &str = "nightly";
const SETUP_HINT: &str = "run `cargo xtask setup` to install it (or build with AYA_BUILD_SKIP=1 \
                          to leave out the kernel layer)";

fn main() {
    if let Err(err) = build() {
        // Plain text, no backtrace: the first line is what the user has to act on.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn build() -> Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR is not set")?);
    let object = out_dir.join(EBPF_BIN);

    if skip_requested() {
        println!("cargo:warning=AYA_BUILD_SKIP is set: building sockstrace without its eBPF layer");
        return fs::write(&object, [])
            .with_context(|| format!("writing the empty stand-in {}", object.display()));
    }

    preflight()?;
    for source in EBPF_SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    aya_build::build_ebpf(
        [Package { name: EBPF_PACKAGE, root_dir: EBPF_DIR, ..Default::default() }],
        Toolchain::Nightly,
    )
    .context("building the eBPF object (sockstrace-ebpf) failed")?;

    let len = fs::metadata(&object)
        .with_context(|| format!("aya-build did not produce {}", object.display()))?
        .len();
    if len == 0 {
        bail!("aya-build produced an empty {}", object.display());
    }
    Ok(())
}

/// Mirrors aya-build's own test of `AYA_BUILD_SKIP`.
fn skip_requested() -> bool {
    env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Checks for nightly, its `rust-src` and bpf-linker, failing with a message that says how to
/// get them.
fn preflight() -> Result<()> {
    if !succeeds(Command::new("rustup").arg("--version")) {
        bail!("rustup is not on PATH; building the eBPF object needs rustup's nightly toolchain");
    }
    let sysroot = rustup_nightly(&["rustc", "--print", "sysroot"])
        .with_context(|| format!("the nightly toolchain is missing; {SETUP_HINT}"))?;
    let core_src = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core");
    if !core_src.is_dir() {
        bail!("nightly's rust-src component is missing; {SETUP_HINT}");
    }
    if rustup_nightly(&["bpf-linker", "--version"]).is_err() {
        bail!("bpf-linker is missing (or cannot load nightly's libLLVM); {SETUP_HINT}");
    }
    // Rebuild when bpf-linker is replaced (e.g. rebuilt for a new nightly).
    if let Some(linker) = find_in_path("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    Ok(())
}

/// Runs `rustup run nightly ARGS...` and returns its standard output.
fn rustup_nightly(args: &[&str]) -> Result<String> {
    let output = Command::new("rustup")
        .args(["run", NIGHTLY])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("failed to run rustup")?;
    if !output.status.success() {
        bail!("`rustup run {NIGHTLY} {}` failed", args.join(" "));
    }
    String::from_utf8(output.stdout).context("non-UTF-8 output")
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn find_in_path(program: impl AsRef<OsStr>) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(program.as_ref())).find(|candidate| candidate.is_file())
}
