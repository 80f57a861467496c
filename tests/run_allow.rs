//! Traffic that `sockstrace run` must let through, working, with no false
//! leak: the proxy (v4, v6, non-blocking), unix sockets, sendto on a connected
//! TCP socket, explicit allow rules, a 3,200-connect storm, and calls that go
//! through while another thread's call waits.

use std::time::Duration;

use sockstrace_tests::{Outcome, TcpSink, Trace, UdpSink, UnixSink};

const T: Duration = Duration::from_secs(30);

/// Asserts an allowed event for this destination with one of `reasons`.
fn assert_allowed(out: &Outcome, syscalls: &[&str], dst: &str, reasons: &[&str]) {
    let found = out.events.iter().any(|e| {
        e.is_allowed()
            && e.s("action") == "allowed"
            && syscalls.contains(&e.s("syscall"))
            && e.s("dst") == dst
            && reasons.contains(&e.s("reason"))
    });
    assert!(
        found,
        "no allowed event with syscall in {syscalls:?}, dst {dst}, reason in {reasons:?}\n{}",
        out.describe()
    );
}

/// A clean run's report: well formed, no leak, and the allowed event
/// ([`assert_allowed`]).
fn assert_clean_and_allowed(out: &Outcome, syscalls: &[&str], dst: &str, reasons: &[&str]) {
    out.assert_report_well_formed();
    out.assert_no_leaks();
    assert_allowed(out, syscalls, dst, reasons);
}

fn proxy_allowed(host: &str) {
    let px = TcpSink::bind(host);
    let out = Trace::new().proxy(px.addr()).netprobe(["tcp-connect", &px.host(), &px.port()]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("connect: ok"), "{}", out.describe());
    assert!(px.wait_accepts(1, T), "proxy saw no connection\n{}", out.describe());
    assert!(px.wait_bytes("netprobe-tcp\n".len(), T), "proxy got no data");
    assert_clean_and_allowed(&out, &["connect"], &px.dst(), &["proxy"]);
}

#[test]
fn proxy_v4_allowed() {
    proxy_allowed("127.0.0.1");
}

#[test]
fn proxy_v6_allowed() {
    proxy_allowed("::1");
}

#[test]
fn proxy_second_of_two_allowed() {
    // --proxy is repeatable; every listed proxy is allowed.
    let px1 = TcpSink::bind("127.0.0.1");
    let px2 = TcpSink::bind("::1");
    let out = Trace::new()
        .proxy(px1.addr())
        .proxy(px2.addr())
        .netprobe(["tcp-connect", &px2.host(), &px2.port()])
        .run();
    out.assert_code(0);
    assert!(px2.wait_accepts(1, T));
    out.assert_no_leaks();
    assert_allowed(&out, &["connect"], &px2.dst(), &["proxy"]);
}

#[test]
fn proxy_nonblocking_connect_allowed() {
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe(["tcp-connect-nonblock", &px.host(), &px.port()]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("connect: ok"), "{}", out.describe());
    assert!(px.wait_accepts(1, T), "proxy saw no connection\n{}", out.describe());
    assert_clean_and_allowed(&out, &["connect"], &px.dst(), &["proxy"]);
}

#[test]
fn unix_connect_allowed() {
    let px = TcpSink::bind("127.0.0.1");
    let unix = UnixSink::bind();
    let path = unix.path().to_string_lossy().into_owned();
    let out = Trace::new().proxy(px.addr()).netprobe(["unix-connect", &path]).run();
    out.assert_code(0);
    assert!(unix.wait_bytes("netprobe-unix\n".len(), T), "unix listener got no data\n{}", out.describe());
    assert_eq!(unix.accepts(), 1);
    assert_clean_and_allowed(&out, &["connect"], &format!("unix:{path}"), &["unix", "allow-rule"]);
}

#[test]
fn sendto_on_connected_tcp_socket_allowed() {
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe(["tcp-sendto-connected", &px.host(), &px.port()]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("sendto-null: ok"), "{}", out.describe());
    assert!(out.stdout.contains("sendto-same: ok"), "{}", out.describe());
    assert!(
        px.wait_bytes("sendto-null\nsendto-same\n".len(), T),
        "proxy got {} bytes\n{}",
        px.bytes(),
        out.describe()
    );
    assert_clean_and_allowed(&out, &["connect"], &px.dst(), &["proxy"]);
}

#[test]
fn allow_rule_address_and_port() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(px.addr())
        .allow(&sink.dst())
        .netprobe(["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    assert!(sink.wait_accepts(1, T), "{}", out.describe());
    assert_clean_and_allowed(&out, &["connect"], &sink.dst(), &["allow-rule"]);
}

#[test]
fn allow_rule_cidr_udp() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(px.addr())
        .allow("127.0.0.0/24")
        .netprobe(["udp-sendto", &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    assert!(sink.wait_datagrams(1, T), "{}", out.describe());
    assert_clean_and_allowed(&out, &["sendto"], &sink.dst(), &["allow-rule"]);
}

#[test]
fn allow_rule_v6_with_port() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("::1");
    let out =
        Trace::new().proxy(px.addr()).allow(&sink.dst()).netprobe(["tcp-connect", "::1", &sink.port()]).run();
    out.assert_code(0);
    assert!(sink.wait_accepts(1, T), "{}", out.describe());
    out.assert_no_leaks();
    assert_allowed(&out, &["connect"], &sink.dst(), &["allow-rule"]);
}

#[test]
fn allow_loopback_tcp() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(px.addr())
        .opts(["--allow-loopback"])
        .netprobe(["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    assert!(sink.wait_accepts(1, T), "{}", out.describe());
    assert_clean_and_allowed(&out, &["connect"], &sink.dst(), &["loopback"]);
}

#[test]
fn storm_3200_connects_to_proxy() {
    const THREADS: usize = 16;
    const EACH: usize = 200;
    let total = THREADS * EACH;
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .proxy(px.addr())
        .timeout(Duration::from_secs(300))
        .netprobe(["storm", &px.host(), &px.port(), &THREADS.to_string(), &EACH.to_string()])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("ok={total} failed=0")), "{}", out.describe());
    assert!(
        px.wait_accepts(total, Duration::from_secs(60)),
        "proxy stand-in accepted {} of {total}",
        px.accepts()
    );
    sockstrace_tests::settle();
    assert_eq!(px.accepts(), total, "extra connections arrived");
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let allowed = out
        .events
        .iter()
        .filter(|e| {
            e.s("source") == "seccomp"
                && e.s("syscall") == "connect"
                && e.is_allowed()
                && e.s("dst") == px.dst()
        })
        .count();
    assert_eq!(allowed, total, "one allowed event per connect expected (summary: {})", out.summary_obj());
}

/// One thread's call that waits holds up no other thread's call: the proxy
/// connect made meanwhile completes while the other call still waits. The
/// stalled connect goes to a loopback listener whose accept queue is full (the
/// supervisor performs it, and its watcher hands the receiving role on); the
/// blocking accept waits for a peer that never comes (handed on at once).
#[test]
fn stalled_call_does_not_hold_up_other_threads() {
    for mode in ["connect", "accept"] {
        let px = TcpSink::bind("127.0.0.1");
        let out = Trace::new()
            .proxy(px.addr())
            .allow("127.0.0.1")
            .netprobe(["stall-then-connect", mode, &px.host(), &px.port()])
            .run();
        out.assert_code(0);
        assert!(out.stdout.contains("proxy: ok"), "{mode}: proxy connect failed\n{}", out.describe());
        assert!(
            !out.stdout.contains(&format!("stalled-{mode}")),
            "{mode}: the stalled call ended before the proxy connect was let through\n{}",
            out.describe()
        );
        assert!(px.wait_accepts(1, T), "{mode}: proxy saw no connection\n{}", out.describe());
        out.assert_no_leaks();
    }
}
