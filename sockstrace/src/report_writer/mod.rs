//! Reports: one JSON object per decision (`--report`), a human line per leak
//! on stderr, and a summary at exit.

mod event;
pub mod fifo;
pub(crate) mod human;
mod journal;
mod kept;
mod patient;
pub mod relay;
mod resolve;
pub(crate) mod stream;
mod summary;

#[cfg(test)]
mod golden;

pub use event::{Event, ProcessInfo};
pub use sockstrace::schema::Action;
pub use summary::{Layers, Summary};

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{Context, Result};

/// Where JSON Lines go.
pub enum ReportTarget {
    None,
    /// `-`, or a name of our stdout (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`).
    Stdout,
    /// A name of our stderr: the report shares it with our human lines.
    Stderr,
    File(std::path::PathBuf),
}

impl ReportTarget {
    pub fn from_arg(arg: Option<&Path>) -> Self {
        match arg {
            None => ReportTarget::None,
            Some(p) if p == Path::new("-") => ReportTarget::Stdout,
            Some(p) => match own_fd(p) {
                Some(1) => ReportTarget::Stdout,
                Some(2) => ReportTarget::Stderr,
                _ => ReportTarget::File(p.to_path_buf()),
            },
        }
    }
}

impl ReportTarget {
    /// The report's path when it names a file the program could open by it too: not one of our
    /// own descriptors (`/dev/fd/N`, `>(...)`), which the program does not inherit.
    pub fn path_open_to_others(&self) -> Option<&Path> {
        match self {
            ReportTarget::File(path) if own_fd(path).is_none() => Some(path),
            _ => None,
        }
    }
}

/// The fd number a path names among our own (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`,
/// `/proc/self/fd/N`, as a shell's `>(...)` gives).
fn own_fd(path: &Path) -> Option<i32> {
    match path.to_str()? {
        "/dev/stdin" => Some(0),
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        p => p.strip_prefix("/dev/fd/").or_else(|| p.strip_prefix("/proc/self/fd/"))?.parse().ok(),
    }
}

/// How long an allowed event may wait in the report's buffer. Leaks and
/// refusals are written at once; allowed calls (a datagram stream makes one
/// each) are written in batches, at most this late, or at the end.
const ALLOWED_FLUSH: Duration = Duration::from_millis(100);

/// Numbers events, writes them, and keeps the tallies for the summary.
pub struct Reporter {
    state: Arc<Mutex<State>>,
    has_sink: bool,
    /// `--report -`: events go to our stdout.
    on_stdout: bool,
    quiet: bool,
}

/// Everything an event touches, under one lock so that `seq` order is file order.
struct State {
    sink: Option<Box<dyn Write + Send>>,
    /// Events written to `sink` but not flushed yet.
    unflushed: bool,
    next_seq: u64,
    summary: Summary,
    /// Allowed decisions taken back ([`Reporter::retract_allowed`]), subtracted at the end.
    retracted: u64,
    /// The report file and its private copy (`--report FILE` of `run`), checked at the end.
    kept: Option<Arc<Mutex<kept::Kept>>>,
}

impl State {
    fn flush(&mut self) {
        if let (Some(out), true) = (self.sink.as_mut(), self.unflushed) {
            let _ = out.flush();
        }
        self.unflushed = false;
    }
}

/// The reporter's state, also after a panic while another thread held it: a poisoned lock
/// must not drop later events, nor turn the summary into one without leaks.
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Flushes the report's allowed events every [`ALLOWED_FLUSH`] while the
/// reporter lives.
fn start_flusher(state: Weak<Mutex<State>>) {
    let flusher = move || {
        while let Some(state) = state.upgrade() {
            lock(&state).flush();
            drop(state);
            std::thread::sleep(ALLOWED_FLUSH);
        }
    };
    // Without the thread, allowed events are written when the buffer fills,
    // with the next leak, or at the end.
    let _ = std::thread::Builder::new().name("sockstrace-flush".into()).spawn(flusher);
}

impl Reporter {
    /// Opens the report target; an unwritable path is an error here, before
    /// the program starts.
    /// `program`: who the program runs as (`run`), for a report on a named pipe it could read
    /// (refused: `fifo::Refused`).
    pub fn open(
        target: &ReportTarget,
        quiet: bool,
        program: Option<&crate::supervisor::identity::Credentials>,
    ) -> Result<Self> {
        Self::open_with(target, quiet, false, program)
    }

    /// [`Reporter::open`], appending to an existing report file instead of replacing it
    /// (`audit` as a service: a restart keeps what was reported before).
    pub fn open_appending(target: &ReportTarget, quiet: bool) -> Result<Self> {
        Self::open_with(target, quiet, true, None)
    }

    fn open_with(
        target: &ReportTarget,
        quiet: bool,
        append: bool,
        program: Option<&crate::supervisor::identity::Credentials>,
    ) -> Result<Self> {
        let mut kept = None;
        let sink: Option<Box<dyn Write + Send>> = match target {
            ReportTarget::None => None,
            // Whole lines, through the lock the program's relayed output takes (see `stream`),
            // waiting when the stream is full (see `patient`).
            // A regular file there is kept like `--report FILE` (`kept::Kept::adopt`).
            // (Not `audit`'s appended report: its processes are not our children.)
            ReportTarget::Stdout => {
                kept = if append { None } else { stream::stdout().keep() };
                Some(Box::new(stream::LineSink::new(stream::stdout())))
            }
            ReportTarget::Stderr => {
                kept = if append { None } else { stream::stderr().keep() };
                Some(Box::new(stream::LineSink::new(stream::stderr())))
            }
            // `audit` appends to what earlier runs wrote; its processes are not our children.
            ReportTarget::File(path) if append => {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot write the report to {}", path.display()))?;
                Some(Box::new(BufWriter::new(file)))
            }
            ReportTarget::File(path) => {
                if let Some(fd) = own_fd(path).filter(|&fd| fd > 2) {
                    // An fd we were given as the report (`--report >(jq ...)`) is the report
                    // itself: the program does not inherit it, lest it write there.
                    // SAFETY: F_SETFD on an fd number; on a closed one it fails with EBADF.
                    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                }
                match kept::Kept::create(path)
                    .with_context(|| format!("cannot write the report to {}", path.display()))?
                {
                    kept::Opened::Kept(file) => {
                        let file = Arc::new(Mutex::new(file));
                        kept = Some(file.clone());
                        Some(Box::new(BufWriter::new(KeptSink(file))))
                    }
                    kept::Opened::Plain(file) => {
                        // What was opened, not what the name was before: a pipe swapped in
                        // at the open is judged too.
                        let open_to_program = target.path_open_to_others().zip(program);
                        if let (Some((path, reader)), Ok(meta)) = (open_to_program, file.metadata()) {
                            if let Some(refused) = fifo::refusal(&meta, path, reader) {
                                return Err(refused.into());
                            }
                        }
                        Some(Box::new(BufWriter::new(file)))
                    }
                }
            }
        };
        let has_sink = sink.is_some();
        let state =
            State { sink, unflushed: false, next_seq: 1, summary: Summary::default(), retracted: 0, kept };
        let state = Arc::new(Mutex::new(state));
        if has_sink {
            start_flusher(Arc::downgrade(&state));
        }
        Ok(Reporter { state, has_sink, on_stdout: matches!(target, ReportTarget::Stdout), quiet })
    }

    /// Whether events go to our stdout (`--report -`).
    pub fn writes_stdout(&self) -> bool {
        self.on_stdout
    }

    /// Whether allowed decisions need an event (they only go to the JSON report).
    pub fn wants_allowed(&self) -> bool {
        self.has_sink && !crate::testing::disabled("allowed-events")
    }

    /// Emits one event: numbers it, tallies it, writes it.
    pub fn emit(&self, mut event: Event) {
        if event.is_leak() && !self.quiet {
            human::write_line(&human::highlight(&human::leak_line(&event)));
        }
        let mut state = lock(&self.state);
        event.seq = state.next_seq;
        state.next_seq += 1;
        state.summary.record(&event);
        if let Some(out) = state.sink.as_mut() {
            // A failing report sink must not stop enforcement; the summary
            // on stderr still tells what happened.
            let _ = serde_json::to_writer(&mut *out, &event);
            let _ = out.write_all(b"\n");
            state.unflushed = true;
            if event.action != Action::Allowed {
                state.flush();
            }
        }
    }

    /// Counts allowed decisions that were not written as events.
    pub fn count_allowed(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut state = lock(&self.state);
        state.summary.events += n;
        state.summary.allowed += n;
    }

    /// Takes back one allowed decision counted before: a call the supervisor let the kernel run
    /// (answered CONTINUE on the fast path) that the kernel then refused, whose own event counts
    /// it (a leak, or a refused UDP connect). Without this the summary counted such a call
    /// twice, allowed and refused.
    pub fn retract_allowed(&self) {
        let mut state = lock(&self.state);
        state.retracted += 1;
    }

    /// Names the configuration file read (`None`: none), for the summary.
    pub fn set_config(&self, path: Option<&Path>) {
        let mut state = lock(&self.state);
        state.summary.config = path.map(|p| p.display().to_string());
    }

    /// Counts a call rejected for malformed arguments (no network decision).
    pub fn count_invalid(&self) {
        let mut state = lock(&self.state);
        state.summary.invalid += 1;
    }

    /// Writes the summary (JSON last line and stderr). Later events are not
    /// written: the sink is closed here.
    pub fn finish(&self, layers: Layers, exit_status: i32) -> Summary {
        self.finish_with(layers, exit_status, serde_json::Map::new())
    }

    /// [`Reporter::finish`], with `extra` keys added to the JSON summary object (`audit` adds
    /// its table by process).
    pub fn finish_with(
        &self,
        layers: Layers,
        exit_status: i32,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Summary {
        let mut extra = extra;
        let mut state = lock(&self.state);
        let mut sink = state.sink.take();
        let kept = state.kept.take();
        let mut summary = std::mem::take(&mut state.summary);
        let retracted = state.retracted.min(summary.allowed);
        drop(state);
        summary.allowed -= retracted;
        summary.events -= retracted;
        summary.layers = layers;
        summary.exit_status = Some(exit_status);
        if let Some(out) = sink.as_mut() {
            let _ = out.flush();
        }
        let mut report_failed = false;
        if let Some(kept) = &kept {
            let check = lock_kept(kept).check();
            if let Some(restored) = say_check(&check) {
                extra.insert("report_altered".into(), true.into());
                extra.insert("report_restored".into(), restored.into());
            }
            report_failed = check.failed();
        }
        if let Some(mut out) = sink {
            let _ = serde_json::to_writer(&mut *out, &summary.to_json_with(extra));
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
        // A process that outlived the run may still have written to the file (said unless the
        // first check failed already).
        if let Some(kept) = &kept {
            let check = lock_kept(kept).check();
            if !report_failed {
                say_check(&check);
            }
            report_failed |= check.failed();
        }
        summary.report_failed = report_failed;
        if !self.quiet {
            for line in human::summary_lines(&summary) {
                human::write_line(&line);
            }
        }
        summary
    }
}

/// The report file's writer: the file and its private copy (see `kept`).
struct KeptSink(Arc<Mutex<kept::Kept>>);

impl Write for KeptSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock_kept(&self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        lock_kept(&self.0).flush()
    }
}

fn lock_kept(kept: &Mutex<kept::Kept>) -> std::sync::MutexGuard<'_, kept::Kept> {
    kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Says on stderr what the end-of-run check of the report file found, when it was altered or
/// could not be kept; `Some(restored)` then.
fn say_check(check: &kept::Check) -> Option<bool> {
    let say = |line: String| human::write_line(&line);
    match check {
        kept::Check::Intact => None,
        kept::Check::Restored { why } => {
            say(format!(
                "sockstrace: warning: the report file was altered during the run ({why}); restored from sockstrace's own copy"
            ));
            Some(true)
        }
        kept::Check::Elsewhere { why, at } => {
            say(format!(
                "sockstrace: error: the report file was altered during the run ({why}); sockstrace's own copy is restored at {}, \
                 but the report's path still names another file (its directory was moved, or a link on it re-pointed): \
                 do not trust what is there",
                at.display()
            ));
            Some(true)
        }
        kept::Check::NotRestored { why, err, kept_at } => {
            let kept_at = match kept_at {
                Some(at) => format!("; sockstrace's own copy is at {}", at.display()),
                None => String::new(),
            };
            say(format!(
                "sockstrace: error: the report file was altered during the run ({why}); restoring it failed: {err}{kept_at}"
            ));
            Some(false)
        }
        kept::Check::Unkept { err } => {
            say(format!(
                "sockstrace: error: the report file's private copy could not be written ({err}): what the report holds cannot be vouched for"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_keeps_the_leaks() {
        let reporter = Reporter::open(&ReportTarget::None, true, None).unwrap();
        let state = reporter.state.clone();
        let _ = std::thread::spawn(move || {
            let _held = state.lock().unwrap();
            panic!("poisons the lock");
        })
        .join();
        assert!(reporter.state.is_poisoned());
        let mut leak = Event::new(
            "connect",
            1,
            crate::policy::Decision::leak(crate::policy::Reason::DirectTcp),
            Action::Blocked,
        );
        leak.pid = Some(1);
        reporter.emit(leak);
        let summary = reporter.finish(Layers::default(), 0);
        assert_eq!((summary.leaks, summary.blocked, summary.events), (1, 1, 1));
    }

    #[test]
    fn a_retracted_allowed_call_is_counted_once() {
        let reporter = Reporter::open(&ReportTarget::None, true, None).unwrap();
        reporter.count_allowed(3);
        reporter.retract_allowed();
        reporter.retract_allowed();
        let summary = reporter.finish(Layers::default(), 0);
        assert_eq!((summary.allowed, summary.events), (1, 1));

        // Never below zero, whatever the order the two sides report in.
        let reporter = Reporter::open(&ReportTarget::None, true, None).unwrap();
        reporter.retract_allowed();
        reporter.retract_allowed();
        reporter.count_allowed(1);
        let summary = reporter.finish(Layers::default(), 0);
        assert_eq!((summary.allowed, summary.events), (0, 0));
    }
}
