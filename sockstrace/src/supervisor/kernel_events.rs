//! Leaks that only the kernel saw (io_uring connects and setsockopts, a raced unix connect,
//! sockets from outside): the eBPF hooks' events become report events with
//! `source: "kernel"` (`KernelEvent::to_report_event`). Calls the supervisor
//! performed itself are skipped here: their seccomp event already carries the
//! kernel's facts; unless the kernel refused one: the supervisor allowed a call its
//! second witness refuses, which only a fault in one of the two layers does. That is
//! reported as the kernel saw it (the caller is the supervisor, `kernel.performed_by_supervisor`;
//! the program's own event of the same call has the same `cookie`) and counted
//! ([`report`]'s result), so that no run says `0 leaks` over it. So are the routing
//! options the supervisor reported and let the kernel apply (`--on-leak log`): the
//! observing kernel layer sees the same call again ([`expect_echo`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::kernel::KernelEvent;
use crate::procfs::process_info;
use crate::report_writer::{ProcessInfo, Reporter};

/// Reports kernel events until the channel closes (after the witness stops); returns how
/// many calls the supervisor performed that the kernel refused. On the fast path
/// (`fast_path`, set once the kernel layer is complete), a connect or addressed send the kernel refuses is one the supervisor counted
/// as allowed and answered CONTINUE (the program changed its address or fd since): that count
/// is taken back, so that the summary counts each call once.
pub async fn report(
    mut events: UnboundedReceiver<KernelEvent>,
    reporter: Arc<Reporter>,
    fast_path: Arc<AtomicBool>,
) -> u64 {
    let own_pid = std::process::id();
    let mut disagreements = 0;
    while let Some(ev) = events.recv().await {
        // A call the supervisor performed on its duplicate of the program's socket: the hook ran
        // as the supervisor. (The egress gate's events name the socket's creator, never the
        // supervisor: `KernelEvent::from_raw` reads one that names it as unknown.)
        if ev.pid == own_pid {
            if ev.denied {
                disagreements += 1;
                let mut event = ev.to_report_event(ProcessInfo::default());
                if let Some(kernel) = event.kernel.as_mut().and_then(serde_json::Value::as_object_mut) {
                    kernel.insert("performed_by_supervisor".into(), true.into());
                }
                reporter.emit(event);
            }
            continue;
        }
        if let Some((level, optname)) = ev.option {
            if ECHOES.lock().is_ok_and(|mut echoes| echoes.take(ev.tid, level, optname)) {
                continue;
            }
        }
        // The process may be gone already; pid and comm come from the kernel anyway.
        reporter.emit(ev.to_report_event(of_the_image(ev.tid, &ev.comm)));
        if fast_path.load(Ordering::Acquire) && ev.denied && matches!(ev.syscall(), "connect" | "sendmsg") {
            reporter.retract_allowed();
        }
    }
    disagreements
}

/// What /proc says of thread `tid` for a kernel event, kept only when it is of the image that
/// made the call. /proc is read later than the call: a program that execs at once (an io_uring
/// connect is submitted, and the program does not wait for its completion) had the next
/// image's `exe` and `argv` reported for its leak. An `execve` switches the memory (and so
/// `exe`) first, renames the thread after the new file next, and sets up the new `argv` last.
/// So the facts are kept when the thread's name, read before and after them, is the one the
/// kernel gave at the event (`comm`), and `argv` was read: an `exe` of the next image came
/// with an empty `argv` (the new one not set up yet) or with the thread renamed by the second
/// read. Otherwise the event has no `exe` nor `argv` rather than wrong ones. (A program that
/// names itself after the file it then execs is not caught.)
fn of_the_image(tid: u32, comm: &str) -> ProcessInfo {
    let info = process_info(tid);
    let after = std::fs::read_to_string(format!("/proc/{tid}/comm")).ok();
    kept_if_same_image(info, after.as_deref().map(|c| c.trim_end_matches('\n')), comm)
}

/// [`of_the_image`]'s decision on what was read: `info` (its `comm` read first), the name read
/// after it (`after`), and the kernel's `comm`.
fn kept_if_same_image(info: ProcessInfo, after: Option<&str>, comm: &str) -> ProcessInfo {
    if info.comm.as_deref() == Some(comm) && after == Some(comm) && info.argv.is_some() {
        info
    } else {
        ProcessInfo { pid: info.pid, ..ProcessInfo::default() }
    }
}

static ECHOES: Mutex<Echoes> = Mutex::new(Echoes::new());

/// The supervisor reported a routing option of thread `tid` and answers CONTINUE: the kernel
/// layer's setsockopt hook (observing) will report the same call, which is skipped then.
/// Called before the reply, so the note is always there before the kernel's event.
pub fn expect_echo(tid: u32, level: i32, optname: i32) {
    if let Ok(mut echoes) = ECHOES.lock() {
        echoes.note(tid, level, optname);
    }
}

/// Calls whose kernel event is expected and is not to be reported: a short queue (a note
/// whose event never comes, the call having failed before the hook, is dropped once
/// [`Echoes::CAPACITY`] newer ones are noted).
struct Echoes {
    pending: VecDeque<(u32, i32, i32)>,
}

impl Echoes {
    const CAPACITY: usize = 256;

    const fn new() -> Self {
        Self { pending: VecDeque::new() }
    }

    fn note(&mut self, tid: u32, level: i32, optname: i32) {
        if self.pending.len() >= Self::CAPACITY {
            self.pending.pop_front();
        }
        self.pending.push_back((tid, level, optname));
    }

    /// Whether the event of `tid`'s setsockopt was expected (the note is used up).
    fn take(&mut self, tid: u32, level: i32, optname: i32) -> bool {
        match self.pending.iter().position(|&p| p == (tid, level, optname)) {
            Some(i) => {
                self.pending.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_facts_of_another_image_are_dropped() {
        let info = ProcessInfo {
            pid: Some(7),
            comm: Some("sleep".into()),
            exe: Some("/usr/bin/sleep".into()),
            argv: Some(vec!["sleep".into()]),
        };
        let kept = kept_if_same_image(info.clone(), Some("sleep"), "sleep");
        assert_eq!((kept.exe.as_deref(), kept.pid), (Some("/usr/bin/sleep"), Some(7)));
        let dropped = |info: ProcessInfo, after: Option<&str>| {
            let d = kept_if_same_image(info, after, "attacker");
            assert_eq!((d.pid, d.exe, d.argv, d.comm), (Some(7), None, None, None));
        };
        // Renamed by an exec that was over before /proc was read.
        dropped(info.clone(), Some("sleep"));
        // Renamed while /proc was read.
        dropped(ProcessInfo { comm: Some("attacker".into()), ..info.clone() }, Some("sleep"));
        // The next image's memory, its argv not set up yet.
        dropped(ProcessInfo { comm: Some("attacker".into()), argv: None, ..info.clone() }, Some("attacker"));
        dropped(ProcessInfo { comm: Some("attacker".into()), ..info }, None);
    }

    #[test]
    fn an_expected_echo_is_skipped_once() {
        let mut echoes = Echoes::new();
        echoes.note(7, 41, 57);
        assert!(!echoes.take(8, 41, 57), "another thread");
        assert!(!echoes.take(7, 41, 5), "another option");
        assert!(echoes.take(7, 41, 57));
        assert!(!echoes.take(7, 41, 57), "a second call was not expected");
    }

    #[test]
    fn the_queue_keeps_the_newest_notes() {
        let mut echoes = Echoes::new();
        for tid in 0..(Echoes::CAPACITY as u32 + 10) {
            echoes.note(tid, 0, 35);
        }
        assert_eq!(echoes.pending.len(), Echoes::CAPACITY);
        assert!(!echoes.take(0, 0, 35));
        assert!(echoes.take(Echoes::CAPACITY as u32 + 9, 0, 35));
    }
}
