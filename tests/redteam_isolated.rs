//! Red team under `--isolate-network`: isolation alone holds.
//!
//! Every attack vector of the red-team tests (redteam_routing, redteam_egress,
//! redteam_fdrace, redteam_fence, redteam_memory, redteam_found) runs with the
//! syscall layer's own fences switched off (`SOCKSTRACE_TEST_DISABLE=options,
//! cmsg,family-check,landlock,egress`, debug builds), every judged call let
//! through (`--on-leak log`) and the kernel layer off: first without isolation
//! (the baseline: the attack arrives, so the test can fail), then with
//! `--isolate-network` (nothing arrives). As root and as nobody.
//!
//! Ground truth is a LAN the test makes: a network namespace joined to the
//! host's by a veth pair, with UDP, UDP-Lite and TCP sinks on its far end and
//! a packet socket there that sees every frame arriving from the host (a
//! loopback destination sent out of the veth by a routing header, a device
//! binding or an outgoing interface, a multicast membership report). The
//! attacks aim at the far end's address, not at loopback: under isolation the
//! program's loopback is its own, so a loopback target would prove little.
//!
//! Vectors whose baseline cannot arrive for a reason outside isolation say
//! why (`Base::Cannot`); they still run isolated and nothing may arrive.
//! Vectors against the supervisor itself (ptrace, memory writes, stolen
//! fds) are the Landlock domain's to stop, not isolation's: see the `open`
//! tests at the end.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::paths::{client_build, client_uring};
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::util::{settle, wait_until};
use sockstrace_tests::{client, direct, is_root, skip, TcpSink, Trace, UdpSink};

const ISOLATE: &str = "--isolate-network";
const FENCES_OFF: &str = "options,cmsg,family-check,landlock,egress";
/// Racing calls per race attack.
const TRIES: &str = "2000";
/// How long a baseline may take to arrive.
const ARRIVES: Duration = Duration::from_secs(5);

/// The test LAN: this end, the far end.
const HOST4: &str = "10.83.0.1";
const FAR4: &str = "10.83.0.2";
const HOST6: &str = "fd00:83::1";
const FAR6: &str = "fd00:83::2";
/// An address routed into the attacker's tunnel device (nothing answers it).
const TUNNELED: &str = "10.83.9.9";
const GROUP4: &str = "239.66.77.83";
const GROUP4_BYTES: [u8; 4] = [239, 66, 77, 83];
const GROUP6: &str = "ff1e::4d:5883";
const GROUP6_BYTES: [u8; 16] = [0xff, 0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4d, 0x58, 0x83];

fn release_build() -> bool {
    sockstrace_tests::sockstrace_bin().components().any(|c| c.as_os_str() == "release")
}

// ---------------------------------------------------------------------------
// Ground truth
// ---------------------------------------------------------------------------

/// Frames arriving at a packet socket (made in `ns`, or bound to the host's
/// device `ifname`): (ethertype, network-layer bytes).
/// Frames seen: (ethertype, network-layer bytes).
type Seen = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;
/// Whether a frame (ethertype, network-layer bytes) is the attack's.
type FramePred = Box<dyn Fn(u16, &[u8]) -> bool>;

struct Frames {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Frames {
    fn start(ns: Option<&NetNs>, ifname: Option<&str>) -> Frames {
        let ifindex = ifname.map(|name| {
            let c = std::ffi::CString::new(name).unwrap();
            // SAFETY: a C string we own.
            let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
            assert!(i != 0, "no device {name}");
            i as i32
        });
        let make = move || {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2) call; the result is checked.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto as i32) };
            assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
            // SAFETY: fd was just created and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if let Some(index) = ifindex {
                // SAFETY: sockaddr_ll is plain data; all-zero is valid.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto;
                sll.sll_ifindex = index;
                // SAFETY: bind on our socket with a valid sockaddr_ll and its length.
                let r = unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        (&raw const sll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(r, 0, "bind packet socket: {}", std::io::Error::last_os_error());
            }
            fd
        };
        let fd = match ns {
            Some(ns) => ns.inside(make),
            None => make(),
        };
        let tv = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
        // SAFETY: tv is a live timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !st.load(Ordering::Relaxed) {
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
                        (&raw mut from).cast(),
                        &mut len,
                    )
                };
                if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                s.lock().unwrap().push((u16::from_be(from.sll_protocol), buf[..n as usize].to_vec()));
            }
        });
        Frames { seen, stop, thread: Some(thread) }
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Whether a frame since `from` matches `pred`.
    fn any_since(&self, from: usize, pred: &dyn Fn(u16, &[u8]) -> bool) -> bool {
        self.seen.lock().unwrap()[from..].iter().any(|(p, f)| pred(*p, f))
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn holds(frame: &[u8], needle: &[u8]) -> bool {
    frame.windows(needle.len()).any(|w| w == needle)
}

/// An IPv4 packet of `proto` to `dst`.
fn ipv4_to(p: u16, f: &[u8], dst: &str, proto: u8) -> bool {
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    p == 0x0800 && f.len() >= 20 && f[9] == proto && f[16..20] == dst.octets()
}

/// An IPv6 packet with a routing header (next header 43) to `dst`.
fn ipv6_rthdr_to(p: u16, f: &[u8], dst: &str) -> bool {
    let dst: std::net::Ipv6Addr = dst.parse().unwrap();
    p == 0x86dd && f.len() >= 40 && f[6] == 43 && f[24..40] == dst.octets()
}

/// A TCP listener on the far end that counts what it accepts.
struct LanListener {
    port: u16,
    accepts: Arc<AtomicUsize>,
}

impl LanListener {
    fn start(ns: &NetNs) -> LanListener {
        let l = ns.inside(|| std::net::TcpListener::bind((FAR4, 0)).expect("listen on the far end"));
        let port = l.local_addr().unwrap().port();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = accepts.clone();
        // Ends with the test process.
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if conn.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        LanListener { port, accepts }
    }
}

/// A UDP-Lite socket on the far end, read like a UDP sink.
fn udplite_sink(ns: &NetNs) -> UdpSink {
    let sock = ns.inside(|| {
        // SAFETY: plain socket(2); checked, then owned by the UdpSocket.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE) };
        assert!(fd >= 0, "UDP-Lite socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh socket nobody else owns.
        let sock = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
        // SAFETY: sockaddr_in is plain data; all-zero is valid.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from(FAR4.parse::<std::net::Ipv4Addr>().unwrap()).to_be();
        // SAFETY: bind on our socket with a valid sockaddr_in and its length.
        let r = unsafe {
            libc::bind(
                fd,
                (&raw const sin).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "bind UDP-Lite sink: {}", std::io::Error::last_os_error());
        sock
    });
    UdpSink::from_socket(sock)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = direct(std::iter::once("ip").chain(args.iter().copied()));
    if out.code == 0 {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), out.stderr))
    }
}

/// The LAN, its sinks and sniffers, and the loopback services the runs name
/// (the proxies, an allowed loopback address): shared by every vector.
struct Lab {
    /// Kept for its lifetime: dropping it removes the LAN.
    _ns: NetNs,
    host_if: String,
    /// Frames arriving at the far end.
    far: Frames,
    /// Frames on the host's loopback device (a packet socket's frame written there).
    lo: Frames,
    udp: UdpSink,
    lite: UdpSink,
    tcp: LanListener,
    px4: TcpSink,
    px6: TcpSink,
    allowed4: UdpSink,
    allowed6: UdpSink,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let ns = NetNs::create(&[&format!("{HOST4}/24")], &[&format!("{FAR4}/24")])?;
        let (host_if, ns_if) = ns.veth().map(|(h, n)| (h.to_string(), n.to_string())).ok_or("no veth")?;
        ip(&["-6", "addr", "add", &format!("{HOST6}/64"), "dev", &host_if, "nodad"])?;
        let out = ns.exec(["ip", "-6", "addr", "add", &format!("{FAR6}/64"), "dev", &ns_if, "nodad"]);
        if out.code != 0 {
            return Err(out.stderr);
        }
        // A loopback destination sent out of the veth leaves as an IP packet
        // (not only an ARP request for 127.0.0.1).
        let mac = ns.exec(["cat", &format!("/sys/class/net/{ns_if}/address")]);
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
        ])?;
        let far = Frames::start(Some(&ns), None);
        let lo = Frames::start(None, Some("lo"));
        let (udp, lite, tcp) = (ns.udp_sink(FAR4), udplite_sink(&ns), LanListener::start(&ns));
        Ok(Lab {
            host_if,
            far,
            lo,
            udp,
            lite,
            tcp,
            px4: TcpSink::bind("127.0.0.1"),
            px6: TcpSink::bind("::1"),
            allowed4: UdpSink::bind("127.0.0.1"),
            allowed6: UdpSink::bind("::1"),
            _ns: ns,
        })
    }

    fn mark(&self) -> Mark {
        Mark {
            far: self.far.len(),
            lo: self.lo.len(),
            udp: self.udp.datagrams(),
            lite: self.lite.datagrams(),
            tcp: self.tcp.accepts.load(Ordering::SeqCst),
        }
    }

    fn arrived(&self, truth: &Truth, m: &Mark) -> bool {
        match truth {
            Truth::Far(pred) => self.far.any_since(m.far, pred),
            Truth::HostLo(needle) => self.lo.any_since(m.lo, &|_, f| holds(f, needle)),
            Truth::Udp => self.udp.datagrams() > m.udp,
            Truth::UdpLite => self.lite.datagrams() > m.lite,
            Truth::Tcp => self.tcp.accepts.load(Ordering::SeqCst) > m.tcp,
        }
    }

    /// The proxies and allowed loopback addresses of every run.
    fn opts(&self) -> Vec<String> {
        vec![
            "--proxy".into(),
            self.px4.addr().to_string(),
            "--proxy".into(),
            self.px6.addr().to_string(),
            "--allow".into(),
            self.allowed4.dst(),
            "--allow".into(),
            self.allowed6.dst(),
        ]
    }
}

struct Mark {
    far: usize,
    lo: usize,
    udp: usize,
    lite: usize,
    tcp: usize,
}

/// What shows that an attack arrived.
enum Truth {
    /// A frame at the far end of the LAN.
    Far(FramePred),
    /// A frame holding these bytes on the host's loopback device.
    HostLo(&'static [u8]),
    Udp,
    UdpLite,
    Tcp,
}

/// Whether the baseline arrives.
enum Base {
    Arrives,
    /// It cannot, for this reason (outside isolation): still run, not asserted.
    Cannot(&'static str),
}

struct Vector {
    name: String,
    argv: Vec<OsString>,
    env: Vec<(&'static str, &'static str)>,
    opts: Vec<String>,
    truth: Truth,
    base: Base,
    /// Run after each run (undoing what a root baseline changed in the host's namespace).
    cleanup: Option<fn()>,
    /// The run ends without its summary (no layers line to check).
    kills_supervisor: bool,
}

/// Kills the supervisor (the parent), then sends a datagram to argv[1]:argv[2].
const KILL_THEN_SEND: &str = "import os, signal, socket, sys, time\n\
    os.kill(os.getppid(), signal.SIGKILL)\n\
    time.sleep(0.1)\n\
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    s.sendto(b'attack-kill', (sys.argv[1], int(sys.argv[2])))\n";

fn v(name: &str, bin: &std::path::Path, args: &[&str], truth: Truth, base: Base) -> Vector {
    let mut argv: Vec<OsString> = vec![bin.into()];
    argv.extend(args.iter().map(OsString::from));
    Vector {
        name: name.into(),
        argv,
        env: vec![],
        opts: vec![],
        truth,
        base,
        cleanup: None,
        kills_supervisor: false,
    }
}

// ---------------------------------------------------------------------------
// The attackers, as the identity running them can reach them
// ---------------------------------------------------------------------------

struct Bins {
    route: PathBuf,
    route32: Option<PathBuf>,
    egress: PathBuf,
    race: PathBuf,
    race32: Option<PathBuf>,
    fence: PathBuf,
    memory: PathBuf,
    found: PathBuf,
    found32: Option<PathBuf>,
    found_uring: Option<PathBuf>,
    uring: Option<PathBuf>,
}

fn optional(what: &str, r: Result<PathBuf, String>) -> Option<PathBuf> {
    r.map_err(|e| eprintln!("SKIP {what}: {e}")).ok()
}

impl Bins {
    fn build() -> Bins {
        Bins {
            route: client("attack_route"),
            route32: optional("i386 attack_route", client_build("attack_route", true, false)),
            egress: client("attack_egress"),
            race: client("attack_race"),
            race32: optional("i386 attack_race", client_build("attack_race", true, false)),
            fence: client("attack_fence"),
            memory: client("attack_memory"),
            found: client("attack_found"),
            found32: optional("i386 attack_found", client_build("attack_found", true, false)),
            found_uring: optional(
                "attack_found with liburing",
                client_uring("attack_found", Some("found"), &["-DWITH_URING"]),
            ),
            uring: optional("attack_uring (liburing)", client_uring("attack_uring", None, &[])),
        }
    }

    /// The same binaries copied where nobody can run them.
    fn copied(&self, c: &mut Copies) -> Bins {
        let mut add = |p: &PathBuf| c.add(p, p.file_name().unwrap().to_str().unwrap());
        Bins {
            route: add(&self.route),
            route32: self.route32.as_ref().map(&mut add),
            egress: add(&self.egress),
            race: add(&self.race),
            race32: self.race32.as_ref().map(&mut add),
            fence: add(&self.fence),
            memory: add(&self.memory),
            found: add(&self.found),
            found32: self.found32.as_ref().map(&mut add),
            found_uring: self.found_uring.as_ref().map(&mut add),
            uring: self.uring.as_ref().map(&mut add),
        }
    }
}

// ---------------------------------------------------------------------------
// The vectors
// ---------------------------------------------------------------------------

fn far(pred: impl Fn(u16, &[u8]) -> bool + 'static) -> Truth {
    Truth::Far(Box::new(pred))
}

fn vectors(root: bool, b: &Bins, lab: &Lab) -> Vec<Vector> {
    let (p4, p6) = (lab.px4.port(), lab.px6.port());
    let (a4, a6) = (lab.allowed4.port(), lab.allowed6.port());
    let (udp, lite, tcp) = (lab.udp.port(), lab.lite.port(), lab.tcp.port.to_string());
    let dev = lab.host_if.as_str();
    let lo4_tcp = || far(|p, f| ipv4_to(p, f, "127.0.0.1", 6));
    let lo4_udp = || far(|p, f| ipv4_to(p, f, "127.0.0.1", 17));
    let rthdr = || far(|p, f| ipv6_rthdr_to(p, f, FAR6));
    let to_far4 = || far(|p, f| ipv4_to(p, f, FAR4, 17));
    // The kernel refuses a source route without CAP_NET_RAW (EPERM).
    let source_route = || if root { Base::Arrives } else { Base::Cannot("a source route needs CAP_NET_RAW") };
    let mut out = vec![
        // redteam_routing: options and control messages moving the first hop.
        v("IPV6_RTHDR on a connect to the proxy", &b.route, &["rthdr6", &p6, FAR6], rthdr(), Base::Arrives),
        v(
            "SO_BINDTODEVICE on a connect to the proxy",
            &b.route,
            &["bind-dev", dev, "127.0.0.1", &p4, "tcp"],
            lo4_tcp(),
            Base::Arrives,
        ),
        v(
            "SO_BINDTOIFINDEX on an allowed send",
            &b.route,
            &["bind-ifindex", dev, "127.0.0.1", &a4, "udp"],
            lo4_udp(),
            Base::Arrives,
        ),
        v(
            "IP_UNICAST_IF on an allowed send",
            &b.route,
            &["unicast-if", dev, "127.0.0.1", &a4, "udp"],
            lo4_udp(),
            Base::Arrives,
        ),
        v(
            "IP_OPTIONS loose source route",
            &b.route,
            &["lsrr", "127.0.0.1", &a4, FAR4],
            to_far4(),
            source_route(),
        ),
        v(
            "IP_RETOPTS control message",
            &b.route,
            &["cmsg-retopts", "127.0.0.1", &a4, FAR4],
            to_far4(),
            source_route(),
        ),
        v(
            "IP_PKTINFO control message naming the veth",
            &b.route,
            &["cmsg-pktinfo", "127.0.0.1", &a4, dev],
            lo4_udp(),
            Base::Arrives,
        ),
        v(
            "IPV6_RTHDR control message",
            &b.route,
            &["cmsg-rthdr6", "::1", &a6, FAR6],
            rthdr(),
            Base::Cannot("the kernel does not route a type-2 routing header on a UDP send (redteam_routing)"),
        ),
        v(
            "IPV6_PKTINFO control message naming the veth",
            &b.route,
            &["cmsg-pktinfo6", "::1", &a6, dev],
            far(|p, f| p == 0x86dd && f.len() >= 40 && f[24..40] == std::net::Ipv6Addr::LOCALHOST.octets()),
            Base::Cannot("the kernel refuses ::1 out of another device than lo (redteam_routing)"),
        ),
        v(
            "SO_MARK on an allowed send",
            &b.route,
            &["mark", "127.0.0.1", &a4],
            lo4_udp(),
            Base::Cannot(
                "a mark moves a packet only through policy routing the administrator set up; none here",
            ),
        ),
        // MPTCP (its subflows may leave by other paths; refused as an unsupported protocol).
        v("MPTCP connect", &b.route, &["mptcp", FAR4, &tcp], Truth::Tcp, Base::Arrives),
        // redteam_egress: the same class from the egress gate's attacker.
        v(
            "IPv6 segment routing header to the proxy",
            &b.egress,
            &["srh6", FAR6, "::1", &p6],
            rthdr(),
            Base::Arrives,
        ),
        v(
            "SO_BINDTODEVICE, UDP to an allowed loopback address",
            &b.egress,
            &["bindtodevice", dev, "127.0.0.1", &a4],
            lo4_udp(),
            Base::Arrives,
        ),
        v("IP_PKTINFO device, UDP", &b.egress, &["pktinfo", dev, "127.0.0.1", &a4], lo4_udp(), Base::Arrives),
        v("IPv4 loose source route", &b.egress, &["lsrr", FAR4, "127.0.0.1", &a4], to_far4(), source_route()),
        // redteam_fdrace: fd numbers swapped under calls.
        v(
            "fd swap under a unix sendto",
            &b.race,
            &["fd-swap-sendto", FAR4, &udp, TRIES],
            Truth::Udp,
            Base::Arrives,
        ),
        v(
            "fd swap under a unix connect",
            &b.race,
            &["fd-swap-connect", FAR4, &tcp, TRIES],
            Truth::Tcp,
            Base::Arrives,
        ),
        v(
            "fd swap and address flip, UDP",
            &b.race,
            &["double-race", "udp", FAR4, &udp, TRIES],
            Truth::Udp,
            Base::Arrives,
        ),
        v(
            "fd swap and address flip, TCP",
            &b.race,
            &["double-race", "tcp", FAR4, &tcp, TRIES],
            Truth::Tcp,
            Base::Arrives,
        ),
        // redteam_fence: a TCP socket swapped in after a CONTINUEd unix connect.
        v("TCP swapped in after a CONTINUE", &b.fence, &["tcprace", FAR4, &tcp], Truth::Tcp, Base::Arrives),
        // redteam_memory: a thousand datagrams in one sendmmsg.
        v(
            "sendmmsg of a thousand datagrams",
            &b.memory,
            &["mmsg", FAR4, &udp, "1024", "1400"],
            Truth::Udp,
            Base::Arrives,
        ),
        // redteam_found: UDP-Lite, multicast membership reports.
        v("UDP-Lite connect and send", &b.found, &["udplite", FAR4, &lite], Truth::UdpLite, Base::Arrives),
        v(
            "IPv4 multicast join (IGMP report)",
            &b.found,
            &["igmp", GROUP4, HOST4],
            far(|_, f| holds(f, &GROUP4_BYTES)),
            Base::Arrives,
        ),
        v(
            "IPv6 multicast join (MLD report)",
            &b.found,
            &["mld", GROUP6, dev],
            far(|_, f| holds(f, &GROUP6_BYTES)),
            Base::Arrives,
        ),
    ];
    if let Some(r32) = &b.route32 {
        for sc in ["0", "1"] {
            let mut x = v(
                &format!("i386 SO_BINDTODEVICE (socketcall={sc})"),
                r32,
                &["bind-dev", dev, "127.0.0.1", &p4, "tcp"],
                lo4_tcp(),
                Base::Arrives,
            );
            x.env.push(("ATTACK_SOCKETCALL", sc));
            out.push(x);
        }
    }
    if let Some(r32) = &b.race32 {
        for how in ["vm", "shm"] {
            out.push(v(
                &format!("i386 socketcall rewritten ({how}), UDP"),
                r32,
                &["sc-race", how, "udp", FAR4, &udp, TRIES],
                Truth::Udp,
                Base::Arrives,
            ));
            out.push(v(
                &format!("i386 socketcall rewritten ({how}), TCP"),
                r32,
                &["sc-race", how, "tcp", FAR4, &tcp, TRIES],
                Truth::Tcp,
                Base::Arrives,
            ));
        }
    }
    if let Some(f32) = &b.found32 {
        out.push(v(
            "i386 socketcall rewritten into UDP-Lite",
            f32,
            &["sc-udplite", FAR4, &lite, TRIES],
            Truth::UdpLite,
            Base::Arrives,
        ));
    }
    if let Some(fu) = &b.found_uring {
        out.push(v(
            "io_uring UDP-Lite connect",
            fu,
            &["uring-udplite", FAR4, &lite],
            Truth::UdpLite,
            Base::Arrives,
        ));
    }
    // The stolen seccomp listener answers the program's own connect with CONTINUE.
    out.push(v(
        "stolen seccomp listener, connect CONTINUEd",
        &b.fence,
        &["listener", FAR4, &tcp],
        Truth::Tcp,
        if root {
            Base::Arrives
        } else {
            Base::Cannot("the supervisor is non-dumpable: nobody cannot take its fds")
        },
    ));
    // Killing the supervisor (`attack_fence kill`, here in Python to go on
    // after it): every call the filter hands to the supervisor then fails
    // with ENOSYS (seen: the socket is made, its sendto fails), with or
    // without isolation.
    let mut x = v(
        "the supervisor killed, then a send",
        std::path::Path::new("python3"),
        &["-c", KILL_THEN_SEND, FAR4, &udp],
        Truth::Udp,
        Base::Cannot("with its supervisor gone, the program's sendto fails (ENOSYS)"),
    );
    x.kills_supervisor = true;
    out.push(x);
    if root {
        // CAP_NET_RAW, CAP_NET_ADMIN: root only (nobody cannot even try).
        if let Some(u) = &b.uring {
            out.push(v(
                "io_uring packet socket, frame on the loopback device",
                u,
                &["packet-udp", "127.0.0.2", "9"],
                Truth::HostLo(b"attack-uring"),
                Base::Arrives,
            ));
            out.push(v("io_uring raw socket, UDP", u, &["raw-udp", FAR4, &udp], Truth::Udp, Base::Arrives));
        }
        if let Some(r32) = &b.race32 {
            out.push(v(
                "i386 socketcall(socket) rewritten into a packet socket",
                r32,
                &["sc-race", "vm", "socket", "127.0.0.1", "9", TRIES],
                Truth::HostLo(b"attack_race"),
                Base::Cannot(
                    "the attacker then tries write and send without an address, which fail on a packet \
                     socket (redteam_fdrace)",
                ),
            ));
        }
        // A tunnel device whose remote is the far end carries an allowed send there.
        let mut x = v(
            "vxlan device carrying an allowed send",
            &b.found,
            &["vxlan", TUNNELED, "9", FAR4, &udp, dev],
            Truth::Udp,
            Base::Arrives,
        );
        x.opts = vec!["--incoming".into(), "allow".into(), "--allow".into(), format!("{TUNNELED}:9")];
        x.cleanup = Some(|| {
            let _ = ip(&["link", "del", "stvx0"]);
        });
        out.push(x);
    }
    out
}

// ---------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------

fn fences_off(t: Trace) -> Trace {
    t.opts(["--kernel", "off"]).on_leak("log").env("SOCKSTRACE_TEST_DISABLE", FENCES_OFF)
}

/// Runs every vector without, then with isolation; returns the failures.
fn run_all(who: &str, trace: &dyn Fn() -> Trace, bins: &Bins, lab: &Lab) -> Vec<String> {
    let mut failures = Vec::new();
    for vector in vectors(who == "root", bins, lab) {
        let run = |isolated: bool| {
            let mut t = fences_off(trace()).opts(lab.opts()).opts(&vector.opts);
            for (k, val) in &vector.env {
                t = t.env(k, val);
            }
            if isolated {
                t = t.opts([ISOLATE]);
            }
            let out = t.program(&vector.argv).run();
            if let Some(cleanup) = vector.cleanup {
                cleanup();
            }
            out
        };
        // Isolated first: nothing the baseline sent (a retransmitted SYN, a
        // multicast report the kernel repeats or a leave) is still in flight.
        let mark = lab.mark();
        let out = run(true);
        settle();
        let isolated_arrived = lab.arrived(&vector.truth, &mark);
        let mark = lab.mark();
        let base = run(false);
        let base_arrived = match vector.base {
            Base::Arrives => wait_until(ARRIVES, || lab.arrived(&vector.truth, &mark)),
            Base::Cannot(_) => {
                settle();
                lab.arrived(&vector.truth, &mark)
            }
        };
        let yes = |b: bool| if b { "yes" } else { "no" };
        eprintln!(
            "as {who}: {}: baseline arrives: {}, isolated arrives: {}{}",
            vector.name,
            yes(base_arrived),
            yes(isolated_arrived),
            match vector.base {
                Base::Cannot(why) => format!(" (baseline cannot: {why})"),
                Base::Arrives => String::new(),
            }
        );
        if matches!(vector.base, Base::Arrives) && !base_arrived {
            failures.push(format!(
                "as {who}: baseline: {} did not arrive (the test would prove nothing)\n{}",
                vector.name,
                base.describe()
            ));
        }
        if !vector.kills_supervisor && !out.stderr.contains("network namespace of its own") {
            failures.push(format!("as {who}: {}: the run was not isolated\n{}", vector.name, out.describe()));
        }
        if isolated_arrived {
            failures.push(format!("as {who}: ISOLATED: {} arrived\n{}", vector.name, out.describe()));
        }
    }
    failures
}

macro_rules! lab_or_skip {
    () => {{
        if release_build() {
            skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
        }
        if !is_root() {
            skip!("the test LAN (network namespace, veth pair) needs root");
        }
        match Lab::new() {
            Ok(lab) => lab,
            Err(e) => skip!("test LAN: {e}"),
        }
    }};
}

#[test]
fn with_the_fences_off_isolation_alone_holds_against_every_vector() {
    let lab = lab_or_skip!();
    let bins = Bins::build();
    let failures = run_all("root", &Trace::new, &bins, &lab);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn with_the_fences_off_isolation_alone_holds_against_every_vector_as_nobody() {
    let lab = lab_or_skip!();
    let mut c = Copies::new();
    let bins = Bins::build().copied(&mut c);
    let failures = run_all("nobody", &|| c.as_nobody(), &bins, &lab);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// The fences against the supervisor and other processes (Landlock's, not
// isolation's), with the Landlock domain off under isolation
// ---------------------------------------------------------------------------
//
// Vectors not run above, and why:
// - `fd-swap-listen`, `userns-bind`, `accept-check`: listeners, not sends; a
//   listener made under isolation is in the program's namespace, out of reach
//   from the host's;
// - AF_VSOCK: its only peer here is the hypervisor (this kernel has no
//   loopback transport), which a test may not contact. vsock is not a
//   network-namespaced family: isolation does not stop it. The syscall
//   layer refuses its bind, listen and connect (`unsupported-family`,
//   redteam_fdrace); under `--on-leak log` such a leak is let through, as
//   any other;
// - `attack_memory stream` and `control`: bounds on the supervisor's copies,
//   not sends (`mmsg` runs above);
// - SCTP: this kernel has no SCTP (EPROTONOSUPPORT), and no red-team test
//   uses it;
// - `packet-hibits`: makes a packet socket and sends nothing (the packet
//   socket vectors run above through io_uring).

/// `attack_fence hold HOST PORT` outside sockstrace: a connected UDP socket
/// in the host's namespace; killed on drop.
struct Holder {
    child: std::process::Child,
    pid: i64,
    fd: i64,
}

impl Holder {
    fn start(program: &std::path::Path, nobody: bool, host: &str, port: &str) -> Holder {
        use std::io::BufRead;
        let mut cmd = if nobody {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        };
        let mut child = cmd
            .args(["hold", host, port])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the holder");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("holder");
        let field = |k: &str| sockstrace_tests::util::field(&line, "hold:", k);
        Holder { pid: field("pid"), fd: field("fd"), child }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A socket borrowed from a process outside the run (`pidfd_getfd` on a
/// process of the same user, its UDP socket connected to the far end), with
/// the Landlock domain off: (baseline arrived, isolated arrived, isolated run).
fn borrow_a_socket(lab: &Lab, nobody: bool) -> (bool, bool, sockstrace_tests::Outcome) {
    let mut c = Copies::new();
    let fence = c.add(&client("attack_fence"), "attack_fence");
    let run = |isolated: bool| {
        let holder = Holder::start(&fence, nobody, FAR4, &lab.udp.port());
        let trace = if nobody { c.as_nobody() } else { Trace::new() };
        let trace = if isolated { fences_off(trace).opts([ISOLATE]) } else { fences_off(trace) };
        let mark = lab.mark();
        let (pid, fd) = (holder.pid.to_string(), holder.fd.to_string());
        let out = trace.program([fence.as_os_str(), "steal".as_ref(), pid.as_ref(), fd.as_ref()]).run();
        let arrived = if isolated {
            settle();
            lab.arrived(&Truth::Udp, &mark)
        } else {
            wait_until(ARRIVES, || lab.arrived(&Truth::Udp, &mark))
        };
        (arrived, out)
    };
    let (isolated, out) = run(true);
    let (base, base_out) = run(false);
    assert!(base, "baseline: the borrowed socket sent nothing\n{}", base_out.describe());
    (base, isolated, out)
}

/// Without root the program runs in a user namespace of its own, and
/// `pidfd_getfd` on a process outside it fails (EPERM) even with the Landlock
/// domain off; without isolation the same program sends on the borrowed socket.
#[test]
fn a_socket_borrowed_from_outside_the_run_sends_nothing_isolated_as_nobody() {
    let lab = lab_or_skip!();
    let (_, isolated, out) = borrow_a_socket(&lab, true);
    assert!(!isolated, "as nobody, isolated: a borrowed socket sent to the LAN\n{}", out.describe());
    assert!(out.stdout.contains("pidfd_getfd: errno=1 "), "{}", out.describe());
}

/// As root the program runs in a user namespace with the full identity map:
/// root inside holds no `CAP_SYS_PTRACE` over a process of the initial one,
/// so `pidfd_getfd` on a root process outside the run fails (EPERM) with the
/// Landlock domain off. (Without that user namespace it borrowed the host's
/// socket and sent on it: "steal: ok sent=22", the datagrams at the far end.)
#[test]
fn a_socket_borrowed_from_outside_the_run_sends_nothing_isolated() {
    let lab = lab_or_skip!();
    let (_, isolated, out) = borrow_a_socket(&lab, false);
    assert!(!isolated, "as root, isolated: a borrowed socket sent to the LAN\n{}", out.describe());
    assert!(out.stdout.contains("pidfd_getfd: errno=1 "), "{}", out.describe());
}

/// As root, with the Landlock domain off, the program reaches neither its
/// supervisor (`ptrace`, `process_vm_writev`), which lives in the host's
/// namespace, nor the host's network namespace (`setns` on `/proc/PID/ns/net`
/// of a process there, here the test's): the program's user namespace (the
/// full identity map) gives root inside no capability over the initial one.
/// Without it, seen: "ptrace: ok", "process_vm_writev: ok", and the datagram
/// of `nsenter -t PID -n netprobe udp-sendto` at the far end.
#[test]
fn a_root_program_cannot_reach_the_hosts_namespace_isolated() {
    let lab = lab_or_skip!();
    let failures = supervisor_and_host_namespace_out_of_reach(
        &lab,
        "root",
        &Trace::new,
        &client("attack_fence"),
        sockstrace_tests::netprobe(),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same as nobody: the supervisor is non-dumpable and outside the
/// program's user namespace, and the program holds no capability over the
/// host's network namespace.
#[test]
fn a_program_without_root_cannot_reach_the_hosts_namespace_isolated() {
    let lab = lab_or_skip!();
    let mut c = Copies::new();
    let fence = c.add(&client("attack_fence"), "attack_fence");
    let probe = c.add(sockstrace_tests::netprobe(), "netprobe");
    let failures =
        supervisor_and_host_namespace_out_of_reach(&lab, "nobody", &|| c.as_nobody(), &fence, &probe);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn supervisor_and_host_namespace_out_of_reach(
    lab: &Lab,
    who: &str,
    trace: &dyn Fn() -> Trace,
    fence: &std::path::Path,
    probe: &std::path::Path,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (attack, op) in [("ptrace", "ptrace"), ("vmwrite", "process_vm_writev")] {
        let out = fences_off(trace()).opts([ISOLATE]).program([fence.as_os_str(), attack.as_ref()]).run();
        if out.stdout.contains(&format!("{op}: ok")) {
            failures.push(format!("as {who}: isolated, {op} of the supervisor worked\n{}", out.describe()));
        }
    }
    let before = lab.udp.datagrams();
    let out = fences_off(trace())
        .opts([ISOLATE])
        .program([
            "nsenter".as_ref(),
            "-t".as_ref(),
            std::process::id().to_string().as_ref(),
            "-n".as_ref(),
            probe.as_os_str(),
            "udp-sendto".as_ref(),
            FAR4.as_ref(),
            lab.udp.port().as_ref(),
        ])
        .run();
    settle();
    if out.code() == 0 {
        failures.push(format!("as {who}: nsenter into the host's namespace succeeded\n{}", out.describe()));
    }
    if lab.udp.datagrams() != before {
        failures.push(format!(
            "as {who}: isolated, setns into the host's namespace reached the LAN\n{}",
            out.describe()
        ));
    }
    failures
}
