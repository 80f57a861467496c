//! Calls we perform for a caller stay interruptible, as the caller's own
//! call would be.
//!
//! Once we have received a call, the caller waits for our answer killably
//! (`SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`): only a fatal signal ends the
//! wait. Natively a blocking `connect` (or a `send` waiting for buffer space)
//! ends when a signal is to be handled: with `SA_RESTART` the kernel restarts
//! it, without it the call fails with `EINTR`. A program that times its
//! connect out with `alarm()` relies on it. Worse, a fatal signal that
//! arrives while another signal is already pending does not end a killable
//! wait either (the kernel's `complete_signal` finds no thread that "wants"
//! it, so it never takes the group-exit shortcut): `SIGTERM` after `SIGALRM`
//! left the program, and so the run, waiting until the kernel gave up on the
//! connect (about two minutes).
//!
//! So while a receiver thread performs a call that may block, it is
//! registered here; the receivers' watcher ([`check`], every tick while
//! calls are in flight) reads each caller's signal state every
//! [`RECHECK`] and, when the caller has a signal to handle or is gone,
//! interrupts the performing thread with a thread-directed [`KICK`] whose
//! handler has no `SA_RESTART` (our blocking call then fails with `EINTR`).
//! The kick repeats each tick until the call ends, so one that lands just
//! before the thread enters the call is no loss. The interrupted call leaves
//! the socket as an interrupted native call does (a connect keeps
//! connecting in the kernel).
//!
//! Receiver threads take the kick at all times ([`accept_kicks`], once per
//! thread), instead of unblocking it around each performed call (two
//! `rt_sigprocmask` per call): a kick is only sent, under the registry's
//! lock, to a thread registered here, and a thread deregisters under that
//! lock. So a kick arrives while its thread is in the performed call (which
//! it interrupts), in our own code between registering and deregistering, or
//! waiting for the registry's lock (the handler runs; the lock's `futex`
//! wait is retried): it is taken, unblocked, before the thread deregisters,
//! and none reaches any other call of the thread.
//!
//! What the caller is answered ([`judge`]):
//! - a signal pending for the caller's thread itself, or for a process of a
//!   single thread (then the kernel has marked the caller's thread: it is the
//!   only one that can take it): `ERESTARTSYS`, the kernel's own "restart if
//!   the handler has `SA_RESTART`, else `EINTR`" answer. The kernel decides
//!   with the caller's real `sigaction`, which `/proc` does not show: a
//!   handler with `SA_RESTART` sees its call restarted (trapped again and
//!   performed again, a connect carrying on where it was), one without sees
//!   `EINTR`, exactly as natively.
//! - a signal pending only for a process of several threads: `EINTR`. Which
//!   thread the kernel chose for it is not visible; `ERESTARTSYS` reaching a
//!   thread the kernel did not mark would come out as errno 512. So such a
//!   call can see `EINTR` where natively it would have been restarted, or
//!   would have gone on while another thread took the signal. Callers of
//!   blocking `connect`/`send` handle `EINTR` (it is what they get natively
//!   without `SA_RESTART`); a blocking connect called again after it waits on
//!   for the same connection.

use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use super::notif::Notifier;
use super::sys::Errno;

/// The signal that interrupts a performing thread (its handler does nothing;
/// only its lack of `SA_RESTART` matters). Default-ignored, so a stray one
/// sent to the whole process is harmless.
const KICK: libc::c_int = libc::SIGURG;

/// How often the watcher reads a performing call's caller state.
pub const RECHECK: Duration = Duration::from_millis(50);

/// The kernel's "restart the call, or `EINTR` if the handler lacks
/// `SA_RESTART`" return (not in userspace headers).
pub const ERESTARTSYS: Errno = 512;

/// How a performed call ends early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The caller has a signal to handle: answer with this errno.
    Signal(Errno),
    /// The caller left the call (killed): nobody waits for the answer.
    Gone,
}

struct Performing {
    thread: libc::pthread_t,
    caller: u32,
    id: u64,
    notifier: Arc<Notifier>,
    next_check: Instant,
    stop: Option<Stop>,
}

static PERFORMING: Mutex<Vec<Performing>> = Mutex::new(Vec::new());

fn performing() -> MutexGuard<'static, Vec<Performing>> {
    PERFORMING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the kick's handler once, without `SA_RESTART`.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| super::sys::handle_by_doing_nothing(KICK, false));
}

/// Lets this receiver thread take the kick from now on (see the module's doc).
pub fn accept_kicks() {
    install_handler();
    kick_mask(libc::SIG_UNBLOCK);
}

/// Blocks or unblocks the kick in this thread.
fn kick_mask(how: libc::c_int) {
    // SAFETY: sigemptyset/sigaddset/pthread_sigmask on a live local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, KICK);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Runs `call` (a blocking call on our duplicate of the caller's socket) on
/// this thread until it ends, the caller has a signal to handle, or the
/// caller is gone. An `EINTR` that the watcher did not ask for runs the
/// call again, as the kernel would.
pub fn perform<T>(
    notifier: &Arc<Notifier>,
    caller: u32,
    id: u64,
    mut call: impl FnMut() -> Result<T, Errno>,
) -> Result<Result<T, Errno>, Stop> {
    // SAFETY: pthread_self has no preconditions.
    let thread = unsafe { libc::pthread_self() };
    performing().push(Performing {
        thread,
        caller,
        id,
        notifier: notifier.clone(),
        next_check: Instant::now() + RECHECK,
        stop: None,
    });
    let outcome = loop {
        let result = call();
        if result.as_ref().err() != Some(&libc::EINTR) {
            break Ok(result);
        }
        if let Some(stop) = stop_of(thread) {
            break Err(stop);
        }
    };
    // No kick is sent to this thread once it is deregistered, and one sent
    // before was taken by then (see the module's doc).
    performing().retain(|p| p.thread != thread);
    outcome
}

fn stop_of(thread: libc::pthread_t) -> Option<Stop> {
    performing().iter().find(|p| p.thread == thread).and_then(|p| p.stop)
}

/// The watcher's round: decides for each call due a look whether to stop
/// it, and kicks every thread whose call is to stop.
pub fn check(now: Instant) {
    let mut performing = performing();
    for p in performing.iter_mut() {
        if p.stop.is_none() && now >= p.next_check {
            p.next_check = now + RECHECK;
            p.stop = if !p.notifier.id_valid(p.id) {
                Some(Stop::Gone)
            } else {
                // Unreadable: the caller is dying (its id turns invalid next).
                std::fs::read_to_string(format!("/proc/{}/status", p.caller))
                    .ok()
                    .and_then(|status| judge(&status))
                    .map(Stop::Signal)
            };
        }
        if p.stop.is_some() {
            // SAFETY: the thread is alive: it deregisters (under this lock)
            // before its call returns to the receiver loop.
            unsafe { libc::pthread_kill(p.thread, KICK) };
        }
    }
}

/// The answer for a caller whose `/proc/TID/status` is `status`, or `None`
/// when it has no signal to handle (see the module's doc).
pub fn judge(status: &str) -> Option<Errno> {
    let field = |name| crate::procfs::status_field(status, name);
    let mask = |name| field(name).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0);
    let unmasked = !mask("SigBlk:") & !mask("SigIgn:");
    let own = mask("SigPnd:") & unmasked;
    let shared = mask("ShdPnd:") & unmasked;
    let threads: u32 = field("Threads:").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    if own != 0 || (shared != 0 && threads == 1) {
        Some(ERESTARTSYS)
    } else if shared != 0 {
        Some(libc::EINTR)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{judge, ERESTARTSYS};

    fn status(pnd: &str, shd: &str, blk: &str, ign: &str, threads: u32) -> String {
        format!(
            "Name:\tx\nThreads:\t{threads}\nSigPnd:\t{pnd}\nShdPnd:\t{shd}\nSigBlk:\t{blk}\nSigIgn:\t{ign}\n"
        )
    }

    const ZERO: &str = "0000000000000000";
    const ALRM: &str = "0000000000002000";

    #[test]
    fn no_signal_to_handle_goes_on() {
        assert_eq!(judge(&status(ZERO, ZERO, ZERO, ZERO, 1)), None);
        assert_eq!(judge(&status(ZERO, ALRM, ALRM, ZERO, 1)), None, "blocked");
        assert_eq!(judge(&status(ALRM, ZERO, ZERO, ALRM, 1)), None, "ignored");
        assert_eq!(judge("garbage"), None);
    }

    #[test]
    fn the_kernel_decides_when_the_callers_thread_holds_the_signal() {
        assert_eq!(judge(&status(ZERO, ALRM, ZERO, ZERO, 1)), Some(ERESTARTSYS), "alarm, one thread");
        assert_eq!(judge(&status(ALRM, ZERO, ZERO, ZERO, 4)), Some(ERESTARTSYS), "tgkill'ed thread");
        // SIGTERM pending (ShdPnd 0x4000) after SIGALRM, one thread.
        assert_eq!(judge(&status(ZERO, "0000000000006000", ZERO, ZERO, 1)), Some(ERESTARTSYS));
    }

    #[test]
    fn a_process_wide_signal_among_threads_is_eintr() {
        assert_eq!(judge(&status(ZERO, ALRM, ZERO, ZERO, 3)), Some(libc::EINTR));
    }
}
