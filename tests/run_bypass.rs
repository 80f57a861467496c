//! Every way around the proxy that the supervisor closes (issue "Close every
//! way around the proxy"): TCP Fast Open, raw and packet sockets, io_uring,
//! vfork / clone(CLONE_VM) / raw clone3 children, bad pointers, a thread
//! racing the address, and the supervisor dying under the program.
//!
//! Each test proves the vector at the receiving end (a sink that must count
//! nothing) and in the report; where the vector could silently not work at
//! all on this machine, a baseline run without sockstrace first shows that
//! it does reach the sink.

use std::sync::Mutex;
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::util::{field, process_dead, wait_until, Sysctl};
use sockstrace_tests::{
    direct_client, is_root, netprobe, skip, uringprobe_working, Direct, LeakSpec, Outcome, TcpSink, Trace,
    UdpSink,
};

const T: Duration = Duration::from_secs(30);

/// netprobe with `args`, without sockstrace.
fn np(args: &[&str]) -> Direct {
    direct_client(netprobe(), args)
}

// ---------------------------------------------------------------------------
// TCP Fast Open
// ---------------------------------------------------------------------------

/// TFO tests change a machine-wide sysctl (when needed): one at a time.
static TFO: Mutex<()> = Mutex::new(());

/// Enables the client side of TCP Fast Open (bit 1 of net.ipv4.tcp_fastopen)
/// for the test, restored on drop; `Err` says why the test must skip.
fn tfo_enabled() -> Result<Sysctl, String> {
    let cur = Sysctl::read("net/ipv4/tcp_fastopen").ok_or("no net.ipv4.tcp_fastopen sysctl")?;
    let cur: u32 = cur.parse().map_err(|_| format!("net.ipv4.tcp_fastopen = {cur:?}"))?;
    if cur & 1 == 1 {
        return Sysctl::set("net/ipv4/tcp_fastopen", &cur.to_string());
    }
    if !is_root() {
        return Err(format!("net.ipv4.tcp_fastopen = {cur} (client side off) and not root to enable it"));
    }
    Sysctl::set("net/ipv4/tcp_fastopen", &(cur | 1).to_string())
}

fn tfo_blocked(cmd: &str, op: &str) {
    let _one = TFO.lock().unwrap_or_else(|e| e.into_inner());
    let _sysctl = match tfo_enabled() {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    // Baseline: without sockstrace the Fast Open send reaches the sink.
    let base = TcpSink::bind("127.0.0.2");
    let out = np(&[cmd, &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline {cmd} failed: {}{}", out.stdout, out.stderr);
    assert!(base.wait_bytes("netprobe-tfo\n".len(), T), "baseline {cmd}: data never arrived: {}", out.stdout);

    let sink = TcpSink::bind("127.0.0.2");
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe([cmd, &sink.host(), &sink.port()]).run();
    out.assert_refused_leak(op, LeakSpec { syscalls: &[op], ..LeakSpec::tcp(&sink.dst()) });
    sink.assert_nothing_arrived("TCP Fast Open send to a sink");
    px.assert_nothing_arrived("the program never named the proxy");
}

#[test]
fn tfo_sendto_blocked() {
    tfo_blocked("tfo-sendto", "sendto");
}

#[test]
fn tfo_sendmsg_blocked() {
    tfo_blocked("tfo-sendmsg", "sendmsg");
}

#[test]
fn tfo_sendto_to_proxy_allowed() {
    // The same Fast Open send to the proxy goes through, data included: the
    // block above is about the destination, not about MSG_FASTOPEN.
    let _one = TFO.lock().unwrap_or_else(|e| e.into_inner());
    let _sysctl = match tfo_enabled() {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe(["tfo-sendto", &px.host(), &px.port()]).run();
    out.assert_code(0);
    assert!(px.wait_accepts(1, T), "{}", out.describe());
    assert!(px.wait_bytes("netprobe-tfo\n".len(), T), "TFO data never reached the proxy\n{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
    out.the_event("allowed Fast Open sendto to the proxy", |e| {
        e.s("syscall") == "sendto" && e.s("dst") == px.dst() && e.is_allowed() && e.s("reason") == "proxy"
    });
}

// ---------------------------------------------------------------------------
// Raw and packet sockets
// ---------------------------------------------------------------------------

/// The refused socket() event.
fn assert_socket_refused(out: &Outcome, reason: &str, family: &str) {
    out.assert_report_well_formed();
    let (pid, tid) = out.actor();
    let ev = out.the_event(&format!("socket leak with reason {reason}"), |e| {
        e.is_leak() && e.s("syscall") == "socket" && e.s("reason") == reason
    });
    assert_eq!(ev.s("source"), "seccomp", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
    assert_eq!(ev.i("errno"), Some(1), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("family"), family, "{ev}\n{}", out.describe());
    assert_eq!((ev.i("pid"), ev.i("tid")), (Some(pid), Some(tid)), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("comm"), "netprobe", "{ev}\n{}", out.describe());
    assert!(out.summary_count("leaks") >= 1, "{}", out.describe());
    assert!(out.summary_count("blocked") >= 1, "{}", out.describe());
    assert!(out.stderr.contains("LEAK"), "no human LEAK line\n{}", out.describe());
}

#[test]
fn raw_icmp_socket_refused() {
    if !is_root() {
        skip!("raw sockets need CAP_NET_RAW: without root the kernel refuses them anyway");
    }
    let base = np(&["raw-socket", "4"]);
    assert_eq!(base.code, 0, "baseline raw socket failed: {}", base.stdout);
    let out = Trace::new().netprobe(["raw-socket", "4"]).run();
    out.assert_client_eperm("socket");
    assert_socket_refused(&out, "raw-socket", "inet");
    let ev = out.events_where(|e| e.s("syscall") == "socket")[0];
    assert_eq!(ev.s("type"), "raw", "{ev}\n{}", out.describe());
}

#[test]
fn raw_icmpv6_socket_refused() {
    if !is_root() {
        skip!("raw sockets need CAP_NET_RAW: without root the kernel refuses them anyway");
    }
    let base = np(&["raw-socket", "6"]);
    assert_eq!(base.code, 0, "baseline raw socket failed: {}", base.stdout);
    let out = Trace::new().netprobe(["raw-socket", "6"]).run();
    out.assert_client_eperm("socket");
    assert_socket_refused(&out, "raw-socket", "inet6");
}

#[test]
fn raw_udp_datagram_never_arrives() {
    if !is_root() {
        skip!("raw sockets need CAP_NET_RAW");
    }
    // Baseline: a hand-made UDP datagram on a raw socket reaches the sink.
    let base = UdpSink::bind("127.0.0.2");
    let out = np(&["raw-udp", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline raw-udp failed: {}", out.stdout);
    assert!(base.wait_datagrams(1, T), "baseline raw UDP datagram never arrived: {}", out.stdout);
    assert_eq!(base.payloads()[0], b"netprobe-raw-udp");

    let sink = UdpSink::bind("127.0.0.2");
    let out = Trace::new().netprobe(["raw-udp", &sink.host(), &sink.port()]).run();
    out.assert_client_eperm("socket");
    sink.assert_nothing_arrived("raw socket datagram");
    assert_socket_refused(&out, "raw-socket", "inet");
}

#[test]
fn packet_socket_refused() {
    if !is_root() {
        skip!("packet sockets need CAP_NET_RAW");
    }
    let base = np(&["packet-socket"]);
    assert_eq!(base.code, 0, "baseline packet socket failed: {}", base.stdout);
    let out = Trace::new().netprobe(["packet-socket"]).run();
    out.assert_client_eperm("socket");
    assert_socket_refused(&out, "packet-socket", "packet");
}

#[test]
fn packet_udp_frame_never_arrives() {
    if !is_root() {
        skip!("packet sockets and network namespaces need root");
    }
    // A frame written to lo by a packet socket has no route attached, so the
    // kernel routes it as input: it drops 127.0.0.0/8 destinations unless
    // route_localnet is on, and local sources unless accept_local is on.
    // Both are set in a namespace of the test's own (the machine's settings
    // stay as they are), where sink and program run.
    let ns = match NetNs::bare() {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace: {e}"),
    };
    ns.sysctl("net/ipv4/conf/lo/route_localnet", "1").expect("route_localnet in the test namespace");
    ns.sysctl("net/ipv4/conf/lo/accept_local", "1").expect("accept_local in the test namespace");
    // Baseline: an IPv4/UDP packet written to lo through AF_PACKET reaches
    // the sink.
    let base = ns.udp_sink("127.0.0.2");
    let np_path = netprobe().to_string_lossy().into_owned();
    let out = ns.exec([np_path.as_str(), "packet-udp", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline packet-udp failed: {}{}", out.stdout, out.stderr);
    assert!(base.wait_datagrams(1, T), "baseline packet-socket datagram never arrived: {}", out.stdout);
    assert_eq!(base.payloads()[0], b"netprobe-packet-udp");

    let sink = ns.udp_sink("127.0.0.2");
    let out = Trace::new()
        .wrapper(["ip", "netns", "exec", ns.name()])
        .netprobe(["packet-udp", &sink.host(), &sink.port()])
        .run();
    out.assert_client_eperm("socket");
    sink.assert_nothing_arrived("packet socket frame");
    assert_socket_refused(&out, "packet-socket", "packet");
}

// ---------------------------------------------------------------------------
// io_uring
// ---------------------------------------------------------------------------

#[test]
fn io_uring_setup_refused() {
    let client = match uringprobe_working() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    let out = Trace::new().netprobe_at(client, ["setup"]).run();
    out.assert_client_eperm("setup");
    out.assert_report_well_formed();
    let (pid, tid) = out.actor();
    let ev = out.the_event("io_uring_setup leak", |e| e.s("syscall") == "io_uring_setup");
    assert!(ev.is_leak(), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("reason"), "io-uring", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
    assert_eq!(ev.i("errno"), Some(1), "{ev}\n{}", out.describe());
    assert_eq!((ev.i("pid"), ev.i("tid")), (Some(pid), Some(tid)), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("comm"), "uringprobe", "{ev}\n{}", out.describe());
    assert_eq!(out.summary_count("leaks"), 1, "{}", out.describe());
}

#[test]
fn io_uring_connect_never_reaches_sink() {
    let client = match uringprobe_working() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    // Baseline: the client's io_uring connect reaches the sink.
    let base = TcpSink::bind("127.0.0.2");
    let out = direct_client(client, &["connect", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline io_uring connect failed: {}", out.stdout);
    assert!(base.wait_bytes("uringprobe-tcp\n".len(), T), "baseline: {}", out.stdout);

    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new().netprobe_at(client, ["connect", &sink.host(), &sink.port()]).run();
    out.assert_client_eperm("setup");
    assert!(!out.stdout.contains("uring-connect"), "{}", out.describe());
    sink.assert_nothing_arrived("io_uring connect");
    out.assert_report_well_formed();
    assert!(
        out.leaks().iter().any(|e| e.s("syscall") == "io_uring_setup" && e.s("reason") == "io-uring"),
        "{}",
        out.describe()
    );
}

#[test]
fn io_uring_setup_raw_syscall_refused() {
    // Without liburing: the raw system call, as a static or hand-written
    // program would make it.
    let base = np(&["uring-setup-raw"]);
    if base.code != 0 {
        skip!("io_uring_setup does not work here without sockstrace: {}", base.stdout.trim());
    }
    let out = Trace::new().netprobe(["uring-setup-raw"]).run();
    out.assert_client_eperm("setup");
    out.assert_report_well_formed();
    let ev = out.the_event("io_uring_setup leak", |e| e.s("syscall") == "io_uring_setup");
    assert!(
        ev.is_leak() && ev.s("reason") == "io-uring" && ev.s("action") == "blocked",
        "{ev}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// vfork, clone(CLONE_VM), raw clone3
// ---------------------------------------------------------------------------

fn shared_memory_child_blocked(cmd: &str, same_process: bool) {
    let sink = TcpSink::bind("127.0.0.2");
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe([cmd, &sink.host(), &sink.port()]).run();
    out.assert_refused_leak("connect", LeakSpec::tcp(&sink.dst()));
    sink.assert_nothing_arrived(cmd);
    let main = field(&out.stdout, "main:", "pid");
    let (pid, tid) = out.actor();
    if same_process {
        assert_eq!(pid, main, "a thread shares the pid\n{}", out.describe());
        assert_ne!(tid, main, "the thread has its own tid\n{}", out.describe());
    } else {
        assert_ne!(pid, main, "the child is a process of its own\n{}", out.describe());
    }
}

#[test]
fn vfork_child_blocked() {
    shared_memory_child_blocked("vfork-connect", false);
}

#[test]
fn clone_vm_child_blocked() {
    shared_memory_child_blocked("clone-vm-connect", false);
}

#[test]
fn raw_clone3_thread_blocked() {
    shared_memory_child_blocked("clone3-thread-connect", true);
}

#[test]
fn shared_memory_children_reach_the_proxy() {
    // The same children connect to the proxy fine: the blocks above are
    // about the destination.
    for cmd in ["vfork-connect", "clone-vm-connect", "clone3-thread-connect"] {
        let px = TcpSink::bind("127.0.0.1");
        let out = Trace::new().proxy(px.addr()).netprobe([cmd, &px.host(), &px.port()]).run();
        out.assert_code(0);
        assert!(px.wait_bytes("netprobe-shared\n".len(), T), "{cmd}\n{}", out.describe());
        out.assert_no_leaks();
    }
}

// ---------------------------------------------------------------------------
// Bad pointers
// ---------------------------------------------------------------------------

const BAD_POINTER_OPS: &[&str] =
    &["connect-bad", "connect-straddle", "sendto-bad", "sendto-baddata", "sendmsg-bad", "sendmsg-badhdr"];

#[test]
fn bad_pointers_get_efault() {
    // Baseline: the kernel itself answers EFAULT to each of these calls.
    let px = TcpSink::bind("127.0.0.1");
    let base = np(&["bad-pointers", &px.host(), &px.port()]);
    for op in BAD_POINTER_OPS {
        assert!(base.stdout.contains(&format!("{op}: errno=14 (")), "baseline {op}: {}", base.stdout);
    }

    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe(["bad-pointers", &px.host(), &px.port()]).run();
    for op in BAD_POINTER_OPS {
        assert!(
            out.stdout.contains(&format!("{op}: errno=14 (")),
            "{op} should fail with EFAULT under sockstrace\n{}",
            out.describe()
        );
    }
    // sockstrace is still serving: the proxy connect afterwards works.
    assert!(out.stdout.contains("\nconnect: ok"), "{}", out.describe());
    out.assert_code(0);
    assert!(px.wait_bytes("netprobe-tcp\n".len(), T), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let invalid = out.summary_count("invalid");
    assert!(
        invalid >= BAD_POINTER_OPS.len() as i64,
        "summary invalid = {invalid}, want one per bad call ({})\n{}",
        BAD_POINTER_OPS.len(),
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// A thread racing the address
// ---------------------------------------------------------------------------

const RACE_CONNECTS: usize = 5000;

fn race(trace: Trace, client: &std::path::Path, kernel_may_help: bool) {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let n = RACE_CONNECTS.to_string();
    let out = trace
        .proxy(px.addr())
        .timeout(Duration::from_secs(300))
        .netprobe_at(client, ["race", &px.host(), &px.port(), &sink.host(), &sink.port(), &n])
        .run();
    let ok = field(&out.stdout, "race:", "ok") as usize;
    let eperm = field(&out.stdout, "race:", "eperm") as usize;
    let other = field(&out.stdout, "race:", "other");
    let flips = field(&out.stdout, "race:", "flips");
    // Every connect either reached the proxy or failed with EPERM.
    assert_eq!(other, 0, "connects failed otherwise than EPERM\n{}", out.describe());
    assert_eq!(ok + eperm, RACE_CONNECTS, "{}", out.describe());
    out.assert_code(0);
    // The race really happened: both addresses were seen by connect.
    assert!(flips > 0 && ok > 0 && eperm > 0, "the flipper never raced the connects\n{}", out.describe());
    sink.assert_nothing_arrived("raced sockaddr");
    assert!(px.wait_accepts(ok, T), "proxy saw {} of {ok} connects\n{}", px.accepts(), out.describe());
    settle_and_check(&px, ok, &out);
    // The report: one allowed proxy connect per success, one blocked leak to
    // the sink per EPERM, nothing else.
    out.assert_report_well_formed();
    let connects = out.events_where(|e| e.s("syscall") == "connect" && e.s("source") == "seccomp");
    let allowed = connects.iter().filter(|e| e.is_allowed() && e.s("dst") == px.dst()).count();
    let leaked = connects
        .iter()
        .filter(|e| e.is_leak() && e.s("action") == "blocked" && e.s("dst") == sink.dst())
        .count();
    assert_eq!(allowed, ok, "allowed proxy connect events != successful connects\n{}", out.describe());
    assert_eq!(leaked, eperm, "blocked sink connect events != EPERMs\n{}", out.describe());
    assert_eq!(connects.len(), RACE_CONNECTS, "connect events with another destination\n{}", out.describe());
    // The kernel layer (when on) never had to stop a raced address itself:
    // the supervisor never let the kernel read the tracee's memory again.
    let kernel: Vec<_> = out.events_where(|e| e.s("source") == "kernel");
    assert!(
        kernel.is_empty(),
        "the kernel backstop saw leaks the supervisor let through: {:?}\n(kernel layer may help: {kernel_may_help})",
        kernel.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

/// After a settle time, the proxy saw exactly the successful connects.
fn settle_and_check(px: &TcpSink, ok: usize, out: &Outcome) {
    sockstrace_tests::settle();
    assert_eq!(px.accepts(), ok, "proxy accepts != successful connects\n{}", out.describe());
}

#[test]
fn race_client_reaches_both_addresses_without_sockstrace() {
    // Baseline for the race tests: without sockstrace, the raced address
    // really sends connects to both destinations.
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = np(&["race", &px.host(), &px.port(), &sink.host(), &sink.port(), "2000"]);
    let ok = field(&out.stdout, "race:", "ok");
    assert!(ok > 0, "{}", out.stdout);
    assert!(sink.wait_accepts(1, T), "the sink never got a raced connect: {}", out.stdout);
    assert!(px.wait_accepts(1, T), "the proxy never got a raced connect: {}", out.stdout);
}

#[test]
fn race_on_the_address_never_reaches_sink() {
    race(Trace::new(), netprobe(), true);
}

#[test]
fn race_on_the_address_never_reaches_sink_unprivileged() {
    // Without root there is no kernel layer: the supervisor alone.
    if !is_root() {
        skip!("needs root to switch to nobody with setpriv");
    }
    let mut copies = Copies::new();
    let client = copies.add(netprobe(), "netprobe");
    race(copies.as_nobody(), &client, false);
}

fn race_udp(trace: Trace, client: &std::path::Path) {
    let allowed = UdpSink::bind("127.0.0.3");
    let sink = UdpSink::bind("127.0.0.2");
    let n = RACE_CONNECTS.to_string();
    let out = trace
        .proxy(TcpSink::bind("127.0.0.1").addr())
        .allow(&allowed.dst())
        .timeout(Duration::from_secs(300))
        .netprobe_at(
            client,
            ["race-sendto", &allowed.host(), &allowed.port(), &sink.host(), &sink.port(), &n],
        )
        .run();
    let ok = field(&out.stdout, "race:", "ok") as usize;
    let eperm = field(&out.stdout, "race:", "eperm") as usize;
    let other = field(&out.stdout, "race:", "other");
    assert_eq!(other, 0, "sends failed otherwise than EPERM\n{}", out.describe());
    assert_eq!(ok + eperm, RACE_CONNECTS, "{}", out.describe());
    out.assert_code(0);
    assert!(ok > 0 && eperm > 0, "the flipper never raced the sends\n{}", out.describe());
    sink.assert_nothing_arrived("raced sendto address");
    // Loopback UDP may drop under load, but never delivers more than was sent.
    assert!(allowed.wait_datagrams(1, T), "{}", out.describe());
    assert!(
        allowed.datagrams() <= ok,
        "{} datagrams for {ok} sends\n{}",
        allowed.datagrams(),
        out.describe()
    );
    out.assert_report_well_formed();
    let sends = out.events_where(|e| e.s("syscall") == "sendto" && e.s("source") == "seccomp");
    let allowed_events = sends.iter().filter(|e| e.is_allowed() && e.s("dst") == allowed.dst()).count();
    let leaked = sends.iter().filter(|e| e.is_leak() && e.s("action") == "blocked").count();
    assert_eq!(allowed_events, ok, "{}", out.describe());
    assert_eq!(leaked, eperm, "{}", out.describe());
    assert!(out.events_where(|e| e.s("source") == "kernel").is_empty(), "{}", out.describe());
}

#[test]
fn race_on_the_sendto_address_never_reaches_sink() {
    race_udp(Trace::new(), netprobe());
}

#[test]
fn race_on_the_sendto_address_never_reaches_sink_unprivileged() {
    if !is_root() {
        skip!("needs root to switch to nobody with setpriv");
    }
    let mut copies = Copies::new();
    let client = copies.add(netprobe(), "netprobe");
    race_udp(copies.as_nobody(), &client);
}

// ---------------------------------------------------------------------------
// The supervisor dies
// ---------------------------------------------------------------------------

/// The cgroup v2 directory a process is in, from /proc/PID/cgroup.
fn cgroup_of(pid: i64) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_string)
}

#[test]
fn supervisor_death_leaves_network_calls_failing() {
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("go");
    let cpath = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0, "mkfifo");
    let run = Trace::new()
        .proxy(px.addr())
        .netprobe([
            "connect-wait-connect",
            &px.host(),
            &px.port(),
            &sink.host(),
            &sink.port(),
            fifo.to_str().unwrap(),
        ])
        .spawn();
    assert!(run.wait_stdout("first: ", T), "client never made its first connect\n{}", run.describe());
    assert!(run.stdout().contains("first: ok"), "the first proxy connect must work\n{}", run.describe());
    assert!(px.wait_accepts(1, T), "{}", run.describe());
    let client_pid = field(&run.stdout(), "actor:", "pid");
    let cgroup = cgroup_of(client_pid);

    // Kill sockstrace (the spawned command itself, not its group).
    run.signal(libc::SIGKILL);
    let sockstrace_pid = run.pid();
    assert!(wait_until(T, || process_dead(sockstrace_pid)), "sockstrace survived SIGKILL");
    assert!(!process_dead(client_pid as i32), "the client died with sockstrace\n{}", run.describe());

    // Let the client go on: it connects to the sink and to the proxy again.
    std::fs::write(&fifo, "go\n").expect("write fifo");
    assert!(wait_until(T, || process_dead(client_pid as i32)), "client did not finish\n{}", run.describe());
    let stdout = run.stdout();
    let out = run.wait();
    assert_eq!(out.code(), 128 + libc::SIGKILL, "{}", out.describe());
    assert!(stdout.contains("waited: "), "{stdout}");
    for op in ["second-sink", "second-proxy"] {
        assert!(
            stdout.contains(&format!("{op}: errno={} (", libc::ENOSYS)),
            "{op} should fail with ENOSYS once the supervisor is gone\n{stdout}\n{}",
            out.describe()
        );
    }
    sink.assert_nothing_arrived("connect after the supervisor died");
    assert_eq!(px.accepts(), 1, "the proxy got a connect after the supervisor died\n{}", out.describe());

    // A killed root run cannot remove its cgroup: do it for the machine's sake.
    if let (Some(cg), Some(root)) = (cgroup, sockstrace_tests::util::cgroup2_mount()) {
        if cg.contains("sockstrace/run-") {
            let _ = std::fs::remove_dir(root.join(cg.trim_start_matches('/')));
        }
    }
}
