//! The fast path (root, kernel layer on and enforcing, the program as another user with
//! `--user`): an allowed UDP connect and an allowed addressed UDP datagram are answered
//! CONTINUE, the kernel running them on the address it reads then. A program that flips the
//! address in memory, or swaps what its fd number names, between the supervisor's decision and
//! the kernel's act is still refused, by the kernel's hooks, and reported (`source: kernel`):
//! nothing reaches the forbidden sink.
//!
//! Each test also runs the same attack with the fast path switched off
//! (`SOCKSTRACE_TEST_DISABLE=fast-path`): then the supervisor performs every allowed call on
//! its own copy, so the kernel never sees the flipped address. That the kernel reports it only
//! with the fast path on proves the attack reached the window the fast path opens.

use std::time::Duration;

use sockstrace_tests::{client, kernel_available, skip, Outcome, TcpSink, Trace, UdpSink};

/// Milliseconds the attacker waits before it starts (the fast path is on from the start).
const WAIT_MS: &str = "0";
const CALLS: &str = "3000";

fn attack(trace: Trace, mode: &str, ok: &str, bad: &str) -> Outcome {
    let (ok_host, ok_port) = ok.rsplit_once(':').unwrap();
    let (bad_host, bad_port) = bad.rsplit_once(':').unwrap();
    let attacker = client("attack_fastpath");
    let argv = [attacker.to_str().unwrap(), mode, WAIT_MS, ok_host, ok_port, bad_host, bad_port, CALLS];
    trace.timeout(Duration::from_secs(60)).program(argv).run()
}

fn fast_path_on(out: &Outcome) -> bool {
    out.kernel_layer().contains("fast path")
}

/// The program runs as nobody (`--user`): the fast path needs a program that can neither
/// leave its cgroup nor detach the kernel layer. And no allowed call may be named in the
/// report (the fast path's events could not say which allowed address the kernel used): the
/// report keeps the refusals only, as the human lines of a run without `--report` do.
fn as_nobody() -> Trace {
    Trace::new().opts(["--user", "nobody"]).env("SOCKSTRACE_TEST_DISABLE", "allowed-events")
}

/// Calls to `bad` the kernel refused and reported (a leak, or a UDP connect refused as
/// `udp-connect-refused`, which sends nothing).
fn kernel_leaks(out: &Outcome, bad: &str) -> usize {
    out.events_where(|e| e.s("source") == "kernel" && e.s("dst") == bad && e.s("action") == "blocked").len()
}

/// Runs of the attack at most, until one flip reaches the kernel: how often the flipping
/// thread writes while the kernel copies the address depends on the scheduler (on a loaded
/// 2-CPU machine, 13 to 240 of 3,000 calls, once none).
const ATTEMPTS: usize = 5;

fn check(mode: &str, ok: &str, bad: &str, trace: impl Fn() -> Trace, nothing_arrived: impl Fn(&str)) {
    let mut attempts = 0;
    let (out, refused) = loop {
        attempts += 1;
        let out = attack(trace(), mode, ok, bad);
        out.assert_code(0);
        nothing_arrived(&format!("{mode} with the fast path\n{}", out.describe()));
        assert!(
            fast_path_on(&out),
            "no fast path (layers.kernel {:?})\n{}",
            out.kernel_layer(),
            out.describe()
        );
        let refused = kernel_leaks(&out, bad);
        if refused > 0 || attempts == ATTEMPTS {
            break (out, refused);
        }
    };
    assert!(
        refused > 0,
        "the kernel reported no refusal for {bad} in {ATTEMPTS} runs: no flip reached it\n{}",
        out.describe()
    );
    eprintln!(
        "{mode}: the kernel refused and reported {refused} calls to {bad}; program says {}",
        out.stdout.trim()
    );

    let slow = attack(trace().env("SOCKSTRACE_TEST_DISABLE", "allowed-events,fast-path"), mode, ok, bad);
    slow.assert_code(0);
    nothing_arrived(&format!("{mode} without the fast path\n{}", slow.describe()));
    assert!(!fast_path_on(&slow), "{}", slow.describe());
    assert_eq!(
        kernel_leaks(&slow, bad),
        0,
        "without the fast path the kernel never sees the flip\n{}",
        slow.describe()
    );
}

#[test]
fn a_udp_connect_address_flipped_after_the_decision_is_refused_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    check(
        "flip-connect-udp",
        &allowed.dst(),
        &bad.dst(),
        || as_nobody().allow(&allowed.dst()),
        |what| bad.assert_nothing_arrived(what),
    );
}

/// TCP connects stay off the fast path (answered CONTINUE they measured slower: the program's
/// thread must wake to run the connect, where ours runs it while the caller sleeps): the
/// supervisor performs them on its copy, so even with the fast path on, the kernel never sees
/// a flipped address, and nothing reaches the forbidden sink.
#[test]
fn tcp_connects_are_performed_on_our_copy_even_with_the_fast_path() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let proxy = TcpSink::bind("127.0.0.1");
    let bad = TcpSink::bind("127.0.0.1");
    let out = attack(as_nobody().proxy(proxy.addr()), "flip-connect", &proxy.dst(), &bad.dst());
    out.assert_code(0);
    bad.assert_nothing_arrived(&out.describe());
    assert!(fast_path_on(&out), "no fast path (layers.kernel {:?})\n{}", out.kernel_layer(), out.describe());
    assert_eq!(kernel_leaks(&out, &bad.dst()), 0, "a TCP connect went the fast path\n{}", out.describe());
}

#[test]
fn a_datagram_address_flipped_after_the_decision_is_refused_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    check(
        "flip-sendto",
        &allowed.dst(),
        &bad.dst(),
        || as_nobody().allow(&allowed.dst()),
        |what| bad.assert_nothing_arrived(what),
    );
}

#[test]
fn an_fd_swapped_after_the_decision_is_refused_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let proxy = TcpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    check(
        "swap-connect",
        &proxy.dst(),
        &bad.dst(),
        // UDP to the same address allowed too: a UDP connect there takes the fast path, and
        // the swap puts a TCP or UDP-Lite socket under it.
        || as_nobody().proxy(proxy.addr()).allow(&proxy.dst()),
        |what| bad.assert_nothing_arrived(what),
    );
}

/// A datagram answered on its address alone (the fast path does not look at the socket): the fd
/// number swapped among UDP, UDP-Lite, TCP, ping, unix and netlink sockets while the address
/// flips. Whatever the kernel finds under the number then, nothing reaches the forbidden sink:
/// the kernel judges every inet socket of the run, and the others refuse an inet address.
#[test]
fn a_datagram_whose_fd_is_swapped_after_the_decision_is_refused_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    check(
        "swap-sendto",
        &allowed.dst(),
        &bad.dst(),
        || as_nobody().allow(&allowed.dst()),
        |what| bad.assert_nothing_arrived(what),
    );
}

/// A socket the program inherits was made outside its cgroup, where none of the kernel layer's
/// hooks runs: a datagram the fast path let the kernel send on it would go wherever the address
/// said by then. The fast path is off for a program that starts with an inet socket (the layers
/// line says why), so every datagram on it is sent by us on our copy of the address.
#[test]
fn a_datagram_on_an_inherited_socket_is_never_left_to_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let allowed = UdpSink::bind("127.0.0.1");
    let bad = UdpSink::bind("127.0.0.1");
    let (ok_host, ok_port) =
        allowed.dst().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    // bash's /dev/udp opens fd 3 as a UDP socket (connected to the allowed sink: a sendto's
    // own address still decides where each datagram goes).
    let inherit = format!("exec 3<>/dev/udp/{ok_host}/{ok_port} && exec \"$@\"");
    for _ in 0..ATTEMPTS {
        let out = attack(
            as_nobody().allow(&allowed.dst()).wrapper(["bash", "-c", &inherit, "bash"]),
            "flip-sendto-fd3",
            &allowed.dst(),
            &bad.dst(),
        );
        out.assert_code(0);
        bad.assert_nothing_arrived(&format!("datagrams on an inherited socket\n{}", out.describe()));
        assert!(!fast_path_on(&out), "fast path with an inherited inet socket\n{}", out.describe());
        assert!(
            out.kernel_layer().contains("inherits an inet socket"),
            "the layers line does not say why the fast path is off: {:?}",
            out.kernel_layer()
        );
        // The flips we read are refused by us (the program named the forbidden sink then); the
        // rest are sent, by us.
        assert!(!out.stdout.starts_with("ok=0 "), "no allowed datagram was sent: {}", out.describe());
    }
}
