//! `cargo xtask setup`: make a fresh Debian 12 machine able to build and test everything.

use anyhow::Result;

use crate::{apt, bpf_linker, toolchain};

pub fn run() -> Result<()> {
    apt::ensure()?;
    toolchain::ensure_default_components()?;
    toolchain::ensure_nightly()?;
    bpf_linker::ensure()?;
    println!("setup: done");
    Ok(())
}
