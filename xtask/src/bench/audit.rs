//! The `audit` column: `sockstrace audit` watching a cgroup of the bench's own, with the measured
//! workload placed in it; and the leak flood, which counts what audit reports and loses.
//!
//! Each measurement starts its own audit (and waits until the programs are attached: the
//! "auditing cgroup" line), runs the workload in the cgroup and stops audit with SIGINT, as a
//! service manager would; audit's own start and stop are not in the measured time. The workload
//! is born in the cgroup (`clone3(CLONE_INTO_CGROUP)`, see `measure::run_in_cgroup`): moving it
//! in after fork would add the migration's wait, not audit's cost, to the whole-command times.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read},
    os::fd::{AsFd as _, BorrowedFd},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::{fixture, measure};

/// How long audit may take to load and attach its programs.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// How long audit may take, once interrupted, to drain and report what it saw.
const STOP_PATIENCE: Duration = Duration::from_secs(120);

/// A cgroup v2 of the bench's own (`<cgroup2>/sockstrace-bench-<pid>`), removed on drop.
pub struct BenchCgroup {
    path: PathBuf,
    /// The cgroup's directory, open: where `clone3(CLONE_INTO_CGROUP)` puts a new process.
    dir: File,
}

impl BenchCgroup {
    /// Creates the cgroup under the cgroup2 mount found in `/proc/self/mountinfo`. Needs root.
    pub fn create() -> Result<Self> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!("not root (audit loads eBPF programs)");
        }
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        let root = cgroup2_mount(&mountinfo).context("no cgroup2 mount in /proc/self/mountinfo")?;
        let path = root.join(format!("sockstrace-bench-{}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating cgroup {}", path.display()))?;
        let dir = match File::open(&path) {
            Ok(dir) => dir,
            Err(err) => {
                let _ = std::fs::remove_dir(&path);
                return Err(err).with_context(|| format!("opening {}", path.display()));
            }
        };
        Ok(Self { path, dir })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open cgroup directory, for `measure::run_in_cgroup`.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

impl Drop for BenchCgroup {
    /// Removes the cgroup, waiting briefly for exiting processes to leave it.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(err) if Instant::now() >= deadline => {
                    eprintln!("bench: warning: could not remove cgroup {}: {err}", self.path.display());
                    return;
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// The mount point of the cgroup2 hierarchy's root in `mountinfo` (the first one mounted at
/// its root, else the first one at all).
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mounts: Vec<(String, String)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            if after.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = before.split_whitespace().collect();
            Some((unescape(fields.get(3)?), unescape(fields.get(4)?)))
        })
        .collect();
    let (_, point) = mounts.iter().find(|(root, _)| root == "/").or_else(|| mounts.first())?;
    Some(PathBuf::from(point))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(digits) if bytes[i] == b'\\' => {
                out.push(digits.iter().fold(0u8, |n, d| n.wrapping_mul(8).wrapping_add(d - b'0')));
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What one audit run reported (from its JSON Lines report on stdout and its stderr).
#[derive(Debug, Default)]
pub struct AuditOutcome {
    /// Event lines of the report.
    pub events: u64,
    /// The summary's leak count.
    pub leaks: u64,
    /// The summary's `kernel_lost_events`.
    pub lost: u64,
    /// The first event line, for the error message.
    pub first_event: Option<String>,
    /// Lines the eBPF programs logged (`sockstrace: kernel: ...`).
    pub kernel_lines: Vec<String>,
    pub seconds: f64,
}

/// A running `sockstrace audit`.
pub struct Audit {
    child: Child,
    stdout: Option<JoinHandle<AuditOutcome>>,
    stderr: Option<JoinHandle<Vec<String>>>,
    started: Instant,
}

impl Audit {
    /// Starts `sockstrace audit --cgroup <cgroup> <policy...> --report -` and waits until its
    /// programs are attached.
    pub fn start(sockstrace: &Path, cgroup: &BenchCgroup, policy: &[String]) -> Result<Self> {
        let mut command = Command::new(sockstrace);
        command.arg("audit").arg("--cgroup").arg(cgroup.path()).args(policy).args(["--report", "-"]);
        let shown = crate::cmd::display(&command);
        let mut child = fixture::die_with_parent(&mut command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{shown}`"))?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().context("audit's stderr")?;
        let stdout = child.stdout.take().context("audit's stdout")?;
        let mut audit = Self {
            child,
            stdout: Some(thread::spawn(move || read_report(stdout))),
            stderr: Some(thread::spawn(move || read_stderr(stderr, ready_tx))),
            started: Instant::now(),
        };
        if ready_rx.recv_timeout(START_PATIENCE).is_err() {
            let _ = audit.child.kill();
            let _ = audit.child.wait();
            let lines = audit.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
            bail!("`{shown}` did not start auditing: {}", lines.join("\n"));
        }
        audit.started = Instant::now();
        Ok(audit)
    }

    /// Stops audit with SIGINT and returns what it reported; fails if it does not exit cleanly.
    /// The audit process's pid (alive until `stop`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) -> Result<AuditOutcome> {
        let seconds = self.started.elapsed().as_secs_f64();
        // SAFETY: kill with our own child's pid (not reaped yet, so not reused) and a signal.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + STOP_PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("sockstrace audit did not stop within {} s of SIGINT", STOP_PATIENCE.as_secs());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let mut outcome = self.stdout.take().and_then(|t| t.join().ok()).unwrap_or_default();
        if !status.success() {
            bail!("sockstrace audit failed: {status}\n{}", stderr.join("\n"));
        }
        outcome.kernel_lines = stderr.into_iter().filter(|l| l.starts_with("sockstrace: kernel: ")).collect();
        outcome.seconds = seconds;
        Ok(outcome)
    }
}

impl Drop for Audit {
    /// An audit not stopped (a failed measurement): killed; the kernel detaches its programs
    /// when its descriptors close.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Counts the report's event lines and reads its summary (the last line).
fn read_report(stdout: impl Read) -> AuditOutcome {
    let mut outcome = AuditOutcome::default();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let summary = line
            .contains("\"summary\"")
            .then(|| serde_json::from_str::<serde_json::Value>(&line).ok())
            .flatten()
            .and_then(|json| json.get("summary").cloned());
        match summary {
            Some(summary) => {
                outcome.leaks = summary["leaks"].as_u64().unwrap_or(0);
                outcome.lost = summary["kernel_lost_events"].as_u64().unwrap_or(0);
            }
            None => {
                outcome.events += 1;
                if outcome.first_event.is_none() {
                    outcome.first_event = Some(line);
                }
            }
        }
    }
    outcome
}

/// Says when audit is attached; keeps stderr but the human leak lines (a flood has thousands).
fn read_stderr(stderr: impl Read, ready: mpsc::Sender<()>) -> Vec<String> {
    let mut kept = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.starts_with("sockstrace: auditing cgroup") {
            let _ = ready.send(());
        }
        if !line.contains(" LEAK ") && kept.len() < 200 {
            kept.push(line);
        }
    }
    kept
}

/// The leak flood's numbers.
#[derive(Debug)]
pub struct Flood {
    pub sent: u64,
    /// The client's sending time.
    pub seconds: f64,
    pub reported: u64,
    pub lost: u64,
    /// Event lines in the report (equal to `reported` when all is well).
    pub events: u64,
    pub kernel_lines: Vec<String>,
}

/// `count` UDP datagrams at `rate` a second to `127.0.0.1:port`, which audit's default policy
/// (Tor's ports as proxies, nothing allowed) judges leaks, from a process in `cgroup`.
pub fn leak_flood(
    sockstrace: &Path,
    cgroup: &BenchCgroup,
    client: &Path,
    port: u16,
    count: u64,
    rate: u64,
) -> Result<Flood> {
    let audit = Audit::start(sockstrace, cgroup, &[])?;
    let mut command = Command::new(client);
    command.args(["udp", "127.0.0.1", &port.to_string(), &count.to_string(), &rate.to_string()]);
    let finished = measure::run_in_cgroup(&command, cgroup.dir())?;
    let seconds = measure::client_elapsed(&finished.output.stdout)?.as_secs_f64();
    let sent = String::from_utf8_lossy(&finished.output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("ops ")?.trim().parse().ok())
        .context("the bench client printed no `ops N` line")?;
    let outcome = audit.stop()?;
    Ok(Flood {
        sent,
        seconds,
        reported: outcome.leaks,
        lost: outcome.lost,
        events: outcome.events,
        kernel_lines: outcome.kernel_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_root_mount() {
        let hybrid = "25 1 0:23 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let bind_first = "30 1 0:24 /sub /mnt/sub rw - cgroup2 cgroup2 rw\n\
                          31 1 0:24 / /mnt/my\\040cgroup rw shared:5 - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(bind_first), Some(PathBuf::from("/mnt/my cgroup")));
        assert_eq!(cgroup2_mount("22 1 0:5 / /proc rw - proc proc rw\n"), None);
    }

    #[test]
    fn runs_a_program_born_in_the_cgroup() {
        let cgroup = match BenchCgroup::create() {
            Ok(cgroup) => cgroup,
            Err(why) => return eprintln!("skipped: {why:#}"),
        };
        let mut command = Command::new("cat");
        command.arg("/proc/self/cgroup");
        let finished = measure::run_in_cgroup(&command, cgroup.dir()).unwrap();
        let out = String::from_utf8_lossy(&finished.output.stdout).into_owned();
        let name = cgroup.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(out.lines().any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}"))), "{out}");
        match measure::run_in_cgroup(&Command::new("false"), cgroup.dir()) {
            Err(err) => assert!(format!("{err:#}").contains("exit status: 1"), "{err:#}"),
            Ok(_) => panic!("`false` succeeded"),
        }
        let path = cgroup.path().to_path_buf();
        drop(cgroup);
        assert!(!path.exists(), "the cgroup is removed");
    }
}
