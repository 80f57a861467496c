//! Running one measured command: a watchdog against hangs, the client's own timing, and the
//! supervisor's peak memory.

use std::{
    fs,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
    os::unix::io::AsRawFd as _,
    process::{Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

/// A measured run longer than this is killed and counted as a failure.
const TIMEOUT: Duration = Duration::from_secs(300);

/// What a finished run produced, and its wall time (spawn to exit).
pub struct Finished {
    pub output: Output,
    pub wall: Duration,
}

/// Runs `command` with captured output; fails if it cannot start, hangs, or exits unsuccessfully.
pub fn run(command: &mut Command) -> Result<Finished> {
    let shown = cmd::display(command);
    let start = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{shown}`"))?;
    let pidfd = pidfd_open(child.id())?;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let timed_out = finished.recv_timeout(TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout);
        if timed_out {
            pidfd_kill(&pidfd);
        }
        timed_out
    });
    let output = child.wait_with_output().with_context(|| format!("waiting for `{shown}`"));
    let wall = start.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let output = output?;
    if timed_out {
        bail!("`{shown}` ran longer than {} s and was killed", TIMEOUT.as_secs());
    }
    if !output.status.success() {
        bail!("`{shown}` failed: {}{}", output.status, stderr_tail(&output.stderr));
    }
    Ok(Finished { output, wall })
}

/// A failed command's standard error, on its own lines after the message (nothing if empty).
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!("\n{text}")
    }
}

/// `pidfd_open(pid)`: a handle that stays on this process even after its pid is reused.
fn pidfd_open(pid: u32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("pidfd_open");
    }
    // SAFETY: the kernel just gave us this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, 0usize, 0u32);
    }
}

/// The `elapsed_ns N` line of the bench client's output, as a duration.
pub fn client_elapsed(stdout: &[u8]) -> Result<Duration> {
    let text = String::from_utf8_lossy(stdout);
    let ns = text
        .lines()
        .find_map(|line| line.strip_prefix("elapsed_ns "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .with_context(|| format!("the bench client printed no `elapsed_ns N` line: {text:?}"))?;
    Ok(Duration::from_nanos(ns))
}

/// Runs `command` (a `sockstrace run`) while sampling its `VmHWM` every few milliseconds; returns
/// the last value seen (the high-water mark only grows), in KiB.
pub fn peak_rss_kib(command: &mut Command) -> Result<u64> {
    let shown = cmd::display(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{shown}`"))?;
    let status_path = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + TIMEOUT;
    let mut peak = 0;
    while child.try_wait()?.is_none() {
        if let Some(kib) = fs::read_to_string(&status_path).ok().as_deref().and_then(vm_hwm_kib) {
            peak = peak.max(kib);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        thread::sleep(Duration::from_millis(2));
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("`{shown}` failed: {}{}", output.status, stderr_tail(&output.stderr));
    }
    if peak == 0 {
        bail!("never read VmHWM from {status_path}");
    }
    Ok(peak)
}

/// `VmHWM:   1234 kB` from /proc/PID/status.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_client_timing() {
        let out = b"ops 20000\nelapsed_ns 1178952053\n";
        assert_eq!(client_elapsed(out).unwrap(), Duration::from_nanos(1_178_952_053));
        assert!(client_elapsed(b"ops 3\n").is_err());
    }

    #[test]
    fn reads_the_high_water_mark() {
        let status = "Name:\tsockstrace\nVmPeak:\t  99999 kB\nVmHWM:\t    8120 kB\nVmRSS:\t 7000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(8120));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
    }
}
