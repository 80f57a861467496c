//! Red team against two changes: the kernel layer's rule walk asked through one global
//! function (aeca94a, 364fff3: the sock_addr hooks judge `own_shim(..) || rules_allow(hi, lo,
//! RuleQuery::pack_socket())`, the egress gate asks the same `rules_allow`, a leak's reason is
//! `remote_leak_reason(transport, port)`), and the report file kept when sockstrace may only
//! write it (364fff3: read back at the end through `/proc/self/fd/N`, restored from the private
//! copy by a new file renamed over the path).
//!
//! Attackers: `tests/clients/r34_uring.c` (everything through io_uring under `--allow-io-uring`,
//! so that the kernel layer judges alone) and `tests/clients/r35_report.c` (a program of
//! sockstrace's own user that leaks once and then works on the report file, its directory, the
//! file system it is on, or its supervisor's file size limit). Ground truth: the sinks, the
//! program's errno, and the report as a reader finds it at its path after the run.
//!
//! Held (kernel): the packed socket word cannot carry a type or protocol the walk misreads
//! (the kernel itself refuses every inet type but stream, datagram and raw, protocols above
//! 262 and protocols of another type; ping and UDP-Lite sockets are refused at creation as
//! `direct-other`); `--allow-loopback` never covers DNS in the kernel, on loopback, `0.0.0.0`,
//! `::ffff:0.0.0.0` or `::`, and the reasons name the transport (`dns-udp`, `dns-tcp`, MPTCP as
//! TCP); a full table of 64 rules from a configuration file is walked to its last rule by the
//! sock_addr hooks and the egress gate, and a 65th refuses the run under `--allow-io-uring`.
//!
//! Held (report): a write-only report blanked in place and left unreadable, a report truncated
//! while it is written, a FIFO put at its path, and a descendant that rewrites it after the
//! main program ended are all caught and restored.
//!
//! Found, and closed since (each test failed before its fix): the restore trusted the directory
//! it opened at the start and the path as resolved then, so a program that moved the report's
//! directory aside, or re-pointed a link on the report's path, left a forged report at the path
//! (sockstrace said "restored", or nothing) -- the end check now follows the path as given, and
//! a report restored elsewhere fails the run, saying where it is; a restore that failed (an
//! unwritable directory, a directory at the path) ended the run with the program's status, the
//! forgery standing -- it now fails the run (125) with its real cause; a full file system (the
//! private copy is on the same one) lost the leak's event and the summary without a word -- a
//! failed write is now said and fails the run unless the restore mends it; and the program
//! could set its supervisor's `RLIMIT_FSIZE` (prlimit, same user: no Landlock scope covers it),
//! killing it with SIGXFSZ, or cutting a write of the private copy short so that the restore
//! glued the leak's event to a fragment -- the guard filter refuses `prlimit64` on another
//! process, SIGXFSZ no longer kills the supervisor, and both files are written at its own
//! offsets, the copy finished once it can be.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::paths::client_uring;
use sockstrace_tests::report_run::{Ran, Reader};
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{client, kernel_available, skip, Outcome, TcpSink, Trace, UdpSink};

const T: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Change 1: the kernel layer judging alone (io_uring)
// ---------------------------------------------------------------------------------------------

fn attacker() -> PathBuf {
    client_uring("r34_uring", None, &[]).unwrap_or_else(|e| panic!("building r34_uring: {e}"))
}

/// A run of the io_uring attacker as nobody with `--allow-io-uring` (nothing it does passes
/// the seccomp layer), through `trace` (a wrapper, options).
fn uring_run(trace: Trace, probes: &[Probe]) -> Outcome {
    let mut argv = vec![attacker().to_string_lossy().into_owned()];
    argv.extend(probes.iter().map(Probe::spec));
    let out = trace.opts(["--user", "nobody", "--allow-io-uring"]).timeout(T).program(argv).run();
    out.assert_code(0);
    let setup = out.events_where(|e| e.s("syscall") == "io_uring_setup");
    assert!(
        setup.iter().all(|e| e.is_allowed()),
        "io_uring was not left to the kernel layer\n{}",
        out.describe()
    );
    assert!(out.kernel_layer().starts_with("on"), "no kernel layer\n{}", out.describe());
    out
}

/// What the kernel (layer) must do with one probe.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Let it through: "TAG: ok".
    Pass,
    /// Refused with EPERM at `step` (`socket`, `connect`, `sendmsg`) by the kernel layer, which
    /// reports a kernel leak of `reason`: naming the destination for connects and sends, the
    /// protocol for sockets.
    Refuse(&'static str, &'static str),
    /// Refused by the kernel itself at `socket()` with this errno (no hook ran).
    Errno(i32),
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

#[allow(clippy::too_many_arguments)]
fn probe(
    tag: &'static str,
    op: &'static str,
    family: u32,
    sock_type: &'static str,
    protocol: u32,
    host: &str,
    port: u16,
    expect: Expect,
) -> Probe {
    Probe { tag, op, family, sock_type, protocol, host: host.to_string(), port, expect }
}

impl Probe {
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
            Expect::Errno(errno) => format!("socket errno={errno}"),
        };
        if line != want {
            wrong.push(format!("{}: {line:?}, expected {want:?} ({})", p.tag, p.spec()));
        }
        if let Expect::Refuse(step, reason) = p.expect {
            let seen = kernel.iter().any(|e| {
                e.s("reason") == reason
                    && e.s("syscall") == step
                    && if step == "socket" { e.i("cookie").is_some() } else { e.s("dst") == p.dst() }
            });
            if !seen {
                wrong.push(format!("{}: no kernel {step} leak {reason} ({}) in the report", p.tag, p.dst()));
            }
        }
    }
    wrong
}

/// A TCP listener inside a network namespace, collecting what each connection sent.
struct NsTcpSink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl NsTcpSink {
    fn bind(ns: &NetNs, addr: &str) -> Self {
        use std::io::Read as _;
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

fn sorted_payloads(s: &UdpSink) -> Vec<String> {
    let mut p: Vec<String> = s.payloads().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    p.sort();
    p
}

/// The packed socket word (`RuleQuery::pack_socket`: port, type and protocol, 16 bits each)
/// and the egress gate's (`sock_type & 0xff`) cannot be fed a value the walk misreads: the
/// kernel refuses every other inet socket type (SOCK_SEQPACKET, SOCK_RDM, SOCK_DCCP 6:
/// `ESOCKTNOSUPPORT`; SOCK_PACKET 10 is made a packet socket, `EPERM` without `CAP_NET_RAW`), a protocol of another type (stream/UDP, datagram/TCP,
/// datagram/MPTCP 262, stream/UDP-Lite: `EPROTONOSUPPORT`) and any protocol at or above 263,
/// high bits included (`EINVAL`), before any hook; ICMP "ping" sockets (allowed here by the
/// namespace's `ping_group_range`, as the control run without sockstrace shows) and UDP-Lite
/// reach the sock_create hook and are refused there as `direct-other`, naming their protocol.
/// TCP and UDP with protocol 0 or their own number pass to destinations an any-transport rule
/// allows, and nothing else arrives. Held.
#[test]
fn socket_kinds_outside_tcp_and_udp_never_reach_the_rule_walk() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let ns = match NetNs::bare() {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace: {e}"),
    };
    ns.sysctl("net/ipv4/ping_group_range", "0 2147483647").expect("ping_group_range in the namespace");
    // The control: outside sockstrace, nobody may make ping sockets in this namespace.
    let control = ns.exec([
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        attacker().to_str().unwrap(),
        "ping4:k:2:dgram:1:0:-",
        "ping6:k:10:dgram:58:0:-",
    ]);
    assert!(
        control.stdout.contains("ping4: ok") && control.stdout.contains("ping6: ok"),
        "ping sockets cannot be made here at all: {}",
        control.stdout
    );
    let udp = ns.udp_sink("127.0.0.1");
    let tcp = NsTcpSink::bind(&ns, "127.0.0.1:0");
    let (up, tp) = (udp.addr().port(), tcp.addr.port());
    use Expect::{Errno, Pass, Refuse};
    let h = "127.0.0.1";
    let probes = [
        probe("tcp0", "c", 2, "stream", 0, h, tp, Pass),
        probe("tcp6", "c", 2, "stream", 6, h, tp, Pass),
        probe("udp0", "s", 2, "dgram", 0, h, up, Pass),
        probe("udp17", "s", 2, "dgram", 17, h, up, Pass),
        probe("ping4", "s", 2, "dgram", 1, h, up, Refuse("socket", "direct-other")),
        probe("ping6", "s", 10, "dgram", 58, "::1", up, Refuse("socket", "direct-other")),
        probe("ping4-connect", "c", 2, "dgram", 1, h, up, Refuse("socket", "direct-other")),
        probe("udplite", "s", 2, "dgram", 136, h, up, Refuse("socket", "direct-other")),
        probe("udplite6", "s", 10, "dgram", 136, "::ffff:127.0.0.1", up, Refuse("socket", "direct-other")),
        probe("seqpacket", "c", 2, "seqpacket", 0, h, tp, Errno(libc::ESOCKTNOSUPPORT)),
        probe("rdm", "c", 2, "4", 0, h, tp, Errno(libc::ESOCKTNOSUPPORT)),
        probe("dccp", "c", 2, "6", 0, h, tp, Errno(libc::ESOCKTNOSUPPORT)),
        // The kernel makes it a packet socket (`AF_PACKET`), which needs `CAP_NET_RAW`.
        probe("sock-packet", "s", 2, "10", 0, h, up, Errno(libc::EPERM)),
        probe("seqpacket6", "c", 10, "seqpacket", 0, "::1", tp, Errno(libc::ESOCKTNOSUPPORT)),
        probe("stream-udp", "c", 2, "stream", 17, h, tp, Errno(libc::EPROTONOSUPPORT)),
        probe("dgram-tcp", "s", 2, "dgram", 6, h, up, Errno(libc::EPROTONOSUPPORT)),
        probe("dgram-mptcp", "s", 2, "dgram", 262, h, up, Errno(libc::EPROTONOSUPPORT)),
        probe("stream-udplite", "c", 2, "stream", 136, h, tp, Errno(libc::EPROTONOSUPPORT)),
        probe("dgram-255", "s", 2, "dgram", 255, h, up, Errno(libc::EPROTONOSUPPORT)),
        probe("stream-263", "c", 2, "stream", 263, h, tp, Errno(libc::EINVAL)),
        probe("stream-hibits", "c", 2, "stream", 0x1_0006, h, tp, Errno(libc::EINVAL)),
        probe("dgram-hibits", "s", 2, "dgram", 0x1_0011, h, up, Errno(libc::EINVAL)),
    ];
    let trace =
        Trace::new().wrapper(["ip", "netns", "exec", ns.name()]).opts(["--allow", h, "--allow", "::1"]);
    let out = uring_run(trace, &probes);
    let wrong = judge(&out, &probes);
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), out.describe());
    let protocols: Vec<&str> = out
        .events_where(|e| e.s("syscall") == "socket" && e.s("source") == "kernel")
        .iter()
        .map(|e| e.s("protocol"))
        .collect();
    assert_eq!(protocols, ["icmp", "icmpv6", "icmp", "udplite", "udplite"], "{}", out.describe());
    assert!(udp.wait_datagrams(2, Duration::from_secs(5)), "{}", out.describe());
    assert!(wait_until(Duration::from_secs(5), || tcp.got().len() == 2), "{}", out.describe());
    sockstrace_tests::settle();
    assert_eq!(sorted_payloads(&udp), ["udp0", "udp17"], "{}", out.describe());
    assert_eq!(tcp.got(), ["tcp0", "tcp6"], "{}", out.describe());
}

/// `--allow-loopback` with the kernel judging alone: DNS (port 53) is never covered, on
/// loopback or on any spelling of the unspecified address (`0.0.0.0`, `::ffff:0.0.0.0` on an
/// IPv6 socket, `::`), over UDP sent or connected, TCP or MPTCP; each refusal is reported with
/// the transport's DNS reason (`dns-udp`, `dns-tcp`: `remote_leak_reason` of the socket's
/// transport and port) and the destination as the policy writes it (v4-mapped in IPv4 form).
/// Every unspecified spelling of another port is the local host and passes (arriving on
/// 127.0.0.1 and ::1). Held.
#[test]
fn allow_loopback_never_lets_dns_through_the_kernel() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let udp4 = UdpSink::bind("127.0.0.1");
    let udp6 = UdpSink::bind("::1");
    let tcp4 = TcpSink::bind("127.0.0.1");
    let tcp6 = TcpSink::bind("::1");
    let port = |s: String| s.parse::<u16>().unwrap();
    let (u4, u6, t4, t6) = (port(udp4.port()), port(udp6.port()), port(tcp4.port()), port(tcp6.port()));
    use Expect::{Pass, Refuse};
    let probes = [
        probe("dns-udp4", "s", 2, "dgram", 0, "127.0.0.1", 53, Refuse("sendmsg", "dns-udp")),
        probe("dns-tcp4", "c", 2, "stream", 0, "127.0.0.1", 53, Refuse("connect", "dns-tcp")),
        probe("dns-mptcp4", "c", 2, "stream", 262, "127.0.0.53", 53, Refuse("connect", "dns-tcp")),
        probe("dns-udp-any", "s", 2, "dgram", 0, "0.0.0.0", 53, Refuse("sendmsg", "dns-udp")),
        probe("dns-udp-mapped-any", "s", 10, "dgram", 0, "::ffff:0.0.0.0", 53, Refuse("sendmsg", "dns-udp")),
        probe("dns-tcp-mapped-any", "c", 10, "stream", 6, "::ffff:0.0.0.0", 53, Refuse("connect", "dns-tcp")),
        probe("dns-udp-any6", "s", 10, "dgram", 17, "::", 53, Refuse("sendmsg", "dns-udp")),
        probe("dns-tcp-any6", "c", 10, "stream", 0, "::", 53, Refuse("connect", "dns-tcp")),
        probe("dns-udp6", "s", 10, "dgram", 0, "::1", 53, Refuse("sendmsg", "dns-udp")),
        probe("dns-udp-connect-any", "c", 2, "dgram", 0, "0.0.0.0", 53, Refuse("connect", "dns-udp")),
        probe("udp-any", "s", 2, "dgram", 0, "0.0.0.0", u4, Pass),
        probe("udp-mapped-any", "s", 10, "dgram", 0, "::ffff:0.0.0.0", u4, Pass),
        probe("udp-connect-mapped-any", "c", 10, "dgram", 0, "::ffff:0.0.0.0", u4, Pass),
        probe("udp-any6", "s", 10, "dgram", 0, "::", u6, Pass),
        probe("tcp-mapped-any", "c", 10, "stream", 0, "::ffff:0.0.0.0", t4, Pass),
        probe("mptcp-any", "c", 2, "stream", 262, "0.0.0.0", t4, Pass),
        probe("tcp-any6", "c", 10, "stream", 0, "::", t6, Pass),
    ];
    let out = uring_run(Trace::new().opts(["--allow-loopback"]), &probes);
    let wrong = judge(&out, &probes);
    assert!(
        wrong.is_empty(),
        "the kernel layer judged against the policy:\n{}\n{}",
        wrong.join("\n"),
        out.describe()
    );
    let d = || out.describe();
    assert!(udp4.wait_datagrams(3, Duration::from_secs(5)), "{}", d());
    assert!(udp6.wait_datagrams(1, Duration::from_secs(5)), "{}", d());
    assert!(tcp4.wait_bytes("tcp-mapped-any".len() + "mptcp-any".len(), Duration::from_secs(5)), "{}", d());
    assert!(tcp6.wait_bytes("tcp-any6".len(), Duration::from_secs(5)), "{}", d());
    sockstrace_tests::settle();
    assert_eq!(sorted_payloads(&udp4), ["udp-any", "udp-connect-mapped-any", "udp-mapped-any"], "{}", d());
    assert_eq!(sorted_payloads(&udp6), ["udp-any6"], "{}", d());
    assert_eq!(out.summary_count("leaks"), 10, "{}", d());
}

/// A configuration file (`--config`) that fills the kernel's rule table: one proxy (rule 0, a
/// TCP-only host rule) and 63 `allow` entries, the last of them the only one that names the
/// namespace's second address. The kernel layer alone (io_uring), beyond loopback, so that
/// every packet is judged again by the egress gate on the socket type and protocol it reads:
/// TCP and MPTCP reach the proxy, UDP does not; UDP (IPv4 and v4-mapped), TCP and DNS reach
/// the address of the 64th rule; the namespace's first address on other ports is refused at
/// the connect or send and nothing arrives there; no packet is dropped by the gate. A 65th rule
/// is more than the kernel holds: under `--allow-io-uring` the run is refused before the
/// program starts. Held.
#[test]
fn a_full_rule_table_from_a_configuration_file_is_walked_to_its_last_rule() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let ns = match NetNs::create(&["10.235.0.1/24"], &["10.235.0.2/24", "10.235.0.3/24"]) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let proxy = NsTcpSink::bind(&ns, "10.235.0.2:0");
    let other_tcp = NsTcpSink::bind(&ns, "10.235.0.2:0");
    let other_udp = ns.udp_sink("10.235.0.2");
    let last_tcp = NsTcpSink::bind(&ns, "10.235.0.3:0");
    let last_udp = ns.udp_sink("10.235.0.3");
    let (pp, otp, oup) = (proxy.addr.port(), other_tcp.addr.port(), other_udp.addr().port());
    let (ltp, lup) = (last_tcp.addr.port(), last_udp.addr().port());
    let dir = tempfile::tempdir().unwrap();
    let config = |fillers: usize| {
        let mut allow: Vec<String> =
            (0..fillers).map(|i| format!("\"192.0.2.{}:{}\"", i + 1, 1000 + i)).collect();
        allow.push("\"10.235.0.3\"".into());
        let path = dir.path().join(format!("sockstrace-{fillers}.toml"));
        std::fs::write(&path, format!("proxy = [\"10.235.0.2:{pp}\"]\nallow = [{}]\n", allow.join(", ")))
            .unwrap();
        path.display().to_string()
    };
    use Expect::{Pass, Refuse};
    let probes = [
        probe("tcp-proxy", "c", 2, "stream", 0, "10.235.0.2", pp, Pass),
        probe("mptcp-proxy", "c", 10, "stream", 262, "::ffff:10.235.0.2", pp, Pass),
        probe("udp-proxy", "s", 2, "dgram", 0, "10.235.0.2", pp, Refuse("sendmsg", "direct-udp")),
        probe("tcp-other", "c", 2, "stream", 0, "10.235.0.2", otp, Refuse("connect", "direct-tcp")),
        probe("udp-other", "s", 10, "dgram", 0, "::ffff:10.235.0.2", oup, Refuse("sendmsg", "direct-udp")),
        probe("udp-last", "s", 2, "dgram", 0, "10.235.0.3", lup, Pass),
        probe("udp-last-mapped", "s", 10, "dgram", 17, "::ffff:10.235.0.3", lup, Pass),
        probe("udp-last-connected", "c", 2, "dgram", 0, "10.235.0.3", lup, Pass),
        probe("tcp-last", "c", 2, "stream", 0, "10.235.0.3", ltp, Pass),
        probe("dns-last", "s", 2, "dgram", 0, "10.235.0.3", 53, Pass),
    ];
    let trace = Trace::new().opts(["--config".to_string(), config(62)]);
    let out = uring_run(trace, &probes);
    let wrong = judge(&out, &probes);
    assert!(
        wrong.is_empty(),
        "the kernel layer judged against the policy:\n{}\n{}",
        wrong.join("\n"),
        out.describe()
    );
    let d = || out.describe();
    assert!(out.stderr.contains("configuration from"), "the file was not read\n{}", d());
    assert!(
        wait_until(Duration::from_secs(5), || proxy.got().len() == 2 && !last_tcp.got().is_empty()),
        "{}",
        d()
    );
    assert!(last_udp.wait_datagrams(3, Duration::from_secs(5)), "{}", d());
    sockstrace_tests::settle();
    assert_eq!(proxy.got(), ["mptcp-proxy", "tcp-proxy"], "{}", d());
    assert_eq!(last_tcp.got(), ["tcp-last"], "{}", d());
    assert_eq!(sorted_payloads(&last_udp), ["udp-last", "udp-last-connected", "udp-last-mapped"], "{}", d());
    assert!(other_tcp.got().is_empty(), "{}", d());
    other_udp.assert_nothing_arrived(&d());
    let egress = out.events_where(|e| e.s("reason") == "egress-packet");
    assert!(egress.is_empty(), "the egress gate refused allowed traffic: {egress:?}\n{}", d());
    assert_eq!(out.summary_count("leaks"), 3, "{}", d());

    // One rule more than the kernel holds.
    let trace = Trace::new().opts(["--config".to_string(), config(63), "--user".into(), "nobody".into()]);
    let out = trace.opts(["--allow-io-uring"]).timeout(T).program([attacker().to_str().unwrap()]).run();
    assert_ne!(out.code(), 0, "{}", out.describe());
    assert!(out.stderr.contains("--allow-io-uring needs the kernel layer"), "{}", out.describe());
    assert!(!out.stdout.contains("actor:"), "the program ran\n{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// Change 2: the report file, attacked by a program of sockstrace's own user
// ---------------------------------------------------------------------------------------------

/// A scratch tree: `base` (root's, 755) holding `dir` (nobody's), where the report goes.
struct Scratch {
    _base: tempfile::TempDir,
    dir: PathBuf,
    copies: Copies,
    program: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let base = tempfile::Builder::new().prefix("sockstrace-r35").tempdir().expect("tempdir");
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = base.path().join("reports");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let mut copies = Copies::new();
        let program = copies.add(&client("r35_report"), "r35_report");
        Scratch { _base: base, dir, copies, program }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `sockstrace run --report REPORT -- r35_report STEPS...`, sockstrace and the program both
    /// as nobody (the program is of sockstrace's own user), stdout and stderr as pipes.
    fn run(&self, report: &str, steps: &[String]) -> Ran {
        self.run_program(&self.program, report, steps)
    }

    /// [`Scratch::run`] with another build of the program.
    fn run_program(&self, program: &Path, report: &str, steps: &[String]) -> Ran {
        let child = self.spawn(program, report, steps, Stdio::piped());
        Ran::collect(child.wait_with_output().expect("run sockstrace"), report, Reader::Test)
    }

    /// The run, started: stdout as `stdout` (a pipe, or one the test reads as it goes).
    fn spawn(&self, program: &Path, report: &str, steps: &[String], stdout: Stdio) -> std::process::Child {
        let n = sockstrace_tests::unpriv::NOBODY;
        Command::new("setpriv")
            .args([format!("--reuid={n}"), format!("--regid={n}"), "--clear-groups".into()])
            .arg(&self.copies.sockstrace)
            .args(["run", "--report", report, "--"])
            .arg(program)
            .args(steps)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env("XDG_CONFIG_HOME", self.dir.join("no-config"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sockstrace")
    }
}

/// The bar (`Ran::leak_kept_or_said`), once stderr shows the leak was tried.
fn assert_kept_or_said(ran: &Ran, attack: &str) {
    ran.assert_leak_kept_or_said(attack, ran.stderr.contains("LEAK BLOCKED"));
}

fn leak_step(sink: &UdpSink) -> String {
    format!("leak:{}:{}", sink.host(), sink.port())
}

/// A forged report: one allowed event and a summary without leaks.
const FORGED: &str = r#"{"schema":1,"summary":{"leaks":0,"blocked":0,"events":0}}"#;

/// Found: the program moves the report's directory aside (`mv reports reports.old`, its own
/// directory), makes a new one at the old name and writes a forged report there. At the end
/// the path names another file; the restore writes our copy into the directory opened at the
/// start (now `reports.old`) and says "restored from sockstrace's own copy" (twice), the
/// summary there says `report_altered`, the exit status is 0, and the report at the path, the
/// one the user reads, is the forgery: no leak, `"leaks":0`. Reproduce (as one user):
/// `sockstrace run --report D/reports/r.jsonl -- sh -c 'LEAK; mv D/reports D/old; mkdir
/// D/reports; echo "{\"summary\":{\"leaks\":0}}" > D/reports/r.jsonl'`.
#[test]
fn a_report_whose_directory_was_moved_aside_is_not_said_restored_over_a_forgery() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let sub = s.dir.join("out");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::chown(&sub, Some(65534), Some(65534)).unwrap();
    let report = sub.join("r.jsonl").display().to_string();
    let ran = s.run(
        &report,
        &[
            leak_step(&sink),
            format!("mv:{}:{}", sub.display(), s.path("out.old")),
            format!("mkdir:{}", sub.display()),
            format!("write:{report}:{FORGED}"),
        ],
    );
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("write: ok"), "the program did not forge the report\n{}", ran.describe());
    assert_kept_or_said(&ran, "directory moved aside, forgery at the path");
}

/// Found: the report path is a link the user made (`r.jsonl -> real.jsonl`, theirs: not refused
/// as a foreign link). sockstrace resolves it once at the start and keeps the file it named;
/// the program writes a forged report beside it and re-points the link there (a new link
/// renamed over the old). At the end the kept file is intact: no warning at all, exit 0, and
/// the report at the path the user gave is the forgery. The same with any link on the path (a
/// `latest -> run-42` directory link). Reproduce: `ln -s real.jsonl r.jsonl; sockstrace run
/// --report r.jsonl -- sh -c 'LEAK; echo "{...leaks:0...}" > f.jsonl; ln -sfn f.jsonl r.jsonl'`.
#[test]
fn a_report_link_the_program_repoints_does_not_hide_the_leak() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let link = s.path("r.jsonl");
    let made = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ln", "-s", "real.jsonl", &link])
        .status()
        .expect("ln");
    assert!(made.success(), "the user's link");
    let forged = s.path("forged.jsonl");
    let ran = s.run(
        &link,
        &[leak_step(&sink), format!("write:{forged}:{FORGED}"), format!("relink:forged.jsonl:{link}")],
    );
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("relink: ok"), "the program did not re-point the link\n{}", ran.describe());
    assert_kept_or_said(&ran, "link re-pointed at a forgery");
}

/// Found: the program replaces the report by a forged one and makes its directory (its own)
/// unwritable. The restore cannot create its new file: stderr says "restoring it failed" (as
/// "no fresh name for the restored file", the EACCES lost), but the run still exits 0, the
/// summary with `report_altered` goes to the old file, unlinked, and the forgery stands at the
/// path with `"leaks":0`.
#[test]
fn a_forged_report_behind_an_unwritable_directory_fails_the_run() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ran = s.run(
        &report,
        &[
            leak_step(&sink),
            format!("rm:{report}"),
            format!("write:{report}:{FORGED}"),
            format!("chmod:555:{}", s.dir.display()),
        ],
    );
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("chmod: ok"), "the program did not lock the directory\n{}", ran.describe());
    assert_kept_or_said(&ran, "forgery behind an unwritable directory");
}

/// Found (weaker): the program puts a directory at the report's path. A file cannot be renamed
/// over a directory: "restoring it failed: Is a directory", and the run exits 0 with no report
/// at its path (the summary went to the unlinked file).
#[test]
fn a_directory_at_the_report_path_fails_the_run() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ran = s.run(&report, &[leak_step(&sink), format!("rm:{report}"), format!("mkdir:{report}")]);
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("mkdir: ok"), "{}", ran.describe());
    assert_kept_or_said(&ran, "directory at the path");
}

/// Unmounts a tmpfs the test mounted, also when it fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Found: the report is on a small file system (a 256 KiB tmpfs the test mounts, nobody's),
/// which the program fills with a file of its own and leaves full. The private copy is an
/// unnamed file in the report's own directory, on the same file system: the leak's line fails
/// in both, so they agree, and the end-of-run check finds the report intact. The report at its
/// path is empty (no leak, no summary), stderr has no word about it, and the run exits 0.
/// Reproduce: `sockstrace run --report /mnt/small/r.jsonl -- sh -c 'cat /dev/zero >
/// /mnt/small/fill; LEAK'`.
#[test]
fn a_full_file_system_does_not_silently_lose_the_leak() {
    if !sockstrace_tests::is_root() {
        skip!("mounting a tmpfs needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let mnt = s.dir.join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0755,uid=65534,gid=65534", "sockstrace-r35"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a tmpfs");
    let _umount = Mounted(mnt.clone());
    let report = mnt.join("r.jsonl").display().to_string();
    let fill = mnt.join("fill").display().to_string();
    let ran = s.run(&report, &[format!("fill:{fill}"), leak_step(&sink)]);
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("fill: ok"), "the program did not fill the file system\n{}", ran.describe());
    assert_kept_or_said(&ran, "full file system");
}

/// Was found: `prlimit` on a process of the same user needs no privilege and no Landlock scope
/// covers it. The program set its supervisor's soft `RLIMIT_FSIZE` to the report's size and
/// leaked: the supervisor died of SIGXFSZ at its summary, the report at its path empty. Now the
/// guard filter refuses `prlimit64` on another process with a new limit (`EPERM`), for both
/// ABIs; reading a limit, and setting one's own, still work.
#[test]
fn the_program_cannot_lower_its_supervisors_limits() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let mut s = Scratch::new();
    let m32 = sockstrace_tests::paths::client_build("r35_report", true, false)
        .unwrap_or_else(|e| panic!("building r35_report for i386: {e}"));
    let m32 = s.copies.add(&m32, "r35_report_m32");
    for (abi, program) in [("x86_64", s.program.clone()), ("i386", m32)] {
        let sink = UdpSink::bind("127.0.0.1");
        let report = s.path(&format!("r-{abi}.jsonl"));
        let ran = s.run_program(&program, &report, &[format!("fsize:{report}:0"), leak_step(&sink)]);
        sink.assert_nothing_arrived("the leak");
        let d = ran.describe();
        assert!(
            ran.stdout.contains(&format!("fsize: errno={}", libc::EPERM)),
            "{abi}: prlimit was not refused\n{d}"
        );
        assert_eq!(ran.signal, None, "{abi}: the supervisor was killed\n{d}");
        assert_eq!(ran.code, Some(0), "{abi}\n{d}");
        assert!(ran.stderr.contains("sockstrace: summary:"), "{abi}: no summary\n{d}");
        assert_eq!(ran.leak_lines(), 1, "{abi}\n{d}");
    }
}

/// Sets the soft `RLIMIT_FSIZE` of process `pid` (`None`: unlimited), as nobody, its user, from
/// outside its program's tree (root here may lack `CAP_SYS_RESOURCE`).
fn set_file_size_limit(pid: u32, soft: Option<u64>) {
    let n = sockstrace_tests::unpriv::NOBODY;
    let soft = soft.map_or("unlimited".to_string(), |s| s.to_string());
    let set = Command::new("setpriv")
        .args([format!("--reuid={n}"), format!("--regid={n}"), "--clear-groups".into()])
        .args(["prlimit", "--pid", &pid.to_string(), &format!("--fsize={soft}:")])
        .status()
        .expect("prlimit");
    assert!(set.success(), "prlimit --pid {pid} --fsize={soft}:");
}

/// The supervisor's file size limit lowered under it (by the user, or an administrator: the
/// program cannot any more) 100 bytes into the leak's event, and raised again before the end.
/// Was found (the program's prlimit then): the private copy took a partial line and the live
/// file did not; the copy, 100 bytes ahead, was "restored" over the report, the leak's event
/// glued to a fragment. Now both are written at sockstrace's own offsets, what the copy lacks
/// is finished once it can be, and the live file is restored from the copy: every line parses,
/// the leak's among them. And the supervisor is not killed by SIGXFSZ meanwhile.
#[test]
fn a_report_write_cut_short_by_a_file_size_limit_leaves_no_fragment() {
    use std::io::BufRead as _;
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let steps = ["sleep:400".to_string(), leak_step(&sink), "sleep:400".into()];
    let mut child = s.spawn(&s.program, &report, &steps, Stdio::piped());
    let pid = child.id();
    // The report exists before the program starts; its first event is the leak.
    assert!(wait_until(Duration::from_secs(20), || Path::new(&report).exists()), "no report file");
    set_file_size_limit(pid, Some(100));
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    while !seen.contains("leak: ") {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    set_file_size_limit(pid, None);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    let mut ran = Ran::collect(child.wait_with_output().expect("wait"), &report, Reader::Test);
    ran.stdout = seen + &rest;
    sink.assert_nothing_arrived("the leak");
    let d = ran.describe();
    assert!(ran.stdout.contains("leak: refused"), "the leak was not tried\n{d}");
    assert_eq!(ran.signal, None, "the supervisor was killed\n{d}");
    let text = ran.report.clone().unwrap_or_default();
    let unparsed: Vec<&str> =
        text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err()).collect();
    assert!(unparsed.is_empty(), "lines of the report that do not parse: {unparsed:?}\n{d}");
    assert_eq!(ran.leak_lines(), 1, "{d}");
    assert!(ran.stderr.contains("writing it failed"), "the cut write was not said\n{d}");
}

/// The report left write-only (`chmod 200`, as an earlier run's program may leave it): the
/// program blanks every byte in place (it can write, not read) and leaves it write-only, or
/// makes it read-only after blanking. Kept all the same: the read back through
/// `/proc/self/fd` fails (or differs), our copy is renamed over the path, the summary says
/// `report_altered` and `report_restored`, and the leak's line is back. Held.
#[test]
fn a_write_only_report_blanked_in_place_is_restored() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    for end_mode in ["200", "400"] {
        let sink = UdpSink::bind("127.0.0.1");
        let s = Scratch::new();
        let report = s.path("r.jsonl");
        std::fs::write(&report, "").unwrap();
        std::os::unix::fs::chown(&report, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o200)).unwrap();
        let ran = s.run(
            &report,
            &[leak_step(&sink), format!("blank:{report}"), format!("chmod:{end_mode}:{report}")],
        );
        sink.assert_nothing_arrived("the leak");
        let d = ran.describe();
        assert!(
            ran.stderr.contains("can be written but not read back"),
            "{end_mode}: not opened write-only\n{d}"
        );
        assert!(ran.stdout.contains("blank: ok") && ran.stdout.contains("chmod: ok"), "{end_mode}\n{d}");
        assert_eq!(ran.leak_lines(), 1, "{end_mode}: the leak's line was not restored\n{d}");
        assert!(ran.says_altered(), "{end_mode}\n{d}");
        assert_eq!(ran.code, Some(0), "{end_mode}\n{d}");
    }
}

/// The report truncated (twice) while sockstrace writes it, between two leaks: our writes go on
/// at their offset (a hole of zeros before them); at the end the sizes or bytes differ and the
/// copy is restored with both leaks. Held.
#[test]
fn a_report_truncated_while_it_is_written_is_restored() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ran = s.run(
        &report,
        &[leak_step(&sink), format!("trunc:{report}"), leak_step(&sink), format!("trunc:{report}")],
    );
    sink.assert_nothing_arrived("the leaks");
    assert_eq!(ran.leak_lines(), 2, "{}", ran.describe());
    assert!(ran.says_altered(), "{}", ran.describe());
}

/// A FIFO put at the report's path (a reader of it would block, or read what the program
/// writes): a file can be renamed over a FIFO, and the restore does. Held.
#[test]
fn a_fifo_at_the_report_path_is_replaced_by_the_report() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ran = s.run(&report, &[leak_step(&sink), format!("rm:{report}"), format!("mkfifo:{report}")]);
    sink.assert_nothing_arrived("the leak");
    assert!(ran.stdout.contains("mkfifo: ok"), "{}", ran.describe());
    assert!(Path::new(&report).is_file(), "{}", ran.describe());
    assert_eq!(ran.leak_lines(), 1, "{}", ran.describe());
}

/// A descendant that outlives the main program (it exits at once) blanks the report 1.5 s
/// later: the run ends only when every traced process is gone, so the end-of-run check comes
/// after the rewrite and restores the leak's line. Held.
#[test]
fn a_descendant_rewriting_the_report_after_the_program_ended_is_caught() {
    if !sockstrace_tests::is_root() {
        skip!("switching to nobody needs root");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let s = Scratch::new();
    let report = s.path("r.jsonl");
    let ran = s.run(&report, &[leak_step(&sink), "outlive:1500".into(), format!("blank:{report}")]);
    sink.assert_nothing_arrived("the leak");
    assert!(
        ran.stdout.contains("blank: ok"),
        "the descendant did not rewrite the report\n{}",
        ran.describe()
    );
    assert_eq!(ran.leak_lines(), 1, "{}", ran.describe());
    assert!(ran.says_altered(), "{}", ran.describe());
}
