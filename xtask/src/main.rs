//! Developer tasks for the sockstrace workspace, run as `cargo xtask <task>`.
//!
//! - `setup`: install what a fresh Debian 12 machine lacks (apt packages, nightly with rust-src,
//!   a bpf-linker built against nightly's own LLVM). Idempotent; one line per item.
//! - `test [ARGS]...`: build the `sockstrace` binary, then `cargo test --workspace ARGS...` with
//!   `SOCKSTRACE_BIN` pointing at it.
//! - `demo`: set up, build, and show `sockstrace run` allowing a proxied curl and catching a
//!   direct one (blocked, then logged as JSON), checking each claim.
//! - `deb [--check [--keep]]`: a Debian package in `target/deb/`; `--check` installs it, runs
//!   doctor and the demo against the installed binary, and removes it.
//! - `docs`: the man page and bash/zsh/fish completions, from the clap definitions.
//! - `bench [--quick] [--rounds N] [--sockstrace PATH] [--peers]`: the brief's performance ratios
//!   (native, `sockstrace run`, `strace --seccomp-bpf`; sandlock and Syd with `--peers`), a table
//!   and `target/bench/bench.json`.
//! - `fuzz [--seconds N] [--seed S] [--as-user U] [--self-check | --ci] ...`: the leak fuzzer (root):
//!   generated socket programs under `sockstrace run` in a network namespace, judged by the
//!   packets a sniffer sees; findings shrunk to C reproducers under `target/fuzz/`.
//! - `tor-net [--name NAME=IPV4]... [--port PORT]...`: a private Tor network on loopback (the
//!   tests' own), its SOCKS and control ports printed, until Ctrl-C.

mod apt;
mod bench;
mod bpf_linker;
mod cmd;
mod deb;
mod demo;
mod docs;
mod fuzz;
mod setup;
mod test;
mod toolchain;
mod tornet;

use std::process::ExitCode;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  setup           install missing apt packages, nightly + rust-src, and bpf-linker
  test [ARGS]...  build sockstrace, then `cargo test --workspace ARGS...` with SOCKSTRACE_BIN set
  demo [--sockstrace PATH]
                  set up, build, and show sockstrace catching a direct connection (start here)
  bench [--quick] [--rounds N] [--sockstrace PATH] [--peers]
                  measure native / sockstrace run / strace (/ sandlock / Syd) ratios; table + target/bench/bench.json
  fuzz [--seconds N] [--seed S] [--as-user U | --only-user U] [--self-check | --ci]
       [--kernel MODE] [--known-open CLASS,...] [--allowed-only] [--batch N]
                  leak fuzzer (root): packet-level oracle, shrunk C reproducers in target/fuzz/
  tor-net [--name NAME=IPV4]... [--port PORT]...
                  a private Tor network on loopback (3 authorities, an exit, a client)
                  until Ctrl-C; prints its SOCKS and control ports
  docs            write the man page and shell completions to target/dist/
  deb [--check [--keep]]
                  build a Debian package in target/deb/; --check (root) installs it, runs
                  doctor and the demo against /usr/bin/sockstrace, then removes it
  help            show this text";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    match task.as_str() {
        "setup" => {
            if !rest.is_empty() {
                bail!("`setup` takes no arguments\n\n{USAGE}");
            }
            setup::run()
        }
        "test" => test::run(rest),
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        "docs" => docs::run(),
        "deb" => deb::run(rest),
        "fuzz" => fuzz::run(rest),
        "tor-net" => tornet::run(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}
