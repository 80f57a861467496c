//! Red team against the reserve receiver (`supervisor::receivers`): the thread that takes the
//! queue when no call was received for a tick, judges and reports every call, and hands a call
//! that would wait to a thread of its own, which handles it again from the start.
//!
//! Attacks: stall the reserve itself on the program's memory (userfaultfd) behind a herd that
//! holds every receiver; end the program between the reserve's verdict and the second
//! handling; make the second handling find state the first one left (a UDP flow already
//! known); make the reserve refuse what any other receiver takes through the proxy; and queue
//! a leak behind thousands of quick calls, then exit. Attackers: `tests/clients/r28_*.c`.
//! Ground truth: sinks on loopback (what arrives) and the JSON report.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockstrace_tests::net::free_port;
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{client, is_root, skip, Microsocks, Outcome, TcpSink, Trace, UdpSink};

/// A loopback listener whose accept queue is full (backlog 0, filled by connections nobody
/// accepts): a blocking connect to it stalls for minutes. The listener, its address and the
/// fillers, kept open.
fn full_listener() -> (OwnedFd, SocketAddr, Vec<TcpStream>) {
    // SAFETY: plain socket calls on a fd we own; the address is a valid sockaddr_in.
    let (fd, addr) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len), 0, "bind");
        assert_eq!(libc::listen(fd.as_raw_fd(), 0), 0, "listen");
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        assert_eq!(libc::getsockname(fd.as_raw_fd(), (&raw mut got).cast(), &raw mut glen), 0);
        let addr = SocketAddr::from(([127, 0, 0, 1], u16::from_be(got.sin_port)));
        (fd, addr)
    };
    let fillers =
        (0..2).filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()).collect();
    (fd, addr, fillers)
}

/// The attempted connect to `sink` is in the report (any action).
fn reported(out: &Outcome, sink: &TcpSink) -> bool {
    out.leaks_for("direct-tcp").iter().any(|e| e.s("dst") == sink.dst())
}

fn uffd_herd(stallers: usize, settle_ms: u32) {
    if !is_root() {
        skip!("userfaultfd on the supervisor's reads needs root");
    }
    let sink = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .opts(["--kernel", "off", "--fail-on-leak"])
        .timeout(Duration::from_secs(40))
        .program([
            client("r28_uffd_herd").to_str().unwrap().to_string(),
            stallers.to_string(),
            sink.host(),
            sink.port(),
            settle_ms.to_string(),
            "2000".into(),
        ])
        .run();
    let d = out.describe();
    sink.assert_nothing_arrived(&d);
    assert!(out.stdout.contains("uffd: ready"), "userfaultfd is not available to root\n{d}");
    assert!(
        out.stdout.contains(&format!("stalls: {stallers} threads")),
        "the threads were not all made\n{d}"
    );
    assert!(
        reported(&out, &sink),
        "the attempted connect to the forbidden sink is missing from the report\n{d}"
    );
    assert!(out.stdout.contains("leak: answered errno=1"), "the leak attempt was not refused at once\n{d}");
    out.assert_code(3);
}

/// 1,100 threads each connect with an address on one userfaultfd page the program never
/// fills: every receiver the watcher adds (up to the 1,024 limit) stalls copying it, and so
/// does the reserve, which takes the queue like any receiver and copies the first queued call's
/// address. Then a thread tries a forbidden connect and the program exits two seconds later
/// (page unfilled). Safe: the attempt refused and reported, `--fail-on-leak` exits 3.
///
/// Seen: `leak: unanswered`, the report says `0 leak(s)`, `0 allowed`, exit status 0: the
/// reserve "never waits in a call it takes", but it waits in its copy of the caller's memory
/// like every receiver; with it stalled and the limit reached, nobody receives the leak.
#[test]
#[ignore = "open: the reserve stalls on a userfaultfd page like the 1,024 receivers; the leak attempt behind them is never received, the report says 0 leaks and --fail-on-leak exits 0"]
fn a_leak_behind_every_receiver_and_the_reserve_stalled_on_memory_is_reported() {
    uffd_herd(1100, 5000);
}

/// What holds: with 30 receivers stalled on the page the watcher adds another, and the leak
/// attempt is refused and reported at once.
#[test]
fn a_leak_behind_a_few_receivers_stalled_on_memory_is_reported() {
    uffd_herd(30, 1000);
}

/// One receiver stalls on an unfilled userfaultfd page, so the reserve takes the next call: a
/// blocking connect to a forbidden sink, which `--on-leak log` (or `socksify`) lets go on, so
/// that it would wait and the reserve hands it to a thread of its own. The program watches the
/// faults on the page that holds the address: when the first copy is complete it drops the
/// page again, and as soon as the second copy (the new thread's) faults on it, it exits. Safe:
/// the attempt, judged a leak by the reserve, is in the report (as it is when the caller of a
/// call performed on an ordinary receiver dies meanwhile), and `--fail-on-leak` exits 3.
///
/// Seen, every run, in both modes: `read: page=A tid=X`, `page=B tid=X`, `page=A tid=Y`
/// (another supervisor thread), then the report with `0 leak(s)`, `0 logged`, exit status 0:
/// the reserve's event was dropped with the rest of its handling, and the second handling
/// found the caller gone. Nothing reached the sink.
#[test]
#[ignore = "open: a leak the reserve judged and handed on is dropped from the report when the caller dies before the second handling reads its memory (0 leaks, --fail-on-leak exits 0)"]
fn a_leak_the_reserve_hands_on_is_reported_when_its_caller_dies_meanwhile() {
    if !is_root() {
        skip!("userfaultfd on the supervisor's reads needs root");
    }
    let socks = Microsocks::start().ok();
    let mut modes = vec![("log", None)];
    match &socks {
        Some(s) => modes.push(("socksify", Some(s.addr()))),
        None => sockstrace_tests::util::skip_note(module_path!(), "microsocks missing: socksify not tried"),
    }
    let mut missing = Vec::new();
    for (mode, proxy) in modes {
        let sink = TcpSink::bind("127.0.0.1");
        let mut trace = Trace::new().opts(["--kernel", "off", "--fail-on-leak"]).on_leak(mode);
        if let Some(proxy) = proxy {
            trace = trace.proxy(proxy);
        }
        let out = trace
            .timeout(Duration::from_secs(30))
            .program([client("r28_redo").to_str().unwrap().to_string(), sink.host(), sink.port()])
            .run();
        let d = format!("--on-leak {mode}\n{}", out.describe());
        assert!(out.stdout.contains("uffd: ready"), "userfaultfd is not available to root\n{d}");
        // Under log or socksify the connect goes on when its caller lives; here it died first.
        if out.stdout.contains("second copy:") {
            sink.assert_nothing_arrived(&d);
        }
        if !reported(&out, &sink) || out.code() != 3 {
            missing.push(format!("the leak attempt the supervisor judged is missing (or exit not 3)\n{d}"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n\n"));
}

/// A Dante server on 127.0.0.1 granting UDP ASSOCIATE to loopback clients (sending from
/// 127.0.0.3), as in `run_udp_socks`.
struct Dante {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dante {
    const PATH: &'static str = "/usr/sbin/danted";

    fn start() -> Result<Dante, String> {
        if !is_root() {
            return Err("needs root (UDP through the proxy needs the kernel layer)".into());
        }
        if !Path::new(Self::PATH).exists() {
            return Err(format!("{} is not installed (cargo xtask setup installs dante-server)", Self::PATH));
        }
        let dir = tempfile::Builder::new().prefix("sockstrace-dante").tempdir().map_err(|e| e.to_string())?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("danted.conf");
            std::fs::write(
                &conf,
                format!(
                    "logoutput: stderr\n\
                     internal: 127.0.0.1 port = {port}\n\
                     external: 127.0.0.3\n\
                     socksmethod: none\n\
                     clientmethod: none\n\
                     user.privileged: root\n\
                     user.unprivileged: nobody\n\
                     client pass {{\n  from: 127.0.0.0/8 to: 0/0\n}}\n\
                     socks pass {{\n  from: 0/0 to: 0/0\n  command: connect udpassociate udpreply\n}}\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut child = Command::new(Self::PATH)
                .arg("-f")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path().join("danted.pid"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting danted: {e}"))?;
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if wait_until(Duration::from_secs(5), || TcpStream::connect(addr).is_ok()) {
                return Ok(Dante { child, addr, _dir: dir });
            }
            let _ = child.kill();
            let _ = child.wait();
            last = format!("danted did not listen on {addr}");
        }
        Err(last)
    }
}

impl Drop for Dante {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `r28_flow` under `--on-leak socksify` through Dante: `rounds` datagrams to `peer`,
/// each on a new socket right after a stalled allowed connect (so that the reserve takes it),
/// after a first one on an ordinary receiver when `probe_first`.
fn flows(rounds: usize, probe_first: bool) -> Option<(Outcome, UdpSink)> {
    let dante = match Dante::start() {
        Ok(d) => d,
        Err(e) => {
            sockstrace_tests::util::skip_note(module_path!(), &format!("no UDP-capable SOCKS5 proxy: {e}"));
            return None;
        }
    };
    let (_listener, stall, _fillers) = full_listener();
    let peer = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(dante.addr)
        .on_leak("socksify")
        .allow(&stall.to_string())
        .timeout(Duration::from_secs(30))
        .program([
            client("r28_flow").to_str().unwrap().to_string(),
            stall.ip().to_string(),
            stall.port().to_string(),
            peer.host(),
            peer.port(),
            rounds.to_string(),
            u8::from(probe_first).to_string(),
        ])
        .run();
    Some((out, peer))
}

/// Under `--on-leak socksify` with a proxy that relays UDP: a first datagram on an ordinary
/// receiver (the relay is probed), then four datagrams, each on a new socket (a new flow)
/// right after an allowed blocking connect stalled the receiver that took it. Safe: each flow
/// is one `socksified` event (`run_udp_socks`: "exactly one event per flow"), five in all.
///
/// Seen: every datagram went through the proxy (five at the peer, `udp_proxy.flows` 5), but
/// the report had two `socksified` events and said `2 leak(s)`: a flow the reserve saw first
/// was registered (its event made), then the send through the relay would wait, so the call
/// was handed on and the event dropped; the second handling found the flow known, and makes
/// an event only for a new one.
#[test]
#[ignore = "open: a UDP flow first seen on the reserve is registered there, its event dropped with the hand-off, and the second handling finds it known: socksified datagrams go unreported"]
fn every_udp_flow_the_reserve_takes_through_the_proxy_is_reported() {
    let Some((out, peer)) = flows(4, true) else { return };
    let d = out.describe();
    assert!(out.stdout.contains("done"), "the program did not finish\n{d}");
    for k in 0..=4 {
        assert!(out.stdout.contains(&format!("send {k}: rc=10 errno=0")), "datagram {k} was not sent\n{d}");
    }
    assert!(
        peer.wait_datagrams(5, Duration::from_secs(3)),
        "the peer got {} datagrams\n{d}",
        peer.datagrams()
    );
    let socksified = out.events_where(|e| e.s("action") == "socksified" && e.s("dst") == peer.dst());
    let flows = out.summary_obj().get("udp_proxy").and_then(|u| u["flows"].as_i64());
    assert_eq!(flows, Some(5), "five flows through the relay\n{d}");
    assert_eq!(socksified.len(), 5, "one socksified event per flow\n{d}");
    assert_eq!(out.summary_count("leaks"), 5, "five leaks in the summary\n{d}");
}

/// The same with no datagram before the stall: the first leaked datagram of the run is taken
/// by the reserve. Safe: it goes through the proxy, as it does on any receiver (the relay is
/// asked whether it offers UDP, which waits on the proxy: the reserve hands such a call on).
///
/// Seen: `send 1: rc=-1 errno=1`, reported `blocked`, and the summary's UDP relay `unused (no
/// leaked datagram)`: the probe's `Failure::Busy` on the reserve is read as "no proxy offers
/// UDP" (`udp_proxy::hook::route`, `unwrap_or(false)`), so the datagram is refused instead of
/// handed on. Nothing leaked (the refusal is reported), but the reserve answers the call
/// otherwise than every other receiver.
#[test]
#[ignore = "open: the first leaked datagram taken by the reserve is refused (EPERM, blocked) instead of socksified: the probe's Busy reads as no UDP relay"]
fn the_first_leaked_datagram_the_reserve_takes_goes_through_the_proxy() {
    let Some((out, peer)) = flows(1, false) else { return };
    let d = out.describe();
    assert!(out.stdout.contains("done"), "the program did not finish\n{d}");
    assert!(out.stdout.contains("send 1: rc=10 errno=0"), "the datagram was not sent through the proxy\n{d}");
    assert!(peer.wait_datagrams(1, Duration::from_secs(3)), "the peer got nothing\n{d}");
    let e = out.the_event("the datagram's event", |e| e.s("dst") == peer.dst());
    assert_eq!(e.s("action"), "socksified", "{e}\n{d}");
}

/// 2,000 threads released at once each make one quick allowed connect (a loopback port that
/// refuses, answered at once); once all of them are entering their call a thread tries a
/// forbidden connect, and the program exits two milliseconds later. Safe: the attempt is in
/// the report and `--fail-on-leak` exits 3.
///
/// Seen: `answered: 225 of 2000 before the exit`, `leak: unanswered`; the report said `0
/// leak(s)`, `228 allowed`, exit status 0. No receiver is stalled (calls keep being answered),
/// so neither the watcher nor the reserve acts: the leak waits its turn in the listener's
/// queue, and a notification nobody received vanishes when its caller is killed by the exit.
/// (With 200 threads the attempt was received in time.)
#[test]
#[ignore = "open: a leak queued behind ~2,000 quick allowed calls is never received when the program exits 2 ms later: 0 leaks, --fail-on-leak exits 0"]
fn a_leak_queued_behind_thousands_of_quick_calls_is_reported_when_the_program_exits() {
    let sink = TcpSink::bind("127.0.0.1");
    // Allowed and closed: answered at once with ECONNREFUSED.
    let refusing = free_port();
    let out = Trace::new()
        .opts(["--kernel", "off", "--fail-on-leak"])
        .allow(&format!("127.0.0.1:{refusing}"))
        .timeout(Duration::from_secs(30))
        .program([
            client("r28_queue").to_str().unwrap().to_string(),
            "2000".into(),
            "127.0.0.1".into(),
            refusing.to_string(),
            sink.host(),
            sink.port(),
            "2000".into(),
        ])
        .run();
    let d = out.describe();
    sink.assert_nothing_arrived(&d);
    assert!(out.stdout.contains("threads: 2000"), "the threads were not all made\n{d}");
    assert!(
        reported(&out, &sink),
        "the attempted connect to the forbidden sink is missing from the report\n{d}"
    );
    out.assert_code(3);
}
