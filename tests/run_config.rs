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
