//! Red team, from the threat model alone, against the fast path (allowed inet connects and
//! addressed datagrams answered CONTINUE as root with the kernel layer enforcing and the program
//! run as another user) and the i386 socket maker.
//!
//! The attacker is `tests/clients/attack4_fastpath.c`. Ground truth comes from sinks (what
//! reached them, byte for byte where it matters) and from the JSON report.

use std::time::Duration;

use sockstrace_tests::{client, is_root, skip, Outcome, TcpSink, Trace, UdpSink};

/// How many racing calls each attack makes.
const CALLS: &str = "3000";

fn kernel_available() -> Result<(), String> {
    if !is_root() {
        return Err("the kernel layer needs root".into());
    }
    let out = Trace::raw(["doctor"]).run();
    let line = out.stdout.lines().find(|l| l.contains("kernel layer")).unwrap_or("").to_string();
    if line.starts_with("ok") {
        Ok(())
    } else {
        Err(format!("sockstrace doctor says the kernel layer is off here: {line}"))
    }
}

/// The program as nobody (`--user`): what the fast path needs.
fn as_nobody() -> Trace {
    Trace::new().opts(["--user", "nobody"]).timeout(Duration::from_secs(60))
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
