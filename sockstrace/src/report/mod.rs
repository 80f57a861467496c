//! Reports: one JSON object per decision (`--report`), a human line per leak
//! on stderr, and a summary at exit.

mod event;
mod human;
mod summary;

pub use event::{Action, Event, ProcessInfo};
pub use summary::{Layers, Summary};

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// Where JSON Lines go.
pub enum ReportTarget {
    None,
    Stdout,
    File(std::path::PathBuf),
}

impl ReportTarget {
    pub fn from_arg(arg: Option<&Path>) -> Self {
        match arg {
            None => ReportTarget::None,
            Some(p) if p == Path::new("-") => ReportTarget::Stdout,
            Some(p) => ReportTarget::File(p.to_path_buf()),
        }
    }
}

/// Numbers events, writes them, and keeps the tallies for the summary.
pub struct Reporter {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
    seq: AtomicU64,
    summary: Mutex<Summary>,
    quiet: bool,
}

impl Reporter {
    /// Opens the report target; an unwritable path is an error here, before
    /// the program starts.
    pub fn open(target: &ReportTarget, quiet: bool) -> Result<Self> {
        let sink: Option<Box<dyn Write + Send>> = match target {
            ReportTarget::None => None,
            ReportTarget::Stdout => Some(Box::new(io::stdout())),
            ReportTarget::File(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot write the report to {}", path.display()))?;
                Some(Box::new(BufWriter::new(file)))
            }
        };
        Ok(Reporter { sink: sink.map(Mutex::new), seq: AtomicU64::new(1), summary: Mutex::default(), quiet })
    }

    /// Whether allowed decisions need an event (they only go to the JSON report).
    pub fn wants_allowed(&self) -> bool {
        self.sink.is_some()
    }

    /// Emits one event: numbers it, tallies it, writes it.
    pub fn emit(&self, mut event: Event) {
        event.seq = self.seq.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut summary) = self.summary.lock() {
            summary.record(&event);
        }
        if event.is_leak() && !self.quiet {
            eprintln!("{}", human::leak_line(&event));
        }
        if let Some(sink) = &self.sink {
            if let Ok(mut out) = sink.lock() {
                // A failing report sink must not stop enforcement; the summary
                // on stderr still tells what happened.
                let _ = serde_json::to_writer(&mut *out, &event);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
    }

    /// Counts a call rejected for malformed arguments (no network decision).
    pub fn count_invalid(&self) {
        if let Ok(mut summary) = self.summary.lock() {
            summary.invalid += 1;
        }
    }

    /// Writes the summary (JSON last line and stderr), consuming the reporter.
    pub fn finish(self, layers: Layers, exit_status: i32) -> Summary {
        let mut summary = self.summary.into_inner().unwrap_or_default();
        summary.layers = layers;
        summary.exit_status = Some(exit_status);
        if let Some(sink) = self.sink {
            if let Ok(mut out) = sink.into_inner() {
                let _ = serde_json::to_writer(&mut *out, &summary.to_json());
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
        if !self.quiet {
            for line in human::summary_lines(&summary) {
                eprintln!("{line}");
            }
        }
        summary
    }
}
