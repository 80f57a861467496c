//! `sockstrace run` as an unprivileged user (nobody, via setpriv): the
//! seccomp supervisor alone must still block leaks and allow the proxy, and
//! the summary must say the kernel (eBPF) layer is off.

use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::{is_root, netprobe, skip, LeakSpec, Outcome, TcpSink};

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
    let mut c = Copies::new();
    let client = c.add(netprobe(), "netprobe");
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = c
        .as_nobody()
        .proxy(px.addr())
        .netprobe_at(&client, ["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_refused_leak("connect", LeakSpec::tcp(&sink.dst()));
    sink.assert_nothing_arrived("unprivileged blocked connect");
    assert_kernel_layer_off(&out);
}

#[test]
fn unprivileged_proxy_allowed() {
    if !is_root() {
        skip!("needs root to switch to uid {NOBODY} with setpriv");
    }
    let mut c = Copies::new();
    let client = c.add(netprobe(), "netprobe");
    let px = TcpSink::bind("127.0.0.1");
    let out =
        c.as_nobody().proxy(px.addr()).netprobe_at(&client, ["tcp-connect", &px.host(), &px.port()]).run();
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
