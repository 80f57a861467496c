//! `run --syscalls all|strict|FILE` and `run --learn-syscalls FILE`
//! (docs/SYSCALLS.md).
//!
//! - `strict`: real clients (curl, Python's urllib, a static Go client,
//!   headless Chromium) load a page from an [`HttpServer`] on 127.0.0.2
//!   through Debian's microsocks; `tests/clients/syscall_probe.c` (x86_64 and
//!   i386) sees `ptrace`, `bpf`, `mount`, `init_module` and `userfaultfd` fail
//!   with EPERM, each reported as a `syscall-denied` event, while its network
//!   calls are judged as in any run.
//! - `--learn-syscalls`: the profile learned from one run of the probe lets
//!   the same run through with no denial, and denies a call the first run
//!   never made; as root and as nobody.
//! - A profile's own errno, and `default-action = "kill"`.
//!
//! Ground truth: the program's own output (what each call returned) and, for
//! the clients, the HTTP server's count of requests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sockstrace_tests::apps::{goclient, no_proxy_env, CHROMIUM, CHROMIUM_FLAGS};
use sockstrace_tests::paths::client_build;
use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::{is_root, skip, HttpServer, Microsocks, Outcome, TcpSink, Trace};

const FORBIDDEN: [&str; 5] = ["ptrace", "bpf", "mount", "init_module", "userfaultfd"];

/// The summary's count of denied calls, by name.
fn denied(out: &Outcome) -> serde_json::Map<String, serde_json::Value> {
    let s = out.summary.as_ref().unwrap_or_else(|| panic!("no summary\n{}", out.describe()));
    s["summary"]["syscalls_denied"].as_object().cloned().unwrap_or_default()
}

fn syscalls_layer(out: &Outcome) -> String {
    let s = out.summary.as_ref().unwrap_or_else(|| panic!("no summary\n{}", out.describe()));
    s["summary"]["layers"]["syscalls"].as_str().unwrap_or("").to_string()
}

/// Each of `names` was denied once, with `errno`, and reported by the probe.
fn assert_denied(out: &Outcome, names: &[&str], errno: i64, comm: &str) {
    for name in names {
        let ev = out.the_event(&format!("{name} denied"), |e| {
            e.s("syscall") == *name && e.s("reason") == "syscall-denied"
        });
        assert_eq!(ev.s("action"), "blocked", "{name}: {ev}\n{}", out.describe());
        assert_eq!(ev.i("errno"), Some(errno), "{name}: {ev}\n{}", out.describe());
        assert_eq!(ev.s("comm"), comm, "{name}: {ev}\n{}", out.describe());
        assert!(ev.i("pid").unwrap_or(0) > 0, "{name}: {ev}");
        assert!(!ev.is_leak(), "a denied call is no network leak: {ev}");
        assert_eq!(denied(out).get(*name).and_then(|v| v.as_i64()), Some(1), "{name}\n{}", out.describe());
    }
    assert!(
        out.stderr.contains("system call(s) denied:"),
        "no summary line for the denied calls\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------- the probe

fn probe(m32: bool) -> Result<PathBuf, String> {
    client_build("syscall_probe", m32, false)
}

/// Under `strict` the five calls fail with EPERM and are reported; the
/// network calls are still judged (an allowed connect gets through, another
/// is refused as a leak); the layers line names the list.
fn strict_probe(m32: bool) {
    let bin = match probe(m32) {
        Ok(b) => b,
        Err(e) => skip!("syscall_probe (m32: {m32}): {e}"),
    };
    let allowed = TcpSink::bind("127.0.0.2");
    let refused = TcpSink::bind("127.0.0.3");
    let comm: String = bin.file_name().unwrap().to_string_lossy().chars().take(15).collect();
    let out = Trace::new()
        .opts(["--syscalls", "strict"])
        .allow(&allowed.dst())
        .program([
            bin.to_str().unwrap(),
            "forbidden",
            "work",
            "connect",
            &allowed.host(),
            &allowed.port(),
            "connect",
            &refused.host(),
            &refused.port(),
        ])
        .run();
    out.assert_code(0);
    out.assert_report_well_formed();
    for name in FORBIDDEN {
        assert!(
            out.stdout.contains(&format!("{name}: EPERM\n")),
            "{name} was not refused\n{}",
            out.describe()
        );
    }
    assert!(out.stdout.contains("uname: ok") && out.stdout.contains("open: ok"), "{}", out.describe());
    assert_denied(&out, &FORBIDDEN, libc::EPERM as i64, &comm);
    assert_eq!(
        denied(&out).len(),
        FORBIDDEN.len(),
        "other calls denied: {:?}\n{}",
        denied(&out),
        out.describe()
    );
    // The network calls: judged as always.
    assert!(out.stdout.contains(&format!("connect {}: ok", allowed.dst())), "{}", out.describe());
    assert!(out.stdout.contains(&format!("connect {}: EPERM", refused.dst())), "{}", out.describe());
    assert!(allowed.wait_bytes(1, Duration::from_secs(5)), "the allowed connection sent nothing");
    sockstrace_tests::settle();
    refused.assert_nothing_arrived("strict probe");
    let leaks = out.leaks();
    assert!(
        leaks.len() == 1 && leaks[0].s("dst") == refused.dst() && leaks[0].s("reason") == "direct-tcp",
        "{}",
        out.describe()
    );
    assert!(syscalls_layer(&out).starts_with("strict-1 ("), "{}", out.describe());
    assert!(out.stderr.contains("; syscalls strict-1 ("), "layers line\n{}", out.describe());
}

#[test]
fn strict_denies_and_reports_dangerous_calls_x86_64() {
    strict_probe(false);
}

#[test]
fn strict_denies_and_reports_dangerous_calls_i386() {
    strict_probe(true);
}

/// Without `--syscalls` (or with `all`) nothing is denied: the same calls
/// reach the kernel (ptrace of a process we do not trace: ESRCH).
#[test]
fn all_is_the_default_and_denies_nothing() {
    let bin = probe(false).expect("syscall_probe");
    for opts in [&[][..], &["--syscalls", "all"][..]] {
        let out = Trace::new().opts(opts).program([bin.to_str().unwrap(), "forbidden"]).run();
        out.assert_code(0);
        assert!(out.stdout.contains("ptrace: errno=3\n"), "{}", out.describe());
        assert!(denied(&out).is_empty(), "{}", out.describe());
        assert!(!out.events.iter().any(|e| e.s("reason") == "syscall-denied"), "{}", out.describe());
        assert_eq!(syscalls_layer(&out), "all", "{}", out.describe());
    }
}

// ---------------------------------------------------------------- profiles

/// Learns the probe's `work`, then: the same run under the profile denies
/// nothing; `work extra` is denied `sysinfo` (never made while learning).
fn learned_profile(trace: impl Fn() -> Trace, bin: &Path, comm: &str) {
    let t = trace();
    let profile = t.dir().join("probe.toml");
    let out = t
        .opts(["--learn-syscalls", profile.to_str().unwrap()])
        .program([bin.to_str().unwrap(), "work"])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("uname: ok"), "{}", out.describe());
    assert!(out.stderr.contains("learned; profile written to"), "{}", out.describe());
    assert!(syscalls_layer(&out).starts_with("learning"), "{}", out.describe());
    let text =
        std::fs::read_to_string(&profile).unwrap_or_else(|e| panic!("no profile: {e}\n{}", out.describe()));
    assert!(text.contains("\"uname\"") && text.contains("[counts.x86_64]"), "{text}");
    assert!(!text.contains("\"sysinfo\""), "sysinfo was never called\n{text}");
    // Read back from a directory the next runs can reach.
    let again = |steps: &[&str]| {
        let t = trace();
        let copy = t.dir().join("probe.toml");
        std::fs::write(&copy, &text).unwrap();
        let mut argv = vec![bin.to_str().unwrap()];
        argv.extend(steps);
        t.opts(["--syscalls", copy.to_str().unwrap()]).program(argv).run()
    };
    let out = again(&["work"]);
    out.assert_code(0);
    out.assert_report_well_formed();
    assert!(denied(&out).is_empty(), "the learned run was denied calls\n{}", out.describe());
    assert!(out.stdout.contains("uname: ok") && out.stdout.contains("read: ok"), "{}", out.describe());
    assert!(syscalls_layer(&out).starts_with("file "), "{}", out.describe());
    let out = again(&["work", "extra"]);
    out.assert_code(0);
    assert!(out.stdout.contains("sysinfo: EPERM"), "{}", out.describe());
    assert_denied(&out, &["sysinfo"], libc::EPERM as i64, comm);
    assert_eq!(denied(&out).len(), 1, "{}", out.describe());
}

#[test]
fn learned_profile_passes_its_run_and_denies_a_new_call() {
    let bin = probe(false).expect("syscall_probe");
    learned_profile(Trace::new, &bin, "syscall_probe");
}

#[test]
fn learned_profile_works_without_root() {
    if !is_root() {
        skip!("switching to nobody needs root");
    }
    let mut copies = Copies::new();
    let bin = copies.add(&probe(false).expect("syscall_probe"), "syscall_probe");
    learned_profile(|| copies.as_nobody(), &bin, "syscall_probe");
}

/// A profile's per-call errno, its default errno, and `default-action = "kill"`.
#[test]
fn profile_errno_and_kill() {
    let bin = probe(false).expect("syscall_probe");
    let t = Trace::new();
    let learned = t.dir().join("learned.toml");
    let out = t
        .opts(["--learn-syscalls", learned.to_str().unwrap()])
        .program([bin.to_str().unwrap(), "work"])
        .run();
    out.assert_code(0);
    let text = std::fs::read_to_string(&learned).unwrap();
    let with = |extra_top: &str, table: &str, steps: &[&str]| {
        let t = Trace::new();
        let file = t.dir().join("p.toml");
        // Top-level keys go before the first table of the learned file.
        let at = text.find("\n[").unwrap_or(text.len());
        std::fs::write(&file, format!("{extra_top}\n{}\n{table}\n{}", &text[..at], &text[at..])).unwrap();
        let mut argv = vec![bin.to_str().unwrap()];
        argv.extend(steps);
        t.opts(["--syscalls", file.to_str().unwrap()]).program(argv).run()
    };
    let out =
        with("default-errno = \"EACCES\"", "[errno]\nsysinfo = \"ENOSYS\"", &["work", "extra", "forbidden"]);
    out.assert_code(0);
    assert!(out.stdout.contains("sysinfo: ENOSYS"), "{}", out.describe());
    assert!(out.stdout.contains(&format!("ptrace: errno={}", libc::EACCES)), "{}", out.describe());
    assert_denied(&out, &["sysinfo"], libc::ENOSYS as i64, "syscall_probe");
    assert_denied(&out, &["ptrace"], libc::EACCES as i64, "syscall_probe");

    let out = with("default-action = \"kill\"", "", &["work", "extra", "work"]);
    assert_eq!(out.code(), 128 + libc::SIGKILL, "{}", out.describe());
    assert!(!out.stdout.contains("sysinfo:"), "the call returned\n{}", out.describe());
    let ev = out.the_event("sysinfo kill", |e| e.s("syscall") == "sysinfo");
    assert_eq!((ev.s("reason"), ev.s("action")), ("syscall-denied", "killed"), "{ev}");
}

/// A profile that names no system call is refused before anything runs.
#[test]
fn a_profile_with_a_typo_is_refused() {
    let t = Trace::new();
    let file = t.dir().join("bad.toml");
    std::fs::write(&file, "version = 1\nallow = [\"opennat\"]\n").unwrap();
    let out = t.opts(["--syscalls", file.to_str().unwrap()]).program(["/bin/true"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("opennat"), "{}", out.describe());
}

// ---------------------------------------------------------------- real clients

/// What every client run under `strict` shows: the page arrived through the
/// proxy (one request), nothing leaked, nothing was denied.
fn assert_fetched(
    out: &Outcome,
    what: &str,
    http: &HttpServer,
    ms: &Microsocks,
    before: usize,
    requests: usize,
) {
    out.assert_code(0);
    out.assert_report_well_formed();
    assert!(out.stdout.contains(http.body().trim()), "{what}: no page\n{}", out.describe());
    assert_eq!(http.requests() - before, requests, "{what}: requests\n{}", out.describe());
    assert!(
        out.events.iter().any(|e| e.is_allowed()
            && e.s("syscall") == "connect"
            && e.s("dst") == ms.addr().to_string()
            && e.s("reason") == "proxy"),
        "{what}: no allowed proxy connect\n{}",
        out.describe()
    );
    out.assert_no_leaks();
    assert!(syscalls_layer(out).starts_with("strict-1 ("), "{}", out.describe());
    assert!(
        denied(out).is_empty(),
        "{what}: calls denied under strict: {:?}\n{}",
        denied(out),
        out.describe()
    );
}

fn proxy_and_server() -> Result<(Microsocks, HttpServer), String> {
    let ms = Microsocks::start().map_err(|e| format!("microsocks: {e}"))?;
    Ok((ms, HttpServer::bind("127.0.0.2")))
}

#[test]
fn curl_under_strict() {
    if !Path::new("/usr/bin/curl").exists() {
        skip!("curl is not installed");
    }
    let (ms, http) = match proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let before = http.requests();
    let proxy = format!("socks5h://{}", ms.addr());
    let out = no_proxy_env(Trace::new())
        .opts(["--syscalls", "strict"])
        .proxy(ms.addr())
        .program(["/usr/bin/curl", "-sS", "--max-time", "15", "-x", &proxy, &http.url()])
        .run();
    assert_fetched(&out, "curl", &http, &ms, before, 1);
}

/// `urllib.request` with an `HTTPConnection` whose `connect` speaks SOCKS5.
const PYTHON_CLIENT: &str = r#"
import http.client, socket, sys, urllib.request
proxy_host, proxy_port, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise OSError("proxy closed")
        b += c
    return b

class Socks5Connection(http.client.HTTPConnection):
    def connect(self):
        s = socket.create_connection((proxy_host, proxy_port), timeout=10)
        s.sendall(b"\x05\x01\x00")
        if exact(s, 2) != b"\x05\x00":
            raise OSError("greeting refused")
        host = self.host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + self.port.to_bytes(2, "big"))
        reply = exact(s, 10)
        if reply[1] != 0:
            raise OSError("connect refused: %d" % reply[1])
        self.sock = s

class Handler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(Socks5Connection, req)

body = urllib.request.build_opener(Handler).open(url, timeout=10).read().decode()
sys.stdout.write("body: " + body)
"#;

#[test]
fn python_urllib_under_strict() {
    if !Path::new("/usr/bin/python3").exists() {
        skip!("python3 is not installed");
    }
    let (ms, http) = match proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let before = http.requests();
    let trace = no_proxy_env(Trace::new());
    let script = trace.dir().join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).unwrap();
    let out = trace
        .opts(["--syscalls", "strict"])
        .proxy(ms.addr())
        .program([
            "/usr/bin/python3",
            script.to_str().unwrap(),
            &ms.addr().ip().to_string(),
            &ms.addr().port().to_string(),
            &http.url(),
        ])
        .run();
    assert_fetched(&out, "python3", &http, &ms, before, 1);
}

#[test]
fn static_go_under_strict() {
    let bin = match goclient() {
        Ok(b) => b,
        Err(e) => skip!("{e}"),
    };
    let (ms, http) = match proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let (before, accepts) = (http.requests(), http.accepts());
    let port = http.dst().rsplit_once(':').unwrap().1.to_string();
    let out = no_proxy_env(Trace::new())
        .opts(["--syscalls", "strict"])
        .proxy(ms.addr())
        .program([bin.to_str().unwrap(), &ms.addr().to_string(), "127.0.0.2", &port])
        .run();
    // The client then tries the server directly: refused as a leak, not a denied call.
    assert!(out.stdout.contains("direct: EPERM"), "{}", out.describe());
    out.assert_code(0);
    assert!(out.stdout.contains(http.body().trim()), "go: no page\n{}", out.describe());
    assert_eq!(http.requests() - before, 1, "{}", out.describe());
    sockstrace_tests::settle();
    assert_eq!(http.accepts(), accepts + 1, "the direct connect arrived\n{}", out.describe());
    let leaks = out.leaks();
    assert!(leaks.len() == 1 && leaks[0].s("reason") == "direct-tcp", "{}", out.describe());
    assert!(denied(&out).is_empty(), "go: calls denied under strict: {:?}\n{}", denied(&out), out.describe());
    assert!(syscalls_layer(&out).starts_with("strict-1 ("), "{}", out.describe());
}

/// Headless Chromium (many processes and threads); it refuses to run as
/// root, so root's sockstrace runs it as nobody.
#[test]
fn chromium_under_strict() {
    if !Path::new(CHROMIUM).exists() {
        skip!("{CHROMIUM} is not installed (Debian's chromium)");
    }
    if !is_root() {
        skip!("the run as nobody (--user) needs root");
    }
    let (ms, http) = match proxy_and_server() {
        Ok(v) => v,
        Err(e) => skip!("{e}"),
    };
    let trace = no_proxy_env(Trace::new()).opts(["--user", "nobody"]).world_writable_dir();
    let profile = format!("--user-data-dir={}", trace.dir().join("profile").display());
    let proxy = format!("--proxy-server=socks5://{}", ms.addr());
    let url = http.url();
    let before = http.requests();
    let out = trace
        .opts(["--syscalls", "strict"])
        .proxy(ms.addr())
        .timeout(Duration::from_secs(60))
        .program([CHROMIUM].into_iter().chain(CHROMIUM_FLAGS).chain([
            profile.as_str(),
            &proxy,
            "--proxy-bypass-list=<-loopback>",
            "--dump-dom",
            &url,
        ]))
        .run();
    out.assert_code(0);
    out.assert_report_well_formed();
    assert!(out.stdout.contains(http.body().trim()), "chromium: no page\n{}", out.describe());
    let made = http.requests() - before;
    assert!((1..=2).contains(&made), "chromium: {made} requests\n{}", out.describe());
    out.assert_no_leaks();
    assert!(syscalls_layer(&out).starts_with("strict-1 ("), "{}", out.describe());
    assert!(
        denied(&out).is_empty(),
        "chromium: calls denied under strict: {:?}\n{}",
        denied(&out),
        out.describe()
    );
}

/// `doctor` says which profile a run gets: the default, or the configuration file's.
#[test]
fn doctor_names_the_profile_in_force() {
    let line = |out: &Outcome| {
        out.stdout.lines().find(|l| l.contains("system call allowlist")).unwrap_or("").to_string()
    };
    let out = Trace::raw(["doctor"]).run();
    let l = line(&out);
    assert!(l.contains("in force: all (the default)") && l.contains("strict-1"), "{}", out.describe());
    let t = Trace::raw(["doctor"]);
    let config = t.dir().join("sockstrace.toml");
    std::fs::write(&config, "syscalls = \"strict\"\n").unwrap();
    let out = t.env("SOCKSTRACE_CONFIG", &config).run();
    let l = line(&out);
    assert!(l.starts_with("ok") && l.contains("in force: strict-1 ("), "{}", out.describe());
}
