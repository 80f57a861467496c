//! The 32-bit (i386) ABI: netprobe built with `gcc -m32` (dynamic and
//! `-static`) makes the same calls through the compat entry points, with the
//! compat structure layouts; explicit `socketcall(2)` multiplexing and the
//! direct i386 socket calls are exercised by hand. Leaks must be blocked and
//! reported like native ones, allowed traffic must still work, and a
//! `socketcall` the kernel would read again (CONTINUE) must be refused unless
//! the kernel layer gates whatever a rewritten argument array could ask for.

use std::path::Path;
use std::time::Duration;

use sockstrace_tests::util::is_root;
use sockstrace_tests::{
    direct, direct_client, netprobe32, netprobe32_static, skip, LeakSpec, TcpSink, Trace, UdpSink, UnixSink,
};

const T: Duration = Duration::from_secs(30);

/// The 32-bit clients that could be built: dynamic and static (with visible
/// messages for those that could not). `None` when -m32 cannot link here.
fn clients() -> Option<Vec<(&'static str, &'static Path)>> {
    let mut v = Vec::new();
    match netprobe32() {
        Ok(p) => v.push(("m32", p)),
        Err(e) => eprintln!("SKIP 32-bit dynamic netprobe: gcc -m32 failed: {e}"),
    }
    match netprobe32_static() {
        Ok(p) => v.push(("m32-static", p)),
        Err(e) => eprintln!("SKIP 32-bit static netprobe: gcc -m32 -static failed: {e}"),
    }
    (!v.is_empty()).then_some(v)
}

/// The dynamic 32-bit client, for the hand-made socketcall tests.
fn client() -> Result<&'static Path, String> {
    netprobe32().map_err(|e| format!("gcc -m32 cannot build netprobe: {e}"))
}

/// The client really is an i386 ELF (so the test cannot pass on a native
/// binary by mistake).
fn assert_i386(path: &Path) {
    let head = std::fs::read(path).expect("read client");
    assert_eq!(&head[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(head[4], 1, "{} is not ELFCLASS32", path.display());
    assert_eq!(u16::from_le_bytes([head[18], head[19]]), 3, "{} is not EM_386", path.display());
}

fn tcp_blocked(client: &Path, label: &str, cmd: &str) {
    assert_i386(client);
    let sink = TcpSink::bind("127.0.0.2");
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe_at(client, [cmd, &sink.host(), &sink.port()]).run();
    out.assert_refused_leak("connect", LeakSpec::tcp(&sink.dst()));
    sink.assert_nothing_arrived(&format!("{label} {cmd}"));
    px.assert_nothing_arrived("the program never used the proxy");
}

fn udp_blocked(client: &Path, label: &str, cmd: &str, op: &str) {
    assert_i386(client);
    let sink = UdpSink::bind("127.0.0.2");
    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe_at(client, [cmd, &sink.host(), &sink.port()]).run();
    out.assert_refused_leak(op, LeakSpec::udp(&[op], &sink.dst()));
    sink.assert_nothing_arrived(&format!("{label} {cmd}"));
}

#[test]
fn i386_tcp_connect_blocked() {
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        tcp_blocked(c, label, "tcp-connect");
    }
}

#[test]
fn i386_tcp_connect_v6_blocked() {
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        let sink = TcpSink::bind("::1");
        let out = Trace::new()
            .proxy(TcpSink::bind("127.0.0.1").addr())
            .netprobe_at(c, ["tcp-connect", "::1", &sink.port()])
            .run();
        out.assert_client_eperm("connect");
        sink.assert_nothing_arrived(label);
        out.assert_leak(&LeakSpec { family: "inet6", ..LeakSpec::tcp(&sink.dst()) });
    }
}

#[test]
fn i386_udp_sendto_blocked() {
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        udp_blocked(c, label, "udp-sendto", "sendto");
    }
}

#[test]
fn i386_udp_sendmsg_blocked() {
    // The compat msghdr layout (32-bit pointers) must be parsed right.
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        udp_blocked(c, label, "udp-sendmsg", "sendmsg");
    }
}

#[test]
fn i386_udp_sendmmsg_blocked() {
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        let a = UdpSink::bind("127.0.0.2");
        let b = UdpSink::bind("127.0.0.3");
        let out = Trace::new()
            .proxy(TcpSink::bind("127.0.0.1").addr())
            .netprobe_at(c, ["udp-sendmmsg", "4", &a.host(), &a.port(), &b.host(), &b.port()])
            .run();
        out.assert_client_eperm("sendmmsg");
        a.assert_nothing_arrived(label);
        b.assert_nothing_arrived(label);
        out.assert_leak(&LeakSpec::udp(&["sendmmsg"], &a.dst()));
    }
}

#[test]
fn i386_proxy_connect_allowed() {
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        let px = TcpSink::bind("127.0.0.1");
        let out = Trace::new().proxy(px.addr()).netprobe_at(c, ["tcp-connect", &px.host(), &px.port()]).run();
        out.assert_code(0);
        assert!(out.stdout.contains("send: ok"), "{label}\n{}", out.describe());
        assert!(
            px.wait_bytes("netprobe-tcp\n".len(), T),
            "{label}: nothing reached the proxy\n{}",
            out.describe()
        );
        out.assert_report_well_formed();
        out.assert_no_leaks();
        out.the_event("allowed proxy connect", |e| {
            e.s("syscall") == "connect"
                && e.s("dst") == px.dst()
                && e.is_allowed()
                && e.s("reason") == "proxy"
        });
    }
}

#[test]
fn i386_allowed_udp_sendmsg_arrives_intact() {
    // An allowed compat sendmsg is performed with the payload gathered from
    // the compat iovecs: the datagram must arrive byte for byte.
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        let sink = UdpSink::bind("127.0.0.2");
        let out = Trace::new()
            .proxy(TcpSink::bind("127.0.0.1").addr())
            .allow(&sink.dst())
            .netprobe_at(c, ["udp-sendmsg", &sink.host(), &sink.port()])
            .run();
        out.assert_code(0);
        assert!(sink.wait_datagrams(1, T), "{label}\n{}", out.describe());
        assert_eq!(sink.payloads()[0], b"netprobe-udp-sendmsg", "{label}\n{}", out.describe());
        out.assert_no_leaks();
    }
}

#[test]
fn i386_multi_threaded_program_reaches_the_proxy() {
    // A 32-bit program that makes its connection from a second thread (as
    // every real multi-threaded client does) must still reach the proxy.
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        let base = TcpSink::bind("127.0.0.1");
        let out = direct_client(c, &["thread-connect", &base.host(), &base.port()]);
        assert_eq!(out.code, 0, "baseline {label}: {}", out.stdout);

        let px = TcpSink::bind("127.0.0.1");
        let out =
            Trace::new().proxy(px.addr()).netprobe_at(c, ["thread-connect", &px.host(), &px.port()]).run();
        assert!(
            out.stdout.contains("connect: ok"),
            "{label}: a thread of a 32-bit program could not connect to the proxy\n{}",
            out.describe()
        );
        out.assert_code(0);
        assert!(px.wait_bytes("netprobe-tcp\n".len(), T), "{label}\n{}", out.describe());
        out.assert_no_leaks();
    }
}

#[test]
fn i386_io_uring_setup_refused() {
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    for (label, c) in cs {
        let base = direct_client(c, &["uring-setup-raw"]);
        if base.code != 0 {
            skip!("io_uring_setup does not work here without sockstrace: {}", base.stdout.trim());
        }
        let out = Trace::new().netprobe_at(c, ["uring-setup-raw"]).run();
        out.assert_client_eperm("setup");
        let ev = out.the_event("io_uring_setup leak", |e| e.s("syscall") == "io_uring_setup");
        assert!(
            ev.is_leak() && ev.s("reason") == "io-uring" && ev.s("action") == "blocked",
            "{label}: {ev}\n{}",
            out.describe()
        );
    }
}

/// `--allow-io-uring` lets io_uring in where the kernel layer gates what rings do, but not
/// for a 32-bit program: the kernel runs a compat ring's setsockopt commands without the
/// cgroup setsockopt hook, so its multicast joins (IGMP reports naming a group of its
/// choice) would pass every layer. The same run lets the 64-bit ring in (the option works).
#[test]
fn i386_io_uring_setup_refused_even_when_io_uring_is_allowed() {
    if let Err(e) = sockstrace_tests::kernel_available() {
        skip!("{e}");
    }
    let Some(cs) = clients() else {
        skip!("no 32-bit client (gcc -m32 cannot link)");
    };
    if !is_root() {
        skip!("needs root to run the program as nobody");
    }
    // As under sudo: a program that is not root cannot leave the kernel layer's cgroup.
    let allowing = || Trace::new().opts(["--allow-io-uring", "--user", "nobody"]);
    let native = allowing().netprobe(["uring-setup-raw"]).run();
    assert!(native.stdout.contains("setup: ok"), "the 64-bit ring should be let in\n{}", native.describe());
    native.assert_no_leaks();
    for (label, c) in cs {
        let out = allowing().netprobe_at(c, ["uring-setup-raw"]).run();
        out.assert_client_eperm("setup");
        let ev = out.the_event("io_uring_setup leak", |e| e.s("syscall") == "io_uring_setup");
        assert!(ev.is_leak() && ev.s("action") == "blocked", "{label}: {ev}\n{}", out.describe());
    }
}

// ---------------------------------------------------------------------------
// socketcall(2) and the direct i386 calls, by hand
// ---------------------------------------------------------------------------

#[test]
fn i386_socketcall_connect_blocked() {
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    tcp_blocked(c, "socketcall", "sc-connect");
}

#[test]
fn i386_socketcall_connect_to_proxy_allowed() {
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    // Baseline without sockstrace: the hand-made socketcall works.
    let base = TcpSink::bind("127.0.0.2");
    let out = direct_client(c, &["sc-connect", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline: {}", out.stdout);
    assert!(base.wait_bytes("netprobe-socketcall\n".len(), T), "baseline: {}", out.stdout);

    let px = TcpSink::bind("127.0.0.1");
    let out = Trace::new().proxy(px.addr()).netprobe_at(c, ["sc-connect", &px.host(), &px.port()]).run();
    out.assert_code(0);
    assert!(px.wait_bytes("netprobe-socketcall\n".len(), T), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
}

#[test]
fn i386_socketcall_sendto_blocked() {
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    // Baseline without sockstrace: the datagram arrives.
    let base = UdpSink::bind("127.0.0.2");
    let out = direct_client(c, &["sc-sendto", &base.host(), &base.port()]);
    assert_eq!(out.code, 0, "baseline: {}", out.stdout);
    assert!(base.wait_datagrams(1, T), "baseline: {}", out.stdout);

    udp_blocked(c, "socketcall", "sc-sendto", "sendto");
}

#[test]
fn i386_direct_connect_syscall_blocked() {
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    tcp_blocked(c, "i386 connect (362)", "i386-connect");
}

/// A single thread proves nothing: another process can share the argument
/// array's page (shared memory, `CLONE_VM` without threads; see
/// redteam_fdrace.rs), so without the kernel layer a unix connect through
/// `socketcall` is refused even from a single-threaded program.
#[test]
fn i386_socketcall_unix_connect_single_threaded_refused_without_the_kernel_layer() {
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    let unix = UnixSink::bind();
    let path = unix.path().to_str().unwrap().to_string();
    let out = Trace::new().opts(["--kernel", "off"]).netprobe_at(c, ["sc-unix-connect", &path, "0"]).run();
    out.assert_client_eperm("connect");
    sockstrace_tests::settle();
    assert_eq!((unix.accepts(), unix.bytes()), (0, 0), "the unix peer was reached\n{}", out.describe());
    out.assert_report_well_formed();
    let ev = out.the_event("socketcall-race leak", |e| e.is_leak() && e.s("reason") == "socketcall-race");
    assert_eq!(ev.s("syscall"), "connect", "{ev}\n{}", out.describe());
}

/// With the kernel layer on (root), the same single-threaded connect is let through.
#[test]
fn i386_socketcall_unix_connect_single_threaded_allowed_with_the_kernel_layer() {
    if !is_root() {
        skip!("the kernel layer needs root");
    }
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    let unix = UnixSink::bind();
    let path = unix.path().to_str().unwrap().to_string();
    let out =
        Trace::new().opts(["--kernel", "required"]).netprobe_at(c, ["sc-unix-connect", &path, "0"]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("connect: ok"), "{}", out.describe());
    assert!(unix.wait_bytes("netprobe-sc-unix\n".len(), T), "{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
}

#[test]
fn i386_socketcall_unix_connect_multi_threaded_refused() {
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    // Baseline without sockstrace: the multi-threaded program connects.
    let base = UnixSink::bind();
    let out = direct([c.as_os_str(), "sc-unix-connect".as_ref(), base.path().as_os_str(), "2".as_ref()]);
    assert_eq!(out.code, 0, "baseline: {}", out.stdout);
    assert!(base.wait_bytes("netprobe-sc-unix\n".len(), T), "baseline: {}", out.stdout);

    // The supervisor alone cannot make this sound (another thread may rewrite
    // the argument array after the check): refused.
    let unix = UnixSink::bind();
    let path = unix.path().to_str().unwrap().to_string();
    let out = Trace::new().opts(["--kernel", "off"]).netprobe_at(c, ["sc-unix-connect", &path, "2"]).run();
    out.assert_client_eperm("connect");
    sockstrace_tests::settle();
    assert_eq!((unix.accepts(), unix.bytes()), (0, 0), "the unix peer was reached\n{}", out.describe());
    out.assert_report_well_formed();
    let (pid, tid) = out.actor();
    let ev = out.the_event("socketcall-race leak", |e| e.is_leak() && e.s("reason") == "socketcall-race");
    assert_eq!(ev.s("syscall"), "connect", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
    assert_eq!(ev.i("errno"), Some(1), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("family"), "unix", "{ev}\n{}", out.describe());
    assert_eq!((ev.i("pid"), ev.i("tid")), (Some(pid), Some(tid)), "{ev}\n{}", out.describe());
}

/// With the kernel layer on (root), its hooks gate whatever a rewritten
/// argument array could turn the call into, so the connect is let through.
#[test]
fn i386_socketcall_unix_connect_multi_threaded_allowed_with_the_kernel_layer() {
    if !is_root() {
        skip!("the kernel layer needs root");
    }
    let c = match client() {
        Ok(c) => c,
        Err(e) => skip!("{e}"),
    };
    let unix = UnixSink::bind();
    let path = unix.path().to_str().unwrap().to_string();
    let out =
        Trace::new().opts(["--kernel", "required"]).netprobe_at(c, ["sc-unix-connect", &path, "2"]).run();
    out.assert_code(0);
    assert!(unix.wait_bytes("netprobe-sc-unix\n".len(), T), "the unix peer got nothing\n{}", out.describe());
    assert!(out.leaks().is_empty(), "no leak expected\n{}", out.describe());
}
