//! Red team: the traced program cannot reach its own supervisor, nor borrow
//! sockets from other processes (non-dumpable supervisor, Landlock domain).
//!
//! The attack program is `tests/clients/attack_fence.c`. Each attack runs as
//! the invoking user (root in CI) and as nobody. Root runs use `--kernel off`:
//! the fence alone is under test (the kernel layer would catch some of these
//! connects on its own). A control run per attack, with the Landlock domain
//! switched off (`SOCKSTRACE_TEST_DISABLE=landlock`, debug builds), shows the
//! attack does get through without the fence, so the fence is what stops it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::util::field;
use sockstrace_tests::{client, is_root, netprobe, skip, Outcome, TcpSink, Trace, UdpSink};

const T: Duration = Duration::from_secs(30);

fn attack() -> PathBuf {
    client("attack_fence")
}

/// The kernel's Landlock ABI version, 0 when it has none.
fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // reads no memory; it returns the ABI version or -1.
    let v = unsafe { libc::syscall(444, std::ptr::null::<u8>(), 0usize, 1u32) };
    v.max(0)
}

/// Who runs sockstrace (and the attack under it).
#[derive(Clone, Copy, PartialEq)]
enum Who {
    /// The invoking user (root in CI), with `--kernel off`.
    Me,
    /// nobody, through setpriv (needs root to switch).
    Nobody,
}

/// A sockstrace run of the attack program with `args`, as `who`; the copies
/// (for nobody) must live as long as the run.
fn attack_run(who: Who, copies: &mut Option<Copies>, args: &[&str]) -> Trace {
    match who {
        Who::Me => Trace::new()
            .opts(["--kernel", "off"])
            .program(std::iter::once(attack().into_os_string()).chain(args.iter().map(Into::into))),
        Who::Nobody => {
            let c = copies.get_or_insert_with(Copies::new);
            let bin = c.add(&attack(), "attack_fence");
            c.as_nobody().program(std::iter::once(bin.into_os_string()).chain(args.iter().map(Into::into)))
        }
    }
}

/// Skips (returns true) a nobody variant when we cannot switch users.
fn cannot_be(who: Who) -> bool {
    if who == Who::Nobody && !is_root() {
        sockstrace_tests::util::skip_note(
            "redteam_fence",
            &format!("needs root to switch to uid {NOBODY} with setpriv"),
        );
        return true;
    }
    false
}

/// The attack was refused by the kernel: "OP: errno=1" (EPERM) or errno=13
/// (EACCES), exit 1, and nothing says it got through.
fn assert_refused(out: &Outcome, op: &str) {
    assert!(!out.stdout.contains(": ok"), "the attack got through\n{}", out.describe());
    out.assert_code(1);
    assert!(
        out.stdout.contains(&format!("{op}: errno=1 (")) || out.stdout.contains(&format!("{op}: errno=13 (")),
        "{op} was not refused with EPERM/EACCES\n{}",
        out.describe()
    );
}

/// The run's `layers.fence` text.
fn fence_layer(out: &Outcome) -> String {
    out.summary_obj()
        .get("layers")
        .and_then(|l| l.get("fence"))
        .and_then(|f| f.as_str())
        .unwrap_or_else(|| panic!("summary has no layers.fence string\n{}", out.describe()))
        .to_string()
}

// ---------------------------------------------------------------------------
// The seccomp listener, stolen with pidfd_getfd and answered with CONTINUE
// ---------------------------------------------------------------------------

fn listener(who: Who) {
    if cannot_be(who) {
        return;
    }
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let mut copies = None;
    let out = attack_run(who, &mut copies, &["listener", &sink.host(), &sink.port()]).proxy(px.addr()).run();
    sink.assert_nothing_arrived("the program answered its own notifications with CONTINUE");
    assert!(!out.stdout.contains("listener: stolen"), "the listener was stolen\n{}", out.describe());
    assert_refused(&out, "pidfd_getfd");
    out.assert_report_well_formed();
}

#[test]
fn stolen_listener_is_out_of_reach() {
    listener(Who::Me);
}

#[test]
fn stolen_listener_is_out_of_reach_as_nobody() {
    listener(Who::Nobody);
}

#[test]
fn control_without_landlock_the_listener_is_stolen() {
    if !is_root() {
        skip!("as a user the non-dumpable supervisor alone stops this");
    }
    let px = TcpSink::bind("127.0.0.1");
    let sink = TcpSink::bind("127.0.0.2");
    let out = attack_run(Who::Me, &mut None, &["listener", &sink.host(), &sink.port()])
        .proxy(px.addr())
        .env("SOCKSTRACE_TEST_DISABLE", "landlock")
        .run();
    assert!(
        out.stdout.contains("connect: ok"),
        "the attack did not work without the fence\n{}",
        out.describe()
    );
    assert!(sink.wait_accepts(1, T), "nothing reached the sink\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// ptrace
// ---------------------------------------------------------------------------

fn ptrace(who: Who) {
    if cannot_be(who) {
        return;
    }
    let out = attack_run(who, &mut None, &["ptrace"]).run();
    assert_refused(&out, "ptrace");
    out.assert_report_well_formed();
}

#[test]
fn ptrace_of_the_supervisor_fails() {
    ptrace(Who::Me);
}

#[test]
fn ptrace_of_the_supervisor_fails_as_nobody() {
    ptrace(Who::Nobody);
}

#[test]
fn control_without_landlock_ptrace_works() {
    if !is_root() {
        skip!("as a user the non-dumpable supervisor alone stops this");
    }
    let out = attack_run(Who::Me, &mut None, &["ptrace"]).env("SOCKSTRACE_TEST_DISABLE", "landlock").run();
    assert!(
        out.stdout.contains("ptrace: ok"),
        "the attack did not work without the fence\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// A connected UDP socket borrowed from an untraced process of the same user
// ---------------------------------------------------------------------------

/// `attack_fence hold HOST PORT` outside sockstrace, as `who`; killed on drop.
struct Holder {
    child: Child,
    pid: i64,
    fd: i64,
}

impl Holder {
    fn start(program: &Path, who: Who, sink: &UdpSink) -> Self {
        let mut cmd = match who {
            Who::Me => Command::new(program),
            Who::Nobody => {
                let mut c = Command::new("setpriv");
                c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups"]);
                c.arg(program);
                c
            }
        };
        let mut child = cmd
            .args(["hold", &sink.host(), &sink.port()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the holder");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("holder output");
        let (pid, fd) = (field(&line, "hold:", "pid"), field(&line, "hold:", "fd"));
        Holder { child, pid, fd }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn steal(who: Who, disable_landlock: bool) -> (Outcome, UdpSink) {
    let sink = UdpSink::bind("127.0.0.3");
    let mut copies = None;
    let program = match who {
        Who::Me => attack(),
        Who::Nobody => copies.get_or_insert_with(Copies::new).add(&attack(), "attack_fence"),
    };
    let holder = Holder::start(&program, who, &sink);
    let mut trace = attack_run(who, &mut copies, &["steal", &holder.pid.to_string(), &holder.fd.to_string()]);
    if disable_landlock {
        trace = trace.env("SOCKSTRACE_TEST_DISABLE", "landlock");
    }
    let out = trace.run();
    drop(holder);
    (out, sink)
}

fn steal_refused(who: Who) {
    if cannot_be(who) {
        return;
    }
    let (out, sink) = steal(who, false);
    sink.assert_nothing_arrived("the program sent on a socket borrowed from another process");
    assert_refused(&out, "pidfd_getfd");
}

#[test]
fn sockets_of_other_processes_are_out_of_reach() {
    steal_refused(Who::Me);
}

#[test]
fn sockets_of_other_processes_are_out_of_reach_as_nobody() {
    steal_refused(Who::Nobody);
}

#[test]
fn control_without_landlock_a_socket_is_stolen() {
    let (out, sink) = steal(Who::Me, true);
    assert!(
        out.stdout.contains("steal: ok"),
        "the attack did not work without the fence\n{}",
        out.describe()
    );
    assert!(sink.wait_datagrams(1, T), "nothing reached the sink\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// kill
// ---------------------------------------------------------------------------

fn kill(who: Who) {
    if cannot_be(who) {
        return;
    }
    if landlock_abi() < 6 {
        skip!("Landlock ABI {} has no signal scope (needs 6)", landlock_abi());
    }
    let out = attack_run(who, &mut None, &["kill"]).run();
    assert_refused(&out, "kill");
    out.assert_report_well_formed();
    // The supervisor lived to write its summary.
    assert_eq!(out.summary_count("exit_status"), 1, "{}", out.describe());
}

#[test]
fn kill_of_the_supervisor_fails() {
    kill(Who::Me);
}

#[test]
fn kill_of_the_supervisor_fails_as_nobody() {
    kill(Who::Nobody);
}

#[test]
fn control_without_landlock_kill_ends_the_supervisor() {
    let out = attack_run(Who::Me, &mut None, &["kill"]).env("SOCKSTRACE_TEST_DISABLE", "landlock").run();
    assert_eq!(out.code(), 128 + libc::SIGKILL, "the supervisor was not killed\n{}", out.describe());
    assert!(out.summary.is_none(), "a killed supervisor wrote a summary?\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// process_vm_writev and /proc/PPID/mem
// ---------------------------------------------------------------------------

fn vmwrite(who: Who) {
    if cannot_be(who) {
        return;
    }
    let out = attack_run(who, &mut None, &["vmwrite"]).run();
    assert_refused(&out, "process_vm_writev");
    assert_refused(&out, "proc-mem");
    out.assert_report_well_formed();
}

#[test]
fn memory_of_the_supervisor_is_out_of_reach() {
    vmwrite(Who::Me);
}

#[test]
fn memory_of_the_supervisor_is_out_of_reach_as_nobody() {
    vmwrite(Who::Nobody);
}

#[test]
fn control_without_landlock_memory_is_written() {
    if !is_root() {
        skip!("as a user the non-dumpable supervisor alone stops this");
    }
    let out = attack_run(Who::Me, &mut None, &["vmwrite"]).env("SOCKSTRACE_TEST_DISABLE", "landlock").run();
    assert!(
        out.stdout.contains("process_vm_writev: ok") && out.stdout.contains("proc-mem: ok"),
        "the attack did not work without the fence\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// A TCP connect reaching the kernel past a CONTINUE (the fd swapped under an
// allowed unix connect): the domain handles TCP connect, so it fails there
// ---------------------------------------------------------------------------

fn tcprace(who: Who, disable_landlock: bool) -> (Outcome, TcpSink) {
    let sink = TcpSink::bind("127.0.0.2");
    let px = TcpSink::bind("127.0.0.1");
    let mut copies = None;
    let mut trace = attack_run(who, &mut copies, &["tcprace", &sink.host(), &sink.port()]).proxy(px.addr());
    if disable_landlock {
        trace = trace.env("SOCKSTRACE_TEST_DISABLE", "landlock");
    }
    (trace.run(), sink)
}

fn tcprace_refused(who: Who) {
    if cannot_be(who) {
        return;
    }
    if landlock_abi() < 4 {
        skip!("Landlock ABI {} does not handle TCP (needs 4)", landlock_abi());
    }
    let (out, sink) = tcprace(who, false);
    sink.assert_nothing_arrived("a TCP connect swapped in after a CONTINUE");
    assert!(!out.stdout.contains("tcprace: ok"), "the race got through\n{}", out.describe());
    // Exit 1: the race reached the kernel and Landlock said EACCES; exit 2:
    // it never reached the kernel (should another fix close the route first).
    assert!(matches!(out.code(), 1 | 2), "{}", out.describe());
    if out.code() == 1 {
        assert!(out.stdout.contains("tcprace: errno=13 ("), "{}", out.describe());
    }
}

#[test]
fn tcp_swapped_in_after_a_continue_fails_in_the_kernel() {
    tcprace_refused(Who::Me);
}

#[test]
fn tcp_swapped_in_after_a_continue_fails_in_the_kernel_as_nobody() {
    tcprace_refused(Who::Nobody);
}

#[test]
fn control_without_landlock_the_swapped_tcp_connect_gets_through() {
    let (out, sink) = tcprace(Who::Me, true);
    assert!(
        out.stdout.contains("tcprace: ok"),
        "the race did not work without the fence\n{}",
        out.describe()
    );
    assert!(sink.wait_bytes(1, T), "nothing reached the sink\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// No regression: the proxy is still reached, with TCP handled by the domain
// ---------------------------------------------------------------------------

fn proxy_connect(who: Who) {
    if cannot_be(who) {
        return;
    }
    let px = TcpSink::bind("127.0.0.1");
    let args = ["tcp-connect".to_string(), px.host(), px.port()];
    let mut copies = None;
    let trace = match who {
        Who::Me => Trace::new().netprobe(&args),
        Who::Nobody => {
            let c = copies.get_or_insert_with(Copies::new);
            let np = c.add(netprobe(), "netprobe");
            c.as_nobody().netprobe_at(&np, &args)
        }
    };
    let out = trace.proxy(px.addr()).run();
    out.assert_code(0);
    assert!(px.wait_accepts(1, T), "the proxy saw no connection\n{}", out.describe());
    out.assert_no_leaks();
    if landlock_abi() >= 4 {
        let fence = fence_layer(&out);
        assert!(fence.contains("tcp"), "the domain should handle TCP: {fence}\n{}", out.describe());
    }
}

#[test]
fn tcp_to_the_proxy_still_works_inside_the_domain() {
    proxy_connect(Who::Me);
}

#[test]
fn tcp_to_the_proxy_still_works_inside_the_domain_as_nobody() {
    proxy_connect(Who::Nobody);
}

// ---------------------------------------------------------------------------
// The report and doctor name the fences
// ---------------------------------------------------------------------------

#[test]
fn the_layers_name_the_fence() {
    let out = Trace::new().program(["true"]).run();
    out.assert_code(0);
    let fence = fence_layer(&out);
    assert!(fence.contains("non-dumpable"), "layers.fence: {fence}\n{}", out.describe());
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("sockstrace: layers:"))
        .unwrap_or_else(|| panic!("no layers line\n{}", out.describe()));
    assert!(line.contains("fence"), "the layers line does not name the fence: {line}");
    let abi = landlock_abi();
    if abi == 0 {
        skip!("no Landlock here: the run says {fence}");
    }
    assert!(fence.contains(&format!("landlock ABI {abi}")), "layers.fence: {fence}\n{}", out.describe());
    assert!(fence.contains("ptrace"), "layers.fence: {fence}");
    if abi >= 6 {
        assert!(fence.contains("signal"), "layers.fence: {fence}");
    }
}

#[test]
fn the_layers_say_when_the_domain_is_missing() {
    let out = Trace::new().program(["true"]).env("SOCKSTRACE_TEST_DISABLE", "landlock").run();
    let fence = fence_layer(&out);
    assert!(
        fence.contains("landlock off") && fence.contains("could reach its supervisor"),
        "layers.fence: {fence}\n{}",
        out.describe()
    );
}

#[test]
fn doctor_names_the_fences() {
    let out = Trace::raw(["doctor"]).run();
    out.assert_code(0);
    let find = |word: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(word))
            .unwrap_or_else(|| panic!("doctor has no {word} line\n{}", out.describe()))
            .to_string()
    };
    let dumpable = find("non-dumpable");
    assert!(dumpable.starts_with("ok "), "{dumpable}\n{}", out.describe());
    let landlock = find("Landlock");
    let abi = landlock_abi();
    if abi == 0 {
        assert!(landlock.starts_with("off "), "{landlock}");
        skip!("no Landlock here: doctor says {landlock}");
    }
    assert!(landlock.starts_with("ok "), "{landlock}\n{}", out.describe());
    assert!(landlock.contains(&format!("ABI {abi}")), "{landlock}");
}
