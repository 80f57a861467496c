//! Real clients keep working through the proxy, plain and with
//! `--isolate-network`, as root (kernel layer on) and as nobody: each loads a
//! page from an [`HttpServer`] on 127.0.0.2 through Debian's microsocks, and
//! (Node.js, Go) then tries the server directly, which is refused (EPERM) and
//! reported.
//!
//! - Node.js 20: `net` + `http` with a hand-written SOCKS5 CONNECT.
//! - Go, static (`CGO_ENABLED=0`): raw system calls from the Go runtime, no
//!   libc (`tests/clients/goclient/main.go`, built into the target dir).
//! - Headless Chromium (`--proxy-server=socks5://...`), many processes and
//!   threads; it refuses to run as root, so root runs use `--user nobody`.
//!
//! Ground truth: the HTTP server counts connections; only the proxied one
//! may arrive.

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::{Duration, Instant};

use sockstrace_tests::apps::{elf_is_static, goclient, no_proxy_env, CHROMIUM, CHROMIUM_FLAGS};
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::{is_root, skip, HttpServer, LeakSpec, Microsocks, Outcome, Trace};

const ISOLATE: &str = "--isolate-network";
const NODE: &str = "/usr/bin/node";

/// Who runs sockstrace, and whether the program is isolated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Root,
    RootIsolated,
    Nobody,
    NobodyIsolated,
}

impl Mode {
    fn isolated(self) -> bool {
        matches!(self, Mode::RootIsolated | Mode::NobodyIsolated)
    }
    fn root(self) -> bool {
        matches!(self, Mode::Root | Mode::RootIsolated)
    }
    /// The trace (and, as nobody, the world-readable copies it runs from),
    /// or why this mode cannot run here.
    fn trace(self) -> Result<(Trace, Option<Copies>), String> {
        if !is_root() {
            return Err("the kernel layer and the switch to nobody need root".into());
        }
        let (trace, copies) = if self.root() {
            (Trace::new(), None)
        } else {
            let c = Copies::new();
            (c.as_nobody(), Some(c))
        };
        let trace = if self.isolated() { trace.opts([ISOLATE]) } else { trace };
        Ok((no_proxy_env(trace), copies))
    }
}

/// Chromium refuses to run as root: root's sockstrace runs it as nobody.
fn chromium_trace(mode: Mode) -> Result<(Trace, Option<Copies>), String> {
    let (trace, copies) = mode.trace()?;
    let trace = if mode.root() { trace.opts(["--user", "nobody"]) } else { trace };
    Ok((trace.world_writable_dir(), copies))
}

fn assert_isolated(out: &Outcome, isolated: bool) {
    assert_eq!(
        out.was_isolated(),
        isolated,
        "the layers line (isolated: {isolated})
{}",
        out.describe()
    );
}

/// What every working run shows: the page arrived once, through the proxy,
/// the proxy connect was allowed and reported, the layers are the mode's.
/// `requests`: how many requests the page may take (Chromium may ask for
/// /favicon.ico too, or exit before it does).
fn assert_worked(
    out: &Outcome,
    mode: Mode,
    http: &HttpServer,
    ms: &Microsocks,
    before: usize,
    requests: RangeInclusive<usize>,
) {
    out.assert_code(0);
    out.assert_report_well_formed();
    assert_isolated(out, mode.isolated());
    if mode.root() {
        assert!(
            out.kernel_layer().starts_with("on (enforcing"),
            "{mode:?}: kernel layer\n{}",
            out.describe()
        );
    }
    let made = http.requests() - before;
    assert!(requests.contains(&made), "{mode:?}: {made} requests for the page\n{}", out.describe());
    assert!(
        out.events.iter().any(|e| e.is_allowed()
            && e.s("syscall") == "connect"
            && e.s("dst") == ms.addr().to_string()
            && e.s("reason") == "proxy"),
        "{mode:?}: no allowed proxy connect reported\n{}",
        out.describe()
    );
}

/// The client's direct attempt: refused with EPERM, reported once as a
/// blocked leak by `comm`, and never reached the server; no other leak.
fn assert_direct_blocked(out: &Outcome, mode: Mode, http: &HttpServer, comm: &str, accepts_before: usize) {
    assert!(
        out.stdout.contains("direct: EPERM"),
        "{mode:?}: the direct connect was not refused\n{}",
        out.describe()
    );
    sockstrace_tests::settle();
    assert_eq!(
        http.accepts(),
        accepts_before + 1,
        "{mode:?}: the server saw a connection besides the proxied one\n{}",
        out.describe()
    );
    out.assert_leak(&LeakSpec {
        syscalls: &["connect"],
        dst: &http.dst(),
        reasons: &["direct-tcp"],
        action: "blocked",
        protocol: "tcp",
        family: "inet",
        comm,
        ..Default::default()
    });
    assert_eq!(out.leaks().len(), 1, "{mode:?}: other leaks reported\n{}", out.describe());
}

fn start_proxy_and_server() -> Result<(Microsocks, HttpServer), String> {
    let ms = Microsocks::start().map_err(|e| format!("microsocks: {e}"))?;
    Ok((ms, HttpServer::bind("127.0.0.2")))
}

fn timed(what: &str, mode: Mode, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    eprintln!("{what} {mode:?}: {:.1} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------- Node.js

/// Node.js: a SOCKS5 CONNECT by hand on a `net` socket, handed to
/// `http.get` as its connection; then `http.get` directly.
const NODE_CLIENT: &str = r#"'use strict';
const net = require('net');
const http = require('http');
const [proxyHost, proxyPort, host, port] = process.argv.slice(2);
setTimeout(() => { console.log('error: timeout'); process.exit(3); }, 15000).unref();
function fail(msg) { console.log('error: ' + msg); process.exit(1); }

function socks5(done) {
  const s = net.connect({ host: proxyHost, port: Number(proxyPort) });
  let buf = Buffer.alloc(0);
  let stage = 0;
  s.on('error', (e) => fail('proxy: ' + e.code));
  s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
  const onData = (d) => {
    buf = Buffer.concat([buf, d]);
    if (stage === 0 && buf.length >= 2) {
      if (buf[0] !== 5 || buf[1] !== 0) fail('greeting reply ' + buf.toString('hex'));
      buf = buf.subarray(2);
      stage = 1;
      const p = Number(port);
      s.write(Buffer.from([5, 1, 0, 1, ...host.split('.').map(Number), p >> 8, p & 255]));
    }
    if (stage === 1 && buf.length >= 10) {
      if (buf[1] !== 0) fail('connect reply ' + buf.toString('hex'));
      s.removeListener('data', onData);
      stage = 2;
      done(s);
    }
  };
  s.on('data', onData);
}

function get(options, label, then) {
  const req = http.get(options, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => { process.stdout.write(label + ': ' + body); then(); });
  });
  req.on('error', (e) => { console.log(label + ': ' + e.code); then(); });
}

socks5((sock) => {
  get({ host, port: Number(port), path: '/', createConnection: () => sock }, 'body', () => {
    get({ host, port: Number(port), path: '/', agent: false }, 'direct', () => process.exit(0));
  });
});
"#;

fn node_client(mode: Mode) {
    if !Path::new(NODE).exists() {
        skip!("{NODE} is not installed");
    }
    let (ms, http) = match start_proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let (trace, _copies) = match mode.trace() {
        Ok(v) => v,
        Err(e) => skip!("{mode:?}: {e}"),
    };
    let trace = trace.world_writable_dir();
    let script = trace.dir().join("client.js");
    std::fs::write(&script, NODE_CLIENT).unwrap();
    let (requests, accepts) = (http.requests(), http.accepts());
    let port = http.dst().rsplit_once(':').unwrap().1.to_string();
    let out = trace
        .proxy(ms.addr())
        .program([
            NODE,
            script.to_str().unwrap(),
            &ms.addr().ip().to_string(),
            &ms.addr().port().to_string(),
            "127.0.0.2",
            &port,
        ])
        .run();
    assert!(out.stdout.contains(&format!("body: {}", http.body())), "{mode:?}: no page\n{}", out.describe());
    assert_worked(&out, mode, &http, &ms, requests, 1..=1);
    assert_direct_blocked(&out, mode, &http, "node", accepts);
}

#[test]
fn node_through_microsocks_as_root() {
    timed("node", Mode::Root, || node_client(Mode::Root));
}

#[test]
fn node_through_microsocks_as_root_isolated() {
    timed("node", Mode::RootIsolated, || node_client(Mode::RootIsolated));
}

#[test]
fn node_through_microsocks_as_nobody() {
    timed("node", Mode::Nobody, || node_client(Mode::Nobody));
}

#[test]
fn node_through_microsocks_as_nobody_isolated() {
    timed("node", Mode::NobodyIsolated, || node_client(Mode::NobodyIsolated));
}

// ---------------------------------------------------------------- Go

fn go_client(mode: Mode) {
    let bin = match goclient() {
        Ok(b) => b,
        Err(e) => skip!("{e}"),
    };
    assert!(elf_is_static(bin), "{} is not static", bin.display());
    let (ms, http) = match start_proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let (trace, mut copies) = match mode.trace() {
        Ok(v) => v,
        Err(e) => skip!("{mode:?}: {e}"),
    };
    let bin = match copies.as_mut() {
        Some(c) => c.add(bin, "goclient"),
        None => bin.to_path_buf(),
    };
    let (requests, accepts) = (http.requests(), http.accepts());
    let port = http.dst().rsplit_once(':').unwrap().1.to_string();
    let out = trace
        .proxy(ms.addr())
        .program([bin.to_str().unwrap(), &ms.addr().to_string(), "127.0.0.2", &port])
        .run();
    assert!(out.stdout.contains(&format!("body: {}", http.body())), "{mode:?}: no page\n{}", out.describe());
    assert_worked(&out, mode, &http, &ms, requests, 1..=1);
    assert_direct_blocked(&out, mode, &http, "goclient", accepts);
}

#[test]
fn static_go_through_microsocks_as_root() {
    timed("go", Mode::Root, || go_client(Mode::Root));
}

#[test]
fn static_go_through_microsocks_as_root_isolated() {
    timed("go", Mode::RootIsolated, || go_client(Mode::RootIsolated));
}

#[test]
fn static_go_through_microsocks_as_nobody() {
    timed("go", Mode::Nobody, || go_client(Mode::Nobody));
}

#[test]
fn static_go_through_microsocks_as_nobody_isolated() {
    timed("go", Mode::NobodyIsolated, || go_client(Mode::NobodyIsolated));
}

// ---------------------------------------------------------------- Chromium

/// Headless Chromium loading the server's page with the proxy set;
/// `direct`: without `--proxy-bypass-list=<-loopback>`, so that Chromium's
/// own rule sends loopback destinations around the proxy (a real direct
/// connect, made by its network service's IO thread).
fn chromium(mode: Mode, direct: bool) {
    if !Path::new(CHROMIUM).exists() {
        skip!("{CHROMIUM} is not installed (Debian's chromium)");
    }
    let (ms, http) = match start_proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let (trace, _copies) = match chromium_trace(mode) {
        Ok(v) => v,
        Err(e) => skip!("{mode:?}: {e}"),
    };
    let profile = format!("--user-data-dir={}", trace.dir().join("profile").display());
    let proxy = format!("--proxy-server=socks5://{}", ms.addr());
    let url = http.url();
    let mut argv = vec![CHROMIUM];
    argv.extend(CHROMIUM_FLAGS);
    argv.extend([profile.as_str(), &proxy]);
    if !direct {
        // Chromium bypasses any proxy for loopback unless told not to.
        argv.push("--proxy-bypass-list=<-loopback>");
    }
    argv.extend(["--dump-dom", &url]);
    let requests = http.requests();
    let out = trace.proxy(ms.addr()).timeout(Duration::from_secs(60)).program(argv).run();
    out.assert_report_well_formed();
    if direct {
        out.assert_code(0);
        assert_isolated(&out, mode.isolated());
        assert!(!out.stdout.contains(http.body().trim()), "{mode:?}: the page arrived\n{}", out.describe());
        sockstrace_tests::settle();
        assert_eq!(http.accepts(), 0, "{mode:?}: the server saw a connection\n{}", out.describe());
        out.assert_leak(&LeakSpec {
            syscalls: &["connect"],
            dst: &http.dst(),
            reasons: &["direct-tcp"],
            action: "blocked",
            protocol: "tcp",
            family: "inet",
            comm: "Chrome_ChildIOT",
            ..Default::default()
        });
        let others: Vec<_> = out.leaks().into_iter().filter(|e| e.s("dst") != http.dst()).collect();
        assert!(others.is_empty(), "{mode:?}: other leaks: {others:?}\n{}", out.describe());
        return;
    }
    assert!(
        out.stdout.contains(http.body().trim()),
        "{mode:?}: the page is not in the DOM\n{}",
        out.describe()
    );
    assert_worked(&out, mode, &http, &ms, requests, 1..=2);
    out.assert_no_leaks();
}

#[test]
fn chromium_through_microsocks_as_root_user_nobody() {
    timed("chromium", Mode::Root, || chromium(Mode::Root, false));
}

#[test]
fn chromium_through_microsocks_as_root_user_nobody_isolated() {
    timed("chromium", Mode::RootIsolated, || chromium(Mode::RootIsolated, false));
}

#[test]
fn chromium_through_microsocks_as_nobody() {
    timed("chromium", Mode::Nobody, || chromium(Mode::Nobody, false));
}

#[test]
fn chromium_through_microsocks_as_nobody_isolated() {
    timed("chromium", Mode::NobodyIsolated, || chromium(Mode::NobodyIsolated, false));
}

/// Chromium's implicit loopback bypass is a real direct connect: refused,
/// reported, and the page never loads.
#[test]
fn chromium_loopback_bypass_is_blocked_as_root_user_nobody() {
    timed("chromium direct", Mode::Root, || chromium(Mode::Root, true));
}

#[test]
fn chromium_loopback_bypass_is_blocked_as_root_user_nobody_isolated() {
    timed("chromium direct", Mode::RootIsolated, || chromium(Mode::RootIsolated, true));
}
