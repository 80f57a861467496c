//! Red team against a run's smaller socket table (`SOCKETS`: one cookie run of 4,096 sets per
//! CPU, 8,192 sets on two CPUs, its set mask a global of the object set by the loader), the
//! late layer's loaders at nice 10, and the run cgroup's removal.
//!
//! Attacker: `tests/clients/r33_evict.c` (natively made and closed sockets walk the cookies
//! through every set of the table; `socket()` and `close()` are not trapped). Ground truth:
//! what a peer in a network namespace the test creates read, sinks on loopback, the report.
//!
//! Found (open, ignored): 60,000 sockets made and closed natively (0.3 s) evict the facts of a
//! socket in use that no hook touched meanwhile (eviction was possible before, at four times
//! the churn). The facts are then remade by whichever hook runs next for the socket, with the
//! wrong creator: the egress gate's (nobody: pid 0) or the sock_addr hook of a call the
//! supervisor performs (the supervisor itself). So (1) a reply on an allowed inbound
//! connection is dropped once and reported as an `egress-packet` leak by pid 0; (2) a
//! program's socket is reported as created by `sockstrace-recv`; (3) under `--on-leak log`, a
//! packet only the egress gate saw is attributed to the supervisor and dropped from the
//! report (`0 leaks`). Nothing got out that the enforcing gate would refuse.
//!
//! Held (no test of their own): the set mask is one read-only global of the one object whose
//! sock_create is loaded first and the rest later, and userspace derives it from the same map's
//! size (a socket's facts are found by the report after the churn, at the slot the programs
//! wrote: see the facts the tests above read); the late layer's nice value only delays the
//! layer, every trapped call let through still waits for it.

use std::time::{Duration, Instant};

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::util::field;
use sockstrace_tests::{client, kernel_available, netprobe, skip, Trace, UdpSink};

const T: Duration = Duration::from_secs(60);

fn attacker() -> String {
    client("r33_evict").to_str().expect("utf-8 path").to_string()
}

/// Sockets made and closed: each set of a run's table (8,192 on two CPUs) takes a new socket
/// about seven times, whichever CPU's cookie runs the program gets.
const CHURN: &str = "60000";

/// An inbound connection the policy lets in (`--allow-incoming-from`): its replies pass the
/// egress gate only as a reply (`egress_reply`: a socket no connect hook counted, sending to
/// its own peer), a judgement read from the socket's facts in `SOCKETS`. The program (or any
/// server that makes sockets while a connection stays open) churns the table while the
/// accepted connection is idle; its facts are given to a newer socket, and the next reply is
/// a packet of "a socket no hook of ours knows": dropped, and reported as an `egress-packet`
/// leak of nobody's (the facts remade from the packet have no creator). TCP retransmits it
/// (the facts remade have no connect: the retransmission passes), so the peer got its data
/// a retransmission timeout late, and the run, which tried nothing, reported a leak. Now the
/// accepted connections are also kept apart from the facts (`INBOUND`, written by sockops at
/// the passive handshake), which the gate asks when a socket's facts are gone.
#[test]
fn an_allowed_inbound_connection_survives_a_churned_socket_table() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let ns = match NetNs::create(&["10.241.0.1/24"], &["10.241.0.2/24"]) {
        Ok(ns) => ns,
        Err(e) => skip!("network namespace with a veth pair: {e}"),
    };
    let run = Trace::new()
        .opts(["--allow-incoming-from", "10.241.0.0/24"])
        .timeout(T)
        .program([attacker().as_str(), "serve-churn", "0.0.0.0", CHURN])
        .spawn();
    assert!(run.wait_stdout("listen: ", T), "the server never listened\n{}", run.describe());
    let port = field(&run.stdout(), "listen:", "port");
    let np = netprobe().to_string_lossy().into_owned();
    let started = Instant::now();
    let peer = ns.exec([np.as_str(), "tcp-exchange", "10.241.0.1", &port.to_string()]);
    let took = started.elapsed();
    let out = run.wait();
    let d = || format!("peer: {}{}\n{}", peer.stdout, peer.stderr, out.describe());
    assert!(out.stdout.contains("churn: "), "the program never churned\n{}", d());
    assert!(
        out.kernel_layer().contains("egress gate"),
        "the kernel layer was not complete: {}\n{}",
        out.kernel_layer(),
        d()
    );
    assert!(peer.stdout.contains("data=after-churn|"), "the allowed peer did not get its reply\n{}", d());
    let egress = out.events_where(|e| e.s("reason") == "egress-packet");
    assert!(
        egress.is_empty(),
        "a reply on the allowed inbound connection was refused by the egress gate (the peer \
         waited {took:?}): {:?}\n{}",
        egress.iter().map(|e| e.json().to_string()).collect::<Vec<_>>(),
        d()
    );
    out.assert_no_leaks();
}

/// A socket whose facts the churn evicted gets new ones from the next hook that runs for it:
/// for a call the supervisor performs on its duplicate, the sendmsg/connect hook runs in the
/// supervisor's context, and `record_new` (`Creator::Current`) writes the *supervisor* as the
/// socket's creator: pid, comm (`sockstrace-recv`), uid and cgroup (the supervisor's, id 1 here).
/// The program's event carried a `kernel` object naming the supervisor as the creator of the
/// program's socket. Now facts that name the supervisor are read as "creator unknown"
/// (`kernel::facts::creator_is_this_process`: the supervisor never makes a socket in the run's
/// cgroup).
#[test]
fn a_churned_sockets_facts_never_name_the_supervisor_as_its_creator() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .allow(&sink.dst())
        .timeout(T)
        .program([attacker().as_str(), "churn-send", CHURN, &sink.host(), &sink.port()])
        .run();
    let d = || out.describe();
    assert!(out.stdout.contains("send: rc=3 "), "{}", d());
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "{}", d());
    let sends = out.events_where(|e| e.s("syscall") == "sendto" && e.s("source") == "seccomp");
    assert_eq!(sends.len(), 1, "{}", d());
    let ev = sends[0];
    let kernel = ev.json().get("kernel").filter(|k| !k.is_null()).expect("the send's kernel facts");
    // Facts remade by the supervisor's own performed send name no creator (the kernel cannot
    // know which program thread asked), never the supervisor.
    let pid = kernel.get("pid").and_then(|p| p.as_i64()).unwrap_or(0);
    assert!(
        Some(pid) == ev.i("pid") || pid == 0,
        "the kernel facts name another process as the socket's creator: {ev}\n{}",
        d()
    );
    let comm = kernel.get("comm").and_then(|c| c.as_str()).unwrap_or("");
    assert!(comm == "r33_evict" || comm.is_empty(), "{ev}\n{}", d());
    let run_cgroup = out.kernel_layer().split(" id ").nth(1).and_then(|rest| {
        rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|id| id.parse::<i64>().ok())
    });
    let cgroup = kernel.get("cgroup_id").and_then(|c| c.as_i64()).unwrap_or(0);
    assert!(
        Some(cgroup) == run_cgroup || cgroup == 0,
        "the socket's facts name another cgroup than the run's: {ev}\n{}",
        d()
    );
    out.assert_no_leaks();
}

/// `r33_evict churn-opts N` under `--on-leak log` with the syscall layer's option fences off
/// (`SOCKSTRACE_TEST_DISABLE=options,kernel-options`, as `redteam_egress` does: what the
/// syscall layer misses, the egress gate must judge and report): a packet with IPv4 options.
fn options_packet_run(churn: &str) -> sockstrace_tests::Outcome {
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .allow(&sink.dst())
        .on_leak("log")
        .env("SOCKSTRACE_TEST_DISABLE", "options,kernel-options")
        .timeout(T)
        .program([attacker().as_str(), "churn-opts", churn, &sink.host(), &sink.port()])
        .run();
    assert!(out.stdout.contains("send: rc=4 "), "{}", out.describe());
    assert!(
        sink.wait_datagrams(2, Duration::from_secs(5)),
        "both datagrams go (observing)\n{}",
        out.describe()
    );
    out
}

/// The egress gate's report of a packet only it saw is attributed to the socket's creator as
/// its facts say. After a churn, the facts were remade by the hook of the supervisor's own
/// performed send, so the creator was the supervisor, and `kernel_events::report` took an
/// event whose pid is its own for one of its own calls: observing (not denied), it was dropped.
/// Without the churn the same program's options packet is reported (`egress-packet`,
/// `ipv4-options`, by the program); with it, the run said `0 leaks` (the kernel facts of the
/// next event showed `leaks: 1`: the gate saw it); enforcing, the drop was reported as the
/// supervisor's own (`performed_by_supervisor`, the layers "disagree"). Now the egress gate's
/// events never count as the supervisor's calls, and a creator that is the supervisor is
/// reported unknown (pid 0).
#[test]
fn an_egress_leak_is_reported_after_a_churn_of_the_socket_table() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let egress_leaks = |out: &sockstrace_tests::Outcome| {
        out.events_where(|e| e.s("reason") == "egress-packet" && e.is_leak())
            .iter()
            .map(|e| (e.i("pid"), e.s("comm").to_string()))
            .collect::<Vec<_>>()
    };
    let baseline = options_packet_run("0");
    let pid = baseline.events_where(|e| e.s("syscall") == "sendto")[0].i("pid");
    assert_eq!(
        egress_leaks(&baseline),
        vec![(pid, "r33_evict".to_string())],
        "without a churn the gate reports the options packet by the program\n{}",
        baseline.describe()
    );
    let churned = options_packet_run(CHURN);
    let pid = churned.events_where(|e| e.s("syscall") == "sendto")[0].i("pid");
    // The facts were remade by the supervisor's performed send: the creator is unknown (pid 0),
    // never the supervisor, and the packet is the program's leak all the same.
    let leaks = egress_leaks(&churned);
    assert!(
        leaks == vec![(pid, "r33_evict".to_string())]
            || leaks == vec![(Some(0), String::new())]
            || leaks == vec![(None, String::new())],
        "after a churn the options packet the gate saw is not reported (or as someone else's): {leaks:?}\n{}",
        churned.describe()
    );
    assert_eq!(churned.summary_count("leaks"), 1, "{}", churned.describe());
}

/// Held: whatever the churn does to the facts, the enforcing egress gate judges the packet
/// itself: after a churn, the options packet (syscall fences off) is still dropped, and the
/// drop is still counted as a leak (though attributed to the supervisor's call, see above).
#[test]
fn an_options_packet_is_still_dropped_after_a_churn_of_the_socket_table() {
    if let Err(why) = kernel_available() {
        skip!("kernel layer: {why}");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .allow(&sink.dst())
        .env("SOCKSTRACE_TEST_DISABLE", "options,kernel-options")
        .timeout(T)
        .program([attacker().as_str(), "churn-opts", CHURN, &sink.host(), &sink.port()])
        .run();
    let d = || out.describe();
    assert!(out.stdout.contains("first: rc=5 "), "{}", d());
    assert!(out.stdout.contains("opts: rc=0 "), "the fences were not off\n{}", d());
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "{}", d());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.payloads(), vec![b"first".to_vec()], "the options packet got out\n{}", d());
    assert!(out.summary_count("leaks") >= 1, "the drop was not counted\n{}", d());
}
