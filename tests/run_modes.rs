//! `--on-leak log` (the leak goes through and is reported) and
//! `--on-leak kill` (the traced tree dies, sockstrace exits 137).

use std::time::Duration;

use sockstrace_tests::util::{field, process_dead, wait_until};
use sockstrace_tests::{LeakSpec, TcpSink, Trace, UdpSink};

const T: Duration = Duration::from_secs(30);

#[test]
fn log_tcp_leak_goes_through_and_is_reported() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("log")
        .netprobe(["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("connect: ok"), "{}", out.describe());
    assert!(sink.wait_accepts(1, T), "{}", out.describe());
    assert!(sink.wait_bytes("netprobe-tcp\n".len(), T));
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec {
        syscalls: &["connect"],
        dst: &sink.dst(),
        reasons: &["direct-tcp"],
        action: "logged",
        protocol: "tcp",
        family: "inet",
        pid: Some(field(&out.stdout, "actor:", "pid")),
        tid: Some(field(&out.stdout, "actor:", "tid")),
        comm: "netprobe",
    });
}

#[test]
fn log_udp_leak_goes_through_and_is_reported() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("log")
        .netprobe(["udp-sendto", &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    assert!(sink.wait_datagrams(1, T), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec {
        syscalls: &["sendto"],
        dst: &sink.dst(),
        reasons: &["direct-udp"],
        action: "logged",
        protocol: "udp",
        family: "inet",
        comm: "netprobe",
        ..Default::default()
    });
}

#[test]
fn kill_ends_the_whole_tree() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    // The client forks a child that sleeps 30 s, then connects. Killing only
    // the connecting process, or waiting for the sleeper, would exceed the
    // 25 s limit.
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("kill")
        .timeout(Duration::from_secs(25))
        .netprobe(["fork-sleep-then-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(137);
    let sleeper = field(&out.stdout, "sleeper:", "pid") as i32;
    assert!(
        wait_until(Duration::from_secs(10), || process_dead(sleeper)),
        "the sleeping child {sleeper} is still alive\n{}",
        out.describe()
    );
    sink.assert_nothing_arrived("the leaking process is killed before connecting");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec {
        syscalls: &["connect"],
        dst: &sink.dst(),
        reasons: &["direct-tcp"],
        action: "killed",
        protocol: "tcp",
        family: "inet",
        pid: Some(field(&out.stdout, "actor:", "pid")),
        comm: "netprobe",
        ..Default::default()
    });
}
