//! Running `sockstrace` with a timeout and collecting what it produced.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::paths::{netprobe, sockstrace_bin};
use crate::report::Event;

/// Default limit for one sockstrace run; a run that takes longer is killed
/// and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

enum Report {
    /// `--report DIR/report.jsonl`, parsed after the run.
    File,
    /// `--report -`: JSON lines are picked out of stdout.
    Stdout,
    /// No `--report` option.
    None,
}

/// A sockstrace invocation, built up and then [`Trace::run`].
pub struct Trace {
    wrapper: Vec<OsString>,
    bin: PathBuf,
    raw: Option<Vec<OsString>>,
    opts: Vec<OsString>,
    program: Vec<OsString>,
    report: Report,
    timeout: Duration,
    envs: Vec<(OsString, Option<OsString>)>,
    dir: tempfile::TempDir,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    /// `sockstrace run --report DIR/report.jsonl [opts] -- PROGRAM...`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("sockstrace-run").tempdir().expect("tempdir");
        Trace {
            wrapper: Vec::new(),
            bin: sockstrace_bin().to_path_buf(),
            raw: None,
            opts: Vec::new(),
            program: Vec::new(),
            report: Report::File,
            timeout: DEFAULT_TIMEOUT,
            // Under `sudo cargo test` the program would default to the
            // invoking user (`run --user`); tests that want that set these.
            // A configuration file of the developer's own (~/.config/sockstrace) must not
            // change what the tests see: the user's file is looked for in the run's own
            // empty directory unless a test says otherwise.
            envs: vec![
                ("SUDO_UID".into(), None),
                ("SUDO_GID".into(), None),
                ("XDG_CONFIG_HOME".into(), Some(dir.path().join("no-config").into_os_string())),
            ],
            dir,
        }
    }

    /// `sockstrace ARGS...` exactly as given (no `run`, no `--report`): for
    /// command-line error tests.
    pub fn raw<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut t = Self::new();
        t.raw = Some(args.into_iter().map(|a| a.as_ref().to_owned()).collect());
        t.report = Report::None;
        t
    }

    /// Adds sockstrace options (before `--`).
    pub fn opts<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.opts.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// `--proxy ADDR`.
    pub fn proxy(self, addr: SocketAddr) -> Self {
        self.opts(["--proxy".to_string(), addr.to_string()])
    }

    /// `--allow SPEC`.
    pub fn allow(self, spec: &str) -> Self {
        self.opts(["--allow", spec])
    }

    /// `--on-leak MODE`.
    pub fn on_leak(self, mode: &str) -> Self {
        self.opts(["--on-leak", mode])
    }

    /// The traced program and its arguments.
    pub fn program<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.program = argv.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// The dynamic netprobe client with these arguments.
    pub fn netprobe<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.netprobe_at(netprobe(), args)
    }

    /// A netprobe client at `path` with these arguments.
    pub fn netprobe_at<I, S>(self, path: &Path, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut argv = vec![path.as_os_str().to_owned()];
        argv.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.program(argv)
    }

    /// `--report -` (events on stdout, mixed with the program's output).
    pub fn report_stdout(mut self) -> Self {
        self.report = Report::Stdout;
        self
    }

    /// No `--report` option at all.
    pub fn no_report(mut self) -> Self {
        self.report = Report::None;
        self
    }

    /// Runs sockstrace through a wrapper command (e.g. setpriv).
    pub fn wrapper<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = argv.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Uses another sockstrace binary path (e.g. a copy readable by nobody).
    pub fn bin(mut self, path: &Path) -> Self {
        self.bin = path.to_path_buf();
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn env(mut self, key: &str, val: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.into(), Some(val.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.envs.push((key.into(), None));
        self
    }

    /// The run's scratch directory (report, captured output).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs sockstrace in a mount namespace of its own whose `/etc/resolv.conf` names
    /// `nameserver` (one try, one second) and whose `/etc/hosts` knows only localhost: tests that
    /// resolve names never ask the machine's resolver. Replaces any wrapper.
    pub fn private_resolver(self, nameserver: &str) -> Self {
        let resolv = self.dir.path().join("resolv.conf");
        let hosts = self.dir.path().join("hosts");
        std::fs::write(&resolv, format!("nameserver {nameserver}\noptions timeout:1 attempts:1\n"))
            .expect("write resolv.conf");
        std::fs::write(&hosts, "127.0.0.1 localhost\n::1 localhost\n").expect("write hosts");
        let script = format!(
            "mount --bind '{}' /etc/resolv.conf && mount --bind '{}' /etc/hosts && exec \"$@\"",
            resolv.display(),
            hosts.display()
        );
        self.wrapper(["unshare", "--mount", "--propagation", "private", "sh", "-c", &script, "sh"])
    }

    /// Makes the scratch directory writable by everyone (for runs under
    /// another uid).
    pub fn world_writable_dir(self) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod run dir");
        self
    }

    fn report_path(&self) -> PathBuf {
        self.dir.path().join("report.jsonl")
    }

    fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = self.wrapper.clone();
        argv.push(self.bin.clone().into_os_string());
        if let Some(raw) = &self.raw {
            argv.extend(raw.iter().cloned());
            return argv;
        }
        argv.push("run".into());
        match self.report {
            Report::File => {
                argv.push("--report".into());
                argv.push(self.report_path().into_os_string());
            }
            Report::Stdout => {
                argv.push("--report".into());
                argv.push("-".into());
            }
            Report::None => {}
        }
        argv.extend(self.opts.iter().cloned());
        argv.push("--".into());
        argv.extend(self.program.iter().cloned());
        argv
    }

    /// Runs sockstrace to completion (or kills it after the timeout and
    /// fails), asserts that it did not panic, and parses the report.
    pub fn run(self) -> Outcome {
        self.spawn().wait()
    }

    /// Starts sockstrace in the background (in a process group of its own);
    /// [`Running::wait`] collects the outcome. Dropping a `Running` kills the
    /// whole group.
    pub fn spawn(self) -> Running {
        let argv = self.argv();
        let cmdline = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
        let out_path = self.dir.path().join("stdout");
        let err_path = self.dir.path().join("stderr");
        // Files rather than pipes: a leftover grandchild holding a pipe open
        // cannot make the harness hang.
        let stdout = std::fs::File::create(&out_path).expect("create stdout file");
        let stderr = std::fs::File::create(&err_path).expect("create stderr file");
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(stdout).stderr(stderr).process_group(0);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        default_interrupt_signals(&mut cmd);
        let start = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{cmdline}`: {e}"));
        Running { child: Some(child), cmdline, start, out_path, err_path, trace: Some(self) }
    }
}

/// Starts sockstrace with SIGINT, SIGQUIT, SIGHUP and SIGTERM at their default, as from a
/// terminal. A test binary started in the background by a non-interactive shell (`cargo xtask
/// test &`) has SIGINT and SIGQUIT ignored, under `nohup` SIGHUP, and a program inherits an
/// ignored signal through fork and exec: the tests that signal the program would then test the
/// shell, not sockstrace.
fn default_interrupt_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec and calls only signal(2), which
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
}

/// A sockstrace run in progress (see [`Trace::spawn`]).
pub struct Running {
    child: Option<Child>,
    cmdline: String,
    start: Instant,
    out_path: PathBuf,
    err_path: PathBuf,
    trace: Option<Trace>,
}

impl Running {
    /// The pid of the spawned command (sockstrace itself unless a wrapper
    /// was given); also the id of its process group.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(-1, |c| c.id() as i32)
    }

    /// What the run has written to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.out_path).unwrap_or_default()).into_owned()
    }

    /// What the run has written to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.err_path).unwrap_or_default()).into_owned()
    }

    /// Waits (up to `timeout`) until stdout contains `needle`; returns
    /// whether it did.
    pub fn wait_stdout(&self, needle: &str, timeout: Duration) -> bool {
        crate::util::wait_until(timeout, || self.stdout().contains(needle))
    }

    /// Sends `sig` to the spawned command only (not its group).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child, not yet reaped.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Everything so far, for assertion messages while the run goes on.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
            self.cmdline,
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits for the run to end (killing its group and failing after the
    /// trace's timeout), asserts that sockstrace did not panic, and parses
    /// the report.
    pub fn wait(mut self) -> Outcome {
        let mut child = self.child.take().expect("child");
        let trace = self.trace.take().expect("trace");
        let pgid = child.id() as i32;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if self.start.elapsed() > trace.timeout {
                // SAFETY: kill has no memory-safety preconditions; -pgid is
                // the process group created for this run only.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                let _ = child.wait();
                let out = std::fs::read_to_string(&self.out_path).unwrap_or_default();
                let err = std::fs::read_to_string(&self.err_path).unwrap_or_default();
                panic!(
                    "`{}` did not finish within {:?}; killed.\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    self.cmdline, trace.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.start.elapsed();
        let stdout = self.stdout();
        let stderr = self.stderr();
        let report_text = match trace.report {
            Report::File => std::fs::read_to_string(trace.report_path()).ok(),
            Report::Stdout => Some(
                stdout.lines().filter(|l| l.trim_start().starts_with('{')).collect::<Vec<_>>().join("\n"),
            ),
            Report::None => None,
        };
        let mut outcome = Outcome {
            cmdline: std::mem::take(&mut self.cmdline),
            status,
            stdout,
            stderr,
            report_text: report_text.clone(),
            lines: Vec::new(),
            events: Vec::new(),
            summary: None,
            run_summary: None,
            elapsed,
            _dir: trace.dir,
        };
        assert!(!outcome.stderr.contains("panicked"), "sockstrace panicked\n{}", outcome.describe());
        if let Some(text) = report_text {
            outcome.read_report(&text);
        }
        outcome
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kills only the process group made for this run.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

/// What one sockstrace run produced.
pub struct Outcome {
    pub cmdline: String,
    pub status: ExitStatus,
    /// sockstrace's stdout (the traced program's output unless `--report -`).
    pub stdout: String,
    pub stderr: String,
    /// The raw report, when one was requested and written.
    pub report_text: Option<String>,
    /// Every report line, parsed.
    pub lines: Vec<Value>,
    /// The event lines (all but the summary).
    pub events: Vec<Event>,
    /// The last line, when it has a "summary" key.
    pub summary: Option<Value>,
    /// The same, as the schema reads it.
    pub run_summary: Option<sockstrace::schema::RunSummary>,
    pub elapsed: Duration,
    _dir: tempfile::TempDir,
}

impl Outcome {
    /// Exit code, or 128+N when sockstrace itself died of signal N.
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => -1,
        }
    }

    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {} ({:?}), took {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- report ---\n{}",
            self.cmdline,
            self.code(),
            self.status,
            self.elapsed,
            self.stdout,
            self.stderr,
            self.report_text.as_deref().unwrap_or("(none)")
        )
    }

    /// Asserts the exit code.
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code(), code, "unexpected exit code\n{}", self.describe());
    }

    /// The pid and tid the client printed ([`crate::util::actor`]).
    pub fn actor(&self) -> (i64, i64) {
        crate::util::actor(&self.stdout)
    }

    /// The client's `op` failed with EPERM ("OP: errno=1 (...)") and it
    /// exited 1; sockstrace passed that status on.
    pub fn assert_client_eperm(&self, op: &str) {
        self.assert_code(1);
        assert!(
            self.stdout.contains(&format!("{op}: errno=1 (")),
            "client did not see EPERM on {op}\n{}",
            self.describe()
        );
    }
}

/// Output of a program run directly (without sockstrace), for harness
/// self-tests and baselines.
pub struct Direct {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Direct {
    /// The pid and tid the client printed ([`crate::util::actor`]).
    pub fn actor(&self) -> (i64, i64) {
        crate::util::actor(&self.stdout)
    }
}

/// Runs the client at `path` with `args` directly (see [`direct`]).
/// Why the kernel layer cannot be on here (not root, or `sockstrace doctor` says the layer is
/// off on this machine), or `Ok`.
pub fn kernel_available() -> Result<(), String> {
    if !crate::is_root() {
        return Err("the kernel layer needs root".into());
    }
    let out = Trace::raw(["doctor"]).run();
    let line = out.stdout.lines().find(|l| l.contains("kernel layer")).unwrap_or("").to_string();
    if line.starts_with("ok") {
        Ok(())
    } else {
        Err(format!("sockstrace doctor says the kernel layer is off here: {line}"))
    }
}

pub fn direct_client(path: &Path, args: &[&str]) -> Direct {
    let mut argv = vec![path.as_os_str().to_owned()];
    argv.extend(args.iter().map(OsString::from));
    direct(argv)
}

/// Runs `argv` directly with a 60 s limit (killed and failed past it).
pub fn direct<I, S>(argv: I) -> Direct
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let argv: Vec<OsString> = argv.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > DEFAULT_TIMEOUT {
            // SAFETY: kills only the process group made for this child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{argv:?} did not finish within {DEFAULT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Direct {
        code: status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}
