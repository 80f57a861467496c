//! Red team against the reserve receiver (`supervisor::receivers`): the thread that takes the
//! queue when no call was received for a tick and judges and reports every call. The attacks
//! were made against its first form, which handed a call that would wait to a thread of its
//! own to be handled again from the start; the reserve now hands its role on instead and goes
//! on with the call itself (one handling), which closed the second, third and fourth.
//!
//! Attacks: stall the reserve itself on the program's memory (userfaultfd) behind a herd that
//! holds every receiver; end the program between the reserve's verdict and the second
//! handling; make the second handling find state the first one left (a UDP flow already
//! known); make the reserve refuse what any other receiver takes through the proxy; and queue
//! a leak behind thousands of quick calls, then exit. Attackers: `tests/clients/r28_*.c`.
//! Ground truth: sinks on loopback (what arrives) and the JSON report.

use std::time::Duration;

use sockstrace_tests::dante::Dante;
use sockstrace_tests::net::{free_port, full_listener};
use sockstrace_tests::{client, is_root, skip, Microsocks, Outcome, TcpSink, Trace, UdpSink};

/// The attempted connect to `sink` is in the report (any action).
fn reported(out: &Outcome, sink: &TcpSink) -> bool {
    out.leaks_for("direct-tcp").iter().any(|e| e.s("dst") == sink.dst())
}

/// `starves`: every receiver and the reserve end up held, so the run must fail instead.
fn uffd_herd(stallers: usize, settle_ms: u32, starves: bool) {
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
    if starves {
        // Nobody can receive the attempt: the program is killed and the run fails, saying why.
        assert!(
            out.stderr.contains("no thread could take the program's calls"),
            "the run does not say that calls went unreceived\n{d}"
        );
        assert!(!out.stdout.contains("leak: answered errno=0"), "the leak attempt succeeded\n{d}");
        out.assert_code(125);
        return;
    }
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
/// (page unfilled). Nobody can receive the attempt then; safe: the run does not end saying it
/// saw everything: after a second of calls that no thread could take, the program is killed
/// and sockstrace fails (125), saying so.
///
/// Was: `leak: unanswered`, the report said `0 leak(s)`, `0 allowed`, exit status 0: the
/// reserve waits in its copy of the caller's memory like every receiver; with it stalled and
/// the limit reached, nobody received the leak.
#[test]
fn a_leak_behind_every_receiver_and_the_reserve_stalled_on_memory_fails_the_run() {
    uffd_herd(1100, 5000, true);
}

/// What holds: with 30 receivers stalled on the page the watcher adds another, and the leak
/// attempt is refused and reported at once.
#[test]
fn a_leak_behind_a_few_receivers_stalled_on_memory_is_reported() {
    uffd_herd(30, 1000, false);
}

/// One receiver stalls on an unfilled userfaultfd page, so the reserve takes the next call: a
/// blocking connect to a forbidden sink, which `--on-leak log` (or `socksify`) lets go on, so
/// that it would wait and the reserve hands it to a thread of its own. The program watches the
/// faults on the page that holds the address: when the first copy is complete it drops the
/// page again, and as soon as the second copy (the new thread's) faults on it, it exits. Safe:
/// the attempt, judged a leak by the reserve, is in the report (as it is when the caller of a
/// call performed on an ordinary receiver dies meanwhile), and `--fail-on-leak` exits 3.
///
/// Was (the first form), every run, in both modes: `read: page=A tid=X`, `page=B tid=X`, `page=A tid=Y`
/// (another supervisor thread), then the report with `0 leak(s)`, `0 logged`, exit status 0:
/// the reserve's event was dropped with the rest of its handling, and the second handling
/// found the caller gone. Nothing reached the sink.
#[test]
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
/// Was (the first form): every datagram went through the proxy (five at the peer, `udp_proxy.flows` 5), but
/// the report had two `socksified` events and said `2 leak(s)`: a flow the reserve saw first
/// was registered (its event made), then the send through the relay would wait, so the call
/// was handed on and the event dropped; the second handling found the flow known, and makes
/// an event only for a new one.
#[test]
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
/// Was (the first form): `send 1: rc=-1 errno=1`, reported `blocked`, and the summary's UDP relay `unused (no
/// leaked datagram)`: the probe's `Failure::Busy` on the reserve is read as "no proxy offers
/// UDP" (`udp_proxy::hook::route`, `unwrap_or(false)`), so the datagram is refused instead of
/// handed on. Nothing leaked (the refusal is reported), but the reserve answers the call
/// otherwise than every other receiver.
#[test]
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
/// (With 200 threads the attempt was received in time.) The attempt never ran: its caller was
/// killed while it still waited to be received, and nothing was sent. A limit of any monitor
/// that sees calls as they are made: the report holds the calls that were made, and a call
/// cut short by its program's end before anyone took it is not one of them (THREAT-MODEL).
#[test]
#[ignore = "limit: a call still queued when its program's exit kills its caller never ran and is not reported (a leak queued behind ~2,000 quick allowed calls, the program exiting 2 ms later)"]
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
