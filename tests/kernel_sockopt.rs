//! The kernel layer's setsockopt hook (`cgroup/setsockopt`, root): the options that move a
//! packet's first hop are refused in the kernel too, whatever path the call takes, even with
//! the syscall layer's own refusal switched off (`SOCKSTRACE_TEST_DISABLE=options`, debug
//! builds); ordinary options are untouched. io_uring's setsockopt, which never passes seccomp,
//! is in `redteam_fresh.rs` (`io_uring_setsockopt_does_not_join_a_multicast_group`).
//!
//! The client is `tests/clients/kopt_setsockopt.c`.

use sockstrace_tests::{client, kernel_available, skip, Outcome, Trace};

fn run(trace: Trace, mode: &str) -> Outcome {
    let c = client("kopt_setsockopt");
    trace.program([c.to_str().unwrap(), mode]).run()
}

fn debug_build_or_skip() -> bool {
    !sockstrace_tests::sockstrace_bin().components().any(|c| c.as_os_str() == "release")
}

/// The kernel's `routing-option` event for `option`: from the kernel layer, for a
/// `setsockopt`, with the action given.
fn assert_kernel_event(out: &Outcome, option: &str, action: &str) {
    let d = out.describe();
    let ev = out.the_event(option, |e| e.s("reason") == "routing-option" && e.s("option") == option);
    assert_eq!(
        (ev.s("source"), ev.s("syscall"), ev.s("verdict")),
        ("kernel", "setsockopt", "leak"),
        "{ev}\n{d}"
    );
    assert_eq!(ev.s("action"), action, "{ev}\n{d}");
    assert_eq!(ev.s("family"), "inet", "{ev}\n{d}");
    assert!(ev.i("pid").is_some_and(|p| p > 0), "no pid: {ev}\n{d}");
    assert_eq!(ev.s("comm"), "kopt_setsockopt", "{ev}\n{d}");
}

#[test]
fn a_plain_routing_option_is_refused_by_the_kernel_layer_without_the_syscall_layer() {
    if !debug_build_or_skip() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    // Baseline: with neither the syscall layer's check nor the kernel layer, both options
    // are set (the program runs as root), so this test can fail.
    let base =
        run(Trace::new().opts(["--kernel", "off"]).env("SOCKSTRACE_TEST_DISABLE", "options"), "routing");
    assert!(
        base.stdout.contains("SO_MARK: ok") && base.stdout.contains("SO_BINDTODEVICE: ok"),
        "baseline: the options should be set without either layer\n{}",
        base.describe()
    );
    base.assert_code(0);
    let out = run(Trace::new().env("SOCKSTRACE_TEST_DISABLE", "options"), "routing");
    out.assert_report_well_formed();
    assert!(out.kernel_layer().starts_with("on (enforcing"), "{}", out.describe());
    assert!(
        out.stdout.contains("SO_MARK: errno=1"),
        "SO_MARK was not refused with EPERM\n{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("SO_BINDTODEVICE: errno=1"),
        "SO_BINDTODEVICE was not refused with EPERM\n{}",
        out.describe()
    );
    assert_kernel_event(&out, "SO_MARK", "blocked");
    assert_kernel_event(&out, "SO_BINDTODEVICE", "blocked");
    assert!(out.events_where(|e| e.s("source") == "seccomp" && e.s("reason") == "routing-option").is_empty());
}

/// `--on-leak log`: the kernel layer observes; the option is set and reported once (the
/// syscall layer's check switched off, only the kernel's event names it).
#[test]
fn observing_kernel_layer_reports_the_option_and_lets_it_through() {
    if !debug_build_or_skip() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let out = run(Trace::new().on_leak("log").env("SOCKSTRACE_TEST_DISABLE", "options"), "routing");
    out.assert_code(0);
    assert!(out.kernel_layer().starts_with("on (observing"), "{}", out.describe());
    assert_kernel_event(&out, "SO_MARK", "logged");
    assert_kernel_event(&out, "SO_BINDTODEVICE", "logged");
}

/// `--on-leak log` with both layers: the syscall layer reports the option and lets the kernel
/// apply it; the observing kernel layer sees the same call, and the report has it once.
#[test]
fn a_logged_option_is_reported_once_with_both_layers() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let out = run(Trace::new().on_leak("log"), "routing");
    out.assert_code(0);
    for option in ["SO_MARK", "SO_BINDTODEVICE"] {
        let ev = out.the_event(option, |e| e.s("reason") == "routing-option" && e.s("option") == option);
        assert_eq!((ev.s("source"), ev.s("action")), ("seccomp", "logged"), "{ev}\n{}", out.describe());
    }
}

#[test]
fn ordinary_options_work_under_the_kernel_layer() {
    if let Err(e) = kernel_available() {
        skip!("{e}");
    }
    let out = run(Trace::new(), "ordinary");
    assert!(out.kernel_layer().starts_with("on (enforcing"), "{}", out.describe());
    for option in ["SO_REUSEADDR", "TCP_NODELAY", "IP_TTL"] {
        assert!(out.stdout.contains(&format!("{option}: ok")), "{option} failed\n{}", out.describe());
    }
    out.assert_code(0);
    out.assert_report_well_formed();
    out.assert_no_leaks();
}
