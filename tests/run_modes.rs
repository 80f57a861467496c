//! `--on-leak log` (the leak goes through and is reported) and
//! `--on-leak kill` (the traced tree dies, sockstrace exits 137) and, once
//! supported, `--on-leak socksify` (TCP goes through the proxy instead).

use std::net::SocketAddr;
use std::time::Duration;

use sockstrace_tests::util::{field, process_dead, wait_until};
use sockstrace_tests::{
    HttpConnectProxy, HttpServer, LeakSpec, Microsocks, Outcome, TcpSink, Trace, UdpSink,
};

const T: Duration = Duration::from_secs(30);

/// netprobe's tcp-connect to a sink under `--on-leak MODE` (with `proxy`):
/// the connection and its payload arrive, and the leak is reported with
/// `action`, made by the client's actor.
fn tcp_leak_arrives(proxy: SocketAddr, mode: &str, action: &str) {
    let sink = TcpSink::bind("127.0.0.2");
    let out =
        Trace::new().proxy(proxy).on_leak(mode).netprobe(["tcp-connect", &sink.host(), &sink.port()]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("connect: ok"), "{}", out.describe());
    assert!(sink.wait_accepts(1, T), "{}", out.describe());
    assert!(
        sink.wait_bytes("netprobe-tcp\n".len(), T),
        "the payload did not arrive (--on-leak {mode})\n{}",
        out.describe()
    );
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec { action, ..LeakSpec::tcp(&sink.dst()).by(out.actor()) });
}

/// curl straight at `url` (`--noproxy '*'`, no proxy variables) under `t`.
fn curl_direct(mut t: Trace, url: &str) -> Outcome {
    for k in ["http_proxy", "all_proxy", "HTTP_PROXY", "ALL_PROXY", "no_proxy"] {
        t = t.env_remove(k);
    }
    t.program(["curl", "-q", "-sS", "--max-time", "30", "--noproxy", "*", url]).run()
}

#[test]
fn log_tcp_leak_goes_through_and_is_reported() {
    let px = TcpSink::bind("127.0.0.1");
    tcp_leak_arrives(px.addr(), "log", "logged");
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
    out.assert_leak(&LeakSpec { action: "logged", ..LeakSpec::udp(&["sendto"], &sink.dst()) });
}

#[test]
fn kill_ends_the_whole_tree() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    // The client forks a child that sleeps 30 s (and then prints "sleeper:
    // woke up"), then connects. The whole tree must die at the leak: the
    // sleeper must be dead when sockstrace has exited, and must never wake up.
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("kill")
        .netprobe(["fork-sleep-then-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(137);
    assert!(
        !out.stdout.contains("sleeper: woke up"),
        "the sleeping child outlived the kill\n{}",
        out.describe()
    );
    let sleeper = field(&out.stdout, "sleeper:", "pid") as i32;
    assert!(
        wait_until(Duration::from_secs(10), || process_dead(sleeper)),
        "the sleeping child {sleeper} is still alive\n{}",
        out.describe()
    );
    sink.assert_nothing_arrived("the leaking process is killed before connecting");
    out.assert_report_well_formed();
    let pid = Some(field(&out.stdout, "actor:", "pid"));
    out.assert_leak(&LeakSpec { action: "killed", pid, ..LeakSpec::tcp(&sink.dst()) });
}

/// Whether this sockstrace accepts `--on-leak socksify` (the first contract
/// rejected it for now; run_cli.rs checks that a rejection is clean).
fn socksify_supported() -> bool {
    let out = Trace::raw(["run", "--on-leak", "socksify", "--", "/bin/true"]).run();
    out.code() == 0
}

#[test]
fn socksify_tcp_connect_goes_through_the_proxy() {
    if !socksify_supported() {
        sockstrace_tests::skip!("--on-leak socksify is rejected by this sockstrace");
    }
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => sockstrace_tests::skip!("microsocks: {e}"),
    };
    tcp_leak_arrives(ms.addr(), "socksify", "socksified");
}

#[test]
fn socksify_curl_direct_gets_the_page() {
    if !socksify_supported() {
        sockstrace_tests::skip!("--on-leak socksify is rejected by this sockstrace");
    }
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => sockstrace_tests::skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    let out = curl_direct(Trace::new().proxy(ms.addr()).on_leak("socksify"), &http.url());
    out.assert_code(0);
    assert_eq!(out.stdout, http.body(), "{}", out.describe());
    assert_eq!(http.requests(), 1);
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec { action: "socksified", comm: "curl", ..LeakSpec::tcp(&http.dst()) });
}

#[test]
fn socksify_through_an_http_connect_proxy() {
    let proxy = match HttpConnectProxy::start() {
        Ok(p) => p,
        Err(e) => sockstrace_tests::skip!("{e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    let trace = Trace::new().opts(["--http-proxy", &proxy.addr().to_string()]).on_leak("socksify");
    let out = curl_direct(trace, &http.url());
    out.assert_code(0);
    assert_eq!(out.stdout, http.body(), "{}", out.describe());
    assert_eq!(http.requests(), 1);
    assert!(
        proxy.log().contains(&format!("CONNECT {} HTTP/1.1", http.dst())),
        "the proxy got the CONNECT: {:?}\n{}",
        proxy.log(),
        out.describe()
    );
    out.assert_report_well_formed();
    let ev = out.the_event("socksified connect", |e| e.s("action") == "socksified");
    assert_eq!(ev.s("dst"), http.dst(), "{ev}\n{}", out.describe());
}

#[test]
fn socksify_cannot_carry_udp_so_it_is_blocked() {
    if !socksify_supported() {
        sockstrace_tests::skip!("--on-leak socksify is rejected by this sockstrace");
    }
    let px = TcpSink::bind("127.0.0.1");
    let sink = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("socksify")
        .netprobe(["udp-sendto", &sink.host(), &sink.port()])
        .run();
    out.assert_client_eperm("sendto");
    sink.assert_nothing_arrived("UDP under socksify");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec::udp(&["sendto"], &sink.dst()));
}
