//! Red team against the calls answered CONTINUE while the kernel layer completes itself
//! (`supervisor::late_layer`): such a call is no longer waited for on a thread, but held by
//! `LateLayer::hold_continue` and answered when the layer settles (CONTINUE once attached;
//! `EPERM` when every call is refused: a failure under `--kernel required`, or the run's end,
//! `LateLayer::abandon`).
//!
//! Attacks: an fd number and an address swapped under a held unix call (connect, sendto,
//! sendmsg; UDP, and TCP with Landlock off) so that the kernel runs an inet call when it is let
//! go; a herd of held calls with a leak behind them; held calls of a layer that never completes
//! (`late-layer-stall`) or fails under `--kernel required` (`late-layer-fail`); an i386
//! `socketcall` unix connect in the window (`Call::continue_is_sound`).
//!
//! Found (open, ignored): `continue_is_sound` asks whether the kernel layer is on *before* the
//! held CONTINUE waits for it, so an i386 program's `socketcall` connect on a unix socket in
//! the first milliseconds is refused (`EPERM`) and reported as a `socketcall-race` leak (a
//! benign program fails `--fail-on-leak`); the old order, where the gate waited first, let it
//! through.
//!
//! Attacker: `tests/clients/r32_held.c`. Ground truth: sinks on loopback and the JSON report.

use std::time::Duration;

use sockstrace_tests::{client, kernel_available, skip, Outcome, TcpSink, Trace, UdpSink};

/// Each run must end well within this (a held call that is never answered hangs the run).
const RUN_LIMIT: Duration = Duration::from_secs(20);

fn attacker() -> String {
    client("r32_held").to_str().expect("utf-8 path").to_string()
}

/// The `KEY: rc=R errno=E` line the attacker printed: (R, E).
fn result_of(out: &Outcome, key: &str) -> (i64, i64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key}: rc=")))
        .unwrap_or_else(|| panic!("the attacker printed no `{key}:` line\n{}", out.describe()));
    let num = |name: &str| -> i64 {
        let at = line.find(&format!("{name}=")).expect("field") + name.len() + 1;
        line[at..].split_whitespace().next().unwrap().parse().expect("number")
    };
    (num("rc"), num("errno"))
}

/// Whether the attacker's swap landed while its call was held for the layer: done before the
/// call returned, after the supervisor had judged the unix call (allowed, answered CONTINUE).
/// A swap done before the supervisor read the fd is judged by the supervisor as an inet call.
fn swapped_while_held(out: &Outcome) -> bool {
    let judged_unix = !out
        .events_where(|e| e.s("source") == "seccomp" && e.s("family") == "unix" && e.s("action") == "allowed")
        .is_empty();
    out.stdout.contains("swapped: pending=1") && judged_unix
}

/// `r32_held MODE HOST PORT`, until the swap lands while the call is held (at most `tries`
/// runs). Every run: the sink gets nothing (`assert_nothing`), and a swap done before the call
/// returned fails it with `EPERM`, reported as refused (by either layer) naming the sink; a run
/// whose swap landed while the call was held has it refused by the kernel layer, attached by
/// the time the call was let go: `held` checks the rest.
fn swap_runs(
    mode: &str,
    (host, port): (&str, &str),
    disable: Option<&str>,
    assert_nothing: impl Fn(&str),
    held: impl Fn(&Outcome),
) {
    let tries = 6;
    let dst = format!("{host}:{port}");
    for _ in 0..tries {
        let mut trace = Trace::new().opts(["--fail-on-leak"]).timeout(RUN_LIMIT);
        if let Some(disable) = disable {
            trace = trace.env("SOCKSTRACE_TEST_DISABLE", disable);
        }
        let out = trace.program([attacker().as_str(), mode, host, port]).run();
        assert_nothing(&format!("{mode}\n{}", out.describe()));
        if out.stdout.contains("swapped: pending=1") {
            let (rc, errno) = result_of(&out, "call");
            assert!(
                rc < 0 && errno == libc::EPERM as i64,
                "{mode}: the swapped call went on\n{}",
                out.describe()
            );
            let refused = out.events_where(|e| e.s("dst") == dst && e.s("action") == "blocked");
            assert!(!refused.is_empty(), "{mode}: the swapped call is not reported\n{}", out.describe());
        }
        if swapped_while_held(&out) {
            held(&out);
            return;
        }
    }
    panic!("{mode}: in {tries} runs the swap never landed while the call was held (the window closed first)");
}

/// A kernel-layer event for the swapped call, naming the sink, refused.
fn assert_kernel_refused(out: &Outcome, syscall: &str, dst: &str) {
    let seen = out.events_where(|e| {
        e.s("source") == "kernel"
            && e.s("syscall") == syscall
            && e.s("dst") == dst
            && e.s("action") == "blocked"
    });
    assert!(
        !seen.is_empty(),
        "the held {syscall}, swapped to {dst}, is not in the report as refused by the kernel layer\n{}",
        out.describe()
    );
}

/// A unix datagram connect held for the layer, its fd swapped for a UDP socket and its address
/// rewritten to a forbidden sink while it is held: the kernel runs a UDP connect when the call
/// is let go, and the layer, attached by then, refuses it (reported by the kernel as a UDP
/// connect refused, no leak: nothing can be sent on it). Seen: `swapped: pending=1`, connect
/// `EPERM`, the kernel's `connect4` event `udp-connect-refused`, nothing at the sink.
#[test]
fn a_held_unix_connect_swapped_for_udp_meets_the_attached_layer() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let nothing = |context: &str| sink.assert_nothing_arrived(context);
    swap_runs("swap-connect", (&sink.host(), &sink.port()), None, nothing, |out| {
        assert_kernel_refused(out, "connect", &sink.dst());
        out.assert_code(0);
    });
}

/// The same with `sendto` and `sendmsg` of a unix datagram socket: the kernel sends a UDP
/// datagram to the sink when the held call is let go; the attached layer's `sendmsg4` refuses
/// it and reports the leak (`--fail-on-leak`: 3). Seen: `EPERM`, `direct-udp` leak from the
/// kernel, nothing at the sink.
#[test]
fn a_held_unix_send_swapped_for_udp_is_refused_and_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    for mode in ["swap-send", "swap-sendmsg"] {
        let sink = UdpSink::bind("127.0.0.1");
        let nothing = |context: &str| sink.assert_nothing_arrived(context);
        swap_runs(mode, (&sink.host(), &sink.port()), None, nothing, |out| {
            assert_kernel_refused(out, "sendmsg", &sink.dst());
            out.assert_code(3);
        });
    }
}

/// A unix stream connect held for the layer, swapped for a TCP socket and a forbidden address,
/// with the Landlock fence switched off (which otherwise refuses the program's own TCP connect
/// with `EACCES`, unreported): the attached layer's `connect4` refuses it and reports the leak.
/// Seen: `EPERM`, `direct-tcp` leak from the kernel, no connection at the sink.
#[test]
fn a_held_unix_connect_swapped_for_tcp_is_refused_and_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let sink = TcpSink::bind("127.0.0.1");
    let nothing = |context: &str| sink.assert_nothing_arrived(context);
    swap_runs("swap-connect-tcp", (&sink.host(), &sink.port()), Some("landlock"), nothing, |out| {
        assert_kernel_refused(out, "connect", &sink.dst());
        out.assert_code(3);
    });
}

/// `r32_held herd N HOST PORT` (or `herd-exit N HOST PORT MS`) against a UDP sink.
fn herd(args: &[&str], disable: Option<&str>, opts: &[&str]) -> (Outcome, UdpSink) {
    let sink = UdpSink::bind("127.0.0.1");
    let mut trace = Trace::new().opts(opts).timeout(RUN_LIMIT);
    if let Some(disable) = disable {
        trace = trace.env("SOCKSTRACE_TEST_DISABLE", disable);
    }
    let (host, port) = (sink.host(), sink.port());
    let mut argv = vec![attacker(), args[0].to_string(), args[1].to_string(), host, port];
    argv.extend(args[2..].iter().map(|a| a.to_string()));
    let out = trace.program(argv).run();
    sink.assert_nothing_arrived(&out.describe());
    (out, sink)
}

fn assert_leak_reported(out: &Outcome, dst: &str) {
    let seen = out.events_where(|e| e.is_leak() && e.s("syscall") == "sendto" && e.s("dst") == dst);
    assert!(!seen.is_empty(), "the leak behind the herd is not in the report\n{}", out.describe());
}

/// 1,000 threads each make an allowed unix `sendto` in the first milliseconds (each held for
/// the layer, no thread each), and a thread tries a leak behind them: every held call is
/// answered (the kernel runs it: `ECONNREFUSED`, nobody is bound), the leak is refused and
/// reported, and the run ends at once. Seen: `herd: ok=1000 of 1000`, 1 leak, exit 3, ~1.5 s.
#[test]
fn a_herd_of_held_calls_is_answered_and_the_leak_behind_it_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, sink) = herd(&["herd", "1000"], None, &["--fail-on-leak"]);
    assert!(
        out.stdout.contains("herd: ok=1000 of 1000"),
        "held calls were lost or refused\n{}",
        out.describe()
    );
    assert_leak_reported(&out, &sink.dst());
    out.assert_code(3);
}

/// A layer that never completes (`late-layer-stall`): 1,000 held calls are never let go; the
/// program exits 300 ms later (its held threads die with it), the run ends (the held calls are
/// answered `EPERM` on abandon), the leak is reported. Seen: `herd: exiting with ok=0`, 1 leak,
/// exit 3, ~1.5 s; layers line `socket creation only`.
#[test]
fn held_calls_of_a_layer_that_never_completes_do_not_hang_the_run() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, sink) = herd(&["herd-exit", "1000", "300"], Some("late-layer-stall"), &["--fail-on-leak"]);
    assert!(out.stdout.contains("herd: exiting with ok=0"), "a held call went on\n{}", out.describe());
    assert_leak_reported(&out, &sink.dst());
    out.assert_code(3);
}

/// A layer that fails under `--kernel required` (`late-layer-fail`): no held call goes on, the
/// program is killed, the run fails (125) and ends; under `--kernel auto` the held calls go on
/// (the run is as with `--kernel off`, and says so) and the leak is still refused and reported.
#[test]
fn held_calls_of_a_layer_that_fails_are_refused_under_kernel_required() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let (out, _sink) =
        herd(&["herd", "300"], Some("late-layer-fail"), &["--fail-on-leak", "--kernel", "required"]);
    out.assert_code(125);
    assert!(
        !out.stdout.contains("herd: ok="),
        "the program went on after its layer failed\n{}",
        out.describe()
    );
    // The failed run's report is whole: every event (each line is read as JSON) and its
    // summary last (the failure path once left the buffered events unwritten, the last one
    // cut in half).
    assert!(
        out.summary_obj().get("layers").is_some(),
        "the failed run's report has no summary\n{}",
        out.describe()
    );
    let (out, sink) = herd(&["herd", "300"], Some("late-layer-fail"), &["--fail-on-leak"]);
    assert!(
        out.stdout.contains("herd: ok=300 of 300"),
        "held calls were lost or refused\n{}",
        out.describe()
    );
    assert_leak_reported(&out, &sink.dst());
    out.assert_code(3);
}

/// An i386 program whose first trapped call is a `socketcall(SYS_CONNECT)` of a unix socket
/// (made natively before it was executed) to a name nobody bound: the kernel would answer
/// `ECONNREFUSED`.
fn i386_first_connect(disable: Option<&str>) -> Result<Outcome, String> {
    let m32 = sockstrace_tests::paths::client_build("r32_held", true, false)?;
    let mut trace = Trace::new().opts(["--fail-on-leak"]).timeout(RUN_LIMIT);
    if let Some(disable) = disable {
        trace = trace.env("SOCKSTRACE_TEST_DISABLE", disable);
    }
    Ok(trace.program([attacker().as_str(), "exec32", m32.to_str().expect("utf-8 path")]).run())
}

/// Control: in the old order (the whole layer attached before the program starts) the i386
/// unix connect is let through: `ECONNREFUSED`, 0 leaks, exit 0.
#[test]
fn control_an_i386_unix_connect_in_the_old_order_goes_on() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let out = match i386_first_connect(Some("late-layer")) {
        Ok(out) => out,
        Err(e) => skip!("no i386 build here: {e}"),
    };
    assert_eq!(result_of(&out, "sc-connect"), (-1, libc::ECONNREFUSED as i64), "{}", out.describe());
    out.assert_code(0);
}

/// Found (closed: a multiplexed call waits for the layer before it is answered CONTINUE): the
/// same call while the layer completes itself was refused with `EPERM` and reported
/// as a `socketcall-race` leak; `--fail-on-leak` fails a program that tried nothing (exit 3;
/// layers line: `socket creation only`). `gate_for_continue` no longer waits for the layer, so
/// `Call::continue_is_sound` reads the witness slot while it is still empty and refuses the
/// multiplexed CONTINUE that would have been held. Seen (2/2 runs): `sc-connect: rc=-1
/// errno=1`, `connect ... (socketcall-race)`. Fail-closed: nothing left.
#[test]
fn an_i386_unix_connect_while_the_layer_loads_is_not_refused_as_a_race() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let out = match i386_first_connect(None) {
        Ok(out) => out,
        Err(e) => skip!("no i386 build here: {e}"),
    };
    assert_eq!(
        result_of(&out, "sc-connect"),
        (-1, libc::ECONNREFUSED as i64),
        "the i386 unix connect was refused while the layer loaded\n{}",
        out.describe()
    );
    assert_eq!(out.summary_count("leaks"), 0, "a benign call was reported as a leak\n{}", out.describe());
    out.assert_code(0);
}
