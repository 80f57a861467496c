//! Running one measured command: a watchdog against hangs, the client's own timing, and the
//! supervisor's peak memory.

use std::{
    ffi::{CString, OsStr},
    fs::{self, File},
    io::Read as _,
    os::fd::{BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    os::unix::{ffi::OsStrExt as _, io::AsRawFd as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
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

/// Like [`run`], for a program born in the cgroup `cgroup` (an open cgroup v2 directory):
/// `clone3(CLONE_INTO_CGROUP)` instead of a move into it after fork, which would add the
/// cgroup migration's wait (an RCU grace period, 8 to 30 ms here when the machine has made no
/// migration for a while) to the measured time. Takes `command`'s program and arguments only:
/// the environment is ours, stdin `/dev/null`, stdout and stderr captured.
pub fn run_in_cgroup(command: &Command, cgroup: BorrowedFd<'_>) -> Result<Finished> {
    let shown = cmd::display(command);
    let program = find_program(command.get_program())
        .with_context(|| format!("`{}` not found in PATH", command.get_program().to_string_lossy()))?;
    let c_string = |s: &OsStr| CString::new(s.as_bytes()).context("a NUL byte in an argument");
    let path = c_string(program.as_os_str())?;
    let args = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(c_string)
        .collect::<Result<Vec<_>>>()?;
    let env = std::env::vars_os()
        .map(|(key, value)| {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).context("a NUL byte in the environment")
        })
        .collect::<Result<Vec<_>>>()?;
    let argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    let null = File::open("/dev/null").context("opening /dev/null")?;
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;

    let start = Instant::now();
    let mut pidfd: RawFd = -1;
    let clone_args = CloneArgs {
        flags: CLONE_INTO_CGROUP | libc::CLONE_PIDFD as u64,
        pidfd: (&raw mut pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM forks: the child has a copy of our memory, where `argv`,
    // `envp`, `path` and the descriptors are ready. It only makes async-signal-safe calls
    // (dup2, signal, execve, _exit) before it execs or exits.
    let pid = unsafe {
        let pid = libc::syscall(libc::SYS_clone3, &raw const clone_args, std::mem::size_of::<CloneArgs>());
        if pid == 0 {
            if libc::dup2(null.as_raw_fd(), 0) < 0
                || libc::dup2(out_write.as_raw_fd(), 1) < 0
                || libc::dup2(err_write.as_raw_fd(), 2) < 0
            {
                libc::_exit(126);
            }
            // As std's spawn does: Rust ignores SIGPIPE, and an ignored signal stays ignored
            // across exec.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        pid
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("clone3(CLONE_INTO_CGROUP)");
    }
    let pid = pid as libc::pid_t;
    // SAFETY: the kernel gave us this pidfd (CLONE_PIDFD); nobody else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((out_write, err_write, null));
    let read_all = |mut pipe: File| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (stdout, stderr) = (read_all(File::from(out_read)), read_all(File::from(err_read)));
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = {
        let pidfd = pidfd.try_clone().context("duplicating the pidfd")?;
        thread::spawn(move || {
            let timed_out = finished.recv_timeout(TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout);
            if timed_out {
                pidfd_kill(&pidfd);
            }
            timed_out
        })
    };
    let status = wait_pid(pid);
    let wall = start.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = status.with_context(|| format!("waiting for `{shown}`"))?;
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if timed_out {
        bail!("`{shown}` ran longer than {} s and was killed", TIMEOUT.as_secs());
    }
    if !output.status.success() {
        bail!("`{shown}` failed: {}{}", output.status, stderr_tail(&output.stderr));
    }
    Ok(Finished { output, wall })
}

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `linux/sched.h`, up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: the kernel just gave us both; nobody else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits for our child `pid` to exit.
fn wait_pid(pid: libc::pid_t) -> std::io::Result<ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a live local.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(ExitStatus::from_raw(status));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `program` itself if it has a slash, else the first executable of that name in `PATH`.
fn find_program(program: &OsStr) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
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

/// The bare user-notification round trip, from `bench_client notify-floor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotifyFloor {
    /// Microseconds per trapped call answered at once.
    pub us_per_call: f64,
    /// Whether the kernel took `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`.
    pub sync_wake_up: bool,
}

/// Parses `bench_client notify-floor` output (`ops`, `elapsed_ns`, `sync_wake_up` lines).
pub fn notify_floor(stdout: &[u8]) -> Result<NotifyFloor> {
    let text = String::from_utf8_lossy(stdout);
    let field = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("the bench client printed no `{name} N` line: {text:?}"))
    };
    let ops = field("ops")?;
    if ops == 0 {
        bail!("the bench client counted no calls: {text:?}");
    }
    Ok(NotifyFloor {
        us_per_call: field("elapsed_ns")? as f64 / 1e3 / ops as f64,
        sync_wake_up: field("sync_wake_up")? == 1,
    })
}

/// A 1-thread storm with its call trapped and answered by a bare supervisor (`bench_client
/// notify-connect` for the connect storm, `notify-udp` for the UDP storm), beside the native
/// storm measured in the same rounds: microseconds per call (a connect cycle, a datagram),
/// medians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormFloors {
    pub native_us: f64,
    /// Answered CONTINUE at once: the program's thread runs the call.
    pub continue_us: f64,
    /// Performed by the supervisor on its copy of the socket (address read, socket taken,
    /// call checked pending, the call, close, answer): the least a design that runs allowed
    /// calls itself does.
    pub perform_us: f64,
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
    fn reads_the_notify_floor() {
        let floor = notify_floor(b"ops 20000\nelapsed_ns 86000000\nsync_wake_up 1\n").unwrap();
        assert_eq!(floor, NotifyFloor { us_per_call: 4.3, sync_wake_up: true });
        assert!(!notify_floor(b"ops 2\nelapsed_ns 10\nsync_wake_up 0\n").unwrap().sync_wake_up);
        assert!(notify_floor(b"ops 0\nelapsed_ns 10\nsync_wake_up 1\n").is_err());
        assert!(notify_floor(b"ops 20000\nelapsed_ns 86000000\n").is_err());
    }

    #[test]
    fn reads_the_high_water_mark() {
        let status = "Name:\tsockstrace\nVmPeak:\t  99999 kB\nVmHWM:\t    8120 kB\nVmRSS:\t 7000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(8120));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
    }
}
