//! Real programs: curl through Debian's microsocks (allowed, works), curl
//! directly (blocked), and python3 sending UDP (blocked).

use sockstrace_tests::apps::no_proxy_env;
use sockstrace_tests::{skip, HttpServer, LeakSpec, Microsocks, TcpSink, Trace, UdpSink};

#[test]
fn curl_through_microsocks_works_without_leak() {
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    let out = no_proxy_env(Trace::new())
        .proxy(ms.addr())
        .program([
            "curl",
            "-q",
            "-sS",
            "--max-time",
            "30",
            "--socks5-hostname",
            &ms.addr().to_string(),
            &http.url(),
        ])
        .run();
    out.assert_code(0);
    assert_eq!(out.stdout, http.body(), "{}", out.describe());
    assert_eq!(http.requests(), 1);
    out.assert_report_well_formed();
    out.assert_no_leaks();
    assert!(
        out.events.iter().any(|e| e.is_allowed()
            && e.s("syscall") == "connect"
            && e.s("dst") == ms.addr().to_string()
            && e.s("reason") == "proxy"
            && e.s("comm") == "curl"),
        "no allowed proxy connect by curl\n{}",
        out.describe()
    );
}

#[test]
fn curl_direct_blocked() {
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    let out = no_proxy_env(Trace::new())
        .proxy(ms.addr())
        .program(["curl", "-q", "-sS", "--max-time", "30", "--noproxy", "*", &http.url()])
        .run();
    assert_ne!(out.code(), 0, "curl must fail\n{}", out.describe());
    assert!(!out.stdout.contains(http.body()), "{}", out.describe());
    sockstrace_tests::settle();
    assert_eq!(http.accepts(), 0, "HTTP server saw a connection");
    out.assert_report_well_formed();
    out.assert_leak(&LeakSpec {
        syscalls: &["connect"],
        dst: &http.dst(),
        reasons: &["direct-tcp"],
        action: "blocked",
        protocol: "tcp",
        family: "inet",
        comm: "curl",
        ..Default::default()
    });
}

#[test]
fn python_udp_sendto_blocked() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = UdpSink::bind("127.0.0.2");
    let code = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'py', ('{}', {}))",
        sink.host(),
        sink.port()
    );
    let out = Trace::new().proxy(px.addr()).program(["/usr/bin/python3", "-c", &code]).run();
    assert_ne!(out.code(), 0, "python must fail\n{}", out.describe());
    assert!(
        out.stderr.contains("PermissionError") || out.stderr.contains("Operation not permitted"),
        "python did not see EPERM\n{}",
        out.describe()
    );
    sink.assert_nothing_arrived("python sendto");
    out.assert_report_well_formed();
    let ev = out.assert_leak(&LeakSpec {
        syscalls: &["sendto"],
        dst: &sink.dst(),
        reasons: &["direct-udp"],
        action: "blocked",
        protocol: "udp",
        family: "inet",
        ..Default::default()
    });
    assert!(ev.s("comm").starts_with("python3"), "comm in {ev}");
}
