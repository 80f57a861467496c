//! UDP through the proxy: under `--on-leak socksify`, a datagram to a destination the policy
//! does not allow goes through a SOCKS5 proxy's UDP relay (RFC 1928 UDP ASSOCIATE), and the
//! program receives the replies from the original peer's address.
//!
//! The proxy is Dante (`danted`, Debian's dante-server), started by each test on loopback:
//! clients reach it on 127.0.0.1, and it sends to the targets from 127.0.0.3 (IPv4) or ::1
//! (IPv6), so a target that sees 127.0.0.3 saw the proxy, never the program. The targets
//! (an echo server, a DNS server on 127.0.0.2:53, a counting sink) record every source.
//! Needs root: only the kernel layer's recvmsg hooks can show the original peer.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sockstrace_tests::dante::{Dante, PROXY_EXTERNAL_V4};
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{client, is_root, skip, Microsocks, Outcome, Trace};

/// How a [`Target`] answers.
#[derive(Clone, Copy)]
enum Answer {
    Nothing,
    Echo,
    /// A DNS answer (one A record, 10.1.2.3) to any query.
    Dns,
}

/// A UDP server that records the source of every datagram, and answers as told.
struct Target {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Target {
    fn bind(addr: &str, answer: Answer) -> Target {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let size: libc::c_int = 16 << 20;
        // SAFETY: setsockopt on a live socket with a live int.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                    seen.lock().unwrap().push(from);
                    let reply = match answer {
                        Answer::Nothing => continue,
                        Answer::Echo => buf[..n].to_vec(),
                        Answer::Dns => dns_answer(&buf[..n]),
                    };
                    let _ = socket.send_to(&reply, from);
                }
            })
        };
        Target { addr, seen, stop, thread: Some(thread) }
    }

    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn sources(&self) -> Vec<SocketAddr> {
        self.seen.lock().unwrap().clone()
    }

    /// Every datagram came from the proxy (`ip`), and from none of `program_ports`.
    fn assert_all_from_the_proxy(&self, ip: &str, program_ports: &[u16], out: &Outcome) {
        let sources = self.sources();
        assert!(!sources.is_empty(), "the target {} saw nothing\n{}", self.addr, out.describe());
        let ip: IpAddr = ip.parse().unwrap();
        for from in &sources {
            assert!(
                from.ip() == ip && !program_ports.contains(&from.port()),
                "the target {} saw {from}: not the proxy's {ip} (program ports {program_ports:?})\n{}",
                self.addr,
                out.describe()
            );
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to a DNS query: its id and question, one A record 10.1.2.3.
fn dns_answer(query: &[u8]) -> Vec<u8> {
    if query.len() < 12 {
        return Vec::new();
    }
    let mut end = 12;
    while end < query.len() && query[end] != 0 {
        end += usize::from(query[end]) + 1;
    }
    let end = (end + 5).min(query.len());
    let mut out = query[..2].to_vec();
    out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
    out
}

fn via(dante: &Dante) -> Trace {
    Trace::new().proxy(dante.addr).on_leak("socksify").timeout(Duration::from_secs(90))
}

/// The run's `udp_proxy` summary object.
fn udp_summary(out: &Outcome) -> serde_json::Value {
    out.summary_obj()
        .get("udp_proxy")
        .cloned()
        .unwrap_or_else(|| panic!("no udp_proxy in the summary\n{}", out.describe()))
}

/// Exactly one event per flow, each socksified, naming `dst`.
fn assert_one_socksified_flow(out: &Outcome, dst: &str, syscall: &str) {
    out.assert_report_well_formed();
    let flows = out.events_where(|e| e.s("dst") == dst);
    assert_eq!(flows.len(), 1, "one event for the flow to {dst}\n{}", out.describe());
    let e = flows[0];
    assert_eq!(
        (e.s("syscall"), e.s("protocol"), e.s("verdict"), e.s("action")),
        (syscall, "udp", "leak", "socksified"),
        "{e}\n{}",
        out.describe()
    );
    let udp = udp_summary(out);
    assert!(udp["state"].as_str().unwrap_or_default().starts_with("on (UDP ASSOCIATE via"), "{udp}");
}

/// A Python client: unconnected sendto/recvfrom, sendmsg/recvmsg, a non-blocking socket, and a
/// connected socket (send/recv, getpeername). Prints "TAG PAYLOAD IP PORT" per reply and the
/// local port of every socket.
const PY_CLIENT: &str = r#"
import select, socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
peer = (sys.argv[1], int(sys.argv[2]))
def show(tag, data, addr):
    print(tag, data.decode(), addr[0], addr[1], flush=True)
def sock():
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(5)
    return s
s = sock()
s.sendto(b'one', peer)
print('local', s.getsockname()[1])
d, a = s.recvfrom(100); show('recvfrom', d, a)
s.sendmsg([b'two'], [], 0, peer)
d, _, _, a = s.recvmsg(100); show('recvmsg', d, a)
n = socket.socket(fam, socket.SOCK_DGRAM); n.setblocking(False)
n.sendto(b'three', peer)
print('local', n.getsockname()[1])
assert select.select([n], [], [], 5)[0], 'no reply on the non-blocking socket'
d, a = n.recvfrom(100); show('nonblocking', d, a)
c = sock(); c.connect(peer); c.send(b'four')
d = c.recv(100); show('connected', d, c.getpeername())
print('local', c.getsockname()[1])
"#;

fn program_ports(stdout: &str) -> Vec<u16> {
    stdout.lines().filter_map(|l| l.strip_prefix("local ")).filter_map(|p| p.trim().parse().ok()).collect()
}

fn python_echo_through_the_proxy(target_addr: &str, external: &str) {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    let echo = Target::bind(target_addr, Answer::Echo);
    let out = via(&dante).program(["/usr/bin/python3", "-c", PY_CLIENT, &echo.host(), &echo.port()]).run();
    out.assert_code(0);
    for (tag, payload) in
        [("recvfrom", "one"), ("recvmsg", "two"), ("nonblocking", "three"), ("connected", "four")]
    {
        let line = format!("{tag} {payload} {} {}", echo.host(), echo.port());
        assert!(out.stdout.lines().any(|l| l == line), "the program saw {line:?}\n{}", out.describe());
    }
    echo.assert_all_from_the_proxy(external, &program_ports(&out.stdout), &out);
    assert_eq!(echo.sources().len(), 4, "four datagrams, each once\n{}", out.describe());
    out.assert_report_well_formed();
    let flows = out.events_where(|e| e.s("action") == "socksified");
    // Three sockets sent to the peer: one flow each (the second datagram of the first is counted).
    assert_eq!(flows.len(), 3, "one event per socket and peer\n{}", out.describe());
    let udp = udp_summary(&out);
    assert_eq!((udp["flows"].as_i64(), udp["datagrams_out"].as_i64()), (Some(3), Some(4)), "{udp}");
    assert_eq!(udp["datagrams_in"].as_i64(), Some(4), "{udp}");
}

#[test]
fn python_echo_client_gets_replies_from_the_echo_server_over_ipv4() {
    python_echo_through_the_proxy("127.0.0.2:0", PROXY_EXTERNAL_V4);
}

#[test]
fn python_echo_client_gets_replies_from_the_echo_server_over_ipv6() {
    python_echo_through_the_proxy("[::1]:0", "::1");
}

#[test]
fn dig_gets_its_answer_through_the_proxy() {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    if !Path::new("/usr/bin/dig").exists() {
        skip!("dig is not installed (dnsutils)");
    }
    let dns = Target::bind("127.0.0.2:53", Answer::Dns);
    let out = via(&dante)
        .program(["/usr/bin/dig", "@127.0.0.2", "+tries=1", "+time=5", "+short", "example.test", "A"])
        .run();
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "10.1.2.3", "dig's answer came back\n{}", out.describe());
    dns.assert_all_from_the_proxy(PROXY_EXTERNAL_V4, &[], &out);
    let e = out.the_event("the DNS flow", |e| e.s("dst") == "127.0.0.2:53");
    assert_eq!((e.s("reason"), e.s("action")), ("dns-udp", "socksified"), "{e}");
    assert_one_socksified_flow(&out, "127.0.0.2:53", e.s("syscall"));
}

#[test]
fn sendmmsg_and_recvmmsg_go_through_the_proxy_over_ipv4_and_ipv6() {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    let probe = client("udp_socks_probe");
    for (bind, external) in [("127.0.0.2:0", PROXY_EXTERNAL_V4), ("[::1]:0", "::1")] {
        let echo = Target::bind(bind, Answer::Echo);
        let out = via(&dante).program([probe.to_str().unwrap(), "mmsg", &echo.host(), &echo.port()]).run();
        out.assert_code(0);
        for payload in ["alpha", "beta", "gamma"] {
            let line = format!("mmsg {payload} {} {}", echo.host(), echo.port());
            assert!(out.stdout.lines().any(|l| l == line), "recvmmsg saw {line:?}\n{}", out.describe());
        }
        echo.assert_all_from_the_proxy(external, &[], &out);
        assert_one_socksified_flow(&out, &echo.addr.to_string(), "sendmmsg");
    }
}

/// 10,000 datagrams, paced as the probe paces them, arrive through the proxy, each once.
fn burst(mode: &str) {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    let sink = Target::bind("127.0.0.2:0", Answer::Nothing);
    let probe = client("udp_socks_probe");
    let out = via(&dante).program([probe.to_str().unwrap(), mode, "10000", &sink.host(), &sink.port()]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("sent 10000"), "{}", out.describe());
    let udp = udp_summary(&out);
    assert_eq!(udp["datagrams_out"].as_i64(), Some(10_000), "the relay carried every datagram: {udp}");
    assert_eq!(udp["dropped"].as_i64(), Some(0), "{udp}");
    wait_until(Duration::from_secs(10), || sink.sources().len() >= 10_000);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.sources().len(), 10_000, "every datagram arrived, once\n{}", out.describe());
    sink.assert_all_from_the_proxy(PROXY_EXTERNAL_V4, &[], &out);
    let syscall = if mode == "burst" { "sendto" } else { "connect" };
    assert_one_socksified_flow(&out, &sink.addr.to_string(), syscall);
}

#[test]
fn a_burst_of_10000_sendto_datagrams_arrives_without_loss() {
    burst("burst");
}

#[test]
fn a_burst_of_10000_datagrams_on_a_connected_socket_arrives_without_loss() {
    burst("burst-connected");
}

#[test]
fn a_proxy_without_udp_leaves_udp_blocked_and_the_summary_says_why() {
    if !is_root() {
        skip!("needs root (the kernel layer)");
    }
    let socks = match Microsocks::start() {
        Ok(s) => s,
        Err(e) => skip!("no microsocks: {e}"),
    };
    let sink = Target::bind("127.0.0.2:0", Answer::Nothing);
    let probe = client("udp_socks_probe");
    let out = Trace::new()
        .proxy(socks.addr())
        .on_leak("socksify")
        .program([probe.to_str().unwrap(), "burst", "1", &sink.host(), &sink.port()])
        .run();
    assert_ne!(out.code(), 0, "the datagram is refused\n{}", out.describe());
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.sources().is_empty(), "nothing arrived: {:?}\n{}", sink.sources(), out.describe());
    let e = out.the_event("the refused datagram", |e| e.s("dst") == sink.addr.to_string());
    assert_eq!(e.s("action"), "blocked", "{e}");
    let state = udp_summary(&out)["state"].as_str().unwrap_or_default().to_owned();
    assert!(state.starts_with("off (") && state.contains("UDP ASSOCIATE"), "{state}\n{}", out.describe());
    assert!(out.stderr.contains("UDP through the proxy: off"), "{}", out.describe());
}

#[test]
fn without_the_kernel_layer_udp_stays_blocked_and_the_summary_says_why() {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    let sink = Target::bind("127.0.0.2:0", Answer::Nothing);
    let probe = client("udp_socks_probe");
    let out = via(&dante)
        .opts(["--kernel", "off"])
        .program([probe.to_str().unwrap(), "burst", "1", &sink.host(), &sink.port()])
        .run();
    assert_ne!(out.code(), 0, "the datagram is refused\n{}", out.describe());
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.sources().is_empty(), "nothing arrived: {:?}\n{}", sink.sources(), out.describe());
    let state = udp_summary(&out)["state"].as_str().unwrap_or_default().to_owned();
    assert!(state.starts_with("off (needs the kernel layer"), "{state}\n{}", out.describe());
}

/// A Python client whose datagrams to the shim addresses the syscall layer lets through
/// (`SOCKSTRACE_TEST_DISABLE=udp-leak-through`), so that only the kernel layer judges them:
/// two sockets connected through the proxy (IPv4, and IPv6 to a v4-mapped peer), each with
/// its own shim, then sends to a host service on `::1` and to the IPv4 socket's shim from
/// other sockets (plainly and v4-mapped). Prints "TAG sent" or "TAG refused ERRNO" for each.
const PY_SHIM_PROBE: &str = r#"
import socket, sys
echo_port, sink_port = int(sys.argv[1]), int(sys.argv[2])
def try_send(tag, s, addr):
    try:
        s.sendto(tag.encode(), addr)
        print(tag, 'sent', flush=True)
    except OSError as e:
        print(tag, 'refused', e.errno, flush=True)
def connected(fam, peer, payload):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect((peer, echo_port))
    s.send(payload.encode())
    print('echo', s.recv(100).decode(), flush=True)
    return s
a = connected(socket.AF_INET, '127.0.0.2', 'relay-v4')
b = connected(socket.AF_INET6, '::ffff:127.0.0.2', 'relay-v6')
# The kernel's view of a's peer: its shim on 127.83.84.1 (getpeername shows the original).
me = '%04X' % a.getsockname()[1]
shim_port = None
for line in open('/proc/net/udp').read().splitlines()[1:]:
    f = line.split()
    if f[1].endswith(':' + me) and f[2].startswith('0154537F:'):
        shim_port = int(f[2].split(':')[1], 16)
assert shim_port, 'no shim seen for the IPv4 socket'
try_send('own-shim', a, ('127.83.84.1', shim_port))
t = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try_send('fresh-to-host', t, ('::1', sink_port))
try_send('shimmed-to-host', b, ('::1', sink_port))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try_send('other-shim', u, ('127.83.84.1', shim_port))
try_send('other-shim-mapped', t, ('::ffff:127.83.84.1', shim_port))
"#;

/// The kernel layer lets a program socket's UDP reach its own shims only: a datagram that got
/// past the syscall layer to a host service on `::1`, or to another socket's shim, is refused
/// in the kernel (and reported by it), while the proxied sockets keep working.
#[test]
fn the_kernel_layer_lets_udp_reach_only_the_sockets_own_shim() {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => skip!("no UDP-capable SOCKS5 proxy: {e}"),
    };
    let echo = Target::bind("127.0.0.2:0", Answer::Echo);
    let host_service = Target::bind("[::1]:0", Answer::Nothing);
    let out = via(&dante)
        .env("SOCKSTRACE_TEST_DISABLE", "udp-leak-through")
        .program(["/usr/bin/python3", "-c", PY_SHIM_PROBE, &echo.port(), &host_service.port()])
        .run();
    out.assert_code(0);
    for payload in ["relay-v4", "relay-v6"] {
        let line = format!("echo {payload}");
        assert!(out.stdout.lines().any(|l| l == line), "the program saw {line:?}\n{}", out.describe());
    }
    // A socket's own shim is what the kernel lets it reach.
    assert!(out.stdout.lines().any(|l| l == "own-shim sent"), "{}", out.describe());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        host_service.sources().is_empty(),
        "the host service on ::1 got {:?}\n{}",
        host_service.sources(),
        out.describe()
    );
    for tag in ["fresh-to-host", "shimmed-to-host", "other-shim", "other-shim-mapped"] {
        let line = format!("{tag} refused {}", libc::EPERM);
        assert!(out.stdout.lines().any(|l| l == line), "{line:?} expected\n{}", out.describe());
    }
    // The kernel reports each refused datagram: two to the host service (an IPv6 socket with a
    // shim of its own, one without), two to the IPv4 socket's shim (from an IPv4 socket, and
    // v4-mapped from an IPv6 one); none for the socket's datagram to its own shim.
    out.assert_report_well_formed();
    let kernel = out.events_where(|e| e.s("source") == "kernel");
    for e in &kernel {
        assert_eq!(
            (e.s("syscall"), e.s("protocol"), e.s("verdict"), e.s("reason"), e.s("action"), e.i("errno")),
            ("sendmsg", "udp", "leak", "direct-udp", "blocked", Some(1)),
            "{e}\n{}",
            out.describe()
        );
    }
    let families = |dst: &str| {
        let mut f: Vec<&str> = kernel.iter().filter(|e| e.s("dst") == dst).map(|e| e.s("family")).collect();
        f.sort_unstable();
        f
    };
    assert_eq!(families(&host_service.addr.to_string()), ["inet6", "inet6"], "{}", out.describe());
    let shims: Vec<&str> =
        kernel.iter().map(|e| e.s("dst")).filter(|d| d.starts_with("127.83.84.1:")).collect();
    assert_eq!(shims.len(), 2, "{}", out.describe());
    assert_eq!(families(shims[0]), ["inet", "inet6"], "{}", out.describe());
    assert_eq!(kernel.len(), 4, "{}", out.describe());
    let udp = udp_summary(&out);
    assert_eq!(udp["dropped"].as_i64(), Some(0), "no stray datagram reached a shim: {udp}");
}
