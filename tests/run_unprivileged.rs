//! `sockstrace run` as an unprivileged user (nobody, via setpriv): the
//! seccomp supervisor alone must still block leaks and allow the proxy, and
//! the summary must say the kernel (eBPF) layer is off.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sockstrace_tests::util::field;
use sockstrace_tests::{is_root, netprobe, skip, sockstrace_bin, LeakSpec, Outcome, TcpSink, Trace};

const NOBODY: &str = "65534";

/// Copies of the binary and the client in a world-readable directory (the
/// build tree may not be reachable for nobody).
struct Copies {
    _dir: tempfile::TempDir,
    sockstrace: PathBuf,
    netprobe: PathBuf,
}

fn copies() -> Copies {
    let dir = tempfile::Builder::new().prefix("sockstrace-unpriv").tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |src: &Path, name: &str| {
        let dst = dir.path().join(name);
        std::fs::copy(src, &dst).expect("copy binary");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    };
    let sockstrace = copy(sockstrace_bin(), "sockstrace");
    let netprobe = copy(netprobe(), "netprobe");
    Copies { _dir: dir, sockstrace, netprobe }
}

fn as_nobody(c: &Copies) -> Trace {
    Trace::new().bin(&c.sockstrace).world_writable_dir().wrapper([
        "setpriv",
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
    ])
}

fn assert_kernel_layer_off(out: &Outcome) {
    assert_eq!(
        out.kernel_layer_active(),
        Some(false),
        "summary layers should say the kernel layer is off: {}\n{}",
        out.summary_obj(),
        out.describe()
    );
}

#[test]
fn unprivileged_tcp_v4_blocked() {
    if !is_root() {
        skip!("needs root to switch to uid {NOBODY} with setpriv");
    }
    let c = copies();
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = as_nobody(&c)
        .proxy(px.addr())
        .netprobe_at(&c.netprobe, ["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(1);
    assert!(out.stdout.contains("connect: errno=1 ("), "{}", out.describe());
    sink.assert_nothing_arrived("unprivileged blocked connect");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec {
        syscalls: &["connect"],
        dst: &sink.dst(),
        reasons: &["direct-tcp"],
        action: "blocked",
        protocol: "tcp",
        family: "inet",
        pid: Some(field(&out.stdout, "actor:", "pid")),
        tid: Some(field(&out.stdout, "actor:", "tid")),
        comm: "netprobe",
    });
    assert_kernel_layer_off(&out);
}

#[test]
fn unprivileged_proxy_allowed() {
    if !is_root() {
        skip!("needs root to switch to uid {NOBODY} with setpriv");
    }
    let c = copies();
    let px = TcpSink::bind("127.0.0.1");
    let out = as_nobody(&c)
        .proxy(px.addr())
        .netprobe_at(&c.netprobe, ["tcp-connect", &px.host(), &px.port()])
        .run();
    out.assert_code(0);
    assert!(px.wait_accepts(1, std::time::Duration::from_secs(30)), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
    assert!(
        out.events.iter().any(|e| e.is_allowed()
            && e.s("syscall") == "connect"
            && e.s("dst") == px.dst()
            && e.s("reason") == "proxy"),
        "no allowed proxy connect event\n{}",
        out.describe()
    );
    assert_kernel_layer_off(&out);
}
