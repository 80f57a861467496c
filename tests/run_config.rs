//! The newcomer's surface: configuration precedence (flags, then
//! SOCKSTRACE_* variables, then the file), --fail-on-leak, and
//! `sockstrace report` on a recorded report file.

use std::path::Path;
use std::time::Duration;

use sockstrace_tests::{TcpSink, Trace};

const T: Duration = Duration::from_secs(30);

/// Runs a direct TCP connect to `sink` under `trace`; whether it arrived.
fn connect_arrives(trace: Trace, sink: &TcpSink) -> (bool, sockstrace_tests::Outcome) {
    let out = trace.netprobe(["tcp-connect", &sink.host(), &sink.port()]).run();
    let arrived = sink.wait_accepts(1, Duration::from_secs(2));
    (arrived, out)
}

fn config_file(dir: &Path, body: &str) -> String {
    let path = dir.join("sockstrace.toml");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), "on-leak = \"log\"\n");

    let sink = TcpSink::bind("127.0.0.2");
    let (arrived, out) = connect_arrives(Trace::new().opts(["--config", &file]), &sink);
    assert!(arrived, "the file's on-leak = log lets the leak through\n{}", out.describe());
    assert_eq!(out.leaks()[0].s("action"), "logged", "{}", out.describe());

    let sink = TcpSink::bind("127.0.0.2");
    let trace = Trace::new().opts(["--config", &file]).env("SOCKSTRACE_ON_LEAK", "block");
    let (arrived, out) = connect_arrives(trace, &sink);
    assert!(!arrived, "SOCKSTRACE_ON_LEAK=block wins over the file\n{}", out.describe());
    assert_eq!(out.leaks()[0].s("action"), "blocked", "{}", out.describe());

    let sink = TcpSink::bind("127.0.0.2");
    let trace = Trace::new().opts(["--config", &file, "--on-leak", "log"]).env("SOCKSTRACE_ON_LEAK", "block");
    let (arrived, out) = connect_arrives(trace, &sink);
    assert!(arrived, "--on-leak log wins over the environment\n{}", out.describe());
}

#[test]
fn a_bad_config_file_is_a_usage_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), "on-leek = \"log\"\n");
    let out = Trace::new().opts(["--config", &file]).program(["true"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("on-leek"), "{}", out.describe());
}

#[test]
fn fail_on_leak_exits_3_only_when_something_leaked() {
    let sink = TcpSink::bind("127.0.0.2");
    let out =
        Trace::new().opts(["--fail-on-leak"]).netprobe(["tcp-connect", &sink.host(), &sink.port()]).run();
    out.assert_code(3);
    assert!(out.stderr.contains("--fail-on-leak"), "{}", out.describe());
    let clean = Trace::new().opts(["--fail-on-leak"]).program(["true"]).run();
    clean.assert_code(0);
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/recorded-report.jsonl").to_str().unwrap().to_owned()
}

#[test]
fn report_summarizes_a_recorded_file() {
    let out = Trace::raw(["report", &fixture()]).timeout(T).run();
    out.assert_code(0);
    let text = &out.stdout;
    assert!(text.contains("2 LEAK(S) in 8 event(s)"), "{text}");
    let row = text.lines().find(|l| l.starts_with("127.0.0.3:8000")).unwrap_or_else(|| panic!("{text}"));
    for cell in ["tcp", "direct-tcp", "leak", "logged", "curl[353]"] {
        assert!(row.contains(cell), "{cell} missing in {row:?}");
    }
    let dns = text.lines().find(|l| l.starts_with("127.0.0.5:53")).unwrap_or_else(|| panic!("{text}"));
    assert!(dns.contains("dns-udp") && dns.contains("python3[354]"), "{dns:?}");
    assert!(out.stderr.contains(":8: skipped"), "the stray line is named\n{}", out.describe());
}

#[test]
fn report_html_is_self_contained_and_escapes_what_programs_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let out = Trace::raw(["report", &fixture(), "--html", page.to_str().unwrap()]).timeout(T).run();
    out.assert_code(0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the hostile comm is escaped");
    assert!(!html.contains("<script"), "no script element at all");
    assert!(!html.contains(" src=") && !html.contains("<link"), "no outside resources");
    assert!(html.contains("127.0.0.3:8000") && html.contains("direct-tcp"), "the leak is on the page");
}

/// `XDG_CONFIG_HOME=DIR`, without `SOCKSTRACE_CONFIG`: the default file is
/// `DIR/sockstrace/sockstrace.toml`.
fn with_config_home(trace: Trace, home: &Path) -> Trace {
    trace.env("XDG_CONFIG_HOME", home).env_remove("SOCKSTRACE_CONFIG")
}

fn default_file(home: &Path, body: &str) -> String {
    let dir = home.join("sockstrace");
    std::fs::create_dir_all(&dir).unwrap();
    config_file(&dir, body)
}

#[test]
fn run_finds_the_default_file_and_names_it() {
    let home = tempfile::tempdir().unwrap();
    let file = default_file(home.path(), "on-leak = \"log\"\n");
    let sink = TcpSink::bind("127.0.0.2");
    let (arrived, out) = connect_arrives(with_config_home(Trace::new(), home.path()), &sink);
    assert!(arrived, "the default file's on-leak = log lets the leak through\n{}", out.describe());
    assert_eq!(out.leaks()[0].s("action"), "logged", "{}", out.describe());
    assert!(out.stderr.contains(&format!("sockstrace: configuration from {file}")), "{}", out.describe());
    assert_eq!(out.summary_obj()["config"], file.as_str(), "{}", out.describe());
}

#[test]
fn without_a_file_the_summary_names_none() {
    if Path::new("/etc/sockstrace/sockstrace.toml").exists() && sockstrace_tests::is_root() {
        sockstrace_tests::skip!("this machine has /etc/sockstrace/sockstrace.toml");
    }
    let home = tempfile::tempdir().unwrap();
    let out = with_config_home(Trace::new(), home.path()).program(["true"]).run();
    out.assert_code(0);
    let config = out.summary_obj().get("config");
    assert!(config.is_some_and(serde_json::Value::is_null), "config: null\n{}", out.describe());
    assert!(!out.stderr.contains("configuration from"), "{}", out.describe());
}

/// The last JSON line of `audit --report -` (its summary).
fn audit_summary(out: &sockstrace_tests::Outcome) -> serde_json::Value {
    let last =
        out.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("{}", out.describe()));
    let line: serde_json::Value = serde_json::from_str(last).unwrap();
    line["summary"].clone()
}

#[test]
fn audit_reads_the_same_default_file() {
    if !sockstrace_tests::is_root() {
        sockstrace_tests::skip!("audit needs root");
    }
    let Some(mount) = sockstrace_tests::util::cgroup2_mount() else {
        sockstrace_tests::skip!("no cgroup2 mount");
    };
    let cgroup = mount.join(format!("sockstrace-config-test-{}", std::process::id()));
    std::fs::create_dir(&cgroup).unwrap();
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _remove = Remove(cgroup.clone());
    let home = tempfile::tempdir().unwrap();
    // Keys of run (on-leak) and of audit (cgroup) in one file: each reads its own.
    let body =
        format!("proxy = [\"127.0.0.1:1081\"]\non-leak = \"log\"\ncgroup = \"{}\"\n", cgroup.display());
    let file = default_file(home.path(), &body);

    let audit = |extra: &[&str]| {
        let mut argv = vec!["audit", "--duration", "1", "--report", "-"];
        argv.extend_from_slice(extra);
        with_config_home(Trace::raw(argv), home.path()).timeout(T).run()
    };
    let out = audit(&[]);
    out.assert_code(0);
    let start = out
        .stderr
        .lines()
        .find(|l| l.contains("auditing cgroup"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(start.contains("proxies 127.0.0.1:1081"), "the file's proxy: {start}\n{}", out.describe());
    assert!(start.contains(&cgroup.display().to_string()), "the file's cgroup: {start}");
    assert!(out.stderr.contains(&format!("sockstrace: configuration from {file}")), "{}", out.describe());
    assert_eq!(audit_summary(&out)["config"], file.as_str(), "{}", out.describe());

    // Flags still win over the file.
    let out = audit(&["--proxy", "127.0.0.1:1082"]);
    out.assert_code(0);
    let start = out
        .stderr
        .lines()
        .find(|l| l.contains("auditing cgroup"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(start.contains("proxies 127.0.0.1:1082") && !start.contains("1081"), "{start}");
}
