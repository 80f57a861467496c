//! Command-line handling: usage errors exit 2 naming the bad value, runtime
//! failures 125, a missing program 127, a non-executable one 126, the
//! program's own status is passed on, and nothing ever panics (the harness
//! checks stderr for "panicked" on every run).

use std::os::unix::fs::PermissionsExt;

use sockstrace_tests::{Outcome, Trace};

fn raw(args: &[&str]) -> Outcome {
    Trace::raw(args).run()
}

fn assert_usage_error(out: &Outcome, names: &str) {
    out.assert_code(2);
    assert!(out.stderr.contains(names), "stderr should name {names:?}\n{}", out.describe());
}

#[test]
fn unknown_flag() {
    let out = raw(&["run", "--no-such-flag", "--", "/bin/true"]);
    assert_usage_error(&out, "--no-such-flag");
}

#[test]
fn unparseable_allow_values() {
    for bad in ["300.1.2.3", "10.0.0.0/33", "127.0.0.1:99999", "not-an-address", "::1/129"] {
        let out = raw(&["run", "--allow", bad, "--", "/bin/true"]);
        assert_usage_error(&out, bad);
    }
}

#[test]
fn unparseable_proxy_values() {
    for bad in ["not-a-socket-addr", "127.0.0.1", "127.0.0.1:70000", "[::1]"] {
        let out = raw(&["run", "--proxy", bad, "--", "/bin/true"]);
        assert_usage_error(&out, bad);
    }
}

#[test]
fn bad_on_leak_value() {
    let out = raw(&["run", "--on-leak", "bogus", "--", "/bin/true"]);
    assert_usage_error(&out, "bogus");
}

#[test]
fn on_leak_socksify_rejected_cleanly_or_supported() {
    // The first contract rejected socksify "for now" with a clear error; once
    // it is implemented (see run_modes.rs), it must simply work.
    let out = raw(&["run", "--on-leak", "socksify", "--", "/bin/true"]);
    if out.code() != 0 {
        assert!(out.stderr.contains("socksify"), "{}", out.describe());
    }
}

#[test]
fn missing_program() {
    let out = raw(&["run", "--"]);
    out.assert_code(2);
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
    let out = raw(&["run"]);
    out.assert_code(2);
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
}

#[test]
fn program_not_found_exits_127() {
    let out = Trace::new().program(["/nonexistent/sockstrace-test-program"]).run();
    out.assert_code(127);
    assert!(out.stderr.contains("/nonexistent/sockstrace-test-program"), "{}", out.describe());
}

#[test]
fn program_not_executable_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("not-executable");
    std::fs::write(&prog, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Trace::new().program([&prog]).run();
    out.assert_code(126);
    assert!(out.stderr.contains("not-executable"), "{}", out.describe());
}

#[test]
fn unwritable_report_path_exits_125() {
    let out = raw(&["run", "--report", "/proc/nonexistent/x", "--", "/bin/true"]);
    out.assert_code(125);
    assert!(out.stderr.contains("/proc/nonexistent/x"), "{}", out.describe());
}

#[test]
fn exit_status_is_the_programs() {
    let out = Trace::new().program(["/bin/sh", "-c", "exit 7"]).run();
    out.assert_code(7);
    out.assert_report_well_formed();
    out.assert_no_leaks();
    let out = Trace::new().program(["/bin/sh", "-c", "kill -TERM $$"]).run();
    out.assert_code(128 + 15);
}

#[test]
fn report_to_stdout_ends_with_summary() {
    let out = Trace::new().report_stdout().program(["/bin/true"]).run();
    out.assert_code(0);
    assert!(out.summary.is_some(), "no summary on stdout\n{}", out.describe());
    out.assert_report_well_formed();
    out.assert_no_leaks();
}
