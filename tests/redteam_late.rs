//! Red team against the kernel layer joining a program that has already started: as root,
//! `sockstrace run` attaches only the socket-creation hook before the program starts, and a
//! thread loads and attaches the rest while the program runs; every trapped call waits for it.
//!
//! The attacker is `tests/clients/rl_attack.c`: it acts in its first milliseconds (or, with
//! the test switch `late-layer-stall`, in a window that never closes). `SOCKSTRACE_TEST_DISABLE=late-layer`
//! gives the old order (everything attached before the program starts) for comparison. Ground
//! truth from sinks on loopback and from the report.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use sockstrace_tests::{client, is_root, kernel_available, skip, Outcome, TcpSink, Trace, UdpSink};

/// The old order: the whole kernel layer attached before the program starts.
const OLD_ORDER: &str = "late-layer";

fn attacker() -> String {
    client("rl_attack").to_str().expect("utf-8 path").to_string()
}

/// `rl_attack exit-while-waiting KIND HOST PORT MS` under `--fail-on-leak`: a thread sends
/// a datagram to (or connects to) a sink the run does not allow, and the program exits MS
/// milliseconds later whether or not that call returned. `disable`: test switches.
fn tried_then_exited(kind: &str, ms: &str, disable: Option<&str>) -> (Outcome, String) {
    tried_then("exit-while-waiting", kind, ms, &[], disable)
}

/// `rl_attack exec-while-waiting udp HOST PORT 100 /bin/sleep 0.3`: the same, the main thread
/// executing `sleep` (which runs on for 300 ms) instead of exiting.
fn tried_then_executed(disable: Option<&str>) -> (Outcome, String) {
    tried_then("exec-while-waiting", "udp", "100", &["/bin/sleep", "0.3"], disable)
}

/// `rl_attack MODE KIND HOST PORT MS EXTRA...` against a sink of KIND the run does not allow.
fn tried_then(mode: &str, kind: &str, ms: &str, extra: &[&str], disable: Option<&str>) -> (Outcome, String) {
    let mut trace = Trace::new().opts(["--fail-on-leak"]);
    if let Some(disable) = disable {
        trace = trace.env("SOCKSTRACE_TEST_DISABLE", disable);
    }
    let (out, dst) = if kind == "udp" {
        let sink = UdpSink::bind("127.0.0.1");
        let args = [mode, kind, &sink.host(), &sink.port(), ms];
        let argv = std::iter::once(attacker()).chain(args.iter().chain(extra).map(|a| a.to_string()));
        let out = trace.program(argv).run();
        sink.assert_nothing_arrived(&out.describe());
        (out, sink.dst())
    } else {
        let sink = TcpSink::bind("127.0.0.1");
        let args = [mode, kind, &sink.host(), &sink.port(), ms];
        let argv = std::iter::once(attacker()).chain(args.iter().chain(extra).map(|a| a.to_string()));
        let out = trace.program(argv).run();
        sink.assert_nothing_arrived(&out.describe());
        (out, sink.dst())
    };
    assert!(out.stdout.contains("main: e"), "the attacker did not run\n{}", out.describe());
    (out, dst)
}

/// The leak the program tried is in the report, and `--fail-on-leak` fails the run.
fn assert_the_attempt_is_reported(out: &Outcome, syscall: &str, dst: &str) {
    let tried = out.events_where(|e| e.is_leak() && e.s("syscall") == syscall && e.s("dst") == dst);
    assert!(
        !tried.is_empty(),
        "the program tried {syscall} to {dst}, which the run does not allow, and the calling \
         thread ended while the call waited for the kernel layer: the report has no leak, \
         `{} leaks`, and --fail-on-leak passed (exit {})\n{}",
        out.summary_count("leaks"),
        out.code(),
        out.describe()
    );
    out.assert_code(3);
}

/// A program that tries to leak in its first milliseconds and exits soon after (a thread
/// sends a datagram to, or connects to, a forbidden address; the program ends 100 ms later)
/// fails `--fail-on-leak` with the attempt reported. It passed with `0 leaks` when every
/// trapped call waited for the rest of the kernel layer before its decision: the program
/// ended meanwhile, and the held call was dropped without a decision or an event (5/5 runs
/// unreported with the program exiting after 5 to 20 ms, 2/5 after 80 ms). Now a refusal is
/// decided and reported at once; only a call let through waits. (`late-layer-stall` makes
/// it certain: `a_call_held_for_the_layer_when_the_program_ends_is_still_reported`.)
#[test]
fn a_leak_tried_just_before_the_program_exits_is_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, dst) = tried_then_exited("udp", "100", None);
    assert_the_attempt_is_reported(&out, "sendto", &dst);
    let (out, dst) = tried_then_exited("tcp", "100", None);
    assert_the_attempt_is_reported(&out, "connect", &dst);
}

/// The same attack in the old order: both attempts are reported, and `--fail-on-leak` fails.
#[test]
fn a_leak_tried_just_before_the_program_exits_is_reported_in_the_old_order() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, dst) = tried_then_exited("udp", "100", Some(OLD_ORDER));
    assert_the_attempt_is_reported(&out, "sendto", &dst);
    let (out, dst) = tried_then_exited("tcp", "100", Some(OLD_ORDER));
    assert_the_attempt_is_reported(&out, "connect", &dst);
}

/// The same without the program ending: a launcher whose helper thread tries a leak while
/// its main thread executes the real program (here `sleep`, which runs on). The `execve`
/// ended the helper thread while its call waited for the kernel layer, and the run went on
/// with `0 leaks`; now the refusal does not wait.
#[test]
fn a_leak_tried_by_a_thread_as_another_executes_a_program_is_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, dst) = tried_then_executed(None);
    assert_the_attempt_is_reported(&out, "sendto", &dst);
}

/// The same attack in the old order: the attempt is reported.
#[test]
fn a_leak_tried_by_a_thread_as_another_executes_a_program_is_reported_in_the_old_order() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, dst) = tried_then_executed(Some(OLD_ORDER));
    assert_the_attempt_is_reported(&out, "sendto", &dst);
}

/// The same, made certain with `late-layer-stall` (the rest of the layer never comes before
/// the program ends): the leak is decided and reported although the layer never completes.
/// It was never decided nor reported, and the layers line said the program ended "having
/// made no network call", which was false.
#[test]
fn a_call_held_for_the_layer_when_the_program_ends_is_still_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, dst) = tried_then_exited("udp", "200", Some("late-layer-stall"));
    assert_the_attempt_is_reported(&out, "sendto", &dst);
}

/// Run cgroups named after sockstrace's `pid` (`sockstrace/run-PID-N`), removed again when
/// dropped (a run that left one behind must not leave it to the machine).
struct RunCgroups {
    found: Vec<PathBuf>,
}

impl RunCgroups {
    fn of(pid: i32) -> Self {
        let base = sockstrace_tests::util::cgroup2_mount().expect("cgroup2 mounted").join("sockstrace");
        let prefix = format!("run-{pid}-");
        let found = std::fs::read_dir(&base)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        RunCgroups { found }
    }
}

impl Drop for RunCgroups {
    fn drop(&mut self) {
        for path in &self.found {
            let _ = std::fs::remove_dir(path);
        }
    }
}

/// `rl_attack starve-supervisor 20 3000` (the program runs as root, sockstrace's own user):
/// tries to lower sockstrace's `RLIMIT_NOFILE` while the rest of the kernel layer loads, and
/// runs 3 s. The guard filter refuses the program's `prlimit` on another process (it used to
/// make the layer fail here), so the failure is the test switch `late-layer-fail` where the
/// layer joins late. Returns the run and the run cgroups left behind.
fn starved(disable: &str) -> (Outcome, RunCgroups) {
    let running = Trace::new()
        .env("SOCKSTRACE_TEST_DISABLE", disable)
        .program([attacker().as_str(), "starve-supervisor", "20", "3000"])
        .spawn();
    let pid = running.pid();
    let out = running.wait();
    assert!(
        out.stdout.contains(&format!("prlimit(supervisor, RLIMIT_NOFILE): errno={}", libc::EPERM)),
        "the attacker's prlimit on its supervisor was not refused\n{}",
        out.describe()
    );
    (out, RunCgroups::of(pid))
}

/// When the rest of the kernel layer fails to load or attach after the program has started,
/// the run's cgroup is removed at the run's end. It stayed behind (`sockstrace/run-PID-0`):
/// `Early::finish` tried to remove it while the program was still inside (`EBUSY` after
/// 2 s, while every trapped call waited), and the end of the run removed it only when the
/// layer was abandoned. The layer fails here by the test switch `late-layer-fail` (a program
/// running as root used to make it fail by lowering sockstrace's `RLIMIT_NOFILE` in the
/// window, which the guard filter now refuses); in the old order the same program finds the
/// layer attached already (`..._in_the_old_order`).
#[test]
fn a_layer_that_fails_to_join_leaves_no_cgroup_behind() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, left) = starved("late-layer-fail");
    assert!(!out.kernel_layer().starts_with("on"), "the layer did not fail\n{}", out.describe());
    assert!(
        left.found.is_empty(),
        "the run's cgroup remains after the run: {:?}\nkernel layer: {}\n{}",
        left.found,
        out.kernel_layer(),
        out.describe()
    );
}

/// The same program in the old order: the layer is attached before it starts, stays on, and
/// the run's cgroup is removed.
#[test]
fn a_layer_that_fails_to_join_leaves_no_cgroup_behind_in_the_old_order() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, left) = starved(OLD_ORDER);
    assert!(out.kernel_layer().starts_with("on (enforcing"), "{}", out.describe());
    assert!(
        left.found.is_empty(),
        "the run's cgroup remains after the run: {:?}\n{}",
        left.found,
        out.describe()
    );
}

/// **Held.** 32 threads of the program and 32 of a child it forks, released together at the
/// program's first moment, each send a datagram that only the kernel layer refuses (the
/// test switch `plant-bug` lets UDP to port 9 through the syscall layer): every call waits
/// for the rest of the layer, whichever receiver thread holds it, so none gets out, in the
/// new order as in the old.
#[test]
fn a_burst_of_first_moment_datagrams_waits_for_the_kernel_layer() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    for disable in ["plant-bug", "plant-bug,late-layer"] {
        // Port 9 on an address of this test's own, so that parallel runs do not collide.
        let host = format!("127.0.9.{}", 1 + std::process::id() % 250);
        let port9 = match UdpSocket::bind((host.as_str(), 9)) {
            Ok(s) => UdpSink::from_socket(s),
            Err(e) => skip!("cannot bind {host}:9: {e}"),
        };
        let out = Trace::new()
            .env("SOCKSTRACE_TEST_DISABLE", disable)
            .program([attacker().as_str(), "burst", &host, "9", "32"])
            .run();
        port9.assert_nothing_arrived(&out.describe());
        for who in ["parent", "child"] {
            assert!(
                out.stdout.contains(&format!("burst {who}: ok=0 failed=32")),
                "a datagram of the {who}'s burst was sent ({disable})\n{}",
                out.describe()
            );
        }
    }
}

/// **Held.** Every way to send that passes no trapped call, tried while the rest of the
/// layer is held forever (`late-layer-stall`): without an address, an unconnected socket
/// sends nothing (`EDESTADDRREQ`, `EPIPE`; TCP Fast Open without an address is `EINVAL`;
/// `TCP_FASTOPEN_CONNECT` only defers a connect, which is trapped); UDP-Lite sockets are
/// refused at creation by the socket-creation hook, the one attached before the start.
#[test]
fn sends_that_pass_no_trapped_call_send_nothing_before_the_layer_joins() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let udp = UdpSink::bind("127.0.0.1");
    let tcp = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall")
        .timeout(Duration::from_secs(30))
        .program([attacker().as_str(), "untrapped", &udp.host(), &udp.port(), &tcp.port()])
        .run();
    udp.assert_nothing_arrived(&out.describe());
    tcp.assert_nothing_arrived(&out.describe());
    assert!(out.stdout.contains("untrapped: done"), "{}", out.describe());
    for (what, errno) in [
        ("udp write", libc::EDESTADDRREQ),
        ("udp send", libc::EDESTADDRREQ),
        ("udp6 write", libc::EDESTADDRREQ),
        ("tcp send", libc::EPIPE),
        ("tcp fastopen without address", libc::EINVAL),
        ("tcp fastopen null address with a length", libc::EINVAL),
        ("tcp_fastopen_connect send without connect", libc::EPIPE),
        ("udp splice", libc::EDESTADDRREQ),
        ("udplite write socket", libc::EPERM),
    ] {
        assert!(
            out.stdout.contains(&format!("{what}: errno={errno} ")),
            "{what} did not fail with errno {errno}\n{}",
            out.describe()
        );
    }
    let created = out.leaks_for("direct-other");
    assert!(
        created.iter().any(|e| e.s("syscall") == "socket" && e.s("source") == "kernel"),
        "the socket-creation hook did not report the UDP-Lite socket\n{}",
        out.describe()
    );
}

/// **Held.** The program starts with no socket of sockstrace's (a socket made outside the
/// run's cgroup and passed down would be judged by no hook): only what the test harness
/// itself passes, and no socket, with a resolver of sockstrace's running (`--dns proxy`).
#[test]
fn the_program_starts_with_no_socket_of_sockstrace() {
    if !is_root() {
        skip!("the kernel layer needs root");
    }
    for disable in ["none", OLD_ORDER] {
        let out = Trace::new()
            .opts(["--dns", "proxy"])
            .env("SOCKSTRACE_TEST_DISABLE", disable)
            .program([attacker().as_str(), "fds"])
            .run();
        out.assert_code(0);
        assert!(out.stdout.contains("fds: done"), "{}", out.describe());
        let sockets: Vec<&str> = out.stdout.lines().filter(|l| l.contains("socket:")).collect();
        assert!(sockets.is_empty(), "the program started with sockets: {sockets:?}\n{}", out.describe());
    }
}
