//! The kernel witness (root): the eBPF layer is on, its facts are joined to
//! the supervisor's events on the socket cookie, it gates io_uring's
//! operations when `--allow-io-uring` lets io_uring in, and it leaves nothing
//! behind (its cgroup is removed when the run ends). Without root,
//! `--allow-io-uring` is refused.

use std::time::Duration;

use serde_json::Value;
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::util::field;
use sockstrace_tests::{
    direct_client, is_root, kernel_available, netprobe, skip, uringprobe_working, Event, LeakSpec, Outcome,
    TcpSink, Trace, UdpSink,
};

const T: Duration = Duration::from_secs(30);

/// `PROGRAM ARGS` run through setpriv without CAP_NET_RAW (bounding and inheritable sets):
/// `--allow-io-uring` lets io_uring in only for a program that can never make raw or packet
/// sockets (where the kernel refuses BPF LSM, which would gate them otherwise).
fn without_net_raw(program: &std::path::Path, args: &[&str]) -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> =
        ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"].iter().map(Into::into).collect();
    argv.push(program.into());
    argv.extend(args.iter().map(Into::into));
    argv
}

/// Asserts the summary says the kernel layer was on, and returns the run's
/// cgroup id from it.
fn assert_kernel_on(out: &Outcome) -> u64 {
    let layer = out.kernel_layer();
    assert!(layer.starts_with("on"), "summary layers.kernel is {layer:?}, not on\n{}", out.describe());
    let (_, id) = out
        .kernel_cgroup()
        .unwrap_or_else(|| panic!("no cgroup path and id in layers.kernel {layer:?}\n{}", out.describe()));
    assert!(id > 0, "{}", out.describe());
    id
}

/// The event's `kernel` object; fails when there is none.
fn kernel_obj<'a>(ev: &'a Event, out: &Outcome) -> &'a serde_json::Map<String, Value> {
    ev.get("kernel")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("event has no kernel object: {ev}\n{}", out.describe()))
}

#[test]
fn proxy_connect_joined_on_the_socket_cookie() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe(["tcp-connect-info", &px.host(), &px.port()]).run();
    out.assert_code(0);
    assert!(px.wait_bytes("netprobe-info\n".len(), T), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let cgroup_id = assert_kernel_on(&out);
    let cookie = field(&out.stdout, "info:", "cookie") as u64;
    let local_port = field(&out.stdout, "info:", "local_port");
    let fd = field(&out.stdout, "info:", "fd");
    assert!(cookie > 0, "{}", out.describe());
    let ev = out.the_event("allowed proxy connect", |e| {
        e.s("syscall") == "connect" && e.s("dst") == px.dst() && e.is_allowed()
    });
    assert_eq!(ev.s("source"), "seccomp", "{ev}");
    assert_eq!(ev.i("fd"), Some(fd), "{ev}\n{}", out.describe());
    // The supervisor's cookie (from its duplicate) is the program's own.
    assert_eq!(
        ev.get("cookie").and_then(Value::as_u64),
        Some(cookie),
        "event cookie != the client's getsockopt(SO_COOKIE)\n{ev}\n{}",
        out.describe()
    );
    let k = kernel_obj(ev, &out);
    assert_eq!(k.get("cgroup_id").and_then(Value::as_u64), Some(cgroup_id), "{ev}\n{}", out.describe());
    assert_eq!(
        k.get("local").and_then(Value::as_str),
        Some(format!("127.0.0.1:{local_port}").as_str()),
        "kernel.local is not the client's getsockname\n{ev}\n{}",
        out.describe()
    );
    assert_eq!(k.get("dst").and_then(Value::as_str), Some(px.dst().as_str()), "{ev}\n{}", out.describe());
    let (pid, _) = out.actor();
    assert_eq!(k.get("pid").and_then(Value::as_i64), Some(pid), "socket creator\n{ev}\n{}", out.describe());
    assert!(
        k.get("tcp_states").and_then(Value::as_array).is_some_and(|s| s.iter().any(|x| x == "ESTABLISHED")),
        "the kernel saw the connection established\n{ev}\n{}",
        out.describe()
    );
}

fn leak_with_kernel_object(cmd: &str, syscall: &str, reason: &str, protocol: &str, tcp: bool) {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let tcp_sink = TcpSink::bind("127.0.0.2");
    let udp_sink = UdpSink::bind("127.0.0.2");
    let (host, port, dst) = if tcp {
        (tcp_sink.host(), tcp_sink.port(), tcp_sink.dst())
    } else {
        (udp_sink.host(), udp_sink.port(), udp_sink.dst())
    };
    let out = Trace::new().proxy(TcpSink::bind("127.0.0.1").addr()).netprobe([cmd, &host, &port]).run();
    out.assert_code(1);
    tcp_sink.assert_nothing_arrived(cmd);
    udp_sink.assert_nothing_arrived(cmd);
    out.assert_report_well_formed();
    let cgroup_id = assert_kernel_on(&out);
    let (pid, tid) = out.actor();
    let ev = out.assert_leak(
        &LeakSpec { syscalls: &[syscall], reasons: &[reason], protocol, ..LeakSpec::tcp(&dst) }
            .by((pid, tid)),
    );
    let k = kernel_obj(ev, &out);
    assert_eq!(k.get("cgroup_id").and_then(Value::as_u64), Some(cgroup_id), "{ev}\n{}", out.describe());
    assert_eq!(k.get("pid").and_then(Value::as_i64), Some(pid), "{ev}\n{}", out.describe());
    assert!(k.get("netns_cookie").and_then(Value::as_u64).is_some(), "{ev}\n{}", out.describe());
}

#[test]
fn tcp_leak_event_carries_kernel_facts() {
    leak_with_kernel_object("tcp-connect", "connect", "direct-tcp", "tcp", true);
}

#[test]
fn udp_leak_event_carries_kernel_facts() {
    leak_with_kernel_object("udp-sendto", "sendto", "direct-udp", "udp", false);
}

// ---------------------------------------------------------------------------
// --allow-io-uring: the cgroup hooks gate io_uring's operations
// ---------------------------------------------------------------------------

/// The io_uring_setup event of an `--allow-io-uring` run: allowed.
fn assert_setup_allowed(out: &Outcome) {
    let ev = out.the_event("io_uring_setup", |e| e.s("syscall") == "io_uring_setup");
    assert!(ev.is_allowed(), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("reason"), "io-uring", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("action"), "allowed", "{ev}\n{}", out.describe());
}

/// The kernel-source leak event for `dst`.
fn kernel_leak<'a>(out: &'a Outcome, syscall: &str, dst: &str, reason: &str, protocol: &str) -> &'a Event {
    let ev = out.the_event(&format!("kernel-source {syscall} leak to {dst}"), |e| {
        e.s("source") == "kernel" && e.s("dst") == dst
    });
    let d = || out.describe();
    assert!(ev.is_leak(), "{ev}\n{}", d());
    assert_eq!(ev.s("syscall"), syscall, "{ev}\n{}", d());
    assert_eq!(ev.s("reason"), reason, "{ev}\n{}", d());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", d());
    assert_eq!(ev.i("errno"), Some(1), "{ev}\n{}", d());
    assert_eq!(ev.s("protocol"), protocol, "{ev}\n{}", d());
    let (pid, _) = out.actor();
    assert_eq!(ev.i("pid"), Some(pid), "{ev}\n{}", d());
    let cgroup_id = out.kernel_cgroup().map(|(_, id)| id);
    assert_eq!(
        ev.get("kernel").and_then(|k| k.get("cgroup_id")).and_then(Value::as_u64),
        cgroup_id,
        "{ev}\n{}",
        d()
    );
    ev
}

#[test]
fn allow_io_uring_connect_gated_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let client = match uringprobe_working() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    // Baseline: the client's io_uring connect reaches the sink.
    let base = TcpSink::bind("127.0.0.2");
    let out = direct_client(client, &["connect", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline io_uring connect failed: {}", out.stdout);
    assert!(base.wait_accepts(1, T), "baseline: {}", out.stdout);

    let sink = TcpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(TcpSink::bind("127.0.0.1").addr())
        .opts(["--allow-io-uring"])
        .program(without_net_raw(client, &["connect", &sink.host(), &sink.port()]))
        .run();
    assert!(out.stdout.contains("setup: ok"), "io_uring must be let in\n{}", out.describe());
    out.assert_code(1);
    assert!(
        out.stdout.contains("uring-connect: errno=1 ("),
        "io_uring connect must get EPERM\n{}",
        out.describe()
    );
    sink.assert_nothing_arrived("io_uring connect under --allow-io-uring");
    out.assert_report_well_formed();
    assert_kernel_on(&out);
    assert_setup_allowed(&out);
    kernel_leak(&out, "connect", &sink.dst(), "direct-tcp", "tcp");
}

#[test]
fn allow_io_uring_connect_to_proxy_works() {
    // Not everything is refused: an io_uring connect to the proxy passes the
    // kernel's gate, data included.
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let client = match uringprobe_working() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new()
        .proxy(px.addr())
        .opts(["--allow-io-uring"])
        .program(without_net_raw(client, &["connect", &px.host(), &px.port()]))
        .run();
    out.assert_code(0);
    assert!(px.wait_bytes("uringprobe-tcp\n".len(), T), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
    assert_setup_allowed(&out);
}

#[test]
fn allow_io_uring_udp_sendmsg_gated_by_the_kernel() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let client = match uringprobe_working() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    let base = UdpSink::bind("127.0.0.2");
    let out = direct_client(client, &["sendmsg", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline io_uring sendmsg failed: {}", out.stdout);
    assert!(base.wait_datagrams(1, T), "baseline: {}", out.stdout);

    let sink = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .proxy(TcpSink::bind("127.0.0.1").addr())
        .opts(["--allow-io-uring"])
        .program(without_net_raw(client, &["sendmsg", &sink.host(), &sink.port()]))
        .run();
    assert!(out.stdout.contains("setup: ok"), "{}", out.describe());
    out.assert_code(1);
    assert!(out.stdout.contains("uring-sendmsg: errno=1 ("), "{}", out.describe());
    sink.assert_nothing_arrived("io_uring sendmsg under --allow-io-uring");
    out.assert_report_well_formed();
    assert_kernel_on(&out);
    assert_setup_allowed(&out);
    kernel_leak(&out, "sendmsg", &sink.dst(), "direct-udp", "udp");
}

// ---------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------

#[test]
fn programs_attached_during_the_run_and_cgroup_removed_at_exit() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let mount =
        sockstrace_tests::util::cgroup2_mount().expect("cgroup2 is mounted (doctor says the layer works)");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("go");
    let cpath = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0, "mkfifo");
    let script = format!("cat /proc/self/cgroup; echo cgroup-printed; read line < '{}'", fifo.display());
    let run = Trace::new().program(["sh", "-c", &script]).spawn();
    assert!(run.wait_stdout("cgroup-printed", T), "{}", run.describe());
    let rel = run
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("0::/").map(str::to_string))
        .unwrap_or_else(|| panic!("no cgroup v2 line\n{}", run.describe()));
    assert!(
        rel.starts_with("sockstrace/run-"),
        "the program is not in a run cgroup: {rel}\n{}",
        run.describe()
    );
    let path = mount.join(&rel);
    // From the program's first instruction, who makes each socket is recorded: the
    // socket-creation hook is attached before it starts...
    let first = sockstrace_tests::bpf::attached(&path).expect("BPF_PROG_QUERY on the run's cgroup");
    assert!(
        first.iter().any(|(name, _)| *name == "sock_create"),
        "sock_create not attached to {} when the program started: {first:?}\n{}",
        path.display(),
        run.describe()
    );
    // ...and while it runs, every other hook joins (the program's network calls wait for
    // them: `the_first_call_of_a_program_started_while_the_layer_loads_waits_for_it`).
    let hooks = ["connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create", "egress", "sock_ops"];
    let deadline = std::time::Instant::now() + T;
    let during = loop {
        let during = sockstrace_tests::bpf::attached(&path).expect("BPF_PROG_QUERY on the run's cgroup");
        if hooks.iter().all(|hook| during.iter().any(|(name, _)| name == hook))
            || std::time::Instant::now() > deadline
        {
            break during;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    for hook in hooks {
        assert!(
            during.iter().any(|(name, _)| *name == hook),
            "{hook} not attached to {} during the run: {during:?}\n{}",
            path.display(),
            run.describe()
        );
    }
    std::fs::write(&fifo, "go\n").expect("write fifo");
    let out = run.wait();
    out.assert_code(0);
    out.assert_report_well_formed();
    assert_kernel_on(&out);
    let (reported, _) = out.kernel_cgroup().unwrap();
    assert_eq!(reported, path, "the summary names another cgroup\n{}", out.describe());
    // ...and at exit the cgroup is gone (which detaches its programs), no
    // other cgroup of this sockstrace process remains, and nothing is left
    // attached above it.
    assert!(!path.exists(), "{} remains after the run\n{}", path.display(), out.describe());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let run_prefix = name.rsplit_once('-').map(|(p, _)| format!("{p}-")).unwrap();
    let parent = path.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&run_prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "cgroups of this run remain in {}: {leftovers:?}", parent.display());
    let above = sockstrace_tests::bpf::attached(parent).expect("BPF_PROG_QUERY on the parent cgroup");
    assert!(above.is_empty(), "programs attached to {}: {above:?}", parent.display());
}

#[test]
fn allow_io_uring_refused_without_root() {
    if !is_root() {
        skip!("needs root to switch to nobody with setpriv");
    }
    let mut copies = Copies::new();
    let client = copies.add(netprobe(), "netprobe");
    let sink = TcpSink::bind("127.0.0.2");
    let out = copies
        .as_nobody()
        .opts(["--allow-io-uring"])
        .netprobe_at(&client, ["tcp-connect", &sink.host(), &sink.port()])
        .run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("kernel layer"),
        "the refusal should name the kernel layer\n{}",
        out.describe()
    );
    assert!(!out.stdout.contains("actor:"), "the program must not have run\n{}", out.describe());
    sink.assert_nothing_arrived("refused run");
}

/// The two layers disagree only through a fault in one of them. Here the syscall layer lets
/// a datagram to port 9 through (the test switch `plant-bug`: the fuzzer's planted bug) and
/// performs it; the kernel layer refuses it. The run said `0 leaks` over that: the kernel's
/// event was skipped as the supervisor's own call. Now it is reported as the kernel saw it
/// (`performed_by_supervisor`), counted as a leak, and a warning says the layers disagree.
#[test]
fn a_call_the_supervisor_allowed_and_the_kernel_refused_is_reported() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let out = Trace::new()
        .env("SOCKSTRACE_TEST_DISABLE", "plant-bug")
        .netprobe(["udp-sendto", "127.0.0.1", "9"])
        .run();
    assert_kernel_on(&out);
    assert!(out.stdout.contains(&format!("sendto: errno={}", libc::EPERM)), "{}", out.describe());
    let ev =
        out.the_event("the kernel's refusal", |e| e.s("source") == "kernel" && e.s("dst") == "127.0.0.1:9");
    assert!(ev.is_leak() && ev.s("action") == "blocked", "{ev}\n{}", out.describe());
    assert_eq!(kernel_obj(ev, &out).get("performed_by_supervisor"), Some(&Value::Bool(true)), "{ev}");
    assert!(out.stderr.contains("the two layers disagree"), "{}", out.describe());
}

/// The kernel layer loads while the program starts (the verifier's time is not the program's
/// wait), and the program's first trapped call waits for it. Here the syscall layer lets a
/// datagram to port 9 through (the test switch `plant-bug`) and the kernel layer refuses it:
/// sent at the program's very first moment, it is refused all the same. Without the wait it
/// left before the layer was attached (`sendto: ok`, the datagram arrived).
#[test]
fn the_first_call_of_a_program_started_while_the_layer_loads_waits_for_it() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let port9 = match std::net::UdpSocket::bind("127.0.0.1:9") {
        Ok(s) => s,
        Err(e) => skip!("cannot bind 127.0.0.1:9: {e}"),
    };
    port9.set_nonblocking(true).unwrap();
    for _ in 0..3 {
        let out = Trace::new()
            .env("SOCKSTRACE_TEST_DISABLE", "plant-bug")
            .netprobe(["udp-sendto", "127.0.0.1", "9"])
            .run();
        assert_kernel_on(&out);
        assert!(
            out.stdout.contains(&format!("sendto: errno={}", libc::EPERM)),
            "the kernel layer did not judge the program's first datagram\n{}",
            out.describe()
        );
    }
    sockstrace_tests::settle();
    let mut buf = [0u8; 64];
    assert!(port9.recv_from(&mut buf).is_err(), "a datagram reached 127.0.0.1:9");
}

/// A program that ends before the rest of the kernel layer is loaded (it made no network call,
/// each of which would have waited for it) leaves no cgroup and no program attached, and the
/// layers line says how far the layer got. The test switch `late-layer-stall` holds the rest
/// until the program has ended; without it, `true` ends first most of the time anyway.
#[test]
fn a_program_ending_before_the_layer_is_complete_leaves_nothing_behind() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    for stall in [true, false] {
        let mut trace = Trace::new().program(["true"]);
        if stall {
            trace = trace.env("SOCKSTRACE_TEST_DISABLE", "late-layer-stall");
        }
        let out = trace.run();
        out.assert_code(0);
        assert_kernel_on(&out);
        let layer = out.kernel_layer();
        if stall {
            assert!(layer.starts_with("on (enforcing, socket creation only"), "{layer}\n{}", out.describe());
        }
        let (path, _) = out.kernel_cgroup().unwrap();
        assert!(!path.exists(), "{} remains after the run\n{}", path.display(), out.describe());
        let above = sockstrace_tests::bpf::attached(path.parent().unwrap()).expect("BPF_PROG_QUERY");
        assert!(above.is_empty(), "programs attached above the run's cgroup: {above:?}");
    }
}

/// A supervisor killed before its end (SIGKILL) cannot remove its run's cgroup. The end of a
/// later run removes such leftovers beside its own: empty, named `run-<pid>-<n>` after a pid
/// that is gone, unchanged for a minute. A young one (a run still starting), one whose pid
/// lives, one that still holds a process, and anything not named like a run stay.
#[test]
fn a_run_removes_the_empty_cgroups_that_killed_runs_left_behind() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let mount =
        sockstrace_tests::util::cgroup2_mount().expect("cgroup2 is mounted (doctor says the layer works)");
    let parent = mount.join("sockstrace");
    std::fs::create_dir_all(&parent).unwrap();
    // Above the kernel's largest pid (PID_MAX_LIMIT, 4194304): never a live process.
    let gone = 4_999_999 + std::process::id() % 1000 * 10;
    let make = |name: String, hours_old: bool| {
        let path = parent.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        if hours_old {
            let status =
                std::process::Command::new("touch").args(["-d", "2 hours ago"]).arg(&path).status().unwrap();
            assert!(status.success(), "touch -d {}", path.display());
        }
        path
    };
    let leftover = make(format!("run-{gone}-0"), true);
    let young = make(format!("run-{gone}-1"), false);
    let alive = make(format!("run-{}-9999", std::process::id()), true);
    let other = make(format!("kept-{gone}-0"), true);
    // Made old only once it holds a process: another test's run ending meanwhile sweeps too.
    let held = make(format!("run-{gone}-2"), false);
    let mut sleeper = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(held.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let status = std::process::Command::new("touch").args(["-d", "2 hours ago"]).arg(&held).status().unwrap();
    assert!(status.success(), "touch -d {}", held.display());
    let out = Trace::new().program(["true"]).run();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let remains: Vec<bool> = [&leftover, &young, &alive, &other, &held].iter().map(|p| p.exists()).collect();
    for path in [&young, &alive, &other, &held] {
        let _ = std::fs::remove_dir(path);
    }
    out.assert_code(0);
    assert_kernel_on(&out);
    assert_eq!(
        remains,
        [false, true, true, true, true],
        "which of {}, {}, {}, {}, {} remain\n{}",
        leftover.display(),
        young.display(),
        alive.display(),
        other.display(),
        held.display(),
        out.describe()
    );
}

/// Under `--kernel required` the kernel layer completes itself while the program runs, as by
/// default; if it fails (the test switch `late-layer-fail`), the program's first network call,
/// which waits for it, is refused, the program is killed, and the run fails. By default
/// (`auto`) the run goes on with the syscall layer alone, and the layers line says why.
#[test]
fn a_kernel_layer_that_fails_while_the_program_runs_stops_a_required_run() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let sink = UdpSink::bind("127.0.0.1");
    let out = Trace::new()
        .opts(["--kernel", "required", "--allow", &sink.dst()])
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-fail")
        .netprobe(["udp-sendto", &sink.host(), &sink.port()])
        .run();
    out.assert_code(125);
    assert!(out.stderr.contains("--kernel required, but the kernel layer is off"), "{}", out.describe());
    assert!(!out.stdout.contains("sendto: ok"), "{}", out.describe());
    sink.assert_nothing_arrived("a datagram of a required run whose layer failed");
    let out = Trace::new()
        .opts(["--allow", &sink.dst()])
        .env("SOCKSTRACE_TEST_DISABLE", "late-layer-fail")
        .netprobe(["udp-sendto", &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    assert!(out.kernel_layer().starts_with("off (failed to load"), "{}", out.describe());
    assert!(out.stdout.contains("sendto: ok"), "{}", out.describe());
}
