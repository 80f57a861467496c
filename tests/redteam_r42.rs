//! Red team r42: the fast path (root, kernel layer enforcing, program as `--user nobody`, no
//! `--report` of allowed calls), attacked from the threat model after its two newest changes:
//! off for a program that inherits an inet socket (`supervisor::inherited`), and an addressed
//! `sendto` answered CONTINUE on its address alone, without a look at the socket
//! (`send::sent_by_kernel_unseen`). Its claim: every inet socket the fd number can name was made
//! in the run's cgroup, so the kernel's sendmsg hooks judge the address the kernel reads, whatever
//! the program flips it to after our decision.
//!
//! Found, and kept as documented limits (each an ignored test that asserts what a fix would give
//! and fails today, `--ignored` shows it): all three need a socket made outside the run handed to
//! the program by a process outside it, which the threat model puts out of scope with every other
//! help from outside ("Other processes reached over IPC", "fds passed in from outside"): such a
//! process can send the data itself.
//!
//! - `a_udp_socket_in_flight_on_an_inherited_unix_socket_is_never_left_to_the_kernel`:
//!   `inherited::inet_sockets` looks only for inet sockets in our fd table. A launcher that
//!   leaves an inet socket *in flight* on a unix socket the program inherits (`SCM_RIGHTS`
//!   queued, the sender closed) passes the check; the program takes the UDP socket with one
//!   `recvmsg` (not trapped), made outside the run's cgroup, and the fast path is on. An
//!   addressed `sendto` on it is judged on its address and answered CONTINUE; a thread flips the
//!   address after our read; no hook of the run's cgroup runs for a socket made elsewhere. About
//!   1,000 of 3,000 datagrams reached the forbidden sink; the report counts them `allowed`. The
//!   launcher, which starts sockstrace, is the outside process here. Reproduce:
//!   `r42_fdpass launch sockstrace run --user nobody --allow 127.0.0.1:A -- r42_fdpass attack fd3
//!   0 127.0.0.1 A 127.0.0.1 B 3000` with UDP sinks on A and B: B receives datagrams; with
//!   `SOCKSTRACE_TEST_DISABLE=fast-path` it receives none
//!   (`the_same_attacks_without_the_fast_path_send_nothing_to_the_forbidden_sink`).
//! - `a_udp_socket_handed_over_by_a_process_outside_the_run_is_never_left_to_the_kernel`: the
//!   same through a live helper of the same user, started before the run, which hands out UDP
//!   sockets on a pathname unix socket. About 300 of 3,000 reached the forbidden sink. Reproduce:
//!   `setpriv --reuid=65534 --regid=65534 --clear-groups r42_fdpass helper /tmp/d/h.sock 1 &` then
//!   `sockstrace run --user nobody --allow 127.0.0.1:A -- r42_fdpass attack /tmp/d/h.sock 0
//!   127.0.0.1 A 127.0.0.1 B 3000`.
//! - `a_udp_connect_on_a_socket_from_outside_the_run_is_never_left_to_the_kernel`: the UDP
//!   `connect` fast path (`Call::kernel_judges`) looks at the socket's facts (inet, UDP), which a
//!   socket made anywhere has: flipped connects are answered CONTINUE, and the untrapped `send`
//!   after each goes to the forbidden sink. Reproduce as the first, mode `attack-connect`.
//!
//! Why no per-socket gate: checking that the socket we duplicated is one the run's hooks
//! recorded (its cookie in the kernel layer's `SOCKETS`) does not close it, since the CONTINUE
//! lets the kernel look the fd number up again: a thread swaps the outside socket under the
//! number after our look. Only keeping outside sockets out of the program would, and a socket
//! handed over a unix socket arrives with an untrapped `recvmsg`. Without the fast path (a run
//! without root, `--kernel off`, `--report`, or `SOCKSTRACE_TEST_DISABLE=fast-path`) every
//! addressed send is performed by us on our copy and none of the three leaks.
//!
//! Held (passing tests):
//!
//! - ping sockets: refused at `socket()` even where `net.ipv4.ping_group_range` lets the user
//!   make them (a network namespace of the test's own); the kernel's sendmsg hooks never run for
//!   a ping socket and the egress gate passes any loopback packet without options, so a ping
//!   socket under the fast path would otherwise reach any loopback address
//!   (`ping_sockets_are_refused_where_the_system_allows_them`);
//! - the summary on the fast path: every flip the kernel refused is a leak in the summary (and
//!   `--fail-on-leak` exits 3), and the allowed count is the program's own count of datagrams
//!   sent (`the_summary_counts_what_the_kernel_refused_and_what_it_sent`).
//!
//! Not tried (time): an io_uring ring inherited from outside the run, made with
//! `IORING_SETUP_SQPOLL` (its poller thread, in the maker's cgroup, would make and send on
//! sockets no hook of the run judges, and `io_uring_enter` is not trapped: only `io_uring_setup`
//! is; suspected to leak under every mode, not only the fast path), the 32-bit `sendto` (`int 0x80`, not multiplexed, so on the fast path too;
//! same code, nothing new expected), IPv6 scope ids and v4-mapped spellings against the hooks
//! (they read the kernel's own copy), `UDP_CORK`/`MSG_MORE` (a corked socket ignores a later
//! address: the data goes to the first, judged one), MPTCP Fast Open through `DEFER_CONNECT`,
//! `SO_BINDTODEVICE` and sticky `IPV6_PKTINFO` (the egress gate's loopback-on-device check).

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::{client, kernel_available, skip, Outcome, Trace, UdpSink};

const CALLS: &str = "3000";

/// The program as nobody, no allowed event in the report: the fast path's conditions (see
/// `perf_fastpath::as_nobody`).
fn as_nobody() -> Trace {
    Trace::new().opts(["--user", "nobody"]).env("SOCKSTRACE_TEST_DISABLE", "allowed-events")
}

fn fast_path_on(out: &Outcome) -> bool {
    out.kernel_layer().contains("fast path")
}

fn split(dst: &str) -> (String, String) {
    let (h, p) = dst.rsplit_once(':').unwrap();
    (h.to_string(), p.to_string())
}

/// `r42_fdpass attack SRC 0 OK BAD 3000` under `trace`.
fn attack(trace: Trace, src: &str, ok: &UdpSink, bad: &UdpSink) -> Outcome {
    attack_with("attack", trace, src, ok, bad)
}

/// `r42_fdpass MODE SRC 0 OK BAD 3000` under `trace`.
fn attack_with(mode: &str, trace: Trace, src: &str, ok: &UdpSink, bad: &UdpSink) -> Outcome {
    let (oh, op) = split(&ok.dst());
    let (bh, bp) = split(&bad.dst());
    let prog = client("r42_fdpass");
    let argv = [prog.to_str().unwrap(), mode, src, "0", &oh, &op, &bh, &bp, CALLS];
    trace.timeout(Duration::from_secs(60)).program(argv).run()
}

/// sockstrace started by `r42_fdpass launch`: it inherits fd 3, a unix datagram socket with a UDP
/// socket (made here, outside any run) in flight on it.
fn launched(trace: Trace) -> Trace {
    let prog = client("r42_fdpass");
    trace.wrapper([prog.to_str().unwrap().to_string(), "launch".to_string()])
}

/// A helper of the program's own user, outside the run: hands a UDP socket to each of `n`
/// connections on a unix socket in a directory anyone may use.
struct Helper {
    child: Child,
    path: String,
    _dir: tempfile::TempDir,
}

impl Helper {
    fn start(n: usize) -> Helper {
        let dir = tempfile::Builder::new().prefix("r42-helper").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.path().join("h.sock").to_str().unwrap().to_string();
        let prog = client("r42_fdpass");
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&prog)
            .args(["helper", &path, &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv");
        let mut line = String::new();
        use std::io::BufRead as _;
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "helper did not start");
        Helper { child, path, _dir: dir }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Found (open): a UDP socket made before the run, in flight on an inherited unix socket, takes
/// the fast path, where no hook judges it.
#[test]
#[ignore = "limit (out of scope: a launcher hands in an outside socket): a UDP socket received on an inherited unix socket takes the fast path; flipped datagrams reach a forbidden sink"]
fn a_udp_socket_in_flight_on_an_inherited_unix_socket_is_never_left_to_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    for _ in 0..2 {
        let allowed = UdpSink::bind("127.0.0.1");
        let bad = UdpSink::bind("127.0.0.1");
        let out = attack(launched(as_nobody().allow(&allowed.dst())), "fd3", &allowed, &bad);
        out.assert_code(0);
        assert!(out.stdout.starts_with("ok="), "the program got no socket\n{}", out.describe());
        bad.assert_nothing_arrived(&format!(
            "datagrams on a UDP socket received over an inherited unix socket (fast path on: {})\n{}",
            fast_path_on(&out),
            out.describe()
        ));
    }
}

/// Found (open, the same root cause for a UDP `connect`, whose fast path looks at the socket's
/// facts, which say "UDP" for a socket made anywhere): connects of the in-flight socket to a
/// flipped address are answered CONTINUE, the kernel connects it to the forbidden sink, and the
/// `send` after it (no address, untrapped) goes there.
#[test]
#[ignore = "limit (out of scope: a launcher hands in an outside socket): a UDP connect on a socket made outside the cgroup takes the fast path; a flipped connect sends to a forbidden sink"]
fn a_udp_connect_on_a_socket_from_outside_the_run_is_never_left_to_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    for _ in 0..2 {
        let allowed = UdpSink::bind("127.0.0.1");
        let bad = UdpSink::bind("127.0.0.1");
        let out =
            attack_with("attack-connect", launched(as_nobody().allow(&allowed.dst())), "fd3", &allowed, &bad);
        out.assert_code(0);
        assert!(out.stdout.starts_with("ok="), "the program got no socket\n{}", out.describe());
        bad.assert_nothing_arrived(&format!(
            "connected datagrams on a UDP socket received over an inherited unix socket (fast path on: {})\n{}",
            fast_path_on(&out),
            out.describe()
        ));
    }
}

/// Found (open): a UDP socket handed over by a process of the same user outside the run takes
/// the fast path, where no hook judges it.
#[test]
#[ignore = "limit (out of scope: a helper outside the run hands in its socket): a UDP socket handed over SCM_RIGHTS takes the fast path; flipped datagrams reach a forbidden sink"]
fn a_udp_socket_handed_over_by_a_process_outside_the_run_is_never_left_to_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    for _ in 0..2 {
        let helper = Helper::start(1);
        let allowed = UdpSink::bind("127.0.0.1");
        let bad = UdpSink::bind("127.0.0.1");
        let out = attack(as_nobody().allow(&allowed.dst()), &helper.path, &allowed, &bad);
        out.assert_code(0);
        assert!(out.stdout.starts_with("ok="), "the program got no socket\n{}", out.describe());
        bad.assert_nothing_arrived(&format!(
            "datagrams on a UDP socket from a helper outside the run (fast path on: {})\n{}",
            fast_path_on(&out),
            out.describe()
        ));
    }
}

/// Held, and the control for the two findings: without the fast path, the same attacks send
/// nothing to the forbidden sink (every allowed datagram is sent by us on our copy), while
/// allowed datagrams still go out. What lets the findings through is the fast path alone.
#[test]
fn the_same_attacks_without_the_fast_path_send_nothing_to_the_forbidden_sink() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let slow = || as_nobody().env("SOCKSTRACE_TEST_DISABLE", "allowed-events,fast-path");
    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    let out = attack(launched(slow().allow(&allowed.dst())), "fd3", &allowed, &bad);
    out.assert_code(0);
    assert!(!fast_path_on(&out), "{}", out.describe());
    bad.assert_nothing_arrived(&format!("inherited in flight, no fast path\n{}", out.describe()));
    assert!(allowed.wait_datagrams(1, Duration::from_secs(5)), "nothing allowed arrived\n{}", out.describe());

    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    let out = attack_with("attack-connect", launched(slow().allow(&allowed.dst())), "fd3", &allowed, &bad);
    out.assert_code(0);
    assert!(!fast_path_on(&out), "{}", out.describe());
    bad.assert_nothing_arrived(&format!("inherited in flight, connects, no fast path\n{}", out.describe()));
    assert!(allowed.wait_datagrams(1, Duration::from_secs(5)), "nothing allowed arrived\n{}", out.describe());

    let helper = Helper::start(1);
    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    let out = attack(slow().allow(&allowed.dst()), &helper.path, &allowed, &bad);
    out.assert_code(0);
    assert!(!fast_path_on(&out), "{}", out.describe());
    bad.assert_nothing_arrived(&format!("helper's socket, no fast path\n{}", out.describe()));
    assert!(allowed.wait_datagrams(1, Duration::from_secs(5)), "nothing allowed arrived\n{}", out.describe());
}

/// Held: a ping socket is refused at `socket()` even where the system lets the user make one.
/// The kernel's sendmsg hooks do not run for ping sockets, and the egress gate passes any
/// loopback packet without options at once: on the fast path (which does not look at the
/// socket) a flipped ping would reach any loopback address. Run in a network namespace of the
/// test's own, whose `ping_group_range` holds every group; the program counts the echo replies
/// from the forbidden address (the kernel there answers only a request that reached it).
#[test]
fn ping_sockets_are_refused_where_the_system_allows_them() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let ns = match NetNs::bare() {
        Ok(ns) => ns,
        Err(e) => skip!("{e}"),
    };
    ns.sysctl("net/ipv4/ping_group_range", "'0 2147483647'").unwrap();
    let prog = client("r42_fdpass");
    let netns = format!("--net=/run/netns/{}", ns.name());
    let argv = [prog.to_str().unwrap(), "ping", "0", "127.0.0.1", "40001", "127.0.0.2", "40002", "500"];
    // The attack works where nothing traces it: nobody makes ping sockets there.
    let bare = Command::new("nsenter")
        .arg(&netns)
        .args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(argv)
        .output()
        .unwrap();
    let bare_out = String::from_utf8_lossy(&bare.stdout);
    assert!(bare_out.starts_with("ok="), "nobody cannot ping in the test namespace: {bare_out}");
    for disable in ["allowed-events", "allowed-events,fast-path"] {
        let out = as_nobody()
            .env("SOCKSTRACE_TEST_DISABLE", disable)
            .allow("127.0.0.1:40001")
            .wrapper(["nsenter", &netns])
            .timeout(Duration::from_secs(60))
            .program(argv)
            .run();
        assert!(
            out.stdout.starts_with("no-ping-socket") || out.stdout.contains("bad_replies=0"),
            "a ping reached the forbidden address ({disable})\n{}",
            out.describe()
        );
    }
}

/// Held: the summary on the fast path counts what happened. Each flip is refused, by us or by the
/// kernel (`source: kernel`), and each is a leak in the summary (so `--fail-on-leak` exits 3); the
/// allowed count is the number of datagrams the program saw sent (a flip the kernel refused is
/// taken back from it).
#[test]
fn the_summary_counts_what_the_kernel_refused_and_what_it_sent() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let attacker = client("attack_fastpath");
    for attempt in 0..5 {
        let allowed = UdpSink::bind("127.0.0.1");
        let bad = UdpSink::bind("127.0.0.1");
        let (oh, op) = split(&allowed.dst());
        let (bh, bp) = split(&bad.dst());
        let argv = [attacker.to_str().unwrap(), "flip-sendto", "0", &oh, &op, &bh, &bp, CALLS];
        let out = as_nobody()
            .opts(["--fail-on-leak"])
            .allow(&allowed.dst())
            .timeout(Duration::from_secs(60))
            .program(argv)
            .run();
        bad.assert_nothing_arrived(&out.describe());
        assert!(fast_path_on(&out), "{}", out.describe());
        let count = |key: &str| -> i64 {
            out.stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {:?}", out.stdout))
        };
        let by_kernel = out
            .events_where(|e| {
                e.s("source") == "kernel" && e.s("dst") == bad.dst() && e.s("action") == "blocked"
            })
            .len();
        assert_eq!(count("other"), 0, "{}", out.describe());
        assert_eq!(
            out.summary_count("leaks"),
            count("refused"),
            "leaks != refusals seen\n{}",
            out.describe()
        );
        assert_eq!(
            out.summary_count("allowed"),
            count("ok"),
            "allowed != datagrams sent\n{}",
            out.describe()
        );
        if count("refused") > 0 {
            assert_eq!(out.code(), 3, "--fail-on-leak with leaks\n{}", out.describe());
        }
        if by_kernel > 0 {
            eprintln!("attempt {attempt}: {by_kernel} refused by the kernel; program {}", out.stdout.trim());
            return;
        }
    }
    eprintln!("no flip reached the kernel in 5 runs: the counts held for the supervisor's refusals");
}
