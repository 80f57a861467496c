//! Leaks that `sockstrace run` (default `--on-leak block`) must block and
//! report: nothing may arrive at the sink, the client must see EPERM, and the
//! report must carry a matching leak event.

use std::path::Path;

use sockstrace_tests::util::field;
use sockstrace_tests::{netprobe, netprobe_static, skip, DnsSink, LeakSpec, TcpSink, Trace, UdpSink};

/// A proxy stand-in that must stay untouched in these tests.
fn proxy() -> TcpSink {
    TcpSink::bind("127.0.0.1")
}

fn tcp_blocked(client: &Path, host: &str, sink_host: &str, family: &str) {
    let sink = TcpSink::bind(sink_host);
    let px = proxy();
    let out = Trace::new().proxy(px.addr()).netprobe_at(client, ["tcp-connect", host, &sink.port()]).run();
    let ev = out.assert_refused_leak("connect", LeakSpec { family, ..LeakSpec::tcp(&sink.dst()) });
    sink.assert_nothing_arrived("blocked TCP connect");
    px.assert_nothing_arrived("the program never used the proxy");
    assert_eq!(Path::new(ev.s("exe")), client.canonicalize().unwrap(), "exe in {ev}\n{}", out.describe());
    if let Some(argv) = ev.get("argv").and_then(|a| a.as_array()) {
        assert!(argv.iter().any(|a| a == "tcp-connect"), "argv in {ev}\n{}", out.describe());
    }
}

#[test]
fn tcp_v4_blocked() {
    tcp_blocked(netprobe(), "127.0.0.2", "127.0.0.2", "inet");
}

#[test]
fn tcp_v6_blocked() {
    tcp_blocked(netprobe(), "::1", "::1", "inet6");
}

#[test]
fn tcp_v4_mapped_v6_blocked() {
    // An AF_INET6 socket to ::ffff:127.0.0.2; the report writes it as v4.
    tcp_blocked(netprobe(), "::ffff:127.0.0.2", "127.0.0.2", "inet6");
}

#[test]
fn tcp_from_static_binary_blocked() {
    let Some(client) = netprobe_static() else {
        skip!("static netprobe could not be built (static glibc linking failed)");
    };
    tcp_blocked(client, "127.0.0.2", "127.0.0.2", "inet");
}

#[test]
fn tcp_explicit_on_leak_block() {
    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(proxy().addr())
        .on_leak("block")
        .netprobe(["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_client_eperm("connect");
    sink.assert_nothing_arrived("blocked TCP connect");
    out.assert_leak(&LeakSpec::tcp(&sink.dst()));
}

#[test]
fn tcp_allow_rule_for_another_port_does_not_cover() {
    let sink = TcpSink::bind("127.0.0.2");
    let other = TcpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(proxy().addr())
        .allow(&other.dst())
        .netprobe(["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_client_eperm("connect");
    sink.assert_nothing_arrived("allow rule names another port");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec::tcp(&sink.dst()));
}

fn udp_blocked(cmd: &str, op: &str, syscalls: &[&str], sink_host: &str, family: &str) {
    let sink = UdpSink::bind(sink_host);
    let px = proxy();
    let out = Trace::new().proxy(px.addr()).netprobe([cmd, &sink.host(), &sink.port()]).run();
    out.assert_refused_leak(op, LeakSpec { family, ..LeakSpec::udp(syscalls, &sink.dst()) });
    sink.assert_nothing_arrived(cmd);
}

#[test]
fn udp_sendto_blocked() {
    udp_blocked("udp-sendto", "sendto", &["sendto"], "127.0.0.2", "inet");
}

#[test]
fn udp_sendto_v6_blocked() {
    udp_blocked("udp-sendto", "sendto", &["sendto"], "::1", "inet6");
}

#[test]
fn udp_connect_send_blocked() {
    // The connect of the UDP socket is refused: nothing is sent, so it is no
    // leak but a refusal of its own (see run_udp_connect.rs).
    let sink = UdpSink::bind("127.0.0.2");
    let out =
        Trace::new().proxy(proxy().addr()).netprobe(["udp-connect-send", &sink.host(), &sink.port()]).run();
    out.assert_client_eperm("connect");
    sink.assert_nothing_arrived("connected UDP");
    out.assert_report_well_formed();
    let ev = out.the_event("the refused connect", |e| e.s("reason") == "udp-connect-refused");
    assert_eq!((ev.s("dst"), ev.s("action"), ev.i("errno")), (sink.dst().as_str(), "blocked", Some(1)));
}

#[test]
fn udp_sendmsg_blocked() {
    udp_blocked("udp-sendmsg", "sendmsg", &["sendmsg"], "127.0.0.2", "inet");
}

#[test]
fn udp_sendmmsg_blocked() {
    // Four messages alternating between two leak destinations.
    let a = UdpSink::bind("127.0.0.2");
    let b = UdpSink::bind("127.0.0.3");
    let out = Trace::new()
        .proxy(proxy().addr())
        .netprobe(["udp-sendmmsg", "4", &a.host(), &a.port(), &b.host(), &b.port()])
        .run();
    out.assert_client_eperm("sendmmsg");
    a.assert_nothing_arrived("sendmmsg message 0/2");
    b.assert_nothing_arrived("sendmmsg message 1/3");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec::udp(&["sendmmsg"], &a.dst()));
}

#[test]
fn udp_sendmmsg_checks_every_message() {
    // Message 0 goes to an allowed destination, message 1 (and 3) to a leak:
    // checking only the first message would let the others through.
    let allowed = UdpSink::bind("127.0.0.4");
    let leak = UdpSink::bind("127.0.0.5");
    let out = Trace::new()
        .proxy(proxy().addr())
        .allow(&allowed.dst())
        .netprobe(["udp-sendmmsg", "4", &allowed.host(), &allowed.port(), &leak.host(), &leak.port()])
        .run();
    // Either the call fails with EPERM, or it stops short of the leak
    // (partial count); it must not send all four.
    out.assert_code(1);
    assert!(!out.stdout.contains("sent=4 of 4"), "all messages sent\n{}", out.describe());
    leak.assert_nothing_arrived("sendmmsg messages 1 and 3");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec::udp(&["sendmmsg"], &leak.dst()));
}

fn dns_blocked(cmd: &str, op: &str, syscall: &str, reason: &str, protocol: &str, extra: &[&str]) {
    let dns = match DnsSink::bind() {
        Ok(d) => d,
        Err(e) => skip!("DNS sink: {e}"),
    };
    let out = Trace::new().proxy(proxy().addr()).opts(extra).netprobe([cmd, &dns.host()]).run();
    out.assert_refused_leak(
        op,
        LeakSpec { syscalls: &[syscall], reasons: &[reason], protocol, ..LeakSpec::tcp(&dns.dst()) },
    );
    dns.assert_nothing_arrived(cmd);
}

#[test]
fn dns_udp_blocked() {
    dns_blocked("dns-udp", "sendto", "sendto", "dns-udp", "udp", &[]);
}

#[test]
fn dns_tcp_blocked() {
    dns_blocked("dns-tcp", "connect", "connect", "dns-tcp", "tcp", &[]);
}

#[test]
fn dns_udp_blocked_despite_allow_loopback() {
    // --allow-loopback never covers port 53.
    dns_blocked("dns-udp", "sendto", "sendto", "dns-udp", "udp", &["--allow-loopback"]);
}

#[test]
fn dns_tcp_blocked_despite_allow_loopback() {
    dns_blocked("dns-tcp", "connect", "connect", "dns-tcp", "tcp", &["--allow-loopback"]);
}

#[test]
fn forked_child_blocked() {
    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new().proxy(proxy().addr()).netprobe(["fork-connect", &sink.host(), &sink.port()]).run();
    out.assert_refused_leak("connect", LeakSpec::tcp(&sink.dst()));
    assert!(out.stdout.contains("child: exit=1"), "{}", out.describe());
    sink.assert_nothing_arrived("connect from a forked child");
}

#[test]
fn thread_blocked() {
    let sink = TcpSink::bind("127.0.0.2");
    let out =
        Trace::new().proxy(proxy().addr()).netprobe(["thread-connect", &sink.host(), &sink.port()]).run();
    let main_pid = field(&out.stdout, "main:", "pid");
    let (pid, tid) = out.actor();
    assert_eq!(pid, main_pid);
    assert_ne!(tid, main_pid, "the thread has its own tid");
    // pid is the thread group id, tid the thread's own id.
    out.assert_refused_leak("connect", LeakSpec::tcp(&sink.dst()));
    sink.assert_nothing_arrived("connect from a thread");
}

#[test]
fn after_exec_blocked() {
    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new().proxy(proxy().addr()).netprobe(["exec-connect", &sink.host(), &sink.port()]).run();
    let ev = out.assert_refused_leak("connect", LeakSpec::tcp(&sink.dst()));
    sink.assert_nothing_arrived("connect after exec");
    assert_eq!(out.actor().0, field(&out.stdout, "exec:", "pid"), "exec keeps the pid");
    // The event describes the program after exec.
    if let Some(argv) = ev.get("argv").and_then(|a| a.as_array()) {
        assert!(
            argv.iter().any(|a| a == "tcp-connect") && !argv.iter().any(|a| a == "exec-connect"),
            "argv should be the exec'd one: {ev}\n{}",
            out.describe()
        );
    }
}
