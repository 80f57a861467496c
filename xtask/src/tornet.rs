//! `cargo xtask tor-net`: the private Tor network the tests use, until Ctrl-C. It is the tests
//! crate's `tor-net` binary (`tests/src/bin/tor-net.rs`), run in this process's place, so that
//! this crate does not depend on the tests crate: that one depends on sockstrace, whose eBPF
//! layer needs what `cargo xtask setup` installs, and `setup` must build on a fresh machine.

use std::os::unix::process::CommandExt as _;

use anyhow::{Context as _, Result};

use crate::cmd;

pub fn run(args: &[String]) -> Result<()> {
    let mut cargo = cmd::cargo();
    cargo.args(["run", "--quiet", "--package", "sockstrace-tests", "--bin", "tor-net", "--"]).args(args);
    let shown = cmd::display(&cargo);
    eprintln!("+ {shown}");
    // Only returns when it could not be run; Ctrl-C then reaches the network's own process.
    let err = cargo.exec();
    Err(err).with_context(|| format!("failed to run `{shown}`"))
}
