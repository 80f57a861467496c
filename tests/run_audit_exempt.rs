//! `sockstrace audit` on a proxy host (root): the proxy's own upstream connections are exempt
//! (by cgroup, by user, by executable) — neither reported nor refused, but counted in the
//! summary — while a direct connect by another process of the watched cgroup is still
//! reported and, with `--enforce`, refused. The proxy is Debian's microsocks, the tests' stand-in
//! for Tor; a SOCKS5 request through it must reach a TCP sink on 127.0.0.2.
//!
//! And attribution that survives the process: a leaker that lives a millisecond, and the
//! grandchild of a "service", are reported with their executable, argv[0], parent pid and
//! cgroup, from the kernel's own process records when /proc no longer has them.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockstrace_tests::cgroup::{audit_skip_reason, proc_path, TestCgroup};
use sockstrace_tests::net::free_port;
use sockstrace_tests::run::{Outcome, Running};
use sockstrace_tests::util::{process_dead, wait_until};
use sockstrace_tests::{bpf, client, direct, netprobe, skip, Microsocks, TcpSink, Trace, UdpSink};

/// How long sockstrace may take to load and attach its programs.
const ATTACH_PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Cgroups, processes and sockstrace audit
// ---------------------------------------------------------------------------------------------

/// `sh -c 'echo $$ > CGROUP/cgroup.procs && exec ARGV'`: argv run in `cgroup`.
fn in_cgroup(cgroup: &Path, argv: &[&str]) -> Vec<String> {
    let mut full = vec![
        "sh".to_string(),
        "-c".into(),
        r#"echo $$ > "$1" && shift && exec "$@""#.into(),
        "sh".into(),
        cgroup.join("cgroup.procs").display().to_string(),
    ];
    full.extend(argv.iter().map(|a| a.to_string()));
    full
}

/// microsocks on a free 127.0.0.1 port, started in `cgroup`, as `user` (a uid) if given;
/// killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Proxy {
    fn start(cgroup: &Path, user: Option<&str>) -> Self {
        let port = free_port().to_string();
        let mut argv: Vec<&str> = Vec::new();
        let (reuid, regid);
        if let Some(uid) = user {
            reuid = format!("--reuid={uid}");
            regid = format!("--regid={uid}");
            argv.extend(["setpriv", &reuid, &regid, "--clear-groups"]);
        }
        argv.extend([Microsocks::PATH, "-i", "127.0.0.1", "-p", &port]);
        let full = in_cgroup(cgroup, &argv);
        let child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn microsocks");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut proxy = Proxy { child, addr };
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                || proxy.child.try_wait().ok().flatten().is_some()
        });
        assert!(up && proxy.child.try_wait().ok().flatten().is_none(), "microsocks did not start on {addr}");
        proxy
    }

    fn pid(&self) -> i64 {
        i64::from(self.child.id())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SOCKS5 CONNECT to `dst` (IPv4) through `proxy`, then `payload`; the proxy's reply code
/// (0: it connected upstream).
fn socks_send(proxy: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Result<(), String> {
    let SocketAddr::V4(dst) = dst else { return Err("IPv4 only".into()) };
    let mut s = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.write_all(&[5, 1, 0]).map_err(|e| e.to_string())?;
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello).map_err(|e| format!("greeting: {e}"))?;
    let mut request = vec![5, 1, 0, 1];
    request.extend(dst.ip().octets());
    request.extend(dst.port().to_be_bytes());
    s.write_all(&request).map_err(|e| e.to_string())?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).map_err(|e| format!("reply: {e}"))?;
    if reply[1] != 0 {
        return Err(format!("the proxy's reply code {} (it could not connect upstream)", reply[1]));
    }
    s.write_all(payload).map_err(|e| e.to_string())
}

/// A `sockstrace audit --cgroup CG --report FILE [extra]` in the background, attached.
struct Audit {
    running: Running,
    report: PathBuf,
    cgroup: PathBuf,
    _dir: tempfile::TempDir,
}

impl Audit {
    fn start(cgroup: &Path, extra: &[&str]) -> Self {
        Self::start_env(cgroup, extra, None)
    }

    /// With `SOCKSTRACE_TEST_DISABLE` set to `disable`.
    fn start_env(cgroup: &Path, extra: &[&str], disable: Option<&str>) -> Self {
        let dir = tempfile::Builder::new().prefix("sockstrace-exempt").tempdir().expect("tempdir");
        let report = dir.path().join("audit.jsonl");
        let mut argv = vec![
            "audit".to_string(),
            "--cgroup".into(),
            cgroup.display().to_string(),
            "--report".into(),
            report.display().to_string(),
        ];
        argv.extend(extra.iter().map(|a| a.to_string()));
        let mut trace = Trace::raw(argv);
        if let Some(disable) = disable {
            trace = trace.env("SOCKSTRACE_TEST_DISABLE", disable);
        }
        let running = trace.spawn();
        let attached = wait_until(ATTACH_PATIENCE, || {
            running.stderr().contains("sockstrace: auditing cgroup") || process_dead(running.pid())
        });
        assert!(attached && !process_dead(running.pid()), "audit did not attach\n{}", running.describe());
        Audit { running, report, cgroup: cgroup.to_path_buf(), _dir: dir }
    }

    /// SIGINT, wait, read the report; checks that nothing stays attached.
    fn stop(self) -> Outcome {
        self.running.signal(libc::SIGINT);
        let mut out = self.running.wait();
        let text = std::fs::read_to_string(&self.report).unwrap_or_default();
        out.read_report(&text);
        out.report_text = Some(text);
        for &(hook, t) in bpf::CGROUP_ATTACH_TYPES {
            let count = bpf::attached_count(&self.cgroup, t).unwrap_or(0);
            assert_eq!(count, 0, "a program is still attached ({hook})\n{}", out.describe());
        }
        out.assert_code(0);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy exempt, the app not
// ---------------------------------------------------------------------------------------------

/// How the proxy is exempt in a test.
enum By {
    /// `--exempt-cgroup`: the proxy in a cgroup of its own below the watched one.
    Cgroup,
    /// `--exempt-user`: the proxy as nobody, started before the audit, in the watched cgroup.
    User,
    /// `--exempt-exe`: one proxy started before the audit, one after, in the watched cgroup.
    Exe,
}

/// The whole scenario: a watched cgroup holding the proxy and an app, `audit --enforce` with
/// the proxy exempt; a request through the proxy reaches the sink, the app's direct connect is
/// refused and reported, and the proxy's own upstream connect is in the summary's `exempt`
/// counts, under its pid, never in an event.
fn proxy_exempt(by: By) {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    if !Path::new(Microsocks::PATH).exists() {
        skip!("{} is not installed", Microsocks::PATH);
    }
    let cg = TestCgroup::new("exempt", "exempt");
    let app_cg = cg.child("app");
    let proxy_cg = cg.child("proxy");
    let sink = TcpSink::bind("127.0.0.2");
    let nobody = sockstrace_tests::unpriv::NOBODY;

    let early = match by {
        By::Cgroup => Some(Proxy::start(&proxy_cg, None)),
        By::User => Some(Proxy::start(cg.path(), Some(nobody))),
        By::Exe => Some(Proxy::start(cg.path(), None)),
    };
    let exempt_arg = match by {
        By::Cgroup => vec!["--exempt-cgroup".to_string(), proxy_path_arg(&proxy_cg)],
        By::User => vec!["--exempt-user".into(), "nobody".into()],
        By::Exe => vec!["--exempt-exe".into(), Microsocks::PATH.into()],
    };
    let mut proxies: Vec<&Proxy> = early.iter().collect();
    let policy_proxy = proxies[0].addr.to_string();
    let mut extra = vec!["--enforce", "--proxy", &policy_proxy];
    extra.extend(exempt_arg.iter().map(String::as_str));
    let audit = Audit::start(cg.path(), &extra);
    // Started once the audit runs: marked at exec.
    let late = matches!(by, By::Exe).then(|| Proxy::start(cg.path(), None));
    proxies.extend(late.iter());

    for (i, proxy) in proxies.iter().enumerate() {
        let payload = format!("through proxy {i}");
        socks_send(proxy.addr, sink.addr(), payload.as_bytes())
            .unwrap_or_else(|e| panic!("request through microsocks (pid {}): {e}", proxy.pid()));
    }
    let wanted: usize = proxies.iter().enumerate().map(|(i, _)| format!("through proxy {i}").len()).sum();
    assert!(sink.wait_bytes(wanted, Duration::from_secs(10)), "the proxied requests did not reach the sink");
    let app =
        direct(in_cgroup(&app_cg, &[netprobe().to_str().unwrap(), "tcp-connect", "127.0.0.2", &sink.port()]));
    let out = audit.stop();
    let d = || format!("app:\n{}{}\n{}", app.stdout, app.stderr, out.describe());

    // The app: refused, reported.
    assert!(app.stdout.contains("connect: errno=1 ("), "the app's direct connect was not refused\n{}", d());
    assert_eq!(
        sink.accepts(),
        proxies.len(),
        "the sink saw other connections than the proxied ones\n{}",
        d()
    );
    let (app_pid, _) = app.actor();
    let leak = out.the_event("the app's leak", |e| e.is_leak() && e.i("pid") == Some(app_pid));
    assert_eq!((leak.s("action"), leak.s("dst")), ("blocked", sink.dst().as_str()), "{leak}\n{}", d());

    // The proxy: never an event, always counted.
    let exempt = &out.summary_obj()["exempt"];
    let why = match by {
        By::Cgroup => "cgroup",
        By::User => "user",
        By::Exe => "exe",
    };
    for proxy in &proxies {
        assert!(
            out.events_where(|e| e.i("pid") == Some(proxy.pid())).is_empty(),
            "the exempt proxy (pid {}) was reported\n{}",
            proxy.pid(),
            d()
        );
        let row = exempt["processes"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["pid"].as_i64() == Some(proxy.pid())))
            .unwrap_or_else(|| panic!("no exempt row for the proxy (pid {})\n{}", proxy.pid(), d()));
        assert!(row["connects"].as_u64() >= Some(1), "exempt connects of the proxy: {row}\n{}", d());
        assert_eq!(row["comm"], "microsocks", "{row}\n{}", d());
        assert!(row["why"].as_array().is_some_and(|w| w.iter().any(|x| x == why)), "why: {row}\n{}", d());
        if matches!(by, By::User) {
            assert_eq!(row["uid"], 65534, "{row}\n{}", d());
        }
    }
    assert!(exempt["connects"].as_u64() >= Some(proxies.len() as u64), "exempt total\n{}", d());
    assert!(out.stderr.contains("sockstrace: exempt: "), "no exempt line on stderr\n{}", d());
    assert!(out.stderr.contains("by microsocks (pid "), "the exempt line does not name the proxy\n{}", d());
}

/// `--exempt-cgroup` as `/proc/PID/cgroup` writes it (relative to the mount).
fn proxy_path_arg(cgroup: &Path) -> String {
    proc_path(cgroup)
}

#[test]
fn proxy_exempt_by_cgroup_while_the_app_is_refused() {
    proxy_exempt(By::Cgroup);
}

#[test]
fn proxy_exempt_by_user_while_the_app_is_refused() {
    proxy_exempt(By::User);
}

#[test]
fn proxy_exempt_by_exe_started_before_and_after_while_the_app_is_refused() {
    proxy_exempt(By::Exe);
}

#[test]
fn exemptions_that_name_nothing_are_refused() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("exempt", "bad");
    for (flag, value, says) in [
        ("--exempt-user", "no-such-user-here", "no such user"),
        ("--exempt-exe", "microsocks", "must be absolute"),
        ("--exempt-exe", "/no/such/exe", "/no/such/exe"),
        ("--exempt-cgroup", "no-such-cgroup-here", "no-such-cgroup-here"),
    ] {
        let cgroup = cg.path().display().to_string();
        let out = Trace::raw(["audit", "--cgroup", &cgroup, "--duration", "1", flag, value]).run();
        out.assert_code(125);
        assert!(out.stderr.contains(says), "{flag} {value}\n{}", out.describe());
    }
}

// ---------------------------------------------------------------------------------------------
// Attribution that survives the process
// ---------------------------------------------------------------------------------------------

/// The event of the leak by `comm` to `dst`, with its process fields all present.
fn attributed<'o>(out: &'o Outcome, dst: &str, leaker: &Path) -> &'o sockstrace_tests::Event {
    let ev = out.the_event(&format!("shortleak's leak to {dst}"), |e| e.is_leak() && e.s("dst") == dst);
    let d = || out.describe();
    assert_eq!(ev.s("comm"), "shortleak", "{ev}\n{}", d());
    assert!(ev.get("missing").is_none(), "attribution missing: {ev}\n{}", d());
    let canonical = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    let leaker = leaker.canonicalize().unwrap();
    assert_eq!(canonical(ev.s("exe")), leaker, "exe: {ev}\n{}", d());
    let argv0 =
        ev.get("argv").and_then(|a| a[0].as_str()).unwrap_or_else(|| panic!("no argv: {ev}\n{}", d()));
    assert_eq!(canonical(argv0), leaker, "argv[0]: {ev}\n{}", d());
    ev
}

#[test]
fn a_leaker_that_lives_a_millisecond_is_fully_attributed() {
    short_lived_leaker(None);
}

/// The same, with /proc never read (a debug build's test switch): every field comes from the
/// kernel's process record, whenever /proc is read.
#[test]
fn a_leaker_is_attributed_from_the_kernel_s_records_alone() {
    let out = short_lived_leaker(Some("proc-attribution"));
    let Some(out) = out else { return };
    let ev = out.the_event("the leak", |e| e.is_leak() && e.s("comm") == "shortleak");
    let process = &ev.get("kernel").unwrap()["process"];
    assert!(
        process["filename"].as_str().is_some_and(|f| f.ends_with("shortleak")),
        "{ev}
{}",
        out.describe()
    );
}

/// Runs the leaker in a watched cgroup and checks its event (`None` when skipped).
fn short_lived_leaker(disable: Option<&str>) -> Option<Outcome> {
    if let Some(why) = audit_skip_reason() {
        eprintln!("SKIP {}: {why}", module_path!());
        return None;
    }
    let leaker = client("shortleak");
    let cg = TestCgroup::new("exempt", "short");
    let sink = UdpSink::bind("127.0.0.2");
    let audit = Audit::start_env(cg.path(), &[], disable);
    // The shell execs the leaker: its parent is this test.
    let run = direct(in_cgroup(cg.path(), &[leaker.to_str().unwrap(), "127.0.0.2", &sink.port()]));
    assert_eq!(run.code, 0, "shortleak: {}", run.stderr);
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "the datagram did not arrive (observing only)");
    let out = audit.stop();
    let ev = attributed(&out, &sink.dst(), &leaker);
    assert_eq!(ev.i("ppid"), Some(i64::from(std::process::id())), "ppid: {ev}\n{}", out.describe());
    assert_eq!(ev.s("cgroup"), proc_path(cg.path()), "cgroup: {ev}\n{}", out.describe());
    let audit = &out.summary_obj()["audit"];
    assert_eq!(audit["lost_process_records"], 0, "{}", out.describe());
    assert_eq!(audit["attribution_missing"], 0, "{}", out.describe());
    Some(out)
}

#[test]
fn a_leaking_grandchild_of_a_service_carries_its_parent_and_the_service_cgroup() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let leaker = client("shortleak");
    let cg = TestCgroup::new("exempt", "service");
    let service = cg.child("shop.service");
    let sink = UdpSink::bind("127.0.0.2");
    // /proc is never read (a debug build's test switch): the leaker's parent and the
    // service's cgroup must come from the kernel's records, as for a process already gone.
    let audit = Audit::start_env(cg.path(), &[], Some("proc-attribution"));
    // The service's shell forks a shell, which prints its pid and forks the leaker (`; true`
    // keeps either from exec'ing its last command).
    let inner = format!("echo middle=$$; {} 127.0.0.2 {}; true", leaker.display(), sink.port());
    let script = format!("echo $$ > {}/cgroup.procs && sh -c '{inner}'; true", service.display());
    let run = direct(["sh", "-c", &script]);
    assert_eq!(run.code, 0, "service: {}{}", run.stdout, run.stderr);
    let middle: i64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("middle="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the middle shell did not say its pid: {}", run.stdout));
    assert!(sink.wait_datagrams(1, Duration::from_secs(5)), "the datagram did not arrive (observing only)");
    let out = audit.stop();
    let ev = attributed(&out, &sink.dst(), &leaker);
    assert_eq!(ev.i("ppid"), Some(middle), "ppid: {ev}\n{}", out.describe());
    assert_eq!(ev.s("cgroup"), proc_path(&service), "cgroup: {ev}\n{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// The egress gate honours exemptions
// ---------------------------------------------------------------------------------------------

/// Through a veth pair to a network namespace (not loopback: the egress gate judges every
/// packet): the exempt proxy's upstream packets are neither reported nor counted as leaks, but
/// as exempt packets; the app's direct connect is still reported.
#[test]
fn the_egress_gate_lets_the_exempt_proxy_s_packets_go() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    if !Path::new(Microsocks::PATH).exists() {
        skip!("{} is not installed", Microsocks::PATH);
    }
    let ns = match sockstrace_tests::netns::NetNs::create(&["10.81.0.1/24"], &["10.81.0.2/24"]) {
        Ok(ns) => ns,
        Err(e) => skip!("no network namespace: {e}"),
    };
    let listener = ns
        .inside(|| std::net::TcpListener::bind("10.81.0.2:0"))
        .unwrap_or_else(|e| panic!("listener in the namespace: {e}"));
    let sink_addr = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = received.clone();
    listener.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    let cg = TestCgroup::new("exempt", "egress");
    let proxy = Proxy::start(cg.path(), Some(sockstrace_tests::unpriv::NOBODY));
    let policy_proxy = proxy.addr.to_string();
    // Observing: the egress gate of an audit reports destinations it would not allow.
    let audit = Audit::start(cg.path(), &["--proxy", &policy_proxy, "--exempt-user", "nobody"]);
    socks_send(proxy.addr, sink_addr, b"through the proxy").unwrap_or_else(|e| panic!("request: {e}"));
    let arrived = wait_until(Duration::from_secs(10), || received.lock().unwrap().len() >= 17);
    assert!(arrived, "the proxied request did not reach the sink");
    let port = sink_addr.port().to_string();
    let app =
        direct(in_cgroup(cg.path(), &[netprobe().to_str().unwrap(), "tcp-connect", "10.81.0.2", &port]));
    let out = audit.stop();
    let d = || format!("app:\n{}{}\n{}", app.stdout, app.stderr, out.describe());
    let (app_pid, _) = app.actor();
    out.the_event("the app's leak", |e| {
        e.is_leak() && e.i("pid") == Some(app_pid) && e.s("syscall") == "connect"
    });
    assert!(
        out.events_where(|e| e.i("pid") == Some(proxy.pid())).is_empty(),
        "the exempt proxy was reported\n{}",
        d()
    );
    let row = out.summary_obj()["exempt"]["processes"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["pid"].as_i64() == Some(proxy.pid())).cloned())
        .unwrap_or_else(|| panic!("no exempt row for the proxy\n{}", d()));
    assert!(row["connects"].as_u64() >= Some(1), "{row}\n{}", d());
    assert!(row["packets"].as_u64() >= Some(1), "the egress gate counted no exempt packet: {row}\n{}", d());
}
