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

/// sockstrace blocks `SIGTTOU` and `SIGTTIN` for itself (the program must not stop it through
/// the terminal: `redteam_r38`); the program starts with the signal mask sockstrace was given,
/// here `SIGUSR2` blocked by its parent and nothing else.
#[test]
fn the_program_starts_with_the_signal_mask_sockstrace_was_given() {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = std::process::Command::new(sockstrace_tests::paths::sockstrace_bin());
    cmd.args(["run", "--kernel", "off", "-q", "--", "grep", "SigBlk", "/proc/self/status"]);
    // SAFETY: between fork and exec only sigemptyset/sigaddset/sigprocmask on a local set.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = cmd.output().expect("run sockstrace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let usr2 = 1u64 << (libc::SIGUSR2 - 1);
    let mask =
        stdout.lines().find_map(|l| l.strip_prefix("SigBlk:")).map(|m| u64::from_str_radix(m.trim(), 16));
    assert_eq!(
        mask,
        Some(Ok(usr2)),
        "the program's mask\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
