//! A datagram `connect` sends nothing. glibc's `getaddrinfo` connects a UDP
//! socket to each of several answers to sort them (RFC 6724 source address
//! selection); for `localhost` (127.0.0.1 and ::1) that is two connects to
//! addresses that are not the proxy. Such a connect is refused (nothing can
//! be sent on it), reported as `udp-connect-refused` (verdict `allowed`,
//! action `blocked`) and counted apart in the summary: it is no leak under
//! block, kill or socksify, so `--fail-on-leak` passes and `--on-leak kill`
//! kills nothing. Under `--on-leak log` it goes through and stays a leak,
//! and a real datagram to the same kind of address is a leak as ever.
//!
//! Names resolve only in a private mount namespace whose /etc/hosts knows
//! `localhost` (127.0.0.1 and ::1) and whose resolv.conf names loopback:
//! nothing but localhost is ever resolved.

use std::time::Duration;

use sockstrace_tests::{is_root, skip, HttpServer, Microsocks, Outcome, Trace, UdpSink};

/// `trace` with its own /etc/hosts and /etc/resolv.conf (a resolver on 127.0.0.1 that nobody
/// runs), a minute to finish.
fn private_hosts(trace: Trace) -> Trace {
    trace.private_resolver("127.0.0.1").timeout(Duration::from_secs(60))
}

fn run_in_private_hosts(trace: Trace, program: &[&str]) -> Outcome {
    let trace = private_hosts(trace.program(program.iter().copied()));
    trace.run()
}

fn proxy() -> Option<Microsocks> {
    if !is_root() {
        eprintln!("SKIP: needs root (a private mount namespace with its own /etc/hosts)");
        return None;
    }
    Microsocks::start().map_err(|e| eprintln!("SKIP: no microsocks: {e}")).ok()
}

/// `--proxy 127.0.0.1:PORT --proxy [::1]:PORT`, as the default proxies
/// name Tor's port on both loopbacks: `localhost` is both, and the program
/// tries ::1 first (microsocks listens on 127.0.0.1 only: refused, then the
/// next address).
fn via(socks: &Microsocks) -> Trace {
    let v6 = std::net::SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), socks.addr().port());
    Trace::new().proxy(socks.addr()).proxy(v6)
}

/// The proxy's port as "localhost:PORT" sees it.
fn port(socks: &Microsocks) -> String {
    socks.addr().port().to_string()
}

/// The refusals of the run: every one a UDP connect to localhost:`port`,
/// verdict allowed, action blocked with EPERM, counted apart in the summary
/// and named on stderr; and no leak at all.
fn assert_refused_udp_connects_only(out: &Outcome, port: &str) {
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let refused = out.events_where(|e| e.s("reason") == "udp-connect-refused");
    assert!(!refused.is_empty(), "glibc's sorting connects are reported\n{}", out.describe());
    for e in &refused {
        assert_eq!(
            (e.s("syscall"), e.s("verdict"), e.s("action"), e.s("protocol")),
            ("connect", "allowed", "blocked", "udp"),
            "{e}\n{}",
            out.describe()
        );
        assert_eq!(e.i("errno"), Some(libc::EPERM as i64), "{e}");
        let dst = e.s("dst");
        assert!(
            dst == format!("127.0.0.1:{port}") || dst == format!("[::1]:{port}"),
            "a connect to localhost:{port}: {e}"
        );
    }
    assert_eq!(
        out.summary_count("udp_connects_refused"),
        refused.len() as i64,
        "the summary counts the refusals apart\n{}",
        out.describe()
    );
    assert!(out.stderr.contains("UDP connect(s) refused (nothing sent)"), "{}", out.describe());
}

#[test]
fn python_create_connection_to_a_localhost_proxy_passes_fail_on_leak() {
    let Some(socks) = proxy() else { skip!("see above") };
    let code = format!("import socket; socket.create_connection(('localhost', {})).close()", port(&socks));
    let trace = via(&socks).opts(["--fail-on-leak"]);
    let out = run_in_private_hosts(trace, &["/usr/bin/python3", "-c", &code]);
    out.assert_code(0);
    assert_refused_udp_connects_only(&out, &port(&socks));
}

#[test]
fn python_create_connection_survives_on_leak_kill() {
    let Some(socks) = proxy() else { skip!("see above") };
    let code = format!("import socket; socket.create_connection(('localhost', {})).close()", port(&socks));
    let trace = via(&socks).on_leak("kill");
    let out = run_in_private_hosts(trace, &["/usr/bin/python3", "-c", &code]);
    out.assert_code(0);
    assert_refused_udp_connects_only(&out, &port(&socks));
}

#[test]
fn netcat_through_a_localhost_proxy_survives_on_leak_kill_and_fail_on_leak() {
    let Some(socks) = proxy() else { skip!("see above") };
    if !std::path::Path::new("/usr/bin/nc.openbsd").exists() {
        skip!("netcat-openbsd is not installed (cargo xtask setup installs it)");
    }
    let web = HttpServer::bind("127.0.0.2");
    let web_port = web.dst().rsplit(':').next().unwrap().to_owned();
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc.openbsd -X 5 -x localhost:{} 127.0.0.2 {web_port}",
        port(&socks)
    );
    let trace = via(&socks).on_leak("kill").opts(["--fail-on-leak"]);
    let out = run_in_private_hosts(trace, &["sh", "-c", &script]);
    out.assert_code(0);
    assert!(out.stdout.contains(web.body().trim()), "the page came through the proxy\n{}", out.describe());
    assert_refused_udp_connects_only(&out, &port(&socks));
}

#[test]
fn python_http_server_on_localhost_starts_clean_under_on_leak_kill() {
    let Some(socks) = proxy() else { skip!("see above") };
    let trace = via(&socks).on_leak("kill").opts(["--fail-on-leak"]).program([
        "/usr/bin/python3",
        "-u",
        "-m",
        "http.server",
        "--bind",
        "localhost",
        "0",
    ]);
    let trace = private_hosts(trace);
    let running = trace.spawn();
    // Serving, or sockstrace has ended (its summary is out: killed at start).
    let serving = sockstrace_tests::util::wait_until(Duration::from_secs(30), || {
        running.stdout().contains("Serving HTTP") || running.stderr().contains("summary:")
    }) && running.stdout().contains("Serving HTTP");
    // The supervisor passes SIGINT on; http.server exits 0 on KeyboardInterrupt.
    std::thread::sleep(Duration::from_millis(300));
    running.signal(libc::SIGINT);
    let out = running.wait();
    assert!(serving, "http.server started\n{}", out.describe());
    out.assert_code(0);
    assert_refused_udp_connects_only(&out, "0");
}

#[test]
fn a_datagram_sent_to_a_non_proxy_address_is_still_a_leak() {
    let Some(socks) = proxy() else { skip!("see above") };
    let sink = UdpSink::bind("127.0.0.1");
    let trace = via(&socks).opts(["--fail-on-leak"]);
    let out = trace.netprobe(["udp-sendto", &sink.host(), &sink.port()]).run();
    out.assert_code(3);
    sink.assert_nothing_arrived("sendto");
    let leak = out.the_event("the sendto leak", |e| e.is_leak());
    assert_eq!((leak.s("syscall"), leak.s("reason"), leak.s("action")), ("sendto", "direct-udp", "blocked"));
    assert_eq!(out.summary_count("udp_connects_refused"), 0, "{}", out.describe());
}

#[test]
fn a_refused_udp_connect_leaves_nothing_to_send_on() {
    let Some(socks) = proxy() else { skip!("see above") };
    let sink = UdpSink::bind("127.0.0.2");
    let out = via(&socks).netprobe(["udp-connect-send", &sink.host(), &sink.port()]).run();
    out.assert_client_eperm("connect");
    sink.assert_nothing_arrived("connected UDP");
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let ev = out.the_event("the refusal", |e| e.s("reason") == "udp-connect-refused");
    assert_eq!(ev.s("dst"), sink.dst());
    assert_eq!(out.summary_count("udp_connects_refused"), 1);
}

#[test]
fn under_on_leak_log_a_udp_connect_is_a_leak_and_goes_through() {
    let Some(socks) = proxy() else { skip!("see above") };
    let sink = UdpSink::bind("127.0.0.2");
    let trace = via(&socks).on_leak("log");
    let out = trace.netprobe(["udp-connect-send", &sink.host(), &sink.port()]).run();
    out.assert_code(0);
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "the datagram arrived\n{}", out.describe());
    let leak = out.the_event("the connect leak", |e| e.is_leak() && e.s("syscall") == "connect");
    assert_eq!((leak.s("reason"), leak.s("action")), ("direct-udp", "logged"), "{}", out.describe());
    assert_eq!(out.summary_count("udp_connects_refused"), 0, "{}", out.describe());
}

#[test]
fn a_connected_udp_socket_to_an_allowed_address_works() {
    let Some(socks) = proxy() else { skip!("see above") };
    let sink = UdpSink::bind("127.0.0.2");
    let trace = via(&socks).allow(&sink.dst()).opts(["--fail-on-leak"]);
    let out = trace.netprobe(["udp-connect-send", &sink.host(), &sink.port()]).run();
    out.assert_code(0);
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "the datagram arrived\n{}", out.describe());
    out.assert_no_leaks();
    assert_eq!(out.summary_count("udp_connects_refused"), 0, "{}", out.describe());
}

/// As root the kernel layer is on (`--kernel required`): a UDP connect the
/// supervisor refused never reaches the kernel, so no hook reports it.
#[test]
fn with_the_kernel_layer_no_kernel_event_contradicts_the_refusal() {
    let Some(socks) = proxy() else { skip!("see above") };
    let code = format!("import socket; socket.create_connection(('localhost', {})).close()", port(&socks));
    let trace = via(&socks).opts(["--fail-on-leak", "--kernel", "required"]);
    let out = run_in_private_hosts(trace, &["/usr/bin/python3", "-c", &code]);
    out.assert_code(0);
    assert!(out.kernel_layer().starts_with("on (enforcing"), "{}", out.describe());
    assert_refused_udp_connects_only(&out, &port(&socks));
    let kernel = out.events_where(|e| e.s("source") == "kernel");
    assert!(kernel.is_empty(), "kernel events: {kernel:?}\n{}", out.describe());
}

/// `audit --enforce`: the kernel refuses a UDP connect in the watched cgroup
/// and reports it as the supervisor does (no leak); a datagram sent with an
/// address is refused and reported as a leak.
#[test]
fn audit_enforcing_reports_a_refused_udp_connect_as_no_leak() {
    if !is_root() {
        skip!("audit needs root");
    }
    let Some(mount) = sockstrace_tests::util::cgroup2_mount() else { skip!("no cgroup2 mount") };
    struct Cgroup(std::path::PathBuf);
    impl Drop for Cgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let cgroup = Cgroup(mount.join(format!("sockstrace-udp-connect-test-{}", std::process::id())));
    std::fs::create_dir(&cgroup.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("audit.jsonl");
    let cg = cgroup.0.display().to_string();
    let running =
        Trace::raw(["audit", "--enforce", "--cgroup", &cg, "--report", report.to_str().unwrap()]).spawn();
    let attached = sockstrace_tests::util::wait_until(Duration::from_secs(30), || {
        running.stderr().contains("sockstrace: auditing cgroup")
    });
    assert!(attached, "audit attached\n{}", running.describe());
    let sink = UdpSink::bind("127.0.0.2");
    let in_cgroup = |mode: &str| {
        let procs = cgroup.0.join("cgroup.procs");
        sockstrace_tests::direct([
            "sh",
            "-c",
            r#"echo $$ > "$1" && shift && exec "$@""#,
            "sh",
            procs.to_str().unwrap(),
            sockstrace_tests::netprobe().to_str().unwrap(),
            mode,
            &sink.host(),
            &sink.port(),
        ])
    };
    let connect = in_cgroup("udp-connect-send");
    assert!(connect.stdout.contains("connect: errno=1 ("), "{}", connect.stdout);
    let sendto = in_cgroup("udp-sendto");
    assert!(sendto.stdout.contains("sendto: errno=1 ("), "{}", sendto.stdout);
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.assert_code(0);
    sink.assert_nothing_arrived("audit --enforce");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&report).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let text = || format!("{}\n{lines:#?}", out.describe());
    let events: Vec<_> = lines.iter().filter(|l| l.get("summary").is_none()).collect();
    let refused: Vec<_> = events.iter().filter(|e| e["reason"] == "udp-connect-refused").collect();
    assert_eq!(refused.len(), 1, "{}", text());
    assert_eq!(
        (&refused[0]["source"], &refused[0]["verdict"], &refused[0]["action"], &refused[0]["dst"]),
        (&"kernel".into(), &"allowed".into(), &"blocked".into(), &sink.dst().into()),
        "{}",
        text()
    );
    let leaks: Vec<_> = events.iter().filter(|e| e["verdict"] == "leak").collect();
    assert_eq!(leaks.len(), 1, "only the sendto is a leak\n{}", text());
    assert_eq!((&leaks[0]["reason"], &leaks[0]["syscall"]), (&"direct-udp".into(), &"sendmsg".into()));
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!((&summary["leaks"], &summary["udp_connects_refused"]), (&1.into(), &1.into()), "{}", text());
}
