//! Receiver threads. One thread at a time waits in `SECCOMP_IOCTL_NOTIF_RECV`
//! and handles the call it receives to the end, on its own thread (with
//! `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` the caller and the receiver take turns
//! on one CPU), then waits again.
//!
//! Only one waits because the kernel's wait in `NOTIF_RECV` is not exclusive:
//! every waiting thread is woken by every trapped call, and all but one go
//! back to sleep. `cargo xtask bench` measured that herd at one extra wake-up,
//! one context switch and often a migration per call: about 8 µs of the 20 µs a
//! connect cost with two waiting threads.
//!
//! Calls from several threads at once are handled in parallel: a receiver
//! whose `NOTIF_RECV` returned at once (a call was queued) from another caller
//! than its previous call's checks whether more wait, and if so wakes a spare
//! to receive them meanwhile; a helper keeps receiving while calls still
//! queue, and parks once they stop. (A single-threaded program's next call is
//! often queued already when the receiver comes back, since with sync wake-up
//! it runs on the receiver's CPU first; it cannot have two queued, so that
//! check, a `poll`, is skipped for it.)
//!
//! A call that waits long must not hold up the others. A handler about to wait
//! on the network hands the receiving role on at once ([`hand_off`]). For the
//! rest (a blocking connect to loopback that stalls, a tracee whose memory
//! faults slowly) a watcher thread looks while calls are in flight (every
//! millisecond, up to every 8 while calls keep being answered): when a call
//! waits in the listener, no thread is receiving and no call was answered for
//! a whole tick, it wakes the reserve (below). Spares that are not needed leave after
//! a while; the watcher sleeps while no call is in flight.
//!
//! Receivers are finite (at most [`MAX_THREADS`], and an unprivileged supervisor shares
//! its thread quota, `RLIMIT_NPROC`, with the program), they are added one at a time, and a
//! program can hold any number of them with calls that wait (allowed blocking connects to a
//! listener that never answers): a leak attempt queued behind such calls would wait
//! unreceived, and a program that ends before it is received leaves it out of the report. So
//! one thread, the *reserve*, is started with the first receiver and does not wait in a call
//! it takes while it is the reserve. When the watcher finds a call unreceived, it wakes the
//! reserve, which receives every queued call: it judges and reports each as usual (a
//! refusal never waits), and before a call would wait (a blocking connect, send or accept, a
//! call held for a kernel layer still loading; see [`may_wait`]) it starts a new reserve
//! and goes on with the call as an ordinary receiver ([`step_down`]): one handling, its
//! events and side effects once. Only when no thread can be had (the limit, the quota) is
//! such a call refused with `EAGAIN` (reported, and said on stderr). A reserve that is
//! itself held (a copy of the program's memory that never completes) while every receiver
//! is held leaves no one to receive: after [`STARVED_LIMIT`] of that the program is killed
//! and the run fails ([`Receivers::starved`]). Once the queue is empty the reserve hands the
//! receiving role back to a receiver and parks.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::{handlers, Ctx};

/// Upper bound on receiver threads (each blocked call holds one).
const MAX_THREADS: usize = 1024;
/// How often the watcher looks for calls that nobody receives.
const WATCH_TICK: Duration = Duration::from_millis(1);
/// The watcher's longest tick, while calls keep being answered: how long a call can
/// wait behind a receiver that has just stalled before the watcher looks again.
const WATCH_TICK_BUSY: Duration = Duration::from_millis(8);
/// Ticks without a call in flight before the watcher sleeps.
const QUIET_TICKS: u32 = 100;
/// A `NOTIF_RECV` that returns sooner than this found a call already queued.
const BACKLOG_HINT: Duration = Duration::from_micros(5);
/// How long a spare thread waits to be needed before it leaves.
const SPARE_LINGER: Duration = Duration::from_secs(10);
/// How often the parked reserve looks whether the run has ended.
const RESERVE_NAP: Duration = Duration::from_secs(1);
/// How long calls may wait with no thread able to receive them (every receiver held, the
/// reserve too, and no thread to be had) before the program is killed.
pub const STARVED_LIMIT: Duration = Duration::from_secs(1);

thread_local! {
    /// Set on the reserve receiver (see the module's doc).
    static RESERVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether a call this thread handles may wait (in a blocking socket call, for the kernel
/// layer) as it is: not on the reserve receiver, which has to be free for the next call; it
/// first hands the reserve's role on ([`step_down`]).
pub fn may_wait() -> bool {
    !RESERVE.with(Cell::get)
}

/// Whether this thread's call may wait: on the reserve, only once it has handed the role on
/// ([`step_down`]).
pub fn may_wait_now(ctx: &Arc<Ctx>) -> bool {
    may_wait() || step_down(ctx)
}

/// On the reserve, before its call waits: starts a new reserve (asked to go on receiving the
/// queue) and makes this thread an ordinary receiver, which goes on with the call. False
/// when no thread can be had: the call must not wait (it is refused with `EAGAIN`).
pub fn step_down(ctx: &Arc<Ctx>) -> bool {
    let receivers = &ctx.receivers;
    // This thread becomes a receiver: it counts against the limit from now.
    if !receivers.take_slot() {
        return false;
    }
    receivers.reserve_wanted.store(true, Ordering::Release);
    if !start_reserve(ctx) {
        // This thread stays the reserve, and is not held: the watcher must not count it so.
        receivers.reserve_wanted.store(false, Ordering::Release);
        receivers.total.fetch_sub(1, Ordering::AcqRel);
        return false;
    }
    RESERVE.with(|r| r.set(false));
    true
}

/// Starts a reserve thread; false when it cannot be made.
fn start_reserve(ctx: &Arc<Ctx>) -> bool {
    let owned = ctx.clone();
    match std::thread::Builder::new().name("sockstrace-rsrv".into()).spawn(move || reserve(owned)) {
        Ok(handle) => {
            *ctx.receivers.reserve_thread() = Some(handle.thread().clone());
            ctx.receivers.want_reserve_if_asked();
            true
        }
        Err(e) => {
            crate::report_writer::human::say!("sockstrace: cannot start a reserve receiver: {e}");
            false
        }
    }
}

#[derive(Default)]
pub struct Receivers {
    /// Threads waiting in (or about to enter) `NOTIF_RECV`: 0 or 1, more only
    /// while helpers take calls that queue.
    receiving: AtomicUsize,
    /// Calls received and not yet answered.
    in_flight: AtomicUsize,
    /// Calls answered so far: the watcher's sign that receivers are not stalled.
    ended: AtomicUsize,
    /// The thread whose call was received last, by any receiver.
    last_caller: std::sync::atomic::AtomicU32,
    /// Receiver threads alive (receiving, handling or spare).
    total: AtomicUsize,
    spares: Mutex<Spares>,
    spare_wanted: Condvar,
    watcher: OnceLock<Thread>,
    watcher_asleep: AtomicBool,
    /// The reserve receiver, and the watcher's request that it receive.
    reserve: Mutex<Option<Thread>>,
    reserve_wanted: AtomicBool,
    /// Calls the reserve refused because they would have waited and no thread could be had.
    refused_busy: AtomicUsize,
    /// Since when calls wait with no thread able to take them (see [`STARVED_LIMIT`]).
    starved_since: Mutex<Option<Instant>>,
    /// Set once the program was killed for it.
    starved: AtomicBool,
}

#[derive(Default)]
struct Spares {
    /// Threads waiting on `spare_wanted`.
    parked: usize,
    /// Parked threads asked to take the receiving role.
    wanted: usize,
}

impl Receivers {
    /// Calls received and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn spares(&self) -> MutexGuard<'_, Spares> {
        self.spares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims the receiving role; false when another thread holds it.
    fn claim(&self) -> bool {
        if self.receiving.fetch_add(1, Ordering::AcqRel) == 0 {
            return true;
        }
        self.receiving.fetch_sub(1, Ordering::AcqRel);
        false
    }

    /// Parks this thread until it is wanted as a receiver (true) or has
    /// lingered long enough to leave (false).
    fn wait_as_spare(&self) -> bool {
        let mut spares = self.spares();
        spares.parked += 1;
        loop {
            if spares.wanted > 0 {
                spares.wanted -= 1;
                spares.parked -= 1;
                return true;
            }
            let (guard, wait) =
                self.spare_wanted.wait_timeout(spares, SPARE_LINGER).unwrap_or_else(PoisonError::into_inner);
            spares = guard;
            if wait.timed_out() && spares.wanted == 0 {
                spares.parked -= 1;
                return false;
            }
        }
    }

    fn call_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.watcher_asleep.load(Ordering::SeqCst) {
            if let Some(watcher) = self.watcher.get() {
                watcher.unpark();
            }
        }
    }

    fn call_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.ended.fetch_add(1, Ordering::Release);
    }

    /// Counts a call the reserve refused because it would have waited and no thread could be
    /// had; the first one is said.
    pub fn refused_busy(&self) {
        if self.refused_busy.fetch_add(1, Ordering::AcqRel) == 0 {
            crate::report_writer::human::say!(
                "sockstrace: every receiver is held by a call that waits ({} threads); calls that would \
                 wait are refused with EAGAIN until one is free",
                self.total.load(Ordering::Acquire)
            );
        }
    }

    /// Calls the reserve refused because they would have waited, for the run's end.
    pub fn busy_refusals(&self) -> usize {
        self.refused_busy.load(Ordering::Acquire)
    }

    /// Counts one more receiver thread; false (nothing counted) at [`MAX_THREADS`].
    fn take_slot(&self) -> bool {
        if self.total.fetch_add(1, Ordering::AcqRel) >= MAX_THREADS {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Asks the reserve to receive.
    fn want_reserve(&self) {
        self.reserve_wanted.store(true, Ordering::Release);
        self.want_reserve_if_asked();
    }

    /// Wakes the reserve if it is asked to receive.
    fn want_reserve_if_asked(&self) {
        if self.reserve_wanted.load(Ordering::Acquire) {
            if let Some(reserve) = self.reserve_thread().as_ref() {
                reserve.unpark();
            }
        }
    }

    fn reserve_thread(&self) -> MutexGuard<'_, Option<Thread>> {
        self.reserve.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the program was killed because no thread could take its calls.
    pub fn starved(&self) -> bool {
        self.starved.load(Ordering::Acquire)
    }
}

/// Starts the first receiver, the reserve and the watcher.
pub fn start(ctx: &Arc<Ctx>) {
    spawn(ctx);
    // Without it calls are still served; a herd of calls that wait holds up the next ones.
    start_reserve(ctx);
    let owned = ctx.clone();
    match std::thread::Builder::new().name("sockstrace-watch".into()).spawn(move || watch(owned)) {
        Ok(handle) => {
            let _ = ctx.receivers.watcher.set(handle.thread().clone());
        }
        // Calls are still served; only a call stalled in a handler holds up the next ones.
        Err(e) => crate::report_writer::human::say!("sockstrace: cannot start the receivers' watcher: {e}"),
    }
}

/// Before a call that waits on the network: makes sure another thread takes
/// the receiving role, so the wait holds up no other call.
pub fn hand_off(ctx: &Arc<Ctx>) {
    if ctx.receivers.receiving.load(Ordering::Acquire) == 0 {
        add_receiver(ctx);
    }
}

/// Wakes a spare thread to receive, or starts one; false when neither can be done.
fn add_receiver(ctx: &Arc<Ctx>) -> bool {
    wake_spare(&ctx.receivers) || spawn(ctx)
}

/// Wakes a parked spare thread to receive; false when none is parked.
fn wake_spare(receivers: &Receivers) -> bool {
    let mut spares = receivers.spares();
    if spares.parked > spares.wanted {
        spares.wanted += 1;
        receivers.spare_wanted.notify_one();
        return true;
    }
    false
}

/// Starts a receiver thread; false at the limit or when the thread cannot be made.
fn spawn(ctx: &Arc<Ctx>) -> bool {
    let receivers = &ctx.receivers;
    if !receivers.take_slot() {
        return false;
    }
    let owned = ctx.clone();
    let spawned = std::thread::Builder::new().name("sockstrace-recv".into()).spawn(move || receive(owned));
    if let Err(e) = spawned {
        receivers.total.fetch_sub(1, Ordering::AcqRel);
        crate::report_writer::human::say!("sockstrace: cannot start a receiver thread: {e}");
        return false;
    }
    true
}

fn receive(ctx: Arc<Ctx>) {
    super::block_signals_in_this_thread();
    // Calls this thread performs can be interrupted for their caller.
    super::interrupt::accept_kicks();
    receive_calls(&ctx);
}

/// The receiver's loop, until the thread leaves (the run's end, or a spare not needed).
fn receive_calls(ctx: &Arc<Ctx>) {
    let receivers = &ctx.receivers;
    // A spare woken to help receives even while another thread holds the role.
    let mut helping = false;
    // The caller of the last call this thread took: a thread has at most one call in the
    // listener, so its next call, received at once, says nothing of a backlog.
    let mut last_caller = 0;
    // Whether our last NOTIF_RECV found a call already queued, and whether its caller was
    // not the one of the call any thread received before it.
    let mut found_queued = false;
    let mut callers_differ = false;
    loop {
        if helping {
            receivers.receiving.fetch_add(1, Ordering::AcqRel);
            helping = false;
        } else if !receivers.claim() {
            // Another thread receives; while calls still queue, keep helping: while our last
            // call was queued already when we asked for it, or came from another caller than
            // the call received before it. A single caller's next call is often queued when
            // we come back (sync wake-up runs it first), and the receiving thread takes it;
            // helping then would put two threads in NOTIF_RECV for every call of it (the
            // herd above), for good.
            if (found_queued || callers_differ) && ctx.notifier.pending() {
                helping = true;
                continue;
            }
            if receivers.wait_as_spare() {
                helping = true;
                continue;
            }
            break;
        }
        let asked = Instant::now();
        let received = ctx.notifier.recv();
        let waited = asked.elapsed();
        found_queued = waited < BACKLOG_HINT;
        receivers.receiving.fetch_sub(1, Ordering::AcqRel);
        match received {
            Ok(n) => {
                callers_differ = receivers.last_caller.swap(n.tid, Ordering::AcqRel) != n.tid;
                // A call that was already queued hints at calls from several threads at once:
                // if more wait, another thread receives them while we handle this one.
                if found_queued && n.tid != last_caller && ctx.notifier.pending() {
                    add_receiver(ctx);
                }
                last_caller = n.tid;
                receivers.call_started();
                handlers::handle(ctx, n);
                receivers.call_ended();
            }
            // Every traced process is gone: nothing will come again.
            Err(libc::ENOENT) if ctx.notifier.hung_up() => break,
            // The caller died before we took its call, or a signal: wait again.
            Err(libc::ENOENT) | Err(libc::EINTR) => {}
            Err(e) => {
                crate::report_writer::human::say!(
                    "sockstrace: receiving a trapped call failed: {}",
                    std::io::Error::from_raw_os_error(e)
                );
                break;
            }
        }
    }
    receivers.total.fetch_sub(1, Ordering::AcqRel);
}

/// The reserve: parked until the watcher finds a call that nobody receives, then receives
/// every queued call, and once none is queued gives the receiving role back and parks. A call
/// that would wait makes it an ordinary receiver ([`step_down`]), under a new reserve.
fn reserve(ctx: Arc<Ctx>) {
    super::block_signals_in_this_thread();
    super::interrupt::accept_kicks();
    RESERVE.with(|r| r.set(true));
    let receivers = &ctx.receivers;
    loop {
        while !receivers.reserve_wanted.swap(false, Ordering::AcqRel) {
            if ctx.notifier.hung_up() {
                return;
            }
            std::thread::park_timeout(RESERVE_NAP);
        }
        // `claim` fails while another thread receives: that one takes the calls.
        while ctx.notifier.pending() && receivers.claim() {
            let received = ctx.notifier.recv();
            receivers.receiving.fetch_sub(1, Ordering::AcqRel);
            match received {
                Ok(n) => {
                    receivers.last_caller.store(n.tid, Ordering::Release);
                    receivers.call_started();
                    handlers::handle(&ctx, n);
                    receivers.call_ended();
                    if may_wait() {
                        // Stepped down: another thread is the reserve now.
                        receive_calls(&ctx);
                        return;
                    }
                }
                Err(libc::ENOENT) if ctx.notifier.hung_up() => return,
                Err(libc::ENOENT) | Err(libc::EINTR) => {}
                Err(e) => {
                    crate::report_writer::human::say!(
                        "sockstrace: the reserve receiver cannot receive: {}",
                        std::io::Error::from_raw_os_error(e)
                    );
                    return;
                }
            }
        }
        // The next call goes to an ordinary receiver again.
        if receivers.receiving.load(Ordering::Acquire) == 0 {
            add_receiver(&ctx);
        }
    }
}

/// Notes whether calls wait with no thread able to take them (`Some(now)`), and kills the
/// program once they have for [`STARVED_LIMIT`]: what it tries meanwhile is never received,
/// so never judged nor reported, and a run must not end saying it saw everything.
fn starve_check(ctx: &Arc<Ctx>, starved_now: Option<Instant>) {
    let receivers = &ctx.receivers;
    let mut since = receivers.starved_since.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(now) = starved_now else {
        *since = None;
        return;
    };
    let first = *since.get_or_insert(now);
    if now.duration_since(first) < STARVED_LIMIT || receivers.starved.swap(true, Ordering::AcqRel) {
        return;
    }
    crate::report_writer::human::say!(
        "sockstrace: no thread could take the program's calls for {:?} (every receiver and the reserve \
         held by calls that wait, {} threads); the program is killed and the run fails",
        STARVED_LIMIT,
        receivers.total.load(Ordering::Acquire)
    );
    ctx.tree.kill_all(None);
}

/// The watcher: brings in the reserve when a call waits and nobody receives it.
fn watch(ctx: Arc<Ctx>) {
    super::block_signals_in_this_thread();
    let receivers = &ctx.receivers;
    let mut quiet = 0;
    let mut ended_before = receivers.ended.load(Ordering::Acquire);
    let mut tick = WATCH_TICK;
    loop {
        std::thread::sleep(tick);
        // Calls we perform end early when their caller has a signal to handle or is gone.
        super::interrupt::check(Instant::now());
        // A call waits and nobody receives it. Only a stall if no call was answered during
        // the whole tick: a receiver that just answered is about to receive again, and
        // waking a spare then would only make two threads race for the next call.
        let ended = receivers.ended.load(Ordering::Acquire);
        let stalled = ended == ended_before;
        ended_before = ended;
        // While calls are answered, look less often (a storm of quick calls would otherwise
        // wake us a thousand times a second); as soon as a tick passes without one, every
        // millisecond again.
        tick = if stalled { WATCH_TICK } else { (tick * 2).min(WATCH_TICK_BUSY) };
        let unreceived =
            stalled && receivers.receiving.load(Ordering::Acquire) == 0 && ctx.notifier.pending();
        if unreceived {
            // The reserve takes the queue; if it is missing, or has not taken up the last
            // request (held itself, on the program's memory), one more receiver.
            let reserve_held =
                receivers.reserve_thread().is_none() || receivers.reserve_wanted.load(Ordering::Acquire);
            let starved = reserve_held && !add_receiver(&ctx);
            receivers.want_reserve();
            starve_check(&ctx, starved.then(Instant::now));
        } else {
            starve_check(&ctx, None);
        }
        if receivers.in_flight.load(Ordering::Acquire) > 0 {
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet < QUIET_TICKS {
            continue;
        }
        if ctx.notifier.hung_up() {
            return;
        }
        // Asleep until a call starts (call_started unparks): the flag is set
        // before in_flight is read again, so no start is missed.
        receivers.watcher_asleep.store(true, Ordering::SeqCst);
        if receivers.in_flight.load(Ordering::SeqCst) == 0 {
            std::thread::park();
        }
        receivers.watcher_asleep.store(false, Ordering::SeqCst);
        quiet = 0;
    }
}
