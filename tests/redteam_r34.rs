//! Red team against the kernel layer's start-up cuts (a5b0bf3, d617135): a run's programs
//! leave the exemption checks out (the read-only `EXEMPTIONS` global at 0), the sock_addr
//! hooks record a socket's facts through the global functions `sock_addr_facts` (a packed word:
//! family, hook, leak/refuse/exempt, type, protocol, port) and `sock_addr_source`, and the rule
//! walk's step (`rule_step`, `bpf_loop`'s callback) decides a match branch-free with
//! `RuleQuery::match_bit`, writing `query.matched` at every step.
//!
//! Attacker: `tests/clients/r34_uring.c`, which does everything through io_uring (the socket
//! too, `IORING_OP_SOCKET`) under `--allow-io-uring`, so that no call of it passes the seccomp
//! layer and the kernel layer's judgement is the only one; and Python through a SOCKS5 proxy
//! with UDP (Dante) for UDP through the proxy. Ground truth: what sinks on loopback, or in a
//! network namespace the test creates, received; the program's errno; the report.
//!
//! Found (open, ignored): `rule_step` now writes `matched` (0 or 1) at every step, where it
//! used to set it only on a match. The sock_addr hooks set `matched` to 1 *before* the walk
//! for a UDP socket's own shim (`udp_peers::own_shim`, UDP through the proxy), and the first
//! rule that does not match (the proxy's own TCP-only rule, always there) clears it. So under
//! `--on-leak socksify` with the kernel layer, the supervisor's connect of the program's UDP
//! socket to its shim is refused (EPERM) and reported as a refused UDP connect, the program's
//! connected UDP through the proxy fails, and its datagrams to its own shim are refused: a
//! false leak, and UDP through the proxy is broken (`run_udp_socks`: 5 of 9 tests fail now,
//! all pass at a5b0bf3).
//!
//! Held: the kernel-only judgements over the rules' edges (v4-mapped destinations against
//! IPv4 and IPv6 rules, /0, /96, /105, /128, the highest port, TCP-only proxies reached by
//! UDP, UDP-Lite, MPTCP), beyond loopback through the egress gate (no false drop), and a run
//! never takes exemptions (its configuration file's audit keys are ignored, its programs
//! judge everyone), and a socket's facts recorded through the packed word (hooks 1-6 in 3 bits,
//! socket types below 256, 16-bit protocols and ports, the family, leak and refuse bits) read
//! back right in the report: counters, source, destination, creator. Held, no test of its
//! own: `audit` honours its exemptions (`run_audit_exempt`, 8 of 8 pass).

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockstrace_tests::dante::Dante;
use sockstrace_tests::netns::NetNs;
use sockstrace_tests::paths::client_uring;
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{kernel_available, skip, Outcome, TcpSink, Trace, UdpSink};

const T: Duration = Duration::from_secs(60);

fn attacker() -> PathBuf {
    client_uring("r34_uring", None, &[]).unwrap_or_else(|e| panic!("building r34_uring: {e}"))
}

/// A run of the io_uring attacker as nobody (io_uring is gated by the kernel layer only for a
/// caller that cannot hold `CAP_NET_RAW`, where the BPF LSM is refused), with `--allow-io-uring`.
fn uring_run(opts: &[String], probes: &[Probe]) -> Outcome {
    let specs: Vec<String> = probes.iter().map(Probe::spec).collect();
    let mut argv = vec![attacker().to_string_lossy().into_owned()];
    argv.extend(specs);
    let out =
        Trace::new().opts(["--user", "nobody", "--allow-io-uring"]).opts(opts).timeout(T).program(argv).run();
    out.assert_code(0);
    let setup = out.events_where(|e| e.s("syscall") == "io_uring_setup");
    assert!(
        setup.iter().all(|e| e.is_allowed()),
        "io_uring was not left to the kernel layer\n{}",
        out.describe()
    );
    out
}

/// What the kernel layer must do with one probe.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Let it through: the program prints "TAG: ok".
    Pass,
    /// Refuse it at `step` (`socket`, `connect`, `sendmsg`) with EPERM; and, when `Some`,
    /// report a kernel leak of that reason naming the destination.
    Refuse(&'static str, Option<&'static str>),
}

/// One r34_uring probe: TAG:OP:FAMILY:TYPE:PROTOCOL:PORT:HOST.
struct Probe {
    tag: &'static str,
    op: &'static str,
    family: u32,
    sock_type: &'static str,
    protocol: u32,
    host: String,
    port: u16,
    expect: Expect,
}

impl Probe {
    #[allow(clippy::too_many_arguments)]
    fn new(
        tag: &'static str,
        op: &'static str,
        family: u32,
        sock_type: &'static str,
        protocol: u32,
        host: &str,
        port: u16,
        expect: Expect,
    ) -> Self {
        Probe { tag, op, family, sock_type, protocol, host: host.to_string(), port, expect }
    }

    fn spec(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.tag, self.op, self.family, self.sock_type, self.protocol, self.port, self.host
        )
    }

    /// The destination as the report writes it (v4-mapped in IPv4 form).
    fn dst(&self) -> String {
        let host = self.host.strip_prefix("::ffff:").unwrap_or(&self.host);
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Every probe's line against its expectation, and each refusal the kernel reported; returns
/// the mismatches.
fn judge(out: &Outcome, probes: &[Probe]) -> Vec<String> {
    let mut wrong = Vec::new();
    let kernel = out.events_where(|e| e.s("source") == "kernel" && e.is_leak());
    for p in probes {
        let prefix = format!("{}: ", p.tag);
        let line = out.stdout.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or("(no line)");
        let want = match p.expect {
            Expect::Pass => "ok".to_string(),
            Expect::Refuse(step, _) => format!("{step} errno={}", libc::EPERM),
        };
        if line != want {
            wrong.push(format!("{}: {line:?}, expected {want:?} ({})", p.tag, p.spec()));
        }
        if let Expect::Refuse(_, Some(reason)) = p.expect {
            let dst = p.dst();
            let seen = kernel.iter().any(|e| e.s("dst") == dst && e.s("reason") == reason);
            if !seen {
                wrong.push(format!("{}: no kernel leak {reason} to {dst} in the report", p.tag));
            }
        }
    }
    wrong
}

/// The kernel layer alone (io_uring, nothing passes seccomp) judges connects and datagrams on
/// loopback by the rules at their edges, as the policy does: a proxy (a TCP-only /128 rule of
/// a v4-mapped host) lets TCP and MPTCP in, by IPv4 or v4-mapped, never UDP (sent or
/// connected); UDP-Lite is refused at creation; an IPv6 `::/0` rule never matches a v4-mapped
/// destination; an IPv4 `0.0.0.0/0` rule (`::ffff:0:0/96`) matches IPv4 and v4-mapped, never
/// `::1`; an IPv6-spelled `::ffff:0:0/96` matches nothing IPv4; `127.0.0.0/9` (/105) splits
/// 127/8; `[::1]:P` (/128) takes every transport on P only; port 65535 is a port like any;
/// TCP to port 0 and DNS are refused and reported by reason. Held: the branch-free
/// `match_bit` agrees with the policy on every probe, in the sock_addr hooks.
#[test]
fn io_uring_calls_are_judged_by_the_rules_at_their_edges() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let proxy = TcpSink::bind("127.0.0.2");
    let tcp6 = TcpSink::bind("::1");
    let udp6 = UdpSink::bind("::1");
    let udp4 = UdpSink::bind("127.0.0.3");
    let udp4b = UdpSink::bind("127.0.0.3");
    let udp9 = UdpSink::bind("127.1.0.1");
    let port = |s: String| s.parse::<u16>().unwrap();
    let (pt, pt6, p6, p4, p7, p9) = (
        port(proxy.port()),
        port(tcp6.port()),
        port(udp6.port()),
        port(udp4.port()),
        port(udp4b.port()),
        port(udp9.port()),
    );
    let opts: Vec<String> = [
        "--proxy".to_string(),
        format!("127.0.0.2:{pt}"),
        "--allow".into(),
        format!("[::/0]:{p6}"),
        "--allow".into(),
        format!("0.0.0.0/0:{p4}"),
        "--allow".into(),
        format!("[::ffff:0.0.0.0/96]:{p7}"),
        "--allow".into(),
        format!("127.0.0.0/9:{p9}"),
        "--allow".into(),
        format!("[::1]:{pt6}"),
        "--allow".into(),
        "127.0.0.4:65535".into(),
    ]
    .into();
    use Expect::{Pass, Refuse};
    let probes = [
        Probe::new("tcp-proxy", "c", 2, "stream", 0, "127.0.0.2", pt, Pass),
        Probe::new("tcp-proxy-mapped", "c", 10, "stream", 0, "::ffff:127.0.0.2", pt, Pass),
        Probe::new("mptcp-proxy", "c", 2, "stream", 262, "127.0.0.2", pt, Pass),
        Probe::new("mptcp-proxy-mapped", "c", 10, "stream", 262, "::ffff:127.0.0.2", pt, Pass),
        Probe::new("udp-proxy", "s", 2, "dgram", 0, "127.0.0.2", pt, Refuse("sendmsg", Some("direct-udp"))),
        Probe::new(
            "udp-proxy-mapped",
            "s",
            10,
            "dgram",
            0,
            "::ffff:127.0.0.2",
            pt,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new("udp-connect-proxy", "c", 2, "dgram", 17, "127.0.0.2", pt, Refuse("connect", None)),
        Probe::new("udplite-proxy", "s", 2, "dgram", 136, "127.0.0.2", pt, Refuse("socket", None)),
        Probe::new(
            "tcp-proxy-port0",
            "c",
            2,
            "stream",
            0,
            "127.0.0.2",
            0,
            Refuse("connect", Some("direct-tcp")),
        ),
        Probe::new("udp-v6-slash0", "s", 10, "dgram", 0, "::1", p6, Pass),
        Probe::new(
            "udp-mapped-slash0",
            "s",
            10,
            "dgram",
            0,
            "::ffff:127.0.0.3",
            p6,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new(
            "tcp-mapped-slash0",
            "c",
            10,
            "stream",
            0,
            "::ffff:127.0.0.3",
            p6,
            Refuse("connect", Some("direct-tcp")),
        ),
        Probe::new("udp-v4-slash96", "s", 2, "dgram", 0, "127.0.0.3", p4, Pass),
        Probe::new("udp-mapped-slash96", "s", 10, "dgram", 0, "::ffff:127.0.0.3", p4, Pass),
        Probe::new("udp-v6-slash96", "s", 10, "dgram", 0, "::1", p4, Refuse("sendmsg", Some("direct-udp"))),
        Probe::new(
            "udp-v4-other-port",
            "s",
            2,
            "dgram",
            0,
            "127.0.0.3",
            p6,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new("v6net-v4", "s", 2, "dgram", 0, "127.0.0.3", p7, Refuse("sendmsg", Some("direct-udp"))),
        Probe::new(
            "v6net-mapped",
            "s",
            10,
            "dgram",
            0,
            "::ffff:127.0.0.3",
            p7,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new("udp-slash105-in", "s", 2, "dgram", 0, "127.1.0.1", p9, Pass),
        Probe::new(
            "udp-slash105-out",
            "s",
            2,
            "dgram",
            0,
            "127.200.0.1",
            p9,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new(
            "udp-slash105-out-mapped",
            "s",
            10,
            "dgram",
            0,
            "::ffff:127.200.0.1",
            p9,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new("tcp-v6-slash128", "c", 10, "stream", 0, "::1", pt6, Pass),
        Probe::new("mptcp-v6-slash128", "c", 10, "stream", 262, "::1", pt6, Pass),
        Probe::new("udp-v6-slash128", "s", 10, "dgram", 0, "::1", pt6, Pass),
        Probe::new(
            "udp-v6-slash128-port",
            "s",
            10,
            "dgram",
            0,
            "::1",
            pt,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new("port-max", "s", 2, "dgram", 0, "127.0.0.4", 65535, Pass),
        Probe::new(
            "port-max-less-one",
            "s",
            2,
            "dgram",
            0,
            "127.0.0.4",
            65534,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new("dns-udp", "s", 2, "dgram", 0, "127.0.0.3", 53, Refuse("sendmsg", Some("dns-udp"))),
        Probe::new(
            "dns-tcp-mapped",
            "c",
            10,
            "stream",
            0,
            "::ffff:127.0.0.3",
            53,
            Refuse("connect", Some("dns-tcp")),
        ),
        Probe::new("raw-udp", "k", 2, "raw", 17, "-", 0, Refuse("socket", None)),
        Probe::new("packet", "k", 17, "raw", 768, "-", 0, Refuse("socket", None)),
    ];
    let out = uring_run(&opts, &probes);
    let wrong = judge(&out, &probes);
    assert!(
        wrong.is_empty(),
        "the kernel layer judged against the policy:\n{}\n{}",
        wrong.join("\n"),
        out.describe()
    );
    // What passed arrived, each payload once, and nothing else did.
    let tcp = ["tcp-proxy", "tcp-proxy-mapped", "mptcp-proxy", "mptcp-proxy-mapped"];
    let bytes: usize = tcp.iter().map(|t| t.len()).sum();
    assert!(
        proxy.wait_bytes(bytes, Duration::from_secs(5)),
        "the proxy got {} bytes\n{}",
        proxy.bytes(),
        out.describe()
    );
    assert!(tcp6.wait_bytes("tcp-v6-slash128".len() + "mptcp-v6-slash128".len(), Duration::from_secs(5)));
    let payloads = |s: &UdpSink| {
        let mut p: Vec<String> =
            s.payloads().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        p.sort();
        p
    };
    assert!(udp6.wait_datagrams(1, Duration::from_secs(5)));
    assert!(udp4.wait_datagrams(2, Duration::from_secs(5)));
    assert!(udp9.wait_datagrams(1, Duration::from_secs(5)));
    sockstrace_tests::settle();
    assert_eq!(payloads(&udp6), ["udp-v6-slash0"], "{}", out.describe());
    assert_eq!(payloads(&udp4), ["udp-mapped-slash96", "udp-v4-slash96"], "{}", out.describe());
    assert_eq!(payloads(&udp4b), Vec::<String>::new(), "{}", out.describe());
    assert_eq!(payloads(&udp9), ["udp-slash105-in"], "{}", out.describe());
    assert_eq!(proxy.bytes(), bytes, "{}", out.describe());
}

/// A TCP listener inside a network namespace, collecting what each connection sent.
struct NsTcpSink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl NsTcpSink {
    fn bind(ns: &NetNs, addr: &str) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let l = ns.inside(move || TcpListener::bind(addr)).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let (got, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (g, s) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let g = g.clone();
                        std::thread::spawn(move || {
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                            let mut text = String::new();
                            let _ = c.read_to_string(&mut text);
                            g.lock().unwrap().push(text);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        NsTcpSink { addr, got, stop }
    }

    fn got(&self) -> Vec<String> {
        let mut g = self.got.lock().unwrap().clone();
        g.sort();
        g
    }
}

impl Drop for NsTcpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Beyond loopback, every packet is judged twice: by the sock_addr hook at the connect or
/// send, and by the egress gate (`egress_rules`: the same branch-free rule walk, on the
/// packet's own destination, type and protocol). TCP, MPTCP, UDP sent and connected, IPv4,
/// v4-mapped and IPv6, to peers in a namespace the test creates, allowed by a proxy (a TCP-only
/// /128 host rule with a port), a v6 /64, `0.0.0.0/0` (/96) and `::/0` with ports: everything
/// arrives, and the gate drops nothing (no `egress-packet` event); UDP to the proxy and
/// v4-mapped UDP to the `::/0` rule's port are refused at the send, and are the run's only
/// leaks. Held.
#[test]
fn allowed_traffic_beyond_loopback_passes_the_egress_gate() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let ns = match NetNs::create(&["10.234.0.1/24"], &["10.234.0.2/24"]) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let (host_if, ns_if) = ns.veth().map(|(h, n)| (h.to_string(), n.to_string())).unwrap();
    // A ULA pair on the test's own veth (no DAD: usable at once).
    ip(&["addr", "add", "fd34:34::1/64", "dev", &host_if, "nodad"]);
    ip(&["netns", "exec", ns.name(), "ip", "addr", "add", "fd34:34::2/64", "dev", &ns_if, "nodad"]);
    let tcp4 = NsTcpSink::bind(&ns, "10.234.0.2:0");
    let tcp6 = NsTcpSink::bind(&ns, "[fd34:34::2]:0");
    let udp4 = ns.udp_sink("10.234.0.2");
    let udp6 = ns.udp_sink("[fd34:34::2]");
    let (tp4, tp6) = (tcp4.addr.port(), tcp6.addr.port());
    let (up4, up6) = (udp4.addr().port(), udp6.addr().port());
    let opts: Vec<String> = [
        "--proxy".to_string(),
        format!("10.234.0.2:{tp4}"),
        "--allow".into(),
        format!("[fd34:34::/64]:{tp6}"),
        "--allow".into(),
        format!("0.0.0.0/0:{up4}"),
        "--allow".into(),
        format!("[::/0]:{up6}"),
    ]
    .into();
    use Expect::{Pass, Refuse};
    let probes = [
        Probe::new("tcp-v4", "c", 2, "stream", 0, "10.234.0.2", tp4, Pass),
        Probe::new("tcp-mapped", "c", 10, "stream", 0, "::ffff:10.234.0.2", tp4, Pass),
        Probe::new("mptcp-v4", "c", 2, "stream", 262, "10.234.0.2", tp4, Pass),
        Probe::new("tcp-v6", "c", 10, "stream", 0, "fd34:34::2", tp6, Pass),
        Probe::new("mptcp-v6", "c", 10, "stream", 262, "fd34:34::2", tp6, Pass),
        Probe::new("udp-v4", "s", 2, "dgram", 0, "10.234.0.2", up4, Pass),
        Probe::new("udp-mapped", "s", 10, "dgram", 0, "::ffff:10.234.0.2", up4, Pass),
        Probe::new("udp-v4-connected", "c", 2, "dgram", 17, "10.234.0.2", up4, Pass),
        Probe::new("udp-v6", "s", 10, "dgram", 0, "fd34:34::2", up6, Pass),
        Probe::new("udp-v6-connected", "c", 10, "dgram", 0, "fd34:34::2", up6, Pass),
        Probe::new(
            "udp-to-tcp-rule",
            "s",
            2,
            "dgram",
            0,
            "10.234.0.2",
            tp4,
            Refuse("sendmsg", Some("direct-udp")),
        ),
        Probe::new(
            "udp-mapped-to-v6-rule",
            "s",
            10,
            "dgram",
            0,
            "::ffff:10.234.0.2",
            up6,
            Refuse("sendmsg", Some("direct-udp")),
        ),
    ];
    let out = uring_run(&opts, &probes);
    let wrong = judge(&out, &probes);
    assert!(
        wrong.is_empty(),
        "the kernel layer judged against the policy:\n{}\n{}",
        wrong.join("\n"),
        out.describe()
    );
    let d = || out.describe();
    assert!(wait_until(Duration::from_secs(5), || tcp4.got().len() == 3 && tcp6.got().len() == 2), "{}", d());
    assert!(udp4.wait_datagrams(3, Duration::from_secs(5)), "{}", d());
    assert!(udp6.wait_datagrams(2, Duration::from_secs(5)), "{}", d());
    sockstrace_tests::settle();
    assert_eq!(tcp4.got(), ["mptcp-v4", "tcp-mapped", "tcp-v4"], "{}", d());
    assert_eq!(tcp6.got(), ["mptcp-v6", "tcp-v6"], "{}", d());
    let mut u4: Vec<String> =
        udp4.payloads().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    u4.sort();
    assert_eq!(u4, ["udp-mapped", "udp-v4", "udp-v4-connected"], "{}", d());
    assert_eq!(udp6.datagrams(), 2, "{}", d());
    let egress = out.events_where(|e| e.s("reason") == "egress-packet");
    assert!(egress.is_empty(), "the egress gate refused allowed traffic: {egress:?}\n{}", d());
    assert_eq!(out.summary_count("leaks"), 2, "{}", d());
}

/// A run takes no exemptions: its configuration file may name `audit`'s (`exempt-user`,
/// `exempt-exe`, `exempt-cgroup`: here the program's user, its executable and the root cgroup,
/// all of which would exempt it in an audit), and the run's programs (`EXEMPTIONS` 0, nothing
/// in `Config::exempt`) still refuse and report the program's io_uring datagram to a
/// destination nothing allows, while allowing the one a rule allows. Held.
#[test]
fn a_run_takes_no_exemptions_from_its_configuration() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let allowed = UdpSink::bind("127.0.0.2");
    let forbidden = UdpSink::bind("127.0.0.3");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sockstrace.toml");
    std::fs::write(
        &config,
        format!(
            "exempt-user = [\"nobody\", \"root\"]\nexempt-exe = [\"{}\"]\nexempt-cgroup = [\"/\"]\n",
            attacker().display()
        ),
    )
    .unwrap();
    let probes = [
        Probe::new("allowed", "s", 2, "dgram", 0, "127.0.0.2", allowed.addr().port(), Expect::Pass),
        Probe::new(
            "forbidden",
            "s",
            10,
            "dgram",
            0,
            "::ffff:127.0.0.3",
            forbidden.addr().port(),
            Expect::Refuse("sendmsg", Some("direct-udp")),
        ),
    ];
    let opts = vec!["--config".to_string(), config.display().to_string(), "--allow".into(), allowed.dst()];
    let out = uring_run(&opts, &probes);
    let wrong = judge(&out, &probes);
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), out.describe());
    assert!(allowed.wait_datagrams(1, Duration::from_secs(5)), "{}", out.describe());
    forbidden.assert_nothing_arrived(&out.describe());
}

/// A Python client of a connected UDP socket through the proxy (`--on-leak socksify`): the
/// supervisor connects the program's socket to its own shim on loopback, which the kernel's
/// connect hook must let through (`own_shim`: the socket's own `UDP_PEERS` entry counts as a
/// matched rule); then a datagram to the shim itself, addressed, on the same socket.
const PY_CONNECTED: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
c = socket.socket(fam, socket.SOCK_DGRAM)
c.settimeout(5)
try:
    c.connect((sys.argv[1], int(sys.argv[2])))
    c.send(b'shim')
    print('echo', c.recv(100).decode(), flush=True)
except OSError as e:
    print('refused', e.errno, flush=True)
"#;

/// Found, and closed: the rule walk's step once wrote `matched` at every rule, clearing the
/// match `own_shim` set before the walk, so a UDP socket's connect to its own shim is judged a leak
/// whenever a rule exists that does not match it (always: the proxy's TCP-only rule). The
/// supervisor's connect of the program's UDP socket to its shim is refused (EPERM, a kernel
/// event `connect4`/`connect6`, `performed_by_supervisor`, action `blocked`, reported as
/// `udp-connect-refused`), the program's `connect` fails with EPERM, and the report says the
/// flow was `socksified`. Now the step only ors its match in, and the sock_addr hooks ask
/// the shim and the rules apart (`own_shim(..) || rules_allow(..)`). Reproduce: `sockstrace run --proxy DANTE --on-leak socksify -- python3 -c 'connect a UDP
/// socket to 127.0.0.2:ECHO, send, recv'` as root: `refused 1`.
#[test]
fn a_socksified_udp_socket_reaches_its_own_shim() {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    for host in ["127.0.0.2", "::1"] {
        let echo =
            std::net::UdpSocket::bind(format!("{}:0", if host.contains(':') { "[::1]" } else { host }))
                .expect("echo socket");
        echo.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let echo_thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = echo.recv_from(&mut buf) {
                        let _ = echo.send_to(&buf[..n], from);
                    }
                }
            })
        };
        let out = Trace::new()
            .proxy(dante.addr)
            .on_leak("socksify")
            .timeout(T)
            .program(["/usr/bin/python3", "-c", PY_CONNECTED, host, &echo_port.to_string()])
            .run();
        stop.store(true, Ordering::Relaxed);
        let _ = echo_thread.join();
        let refused: Vec<_> = out
            .events_where(|e| e.s("source") == "kernel" && e.s("action") == "blocked")
            .iter()
            .map(|e| e.json().to_string())
            .collect();
        assert!(
            out.stdout.lines().any(|l| l == "echo shim"),
            "{host}: the connected UDP socket got no echo through the proxy (program: {:?}); the \
             kernel refused: {refused:?}\n{}",
            out.stdout.trim(),
            out.describe()
        );
        assert!(refused.is_empty(), "{host}: the kernel refused the socket's own shim: {refused:?}");
        out.assert_code(0);
    }
}

/// An IPv6 UDP socket bound to, sending to and connected to v4-mapped addresses: every call
/// runs an IPv4 hook (bind4, sendmsg4, connect4) on an `inet6` socket, whose facts
/// `sock_addr_facts` records from the packed word (family bit, hook, leak and refuse bits).
const PY_FACTS: &str = r#"
import socket, sys
p = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('::ffff:127.0.0.9', 0))
s.sendto(b'a', ('::ffff:127.0.0.2', p))
s.sendto(b'b', ('::ffff:127.0.0.2', p))
try:
    s.sendto(b'c', ('::ffff:127.0.0.3', p))
except OSError as e:
    print('refused', e.errno, flush=True)
s.connect(('::ffff:127.0.0.2', p))
s.send(b'd')
print('local', s.getsockname()[1], flush=True)
"#;

/// The socket's facts as the report shows them (the `kernel` object of its last event, the
/// connect): counters, source, destination and creator, as the hooks recorded them through
/// `sock_addr_facts` and `sock_addr_source`. Blocking: two sends and a connect counted, the
/// refused send not (the supervisor never performed it), no leak; the bound v4-mapped source in
/// IPv4 form; the program as the creator. Logging (`--on-leak log`, the kernel observing):
/// the forbidden send is performed, and the kernel counts it as a send and a leak, not as
/// denied. Held.
#[test]
fn a_sockets_facts_count_what_its_hooks_saw() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    for mode in ["block", "log"] {
        let sink = UdpSink::bind("127.0.0.2");
        let forbidden = UdpSink::from_socket(
            std::net::UdpSocket::bind(format!("127.0.0.3:{}", sink.port())).expect("a sink on the same port"),
        );
        let out = Trace::new()
            .allow(&sink.dst())
            .on_leak(mode)
            .timeout(T)
            .program(["/usr/bin/python3", "-c", PY_FACTS, &sink.port()])
            .run();
        out.assert_code(0);
        let d = || out.describe();
        let local = out.stdout.lines().find_map(|l| l.strip_prefix("local ")).expect("the local port").trim();
        let connect = out.the_event("the connect", |e| e.s("syscall") == "connect");
        let k = connect
            .json()
            .get("kernel")
            .filter(|k| !k.is_null())
            .unwrap_or_else(|| panic!("no facts\n{}", d()));
        let n = |key: &str| k.get(key).and_then(|v| v.as_i64());
        let (sends, leaks) = if mode == "block" { (2, 0) } else { (3, 1) };
        assert_eq!(
            (n("sends"), n("connects"), n("leaks"), n("denied")),
            (Some(sends), Some(1), Some(leaks), Some(0)),
            "{mode}: {k}\n{}",
            d()
        );
        assert_eq!(
            k.get("local").and_then(|v| v.as_str()),
            Some(format!("127.0.0.9:{local}").as_str()),
            "{k}"
        );
        assert_eq!(k.get("dst").and_then(|v| v.as_str()), Some(sink.dst().as_str()), "{k}");
        assert_eq!(
            (n("pid"), k.get("comm").and_then(|c| c.as_str())),
            (connect.i("pid"), Some("python3")),
            "{k}"
        );
        assert!(sink.wait_datagrams(3, Duration::from_secs(5)), "{}", d());
        if mode == "block" {
            assert!(out.stdout.contains(&format!("refused {}", libc::EPERM)), "{}", d());
            forbidden.assert_nothing_arrived(&d());
        } else {
            assert!(forbidden.wait_datagrams(1, Duration::from_secs(5)), "{}", d());
        }
    }
}
