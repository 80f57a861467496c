//! Red team against "no wait before a judgement" (the fixes of red team r30's findings): no call
//! waits for room in the copy budget (`CopyBudget::grant`: past 32 MiB a stream send is cut, a
//! datagram given its room anyway), `sendmmsg` judges every message before one wait for a
//! kernel layer still loading (`Call::layer_wait_later`), and the SOCKS exchanges of a UDP
//! association end with their caller (`handlers::run_stoppable`).
//!
//! Found (each test failed then): the copy budget was a count, not a bound, for datagrams (a
//! `sendmmsg` was granted all it planned, up to 1 MiB, and a call held after its copy by a
//! SOCKS proxy slow to grant the UDP association kept it: 283 MiB); the probe of the proxies
//! that offer UDP ran unstoppable before the datagram that started it was judged (`0 leaks`,
//! a proxy asked after the program ended). Closed: past the limit a datagram `sendmmsg` is
//! given its first message whole and sends fewer (the first leak among those left unsent is
//! judged and reported all the same), and the probe ends with its asker's caller, the datagram
//! then judged as any leak.
//!
//! Attacker: `tests/clients/r31_mmsg.c`. Ground truth: sinks on loopback, SOCKS5 stand-ins
//! that record when they are asked, the supervisor's `VmHWM`, and the JSON report.

use std::time::{Duration, Instant};

use sockstrace_tests::socks_standin::{Grant, Socks};
use sockstrace_tests::{client, kernel_available, Outcome, Trace, UdpSink};

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The datagram to `sink` is in the report as a leak (any action).
fn reported(out: &Outcome, sink: &UdpSink) -> bool {
    out.leaks().iter().any(|e| e.s("dst") == sink.dst())
}

/// `r31_mmsg` arguments.
fn args(
    mode: &str,
    leak: &UdpSink,
    ok: &UdpSink,
    threads: u32,
    nmsg: u32,
    size: u32,
    wait_ms: u32,
) -> Vec<String> {
    vec![
        client("r31_mmsg").to_str().unwrap().to_string(),
        mode.into(),
        leak.host(),
        leak.port(),
        ok.host(),
        ok.port(),
        threads.to_string(),
        nmsg.to_string(),
        size.to_string(),
        wait_ms.to_string(),
    ]
}

const HERD: u64 = 256;

/// Memory: 256 threads of the program each make one blocking `sendmmsg` of 16 datagrams of
/// 65,000 bytes (1 MiB, a call's copy limit) to a forbidden sink on one UDP socket, under
/// `--on-leak socksify` with a proxy that takes 6 s to grant the association (within the
/// supervisor's 10 s). Every call is copied, then waits in `Assoc::relay` (the first in the
/// exchange, the others on its lock). The program exits after 4 s. Safe: the supervisor's
/// peak RSS stays within what `copy_budget` promises: 32 MiB for all calls, and beyond it at
/// most one datagram and its control data per call in flight (ARCHITECTURE "What the
/// supervisor copies"): here under 32 MiB + 256 x 128 KiB + 64 MiB for the supervisor itself
/// and its receiver threads (a generous 128 MiB); nothing reaches the sink; the leak is in the
/// report.
///
/// Was (every run): peak RSS 290,068 KiB (283 MiB); the same run with one datagram per call
/// (a 64 KiB `sendmmsg`) peaks at 44,724 KiB. `send::room` asks `CopyBudget::grant` for the
/// whole planned copy with `least = want` for any datagram socket, so a datagram `sendmmsg` is
/// granted its full 1 MiB (`CALL_MAX`) past the limit, not one datagram: the 32 MiB total
/// bounds nothing for datagrams. With 1,024 receivers, about 1 GiB (more with control data
/// near `optmem_max`, 128 KiB here). The report itself is right (the flow, exit 3), nothing
/// reached the sink. The same hold comes from the probe below (every leaked datagram waits on
/// the `OnceLock` after its copy).
#[test]
fn datagram_sendmmsg_calls_held_by_the_proxy_stay_within_the_copy_budget() {
    if let Err(e) = kernel_available() {
        sockstrace_tests::util::skip_note(module_path!(), &e);
        return;
    }
    let proxy = Socks::start(Grant::After(Duration::from_secs(6)));
    let (leak, ok) = (UdpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.1"));
    let running = Trace::new()
        .opts(["--fail-on-leak"])
        .proxy(proxy.addr)
        .on_leak("socksify")
        .timeout(Duration::from_secs(30))
        .program(args("herd", &leak, &ok, HERD as u32, 16, 65_000, 4000))
        .spawn();
    let pid = running.pid();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline {
        match status_kib(pid, "VmHWM:") {
            Some(kib) => peak = peak.max(kib),
            None => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = running.wait();
    let d = format!("supervisor peak RSS {peak} KiB\n{}\n{}", proxy.describe(), out.describe());
    eprintln!("supervisor peak RSS: {peak} KiB");
    assert!(out.stdout.contains(&format!("started: {HERD}")), "the threads were not all started\n{d}");
    assert!(peak > 0, "could not read the supervisor's VmHWM\n{d}");
    leak.assert_nothing_arrived(&d);
    let bound = (32 << 10) + HERD * 128 + (64 << 10);
    assert!(
        peak < bound,
        "supervisor peak RSS {peak} KiB with {HERD} datagram sendmmsg held (bound {bound} KiB)\n{d}"
    );
    assert!(reported(&out, &leak), "the socksified datagrams are missing from the report\n{d}");
    out.assert_code(3);
}

/// The probe: the proxies are asked which offers UDP at the first leaked datagram, one after
/// the other, 2 s each at most (`probe::PROBE_TIMEOUT`), on a receiver with `run_call` (not
/// stoppable), before the datagram is judged (`hook::route` comes before `record_flow`). Three
/// `--proxy` that hang (accept, never answer); the program sends one datagram to a forbidden
/// sink and exits 300 ms later. Safe: the attempt is in the report (`--fail-on-leak`: exit 3),
/// nothing reaches the sink, and no proxy is asked anything once the program has ended.
///
/// Was (every run): `0 leak(s)`, no event, exit 0 under `--fail-on-leak`; the summary says
/// `udp_proxy` "unused (no leaked datagram)". The second proxy is connected to at 2.2 s, 1.7 s
/// after the program ended (the first one's 2 s probe timeout), inside the run's 2 s drain; the
/// supervisor then exits with the probe still on the third. `hook::route` runs the probe with
/// `run_call` and `socks::never` before `record_flow`/`gate` ever see the datagram, so the run's
/// end neither stops it nor has an event to write.
#[test]
fn a_datagram_whose_proxy_probe_hangs_is_reported_and_no_proxy_is_asked_after_the_end() {
    if let Err(e) = kernel_available() {
        sockstrace_tests::util::skip_note(module_path!(), &e);
        return;
    }
    let proxies = [Socks::start(Grant::Never), Socks::start(Grant::Never), Socks::start(Grant::Never)];
    let (leak, ok) = (UdpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.1"));
    let mut trace =
        Trace::new().opts(["--fail-on-leak"]).on_leak("socksify").timeout(Duration::from_secs(30));
    for p in &proxies {
        trace = trace.proxy(p.addr);
    }
    let running = trace.program(args("sendto", &leak, &ok, 1, 1, 17, 300)).spawn();
    assert!(
        running.wait_stdout("leak:", Duration::from_secs(20)),
        "the program did not report\n{}",
        running.describe()
    );
    // The program has ended (its last line is written just before `_exit`).
    let ended = Instant::now();
    let out = running.wait();
    let late: Vec<String> = proxies
        .iter()
        .flat_map(|p| {
            let end = p.since_start(ended);
            p.connected
                .lock()
                .unwrap()
                .iter()
                .filter(|&&at| at > end + Duration::from_millis(100))
                .map(move |at| format!("{} at {:?} (program ended at {:?})", p.addr, at, end))
                .collect::<Vec<_>>()
        })
        .collect();
    let d =
        format!("{}\n{}", proxies.iter().map(Socks::describe).collect::<Vec<_>>().join("\n"), out.describe());
    leak.assert_nothing_arrived(&d);
    assert!(
        out.stdout.contains("leak: unanswered"),
        "the program did not exit while its datagram waited\n{d}"
    );
    assert!(late.is_empty(), "proxies asked after the program ended: {late:?}\n{d}");
    assert!(reported(&out, &leak), "the datagram is missing from the report\n{d}");
    out.assert_code(3);
}

/// `sendmmsg` of two datagrams (the first to an allowed sink, the second to a forbidden one,
/// socksified) asking for a kernel layer still loading (test switch `late-layer-stall`). The
/// judging loop sends a socksified message through the relay before the one wait for the
/// layer, while the allowed first message is sent after it: out of order, and sent even if
/// the wait then refuses the call. Holds: under `--on-leak socksify` the layer never joins
/// late (`supervisor::joins_late`: the relay is set up with the layer), so the call is
/// answered at once with both messages sent in order (`rc=2`), the allowed one reaches its
/// sink, the socksified one the proxy's relay, the leak is in the report (exit 3) and nothing
/// reaches the forbidden sink.
#[test]
fn a_socksified_sendmmsg_is_never_held_for_a_late_layer() {
    if let Err(e) = kernel_available() {
        sockstrace_tests::util::skip_note(module_path!(), &e);
        return;
    }
    let proxy = Socks::start(Grant::After(Duration::ZERO));
    let (leak, ok) = (UdpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.1"));
    let out = Trace::new()
        .opts(["--fail-on-leak"])
        .proxy(proxy.addr)
        .on_leak("socksify")
        .allow(&ok.dst())
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall")
        .timeout(Duration::from_secs(30))
        .program(args("mixed", &leak, &ok, 1, 2, 0, 500))
        .run();
    let _ = ok.wait_datagrams(1, Duration::from_secs(2));
    let d = format!("ok sink got {}\n{}\n{}", ok.datagrams(), proxy.describe(), out.describe());
    leak.assert_nothing_arrived(&d);
    assert!(
        out.stdout.contains("leak: answered rc=2 errno=0"),
        "the call was not answered at once, both sent\n{d}"
    );
    assert_eq!(ok.datagrams(), 1, "the allowed first message did not reach its sink\n{d}");
    assert_eq!(proxy.relayed.lock().unwrap().len(), 1, "the socksified message did not reach the relay\n{d}");
    assert!(reported(&out, &leak), "the socksified message is missing from the report\n{d}");
    out.assert_code(3);
}

/// `sendmmsg` of two datagrams under `--on-leak log` while the layer loads (`late-layer-stall`):
/// the first to an allowed sink, the second to a forbidden one (a leak let through, logged).
/// Both are judged before the one wait for the layer; the program exits 500 ms later, the
/// layer is abandoned. Safe: the logged leak is in the report (exit 3) and neither message is
/// sent after the program ended (nothing at either sink).
#[test]
fn a_logged_sendmmsg_held_for_the_layer_is_reported_and_not_sent_after_the_end() {
    if let Err(e) = kernel_available() {
        sockstrace_tests::util::skip_note(module_path!(), &e);
        return;
    }
    let (leak, ok) = (UdpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.1"));
    let out = Trace::new()
        .opts(["--fail-on-leak"])
        .on_leak("log")
        .allow(&ok.dst())
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall")
        .timeout(Duration::from_secs(30))
        .program(args("mixed", &leak, &ok, 1, 2, 0, 500))
        .run();
    std::thread::sleep(Duration::from_millis(300));
    let d = out.describe();
    assert!(out.stdout.contains("leak: unanswered"), "the program did not exit while its call waited\n{d}");
    leak.assert_nothing_arrived(&d);
    ok.assert_nothing_arrived(&d);
    let logged = out.leaks().into_iter().find(|e| e.s("dst") == leak.dst());
    assert!(logged.is_some(), "the logged leak is missing from the report\n{d}");
    out.assert_code(3);
}

/// A socksified UDP connect (`hook::connect`: the program's socket is connected to its peer's
/// shim; no relay is asked for yet), then one datagram sent on it with `send` (not trapped: it
/// reaches the shim), and the program exits at once. The association's own thread asks the
/// proxy for the relay with `socks::never` (`Assoc::program_to_relay`), which is not ended by
/// the program's end; the proxy grants it after 150 ms. Safe: the connect is in the report
/// (exit 3), nothing reaches the forbidden sink, and no datagram reaches the proxy's relay
/// after the program ended.
#[test]
fn a_datagram_on_a_socksified_connected_socket_is_not_relayed_after_the_end() {
    if let Err(e) = kernel_available() {
        sockstrace_tests::util::skip_note(module_path!(), &e);
        return;
    }
    let proxy = Socks::start(Grant::After(Duration::from_millis(150)));
    let (leak, ok) = (UdpSink::bind("127.0.0.1"), UdpSink::bind("127.0.0.1"));
    let running = Trace::new()
        .opts(["--fail-on-leak"])
        .proxy(proxy.addr)
        .on_leak("socksify")
        .timeout(Duration::from_secs(30))
        .program(args("conn", &leak, &ok, 1, 1, 17, 0))
        .spawn();
    assert!(
        running.wait_stdout("leak:", Duration::from_secs(20)),
        "the program did not report\n{}",
        running.describe()
    );
    let ended = proxy.since_start(Instant::now());
    let out = running.wait();
    std::thread::sleep(Duration::from_millis(500));
    let relayed = proxy.relayed.lock().unwrap().clone();
    let d = format!(
        "program ended at {ended:?}; relayed at {relayed:?}\n{}\n{}",
        proxy.describe(),
        out.describe()
    );
    leak.assert_nothing_arrived(&d);
    assert!(out.stdout.contains("leak: answered rc=17"), "the connected send did not go through\n{d}");
    assert!(
        relayed.iter().all(|&at| at <= ended),
        "a datagram reached the relay after the program ended\n{d}"
    );
    assert!(reported(&out, &leak), "the socksified connect is missing from the report\n{d}");
    out.assert_code(3);
}
