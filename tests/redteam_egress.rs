//! Red team, the kernel layer's egress gate (root): socket options and control
//! messages that move a packet away from the address the syscall layer judged
//! (an IPv6 segment routing header, an IPv4 loose source route,
//! SO_BINDTODEVICE and IP_PKTINFO sending a loopback destination out of a
//! real device). The refusal of those options is switched off, the syscall layer's and the
//! kernel layer's setsockopt hook
//! (`SOCKSTRACE_TEST_DISABLE=options,cmsg,kernel-options`), so these tests prove the
//! layer behind it: whatever the syscall layer misses, the packet is judged.
//!
//! Each attack runs in a network namespace of the test's own, whose veth pair
//! leads to the host namespace, where a packet socket on the host end sees
//! what arrives. Every test first runs the attack without the gate
//! (`egress` also disabled) and asserts that packets do arrive, so the test
//! can fail; then with it: nothing arrives, and the report has an
//! `egress-packet` kernel event saying what was wrong.
//!
//! Ordinary traffic still flows: through a SOCKS proxy (curl and microsocks),
//! and to an allowed destination beyond the veth pair.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{client, is_root, skip, Event, HttpServer, Microsocks, Outcome, TcpSink, Trace};

const T: Duration = Duration::from_secs(10);

/// The syscall-layer fences switched off in every run here.
const FENCES_OFF: &str = "options,cmsg,kernel-options";
/// The same, and the egress gate too: what the attack does without it.
const FENCES_AND_GATE_OFF: &str = "options,cmsg,kernel-options,egress";

const HOST4: &str = "10.239.7.1";
const NS4: &str = "10.239.7.2";
const HOST6: &str = "fd53:7e57::1";
const NS6: &str = "fd53:7e57::2";
/// The --allow'd loopback destination the UDP attacks aim at.
const ALLOWED_LOOPBACK: &str = "127.0.0.2";
const ALLOWED_PORT: &str = "9999";

/// Counts IPv4 and IPv6 TCP/UDP frames (and IPv6 frames with a routing
/// header) arriving on one device: a packet socket in the host namespace.
struct Sniffer {
    seen: Arc<AtomicUsize>,

    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sniffer {
    fn on(ifname: &str) -> Sniffer {
        Self::matching(ifname, None)
    }

    /// Counts only frames that also hold `needle` (on a busy device like loopback).
    fn matching(ifname: &str, needle: Option<&'static [u8]>) -> Sniffer {
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: plain libc calls on values we own; the fd is checked.
        let fd = unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            assert!(index != 0, "no device {ifname}");
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32);
            assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = index as i32;
            let r = libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind packet socket: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        };
        let seen = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::SeqCst) {
                // SAFETY: recv into our buffer of its own size.
                let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                let frame = &buf[..n.max(0) as usize];
                let wanted = needle.is_none_or(|needle| frame.windows(needle.len()).any(|w| w == needle));
                if n >= 14 && interesting(frame) && wanted {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Sniffer { seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An Ethernet frame carrying what a program sent: IPv4 TCP or UDP, IPv6
/// TCP, UDP or a routing header (not ARP, neighbour discovery or MLD).
fn interesting(frame: &[u8]) -> bool {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &frame[14..];
    match ethertype {
        0x0800 if ip.len() >= 20 => matches!(ip[9], 6 | 17),
        0x86dd if ip.len() >= 40 => matches!(ip[6], 6 | 17 | 43),
        _ => false,
    }
}

/// A namespace with a veth pair to the host (IPv4 and IPv6 addresses on both
/// ends), a permanent neighbour entry for the allowed loopback address on the
/// namespace end (so a packet misrouted there really leaves), and a sniffer
/// on the host end.
struct Lab {
    ns: NetNs,
    sniffer: Sniffer,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let ns = NetNs::create(&[&format!("{HOST4}/24")], &[&format!("{NS4}/24")])?;
        let host_if = ns.host_if().expect("veth pair").to_string();
        let ns_if = ns.ns_if().expect("veth pair").to_string();
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip").args(args).output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
            }
        };
        ip(&["-6", "addr", "add", &format!("{HOST6}/64"), "dev", &host_if, "nodad"])?;
        let n = ns.name().to_string();
        ip(&["-n", &n, "-6", "addr", "add", &format!("{NS6}/64"), "dev", &ns_if, "nodad"])?;
        let mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address"))
            .map_err(|e| format!("MAC of {host_if}: {e}"))?;
        ip(&[
            "-n",
            &n,
            "neigh",
            "replace",
            ALLOWED_LOOPBACK,
            "lladdr",
            mac.trim(),
            "dev",
            &ns_if,
            "nud",
            "permanent",
        ])?;
        let sniffer = Sniffer::on(&host_if);
        Ok(Lab { ns, sniffer })
    }

    fn ns_if(&self) -> String {
        self.ns.ns_if().expect("veth pair").to_string()
    }

    /// sockstrace run inside the namespace, with `fences` switched off.
    fn trace(&self, fences: &str) -> Trace {
        Trace::new().wrapper(["ip", "netns", "exec", self.ns.name()]).env("SOCKSTRACE_TEST_DISABLE", fences)
    }

    /// Runs the attack without the gate, then with it; returns the second run.
    fn attack(&self, opts: &[String], args: &[&str]) -> Outcome {
        let attacker = client("attack_egress");
        let run = |fences: &str| {
            let before = self.sniffer.seen();
            let out = self.trace(fences).opts(opts).program(
                std::iter::once(attacker.as_os_str()).chain(args.iter().map(|a| std::ffi::OsStr::new(*a))),
            );
            let out = out.run();
            out.assert_code(0);
            // Let late frames (a retransmitted SYN) arrive.
            std::thread::sleep(Duration::from_millis(300));
            (self.sniffer.seen() - before, out)
        };
        let (arrived, without) = run(FENCES_AND_GATE_OFF);
        assert!(
            arrived > 0,
            "without the egress gate the attack {args:?} should reach the far end (or the test proves \
             nothing)\n{}",
            without.describe()
        );
        let (arrived, with) = run(FENCES_OFF);
        assert_eq!(
            arrived,
            0,
            "with the egress gate, {arrived} frame(s) of {args:?} arrived\n{}",
            with.describe()
        );
        with
    }
}

/// The report's egress-packet kernel event with `detail`.
fn egress_event<'a>(out: &'a Outcome, detail: &str) -> &'a Event {
    out.the_event(&format!("egress-packet event ({detail})"), |e| {
        e.s("source") == "kernel"
            && e.s("reason") == "egress-packet"
            && e.get("kernel").and_then(|k| k.get("detail")).and_then(|d| d.as_str()) == Some(detail)
    })
}

fn kernel_layer_on(out: &Outcome) {
    assert!(out.kernel_layer().starts_with("on"), "kernel layer not on\n{}", out.describe());
}

macro_rules! lab_or_skip {
    () => {{
        if !is_root() {
            skip!("the kernel layer and network namespaces need root");
        }
        match Lab::new() {
            Ok(lab) => lab,
            Err(e) => skip!("network namespace: {e}"),
        }
    }};
}

#[test]
fn ipv6_segment_routing_header_to_the_proxy_is_dropped() {
    let lab = lab_or_skip!();
    // The proxy lives on the namespace's loopback.
    let proxy = lab.ns.inside(|| TcpSink::bind("::1"));
    let opts = vec!["--proxy".to_string(), proxy.addr().to_string()];
    let out = lab.attack(&opts, &["srh6", HOST6, "::1", &proxy.port()]);
    kernel_layer_on(&out);
    let ev = egress_event(&out, "ipv6-routing-header");
    assert_eq!(ev.s("action"), "blocked", "{}", out.describe());
    assert_eq!(ev.s("dst"), format!("[{HOST6}]:0"), "{}", out.describe());
    assert!(ev.i("cookie").unwrap_or(0) > 0, "{}", out.describe());
    assert_eq!(proxy.accepts(), 0, "the SYN went elsewhere: nothing reaches the proxy");
}

/// The UDP attacks: an --allow'd loopback destination.
fn udp_attack(lab: &Lab, args: &[&str], detail: &str) {
    let opts = vec!["--allow".to_string(), format!("{ALLOWED_LOOPBACK}:{ALLOWED_PORT}")];
    let out = lab.attack(&opts, args);
    kernel_layer_on(&out);
    let ev = egress_event(&out, detail);
    assert_eq!(ev.s("action"), "blocked", "{}", out.describe());
    assert_eq!(ev.s("protocol"), "udp", "{}", out.describe());
    // Reported once per socket, however many packets it sent.
    let n = out.events_where(|e| e.s("reason") == "egress-packet").len();
    assert_eq!(n, 1, "{}", out.describe());
    assert!(out.stdout.contains("errno=1"), "the send is refused (EPERM)\n{}", out.describe());
}

#[test]
fn so_bindtodevice_loopback_destination_is_dropped() {
    let lab = lab_or_skip!();
    let dev = lab.ns_if();
    udp_attack(&lab, &["bindtodevice", &dev, ALLOWED_LOOPBACK, ALLOWED_PORT], "loopback-on-device");
}

#[test]
fn ip_pktinfo_device_for_a_loopback_destination_is_dropped() {
    let lab = lab_or_skip!();
    let dev = lab.ns_if();
    udp_attack(&lab, &["pktinfo", &dev, ALLOWED_LOOPBACK, ALLOWED_PORT], "loopback-on-device");
}

#[test]
fn ipv4_loose_source_route_is_dropped() {
    let lab = lab_or_skip!();
    udp_attack(&lab, &["lsrr", HOST4, ALLOWED_LOOPBACK, ALLOWED_PORT], "ipv4-options");
}

#[test]
fn observing_mode_reports_the_packet_and_lets_it_go() {
    let lab = lab_or_skip!();
    let attacker = client("attack_egress");
    let dev = lab.ns_if();
    let before = lab.sniffer.seen();
    let out = lab
        .trace(FENCES_OFF)
        .allow(&format!("{ALLOWED_LOOPBACK}:{ALLOWED_PORT}"))
        .on_leak("log")
        .program([
            attacker.as_os_str(),
            "bindtodevice".as_ref(),
            dev.as_ref(),
            ALLOWED_LOOPBACK.as_ref(),
            ALLOWED_PORT.as_ref(),
        ])
        .run();
    out.assert_code(0);
    kernel_layer_on(&out);
    assert!(wait_until(T, || lab.sniffer.seen() > before), "observing: the packets go\n{}", out.describe());
    let ev = egress_event(&out, "loopback-on-device");
    assert_eq!(ev.s("action"), "logged", "{}", out.describe());
}

#[test]
fn allowed_destination_beyond_the_device_still_flows() {
    let lab = lab_or_skip!();
    // A listener on the far end (host namespace), --allow'd; it reads what one client sends.
    let listener = std::net::TcpListener::bind((HOST4, 0)).expect("listener on the host end");
    let port = listener.local_addr().unwrap().port().to_string();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        got
    });
    let out =
        lab.trace(FENCES_OFF).allow(&format!("{HOST4}:{port}")).netprobe(["tcp-connect", HOST4, &port]).run();
    out.assert_code(0);
    kernel_layer_on(&out);
    assert_eq!(reader.join().unwrap(), b"netprobe-tcp\n", "{}", out.describe());
    out.assert_no_leaks();
}

#[test]
fn curl_through_microsocks_still_flows() {
    if !is_root() {
        skip!("the kernel layer needs root");
    }
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    let mut trace = Trace::new().env("SOCKSTRACE_TEST_DISABLE", FENCES_OFF).proxy(ms.addr());
    for k in ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "no_proxy"]
    {
        trace = trace.env_remove(k);
    }
    let url = http.url();
    let proxy = ms.addr().to_string();
    let out =
        trace.program(["curl", "-q", "-sS", "--max-time", "30", "--socks5-hostname", &proxy, &url]).run();
    out.assert_code(0);
    kernel_layer_on(&out);
    assert_eq!(out.stdout, http.body(), "{}", out.describe());
    out.assert_no_leaks();
}

// ---------------------------------------------------------------------------------------------
// io_uring: IORING_OP_SOCKET makes sockets seccomp never sees, and no cgroup hook sees a packet
// socket made. `--allow-io-uring` lets io_uring in only where socket creation is gated (BPF LSM,
// refused by some kernels, or a program that can never hold CAP_NET_RAW).
// ---------------------------------------------------------------------------------------------

/// The io_uring attack client (liburing), or why it cannot be built.
fn attack_uring() -> Result<std::path::PathBuf, String> {
    sockstrace_tests::paths::client_uring("attack_uring", None, &[])
}

/// `setpriv` dropping CAP_NET_RAW from the bounding and inheritable sets: the program it
/// runs (as root) never holds it.
const WITHOUT_NET_RAW: [&str; 4] = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"];

fn uring_attack_or_skip() -> Option<std::path::PathBuf> {
    if !is_root() {
        sockstrace_tests::util::skip_note(module_path!(), "the kernel layer needs root");
        return None;
    }
    match attack_uring() {
        Ok(c) => Some(c),
        Err(e) => {
            sockstrace_tests::util::skip_note(
                module_path!(),
                &format!("attack_uring cannot be built (liburing-dev?): {e}"),
            );
            None
        }
    }
}

#[test]
fn io_uring_packet_socket_is_not_let_in_with_cap_net_raw() {
    let Some(attacker) = uring_attack_or_skip() else { return };
    // Ground truth: a packet socket on the loopback device sees the frame the attacker writes
    // there (a frame on a real device would be on the wire).
    let sniffer = Sniffer::matching("lo", Some(b"attack-uring"));
    // Baseline: without sockstrace the frame goes out.
    let out = sockstrace_tests::direct_client(&attacker, &["packet-udp", "127.0.0.2", "9"]);
    if out.stdout.contains("setup: errno=") {
        skip!("io_uring does not work here: {}", out.stdout.trim());
    }
    assert_eq!(out.code, 0, "baseline: {}", out.stdout);
    assert!(wait_until(T, || sniffer.seen() > 0), "baseline: the frame should go out: {}", out.stdout);

    let before = sniffer.seen();
    let proxy = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .proxy(proxy.addr())
        .opts(["--allow-io-uring"])
        .netprobe_at(&attacker, ["packet-udp", "127.0.0.2", "9"])
        .run();
    kernel_layer_on(&out);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sniffer.seen(),
        before,
        "a frame of a packet socket made by io_uring went out\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("setup: errno=1 ("), "io_uring must be refused\n{}", out.describe());
    out.the_event("refused io_uring_setup", |e| {
        e.s("syscall") == "io_uring_setup" && e.s("reason") == "io-uring" && e.is_leak()
    });
}

#[test]
fn io_uring_let_in_without_cap_net_raw_cannot_make_packet_or_raw_sockets() {
    let Some(attacker) = uring_attack_or_skip() else { return };
    let proxy = TcpSink::bind("127.0.0.1");
    for kind in ["packet-udp", "raw-udp"] {
        let sink = sockstrace_tests::UdpSink::bind("127.0.0.2");
        let mut argv: Vec<std::ffi::OsString> = WITHOUT_NET_RAW.iter().map(Into::into).collect();
        argv.extend([attacker.clone().into_os_string(), kind.into(), sink.host().into(), sink.port().into()]);
        // The kernel's own refusal (EPERM, no CAP_NET_RAW) is what the test wants to see.
        let out = Trace::new().proxy(proxy.addr()).opts(["--allow-io-uring"]).program(argv).run();
        kernel_layer_on(&out);
        assert!(out.stdout.contains("setup: ok"), "io_uring is let in\n{}", out.describe());
        assert!(out.stdout.contains("uring-socket: errno=1 ("), "{kind}: no socket\n{}", out.describe());
        sink.assert_nothing_arrived(kind);
    }
    // What io_uring is let in for still works: a connect to the proxy, data included.
    let client = match sockstrace_tests::uringprobe() {
        Ok(c) => c,
        Err(e) => skip!("uringprobe: {e}"),
    };
    let mut argv: Vec<std::ffi::OsString> = WITHOUT_NET_RAW.iter().map(Into::into).collect();
    argv.extend([client.as_os_str().to_owned(), "connect".into(), proxy.host().into(), proxy.port().into()]);
    let out = Trace::new().proxy(proxy.addr()).opts(["--allow-io-uring"]).program(argv).run();
    out.assert_code(0);
    assert!(proxy.wait_bytes("uringprobe-tcp\n".len(), T), "{}", out.describe());
    out.assert_no_leaks();
}

/// UDP-Lite's `connect` runs no cgroup connect hook (the protocol has no
/// pre_connect), and its connected sends no sendmsg hook: through io_uring,
/// which seccomp never sees, a connected UDP-Lite datagram reached a loopback
/// address the policy does not allow (found by `cargo xtask fuzz --seed 1`).
/// The kernel layer refuses to create UDP-Lite sockets at all, so no route is
/// left; a plain UDP socket is still created.
#[test]
fn udplite_sockets_are_refused_by_the_kernel_layer() {
    if !is_root() {
        skip!("the kernel layer needs root");
    }
    let script = "import socket\n\
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0).close()\n\
        print('udp: ok', flush=True)\n\
        try:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)\n    print('udplite: ok')\n\
        except OSError as e:\n    print('udplite: errno=%d' % e.errno)\n";
    let out = Trace::new().opts(["--kernel", "required"]).program(["python3", "-c", script]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("udp: ok"), "{}", out.describe());
    assert!(out.stdout.contains("udplite: errno=1"), "UDP-Lite socket created\n{}", out.describe());
    let refused = out.events_where(|e| e.s("source") == "kernel" && e.s("reason") == "direct-other");
    assert!(!refused.is_empty(), "no kernel event for the refused socket\n{}", out.describe());
}
