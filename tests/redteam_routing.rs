//! Red team: socket options and control messages that would move the first
//! hop away from the judged address are refused.
//!
//! Ground truth comes from a LAN the tests make: a veth pair between this
//! namespace and one of the test's own, with a packet sniffer (an AF_PACKET
//! socket) on the far end. A program that connects to the proxy on loopback,
//! or sends to an allowed loopback address, but has set a routing header, a
//! source route, a device or an outgoing interface, puts its packet on that
//! LAN; each test first shows that without sockstrace (the vector works
//! here), then that under sockstrace the call fails with EPERM, the report
//! says `routing-option` with the option's name, and nothing reaches the LAN.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::util::{settle, wait_until};
use sockstrace_tests::{
    client, client_build, direct, direct_client, is_root, skip, Outcome, TcpSink, Trace, UdpSink,
};

const T: Duration = Duration::from_secs(10);

/// The test LAN's addresses: this end, the far end.
const HOST4: &str = "10.77.0.1";
const FAR4: &str = "10.77.0.2";
const HOST6: &str = "fd00:77::1";
const FAR6: &str = "fd00:77::2";

/// Packets seen on the far end of the veth pair.
struct Sniffer {
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What a received frame is, when it is traffic a test could have sent
/// (IPv4 TCP/UDP, IPv6 TCP/UDP or with a routing header); ARP, ICMP and
/// neighbour discovery are the LAN's own chatter.
fn describe(proto: u16, pkt: &[u8]) -> Option<String> {
    match proto {
        0x0800 if pkt.len() >= 20 && matches!(pkt[9], 6 | 17) => Some(format!(
            "IPv4 proto {} {}.{}.{}.{} -> {}.{}.{}.{} ihl {}",
            pkt[9],
            pkt[12],
            pkt[13],
            pkt[14],
            pkt[15],
            pkt[16],
            pkt[17],
            pkt[18],
            pkt[19],
            pkt[0] & 0xf
        )),
        0x86dd if pkt.len() >= 40 && matches!(pkt[6], 6 | 17 | 43) => {
            let dst: [u8; 16] = pkt[24..40].try_into().ok()?;
            Some(format!("IPv6 next header {} -> {}", pkt[6], std::net::Ipv6Addr::from(dst)))
        }
        _ => None,
    }
}

impl Sniffer {
    fn start(ns: &NetNs) -> Sniffer {
        let fd = ns.inside(|| {
            // SAFETY: plain socket(2) call; the result is checked.
            let fd = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, (libc::ETH_P_ALL as u16).to_be() as i32)
            };
            assert!(fd >= 0, "packet socket in the test namespace: {}", std::io::Error::last_os_error());
            // SAFETY: fd was just created and is owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        let tv = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
        // SAFETY: tv is a live timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: sockaddr_ll is plain data.
                    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                    // SAFETY: buf and from are live buffers of the sizes passed.
                    let n = unsafe {
                        libc::recvfrom(
                            fd.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            0,
                            (&mut from as *mut libc::sockaddr_ll).cast(),
                            &mut len,
                        )
                    };
                    if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
                        continue;
                    }
                    if let Some(d) = describe(u16::from_be(from.sll_protocol), &buf[..n as usize]) {
                        seen.lock().unwrap().push(d);
                    }
                }
            })
        };
        Sniffer { seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// Waits until something arrived that `what` matches.
    fn wait_for(&self, what: &str) -> bool {
        wait_until(T, || self.seen().iter().any(|s| s.contains(what)))
    }

    fn assert_nothing(&self, context: &str) {
        settle();
        assert!(self.seen().is_empty(), "packets reached the LAN ({context}): {:?}", self.seen());
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The veth LAN with the sniffer on its far end. Loopback destinations sent
/// out of the veth need a neighbour entry to leave as IP packets (otherwise
/// only an ARP request for 127.0.0.1 leaves): the far end's MAC address.
struct Lan {
    sniffer: Sniffer,
    host_if: String,
    /// Kept for its lifetime: dropping it removes the namespace and the veth pair.
    _ns: NetNs,
}

fn ip(args: &[&str]) {
    let out = direct(std::iter::once("ip").chain(args.iter().copied()));
    assert_eq!(out.code, 0, "ip {}: {}", args.join(" "), out.stderr);
}

impl Lan {
    fn new() -> Result<Lan, String> {
        let ns = NetNs::create(&[&format!("{HOST4}/24")], &[&format!("{FAR4}/24")])?;
        let (host_if, ns_if) = ns.veth().map(|(h, n)| (h.to_string(), n.to_string())).ok_or("no veth")?;
        ip(&["-6", "addr", "add", &format!("{HOST6}/64"), "dev", &host_if, "nodad"]);
        let out = ns.exec(["ip", "-6", "addr", "add", &format!("{FAR6}/64"), "dev", &ns_if, "nodad"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let mac = ns.exec(["cat", &format!("/sys/class/net/{ns_if}/address")]);
        assert_eq!(mac.code, 0, "{}", mac.stderr);
        ip(&[
            "neigh",
            "replace",
            "127.0.0.1",
            "lladdr",
            mac.stdout.trim(),
            "dev",
            &host_if,
            "nud",
            "permanent",
        ]);
        let sniffer = Sniffer::start(&ns);
        Ok(Lan { sniffer, host_if, _ns: ns })
    }
}

fn attack() -> PathBuf {
    client("attack_route")
}

fn attack32() -> Option<PathBuf> {
    match client_build("attack_route", true, false) {
        Ok(p) => Some(p),
        Err(e) => {
            sockstrace_tests::util::skip_note("i386 attack_route", &e);
            None
        }
    }
}

fn run_direct(path: &Path, args: &[&str]) -> String {
    let out = direct_client(path, args);
    format!("exit {}\n{}{}", out.code, out.stdout, out.stderr)
}

/// The call `op` failed with EPERM, and the report has exactly one
/// `routing-option` leak for `option`, blocked, made by the client's thread.
fn assert_routing_refused(out: &Outcome, op: &str, option: &str, family: &str) {
    out.assert_client_eperm(op);
    out.assert_report_well_formed();
    let (pid, tid) = out.actor();
    let ev = out.the_event("routing-option leak", |e| e.is_leak() && e.s("reason") == "routing-option");
    let d = out.describe();
    assert_eq!(ev.s("syscall"), op, "{ev}\n{d}");
    assert_eq!(ev.s("option"), option, "{ev}\n{d}");
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{d}");
    assert_eq!(ev.i("errno"), Some(1), "{ev}\n{d}");
    assert_eq!(ev.s("family"), family, "{ev}\n{d}");
    assert_eq!(ev.s("source"), "seccomp", "{ev}\n{d}");
    assert!(ev.i("fd").is_some_and(|fd| fd >= 0), "no fd: {ev}\n{d}");
    assert!(ev.i("cookie").is_some(), "no cookie: {ev}\n{d}");
    assert_eq!((ev.i("pid"), ev.i("tid")), (Some(pid), Some(tid)), "{ev}\n{d}");
    assert!(
        out.stderr.lines().any(|l| l.contains("LEAK") && l.contains(option) && l.contains("routing-option")),
        "no human LEAK line naming {option}\n{d}"
    );
}

macro_rules! lan_or_skip {
    () => {{
        if !is_root() {
            skip!("the test LAN (network namespace, veth pair) needs root");
        }
        match Lan::new() {
            Ok(lan) => lan,
            Err(e) => skip!("test LAN: {e}"),
        }
    }};
}

/// Without sockstrace, `args` put a packet matching `what` on the LAN.
fn baseline(lan: &Lan, path: &Path, args: &[&str], what: &str) {
    let out = run_direct(path, args);
    assert!(
        lan.sniffer.wait_for(what),
        "baseline: {args:?} put no {what:?} on the LAN: {:?}\n{out}",
        lan.sniffer.seen()
    );
    lan.sniffer.clear();
}

// ---------------------------------------------------------------------------
// setsockopt
// ---------------------------------------------------------------------------

#[test]
fn rthdr6_to_the_proxy_never_reaches_the_lan() {
    let lan = lan_or_skip!();
    let px = TcpSink::bind("::1");
    baseline(&lan, &attack(), &["rthdr6", &px.port(), FAR6], &format!("next header 43 -> {FAR6}"));
    let out =
        Trace::new().proxy(px.addr()).program([attack().to_str().unwrap(), "rthdr6", &px.port(), FAR6]).run();
    lan.sniffer.assert_nothing("IPV6_RTHDR on a connect to the proxy");
    assert_routing_refused(&out, "setsockopt", "IPV6_RTHDR", "inet6");
    assert_eq!(px.accepts(), 0, "the proxy saw a connection\n{}", out.describe());
}

/// SO_BINDTODEVICE, SO_BINDTOIFINDEX, IP_UNICAST_IF before a TCP connect to
/// the proxy or a UDP send to an allowed loopback address.
fn device_binding(cmd: &str, option: &str, proto: &str) {
    let lan = lan_or_skip!();
    let to = |port: &str| {
        vec![cmd.to_string(), lan.host_if.clone(), "127.0.0.1".into(), port.into(), proto.into()]
    };
    let (px, sink) = (TcpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.1"));
    let port = if proto == "tcp" { px.port() } else { sink.port() };
    let args = to(&port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    baseline(&lan, &attack(), &args, "-> 127.0.0.1");
    let mut argv = vec![attack().to_str().unwrap().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let out = Trace::new().proxy(px.addr()).allow(&sink.dst()).program(argv).run();
    lan.sniffer.assert_nothing(option);
    assert_routing_refused(&out, "setsockopt", option, "inet");
    assert_eq!((px.accepts(), sink.datagrams()), (0, 0), "{}", out.describe());
}

#[test]
fn bindtodevice_on_a_connect_to_the_proxy_never_reaches_the_lan() {
    device_binding("bind-dev", "SO_BINDTODEVICE", "tcp");
}

#[test]
fn bindtoifindex_on_an_allowed_send_never_reaches_the_lan() {
    device_binding("bind-ifindex", "SO_BINDTOIFINDEX", "udp");
}

#[test]
fn unicast_if_on_an_allowed_send_never_reaches_the_lan() {
    device_binding("unicast-if", "IP_UNICAST_IF", "udp");
}

#[test]
fn ip_source_route_on_an_allowed_send_never_reaches_the_lan() {
    let lan = lan_or_skip!();
    let sink = UdpSink::bind("127.0.0.1");
    let args = ["lsrr", "127.0.0.1", &sink.port(), FAR4];
    baseline(&lan, &attack(), &args, &format!("-> {FAR4}"));
    let out = Trace::new()
        .allow(&sink.dst())
        .program(std::iter::once(attack().to_str().unwrap()).chain(args))
        .run();
    lan.sniffer.assert_nothing("IP_OPTIONS loose source route");
    assert_routing_refused(&out, "setsockopt", "IP_OPTIONS", "inet");
    assert_eq!(sink.datagrams(), 0);
}

// ---------------------------------------------------------------------------
// Control messages
// ---------------------------------------------------------------------------

#[test]
fn ip_retopts_cmsg_on_an_allowed_send_never_reaches_the_lan() {
    let lan = lan_or_skip!();
    let sink = UdpSink::bind("127.0.0.1");
    let args = ["cmsg-retopts", "127.0.0.1", &sink.port(), FAR4];
    baseline(&lan, &attack(), &args, &format!("-> {FAR4}"));
    let out = Trace::new()
        .allow(&sink.dst())
        .program(std::iter::once(attack().to_str().unwrap()).chain(args))
        .run();
    lan.sniffer.assert_nothing("IP_RETOPTS control message");
    assert_routing_refused(&out, "sendmsg", "IP_RETOPTS", "inet");
    assert_eq!(sink.datagrams(), 0);
}

#[test]
fn ip_pktinfo_cmsg_with_an_interface_never_reaches_the_lan() {
    let lan = lan_or_skip!();
    let sink = UdpSink::bind("127.0.0.1");
    let args = ["cmsg-pktinfo", "127.0.0.1", &sink.port(), &lan.host_if];
    baseline(&lan, &attack(), &args, "-> 127.0.0.1");
    let out = Trace::new()
        .allow(&sink.dst())
        .program(std::iter::once(attack().to_str().unwrap()).chain(args))
        .run();
    lan.sniffer.assert_nothing("IP_PKTINFO naming the veth");
    assert_routing_refused(&out, "sendmsg", "IP_PKTINFO", "inet");
    assert_eq!(sink.datagrams(), 0);
}

/// IPv6 routing header and outgoing-interface control messages (the kernel
/// here refuses or cannot route them anyway; sockstrace refuses them first).
#[test]
fn ipv6_routing_cmsgs_are_refused() {
    let sink = UdpSink::bind("::1");
    for (cmd, hop, option) in [("cmsg-rthdr6", "::1", "IPV6_RTHDR"), ("cmsg-pktinfo6", "lo", "IPV6_PKTINFO")]
    {
        let out = Trace::new()
            .allow(&sink.dst())
            .program([attack().to_str().unwrap(), cmd, "::1", &sink.port(), hop])
            .run();
        assert_routing_refused(&out, "sendmsg", option, "inet6");
    }
    sink.assert_nothing_arrived("IPv6 routing control messages");
}

#[test]
fn harmless_cmsgs_still_work() {
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .allow(&sink.dst())
        .program([attack().to_str().unwrap(), "cmsg-ok", "127.0.0.1", &sink.port()])
        .run();
    out.assert_code(0);
    assert!(sink.wait_datagrams(1, T), "datagram with TTL/TOS/PKTINFO(0) never arrived\n{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
}

// ---------------------------------------------------------------------------
// Ordinary options, --on-leak log
// ---------------------------------------------------------------------------

fn assert_ordinary_options_work(out: &Outcome, px: &TcpSink) {
    out.assert_code(0);
    assert!(out.stdout.contains("rcvtimeo: sec=5"), "{}", out.describe());
    assert!(out.stdout.contains("nodelay: value=1"), "{}", out.describe());
    assert!(px.wait_bytes(12, T), "the proxy got no bytes\n{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
}

#[test]
fn ordinary_options_still_work() {
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .proxy(px.addr())
        .program([attack().to_str().unwrap(), "ordinary", &px.host(), &px.port()])
        .run();
    assert_ordinary_options_work(&out, &px);
}

#[test]
fn log_mode_lets_a_routing_option_through_as_a_leak() {
    let px = TcpSink::bind("::1");
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("log")
        .program([attack().to_str().unwrap(), "rthdr6", &px.port(), "::1"])
        .run();
    assert!(out.stdout.contains("setsockopt: ok"), "{}", out.describe());
    out.assert_report_well_formed();
    let ev = out.the_event("logged routing-option", |e| e.s("reason") == "routing-option");
    assert_eq!((ev.s("action"), ev.s("option"), ev.s("verdict")), ("logged", "IPV6_RTHDR", "leak"), "{ev}");
}

#[test]
fn the_refusal_holds_under_socksify_and_kill() {
    let px = TcpSink::bind("::1");
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("socksify")
        .program([attack().to_str().unwrap(), "rthdr6", &px.port(), "::1"])
        .run();
    assert_routing_refused(&out, "setsockopt", "IPV6_RTHDR", "inet6");
    let out = Trace::new()
        .proxy(px.addr())
        .on_leak("kill")
        .program([attack().to_str().unwrap(), "rthdr6", &px.port(), "::1"])
        .run();
    assert!(!out.stdout.contains("setsockopt: ok"), "{}", out.describe());
    assert!(!out.stdout.contains("connect"), "{}", out.describe());
    let ev = out.the_event("killed routing-option", |e| e.s("reason") == "routing-option");
    assert_eq!((ev.s("action"), ev.s("option")), ("killed", "IPV6_RTHDR"), "{ev}");
    assert_eq!(px.accepts(), 0, "{}", out.describe());
}

// ---------------------------------------------------------------------------
// i386: direct setsockopt, socketcall(SYS_SETSOCKOPT), compat control messages
// ---------------------------------------------------------------------------

#[test]
fn i386_setsockopt_direct_and_socketcall_never_reach_the_lan() {
    let Some(a32) = attack32() else { return };
    let lan = lan_or_skip!();
    let px = TcpSink::bind("127.0.0.1");
    let args = ["bind-dev", &lan.host_if, "127.0.0.1", &px.port(), "tcp"];
    baseline(&lan, &a32, &args, "-> 127.0.0.1");
    for socketcall in ["0", "1"] {
        let out = Trace::new()
            .proxy(px.addr())
            .env("ATTACK_SOCKETCALL", socketcall)
            .program(std::iter::once(a32.to_str().unwrap()).chain(args))
            .run();
        lan.sniffer.assert_nothing(&format!("i386 SO_BINDTODEVICE, socketcall={socketcall}"));
        assert_routing_refused(&out, "setsockopt", "SO_BINDTODEVICE", "inet");
    }
    assert_eq!(px.accepts(), 0);
}

#[test]
fn i386_ordinary_options_work_through_socketcall_and_directly() {
    let Some(a32) = attack32() else { return };
    for socketcall in ["0", "1"] {
        let px = TcpSink::bind("127.0.0.1");
        let out = Trace::new()
            .proxy(px.addr())
            .env("ATTACK_SOCKETCALL", socketcall)
            .program([a32.to_str().unwrap(), "ordinary", &px.host(), &px.port()])
            .run();
        assert_ordinary_options_work(&out, &px);
    }
}

#[test]
fn i386_control_messages_are_judged_in_their_own_layout() {
    let Some(a32) = attack32() else { return };
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .allow(&sink.dst())
        .program([a32.to_str().unwrap(), "cmsg-retopts", "127.0.0.1", &sink.port(), "127.0.0.9"])
        .run();
    assert_routing_refused(&out, "sendmsg", "IP_RETOPTS", "inet");
    sink.assert_nothing_arrived("i386 IP_RETOPTS");
    let out = Trace::new()
        .allow(&sink.dst())
        .program([a32.to_str().unwrap(), "cmsg-ok", "127.0.0.1", &sink.port()])
        .run();
    out.assert_code(0);
    assert!(sink.wait_datagrams(1, T), "i386 harmless control messages: nothing arrived\n{}", out.describe());
    out.assert_no_leaks();
}

// ---------------------------------------------------------------------------
// Filter arguments are ints; protocols that connect on their own
// ---------------------------------------------------------------------------

#[test]
fn packet_socket_with_high_bits_in_the_family_is_refused() {
    if !is_root() {
        skip!("packet sockets need CAP_NET_RAW");
    }
    let base = run_direct(&attack(), &["packet-hibits"]);
    assert!(base.contains("socket: ok"), "baseline: the kernel should read the family as an int: {base}");
    let out = Trace::new().program([attack().to_str().unwrap(), "packet-hibits"]).run();
    out.assert_client_eperm("socket");
    out.assert_report_well_formed();
    let ev = out.the_event("packet-socket leak", |e| e.is_leak() && e.s("syscall") == "socket");
    assert_eq!(
        (ev.s("reason"), ev.s("action"), ev.s("family")),
        ("packet-socket", "blocked", "packet"),
        "{ev}"
    );
}

#[test]
fn mptcp_is_refused_and_the_program_falls_back_to_tcp() {
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .proxy(px.addr())
        .program([attack().to_str().unwrap(), "mptcp", &px.host(), &px.port()])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("socket-mptcp: errno=93 ("), "{}", out.describe());
    assert!(px.wait_bytes(12, T), "the fallback TCP connection carried nothing\n{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let ev = out.the_event("unsupported-protocol", |e| e.s("reason") == "unsupported-protocol");
    assert_eq!((ev.s("syscall"), ev.s("action"), ev.s("protocol")), ("socket", "blocked", "mptcp"), "{ev}");
    assert_eq!(ev.i("errno"), Some(libc::EPROTONOSUPPORT as i64), "{ev}");
}

// ---------------------------------------------------------------------------
// Unprivileged: the options that need no capability
// ---------------------------------------------------------------------------

#[test]
fn unprivileged_routing_options_are_refused() {
    if !is_root() {
        skip!("switching to nobody needs root");
    }
    let mut c = Copies::new();
    let a = c.add(&attack(), "attack_route");
    let px6 = TcpSink::bind("::1");
    let sink = UdpSink::bind("127.0.0.1");
    let base_sink = UdpSink::bind("127.0.0.1");
    // Baseline: nobody may set a routing header (no capability needed).
    let as_nobody = |args: &[&str]| {
        let (uid, gid) = (format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"));
        let mut argv = vec!["setpriv", &uid, &gid, "--clear-groups", a.to_str().unwrap()];
        argv.extend(args);
        let base = direct(argv);
        assert!(
            base.stdout.contains("setsockopt: ok"),
            "baseline as nobody {args:?}: {}{}",
            base.stdout,
            base.stderr
        );
    };
    as_nobody(&["rthdr6", &px6.port(), "::1"]);
    let out =
        c.as_nobody().proxy(px6.addr()).program([a.to_str().unwrap(), "rthdr6", &px6.port(), "::1"]).run();
    assert_routing_refused(&out, "setsockopt", "IPV6_RTHDR", "inet6");
    for (cmd, option) in [
        ("bind-dev", "SO_BINDTODEVICE"),
        ("bind-ifindex", "SO_BINDTOIFINDEX"),
        ("unicast-if", "IP_UNICAST_IF"),
    ] {
        // Without sockstrace nobody may do this too (only rebinding needs CAP_NET_RAW).
        as_nobody(&[cmd, "lo", "127.0.0.1", &base_sink.port(), "udp"]);
        let out = c
            .as_nobody()
            .allow(&sink.dst())
            .program([a.to_str().unwrap(), cmd, "lo", "127.0.0.1", &sink.port(), "udp"])
            .run();
        assert_routing_refused(&out, "setsockopt", option, "inet");
    }
    sink.assert_nothing_arrived("unprivileged device binding");
}

// ---------------------------------------------------------------------------
// Test-only switches (debug builds): the kernel layer's egress gate is tested
// with these fences off
// ---------------------------------------------------------------------------

#[test]
fn test_switches_turn_the_option_and_cmsg_fences_off() {
    if sockstrace_tests::sockstrace_bin().components().any(|c| c.as_os_str() == "release") {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    let px = TcpSink::bind("::1");
    // The kernel layer's egress gate would drop these packets: the switches
    // are proven on the syscall layer alone.
    let out = Trace::new()
        .opts(["--kernel", "off"])
        .proxy(px.addr())
        .env("SOCKSTRACE_TEST_DISABLE", "options")
        .program([attack().to_str().unwrap(), "rthdr6", &px.port(), "::1"])
        .run();
    assert!(out.stdout.contains("setsockopt: ok"), "{}", out.describe());
    assert!(out.events_where(|e| e.s("reason") == "routing-option").is_empty(), "{}", out.describe());
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .opts(["--kernel", "off"])
        .allow(&sink.dst())
        .env("SOCKSTRACE_TEST_DISABLE", "cmsg")
        .program([attack().to_str().unwrap(), "cmsg-retopts", "127.0.0.1", &sink.port(), "127.0.0.1"])
        .run();
    assert!(out.stdout.contains("sendmsg: ok"), "{}", out.describe());
    assert!(out.events_where(|e| e.s("reason") == "routing-option").is_empty(), "{}", out.describe());
}
