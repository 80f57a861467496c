//! The witness against the real kernel (root only; each test says why it skips).
//!
//! The traced program is this test binary itself, started again with [`CHILD_ENV`] naming the
//! socket operations to make; [`child_helper`] is its body. It joins the witness's cgroup the
//! way the supervisor's child will (writing "0" to `procs_fd` between fork and exec) and prints
//! one [`RESULT_TAG`] line per operation: the socket cookie (`SO_COOKIE`), the errno (0 for
//! success) and the local port.

use std::{
    fs,
    io::{self, ErrorKind, Read as _},
    net::{SocketAddr, TcpListener, UdpSocket},
    os::{
        fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tokio::sync::mpsc::UnboundedReceiver;

use super::{object, query, KernelEvent, Witness};
use crate::policy::Policy;

const CHILD_ENV: &str = "SOCKSTRACE_WITNESS_CHILD";
const RESULT_TAG: &str = "WITNESS-RESULT";
const CHILD_TEST: &str = "kernel::witness_tests::child_helper";

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root");
    }
    if !object::is_embedded() {
        return Some("built with AYA_BUILD_SKIP, no eBPF object");
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------------------------

/// Not a test of its own: the body of the traced child, which the witness tests start with
/// `--ignored --exact` and [`CHILD_ENV`]. Ignored, so that a plain test run lists it as ignored
/// instead of counting a pass for a body that did nothing; started without [`CHILD_ENV`], it
/// fails.
#[test]
#[ignore = "the traced child's body, started by the witness tests"]
fn child_helper() {
    let plan = std::env::var(CHILD_ENV).expect("child_helper runs only as the witness tests' child");
    for step in plan.split_whitespace() {
        let (op, addr) = step.split_once('=').expect("plan steps are op=addr");
        let addr: SocketAddr = addr.parse().expect("plan addresses are socket addresses");
        let (cookie, errno, local_port) = child_step(op, addr);
        println!("{RESULT_TAG} {op} {addr} {cookie} {errno} {local_port}");
    }
}

/// Datagrams the `flood` operation sends: more events than the ring buffer holds.
const FLOOD: usize = 15_000;
/// Sockets the `churn` operation creates and closes: every set of `SOCKETS` takes about three.
const CHURN: usize = 3 * (sockstrace_common::SOCKETS_MAX_ENTRIES / sockstrace_common::SOCKETS_WAYS) as usize;
/// ... sending on its own socket after each this many (`churn`), or this many (`churn-often`:
/// at a run's size, a set takes a newcomer from each cookie run of 4,096 that covers it, one in
/// two on two CPUs: a socket keeps its facts if it is used between two newcomers to its set,
/// which a use every 1,000 new sockets missed once in a few runs on a busy machine, where the
/// runs interleave).
const CHURN_SEND_EVERY: usize = 1000;
const CHURN_SEND_OFTEN: usize = 100;

/// How often the `churn` or `churn-often` operation sends on its own socket.
fn churn_send_every(op: &str) -> usize {
    if op == "churn" {
        CHURN_SEND_EVERY
    } else {
        CHURN_SEND_OFTEN
    }
}

/// One operation: returns (cookie, errno, local port).
///
/// - `tcp`, `tcp6` (an IPv6 socket to the v4-mapped address), `udp`: connect or send to `addr`;
/// - `tfo`: a TCP Fast Open `sendto` (an implicit connect);
/// - `listen`: bind `addr` and listen;
/// - `raw`: create an ICMP raw socket;
/// - `mark`: set `SO_MARK` (an option that moves the first hop) on a UDP socket;
/// - `flood`: [`FLOOD`] UDP sends to `addr` (reports the last errno);
/// - `loop`: listen on `addr`, connect to it and accept: reports the *accepted* socket's
///   cookie and the connecting socket's local port (the accepted socket's peer);
/// - `unspec`: bind an IPv4 socket to `addr` given as an `AF_UNSPEC` sockaddr (the kernel takes
///   it for INADDR_ANY);
/// - `churn`: a UDP send to `addr`, then [`CHURN`] UDP sockets created and closed, with a send
///   on the first socket after every [`CHURN_SEND_EVERY`] of them.
fn child_step(op: &str, addr: SocketAddr) -> (u64, i32, u16) {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let (family, sock_type, protocol, target) = match op {
        "tcp" | "tfo" | "listen" | "loop" | "unspec" => (family, libc::SOCK_STREAM, 0, addr),
        "udp" | "flood" | "mark" | "churn" | "churn-often" => (family, libc::SOCK_DGRAM, 0, addr),
        "tcp6" => (libc::AF_INET6, libc::SOCK_STREAM, 0, v4_mapped(addr)),
        "raw" => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP, addr),
        other => panic!("unknown child op {other}"),
    };
    let fd = match new_socket(family, sock_type, protocol) {
        Ok(fd) => fd,
        Err(errno) => return (0, errno, 0),
    };
    let fd_raw = fd.as_raw_fd();
    let cookie = so_cookie(fd_raw);
    let (mut storage, len) = sockaddr(target);
    if op == "unspec" {
        storage.ss_family = libc::AF_UNSPEC as libc::sa_family_t;
    }
    let sa = (&raw const storage).cast::<libc::sockaddr>();
    let payload = b"leak";
    if op == "loop" {
        return serve_and_connect(&fd, sa, len);
    }
    let send = |flags: libc::c_int| {
        // SAFETY: `sa` points at a live sockaddr of `len` bytes, `payload` is a live buffer of
        // the length we pass, `fd_raw` is an open socket we own.
        unsafe { libc::sendto(fd_raw, payload.as_ptr().cast(), payload.len(), flags, sa, len) as libc::c_int }
    };
    let ret = match op {
        "udp" => send(0),
        "flood" => (0..FLOOD).fold(0, |_, _| send(0)),
        "churn" | "churn-often" => (1..=CHURN).fold(send(0), |ret, n| {
            drop(new_socket(family, libc::SOCK_DGRAM, 0).expect("a UDP socket"));
            if n % churn_send_every(op) == 0 {
                ret.min(send(0))
            } else {
                ret
            }
        }),
        "tfo" => send(libc::MSG_FASTOPEN),
        // SAFETY: as for `send`.
        "listen" => match unsafe { libc::bind(fd_raw, sa, len) } {
            // SAFETY: an open socket we own.
            0 => unsafe { libc::listen(fd_raw, 1) },
            err => err,
        },
        // SAFETY: as for `send`.
        "unspec" => unsafe { libc::bind(fd_raw, sa, len) },
        "raw" => 0,
        "mark" => {
            let mark: libc::c_int = 7;
            let size = std::mem::size_of_val(&mark) as libc::socklen_t;
            // SAFETY: `mark` is a live int of the size we pass; an open socket we own.
            unsafe {
                libc::setsockopt(fd_raw, libc::SOL_SOCKET, libc::SO_MARK, (&raw const mark).cast(), size)
            }
        }
        // SAFETY: as for `send`.
        _ => unsafe { libc::connect(fd_raw, sa, len) },
    };
    if ret < 0 {
        return (cookie, last_errno(), 0);
    }
    (cookie, 0, local_port(fd_raw))
}

fn new_socket(family: i32, sock_type: i32, protocol: i32) -> Result<OwnedFd, i32> {
    // SAFETY: plain system call on integer arguments.
    let raw = unsafe { libc::socket(family, sock_type | libc::SOCK_CLOEXEC, protocol) };
    if raw < 0 {
        return Err(last_errno());
    }
    // SAFETY: `raw` is a socket we just created and own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The `loop` operation on the listening socket `listener`, to be bound at `sa`.
fn serve_and_connect(listener: &OwnedFd, sa: *const libc::sockaddr, len: libc::socklen_t) -> (u64, i32, u16) {
    // SAFETY: `sa` points at a live sockaddr of `len` bytes; the fd is an open socket.
    let listening = unsafe {
        libc::bind(listener.as_raw_fd(), sa, len) == 0 && libc::listen(listener.as_raw_fd(), 1) == 0
    };
    if !listening {
        return (0, last_errno(), 0);
    }
    let port = local_port(listener.as_raw_fd());
    let (storage, len) = sockaddr(SocketAddr::from(([127, 0, 0, 1], port)));
    let client = match new_socket(libc::AF_INET, libc::SOCK_STREAM, 0) {
        Ok(fd) => fd,
        Err(errno) => return (0, errno, 0),
    };
    // SAFETY: a live sockaddr of `len` bytes; open sockets; accept may take null peer pointers.
    let accepted = unsafe {
        if libc::connect(client.as_raw_fd(), (&raw const storage).cast(), len) != 0 {
            return (0, last_errno(), 0);
        }
        libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
    };
    if accepted < 0 {
        return (0, last_errno(), 0);
    }
    // SAFETY: `accepted` is a socket accept just gave us.
    let accepted = unsafe { OwnedFd::from_raw_fd(accepted) };
    (so_cookie(accepted.as_raw_fd()), 0, local_port(client.as_raw_fd()))
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

fn v4_mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}

fn so_cookie(fd: RawFd) -> u64 {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are live locals of the sizes we pass.
    let ret = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_COOKIE, (&raw mut cookie).cast(), &mut len)
    };
    assert_eq!(ret, 0, "SO_COOKIE: {}", io::Error::last_os_error());
    cookie
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for every sockaddr.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn local_port(fd: RawFd) -> u16 {
    // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are live locals; the kernel writes at most `len` bytes.
    let ret = unsafe { libc::getsockname(fd, (&raw mut storage).cast(), &mut len) };
    if ret != 0 {
        return 0;
    }
    // Both sockaddr_in and sockaddr_in6 keep the port right after the family.
    // SAFETY: the kernel filled an inet sockaddr; the storage is aligned for either.
    u16::from_be(unsafe { (*(&raw const storage).cast::<libc::sockaddr_in>()).sin_port })
}

// ---------------------------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------------------------

/// One line of the child's report.
#[derive(Debug)]
struct Outcome {
    op: String,
    cookie: u64,
    errno: i32,
    local_port: u16,
}

/// Runs the child in the cgroup whose `cgroup.procs` is `procs`; returns its pid and outcomes.
fn run_child(procs: BorrowedFd<'_>, plan: &str) -> (u32, Vec<Outcome>) {
    let procs = procs.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", CHILD_TEST, "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, plan)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and calls only write(2), which is
    // async-signal-safe. `procs` stays open until exec (close-on-exec) since its owner outlives
    // this call.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(procs, b"0".as_ptr().cast(), 1) == 1 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {}\n{stdout}", output.status);
    let outcomes = stdout
        .lines()
        .filter_map(|line| line.strip_prefix(RESULT_TAG))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Outcome {
                op: fields[0].to_string(),
                cookie: fields[2].parse().unwrap(),
                errno: fields[3].parse().unwrap(),
                local_port: fields[4].parse().unwrap(),
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(outcomes.len(), plan.split_whitespace().count(), "{stdout}");
    (pid, outcomes)
}

/// Listeners on 127.0.0.2 that nothing may reach (when enforcing).
struct Sinks {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Sinks {
    fn new() -> Self {
        let tcp = TcpListener::bind("127.0.0.2:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.2:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        Self { tcp, udp }
    }

    fn tcp_addr(&self) -> SocketAddr {
        self.tcp.local_addr().unwrap()
    }

    fn udp_addr(&self) -> SocketAddr {
        self.udp.local_addr().unwrap()
    }

    /// (TCP connections, UDP payloads) that arrived within `wait`.
    fn received(&self, wait: Duration) -> (usize, Vec<Vec<u8>>) {
        let deadline = Instant::now() + wait;
        let (mut connections, mut datagrams) = (0, Vec::new());
        loop {
            match self.tcp.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.read(&mut [0; 1]);
                    connections += 1;
                }
                Err(err) => assert_eq!(err.kind(), ErrorKind::WouldBlock),
            }
            let mut buf = [0u8; 64];
            match self.udp.recv_from(&mut buf) {
                Ok((n, _)) => datagrams.push(buf[..n].to_vec()),
                Err(err) => assert_eq!(err.kind(), ErrorKind::WouldBlock),
            }
            if Instant::now() >= deadline {
                return (connections, datagrams);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Receives events until `enough` says so, or 5 s have passed.
async fn collect(
    rx: &mut UnboundedReceiver<KernelEvent>,
    enough: impl Fn(&[KernelEvent]) -> bool,
) -> Vec<KernelEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while !enough(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => got.push(event),
            Ok(None) | Err(_) => break,
        }
    }
    got
}

fn attached_counts(dir: BorrowedFd<'_>) -> Vec<(&'static str, u32)> {
    query::ATTACH_TYPES
        .iter()
        .map(|&(name, attach_type)| {
            (name, query::attached(dir, attach_type).unwrap_or_else(|e| panic!("{e:#}")))
        })
        .collect()
}

fn witness(policy: &Policy, enforce: bool) -> Witness {
    Witness::start(policy, enforce).unwrap_or_else(|err| panic!("Witness::start: {err:#}"))
}

fn by_cookie(events: &[KernelEvent], cookie: u64) -> Option<&KernelEvent> {
    events.iter().find(|e| e.cookie == cookie)
}

#[test]
fn enforcing_witness_refuses_leaks_reports_them_and_leaves_no_trace() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let sinks = Sinks::new();
    let policy = Policy { proxies: vec![proxy_addr], ..Policy::default() };
    runtime().block_on(async {
        let mut witness = witness(&policy, true);
        let mut events = witness.take_events().unwrap();
        assert!(witness.take_events().is_err(), "events can be taken once only");
        let dir = fs::File::open(witness.cgroup_path()).unwrap();
        for (hook, count) in attached_counts(std::os::fd::AsFd::as_fd(&dir)) {
            assert_eq!(count, 1, "{hook} attached");
        }

        let plan = format!(
            "tcp={sink_tcp} tcp6={sink_tcp} udp={sink_udp} tcp={proxy_addr} listen=0.0.0.0:0 raw=0.0.0.0:0 \
             tfo={sink_tcp}",
            sink_tcp = sinks.tcp_addr(),
            sink_udp = sinks.udp_addr(),
        );
        let (pid, out) = run_child(witness.procs_fd().expect("a cgroup of its own"), &plan);
        let [sink4, sink6, udp, via_proxy, listen, raw, tfo] = &out[..] else { unreachable!() };
        // TCP Fast Open's implicit connect passes the connect hook, when the client side is on.
        let tfo_client = fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen")
            .is_ok_and(|v| v.trim().parse::<u32>().is_ok_and(|v| v & 1 != 0));
        let tfo_errno = if tfo_client { libc::EPERM } else { libc::EOPNOTSUPP };
        assert_eq!(tfo.errno, tfo_errno, "{tfo:?}");
        assert_eq!((sink4.op.as_str(), sink4.errno), ("tcp", libc::EPERM), "{sink4:?}");
        assert_eq!(sink6.errno, libc::EPERM, "{sink6:?}");
        assert_eq!(udp.errno, libc::EPERM, "{udp:?}");
        assert_eq!(via_proxy.errno, 0, "the proxy is allowed: {via_proxy:?}");
        assert_eq!(listen.errno, 0, "listen is reported, not refused: {listen:?}");
        assert_eq!(raw.errno, libc::EPERM, "raw sockets are refused at creation: {raw:?}");
        assert_eq!(sinks.received(Duration::from_millis(200)), (0, vec![]), "nothing reaches the sinks");

        let mut leaks = vec![sink4.cookie, sink6.cookie, udp.cookie, listen.cookie];
        if tfo_client {
            leaks.push(tfo.cookie);
        }
        let got = collect(&mut events, |got| {
            leaks.iter().all(|&c| by_cookie(got, c).is_some()) && got.iter().any(|e| e.hook == "sock_create")
        })
        .await;
        let expect = |cookie: u64, hook: &str, reason: &str, denied: bool| {
            let event = by_cookie(&got, cookie).unwrap_or_else(|| panic!("no event for {hook}: {got:#?}"));
            assert_eq!((event.hook, event.reason, event.denied), (hook, reason, denied), "{event:#?}");
            assert_eq!(event.pid, pid, "{event:#?}");
            assert_eq!(event.cgroup_id, witness.cgroup_id(), "{event:#?}");
            assert_ne!(event.netns_cookie, 0);
            assert!(!event.comm.is_empty());
            event
        };
        assert_eq!(expect(sink4.cookie, "connect4", "direct-tcp", true).dst, Some(sinks.tcp_addr()));
        let mapped = expect(sink6.cookie, "connect6", "direct-tcp", true);
        assert_eq!((mapped.dst, mapped.socket.family), (Some(sinks.tcp_addr()), libc::AF_INET6));
        assert_eq!(expect(udp.cookie, "sendmsg4", "direct-udp", true).dst, Some(sinks.udp_addr()));
        let listened = expect(listen.cookie, "listen", "inbound-listen", false);
        assert_eq!(listened.local, Some(SocketAddr::from(([0, 0, 0, 0], listen.local_port))));
        let created = got.iter().find(|e| e.hook == "sock_create").unwrap();
        assert_eq!((created.reason, created.denied, created.pid), ("raw-socket", true, pid));
        assert_eq!(created.socket.sock_type, libc::SOCK_RAW);
        assert!(by_cookie(&got, via_proxy.cookie).is_none(), "the proxy connect is no leak");
        if tfo_client {
            assert_eq!(expect(tfo.cookie, "connect4", "direct-tcp", true).dst, Some(sinks.tcp_addr()));
        } else {
            eprintln!("note: TCP Fast Open client off (net.ipv4.tcp_fastopen), its hook not checked");
        }

        let facts = witness.socket_facts(sink4.cookie).expect("facts for the refused socket");
        assert_eq!((facts.cgroup_id, facts.pid, facts.uid), (witness.cgroup_id(), pid, 0));
        assert_eq!((facts.dst, facts.connects, facts.leaks, facts.denied), (Some(sinks.tcp_addr()), 1, 1, 1));
        assert_eq!(facts.netns_cookie, by_cookie(&got, sink4.cookie).unwrap().netns_cookie);
        let facts = witness.socket_facts(via_proxy.cookie).expect("facts for the proxy socket");
        eprintln!("kernel facts of the proxy socket: {}", serde_json::to_string(&facts).unwrap());
        assert_eq!((facts.dst, facts.connects, facts.leaks), (Some(proxy_addr), 1, 0));
        assert_eq!(facts.local, Some(SocketAddr::from(([127, 0, 0, 1], via_proxy.local_port))));
        assert!(facts.tcp_states.starts_with(&["SYN_SENT", "ESTABLISHED"]), "{facts:?}");
        let facts = witness.socket_facts(udp.cookie).expect("facts for the UDP socket");
        assert_eq!((facts.sends, facts.denied, facts.socket.protocol), (1, 1, libc::IPPROTO_UDP));
        assert!(witness.socket_facts(u64::MAX).is_none());
        assert_eq!(witness.dropped(), 0);

        // Detached: nothing left on the cgroup. (The kernel detaches a link when its last
        // descriptor closes; a concurrent test's child may hold copies between fork and exec,
        // so this waits for the kernel to agree.)
        witness.detach_verified().unwrap_or_else(|err| panic!("{err:#}"));
        for (hook, count) in attached_counts(std::os::fd::AsFd::as_fd(&dir)) {
            assert_eq!(count, 0, "{hook} still attached");
        }
        drop(dir);
        let path = witness.cgroup_path().to_path_buf();
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
        assert!(!path.exists(), "{} left behind", path.display());
        assert!(events.recv().await.is_none(), "the channel closes after stop");

        // A process in a new cgroup at the same path is not affected.
        fs::create_dir(&path).unwrap();
        let procs = fs::File::options().write(true).open(path.join("cgroup.procs")).unwrap();
        let (_, out) = run_child(std::os::fd::AsFd::as_fd(&procs), &format!("tcp={}", sinks.tcp_addr()));
        fs::remove_dir(&path).unwrap();
        assert_eq!(out[0].errno, 0, "{:?}", out[0]);
        assert_eq!(sinks.received(Duration::from_millis(200)).0, 1);
    });
}

#[test]
fn observing_witness_lets_leaks_through_and_reports_them() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let sinks = Sinks::new();
    let policy = Policy { proxies: vec!["127.0.0.1:9".parse().unwrap()], ..Policy::default() };
    runtime().block_on(async {
        let mut witness = witness(&policy, false);
        let mut events = witness.take_events().unwrap();
        let plan = format!("tcp={} udp={} loop=127.0.0.1:0", sinks.tcp_addr(), sinks.udp_addr());
        let (pid, out) = run_child(witness.procs_fd().expect("a cgroup of its own"), &plan);
        assert_eq!((out[0].errno, out[1].errno, out[2].errno), (0, 0, 0), "{out:?}");
        assert_eq!(sinks.received(Duration::from_millis(300)), (1, vec![b"leak".to_vec()]));
        let got =
            collect(&mut events, |got| out[..2].iter().all(|o| by_cookie(got, o.cookie).is_some())).await;
        let tcp = by_cookie(&got, out[0].cookie).unwrap_or_else(|| panic!("{got:#?}"));
        assert_eq!((tcp.hook, tcp.reason, tcp.denied, tcp.pid), ("connect4", "direct-tcp", false, pid));
        let udp = by_cookie(&got, out[1].cookie).unwrap_or_else(|| panic!("{got:#?}"));
        assert_eq!((udp.hook, udp.reason, udp.denied), ("sendmsg4", "direct-udp", false));
        let facts = witness.socket_facts(out[0].cookie).expect("facts");
        assert_eq!((facts.leaks, facts.denied), (1, 0));
        assert_eq!(facts.local.map(|l| l.port()), Some(out[0].local_port));
        // An accepted socket: the kernel learns its peer and states from sockops alone.
        let accepted = witness.socket_facts(out[2].cookie).expect("facts for the accepted socket");
        assert_eq!(accepted.dst, Some(SocketAddr::from(([127, 0, 0, 1], out[2].local_port))), "{accepted:?}");
        assert_eq!(accepted.tcp_states.first(), Some(&"ESTABLISHED"), "{accepted:?}");
        assert_eq!(accepted.cgroup_id, witness.cgroup_id(), "{accepted:?}");
        assert_eq!(accepted.local.map(|l| l.ip()), Some([127, 0, 0, 1].into()), "{accepted:?}");
        let path = witness.cgroup_path().to_path_buf();
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
        assert!(!path.exists());
    });
}

/// `SOCKETS` is a cache of bounded size: a socket still in use keeps its facts however many
/// newer sockets come and go (each set of the array takes a new socket about three times here,
/// twelve times at a run's size on two CPUs, where the socket is used ten times as often: see
/// [`CHURN_SEND_OFTEN`]), while the facts of the sockets gone make room.
#[test]
fn a_socket_in_use_keeps_its_facts_while_many_newer_ones_come_and_go() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let sinks = Sinks::new();
    let policy = Policy { proxies: vec!["127.0.0.1:9".parse().unwrap()], ..Policy::default() };
    for map_use in [object::Use::Audit, object::Use::Run { udp_relay: false, inbound: false }] {
        runtime().block_on(async {
            let preload = Witness::preload(map_use);
            let witness = Witness::start_preloaded(preload, &policy, false)
                .unwrap_or_else(|err| panic!("Witness::start_preloaded: {err:#}"));
            let full = sockstrace_common::SOCKETS_MAX_ENTRIES / sockstrace_common::SOCKETS_WAYS;
            let sets = if map_use == object::Use::Audit { full } else { object::run_sockets_sets() };
            assert_eq!(witness.socket_sets(), sets, "{map_use:?}");
            let every = if map_use == object::Use::Audit { "churn" } else { "churn-often" };
            churn_keeps_the_facts_in_use(witness, &sinks, every);
        });
    }
}

fn churn_keeps_the_facts_in_use(witness: Witness, sinks: &Sinks, op: &str) {
    {
        let plan = format!("{op}={}", sinks.udp_addr());
        let (pid, out) = run_child(witness.procs_fd().expect("a cgroup of its own"), &plan);
        assert_eq!(out[0].errno, 0, "{out:?}");
        let sends = 1 + CHURN / churn_send_every(op);
        let facts = witness.socket_facts(out[0].cookie).expect("facts of the socket in use");
        assert_eq!((facts.pid, facts.cgroup_id), (pid, witness.cgroup_id()), "{facts:?}");
        assert_eq!(
            (facts.sends, facts.leaks, facts.dst),
            (sends as u64, sends as u64, Some(sinks.udp_addr()))
        );
        assert_eq!(facts.local.map(|l| l.port()), Some(out[0].local_port), "{facts:?}");
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
    }
}

/// Lines the kernel logged (through `crate::logging::capture`) containing `needle`, once there
/// are any, or none after 5 s.
async fn kernel_lines_with(needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = crate::logging::capture::lines_with(needle);
        if !lines.is_empty() || Instant::now() >= deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_full_ring_buffer_counts_what_it_drops() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    // Before the object is loaded: the programs log at the logger's level (debug).
    crate::logging::capture::install();
    let sinks = Sinks::new();
    runtime().block_on(async {
        let mut witness = witness(&Policy::default(), true);
        // Nobody reads the ring buffer while the child floods it.
        let (_, out) = run_child(
            witness.procs_fd().expect("a cgroup of its own"),
            &format!("flood={}", sinks.udp_addr()),
        );
        assert_eq!(out[0].errno, libc::EPERM);
        let dropped = witness.dropped();
        assert!(dropped > 0, "{FLOOD} events cannot all fit");
        let mut events = witness.take_events().unwrap();
        let path = witness.cgroup_path().to_path_buf();
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
        let mut received = 0;
        while let Some(event) = events.recv().await {
            assert_eq!((event.cookie, event.denied), (out[0].cookie, true));
            received += 1;
        }
        assert_eq!(received + dropped, FLOOD as u64, "every event is either delivered or counted");
        assert!(!path.exists());
        // The count is what userspace says on stderr (`kernel::lost`): the programs log nothing
        // at the default level, which would cost each of them verifier work on every run.
        let said = kernel_lines_with("ring buffer full").await;
        assert!(said.is_empty(), "{said:#?}");
    });
}

#[test]
fn hooks_log_what_they_do_not_expect() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    crate::logging::capture::install();
    runtime().block_on(async {
        let mut witness = witness(&Policy::default(), false);
        let _events = witness.take_events().unwrap();
        // bind4 sees the AF_UNSPEC sockaddr (the kernel then binds INADDR_ANY): a debug line.
        let (_, out) = run_child(witness.procs_fd().expect("a cgroup of its own"), "unspec=0.0.0.0:0");
        assert_eq!(out[0].errno, 0, "{out:?}");
        let said = kernel_lines_with("sockaddr family 0 on socket family 2").await;
        assert_eq!(
            said.first().map(String::as_str),
            Some("sockstrace: kernel: debug: sockaddr family 0 on socket family 2")
        );
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
    });
}

#[test]
fn dropping_a_witness_removes_its_cgroup() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let witness = witness(&Policy::default(), false);
    let path = witness.cgroup_path().to_path_buf();
    assert!(path.is_dir());
    drop(witness);
    assert!(!path.exists(), "{} left behind", path.display());
}

/// The kernel's walk over a full rule table (`bpf_loop`, up to [`MAX_RULES`]) gives the host
/// judge's verdict and reason on every operation; the rules that matter sit at both ends of the
/// table. Loopback destinations only (and `allow_loopback` off, so the rules decide).
#[test]
fn kernel_walks_a_full_rule_table_like_the_host_judge() {
    use sockstrace_common::{judge_remote, reason, Ip6, MAX_RULES};

    use super::backstop::{compile, host_bytes};

    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let real = ["127.0.0.5:5000", "127.0.0.6", "[::1]:5001"];
    let fillers = MAX_RULES as usize - 2 - real.len();
    let allow: Vec<String> =
        (0..fillers).map(|i| format!("10.{i}.0.0/16")).chain(real.iter().map(|r| r.to_string())).collect();
    let policy = Policy {
        proxies: vec!["127.0.0.4:4000".parse().unwrap(), "[::1]:4001".parse().unwrap()],
        allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
        ..Policy::default()
    };
    let backstop = compile(&policy, true).unwrap();
    assert_eq!(backstop.config.rule_count, MAX_RULES, "a full table");
    let plan = "tcp=127.0.0.4:4000 udp=127.0.0.4:4000 tcp=127.0.0.4:4002 tcp6=127.0.0.4:4000 \
                tcp=127.0.0.5:5000 udp=127.0.0.5:5000 tcp=127.0.0.5:5002 udp=127.0.0.5:53 \
                tcp=127.0.0.6:6000 udp=127.0.0.6:53 tcp6=127.0.0.6:6001 tcp=127.0.0.7:80 udp=127.0.0.7:53 \
                tcp=[::1]:4001 udp=[::1]:4001 udp=[::1]:5001 tcp=[::1]:5002 tcp6=127.0.0.1:4001";
    // What the host judge says of each step: the reason code (NONE: allowed).
    let host: Vec<u8> = plan
        .split_whitespace()
        .map(|step| {
            let (op, addr) = step.split_once('=').unwrap();
            let addr: SocketAddr = addr.parse().unwrap();
            let sock_type = if op == "udp" { libc::SOCK_DGRAM } else { libc::SOCK_STREAM };
            let rule_at = |i: u32| backstop.rules.get(i as usize).copied();
            let ip = Ip6::from_bytes(host_bytes(addr.ip()));
            judge_remote(&backstop.config, rule_at, ip, addr.port(), sock_type as u16, 0)
        })
        .collect();
    assert!(host.contains(&reason::NONE) && host.iter().any(|&r| r != reason::NONE), "{host:?}");
    runtime().block_on(async {
        let mut witness = witness(&policy, true);
        let mut events = witness.take_events().unwrap();
        let (_, out) = run_child(witness.procs_fd().expect("a cgroup of its own"), plan);
        let leaks: Vec<u64> =
            out.iter().zip(&host).filter(|(_, &r)| r != reason::NONE).map(|(o, _)| o.cookie).collect();
        let got = collect(&mut events, |got| leaks.iter().all(|&c| by_cookie(got, c).is_some())).await;
        for ((outcome, &expected), step) in out.iter().zip(&host).zip(plan.split_whitespace()) {
            if expected == reason::NONE {
                assert_ne!(outcome.errno, libc::EPERM, "{step} is allowed: {outcome:?}");
                assert!(by_cookie(&got, outcome.cookie).is_none(), "{step} is no leak: {got:#?}");
            } else {
                assert_eq!(outcome.errno, libc::EPERM, "{step} is refused: {outcome:?}");
                let event = by_cookie(&got, outcome.cookie).unwrap_or_else(|| panic!("{step}: {got:#?}"));
                assert_eq!(
                    (event.reason, event.denied),
                    (reason::name(expected), true),
                    "{step}: {event:#?}"
                );
            }
        }
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
    });
}

#[test]
fn attached_witness_covers_sub_cgroups_and_leaves_its_cgroup_alone() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let root = super::cgroup2_root().unwrap_or_else(|err| panic!("{err:#}"));
    let parent = root.join(format!("sockstrace-witness-attach-{}", std::process::id()));
    let below = parent.join("below");
    fs::create_dir_all(&below).unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let sinks = Sinks::new();
    let policy = Policy { proxies: vec![proxy.local_addr().unwrap()], ..Policy::default() };
    // Relative to the mount, as `--cgroup` takes it.
    let relative = parent.strip_prefix(&root).unwrap();
    let resolved = super::resolve_cgroup(&root, Some(relative)).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(resolved, parent);
    runtime().block_on(async {
        let mut witness = Witness::attach(&policy, true, &resolved, &Default::default())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(witness.procs_fd().is_none(), "an existing cgroup is not for joining");
        let mut events = witness.take_events().unwrap();
        let all: Vec<&str> = query::ATTACH_TYPES.iter().map(|&(name, _)| name).collect();
        assert_eq!(witness.attached_hooks().unwrap(), all);

        // A process in a cgroup below: the parent's programs run for it.
        let procs = fs::File::options().write(true).open(below.join("cgroup.procs")).unwrap();
        let plan = format!("tcp={} udp={}", sinks.tcp_addr(), sinks.udp_addr());
        let (pid, out) = run_child(std::os::fd::AsFd::as_fd(&procs), &plan);
        assert_eq!((out[0].errno, out[1].errno), (libc::EPERM, libc::EPERM), "{out:?}");
        assert_eq!(sinks.received(Duration::from_millis(200)), (0, vec![]), "nothing reaches the sinks");
        let got = collect(&mut events, |got| out.iter().all(|o| by_cookie(got, o.cookie).is_some())).await;
        let below_id = fs::metadata(&below).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        for o in &out {
            let event = by_cookie(&got, o.cookie).unwrap_or_else(|| panic!("no event for {o:?}: {got:#?}"));
            assert_eq!((event.pid, event.denied, event.cgroup_id), (pid, true, below_id), "{event:#?}");
        }
        // The setsockopt hook too: a routing option is refused and reported (it has no cookie).
        let (pid, out) = run_child(std::os::fd::AsFd::as_fd(&procs), &format!("mark={}", sinks.udp_addr()));
        assert_eq!(out[0].errno, libc::EPERM, "{out:?}");
        let is_mark = |e: &KernelEvent| e.hook == "setsockopt" && e.pid == pid;
        let got = collect(&mut events, |got| got.iter().any(is_mark)).await;
        let event =
            got.iter().find(|e| is_mark(e)).unwrap_or_else(|| panic!("no setsockopt event: {got:#?}"));
        assert_eq!(
            (event.denied, event.reason, event.option),
            (true, "routing-option", Some((1, 36))),
            "{event:#?}"
        );

        witness.detach_verified().unwrap_or_else(|err| panic!("{err:#}"));
        assert!(witness.attached_hooks().unwrap().is_empty());
        witness.stop().unwrap_or_else(|err| panic!("stop: {err:#}"));
        assert!(below.exists(), "the watched cgroup is left in place");
    });
    fs::remove_dir(&below).unwrap();
    fs::remove_dir(&parent).unwrap();
}

#[test]
fn resolves_cgroup_arguments() {
    if let Some(why) = skip_reason() {
        crate::testing::skipped(why);
        return;
    }
    let root = super::cgroup2_root().unwrap_or_else(|err| panic!("{err:#}"));
    let resolve = |arg: &str| super::resolve_cgroup(&root, Some(std::path::Path::new(arg)));
    assert_eq!(super::resolve_cgroup(&root, None).unwrap(), root);
    assert_eq!(resolve(root.to_str().unwrap()).unwrap(), root);
    assert_eq!(resolve("/").unwrap(), root, "the /proc/PID/cgroup form of the root");
    let err = resolve("no-such-cgroup-here").unwrap_err().to_string();
    assert!(err.contains("no cgroup no-such-cgroup-here"), "{err}");
    assert!(resolve("../x").unwrap_err().to_string().contains("'..'"));
    assert!(resolve("/etc").is_err(), "/etc is no cgroup");
}
