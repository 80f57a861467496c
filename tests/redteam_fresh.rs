//! Red team, from the threat model alone, against the fast path (allowed inet connects and
//! addressed datagrams answered CONTINUE as root with the kernel layer enforcing and the program
//! run as another user) and the i386 socket maker.
//!
//! The attacker is `tests/clients/attack4_fastpath.c`. Ground truth comes from sinks (what
//! reached them, byte for byte where it matters) and from the JSON report.

use std::time::Duration;

use sockstrace_tests::sniffer::Sniffer;
use sockstrace_tests::{client, is_root, kernel_available, skip, Outcome, TcpSink, Trace, UdpSink};

/// How many racing calls each attack makes.
const CALLS: &str = "3000";

/// The program as nobody (`--user`): what the fast path needs.
fn as_nobody() -> Trace {
    Trace::new().opts(["--user", "nobody"]).timeout(Duration::from_secs(60))
}

/// [`as_nobody`], with allowed calls counted but kept out of the report, as in a run without
/// `--report`: the fast path runs only then.
fn on_the_fast_path() -> Trace {
    as_nobody().env("SOCKSTRACE_TEST_DISABLE", "allowed-events")
}

fn attack4(trace: Trace, args: &[&str]) -> Outcome {
    let attacker = client("attack4_fastpath");
    let argv = std::iter::once(attacker.into_os_string()).chain(args.iter().map(Into::into));
    trace.program(argv).run()
}

fn fast_path_on(out: &Outcome) -> bool {
    out.kernel_layer().contains("fast path")
}

/// The number after `key=` in the program's output.
fn count(out: &Outcome, key: &str) -> i64 {
    let needle = format!("{key}=");
    out.stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&needle))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the program's output\n{}", out.describe()))
}

/// `--inspect-socks`: the program's proxy connections must go through the inspector's relay,
/// which refuses a SOCKS4 request by address (`socks-by-address`). The kernel layer allows the
/// proxy (its rules hold every proxy), so a connect CONTINUEd for an allowed destination whose
/// address a thread flips to the proxy reaches the proxy itself, uninspected: a SOCKS4 request
/// by address then passed, and the report said nothing. The program writes its request only on
/// a connection whose peer is the proxy itself (a relayed one's peer is the relay).
#[test]
fn the_socks_inspector_is_not_bypassed_by_a_connect_flipped_to_the_proxy() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let proxy = TcpSink::bind("127.0.0.1");
    let allowed = TcpSink::bind("127.0.0.1");
    let trace = as_nobody().proxy(proxy.addr()).allow(&allowed.dst()).opts(["--inspect-socks"]);
    let args = ["proxy-flip", &allowed.host(), &allowed.port(), &proxy.host(), &proxy.port(), CALLS];
    let out = attack4(trace, &args);
    out.assert_code(0);
    let direct = count(&out, "direct");
    sockstrace_tests::settle();
    eprintln!(
        "connections that reached the proxy itself: {direct}; bytes at the proxy: {}; leaks reported: {}; fast path: {}",
        proxy.bytes(),
        out.leaks().len(),
        fast_path_on(&out)
    );
    assert!(count(&out, "ok") > 0, "no connect went through at all\n{}", out.describe());
    assert_eq!(
        (direct, proxy.bytes()),
        (0, 0),
        "connections reached the proxy around the inspector, and SOCKS4 requests by address with them\n{}",
        out.describe()
    );
}

/// The io_uring attack client (liburing), or why it cannot be built.
fn attack4_uring() -> Result<std::path::PathBuf, String> {
    sockstrace_tests::paths::client_uring("attack4_uring", None, &[])
}

/// `--allow-io-uring` with `--inspect-socks`: io_uring's connects never pass the supervisor,
/// only the kernel layer, which allows the proxy. An io_uring connect to the proxy therefore
/// reached it around the inspector's relay, and a SOCKS4 request by address passed unreported.
/// The combination is refused (`--isolate-network` does not help: its forwarder passed the
/// io_uring connection to the proxy too).
#[test]
fn io_uring_connects_do_not_get_around_the_socks_inspector() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let attacker = match attack4_uring() {
        Ok(c) => c,
        Err(e) => skip!("attack4_uring cannot be built (liburing-dev?): {e}"),
    };
    let proxy = TcpSink::bind("127.0.0.1");
    let out = as_nobody()
        .proxy(proxy.addr())
        .opts(["--allow-io-uring", "--inspect-socks"])
        .program([attacker.as_os_str(), "socks4".as_ref(), proxy.host().as_ref(), proxy.port().as_ref()])
        .run();
    sockstrace_tests::settle();
    if out.stdout.contains("setup: errno=") {
        skip!("io_uring does not work here: {}", out.stdout.trim());
    }
    assert_eq!(
        proxy.bytes(),
        0,
        "a SOCKS4 request by address reached the proxy around the inspector (leaks reported: {})\n{}",
        out.leaks().len(),
        out.describe()
    );
    out.assert_code(2);
    assert!(out.stderr.contains("--inspect-socks"), "{}", out.describe());
}

/// Every spelling of a forbidden address that the kernel's UDP send path takes, flipped in after
/// a fast-path decision: a plain `sockaddr_in`, the same with family `AF_UNSPEC` (which
/// `udp_sendmsg` reads as `AF_INET`), a v4-mapped `sockaddr_in6`, and `[::1]`, while another
/// thread swaps the fd number between IPv4 and IPv6 UDP sockets (a `sockaddr_in` on an IPv6
/// socket goes down the IPv4 path) and unix and netlink sockets. The kernel's sendmsg hooks
/// judge each on the kernel's own copy: nothing reaches either forbidden sink, and the kernel
/// reports the refusals, which shows the flips reached it.
#[test]
fn every_spelling_of_a_flipped_datagram_address_is_refused_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let allowed = UdpSink::bind("127.0.0.1");
    let bad4 = UdpSink::bind("127.0.0.1");
    let bad6 = UdpSink::bind("::1");
    let args =
        ["variants", &allowed.host(), &allowed.port(), &bad4.host(), &bad4.port(), &bad6.port(), CALLS];
    // Whether a flip lands between our decision and the kernel's read is a race the attack
    // usually wins dozens of times a run on each family; under a loaded machine it can miss
    // one family in a run. Nothing may ever arrive; the kernel must be seen refusing on both
    // families within a few runs.
    let mut missing = Vec::new();
    for attempt in 1..=3 {
        let out = attack4(on_the_fast_path().allow(&allowed.dst()), &args);
        out.assert_code(0);
        assert!(
            fast_path_on(&out),
            "no fast path (layers.kernel {:?})\n{}",
            out.kernel_layer(),
            out.describe()
        );
        let what = format!("address spellings flipped after the decision\n{}", out.describe());
        bad4.assert_nothing_arrived(&what);
        bad6.assert_nothing_arrived(&what);
        assert!(
            allowed.datagrams() > 0,
            "no allowed datagram arrived: the attack did not run\n{}",
            out.describe()
        );
        let by_kernel = out.events_where(|e| e.is_leak() && e.s("source") == "kernel");
        missing = ["inet", "inet6"]
            .into_iter()
            .filter(|family| !by_kernel.iter().any(|e| e.s("family") == *family))
            .map(|family| {
                format!("run {attempt}: no kernel refusal on an {family} socket\n{}", out.describe())
            })
            .collect();
        if missing.is_empty() {
            return;
        }
    }
    panic!("no flip reached the kernel on some family:\n{}", missing.join("\n"));
}

/// The i386 `socketcall(SYS_SOCKET)` maker runs with the program's credentials, outside its
/// Landlock domain: the program (as `nobody`, with the kernel layer and without) can neither
/// ptrace it, signal it, read its memory, open its namespaces nor take its channel, nor set
/// its resource limits (`prlimit` is not a ptrace-mode access, and the uids match, but the
/// guard filter refuses it on another process; with no file left to open, the maker's sockets
/// used to fail, `EMFILE`). A thread flipping the family word gets no vsock socket.
#[test]
fn the_program_cannot_reach_its_socket_maker() {
    if !is_root() {
        skip!("needs root to run the program as nobody");
    }
    let socketcall = match sockstrace_tests::paths::client_build("attack3_socketcall", true, false) {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the socketcall client: {e}"),
    };
    let attacker = client("attack4_fastpath");
    let script = format!(
        "{a} maker; {s} flip 2000; {s} make; {s} vsock",
        a = attacker.display(),
        s = socketcall.display()
    );
    for kernel in ["auto", "off"] {
        let out = as_nobody().opts(["--kernel", kernel]).program(["/bin/sh", "-c", &script]).run();
        out.assert_code(0);
        let said = |line: &str| out.stdout.lines().any(|l| l == line);
        assert!(said("maker found"), "kernel {kernel}: no maker in the program's cgroup\n{}", out.describe());
        for reach in [
            "open-netns",
            "open-mem",
            "open-fd",
            "pidfd-getfd",
            "process-vm-readv",
            "ptrace-attach",
            "ptrace-seize",
            "kill-stop",
            "kill-kill",
        ] {
            assert!(
                !said(&format!("{reach} ok")),
                "kernel {kernel}: the program reached its maker: {reach}\n{}",
                out.describe()
            );
        }
        assert!(
            out.stdout.contains("vsock=0 "),
            "kernel {kernel}: a vsock socket was made\n{}",
            out.describe()
        );
        assert!(said("vsock: errno=1"), "kernel {kernel}\n{}", out.describe());
        assert!(
            !said("prlimit-nofile ok"),
            "kernel {kernel}: the program set its maker's limits\n{}",
            out.describe()
        );
    }
}

/// `--inspect-socks`: a TCP Fast Open send to the proxy (`sendto`/`sendmsg` with
/// `MSG_FASTOPEN`) is judged as a connect to the proxy, allowed, and was performed straight
/// to it: its data, a SOCKS4 request by address, reached the proxy around the inspector, and
/// the report said nothing. With or without the kernel layer, as root or as another user: it
/// is not the fast path's. A Fast Open to the proxy is now refused (`EOPNOTSUPP`, the kernel's
/// answer where Fast Open is off, on which programs connect instead), so its data never
/// arrives uninspected.
#[test]
fn fast_open_to_the_proxy_does_not_get_around_the_socks_inspector() {
    for who in ["root, kernel off", "nobody"] {
        if who == "nobody" && !is_root() {
            eprintln!("SKIP the run as nobody: needs root");
            continue;
        }
        // The proxy's own address, and 0.0.0.0 (the local host) where loopback is allowed.
        for (spelling, extra) in [("127.0.0.1", None), ("0.0.0.0", Some("--allow-loopback"))] {
            let proxy = TcpSink::bind("127.0.0.1");
            let trace = if who == "nobody" { as_nobody() } else { Trace::new().opts(["--kernel", "off"]) };
            let trace = trace.proxy(proxy.addr()).opts(["--inspect-socks"]).opts(extra);
            let out = attack4(trace, &["tfo", spelling, &proxy.port()]);
            out.assert_code(0);
            sockstrace_tests::settle();
            assert_eq!(
                proxy.bytes(),
                0,
                "{who}, {spelling}: Fast Open data (a SOCKS4 request by address) reached the proxy around \
                 the inspector (leaks reported: {})\n{}",
                out.leaks().len(),
                out.describe()
            );
            for op in ["sendto", "sendmsg"] {
                assert!(
                    out.stdout.contains(&format!("{op} errno={}", libc::EOPNOTSUPP)),
                    "{who}, {spelling}: {op}\n{}",
                    out.describe()
                );
            }
        }
    }
}

/// `--inspect-socks --allow-loopback`: Linux connects an unspecified address (`0.0.0.0`,
/// `[::ffff:0.0.0.0]`) to the local host, so a connect to `0.0.0.0:PROXYPORT` reaches a proxy
/// on `127.0.0.1`. It was allowed as loopback, not recognized as the proxy, and performed
/// straight to it: a SOCKS4 request by address passed uninspected. (The same holds for any
/// loopback address with a proxy listening on a wildcard address, as microsocks does by
/// default.) A connect the policy allows to a local-host address on a loopback proxy's port
/// now goes through the inspector too.
#[test]
fn the_proxy_spelled_as_the_unspecified_address_does_not_get_around_the_socks_inspector() {
    for who in ["root, kernel off", "nobody"] {
        if who == "nobody" && !is_root() {
            eprintln!("SKIP the run as nobody: needs root");
            continue;
        }
        for spelling in ["0.0.0.0", "::ffff:0.0.0.0"] {
            let proxy = TcpSink::bind("127.0.0.1");
            let trace = if who == "nobody" { as_nobody() } else { Trace::new().opts(["--kernel", "off"]) };
            let trace = trace.proxy(proxy.addr()).opts(["--inspect-socks", "--allow-loopback"]);
            let out = attack4(trace, &["socks4-to", spelling, &proxy.port()]);
            out.assert_code(0);
            sockstrace_tests::settle();
            assert_eq!(
                proxy.bytes(),
                0,
                "{who}, {spelling}: a SOCKS4 request by address reached the proxy around the inspector \
                 (leaks reported: {})\n{}",
                out.leaks().len(),
                out.describe()
            );
            assert!(
                out.leaks().iter().any(|e| e.s("reason") == "socks-by-address"),
                "{who}, {spelling}: the inspector did not see the request\n{}",
                out.describe()
            );
        }
    }
}

/// A server run with `--allow-io-uring` and `opts`, in `mode` (`serve`: bind and listen by
/// system calls, accept by io_uring; `serve-uring`: all three by io_uring), and a peer from a
/// network namespace over a veth pair at 10.244.0.2, outside 10.243.0.0/24: what the peer got,
/// and the run.
fn uring_server_and_refused_peer(mode: &str, opts: &[&str]) -> Option<(String, Outcome)> {
    let skip = |why: String| {
        sockstrace_tests::util::skip_note(module_path!(), &why);
        None
    };
    if let Err(e) = kernel_available() {
        return skip(e);
    }
    let attacker = match attack4_uring() {
        Ok(c) => c,
        Err(e) => return skip(format!("attack4_uring cannot be built (liburing-dev?): {e}")),
    };
    let run = as_nobody()
        .opts(["--allow-io-uring"])
        .opts(opts)
        .program([attacker.as_os_str(), mode.as_ref()])
        .spawn();
    // Until the program listens, or sockstrace refuses the command line.
    let start = std::time::Instant::now();
    while !run.stdout().contains("listen: ")
        && !run.stderr().contains("sockstrace: error")
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !run.stdout().contains("listen: ") {
        // Refused before the program ran, or it never got to listen.
        return Some((String::new(), run.wait()));
    }
    let Some(port) = run
        .stdout()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("port="))
        .and_then(|p| p.parse::<u16>().ok())
    else {
        // The listener was refused: nothing to connect to.
        return Some((String::new(), run.wait()));
    };
    // The namespace only now: creating one waits for a lock every test process shares.
    let ns = match sockstrace_tests::netns::NetNs::create(
        &["10.243.0.1/24", "10.244.0.1/24"],
        &["10.243.0.2/24", "10.244.0.2/24"],
    ) {
        Ok(ns) => ns,
        Err(e) => {
            run.signal(libc::SIGTERM);
            let _ = run.wait();
            return skip(format!("network namespace with a veth pair: {e}"));
        }
    };
    // The peer gives up after 3 s (a SYN whose answer the kernel layer drops is retried).
    let script = format!(
        "import socket\ntry:\n s = socket.create_connection(('10.244.0.1', {port}), timeout=3)\n \
         print('connect: ok data=' + s.recv(100).decode())\nexcept Exception as e:\n print('peer:', e)"
    );
    let peer = ns.exec(["python3", "-c", &script]);
    if !peer.stdout.contains("hello-from-server") {
        // Refused: the server still waits in its accept.
        run.signal(libc::SIGTERM);
    }
    Some((peer.stdout, run.wait()))
}

/// `--allow-incoming-from NET` with `--allow-io-uring`: the supervisor judges each peer at
/// `accept` (performed on its duplicate), and the kernel layer lets the listener through but
/// does not filter peers. An `IORING_OP_ACCEPT` never passes the supervisor: a peer outside
/// NET was accepted and sent data, and the report said nothing. The combination is refused.
#[test]
fn io_uring_accept_does_not_take_peers_the_policy_refuses() {
    let Some((peer, out)) =
        uring_server_and_refused_peer("serve", &["--allow-incoming-from", "10.243.0.0/24"])
    else {
        return;
    };
    if out.code() == 2 {
        assert!(out.stderr.contains("--allow-incoming-from"), "{}", out.describe());
        return;
    }
    assert!(
        !peer.contains("hello-from-server"),
        "a peer the policy refuses was accepted through io_uring and sent data (leaks reported: {}): {peer}\n{}",
        out.leaks().len(),
        out.describe()
    );
}

/// The default policy refuses listeners beyond loopback (`listen` is trapped and judged). With
/// `--allow-io-uring`, `IORING_OP_BIND` and `IORING_OP_LISTEN` (Linux 6.11) never pass the
/// supervisor; the kernel layer reports the listen (`inbound-listen`, `source: kernel`) and its
/// egress gate drops the answers to the peer: held.
#[test]
fn io_uring_listen_does_not_open_a_listener_the_policy_refuses() {
    let Some((peer, out)) = uring_server_and_refused_peer("serve-uring", &[]) else { return };
    assert!(
        !peer.contains("hello-from-server"),
        "an io_uring listener on 0.0.0.0 served a peer from outside (leaks reported: {}): {peer}\n{}",
        out.leaks().len(),
        out.describe()
    );
    // The kernel layer saw the listen (it cannot refuse one: reported, the egress gate drops
    // the answers), so the attack reached it.
    assert!(
        out.leaks().iter().any(|e| e.s("source") == "kernel" && e.s("reason") == "inbound-listen"),
        "the kernel layer did not report the io_uring listener\n{}",
        out.describe()
    );
}

/// Joining a multicast group makes the kernel send IGMP membership reports naming it out of
/// the interface, with no socket: no cgroup hook and no egress gate sees them, so the syscall
/// layer refuses the join (`routing-option`). With `--allow-io-uring`, the join can be an
/// io_uring command (`SOCKET_URING_OP_SETSOCKOPT`, Linux 6.7), which never passes the
/// supervisor's `setsockopt` filter: the reports (a group the program chose) left the
/// program's network namespace, and the report said nothing. The kernel layer's
/// `cgroup/setsockopt` program (io_uring's setsockopt runs that hook, `do_sock_setsockopt`)
/// refuses what the syscall layer refuses, and reports it.
#[test]
fn io_uring_setsockopt_does_not_join_a_multicast_group() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let attacker = match attack4_uring() {
        Ok(c) => c,
        Err(e) => skip!("attack4_uring cannot be built (liburing-dev?): {e}"),
    };
    const GROUP: &str = "239.66.77.99";
    const GROUP_BYTES: [u8; 4] = [239, 66, 77, 99];
    let ns = match sockstrace_tests::netns::NetNs::create(&["10.246.0.1/24"], &["10.246.0.2/24"]) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let (host_if, _) = ns.veth().expect("veth pair");
    let sniffer = Sniffer::on(host_if);
    let out = as_nobody()
        .opts(["--allow-io-uring"])
        .wrapper(["ip", "netns", "exec", ns.name()])
        .program([attacker.as_os_str(), "igmp".as_ref(), GROUP.as_ref(), "10.246.0.2".as_ref()])
        .run();
    assert!(out.stdout.contains("igmp: join="), "the attacker did not try\n{}", out.describe());
    sockstrace_tests::settle();
    let seen = sniffer.frames_with(&GROUP_BYTES);
    assert_eq!(
        seen,
        0,
        "{seen} IGMP frame(s) naming the group left the namespace (leaks reported: {})\n{}",
        out.leaks().len(),
        out.describe()
    );
    assert!(
        out.stdout.contains("igmp: join=errno 1"),
        "the join was not refused with EPERM\n{}",
        out.describe()
    );
    let ev = out.the_event("kernel routing-option", |e| e.s("reason") == "routing-option");
    let d = out.describe();
    assert_eq!(
        (ev.s("source"), ev.s("syscall"), ev.s("option")),
        ("kernel", "setsockopt", "IP_ADD_MEMBERSHIP"),
        "{ev}\n{d}"
    );
    assert_eq!((ev.s("verdict"), ev.s("action"), ev.i("errno")), ("leak", "blocked", Some(1)), "{ev}\n{d}");
}

/// The report names the destination of every allowed datagram. On the fast path the kernel
/// sends to whatever address the program's memory holds when it runs the call: a thread
/// flipping the address between two allowed destinations A and B made the report's count of
/// datagrams to each differ from what each received (nothing reached a destination the policy
/// refuses: the kernel judges it, see `every_spelling_...`). So the fast path runs only where
/// no event names an allowed destination (no `--report`): with a report, every allowed
/// datagram is sent by the supervisor from the copy it judged and named. The same run with
/// allowed calls kept out of the report takes the fast path (the report is what turned it off).
#[test]
fn fast_path_reports_name_the_destination_that_was_used() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let a = UdpSink::bind("127.0.0.1");
    let b = UdpSink::bind("127.0.0.1");
    let attacker = client("attack_fastpath");
    let argv =
        [attacker.to_str().unwrap(), "flip-sendto", "0", &a.host(), &a.port(), &b.host(), &b.port(), CALLS];
    let out = as_nobody().allow(&a.dst()).allow(&b.dst()).program(argv).run();
    out.assert_code(0);
    assert!(!fast_path_on(&out), "a report names allowed destinations: no fast path\n{}", out.describe());
    sockstrace_tests::settle();
    let reported = |dst: &str| out.events_where(|e| e.s("syscall") == "sendto" && e.s("dst") == dst).len();
    let (ra, rb) = (reported(&a.dst()), reported(&b.dst()));
    assert!(ra + rb > 0, "no datagram reported\n{}", out.describe());
    assert_eq!(
        (ra, rb),
        (a.datagrams(), b.datagrams()),
        "datagrams reported to (A, B) differ from what A and B received (left: report, right: sinks)"
    );
    let unreported = on_the_fast_path().allow(&a.dst()).allow(&b.dst()).program(argv).run();
    unreported.assert_code(0);
    assert!(fast_path_on(&unreported), "{}", unreported.describe());
}

/// The program installs a seccomp filter of its own, sending `connect` to a user-notification
/// listener it holds and answering CONTINUE: the kernel runs only the newest filter's
/// notification, so a listener of its own would take its calls away from the supervisor.
/// Without sockstrace the attack connects (baseline). Under it the kernel refuses a second
/// listener in one filter chain (`EBUSY`), and a filter without one answers `ENOSYS`: nothing
/// reaches the sink, as root with `--kernel off` and as nobody on the fast path.
#[test]
fn a_seccomp_listener_of_the_programs_own_takes_no_call_from_the_supervisor() {
    let attacker = client("attack4_fastpath");
    let bad = TcpSink::bind("127.0.0.1");
    let base = sockstrace_tests::direct_client(&attacker, &["nested", &bad.host(), &bad.port()]);
    assert!(
        base.stdout.contains("listener ok") && base.stdout.contains("connect ok"),
        "baseline: the attack should work without sockstrace: {}",
        base.stdout
    );
    assert!(bad.wait_bytes(1, Duration::from_secs(5)), "baseline: nothing arrived");
    for who in ["root, kernel off", "nobody"] {
        if who == "nobody" && !is_root() {
            eprintln!("SKIP the run as nobody: needs root");
            continue;
        }
        let bad = TcpSink::bind("127.0.0.1");
        let trace = if who == "nobody" { as_nobody() } else { Trace::new().opts(["--kernel", "off"]) };
        let out = attack4(trace, &["nested", &bad.host(), &bad.port()]);
        out.assert_code(0);
        bad.assert_nothing_arrived(&format!("{who}\n{}", out.describe()));
        assert!(out.stdout.contains(&format!("listener errno={}", libc::EBUSY)), "{who}\n{}", out.describe());
    }
}

/// Many threads make sockets through i386 `socketcall` at once: one socket maker serves them
/// one at a time, each answer going to the call that asked (a UDP socket, never another
/// thread's or a failure), and the run ends.
#[test]
fn a_socketcall_storm_gets_each_thread_its_own_socket() {
    if !is_root() {
        skip!("needs root to run the program as nobody");
    }
    let attacker = match sockstrace_tests::paths::client_build("attack4_fastpath", true, false) {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the attacker: {e}"),
    };
    for kernel in ["auto", "off"] {
        let out = as_nobody()
            .opts(["--kernel", kernel])
            .program([attacker.as_os_str(), "sc-storm".as_ref(), "32".as_ref(), "200".as_ref()])
            .run();
        out.assert_code(0);
        assert!(
            out.stdout.contains("storm: made=6400 wrong=0 failed=0"),
            "kernel {kernel}\n{}",
            out.describe()
        );
    }
}

/// With `--allow-io-uring`, io_uring's connects are judged by the kernel layer alone. The
/// layer's programs are attached through links the supervisor holds, so they go when it
/// dies: a process of the program that outlived its supervisor (here killed with SIGKILL, as
/// a crash or the OOM killer would) connected anywhere with io_uring, which seccomp never
/// sees (`late` arrived). The program now goes with its supervisor: the socket maker (the
/// supervisor's child in the program's cgroup) writes the cgroup's `cgroup.kill`, opened for
/// it before fork, when its channel to the supervisor ends. While the supervisor lives, the
/// same late connect is refused and reported.
#[test]
fn io_uring_gets_no_free_network_when_the_supervisor_dies() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let attacker = match attack4_uring() {
        Ok(c) => c,
        Err(e) => skip!("attack4_uring cannot be built (liburing-dev?): {e}"),
    };
    // The supervisor lives: the late connect is judged.
    let bad = TcpSink::bind("127.0.0.1");
    let out = as_nobody()
        .opts(["--allow-io-uring"])
        .program([attacker.as_os_str(), "later".as_ref(), bad.host().as_ref(), bad.port().as_ref()])
        .run();
    bad.assert_nothing_arrived(&out.describe());
    assert!(
        out.leaks().iter().any(|e| e.s("source") == "kernel" && e.s("syscall") == "connect"),
        "the kernel layer did not report the late connect\n{}",
        out.describe()
    );

    // The supervisor dies while a process of the program waits.
    let bad = TcpSink::bind("127.0.0.1");
    let run = as_nobody()
        .opts(["--allow-io-uring"])
        .program([attacker.as_os_str(), "later".as_ref(), bad.host().as_ref(), bad.port().as_ref()])
        .spawn();
    assert!(run.wait_stdout("later: started", Duration::from_secs(20)), "{}", run.describe());
    run.signal(libc::SIGKILL);
    let _ = run.wait();
    // The late process connects 2 s after it started.
    bad.wait_bytes(4, Duration::from_secs(5));
    assert_eq!(
        bad.bytes(),
        0,
        "with its supervisor dead, the program's io_uring connect reached a destination the policy refuses"
    );
}
