//! `--peers`: the two other seccomp user-notification sandboxes with a network policy, measured
//! as extra columns beside strace: sandlock (`sandlock run`, Landlock and a supervisor) and Syd.
//!
//! Each is built once from crates.io, at the version pinned here, into `target/peers/<name>`
//! (`cargo install --locked`); a later run finds the stamp and the binary and builds nothing.
//! Each gets the policy of the workload's `sockstrace run` column: the one allowed destination
//! (the proxy, the sink), everything else denied. Before any timing, [`check`] proves both halves
//! on this machine: every workload runs to success under the peer, and a connect or datagram the
//! policy does not allow is refused (while the same call succeeds natively), so no column can
//! time an error path or an open sandbox.

use std::{
    ffi::OsString,
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use super::workload::{Allowed, Endpoints, Tool};
use crate::{cmd, test};

/// A peer as it is built and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub tool: Tool,
    /// The crates.io crate and its pinned version.
    pub krate: &'static str,
    pub version: &'static str,
    /// The binary the crate installs that the bench runs.
    pub binary: &'static str,
}

pub const SANDLOCK: Spec =
    Spec { tool: Tool::Sandlock, krate: "sandlock-cli", version: "0.9.0", binary: "sandlock" };
pub const SYD: Spec = Spec { tool: Tool::Syd, krate: "syd", version: "3.59.0", binary: "syd" };

pub const ALL: [Spec; 2] = [SANDLOCK, SYD];

/// A peer column: the built binary, or why there is none.
pub struct Peer {
    pub spec: Spec,
    pub binary: Result<PathBuf, String>,
    /// What the binary says of its version (`--version`), when built.
    pub reported_version: Option<String>,
}

impl Peer {
    /// The binary, when the column is measured.
    pub fn bin(&self) -> Option<&Path> {
        self.binary.as_deref().ok()
    }
}

/// `target/peers/<binary>`.
fn root(spec: Spec) -> Result<PathBuf> {
    Ok(test::target_dir()?.join("peers").join(spec.binary))
}

/// What the stamp file of a finished build holds.
fn stamp_text(spec: Spec) -> String {
    format!("{}@{}\n", spec.krate, spec.version)
}

/// Builds every peer not built yet (each failure is that column's reason) and reads the versions.
pub fn prepare() -> Vec<Peer> {
    ALL.into_iter()
        .map(|spec| {
            let binary = install(spec).map_err(|e| format!("{e:#}"));
            if let Err(why) = &binary {
                eprintln!("bench: warning: the {} column is not measured: {why}", spec.binary);
            }
            let reported_version = binary.as_deref().ok().and_then(|bin| version_of(bin).ok());
            Peer { spec, binary, reported_version }
        })
        .collect()
}

/// `cargo install --root target/peers/<name> <crate>@<version> --locked`, unless the stamp says
/// this version is there already. The build directory stays (a failed build resumes).
fn install(spec: Spec) -> Result<PathBuf> {
    let root = root(spec)?;
    let bin = root.join("bin").join(spec.binary);
    let stamp = root.join("built");
    if bin.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_text(spec)) {
        eprintln!("bench: {} {} already built in {}", spec.krate, spec.version, root.display());
        return Ok(bin);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let log = root.join("build.log");
    let mut command = cmd::cargo();
    command
        .args(["install", "--locked", "--force", "--root"])
        .arg(&root)
        .arg(format!("{}@{}", spec.krate, spec.version))
        .env("CARGO_TARGET_DIR", root.join("build"));
    if spec.tool == Tool::Syd {
        syd_build_env(&mut command, &root)?;
    }
    let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    command.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    eprintln!(
        "bench: building {} {} from crates.io into {} (once; output in {})",
        spec.krate,
        spec.version,
        root.display(),
        log.display()
    );
    let start = Instant::now();
    let status = command.status().with_context(|| format!("starting `{}`", cmd::display(&command)))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("`cargo install {}@{}` failed ({status}): {}", spec.krate, spec.version, first_error(&text));
    }
    if !bin.is_file() {
        bail!("`cargo install {}@{}` succeeded but {} is missing", spec.krate, spec.version, bin.display());
    }
    std::fs::write(&stamp, stamp_text(spec)).with_context(|| format!("writing {}", stamp.display()))?;
    eprintln!("bench: built {} {} in {:.0} s", spec.krate, spec.version, start.elapsed().as_secs_f64());
    Ok(bin)
}

/// Syd's build on Debian 12. Its build script takes libseccomp >= 2.5 to have
/// `seccomp_export_bpf_mem`, which came in 2.6: Debian's 2.5.4 then fails to link. A private
/// copy of Debian's `libseccomp.pc` saying 2.4.99 makes it use `seccomp_export_bpf` instead
/// (every other use of the version is for 2.6). And a C file of a dependency needs `alignas`,
/// which Debian 12's GCC only has from `<stdalign.h>`.
fn syd_build_env(command: &mut Command, root: &Path) -> Result<()> {
    let pcfiledir = cmd::stdout(Command::new("pkg-config").args(["--variable=pcfiledir", "libseccomp"]))
        .context("libseccomp's pkg-config file (apt install libseccomp-dev)")?;
    let original = Path::new(pcfiledir.trim()).join("libseccomp.pc");
    let text =
        std::fs::read_to_string(&original).with_context(|| format!("reading {}", original.display()))?;
    let dir = root.join("pkgconfig");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let edited = dir.join("libseccomp.pc");
    std::fs::write(&edited, below_2_5(&text)?).with_context(|| format!("writing {}", edited.display()))?;
    command.env("PKG_CONFIG_PATH", &dir).env("CFLAGS", "-include stdalign.h");
    Ok(())
}

/// `libseccomp.pc` with its `Version:` 2.5.x set to 2.4.99; an error for any other version (a
/// libseccomp with `seccomp_export_bpf_mem` needs no edit, and an older one is unknown ground).
fn below_2_5(pc: &str) -> Result<String> {
    let mut out = String::new();
    let mut seen = false;
    for line in pc.lines() {
        match line.strip_prefix("Version:").map(str::trim) {
            Some(version) if version.starts_with("2.5.") => {
                out.push_str("Version: 2.4.99");
                seen = true;
            }
            Some(version) => bail!("libseccomp {version}: the Syd build here expects Debian 12's 2.5.x"),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    if !seen {
        bail!("no Version: line in libseccomp.pc");
    }
    Ok(out)
}

/// The first `error` line of a cargo log and a few after it, or its last lines.
fn first_error(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start =
        lines.iter().position(|line| line.starts_with("error")).unwrap_or(lines.len().saturating_sub(6));
    lines[start..lines.len().min(start + 6)].join(" / ")
}

/// The first line of `<bin> --version`.
fn version_of(bin: &Path) -> Result<String> {
    let out = cmd::stdout(Command::new(bin).arg("--version").stderr(Stdio::piped()))?;
    Ok(out.lines().next().unwrap_or_default().trim().to_string())
}

/// The note that explains the peers' `n/a` cells.
pub const UNSUPPORTED_NOTE: &str = "n/a: own filter only: the peer has no per-program system call allowlist \
     like `run --syscalls=strict`; its built-in filter is already in the row above";

/// The peer's options before the program: its network policy for `allowed`.
pub fn policy(tool: Tool, allowed: Allowed) -> Vec<String> {
    match tool {
        // Landlock needs the files readable; writes stay denied. A rule with a scheme pins one
        // protocol; no rule: no network.
        Tool::Sandlock => {
            let mut options = vec!["run".to_string(), "-r".into(), "/".into()];
            match allowed {
                Allowed::Nothing => {}
                Allowed::Tcp(addr) => options.extend(["--net-allow".into(), format!("tcp://{addr}")]),
                Allowed::Udp(addr) => options.extend(["--net-allow".into(), format!("udp://{addr}")]),
            }
            options
        }
        // Every sandbox category off but the network one; allow rules in dial(3) form pin the
        // protocol. sandbox/net covers connect, and sendto/sendmsg with an address; it also
        // takes socketpair(2) for a bind to `!unnamed`, which `run` allows (no address, no
        // egress; curl makes one).
        Tool::Syd => {
            let mut options =
                vec!["-poff".to_string(), "-msandbox/net:on".into(), "-mallow/net/bind+!unnamed".into()];
            match allowed {
                Allowed::Nothing => {}
                Allowed::Tcp(addr) => {
                    options.push(format!("-mallow/net/connect+tcp!{}!{}", addr.ip(), addr.port()))
                }
                Allowed::Udp(addr) => {
                    options.push(format!("-mallow/net/connect+udp!{}!{}", addr.ip(), addr.port()))
                }
            }
            options
        }
        _ => Vec::new(),
    }
}

/// The command line running `program` under the peer `bin` with the policy for `allowed`.
pub fn command(tool: Tool, bin: &Path, allowed: Allowed, program: &[OsString]) -> Command {
    let mut command = Command::new(bin);
    command.args(policy(tool, allowed)).arg("--").args(program);
    command
}

/// The policies as the table's notes show them.
pub fn policy_note(peer: &Peer) -> String {
    let name = peer.spec.binary;
    let shown = |allowed| format!("{name} {} -- PROGRAM", policy(peer.spec.tool, allowed).join(" "));
    let example = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1080);
    format!(
        "{name}: TCP to the proxy or sink `{}`; UDP `{}`; no network `{}`",
        shown(Allowed::Tcp(example)).replace("1080", "PORT"),
        shown(Allowed::Udp(example)).replace("1080", "PORT"),
        shown(Allowed::Nothing)
    )
}

/// A refusal the peer must show: `program` succeeds natively and fails under `allowed` at the
/// call named `call` or at `socket` (the bench client prints the failing call and exits 1).
pub struct Refusal {
    pub what: &'static str,
    pub allowed: Allowed,
    pub program: Vec<OsString>,
    pub call: &'static str,
}

/// What each peer must refuse: the other sink under a sink's policy, the allowed port on another
/// address, any connect under no policy, a datagram to another port under the UDP policy.
pub fn refusals(endpoints: &Endpoints) -> Vec<Refusal> {
    let loopback = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let client = |args: &[String]| {
        std::iter::once(endpoints.client.clone().into_os_string())
            .chain(args.iter().map(OsString::from))
            .collect()
    };
    let connect = |host: &str, port: u16| {
        client(&["connect".into(), host.into(), port.to_string(), "1".into(), "1".into()])
    };
    vec![
        Refusal {
            what: "a connect to the bulk sink under the storm's policy",
            allowed: Allowed::Tcp(loopback(endpoints.storm_port)),
            program: connect("127.0.0.1", endpoints.bulk_port),
            call: "connect",
        },
        Refusal {
            what: "a connect to 127.0.0.2:PORT when 127.0.0.1:PORT is allowed",
            allowed: Allowed::Tcp(loopback(endpoints.http_port)),
            program: connect("127.0.0.2", endpoints.http_port),
            call: "connect",
        },
        Refusal {
            what: "a connect under the no-network policy",
            allowed: Allowed::Nothing,
            program: connect("127.0.0.1", endpoints.storm_port),
            call: "connect",
        },
        Refusal {
            what: "a datagram to another port under the UDP storm's policy",
            allowed: Allowed::Udp(loopback(endpoints.udp_port)),
            program: client(&[
                "udp".into(),
                "127.0.0.1".into(),
                endpoints.storm_port.to_string(),
                "1".into(),
            ]),
            call: "sendto",
        },
    ]
}

/// Checks that `peer` enforces each refusal; the first one it does not, or the first native run
/// that fails, is an error.
pub fn check_refusals(peer: &Peer, refusals: &[Refusal]) -> Result<()> {
    let Some(bin) = peer.bin() else { return Ok(()) };
    for refusal in refusals {
        let native = run_quietly(Command::new(&refusal.program[0]).args(&refusal.program[1..]))?;
        if !native.0 {
            bail!("{}: natively it failed too, so the check proves nothing: {}", refusal.what, native.1);
        }
        let (ok, stderr) = run_quietly(&mut command(peer.spec.tool, bin, refusal.allowed, &refusal.program))?;
        if ok {
            bail!(
                "{} under {}: the peer allowed it (its policy is not enforced)",
                refusal.what,
                peer.spec.binary
            );
        }
        let refused_at = |call: &str| stderr.contains(&format!("bench_client: {call}: "));
        if !refused_at(refusal.call) && !refused_at("socket") {
            bail!(
                "{} under {}: it failed, but not with the bench client refusing `{}`: {}",
                refusal.what,
                peer.spec.binary,
                refusal.call,
                stderr.trim()
            );
        }
    }
    Ok(())
}

/// Runs `command` with captured output: whether it succeeded, and its standard error.
fn run_quietly(command: &mut Command) -> Result<(bool, String)> {
    let shown = cmd::display(command);
    let output =
        command.stdin(Stdio::null()).output().with_context(|| format!("failed to start `{shown}`"))?;
    Ok((output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkg_config_version_goes_below_2_5() {
        let pc = "prefix=/usr\nName: libseccomp\nVersion: 2.5.4\nLibs: -lseccomp\n";
        assert_eq!(
            below_2_5(pc).unwrap(),
            "prefix=/usr\nName: libseccomp\nVersion: 2.4.99\nLibs: -lseccomp\n"
        );
        assert!(below_2_5("Version: 2.6.0\n").is_err());
        assert!(below_2_5("Name: libseccomp\n").is_err());
    }

    #[test]
    fn policies_allow_the_one_destination() {
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4242);
        assert_eq!(
            policy(Tool::Sandlock, Allowed::Tcp(addr)),
            ["run", "-r", "/", "--net-allow", "tcp://127.0.0.1:4242"]
        );
        assert_eq!(
            policy(Tool::Sandlock, Allowed::Udp(addr)),
            ["run", "-r", "/", "--net-allow", "udp://127.0.0.1:4242"]
        );
        assert_eq!(policy(Tool::Sandlock, Allowed::Nothing), ["run", "-r", "/"]);
        assert_eq!(
            policy(Tool::Syd, Allowed::Tcp(addr)),
            [
                "-poff",
                "-msandbox/net:on",
                "-mallow/net/bind+!unnamed",
                "-mallow/net/connect+tcp!127.0.0.1!4242"
            ]
        );
        assert_eq!(
            policy(Tool::Syd, Allowed::Udp(addr)),
            [
                "-poff",
                "-msandbox/net:on",
                "-mallow/net/bind+!unnamed",
                "-mallow/net/connect+udp!127.0.0.1!4242"
            ]
        );
        assert_eq!(
            policy(Tool::Syd, Allowed::Nothing),
            ["-poff", "-msandbox/net:on", "-mallow/net/bind+!unnamed"]
        );
    }

    #[test]
    fn a_failed_build_names_its_first_error() {
        let log = "   Compiling a\n   Compiling b\nerror: linking with `cc` failed\n  = note: undefined\n";
        assert_eq!(first_error(log), "error: linking with `cc` failed /   = note: undefined");
        assert_eq!(first_error("one\ntwo\n"), "one / two");
    }
}
