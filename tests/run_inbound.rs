//! Inbound control: `--incoming block` (the default) refuses listeners on
//! non-loopback addresses and keeps loopback ones; `--incoming allow` lets
//! any listener through; `--allow-incoming-from` accepts peers from the
//! listed networks only. Peers that are not loopback come from a network
//! namespace with a veth pair that the test creates (and removes, also on
//! failure).

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::util::field;
use sockstrace_tests::{netprobe, skip, Event, Outcome, Running, TcpSink, Trace};

const T: Duration = Duration::from_secs(30);
const GREETING: &str = "hello-from-server\n";

/// The traced server's port once it printed "listen: ok".
fn listening_port(run: &Running) -> u16 {
    assert!(run.wait_stdout("listen: ", T), "the server never reached listen\n{}", run.describe());
    let out = run.stdout();
    assert!(out.contains("listen: ok"), "listen failed\n{}", run.describe());
    field(&out, "listen:", "port") as u16
}

/// `netprobe serve HOST 0 1` (one connection) traced with `opts`, once it
/// listens: the run and its port.
fn serve(opts: &[&str], host: &str) -> (Running, u16) {
    let run = Trace::new().opts(opts).netprobe(["serve", host, "0", "1"]).spawn();
    let port = listening_port(&run);
    (run, port)
}

/// Connects from the test to 127.0.0.1:PORT and reads the greeting.
fn greet_over_loopback(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the traced server");
    s.set_read_timeout(Some(T)).unwrap();
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    got
}

fn listen_event<'a>(out: &'a Outcome, local_prefix: &str) -> &'a Event {
    out.the_event(&format!("listen on {local_prefix}*"), |e| {
        e.s("syscall") == "listen" && e.s("local").starts_with(local_prefix)
    })
}

/// The one accept event for the peer at `peer` (an address; `what`, e.g.
/// "refused", describes it in the failure message).
fn accept_event<'a>(out: &'a Outcome, what: &str, peer: &str) -> &'a Event {
    let prefix = format!("{peer}:");
    out.the_event(&format!("accept {what} for {peer}"), |e| {
        e.s("syscall").starts_with("accept") && e.s("dst").starts_with(&prefix)
    })
}

fn serve_refused_on_any(extra: &[&str]) {
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).opts(extra).netprobe(["serve", "0.0.0.0", "0", "1"]).run();
    out.assert_client_eperm("listen");
    out.assert_report_well_formed();
    let ev = listen_event(&out, "0.0.0.0:");
    let d = || out.describe();
    assert!(ev.is_leak(), "{ev}\n{}", d());
    assert_eq!(ev.s("reason"), "inbound-listen", "{ev}\n{}", d());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", d());
    assert_eq!(ev.i("errno"), Some(1), "{ev}\n{}", d());
    assert_eq!(ev.s("protocol"), "tcp", "{ev}\n{}", d());
    assert_eq!(ev.i("pid"), Some(out.actor().0), "{ev}\n{}", d());
    assert_eq!(out.summary_count("leaks"), 1, "{}", d());
}

#[test]
fn listen_on_any_address_refused_by_default() {
    serve_refused_on_any(&[]);
}

#[test]
fn listen_on_any_address_refused_with_incoming_block() {
    serve_refused_on_any(&["--incoming", "block"]);
}

#[test]
fn listen_on_any_v6_address_refused_by_default() {
    let out = Trace::new().netprobe(["serve", "::", "0", "1"]).run();
    out.assert_client_eperm("listen");
    let ev = listen_event(&out, "[::]:");
    assert_eq!(ev.s("reason"), "inbound-listen", "{ev}\n{}", out.describe());
}

#[test]
fn listen_on_loopback_allowed() {
    let (run, port) = serve(&[], "127.0.0.1");
    assert_eq!(greet_over_loopback(port), GREETING, "{}", run.describe());
    let out = run.wait();
    out.assert_code(0);
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let ev = listen_event(&out, "127.0.0.1:");
    assert!(ev.is_allowed(), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("reason"), "loopback-listener", "{ev}\n{}", out.describe());
}

#[test]
fn incoming_allow_permits_any_address() {
    let (run, port) = serve(&["--incoming", "allow"], "0.0.0.0");
    assert_eq!(greet_over_loopback(port), GREETING, "{}", run.describe());
    let out = run.wait();
    out.assert_code(0);
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let ev = listen_event(&out, "0.0.0.0:");
    assert!(ev.is_allowed(), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("reason"), "incoming-allowed", "{ev}\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// Peers from another network namespace
// ---------------------------------------------------------------------------

/// A namespace whose veth end has an address in an allowed and in a refused
/// subnet (`a` and `b`: 10.a.0.2 and 10.b.0.2; the host end has .1 in both).
fn peer_namespace(a: u8, b: u8) -> Result<NetNs, String> {
    NetNs::create(
        &[&format!("10.{a}.0.1/24"), &format!("10.{b}.0.1/24")],
        &[&format!("10.{a}.0.2/24"), &format!("10.{b}.0.2/24")],
    )
}

/// `netprobe tcp-exchange HOST PORT` run inside the namespace: what the peer
/// read ("recv: bytes=N ...").
fn peer_exchange(ns: &NetNs, host: &str, port: u16) -> String {
    let np = netprobe().to_string_lossy().into_owned();
    let out = ns.exec([np.as_str(), "tcp-exchange", host, &port.to_string()]);
    assert_eq!(out.code, 0, "peer in {}: {}{}", ns.name(), out.stdout, out.stderr);
    out.stdout
}

#[test]
fn allow_incoming_from_filters_peers_by_network() {
    let ns = match peer_namespace(231, 232) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let (run, port) = serve(&["--allow-incoming-from", "10.231.0.0/24"], "0.0.0.0");

    // The refused peer (10.232.0.2) first: its connection is taken and
    // closed by the supervisor, without a byte.
    let refused = peer_exchange(&ns, "10.232.0.1", port);
    assert!(refused.contains("connect: ok"), "{refused}\n{}", run.describe());
    assert!(refused.contains("recv: bytes=0 "), "the refused peer got data: {refused}\n{}", run.describe());
    assert!(!run.stdout().contains("accept: ok"), "the server saw the refused peer\n{}", run.describe());

    // The allowed peer (10.231.0.2) is handed to the server and greeted.
    let allowed = peer_exchange(&ns, "10.231.0.1", port);
    assert!(
        allowed.contains(&format!("recv: bytes={} eof data=hello-from-server|", GREETING.len())),
        "the allowed peer was not served: {allowed}\n{}",
        run.describe()
    );
    let out = run.wait();
    out.assert_code(0);
    let accepted = out.stdout.lines().filter(|l| l.starts_with("accept: ok")).collect::<Vec<_>>();
    assert_eq!(accepted.len(), 1, "{}", out.describe());
    assert!(accepted[0].starts_with("accept: ok peer=10.231.0.2:"), "{}", out.describe());

    out.assert_report_well_formed();
    let d = || out.describe();
    let listen = listen_event(&out, "0.0.0.0:");
    assert!(listen.is_allowed(), "{listen}\n{}", d());
    let bad = accept_event(&out, "refused", "10.232.0.2");
    assert!(bad.is_leak(), "{bad}\n{}", d());
    assert_eq!(bad.s("reason"), "inbound-accept", "{bad}\n{}", d());
    assert_eq!(bad.s("action"), "blocked", "{bad}\n{}", d());
    let good = accept_event(&out, "allowed", "10.231.0.2");
    assert!(good.is_allowed(), "{good}\n{}", d());
    assert_eq!(good.s("reason"), "incoming-peer", "{good}\n{}", d());
    assert_eq!(out.summary_count("leaks"), 1, "{}", d());
}

#[test]
fn incoming_allow_serves_a_non_loopback_peer() {
    let ns = match peer_namespace(233, 234) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let (run, port) = serve(&["--incoming", "allow"], "0.0.0.0");
    let got = peer_exchange(&ns, "10.234.0.1", port);
    assert!(got.contains("data=hello-from-server|"), "{got}\n{}", run.describe());
    let out = run.wait();
    out.assert_code(0);
    assert!(out.stdout.contains("accept: ok peer=10.234.0.2:"), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
}

#[test]
fn allow_incoming_from_on_a_dual_stack_listener() {
    // A listener on [::] sees IPv4 peers as ::ffff:a.b.c.d: the allowed
    // network must still match them, and the refused one must not.
    let ns = match peer_namespace(235, 236) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let (run, port) = serve(&["--allow-incoming-from", "10.235.0.0/24"], "::");
    let refused = peer_exchange(&ns, "10.236.0.1", port);
    assert!(refused.contains("recv: bytes=0 "), "the refused peer got data: {refused}\n{}", run.describe());
    let allowed = peer_exchange(&ns, "10.235.0.1", port);
    assert!(allowed.contains("data=hello-from-server|"), "{allowed}\n{}", run.describe());
    let out = run.wait();
    out.assert_code(0);
    out.assert_report_well_formed();
    let bad = accept_event(&out, "refused", "10.236.0.2");
    assert_eq!(bad.s("reason"), "inbound-accept", "{bad}\n{}", out.describe());
    let good = accept_event(&out, "allowed", "10.235.0.2");
    assert_eq!(good.s("reason"), "incoming-peer", "{good}\n{}", out.describe());
}

#[test]
fn udp_bind_to_a_fixed_port_on_any_address_refused_by_default() {
    let port = sockstrace_tests::net::free_port().to_string();
    let out = Trace::new().netprobe(["udp-bind", "0.0.0.0", &port]).run();
    out.assert_client_eperm("bind");
    out.assert_report_well_formed();
    let ev = out.the_event("inbound bind", |e| e.s("syscall") == "bind" && e.is_leak());
    assert_eq!(ev.s("reason"), "inbound-bind", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("local"), format!("0.0.0.0:{port}"), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("protocol"), "udp", "{ev}\n{}", out.describe());
    // The same bind on loopback, an ephemeral port, or with --incoming allow
    // is fine.
    for (host, p, extra) in [
        ("127.0.0.1", port.as_str(), None),
        ("0.0.0.0", "0", None),
        ("0.0.0.0", port.as_str(), Some("allow")),
    ] {
        let mut t = Trace::new();
        if let Some(policy) = extra {
            t = t.opts(["--incoming", policy]);
        }
        let out = t.netprobe(["udp-bind", host, p]).run();
        out.assert_code(0);
        out.assert_no_leaks();
    }
}
