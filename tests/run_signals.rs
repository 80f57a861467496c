//! Signals sent to sockstrace reach the program: SIGTERM and SIGHUP always,
//! SIGINT and SIGQUIT when no terminal delivered them to the program already
//! (tests run without a terminal). sockstrace then exits with the program's
//! status, 128 + the signal.

use std::time::Duration;

use sockstrace_tests::Trace;

fn signalled(sig: i32) {
    let program = ["sh", "-c", "echo started; exec sleep 50"];
    let running = Trace::new().timeout(Duration::from_secs(60)).program(program).spawn();
    assert!(running.wait_stdout("started", Duration::from_secs(20)), "{}", running.describe());
    // The supervisor sets up its signal handling as the program starts.
    std::thread::sleep(Duration::from_millis(300));
    running.signal(sig);
    let out = running.wait();
    out.assert_code(128 + sig);
    // sockstrace itself ran to the end and wrote the program's status: it was
    // the program that the signal ended, not sockstrace.
    let summary = out.summary.as_ref().unwrap_or_else(|| panic!("no summary\n{}", out.describe()));
    assert_eq!(summary["summary"]["exit_status"], 128 + sig, "{}", out.describe());
}

#[test]
fn sigterm_reaches_the_program() {
    signalled(libc::SIGTERM);
}

#[test]
fn sigint_reaches_the_program_without_a_terminal() {
    signalled(libc::SIGINT);
}

#[test]
fn sighup_reaches_the_program() {
    signalled(libc::SIGHUP);
}
