//! Debian packages the build, the tests and the benchmarks need.

use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::cmd;

/// What a fresh Debian 12 machine may lack.
pub const PACKAGES: &[&str] = &[
    "libseccomp-dev",
    "microsocks",
    "curl",
    "python3",
    "gcc",
    "libc6-dev",
    // gcc -m32 for the i386 test clients (netprobe32, the fuzzer's i386 client).
    "gcc-multilib",
    "iproute2",
    "util-linux",
    "liburing-dev",
    "tcpdump",
    "strace",
    // nc -X 5 -x: a proxy-aware client whose getaddrinfo sorts by UDP connects (run_udp_connect).
    "netcat-openbsd",
    // A SOCKS5 proxy with UDP ASSOCIATE, and dig (run_udp_socks, the UDP bench row).
    "dante-server",
    "dnsutils",
    // A static Go client (CGO_ENABLED=0: raw system calls, no libc) and headless Chromium (run_clients).
    "golang-go",
    "chromium",
    // An X server, its client and a D-Bus bus for the abstract unix socket bridge (run_isolate_forward).
    "xvfb",
    "x11-utils",
    "dbus",
    // tor and tor-gencert: the private Tor network of run_tor and `cargo xtask tor-net`.
    "tor",
    // gcore, for run --core-on-leak (run_stack).
    "gdb",
];

/// Whether dpkg reports `package` as installed.
fn installed(package: &str) -> bool {
    let mut query = Command::new("dpkg-query");
    query.args(["--show", "--showformat=${db:Status-Status}", package]).stderr(Stdio::null());
    cmd::stdout(&mut query).is_ok_and(|status| status.trim() == "installed")
}

/// `apt-get` prefixed with `sudo` when we are not root.
fn apt_get() -> Result<Command> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return Ok(Command::new("apt-get"));
    }
    if cmd::succeeds(Command::new("sudo").args(["-n", "true"])) {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "apt-get"]);
        return Ok(sudo);
    }
    bail!("installing apt packages needs root (or password-less sudo)")
}

/// Installs the missing packages (running `apt-get update` once, only if one is missing).
pub fn ensure() -> Result<()> {
    let (present, missing): (Vec<&str>, Vec<&str>) = PACKAGES.iter().partition(|package| installed(package));
    for package in &present {
        cmd::report(&format!("apt {package}"), "ok: already present");
    }
    if missing.is_empty() {
        return Ok(());
    }
    cmd::run(apt_get()?.env("DEBIAN_FRONTEND", "noninteractive").args(["update", "-q"]))?;
    cmd::run(
        apt_get()?
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )?;
    for package in &missing {
        if !installed(package) {
            bail!("apt package {package} is still missing after apt-get install");
        }
        cmd::report(&format!("apt {package}"), "installed");
    }
    Ok(())
}
