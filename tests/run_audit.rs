//! `sockstrace audit` against the real kernel (root): sockstrace watches a cgroup the test
//! creates; test clients it did not start join that cgroup and leak over TCP (v4 and v6), UDP
//! and DNS to sinks. Each leak must be reported with the client's pid, tid and comm; proxy
//! traffic must not; with `--enforce` nothing reaches the sinks and the clients see EPERM; a
//! client in another cgroup is not reported; after SIGINT (or SIGTERM, or `--duration`)
//! sockstrace exits 0 and no program stays attached (`BPF_PROG_QUERY` on the cgroup).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sockstrace_tests::bpf;
use sockstrace_tests::cgroup::{audit_skip_reason, TestCgroup};
use sockstrace_tests::net::free_port;
use sockstrace_tests::run::{Outcome, Running};
use sockstrace_tests::util::wait_until;
use sockstrace_tests::{direct, netprobe, skip, Direct, DnsSink, Event, TcpSink, Trace, UdpSink};

/// How long sockstrace may take to load and attach its programs.
const ATTACH_PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Cgroups of the tests' own
// ---------------------------------------------------------------------------------------------

/// Runs `argv` as a process sockstrace did not start, placed into `cgroup` before it execs.
fn client_in(cgroup: &Path, argv: &[&str]) -> Direct {
    let procs = cgroup.join("cgroup.procs");
    let mut full = vec![
        "sh".to_string(),
        "-c".into(),
        r#"echo $$ > "$1" && shift && exec "$@""#.into(),
        "sh".into(),
        procs.display().to_string(),
    ];
    full.extend(argv.iter().map(|a| a.to_string()));
    direct(full)
}

/// netprobe with `args`, in `cgroup`.
fn netprobe_in(cgroup: &Path, args: &[&str]) -> Direct {
    let mut argv = vec![netprobe().to_str().expect("utf-8 path")];
    argv.extend(args);
    client_in(cgroup, &argv)
}

// ---------------------------------------------------------------------------------------------
// Running sockstrace audit
// ---------------------------------------------------------------------------------------------

/// A `sockstrace audit --cgroup CG --report FILE [extra]` in the background, attached.
struct Audit {
    running: Running,
    report: PathBuf,
    cgroup: PathBuf,
    _dir: tempfile::TempDir,
}

impl Audit {
    fn start(cgroup: &Path, extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("sockstrace-audit").tempdir().expect("tempdir");
        let report = dir.path().join("audit.jsonl");
        let mut argv = vec![
            "audit".to_string(),
            "--cgroup".into(),
            cgroup.display().to_string(),
            "--report".into(),
            report.display().to_string(),
        ];
        argv.extend(extra.iter().map(|a| a.to_string()));
        let running = Trace::raw(argv).spawn();
        let audit = Audit { running, report, cgroup: cgroup.to_path_buf(), _dir: dir };
        audit.wait_attached();
        audit
    }

    fn wait_attached(&self) {
        let attached = wait_until(ATTACH_PATIENCE, || {
            self.running.stderr().contains("sockstrace: auditing cgroup") || self.exited()
        });
        assert!(attached && !self.exited(), "audit did not attach\n{}", self.running.describe());
    }

    fn exited(&self) -> bool {
        sockstrace_tests::util::process_dead(self.running.pid())
    }

    /// Stops it with `sig`, waits for it, and reads the report.
    fn stop(self, sig: i32) -> Outcome {
        self.running.signal(sig);
        self.finish()
    }

    /// Waits for it to end by itself (`--duration`), and reads the report.
    fn finish(self) -> Outcome {
        let mut out = self.running.wait();
        read_report(&mut out, &self.report);
        assert_nothing_attached(&self.cgroup, &out);
        out
    }
}

/// Fills the outcome's report fields from the report file (`Trace::raw` parses none).
fn read_report(out: &mut Outcome, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    out.read_report(&text);
    out.report_text = Some(text);
}

/// Programs attached directly to the cgroup at `path`, per sockstrace hook (`BPF_PROG_QUERY`).
fn attached_counts(path: &Path) -> Vec<(&'static str, u32)> {
    bpf::CGROUP_ATTACH_TYPES
        .iter()
        .map(|&(name, t)| {
            let count = bpf::attached_count(path, t)
                .unwrap_or_else(|e| panic!("BPF_PROG_QUERY on {}: {e}", path.display()));
            (name, count)
        })
        .collect()
}

fn assert_nothing_attached(cgroup: &Path, out: &Outcome) {
    for (hook, count) in attached_counts(cgroup) {
        assert_eq!(
            count,
            0,
            "a program is still attached to {} ({hook})\n{}",
            cgroup.display(),
            out.describe()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions on audit reports
// ---------------------------------------------------------------------------------------------

/// What one kernel leak event must say.
struct KernelLeak<'a> {
    client: &'a Direct,
    /// Acceptable syscalls.
    syscalls: &'a [&'a str],
    dst: String,
    reason: &'a str,
    protocol: &'a str,
    family: &'a str,
    comm: &'a str,
    /// "blocked" or "logged".
    action: &'a str,
}

impl<'a> KernelLeak<'a> {
    /// netprobe's leak as `client`, handled as `action` ("logged" or "blocked").
    fn netprobe(
        action: &'a str,
        client: &'a Direct,
        syscalls: &'a [&'a str],
        dst: String,
        reason: &'a str,
        protocol: &'a str,
        family: &'a str,
    ) -> Self {
        KernelLeak { client, syscalls, dst, reason, protocol, family, comm: "netprobe", action }
    }
}

/// Asserts that no event of `client` (by pid) is in the report: proxy
/// traffic is no leak, and not reported at all.
fn assert_proxy_traffic_unreported(out: &Outcome, client: &Direct) {
    let proxy_pid = client.actor().0;
    assert!(
        out.events_where(|e| e.i("pid") == Some(proxy_pid)).is_empty(),
        "proxy traffic reported\n{}",
        out.describe()
    );
}

/// Finds the leak event of `spec.client` (by pid) to `spec.dst`, checks its fields and the
/// stderr line for it, and returns it.
fn assert_kernel_leak<'o>(out: &'o Outcome, spec: &KernelLeak) -> &'o Event {
    let d = || format!("client output:\n{}\n{}", spec.client.stdout, out.describe());
    let (pid, tid) = spec.client.actor();
    let ev = out.the_event(&format!("leak by pid {pid} to {}", spec.dst), |e| {
        e.is_leak() && e.i("pid") == Some(pid) && e.s("dst") == spec.dst
    });
    assert_eq!(ev.s("source"), "kernel", "source in {ev}\n{}", d());
    assert!(spec.syscalls.contains(&ev.s("syscall")), "syscall in {ev}\n{}", d());
    assert_eq!(ev.i("tid"), Some(tid), "tid in {ev}\n{}", d());
    assert_eq!(ev.s("comm"), spec.comm, "comm in {ev}\n{}", d());
    assert_eq!(ev.s("reason"), spec.reason, "reason in {ev}\n{}", d());
    assert_eq!(ev.s("protocol"), spec.protocol, "protocol in {ev}\n{}", d());
    assert_eq!(ev.s("family"), spec.family, "family in {ev}\n{}", d());
    assert_eq!(ev.s("action"), spec.action, "action in {ev}\n{}", d());
    if spec.action == "blocked" {
        assert_eq!(ev.i("errno"), Some(i64::from(libc::EPERM)), "errno in {ev}\n{}", d());
    } else {
        assert!(ev.get("errno").is_none(), "errno though not blocked: {ev}\n{}", d());
    }
    assert!(ev.get("cookie").and_then(Value::as_u64).is_some_and(|c| c > 0), "cookie in {ev}\n{}", d());
    let kernel = ev.get("kernel").unwrap_or_else(|| panic!("no kernel object in {ev}\n{}", d()));
    assert_eq!(kernel["uid"], 0, "uid in {ev}\n{}", d());
    assert!(kernel["cgroup_id"].as_u64().is_some_and(|id| id > 1), "cgroup_id in {ev}\n{}", d());
    // The process is often gone by the time /proc is read: then exe is marked missing.
    let missing: Vec<&str> =
        ev.get("missing").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    match ev.get("exe").and_then(Value::as_str) {
        Some(exe) => assert_eq!(Path::new(exe), netprobe().canonicalize().unwrap(), "exe in {ev}\n{}", d()),
        None => assert!(missing.contains(&"exe"), "no exe, and not marked missing: {ev}\n{}", d()),
    }
    out.assert_leak_line(ev);
    ev
}

/// The summary's `by_process` row for `pid`.
fn process_row(out: &Outcome, pid: i64) -> Value {
    let rows = out.summary_obj()["by_process"]["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("summary has no by_process.processes\n{}", out.describe()));
    rows.iter()
        .find(|r| r["pid"].as_i64() == Some(pid))
        .cloned()
        .unwrap_or_else(|| panic!("no by_process row for pid {pid}\n{}", out.describe()))
}

fn assert_clean_exit(out: &Outcome) {
    out.assert_code(0);
    out.assert_report_well_formed();
    let audit = &out.summary_obj()["audit"];
    assert_eq!(audit["detached"], true, "summary: not detached\n{}", out.describe());
    assert!(out.summary_obj()["kernel_lost_events"].is_u64(), "no lost-event count\n{}", out.describe());
    assert!(out.stderr.contains("lost"), "no lost-event line on stderr\n{}", out.describe());
}

fn assert_client_eperm(client: &Direct, op: &str) {
    assert!(
        client.stdout.contains(&format!("{op}: errno=1 (")),
        "client did not see EPERM on {op}\nstdout:\n{}\nstderr:\n{}",
        client.stdout,
        client.stderr
    );
    assert_eq!(client.code, 1, "client status\n{}", client.stdout);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn observes_leaks_of_processes_it_did_not_start() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("audit", "observe");
    let proxy = TcpSink::bind("127.0.0.1");
    let sink4 = TcpSink::bind("127.0.0.2");
    let sink6 = TcpSink::bind("::1");
    let udp = UdpSink::bind("127.0.0.2");
    let dns = DnsSink::bind().ok();
    let audit = Audit::start(cg.path(), &["--proxy", &proxy.addr().to_string()]);
    assert!(
        attached_counts(cg.path()).iter().all(|&(_, n)| n == 1),
        "not every hook attached: {:?}",
        attached_counts(cg.path())
    );

    let tcp4 = netprobe_in(cg.path(), &["tcp-connect", "127.0.0.2", &sink4.port()]);
    let tcp6 = netprobe_in(cg.path(), &["tcp-connect", "::1", &sink6.port()]);
    let datagram = netprobe_in(cg.path(), &["udp-sendto", "127.0.0.2", &udp.port()]);
    let dns_client = dns.as_ref().map(|dns| netprobe_in(cg.path(), &["dns-udp", &dns.host()]));
    let via_proxy = netprobe_in(cg.path(), &["tcp-connect", "127.0.0.1", &proxy.port()]);
    for client in [&tcp4, &tcp6, &datagram, &via_proxy].into_iter().chain(dns_client.as_ref()) {
        assert_eq!(client.code, 0, "observing must not refuse anything\n{}", client.stdout);
    }
    // Observing only: everything arrived.
    assert!(sink4.wait_accepts(1, Duration::from_secs(5)) && sink6.wait_accepts(1, Duration::from_secs(5)));
    assert!(udp.wait_datagrams(1, Duration::from_secs(5)));
    assert!(proxy.wait_accepts(1, Duration::from_secs(5)));

    let out = audit.stop(libc::SIGINT);
    assert_clean_exit(&out);
    let logged = |client, syscalls, dst, reason, protocol, family| {
        KernelLeak::netprobe("logged", client, syscalls, dst, reason, protocol, family)
    };
    assert_kernel_leak(&out, &logged(&tcp4, &["connect"], sink4.dst(), "direct-tcp", "tcp", "inet"));
    assert_kernel_leak(&out, &logged(&tcp6, &["connect"], sink6.dst(), "direct-tcp", "tcp", "inet6"));
    assert_kernel_leak(&out, &logged(&datagram, &["sendmsg"], udp.dst(), "direct-udp", "udp", "inet"));
    match (&dns, &dns_client) {
        (Some(dns), Some(client)) => {
            assert_kernel_leak(&out, &logged(client, &["sendmsg"], dns.dst(), "dns-udp", "udp", "inet"));
        }
        _ => {
            sockstrace_tests::util::skip_note(&format!("part of {}", module_path!()), "no DNS sink (port 53)")
        }
    }
    assert_proxy_traffic_unreported(&out, &via_proxy);
    assert!(
        out.events_where(|e| e.s("dst") == proxy.dst()).is_empty(),
        "proxy traffic reported\n{}",
        out.describe()
    );
    // The summary by process.
    let row = process_row(&out, tcp4.actor().0);
    assert_eq!((row["comm"].as_str(), row["leaks"].as_i64()), (Some("netprobe"), Some(1)), "{row}");
    assert_eq!(row["destinations"][0]["dst"], sink4.dst(), "{row}");
    assert_eq!(row["destinations"][0]["action"], "logged", "{row}");
    assert_eq!(out.summary_count("logged"), out.summary_count("leaks"), "{}", out.describe());
    assert!(out.stderr.contains("leaks by process"), "{}", out.describe());
}

#[test]
fn enforce_refuses_leaks_in_the_kernel() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("audit", "enforce");
    let proxy = TcpSink::bind("127.0.0.1");
    let sink4 = TcpSink::bind("127.0.0.2");
    let sink6 = TcpSink::bind("::1");
    let udp = UdpSink::bind("127.0.0.2");
    let dns = DnsSink::bind().ok();
    let audit = Audit::start(cg.path(), &["--enforce", "--proxy", &proxy.addr().to_string()]);

    let tcp4 = netprobe_in(cg.path(), &["tcp-connect", "127.0.0.2", &sink4.port()]);
    let tcp6 = netprobe_in(cg.path(), &["tcp-connect", "::1", &sink6.port()]);
    let datagram = netprobe_in(cg.path(), &["udp-sendto", "127.0.0.2", &udp.port()]);
    let dns_clients = dns.as_ref().map(|dns| {
        (netprobe_in(cg.path(), &["dns-udp", &dns.host()]), netprobe_in(cg.path(), &["dns-tcp", &dns.host()]))
    });
    let via_proxy = netprobe_in(cg.path(), &["tcp-connect", "127.0.0.1", &proxy.port()]);
    assert_client_eperm(&tcp4, "connect");
    assert_client_eperm(&tcp6, "connect");
    assert_client_eperm(&datagram, "sendto");
    assert_eq!(via_proxy.code, 0, "the proxy must stay reachable\n{}", via_proxy.stdout);
    assert!(proxy.wait_accepts(1, Duration::from_secs(5)), "the proxy saw nothing");
    if let Some((dns_udp, dns_tcp)) = &dns_clients {
        assert_client_eperm(dns_udp, "sendto");
        assert_client_eperm(dns_tcp, "connect");
    }
    sink4.assert_nothing_arrived("enforced TCP v4 leak");
    sink6.assert_nothing_arrived("enforced TCP v6 leak");
    udp.assert_nothing_arrived("enforced UDP leak");
    if let Some(dns) = &dns {
        dns.assert_nothing_arrived("enforced DNS leaks");
    }

    let out = audit.stop(libc::SIGINT);
    assert_clean_exit(&out);
    let blocked = |client, syscalls, dst, reason, protocol, family| {
        KernelLeak::netprobe("blocked", client, syscalls, dst, reason, protocol, family)
    };
    assert_kernel_leak(&out, &blocked(&tcp4, &["connect"], sink4.dst(), "direct-tcp", "tcp", "inet"));
    assert_kernel_leak(&out, &blocked(&tcp6, &["connect"], sink6.dst(), "direct-tcp", "tcp", "inet6"));
    assert_kernel_leak(&out, &blocked(&datagram, &["sendmsg"], udp.dst(), "direct-udp", "udp", "inet"));
    if let (Some(dns), Some((dns_udp, dns_tcp))) = (&dns, &dns_clients) {
        assert_kernel_leak(&out, &blocked(dns_udp, &["sendmsg"], dns.dst(), "dns-udp", "udp", "inet"));
        assert_kernel_leak(&out, &blocked(dns_tcp, &["connect"], dns.dst(), "dns-tcp", "tcp", "inet"));
    }
    assert_proxy_traffic_unreported(&out, &via_proxy);
    assert_eq!(out.summary_count("blocked"), out.summary_count("leaks"), "{}", out.describe());
    assert_eq!(out.summary_obj()["audit"]["enforce"], true, "{}", out.describe());
}

#[test]
fn watches_sub_cgroups_but_not_other_cgroups() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let watched = TestCgroup::new("audit", "watched");
    let below = watched.child("below");
    let other = TestCgroup::new("audit", "other");
    let sink = TcpSink::bind("127.0.0.2");
    let audit = Audit::start(watched.path(), &[]);
    let inside = netprobe_in(&below, &["tcp-connect", "127.0.0.2", &sink.port()]);
    let outside = netprobe_in(other.path(), &["tcp-connect", "127.0.0.2", &sink.port()]);
    assert!(sink.wait_accepts(2, Duration::from_secs(5)), "both clients connect (observing)");
    let out = audit.stop(libc::SIGINT);
    assert_clean_exit(&out);
    let ev = assert_kernel_leak(
        &out,
        &KernelLeak::netprobe("logged", &inside, &["connect"], sink.dst(), "direct-tcp", "tcp", "inet"),
    );
    // The hooks ran for the sub-cgroup: the socket's cgroup is the child's.
    let below_id = std::fs::metadata(&below).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert_eq!(ev["kernel"]["cgroup_id"].as_u64(), Some(below_id), "cgroup_id in {ev}\n{}", out.describe());
    let outside_pid = outside.actor().0;
    assert!(
        out.events_where(|e| e.i("pid") == Some(outside_pid)).is_empty(),
        "a client in another cgroup was reported\n{}",
        out.describe()
    );
    assert_eq!(out.leaks().len(), 1, "{}", out.describe());
}

#[test]
fn attributes_live_processes_from_proc() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    if !Path::new("/bin/bash").exists() {
        skip!("no /bin/bash");
    }
    let cg = TestCgroup::new("audit", "attribution");
    let sink = TcpSink::bind("127.0.0.2");
    let audit = Audit::start(cg.path(), &[]);
    // bash connects itself (/dev/tcp) and then waits for sleep: it lives while sockstrace
    // reads /proc. (`; true` keeps bash from exec'ing the last command.)
    let script =
        format!("echo actor: pid=$$ tid=$$; exec 3<>/dev/tcp/127.0.0.2/{}; sleep 1; true", sink.port());
    let client = client_in(cg.path(), &["/bin/bash", "-c", &script]);
    assert_eq!(client.code, 0, "{}\n{}", client.stdout, client.stderr);
    // This one becomes sleep right after its leak: whatever /proc says by then is not the
    // program that leaked.
    let exec_script =
        format!("echo actor: pid=$$ tid=$$; exec 3<>/dev/tcp/127.0.0.2/{}; exec sleep 1", sink.port());
    let execs = client_in(cg.path(), &["/bin/bash", "-c", &exec_script]);
    assert_eq!(execs.code, 0, "{}\n{}", execs.stdout, execs.stderr);
    let out = audit.stop(libc::SIGINT);
    let exec_pid = execs.actor().0;
    let exec_ev = out.the_event("the exec'ing bash leak", |e| e.is_leak() && e.i("pid") == Some(exec_pid));
    assert_eq!(exec_ev.s("comm"), "bash", "{exec_ev}");
    assert!(
        !exec_ev.s("exe").contains("sleep"),
        "attributed to the program exec'd after the leak: {exec_ev}"
    );
    if exec_ev.get("exe").is_none() {
        let missing = exec_ev.get("missing").and_then(Value::as_array).cloned().unwrap_or_default();
        assert!(missing.contains(&Value::from("exe")) && missing.contains(&Value::from("argv")), "{exec_ev}");
    }
    assert_clean_exit(&out);
    let pid = client.actor().0;
    let ev = out.the_event("the bash leak", |e| e.is_leak() && e.i("pid") == Some(pid));
    assert_eq!(ev.s("comm"), "bash", "{ev}");
    assert_eq!(ev.s("dst"), sink.dst(), "{ev}");
    let bash = Path::new("/bin/bash").canonicalize().unwrap();
    assert_eq!(Path::new(ev.s("exe")).canonicalize().ok(), Some(bash), "exe in {ev}\n{}", out.describe());
    let argv: Vec<&str> =
        ev.get("argv").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(argv.first().copied(), Some("/bin/bash"), "argv in {ev}");
    assert!(argv.contains(&script.as_str()), "argv in {ev}");
    assert_eq!(ev.s("cgroup"), cg.proc_path(), "cgroup in {ev}\n{}", out.describe());
    assert!(ev.get("missing").is_none(), "nothing should be missing: {ev}");
    let row = process_row(&out, pid);
    assert_eq!(row["cgroup"].as_str(), Some(cg.proc_path().as_str()), "{row}");
    assert_eq!(row["exe"].as_str(), Some(ev.s("exe")), "{row}");
}

#[test]
fn duration_and_sigterm_stop_it_cleanly() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("audit", "stop");
    // --duration: it ends by itself, summary last.
    let out = Audit::start(cg.path(), &["--duration", "1"]).finish();
    assert_clean_exit(&out);
    assert_eq!(out.summary_obj()["audit"]["stopped_by"], "--duration elapsed", "{}", out.describe());
    assert_eq!(out.summary_count("leaks"), 0);
    // SIGTERM, as systemd and Kubernetes stop it.
    let out = Audit::start(cg.path(), &["--duration", "600"]).stop(libc::SIGTERM);
    assert_clean_exit(&out);
    assert_eq!(out.summary_obj()["audit"]["stopped_by"], "SIGTERM", "{}", out.describe());
    assert!(out.elapsed < Duration::from_secs(300), "{}", out.describe());
}

#[test]
fn metrics_endpoint_counts_leaks() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("audit", "metrics");
    let sink = TcpSink::bind("127.0.0.2");
    let addr = format!("127.0.0.1:{}", free_port());
    let audit = Audit::start(cg.path(), &["--enforce", "--metrics", &addr]);
    let client = netprobe_in(cg.path(), &["tcp-connect", "127.0.0.2", &sink.port()]);
    assert_client_eperm(&client, "connect");
    let wanted = "sockstrace_events_total{verdict=\"leak\",action=\"blocked\",reason=\"direct-tcp\"} 1";
    let mut last = String::new();
    let seen = wait_until(Duration::from_secs(5), || {
        last = http_get(&addr, "/metrics");
        last.contains(wanted)
    });
    assert!(seen, "metrics without {wanted:?}:\n{last}\n{}", audit.running.describe());
    assert!(last.starts_with("HTTP/1.1 200 OK\r\n"), "{last}");
    assert!(last.contains("\nsockstrace_lost_events_total 0\n"), "{last}");
    assert!(http_get(&addr, "/nothing").starts_with("HTTP/1.1 404"));
    let out = audit.stop(libc::SIGINT);
    assert_clean_exit(&out);
    sink.assert_nothing_arrived("enforced leak");
}

#[test]
fn refuses_a_cgroup_that_does_not_exist() {
    if let Some(why) = audit_skip_reason() {
        skip!("{why}");
    }
    let out = Trace::raw(["audit", "--cgroup", "sockstrace-no-such-cgroup/x", "--duration", "1"]).run();
    out.assert_code(125);
    assert!(out.stderr.contains("no cgroup sockstrace-no-such-cgroup/x"), "{}", out.describe());
    let out = Trace::raw(["audit", "--cgroup", "../etc", "--duration", "1"]).run();
    out.assert_code(125);
    assert!(out.stderr.contains("'..'"), "{}", out.describe());
}

/// One HTTP/1.1 GET over loopback; the whole response ("" on failure).
fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}
