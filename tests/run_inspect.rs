//! `--inspect-socks`: the program's proxy connections pass through a relay in
//! sockstrace that reads the SOCKS handshake and flags what leaks even through
//! the proxy; the rules `--require-socks-auth` and `--isolation-regex`.

use sockstrace_tests::{is_root, skip, HttpServer, Microsocks, Outcome, Trace};

const NAME: &str = "web.sockstrace.test";

fn curl(trace: Trace, args: &[&str]) -> Outcome {
    let mut argv = vec!["curl", "-q", "-sS", "--max-time", "20"];
    argv.extend_from_slice(args);
    trace.env_remove("ALL_PROXY").env_remove("all_proxy").program(argv).run()
}

#[test]
fn a_socks4_request_by_address_is_flagged_and_refused() {
    let socks = match Microsocks::start() {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let proxy = socks.addr().to_string();
    let out =
        curl(Trace::new().proxy(socks.addr()).opts(["--inspect-socks"]), &["--socks4", &proxy, &web.url()]);
    assert_ne!(out.code(), 0, "the relay refuses the request\n{}", out.describe());
    let flagged = out.leaks_for("socks-by-address");
    assert_eq!(flagged.len(), 1, "{}", out.describe());
    assert_eq!(flagged[0].s("dst"), web.dst(), "{}", out.describe());
    assert_eq!(flagged[0].s("action"), "blocked", "{}", out.describe());
    assert_eq!(web.requests(), 0);

    // SOCKS4a carries the name: nothing to flag (microsocks speaks SOCKS5 only,
    // so the request itself fails at the proxy). A name, not the URL's address: a
    // SOCKS4a host that spells an address is by address
    // (`redteam_r37::a_socks4a_host_that_is_a_dotted_address_is_flagged`).
    let url = format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap());
    let out = curl(Trace::new().proxy(socks.addr()).opts(["--inspect-socks"]), &["--socks4a", &proxy, &url]);
    assert!(out.leaks().is_empty(), "{}", out.describe());
}

#[test]
fn socks5h_through_the_inspector_works_and_is_clean() {
    let socks = match Microsocks::start_with_hosts(&format!("127.0.0.2 {NAME}\n")) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let url = format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap());
    let proxy = socks.addr().to_string();
    let out = curl(
        Trace::new().proxy(socks.addr()).opts(["--inspect-socks"]),
        &["--socks5-hostname", &proxy, &url],
    );
    out.assert_code(0);
    assert!(out.stdout.contains(web.body()), "{}", out.describe());
    assert!(out.leaks().is_empty(), "{}", out.describe());
    assert_eq!(web.requests(), 1);
}

#[test]
fn socks5_by_address_after_a_local_lookup_is_flagged() {
    if !is_root() {
        skip!("--dns proxy needs root");
    }
    let socks = match Microsocks::start_with_hosts(&format!("127.0.0.2 {NAME}\n")) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let url = format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap());
    let proxy = socks.addr().to_string();
    // curl --socks5 resolves the name itself (here through sockstrace's own
    // resolver, so no query leaves), then asks the proxy for the address.
    let trace = Trace::new().proxy(socks.addr()).opts(["--inspect-socks", "--dns", "proxy"]);
    let out = curl(trace, &["--socks5", &proxy, &url]);
    assert_ne!(out.code(), 0, "{}", out.describe());
    assert_eq!(out.leaks_for("socks-by-address").len(), 1, "{}", out.describe());
    assert_eq!(web.requests(), 0);
}

#[test]
fn require_socks_auth_and_isolation_regex() {
    let open = match Microsocks::start() {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let proxy = open.addr().to_string();
    let out = curl(
        Trace::new().proxy(open.addr()).opts(["--require-socks-auth"]),
        &["--socks5", &proxy, &web.url()],
    );
    assert_ne!(out.code(), 0, "{}", out.describe());
    assert_eq!(out.leaks_for("socks-no-auth").len(), 1, "{}", out.describe());
    assert_eq!(web.requests(), 0);

    let locked = match Microsocks::start_with("", Some(("shared", "pw"))) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let isolation = ["--isolation-regex", "^iso-[0-9]+$"];
    let with = |user: &str| format!("socks5://{user}:pw@{}", locked.addr());
    let out = curl(Trace::new().proxy(locked.addr()).opts(isolation), &["-x", &with("shared"), &web.url()]);
    assert_ne!(out.code(), 0, "{}", out.describe());
    assert_eq!(out.leaks_for("socks-isolation").len(), 1, "{}", out.describe());
    assert_eq!(web.requests(), 0);

    // Credentials that match pass, and the request goes through.
    let isolated = match Microsocks::start_with("", Some(("iso-7", "pw"))) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let url = format!("socks5://iso-7:pw@{}", isolated.addr());
    let out = curl(Trace::new().proxy(isolated.addr()).opts(isolation), &["-x", &url, &web.url()]);
    out.assert_code(0);
    assert!(out.leaks().is_empty(), "{}", out.describe());
    assert_eq!(web.requests(), 1);
}
