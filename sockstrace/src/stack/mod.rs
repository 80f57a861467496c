//! Where in the program a leak came from: `run --stack` (the leaking
//! thread's stack, unwound and symbolized) and `run --core-on-leak DIR` (a
//! core file of the leaking process).
//!
//! Taken in two steps. Before the call is answered, while the thread waits in
//! it ([`LeakDebug::before_reply`]): the registers and a bounded copy of the
//! stack and memory map (`capture`), and gcore attached. After the reply
//! ([`LeakDebug::after_reply`]): unwinding and symbolization, which read
//! module files, off the decision's path.

pub mod capture;
mod coredump;
mod module;
pub mod symbolize;
mod unwind;

use std::path::PathBuf;
use std::sync::Arc;

pub use symbolize::{describe, own_frames, Frame};

use crate::report_writer::Event;

pub struct LeakDebug {
    stack: bool,
    cores: Option<coredump::Cores>,
    modules: Arc<module::Cache>,
    unwinders: Arc<unwind::Unwinders>,
    /// Set once a symbolization overran [`SYMBOLIZE_LIMIT`]: its thread may hold the caches'
    /// locks for good, so later leaks are reported without a stack rather than waiting.
    stuck: std::sync::atomic::AtomicBool,
}

/// How long one leak's stack may take to unwind and symbolize before its event is written
/// without it: a module or debug file that never ends must not hold a leak's report back.
const SYMBOLIZE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl LeakDebug {
    /// `None` when neither `--stack` nor `--core-on-leak` was asked for.
    pub fn new(stack: bool, core_dir: Option<PathBuf>, core_limit: u32) -> Option<LeakDebug> {
        if !stack && core_dir.is_none() {
            return None;
        }
        let cores = core_dir.map(|dir| {
            // gcore writes there; a missing directory is made, a failure shows in the event.
            let _ = std::fs::create_dir_all(&dir);
            coredump::Cores::new(dir, core_limit)
        });
        Some(LeakDebug {
            stack,
            cores,
            modules: Arc::default(),
            unwinders: Arc::default(),
            stuck: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// For a leak of thread `tid` (process `pid`) still waiting in its call:
    /// copies its stack, and starts a core file unless the tree is being
    /// killed. `held`: whether the call is still held (the copy is of the
    /// thread that made it).
    /// `earlier`: the stack an earlier leak of the same call took (the
    /// messages of one `sendmmsg` share one copy).
    pub fn before_reply(
        &self,
        event: &mut Event,
        pid: u32,
        i386: bool,
        held: impl Fn() -> bool,
        earlier: Option<Arc<capture::Captured>>,
    ) {
        let tid = event.tid;
        if let (true, Some(earlier)) = (self.stack, earlier) {
            event.captured = Some(earlier);
            return;
        }
        if self.stack {
            match capture::capture(pid, tid, i386) {
                Ok(c) if held() => event.captured = Some(Arc::new(c)),
                Ok(_) => event.stack_error = Some("the thread left the call while its stack was read".into()),
                Err(e) => event.stack_error = Some(e),
            }
        }
        let Some(cores) = &self.cores else { return };
        if event.action == crate::report_writer::Action::Killed {
            // gcore could stop the thread only after the reply, and the kill comes first.
            event.core_error = Some("not taken under --on-leak kill".into());
            return;
        }
        match cores.take(pid, tid) {
            Some(Ok(path)) => event.core = Some(path),
            Some(Err(e)) => event.core_error = Some(e),
            None => {}
        }
    }

    /// Unwinds and symbolizes the stack copied before the reply (`last`: the
    /// previous event's, reused when it is the same copy).
    pub fn after_reply(&self, event: &mut Event, last: &mut Option<(Arc<capture::Captured>, Vec<Frame>)>) {
        let Some(c) = event.captured.take() else { return };
        if let Some((_, frames)) = last.as_ref().filter(|(seen, _)| Arc::ptr_eq(seen, &c)) {
            event.stack = Some(frames.clone());
            return;
        }
        use std::sync::atomic::Ordering;
        if self.stuck.load(Ordering::Acquire) {
            event.stack_error = Some("not symbolized: an earlier stack's symbolization never ended".into());
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (modules, unwinders, copy) = (self.modules.clone(), self.unwinders.clone(), c.clone());
        let spawned = std::thread::Builder::new().name("sockstrace-symbols".into()).spawn(move || {
            let pcs = unwind::unwind(&copy, &modules, &unwinders);
            let _ = tx.send(symbolize::symbolize(&copy, &pcs, &modules));
        });
        if let Err(e) = spawned {
            event.stack_error = Some(format!("not symbolized: {e}"));
            return;
        }
        match rx.recv_timeout(SYMBOLIZE_LIMIT) {
            Ok(frames) => {
                event.stack = Some(frames.clone());
                *last = Some((c, frames));
            }
            Err(_) => {
                self.stuck.store(true, Ordering::Release);
                event.stack_error = Some(format!(
                    "not symbolized within {} s (a module or debug file that does not end?)",
                    SYMBOLIZE_LIMIT.as_secs()
                ));
            }
        }
    }

    /// Waits (at most `limit`) for the core files still being written.
    pub fn finish(&self, limit: std::time::Duration) {
        if let Some(cores) = &self.cores {
            cores.wait(limit);
        }
    }
}

/// Whether core files can be written here (for `doctor`): gcore's path, or why not.
pub fn gcore_status() -> Result<PathBuf, String> {
    coredump::find_gcore().ok_or_else(|| "gcore not found (apt-get install gdb)".into())
}
