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

use crate::report::Event;

pub struct LeakDebug {
    stack: bool,
    cores: Option<coredump::Cores>,
    modules: module::Cache,
    unwinders: unwind::Unwinders,
}

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
            modules: module::Cache::default(),
            unwinders: unwind::Unwinders::default(),
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
        if event.action == crate::report::Action::Killed {
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
        let pcs = unwind::unwind(&c, &self.modules, &self.unwinders);
        let frames = symbolize::symbolize(&c, &pcs, &self.modules);
        event.stack = Some(frames.clone());
        *last = Some((c, frames));
    }
}

/// Whether core files can be written here (for `doctor`): gcore's path, or why not.
pub fn gcore_status() -> Result<PathBuf, String> {
    coredump::find_gcore().ok_or_else(|| "gcore not found (apt-get install gdb)".into())
}
