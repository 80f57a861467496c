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

/// The io_uring attack client (liburing), or why it cannot be built.
fn attack4_uring() -> Result<std::path::PathBuf, String> {
    let dir = sockstrace_tests::paths::helpers_dir().join("clients-uring");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join("attack4_uring");
    sockstrace_tests::paths::compile_client("attack4_uring.c", &out, &[], &["-luring"])?;
    Ok(out)
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
        .program([attacker.as_os_str(), proxy.host().as_ref(), proxy.port().as_ref()])
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
