//! Red team: what an fd number names, or what argument memory says, cannot
//! change between the supervisor's decision and the kernel's act.
//!
//! The attacker is `tests/clients/attack_race.c`: a thread swaps the fd number
//! of a call the supervisor would let the kernel run (a unix socket's) with an
//! inet socket (`dup2`), an i386 program's `socketcall` argument array is
//! rewritten by another process sharing its page, families that leave the
//! machine (`AF_VSOCK`) and privileges gained in a user namespace are tried.
//! Ground truth is what reaches the sinks.

use std::path::PathBuf;

use sockstrace_tests::net::free_port;
use sockstrace_tests::paths::client_build;
use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::{client, is_root, settle, skip, Outcome, TcpSink, Trace, UdpSink};

/// How many racing calls each attack makes.
const TRIES: &str = "3000";

fn attacker() -> PathBuf {
    client("attack_race")
}

/// Who runs sockstrace and the attacker: root with `--kernel off` (the
/// syscall layer alone), or nobody (no kernel layer, no privileges).
struct Runner {
    copies: Option<Copies>,
}

impl Runner {
    fn new(nobody: bool) -> Option<Self> {
        if nobody && !is_root() {
            sockstrace_tests::util::skip_note(
                "redteam_fdrace",
                &format!("needs root to switch to uid {NOBODY}"),
            );
            return None;
        }
        Some(Runner { copies: nobody.then(Copies::new) })
    }

    /// A run of the attacker with `args`.
    fn trace(&mut self, args: &[&str]) -> Trace {
        match &mut self.copies {
            None => Trace::new()
                .opts(["--kernel", "off"])
                .program(std::iter::once(attacker().into_os_string()).chain(args.iter().map(Into::into))),
            Some(copies) => {
                let bin = copies.add(&attacker(), "attack_race");
                copies
                    .as_nobody()
                    .program(std::iter::once(bin.into_os_string()).chain(args.iter().map(Into::into)))
            }
        }
    }
}

fn attacker32() -> Result<PathBuf, String> {
    client_build("attack_race", true, false)
}

fn reasons(out: &Outcome, reason: &str) -> usize {
    out.events.iter().filter(|e| e.s("reason") == reason).count()
}

fn assert_reported_mismatch(out: &Outcome) {
    let found = out.events_where(|e| e.s("reason") == "family-mismatch");
    let ev = found.first().unwrap_or_else(|| panic!("no family-mismatch refusal\n{}", out.describe()));
    assert!(ev.is_leak(), "{ev}\n{}", out.describe());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("family"), "unix", "{ev}\n{}", out.describe());
    assert_eq!(ev.i("errno"), Some(libc::EINVAL as i64), "{ev}\n{}", out.describe());
}

/// A unix datagram fd swapped with a UDP socket while `sendto` names the sink:
/// the supervisor must never let the kernel run it on whatever the number
/// names by then.
#[test]
fn fd_swap_under_a_unix_sendto_sends_nothing() {
    swap_sendto_sends_nothing(false);
}

#[test]
fn fd_swap_under_a_unix_sendto_sends_nothing_as_nobody() {
    swap_sendto_sends_nothing(true);
}

fn swap_sendto_sends_nothing(nobody: bool) {
    let Some(mut runner) = Runner::new(nobody) else { return };
    let sink = UdpSink::bind("127.0.0.2");
    let out = runner.trace(&["fd-swap-sendto", &sink.host(), &sink.port(), TRIES]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("sendto: sent=0 "), "a racing sendto went through\n{}", out.describe());
    settle();
    sink.assert_nothing_arrived(&format!("fd-swap sendto\n{}", out.describe()));
    out.assert_report_well_formed();
    assert_reported_mismatch(&out);
    assert_eq!(reasons(&out, "unix"), 0, "an inet address was let through as unix\n{}", out.describe());
}

/// The same with a unix stream fd swapped with TCP sockets under `connect`.
#[test]
fn fd_swap_under_a_unix_connect_connects_nothing() {
    swap_connect_connects_nothing(false);
}

#[test]
fn fd_swap_under_a_unix_connect_connects_nothing_as_nobody() {
    swap_connect_connects_nothing(true);
}

fn swap_connect_connects_nothing(nobody: bool) {
    let Some(mut runner) = Runner::new(nobody) else { return };
    let sink = TcpSink::bind("127.0.0.2");
    let out = runner.trace(&["fd-swap-connect", &sink.host(), &sink.port(), TRIES]).run();
    out.assert_code(0);
    assert!(
        out.stdout.contains("connect: connected=0 "),
        "a racing connect went through\n{}",
        out.describe()
    );
    settle();
    sink.assert_nothing_arrived(&format!("fd-swap connect\n{}", out.describe()));
    assert_reported_mismatch(&out);
}

/// A unix fd swapped with a TCP socket bound to 0.0.0.0 under `listen`: the
/// inet socket must never end up listening (inbound listeners are refused).
#[test]
fn fd_swap_under_a_unix_listen_opens_no_inet_listener() {
    swap_listen(false);
}

#[test]
fn fd_swap_under_a_unix_listen_opens_no_inet_listener_as_nobody() {
    swap_listen(true);
}

fn swap_listen(nobody: bool) {
    let Some(mut runner) = Runner::new(nobody) else { return };
    let port = free_port().to_string();
    let out = runner.trace(&["fd-swap-listen", &port, TRIES]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("bind-inet: ok"), "{}", out.describe());
    assert!(
        out.stdout.contains("inet-listening=0"),
        "the inet socket listens on 0.0.0.0\n{}",
        out.describe()
    );
    let found = out.events_where(|e| e.s("reason") == "inbound-listen");
    let ev = found.first().unwrap_or_else(|| panic!("no inbound-listen refusal\n{}", out.describe()));
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
}

/// Without a race: an inet address on a unix socket is refused with the
/// kernel's own errno, and reported, even under `--on-leak log`.
#[test]
fn an_inet_address_on_a_unix_socket_is_refused_even_when_logging() {
    let sink = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .on_leak("log")
        .opts(["--kernel", "off"])
        .program([
            attacker().as_os_str(),
            "mismatch-sendto".as_ref(),
            sink.host().as_ref(),
            sink.port().as_ref(),
        ])
        .run();
    out.assert_code(0);
    for op in ["sendto", "connect", "bind"] {
        assert!(out.stdout.contains(&format!("{op}: errno=22 ")), "{op}\n{}", out.describe());
        let ev = out.the_event(&format!("{op} family-mismatch"), |e| {
            e.s("syscall") == op && e.s("reason") == "family-mismatch"
        });
        assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
        assert_eq!(ev.i("errno"), Some(22), "{ev}\n{}", out.describe());
        assert_eq!(ev.s("family"), "unix", "{ev}\n{}", out.describe());
    }
    settle();
    sink.assert_nothing_arrived("mismatched sendto");
}

/// What stays open in the syscall layer alone: swapping the fd *and*
/// rewriting the address (two races) still gets an inet call CONTINUEd. With
/// the kernel layer on (root), its hooks see the kernel's own copy of the
/// address: nothing reaches the sinks.
#[test]
fn double_race_reaches_nothing_with_the_kernel_layer() {
    if !is_root() {
        skip!("the kernel layer needs root");
    }
    let udp = UdpSink::bind("127.0.0.2");
    let out = Trace::new()
        .opts(["--kernel", "required"])
        .program([
            attacker().as_os_str(),
            "double-race".as_ref(),
            "udp".as_ref(),
            udp.host().as_ref(),
            udp.port().as_ref(),
            TRIES.as_ref(),
        ])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("sendto: sent=0 "), "{}", out.describe());
    let tcp = TcpSink::bind("127.0.0.2");
    let out2 = Trace::new()
        .opts(["--kernel", "required"])
        .program([
            attacker().as_os_str(),
            "double-race".as_ref(),
            "tcp".as_ref(),
            tcp.host().as_ref(),
            tcp.port().as_ref(),
            TRIES.as_ref(),
        ])
        .run();
    out2.assert_code(0);
    assert!(out2.stdout.contains("connect: connected=0 "), "{}", out2.describe());
    settle();
    udp.assert_nothing_arrived(&format!("double race, UDP\n{}", out.describe()));
    tcp.assert_nothing_arrived(&format!("double race, TCP\n{}", out2.describe()));
}

/// i386 `socketcall` answered with CONTINUE is read again by the kernel:
/// another process (a `CLONE_VM` child, or a second process sharing a
/// `MAP_SHARED` page; no thread anywhere) rewrites the argument array from a
/// unix call to an inet one. Without the kernel layer such a call is refused.
#[test]
fn i386_socketcall_rewritten_by_another_process_sends_nothing() {
    let c = match attacker32() {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the attacker: {e}"),
    };
    // One racing run: the argument array flips between a unix call and one to
    // the sink; none may run, and the refusals are reported.
    let race = |how: &str, what: &str, host: String, port: String| {
        let out = Trace::new()
            .opts(["--kernel", "off"])
            .program([
                c.as_os_str(),
                "sc-race".as_ref(),
                how.as_ref(),
                what.as_ref(),
                host.as_ref(),
                port.as_ref(),
                TRIES.as_ref(),
            ])
            .run();
        out.assert_code(0);
        assert!(
            out.stdout.contains("socketcall: ok=0 "),
            "{how} {what}: a raced socketcall ran\n{}",
            out.describe()
        );
        out
    };
    for how in ["vm", "shm"] {
        let udp = UdpSink::bind("127.0.0.2");
        let out = race(how, "udp", udp.host(), udp.port());
        assert!(reasons(&out, "socketcall-race") > 0, "{how}\n{}", out.describe());
        let tcp = TcpSink::bind("127.0.0.2");
        let out2 = race(how, "tcp", tcp.host(), tcp.port());
        settle();
        udp.assert_nothing_arrived(&format!("socketcall race ({how}), UDP\n{}", out.describe()));
        tcp.assert_nothing_arrived(&format!("socketcall race ({how}), TCP\n{}", out2.describe()));
    }
}

/// As root (`CAP_NET_RAW`), a `socketcall(socket)` rewritten into
/// `AF_PACKET` makes a packet socket (creation is CONTINUEd: 32-bit glibc
/// creates every socket this way). No cgroup hook sees it, but it cannot send
/// without a call we trap: `write` and `send` without an address fail on it.
/// (The attacker runs in a network namespace of its own, loopback only.)
#[test]
fn i386_socketcall_socket_rewritten_into_a_packet_socket_sends_nothing() {
    if !is_root() {
        skip!("the kernel layer and CAP_NET_RAW need root");
    }
    let c = match attacker32() {
        Ok(c) => c,
        Err(e) => skip!("gcc -m32 cannot build the attacker: {e}"),
    };
    for how in ["vm", "shm"] {
        let out = Trace::new()
            .opts(["--kernel", "required"])
            .program([
                c.as_os_str(),
                "sc-race".as_ref(),
                how.as_ref(),
                "socket".as_ref(),
                "127.0.0.1".as_ref(),
                "9".as_ref(),
                TRIES.as_ref(),
            ])
            .run();
        out.assert_code(0);
        assert!(
            out.stdout.contains(" packet_sent=0 "),
            "{how}: a packet socket sent a frame\n{}",
            out.describe()
        );
        assert!(!out.stdout.contains(" ok=0 "), "{how}: no socket was made at all\n{}", out.describe());
    }
}

/// AF_VSOCK reaches the hypervisor host of a VM from any network namespace: a
/// vsock socket is refused when it is made (so nothing can be bound, listened
/// on or connected, and no fd swap can bring one under a continued call), and
/// reported.
#[test]
fn vsock_sockets_are_refused_when_made() {
    // SAFETY: plain socket(2) and close(2) on a local fd.
    let probe = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) };
    if probe < 0 {
        skip!("AF_VSOCK is not available here");
    }
    // SAFETY: probe is our own fd.
    unsafe { libc::close(probe) };
    let out = Trace::new()
        .opts(["--kernel", "off"])
        .program([attacker().as_os_str(), "vsock".as_ref(), "5555".as_ref()])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("socket: errno=1 "), "the vsock socket was made\n{}", out.describe());
    let ev = out.the_event("socket refusal", |e| e.s("syscall") == "socket");
    assert_eq!(ev.s("reason"), "unsupported-family", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("family"), "vsock", "{ev}\n{}", out.describe());
    assert_eq!(ev.s("action"), "blocked", "{ev}\n{}", out.describe());
}

/// A privileged port through a user namespace: an unprivileged program that
/// maps itself to root in its own user namespace holds CAP_NET_BIND_SERVICE
/// there, not over the host's network namespace, where the root supervisor
/// binds for it. The kernel would refuse it EACCES; so must we.
#[test]
fn privileged_bind_through_a_user_namespace_is_refused() {
    if !is_root() {
        skip!("needs a root supervisor and an unprivileged program");
    }
    let port = (81..1024)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024");
    let mut copies = Copies::new();
    let c = copies.add(&attacker(), "attack_race");
    // sockstrace as root; the program as nobody (setpriv runs under it).
    let out = Trace::new()
        .opts(["--kernel", "off"])
        .program([
            "setpriv".as_ref(),
            format!("--reuid={NOBODY}").as_ref(),
            format!("--regid={NOBODY}").as_ref(),
            "--clear-groups".as_ref(),
            c.as_os_str(),
            "userns-bind".as_ref(),
            port.to_string().as_ref(),
        ])
        .run();
    out.assert_code(0);
    if !out.stdout.contains("uid_map: ok") {
        skip!("no unprivileged user namespaces here\n{}", out.describe());
    }
    assert!(out.stdout.contains("uid-in-namespace=0"), "{}", out.describe());
    assert!(out.stdout.contains("bind: errno=13 "), "the low port was bound\n{}", out.describe());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on 127.0.0.1:{port}\n{}",
        out.describe()
    );
}

/// `accept` is now performed by sockstrace for every family (and the new fd
/// installed in the program): what the program sees stays the kernel's
/// semantics (`EAGAIN` on an empty non-blocking listener, `SOCK_CLOEXEC` and
/// `SOCK_NONBLOCK`, the peer's address written back, a blocking accept
/// interrupted by a signal with `EINTR`, unix listeners).
#[test]
fn accept_performed_for_the_program_keeps_its_semantics() {
    let out = Trace::new()
        .opts(["--kernel", "off", "--allow-loopback"])
        .program([attacker().as_os_str(), "accept-check".as_ref()])
        .run();
    out.assert_code(0);
    for line in [
        "nonblocking-empty: EAGAIN",
        "accept4: ok",
        "cloexec=1 nonblock=1",
        "peer-matches=1 len=16",
        "data=hi",
        "blocking-interrupted: EINTR",
        "unix-listen: ok",
        "unix-connect: ok",
        "unix-accept: ok",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}\n{}", out.describe());
    }
    out.assert_no_leaks();
}
