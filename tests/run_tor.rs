//! sockstrace against Tor itself: a private Tor network on loopback
//! ([`TorNet`]: three authorities, an exit, a client), with the program's
//! traffic going through Tor's own SOCKS port to a web server on 127.0.0.2.
//!
//! - curl and python through Tor are leak-free;
//! - `--on-leak socksify --dns proxy --dns-upstream tor`: a name only the
//!   exit's resolver knows reaches the program through Tor's RESOLVE (and an
//!   address's name through RESOLVE_PTR, an unknown name as NXDOMAIN), and its
//!   direct connect goes through Tor;
//! - stream isolation, seen on Tor's control port: socksified connections
//!   get a circuit each, `--one-circuit` one for all;
//! - `--inspect-socks --require-socks-auth` with Tor: credentials pass,
//!   none is flagged; Tor's RESOLVE_PTR carries an address by nature and
//!   is not flagged as a request by address;
//! - a connection the exit's destination refuses is ECONNREFUSED for the
//!   socksified program (Tor's SOCKS reply 5).
//!
//! One network serves every step (it takes 10 to 30 s to bootstrap); each
//! step runs even when an earlier one failed, and the test fails listing
//! the steps that did (`TOR_STEP=SUBSTRING` runs only the steps whose name
//! has it). Nothing here asks the machine's resolver: the exit
//! resolves through a table on loopback, and the programs that resolve run
//! in a mount namespace whose resolv.conf names a DNS sink that must see
//! nothing.

use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use sockstrace_tests::tornet::control::StreamEvents;
use sockstrace_tests::tornet::{self, TorNet};
use sockstrace_tests::{is_root, skip, DnsSink, HttpServer, Outcome, Trace};

/// A name only the exit's resolver knows (it maps to the web server).
const NAME: &str = "web.tor.test";
const WEB_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A name the exit's resolver knows by address only (RESOLVE_PTR; sockstrace
/// answers loopback addresses' names itself). Nothing connects to it.
const PTR_NAME: &str = "ptr.tor.test";
const PTR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

struct World {
    net: TorNet,
    web: HttpServer,
    /// A port on 127.0.0.2 nothing listens on (in the exit's policy).
    closed_port: u16,
}

impl World {
    fn port(&self) -> String {
        self.web.dst().rsplit(':').next().unwrap().to_string()
    }
    fn url_by_name(&self) -> String {
        format!("http://{NAME}:{}/", self.port())
    }
    fn socks(&self) -> String {
        self.net.socks().to_string()
    }
    fn trace(&self) -> Trace {
        let mut t = Trace::new().proxy(self.net.socks()).timeout(Duration::from_secs(90));
        for k in
            ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "no_proxy"]
        {
            t = t.env_remove(k);
        }
        t
    }
    /// Everything about the run and the network, for assertion messages.
    fn describe(&self, out: &Outcome) -> String {
        format!(
            "{}\n--- the exit's resolver was asked ---\n{:?}\n{}",
            out.describe(),
            self.net.dns_asked(),
            self.net.logs()
        )
    }
    /// STREAM events on the client's control port, from now on.
    fn stream_events(&self) -> StreamEvents {
        self.net.control().and_then(|c| c.stream_events().map_err(|e| e.to_string())).expect("STREAM events")
    }
}

fn curl(args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["curl", "-q", "-sS", "--max-time", "60"].map(String::from).to_vec();
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// Runs `trace` around `program` with resolv.conf naming `dns` (a sink) and a hosts file that
/// knows only localhost (see [`Trace::private_resolver`]).
fn in_private_resolver(trace: Trace, dns: &DnsSink, program: &[String]) -> Outcome {
    trace.private_resolver(&dns.host()).program(program).run()
}

/// Under CI=true nothing may skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn sockstrace_through_a_private_tor_network() {
    if tornet::tor_bin().is_none() {
        if in_ci() {
            panic!("tor is not installed, and CI=true: run `cargo xtask setup`");
        }
        skip!("tor is not installed (apt-get install tor, or cargo xtask setup)");
    }
    let web = HttpServer::bind("127.0.0.2");
    let port: u16 = web.dst().rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    let closed_port =
        std::net::TcpListener::bind((WEB_IP, 0)).and_then(|l| l.local_addr()).expect("bind").port();
    let net = TorNet::start(&[(NAME, WEB_IP), (PTR_NAME, PTR_IP)], &[port, closed_port])
        .unwrap_or_else(|e| panic!("the Tor network did not start: {e}"));
    eprintln!("the private Tor network bootstrapped in {:.1?}; SOCKS {}", net.bootstrap, net.socks());
    let world = World { net, web, closed_port };
    type Step = fn(&World);
    let steps: &[(&str, Step)] = &[
        ("curl_and_python_through_tor_are_clean", curl_and_python_through_tor_are_clean),
        ("socksify_with_tor_dns_reaches_a_name_only_the_exit_knows", socksify_with_tor_dns),
        ("tor_dns_answers_ptr_and_nxdomain", tor_dns_answers_ptr_and_nxdomain),
        ("socksified_connections_get_a_circuit_each", socksified_connections_get_a_circuit_each),
        ("one_circuit_shares_one_circuit", one_circuit_shares_one_circuit),
        ("inspect_socks_requires_credentials_with_tor", inspect_socks_requires_credentials_with_tor),
        ("inspect_socks_lets_resolve_ptr_through_after_a_lookup", inspect_socks_lets_resolve_ptr_through),
        ("a_refusal_at_the_exit_is_econnrefused", a_refusal_at_the_exit_is_econnrefused),
    ];
    let only = std::env::var("TOR_STEP").ok();
    let mut failed = Vec::new();
    for (name, step) in steps {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        eprintln!("step {name}");
        if catch_unwind(AssertUnwindSafe(|| step(&world))).is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "steps failed (see their panics above): {failed:?}");
}

fn curl_and_python_through_tor_are_clean(w: &World) {
    let before = w.web.requests();
    let out = w.trace().program(curl(&["--socks5-hostname", &w.socks(), &w.web.url()])).run();
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(out.stdout.contains(w.web.body()), "the page came through Tor\n{}", w.describe(&out));
    assert!(out.leaks().is_empty(), "no leak\n{}", w.describe(&out));
    assert_eq!(w.web.requests(), before + 1, "{}", w.describe(&out));

    // Python speaking SOCKS5 itself, by name: the exit resolves it.
    let script = r#"
import socket, struct, sys
proxy, name, port = sys.argv[1].rsplit(":", 1), sys.argv[2], int(sys.argv[3])
s = socket.create_connection((proxy[0], int(proxy[1])), timeout=60)
s.sendall(b"\x05\x01\x00")
assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name.encode() + struct.pack(">H", port))
reply = s.recv(10)
assert reply[1] == 0, "SOCKS reply %d" % reply[1]
s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"#;
    let before = w.web.requests();
    let out = w.trace().program(["python3", "-c", script, &w.socks(), NAME, &w.port()]).run();
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(out.stdout.contains(w.web.body()), "{}", w.describe(&out));
    assert!(out.leaks().is_empty(), "{}", w.describe(&out));
    assert_eq!(w.web.requests(), before + 1, "{}", w.describe(&out));
    assert!(w.net.dns_asked().iter().any(|(n, _)| n == NAME), "the exit resolved the name");
}

/// The DNS sink for the programs' own resolv.conf, or a skip (not root).
fn dns_sink() -> Option<DnsSink> {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: --dns proxy and mount namespaces need it");
        eprintln!("SKIP: --dns proxy and mount namespaces need root");
        return None;
    }
    Some(DnsSink::bind().unwrap_or_else(|e| panic!("no DNS sink: {e}")))
}

fn tor_dns(w: &World) -> Trace {
    w.trace().on_leak("socksify").opts(["--dns", "proxy", "--dns-upstream", "tor"])
}

fn socksify_with_tor_dns(w: &World) {
    let Some(dns) = dns_sink() else { return };
    let before = w.web.requests();
    let out = in_private_resolver(tor_dns(w), &dns, &curl(&["--noproxy", "*", &w.url_by_name()]));
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(out.stdout.contains(w.web.body()), "the page came through Tor\n{}", w.describe(&out));
    assert_eq!(w.web.requests(), before + 1, "{}", w.describe(&out));
    dns.assert_nothing_arrived("the program's lookups went to sockstrace's resolver, and on through Tor");
    let socksified: Vec<_> = out.events.iter().filter(|e| e.s("action") == "socksified").collect();
    assert_eq!(socksified.len(), 1, "{}", w.describe(&out));
    assert_eq!(socksified[0].s("dst"), w.web.dst(), "the exit's answer, 127.0.0.2\n{}", w.describe(&out));
    assert!(
        out.leaks().iter().all(|e| e.s("action") == "socksified"),
        "nothing but the socksified connect counts as a leak\n{}",
        w.describe(&out)
    );
    let summary = out.summary.as_ref().expect("a summary");
    let lookups = summary["summary"]["dns"]["lookups"].as_array().cloned().unwrap_or_default();
    assert!(lookups.iter().any(|l| l["name"] == NAME), "the lookup is in the summary\n{}", w.describe(&out));
}

fn tor_dns_answers_ptr_and_nxdomain(w: &World) {
    let Some(dns) = dns_sink() else { return };
    let script = r#"
import socket, sys
print("ptr:", socket.gethostbyaddr(sys.argv[1])[0])
try:
    socket.getaddrinfo(sys.argv[2], 80, socket.AF_INET)
    print("nxdomain: resolved")
except socket.gaierror as e:
    print("nxdomain: error", e.errno)
"#;
    let program: Vec<String> =
        ["python3", "-c", script, &PTR_IP.to_string(), "nowhere.tor.test"].map(String::from).to_vec();
    let out = in_private_resolver(tor_dns(w), &dns, &program);
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(
        out.stdout.contains(&format!("ptr: {PTR_NAME}")),
        "RESOLVE_PTR through the exit\n{}",
        w.describe(&out)
    );
    // EAI_NONAME (-2), not EAI_AGAIN (-3): Tor's failed RESOLVE is a
    // definite "no such name".
    assert!(out.stdout.contains("nxdomain: error -2"), "NXDOMAIN\n{}", w.describe(&out));
    dns.assert_nothing_arrived("every lookup went through Tor");
    assert!(out.leaks().is_empty(), "{}", w.describe(&out));
    let asked = w.net.dns_asked();
    assert!(
        asked.contains(&("7.2.0.192.in-addr.arpa".to_string(), 12)),
        "the exit asked for the PTR: {asked:?}"
    );
    assert!(asked.contains(&("nowhere.tor.test".to_string(), 1)), "the exit asked for the name: {asked:?}");
}

/// curl straight at the web server twice (two connections), socksified
/// through Tor under `opts`; returns the circuits of the two streams and the
/// SOCKS usernames Tor saw on them.
fn two_socksified_streams(w: &World, opts: &[&str]) -> (Vec<String>, Vec<Option<String>>) {
    let events = w.stream_events();
    let before = w.web.requests();
    let url = w.web.url();
    let out = w.trace().on_leak("socksify").opts(opts).program(curl(&["--noproxy", "*", &url, &url])).run();
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert_eq!(w.web.requests(), before + 2, "{}", w.describe(&out));
    let socksified = out.events.iter().filter(|e| e.s("action") == "socksified").count();
    assert_eq!(socksified, 2, "{}", w.describe(&out));
    let ok = sockstrace_tests::util::wait_until(Duration::from_secs(10), || {
        events.succeeded_circuits(&w.web.dst()).len() >= 2
    });
    let circuits = events.succeeded_circuits(&w.web.dst());
    assert!(
        ok,
        "two streams to {} on the control port: {:?}\n{}",
        w.web.dst(),
        events.all(),
        w.describe(&out)
    );
    let users = events
        .all()
        .into_iter()
        .filter(|e| e.status == "SUCCEEDED" && e.target == w.web.dst())
        .map(|e| e.username)
        .collect();
    (circuits, users)
}

fn socksified_connections_get_a_circuit_each(w: &World) {
    let (circuits, users) = two_socksified_streams(w, &[]);
    assert!(users[0].is_some() && users[0] != users[1], "fresh credentials per connection: {users:?}");
    assert_ne!(circuits[0], circuits[1], "fresh credentials per connection: one circuit each");
}

fn one_circuit_shares_one_circuit(w: &World) {
    let (circuits, users) = two_socksified_streams(w, &["--one-circuit"]);
    assert!(users[0].is_some() && users[0] == users[1], "one pair of credentials: {users:?}");
    assert_eq!(circuits[0], circuits[1], "--one-circuit: the same credentials, the same circuit");
}

fn inspect_socks_requires_credentials_with_tor(w: &World) {
    let inspect = ["--inspect-socks", "--require-socks-auth"];
    let events = w.stream_events();
    let before = w.web.requests();
    let with = format!("socks5h://alice:pw@{}", w.socks());
    let out = w.trace().opts(inspect).program(curl(&["-x", &with, &w.web.url()])).run();
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(out.stdout.contains(w.web.body()), "{}", w.describe(&out));
    assert!(out.leaks().is_empty(), "{}", w.describe(&out));
    assert_eq!(w.web.requests(), before + 1);
    let ok = sockstrace_tests::util::wait_until(Duration::from_secs(10), || {
        events.all().iter().any(|e| e.status == "SUCCEEDED" && e.target == w.web.dst())
    });
    assert!(ok, "the stream is on Tor's control port: {:?}", events.all());
    let users: Vec<_> = events.all().into_iter().filter_map(|e| e.username).collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u == "alice"),
        "Tor saw the program's own credentials: {:?}",
        events.all()
    );

    let out = w.trace().opts(inspect).program(curl(&["--socks5-hostname", &w.socks(), &w.web.url()])).run();
    assert_ne!(out.code(), 0, "{}", w.describe(&out));
    let flagged: Vec<_> = out.leaks().into_iter().filter(|e| e.s("reason") == "socks-no-auth").collect();
    assert_eq!(flagged.len(), 1, "{}", w.describe(&out));
    assert_eq!(flagged[0].s("action"), "blocked", "{}", w.describe(&out));
    assert_eq!(w.web.requests(), before + 1, "nothing more reached the web server");
}

fn inspect_socks_lets_resolve_ptr_through(w: &World) {
    let Some(dns) = dns_sink() else { return };
    // A program that looks a name up (through sockstrace's resolver), then
    // asks Tor for an address's name (RESOLVE_PTR, command 0xF1): the
    // request carries an address, but it connects nowhere.
    let script = r#"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
print("lookup:", socket.gethostbyname(sys.argv[2]))
s = socket.create_connection((host, int(port)), timeout=60)
def exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit("ptr: short reply")
        data += chunk
    return data
s.sendall(b"\x05\x01\x00")
assert exact(2) == b"\x05\x00"
s.sendall(b"\x05\xf1\x00\x01" + socket.inet_aton(sys.argv[3]) + b"\x00\x00")
head = exact(4)
if head[1] != 0:
    sys.exit("ptr: refused, SOCKS reply %d" % head[1])
n = exact(1)[0]
print("ptr:", exact(n + 2)[:n].decode())
"#;
    let program: Vec<String> =
        ["python3", "-c", script, &w.socks(), NAME, &PTR_IP.to_string()].map(String::from).to_vec();
    let trace = w.trace().opts(["--inspect-socks", "--dns", "proxy", "--dns-upstream", "tor"]);
    let out = in_private_resolver(trace, &dns, &program);
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(out.stdout.contains(&format!("lookup: {WEB_IP}")), "{}", w.describe(&out));
    assert!(out.stdout.contains(&format!("ptr: {PTR_NAME}")), "{}", w.describe(&out));
    assert!(out.leaks().is_empty(), "a reverse lookup is no request by address\n{}", w.describe(&out));
    dns.assert_nothing_arrived("every lookup went through Tor");
}

fn a_refusal_at_the_exit_is_econnrefused(w: &World) {
    let script = r#"
import socket, sys
s = socket.socket()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connect: ok")
except OSError as e:
    print("connect: errno", e.errno)
"#;
    let port = w.closed_port.to_string();
    let out =
        w.trace().on_leak("socksify").program(["python3", "-c", script, &WEB_IP.to_string(), &port]).run();
    assert_eq!(out.code(), 0, "{}", w.describe(&out));
    assert!(
        out.stdout.contains(&format!("connect: errno {}", libc::ECONNREFUSED)),
        "Tor's \"connection refused\" is the program's ECONNREFUSED\n{}",
        w.describe(&out)
    );
    let socksified: Vec<_> = out.events.iter().filter(|e| e.s("action") == "socksified").collect();
    assert_eq!(socksified.len(), 1, "{}", w.describe(&out));
}
