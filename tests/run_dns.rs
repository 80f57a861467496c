//! DNS: a program resolving a name locally before talking SOCKS is a DNS leak
//! (curl --socks5), resolution by the proxy is clean (--socks5-hostname), and
//! `--dns proxy` answers the program's own lookups inside sockstrace so that
//! a socksified connect carries the name to the proxy.
//!
//! Everything that resolves names runs with a resolv.conf naming a loopback
//! DNS sink, in a private mount namespace: nothing can reach a real resolver.

use std::time::Duration;

use sockstrace_tests::{is_root, skip, DnsSink, HttpServer, Microsocks, Trace};

/// A name only the proxy's hosts file knows (it maps to the web server).
const NAME: &str = "web.sockstrace.test";

/// Runs `sockstrace ARGS -- PROGRAM` with resolv.conf naming `dns` (a sink) and a hosts file
/// that knows only localhost (see [`Trace::private_resolver`]).
fn in_private_resolver(trace: Trace, dns: &DnsSink, program: &[&str]) -> sockstrace_tests::Outcome {
    trace
        .private_resolver(&dns.host())
        .program(program.iter().copied())
        .timeout(Duration::from_secs(60))
        .run()
}

fn setup() -> Option<(DnsSink, HttpServer, Microsocks)> {
    if !is_root() {
        eprintln!("SKIP: needs root (a private mount namespace, port 53 sinks)");
        return None;
    }
    let dns = DnsSink::bind().map_err(|e| eprintln!("SKIP: no DNS sink: {e}")).ok()?;
    let web = HttpServer::bind("127.0.0.2");
    let socks = Microsocks::start_with_hosts(&format!("127.0.0.2 {NAME}\n"))
        .map_err(|e| eprintln!("SKIP: no microsocks: {e}"))
        .ok()?;
    Some((dns, web, socks))
}

fn url(web: &HttpServer) -> String {
    format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap())
}

#[test]
fn curl_socks5_resolving_locally_is_a_dns_leak() {
    let Some((dns, web, socks)) = setup() else { skip!("see above") };
    let proxy = socks.addr().to_string();
    let out = in_private_resolver(
        Trace::new().proxy(socks.addr()),
        &dns,
        &["curl", "-sS", "-m", "10", "--socks5", &proxy, &url(&web)],
    );
    assert_ne!(out.code(), 0, "curl cannot resolve the name itself\n{}", out.describe());
    dns.assert_nothing_arrived("the local DNS query is blocked");
    assert_eq!(web.requests(), 0, "nothing reached the web server\n{}", out.describe());
    let dns_leaks: Vec<_> =
        out.leaks().into_iter().filter(|e| ["dns-udp", "dns-tcp"].contains(&e.s("reason"))).collect();
    assert!(!dns_leaks.is_empty(), "a DNS leak is reported\n{}", out.describe());
    assert!(dns_leaks.iter().all(|e| e.s("dst") == dns.dst()), "{}", out.describe());
}

#[test]
fn curl_socks5_hostname_lets_the_proxy_resolve_and_is_clean() {
    let Some((dns, web, socks)) = setup() else { skip!("see above") };
    let proxy = socks.addr().to_string();
    let out = in_private_resolver(
        Trace::new().proxy(socks.addr()),
        &dns,
        &["curl", "-sS", "-m", "10", "--socks5-hostname", &proxy, &url(&web)],
    );
    out.assert_code(0);
    assert!(out.stdout.contains(web.body()), "the page came through the proxy\n{}", out.describe());
    assert!(out.leaks().is_empty(), "no leak\n{}", out.describe());
    dns.assert_nothing_arrived("the proxy resolved the name");
}

#[test]
fn dns_proxy_answers_lookups_and_socksify_carries_the_name() {
    let Some((dns, web, socks)) = setup() else { skip!("see above") };
    let out = in_private_resolver(
        Trace::new().proxy(socks.addr()).on_leak("socksify").opts(["--dns", "proxy"]),
        &dns,
        &["curl", "-sS", "-m", "10", &url(&web)],
    );
    out.assert_code(0);
    assert!(out.stdout.contains(web.body()), "the page came through the proxy\n{}", out.describe());
    assert_eq!(web.requests(), 1, "one request, from the proxy\n{}", out.describe());
    dns.assert_nothing_arrived("the program's lookups went to sockstrace's resolver, not to resolv.conf's");
    let socksified: Vec<_> = out.events.iter().filter(|e| e.s("action") == "socksified").collect();
    assert_eq!(socksified.len(), 1, "{}", out.describe());
    let dst = socksified[0].s("dst");
    assert!(
        dst.starts_with("100.") || dst.starts_with("[fd7a:"),
        "a fake address: {dst}\n{}",
        out.describe()
    );
    assert!(
        out.leaks().iter().all(|e| e.s("action") == "socksified"),
        "nothing but the socksified connect counts as a leak\n{}",
        out.describe()
    );
    let summary = out.summary.as_ref().expect("a summary");
    let lookups = summary["summary"]["dns"]["lookups"].as_array().cloned().unwrap_or_default();
    assert!(lookups.iter().any(|l| l["name"] == NAME), "the lookup is in the summary\n{}", out.describe());
}

#[test]
fn dns_proxy_needs_root() {
    if !is_root() {
        skip!("run as root to test the refusal for an unprivileged user");
    }
    let copies = sockstrace_tests::unpriv::Copies::new();
    let out = copies.as_nobody().opts(["--dns", "proxy"]).program(["true"]).run();
    assert_ne!(out.code(), 0, "{}", out.describe());
    assert!(out.stderr.contains("--dns proxy needs root"), "{}", out.describe());
}
