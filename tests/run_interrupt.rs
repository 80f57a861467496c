//! Calls the supervisor performs for the program stay interruptible by the
//! program's own signals, as the program's own calls would be, and a run
//! whose program waits in such a call ends promptly when asked.
//!
//! The destination that never answers: inside a namespace the test creates,
//! a veth pair whose far end has no address, and a permanent neighbour entry
//! for the "server" (10.73.0.2, fd73::2): every SYN goes out and is dropped
//! silently, so a blocking connect waits until the kernel gives up (about two
//! minutes). sockstrace runs inside that namespace.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::{client, direct, is_root, skip, Outcome, Trace};

const SERVER4: &str = "10.73.0.2";
const SERVER6: &str = "fd73::2";

/// A namespace where SYNs to the servers vanish.
fn silent_world() -> Result<NetNs, String> {
    let ns = NetNs::bare()?;
    let name = ns.name().to_string();
    let ip = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("ip").args(["-n", &name]).args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    ip(&["link", "add", "sta", "type", "veth", "peer", "name", "stb"])?;
    ip(&["addr", "add", "10.73.0.1/24", "dev", "sta"])?;
    ip(&["addr", "add", "fd73::1/64", "dev", "sta", "nodad"])?;
    ip(&["link", "set", "sta", "up"])?;
    ip(&["link", "set", "stb", "up"])?;
    for server in [SERVER4, SERVER6] {
        ip(&["neigh", "add", server, "lladdr", "02:00:00:00:00:02", "dev", "sta", "nud", "permanent"])?;
    }
    Ok(ns)
}

fn allow(server: &str) -> String {
    if server.contains(':') {
        format!("[{server}]:80")
    } else {
        format!("{server}:80")
    }
}

/// `interrupt_probe MODE SERVER 80`, natively (asserting it exits 0, the
/// behaviour under test) and then under sockstrace.
fn native_then_traced(mode: &str, server: &str, expect: &str) {
    if !is_root() {
        skip!("the namespace needs root");
    }
    let ns = silent_world().unwrap_or_else(|e| panic!("network namespace: {e}"));
    let probe = client("interrupt_probe");
    let probe = probe.to_str().expect("utf-8 path");
    let native = ns.exec([probe, mode, server, "80"]);
    assert!(
        native.code == 0 && native.stdout.contains(expect),
        "natively: {}\n{}{}",
        native.code,
        native.stdout,
        native.stderr
    );
    let out = Trace::new()
        .wrapper(["ip", "netns", "exec", ns.name()])
        .allow(&allow(server))
        .timeout(Duration::from_secs(20))
        .program([probe, mode, server, "80"])
        .run();
    assert_ended(&out, 0);
    assert!(out.stdout.contains(expect), "expected {expect:?} as natively\n{}", out.describe());
}

/// The run ended by itself with `code` and wrote its summary.
fn assert_ended(out: &Outcome, code: i32) {
    out.assert_code(code);
    let summary = out.summary.as_ref().unwrap_or_else(|| panic!("no summary\n{}", out.describe()));
    assert_eq!(summary["summary"]["exit_status"], code, "{}", out.describe());
}

/// `alarm(1)` with a handler without `SA_RESTART`: connect fails with EINTR.
/// Before: the connect we performed went on (the caller's signal stayed
/// pending in its killable wait) and the run was killed at the timeout.
#[test]
fn alarm_interrupts_a_blocking_connect_v4() {
    native_then_traced("eintr", SERVER4, "connect: errno=4 ");
}

#[test]
fn alarm_interrupts_a_blocking_connect_v6() {
    native_then_traced("eintr", SERVER6, "connect: errno=4 ");
}

/// With `SA_RESTART` the kernel restarts the connect after each alarm (it
/// goes on waiting); the third alarm makes the socket non-blocking, so the
/// restarted connect says EALREADY. Never EINTR.
#[test]
fn sa_restart_restarts_a_blocking_connect() {
    native_then_traced("restart", SERVER4, "connect: errno=114 ");
}

/// SIGTERM to sockstrace while the program waits in a connect we perform,
/// after a caught SIGALRM (handler with SA_RESTART): the program dies of it
/// and the run ends with its summary. Before: SIGALRM and SIGTERM both stayed
/// pending in the program's killable wait (the kernel does not take the
/// group-exit shortcut for a fatal signal while another one is pending) until
/// the kernel gave up on the connect, about two minutes.
#[test]
fn sigterm_ends_the_run_while_a_connect_waits() {
    if !is_root() {
        skip!("the namespace needs root");
    }
    let ns = silent_world().unwrap_or_else(|e| panic!("network namespace: {e}"));
    let probe = client("interrupt_probe");
    let running = Trace::new()
        .wrapper(["ip", "netns", "exec", ns.name()])
        .allow(&allow(SERVER4))
        .timeout(Duration::from_secs(20))
        .program([probe.as_os_str(), "hold".as_ref(), SERVER4.as_ref(), "80".as_ref()])
        .spawn();
    assert!(running.wait_stdout("connecting", Duration::from_secs(10)), "{}", running.describe());
    // After the alarm (1 s) was caught.
    std::thread::sleep(Duration::from_millis(1600));
    running.signal(libc::SIGTERM);
    let out = running.wait();
    assert_ended(&out, 128 + libc::SIGTERM);
}

/// A blocking send on a loopback stream whose peer never reads waits for
/// buffer space; `alarm(1)` without `SA_RESTART` ends it (EINTR, or the count
/// of what it had copied). Before: the send we performed went on forever.
#[test]
fn alarm_interrupts_a_blocking_send() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port().to_string();
    let probe = client("interrupt_probe");
    let native = direct([probe.as_os_str(), "send-eintr".as_ref(), port.as_ref()]);
    assert!(native.code == 0, "natively: {}\n{}{}", native.code, native.stdout, native.stderr);
    let out = Trace::new()
        .allow(&format!("127.0.0.1:{port}"))
        .timeout(Duration::from_secs(20))
        .program([probe.as_os_str(), "send-eintr".as_ref(), port.as_ref()])
        .run();
    assert_ended(&out, 0);
    assert!(
        out.stdout.contains("send: errno=4 ") || out.stdout.contains("send: partial"),
        "{}",
        out.describe()
    );
    drop(listener);
}

/// The leak fuzzer's hang (hang-1-320-root): a TCPv6 connect to the proxy
/// after `IPV6_RTHDRDSTOPTS` with a malformed option (its length runs past
/// the header), which the receiving stack drops silently, natively too
/// (`Ip6InTruncatedPkts`): the client's 40 ms timer must end it, as natively.
#[test]
fn fuzzer_hang_program_ends() {
    if !is_root() {
        skip!("the namespace needs root");
    }
    let ns = NetNs::bare().unwrap_or_else(|e| panic!("network namespace: {e}"));
    let fuzzclient = client("fuzzclient");
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("hang.txt");
    std::fs::write(
        &program,
        "socket 2 10 1 6\n\
         setsockopt 2 41 55 000400020000000000000000000000000000ffff7f00000200000000000000000000000000000001\n\
         connect 2 0a004a6a000000000000000000000000000000000000000100000000\n",
    )
    .expect("program file");
    let args = [fuzzclient.as_os_str(), program.as_os_str()];
    let native = ns.exec(
        ["env", "FUZZ_VERBOSE=1", "FUZZ_TIMER_MS=40"].map(std::ffi::OsStr::new).into_iter().chain(args),
    );
    assert!(
        native.stderr.contains("connect -> -1 (Interrupted system call)"),
        "natively:\n{}",
        native.stderr
    );
    let out = Trace::new()
        .wrapper(["ip", "netns", "exec", ns.name()])
        .opts(["--proxy", "[::1]:19050"])
        .env("FUZZ_VERBOSE", "1")
        .env("FUZZ_TIMER_MS", "40")
        .timeout(Duration::from_secs(20))
        .program(args)
        .run();
    assert_ended(&out, 0);
    assert!(out.stderr.contains("connect -> -1 (Interrupted system call)"), "{}", out.describe());
}
