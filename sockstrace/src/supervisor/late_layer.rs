//! The kernel layer completing itself after the program has started.
//!
//! Loading the layer is mostly the kernel's verifier: tens of milliseconds that every run
//! would wait before its program starts. Where nothing needs the whole layer before the
//! program's first trapped call, the program starts as soon as the socket-creation hook is
//! attached to its fresh cgroup (`kernel::object::FIRST`: who made a socket is known only at
//! its creation, which is not trapped), while a thread loads the other programs and attaches
//! them; the supervisor holds every trapped call until then ([`LateLayer::wait`]). Sound
//! because nothing leaves the program without a trapped call first: `connect`, `sendto` with
//! an address, `sendmsg`, `sendmmsg`, `bind`, `listen`, `accept` and the routing options are
//! trapped, io_uring is refused, and a socket can send without an address only once connected.
//! So the layer judges every packet the program sends, as when it was attached before the
//! start, and every socket has its creation facts. Under `--kernel required`, a layer that
//! fails has every trapped call refused and the program killed.
//!
//! A program that ends before the layer is complete made no trapped call: the rest is
//! abandoned, and the layers line says so.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::notif::{Notifier, Reply};
use super::Ctx;
use crate::kernel::Early;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The programs are loading; calls wait.
    Loading,
    /// Being attached; the run's end waits for it.
    Attaching,
    /// Attached, or failed: calls go on.
    Settled,
    /// The run ended first; nothing is attached.
    Abandoned,
}

/// Where the kernel layer is, for the calls that wait for it and the end of the run.
pub struct LateLayer {
    /// Settled or abandoned: what every call asks first, without the lock.
    open: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
    /// The layers line's text for the kernel layer, once settled.
    text: Mutex<Option<String>>,
    /// The layer failed to complete.
    failed: std::sync::atomic::AtomicBool,
    /// Set (before the waiting calls are let go) when it failed under `--kernel required`, or
    /// when the run ended while it loaded: every trapped call is refused.
    refuse_all: std::sync::atomic::AtomicBool,
    /// Calls answered CONTINUE once the layer settles ([`LateLayer::hold_continue`]): held
    /// here, not on a thread each. Changed only under `state`'s lock.
    held: Mutex<Vec<u64>>,
    /// A call has waited for the layer: its loaders have their priority back.
    awaited: std::sync::atomic::AtomicBool,
    /// Who answers them.
    notifier: std::sync::OnceLock<Arc<Notifier>>,
}

impl LateLayer {
    /// A layer that was settled before the program started (attached, failed or off).
    pub fn settled() -> Self {
        Self::with(State::Settled)
    }

    fn with(state: State) -> Self {
        LateLayer {
            open: std::sync::atomic::AtomicBool::new(matches!(state, State::Settled | State::Abandoned)),
            state: Mutex::new(state),
            changed: Condvar::new(),
            text: Mutex::new(None),
            failed: std::sync::atomic::AtomicBool::new(false),
            refuse_all: std::sync::atomic::AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            awaited: std::sync::atomic::AtomicBool::new(false),
            notifier: std::sync::OnceLock::new(),
        }
    }

    /// A call waits for the layer: the threads completing it, which yield to the program
    /// while nothing waits for them (`LOADER_NICE`), get their priority back, so that a
    /// program whose other threads keep the cores busy does not starve them (raising it
    /// needs root, which a late layer has).
    fn caller_waits(&self) {
        // SeqCst, as the completing thread's check after lowering its priority (`join`): one of
        // the two sees the other.
        if self.awaited.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        for tid in super::sys::threads_named(LOADER_THREAD) {
            let _ = super::sys::set_thread_priority(tid, 0);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a call until the layer is attached or has failed; whether the call may go on
    /// (not when the layer failed under `--kernel required`).
    pub fn wait(&self) -> bool {
        if !self.open.load(std::sync::atomic::Ordering::Acquire) {
            self.caller_waits();
            let mut state = self.lock();
            while matches!(*state, State::Loading | State::Attaching) {
                state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
        }
        !self.refuse_all.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Until the run has ended (test switch `late-layer-stall`: the rest of the layer is never
    /// ready before the program ends).
    fn wait_for_the_end(&self) {
        let mut state = self.lock();
        while *state != State::Abandoned {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn fail(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the layer failed to complete while the program ran.
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the layer is still completing itself.
    pub fn is_loading(&self) -> bool {
        !self.open.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Just before attaching: false when the run has ended meanwhile.
    fn begin_attach(&self) -> bool {
        let mut state = self.lock();
        if *state == State::Loading {
            *state = State::Attaching;
            true
        } else {
            false
        }
    }

    /// Before a failure is acted on: holds the run's end ([`LateLayer::end`] waits) until the
    /// failure has settled, so that the end names the failure, not a layer still loading;
    /// false when the run has ended already.
    fn hold_for_failure(&self) -> bool {
        let mut state = self.lock();
        match *state {
            State::Loading | State::Attaching => {
                *state = State::Attaching;
                true
            }
            State::Settled | State::Abandoned => false,
        }
    }

    fn settle(&self, text: String) {
        *self.text.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
        let mut state = self.lock();
        *state = State::Settled;
        self.open.store(true, std::sync::atomic::Ordering::Release);
        self.changed.notify_all();
        self.release_held(state);
    }

    /// Who answers the calls held for the layer (the run's listener).
    pub fn answer_with(&self, notifier: Arc<Notifier>) {
        let _ = self.notifier.set(notifier);
    }

    /// A call to be answered CONTINUE once the layer settles, without holding a thread: true
    /// when it is held (the layer is still completing itself), false when the call may be
    /// answered now. Answered CONTINUE when the layer is attached, refused (`EPERM`) when
    /// every call is (a failure under `--kernel required`, the run's end).
    pub fn hold_continue(&self, id: u64) -> bool {
        let state = self.lock();
        if !matches!(*state, State::Loading | State::Attaching) || self.notifier.get().is_none() {
            return false;
        }
        self.held.lock().unwrap_or_else(PoisonError::into_inner).push(id);
        drop(state);
        self.caller_waits();
        true
    }

    /// Answers the held calls, now that the layer settled or was abandoned (`state` is the
    /// held lock, so that no call is held after this).
    fn release_held(&self, state: std::sync::MutexGuard<'_, State>) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(PoisonError::into_inner));
        drop(state);
        let Some(notifier) = self.notifier.get() else { return };
        let reply = if self.refuse_all.load(std::sync::atomic::Ordering::Acquire) {
            Reply::Errno(libc::EPERM)
        } else {
            Reply::Continue
        };
        for id in held {
            // A caller gone meanwhile has nobody to answer.
            let _ = notifier.respond(id, reply);
        }
    }

    /// At the end of the run: the layer's text when it settled (waiting while it is being
    /// attached), `None` when it was still loading, which abandons it.
    pub fn end(&self) -> Option<String> {
        let mut state = self.lock();
        while *state == State::Attaching {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if self.abandon_locked(&mut state) {
            self.release_held(state);
            return None;
        }
        if *state == State::Abandoned {
            return None;
        }
        drop(state);
        self.text.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Once every traced process is gone: a layer still loading is abandoned at once, so that
    /// the calls held for it end now (refused: none has a caller left) and their events go
    /// out before the run's end stops waiting for calls in flight.
    pub fn abandon(&self) {
        let mut state = self.lock();
        if self.abandon_locked(&mut state) {
            self.release_held(state);
        }
    }

    fn abandon_locked(&self, state: &mut State) -> bool {
        if *state != State::Loading {
            return false;
        }
        *state = State::Abandoned;
        // The run has ended: a call still held for the layer has no caller left, and is
        // not performed (on our duplicate of its socket, it would still reach the network).
        self.refuse_all.store(true, std::sync::atomic::Ordering::Release);
        self.open.store(true, std::sync::atomic::Ordering::Release);
        self.changed.notify_all();
        true
    }
}

/// What the layer needs to complete itself.
pub struct Joining {
    pub early: Early,
    pub enforce: bool,
    /// Whether the fast path may run once the layer is complete (all its other conditions).
    pub fast_path_otherwise: bool,
    /// The cgroup's `cgroup.kill` under `--kernel required`: written if the layer fails, before
    /// the waiting calls go on.
    pub kill_if_failed: Option<std::fs::File>,
}

/// A layer still loading, for [`Ctx`].
pub fn loading() -> LateLayer {
    LateLayer::with(State::Loading)
}

/// The nice value of the threads that complete the layer while the program runs, until a
/// call waits for it: a share of about a tenth of a core against a busy thread of the
/// program's.
const LOADER_NICE: i32 = 10;
/// Their name: the completing thread's, which the loader threads it starts inherit.
const LOADER_THREAD: &str = "sockstrace-attach";

/// Completes the layer on a thread of its own, then lets the held calls go on (here, before
/// returning, if no thread can be started).
pub fn join(ctx: Arc<Ctx>, joining: Joining) {
    let layer_ctx = ctx.clone();
    // The work, where a thread that could not be started did not take it.
    type Slot = Arc<Mutex<Option<(Arc<Ctx>, Joining)>>>;
    let slot: Slot = Arc::new(Mutex::new(Some((ctx, joining))));
    let theirs = slot.clone();
    let run = move |slot: Slot| {
        if let Some((ctx, joining)) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
            complete(&ctx, joining);
        }
    };
    let spawned = std::thread::Builder::new().name(LOADER_THREAD.into()).spawn(move || {
        // The verifier's time (the layer's loader threads inherit this) must not hold the
        // program back: on a machine of few cores, it would share them with the program's
        // start. The first call that waits for the layer gives it back
        // (`LateLayer::caller_waits`), or did already, before this thread lowered it.
        let _ = super::sys::set_thread_priority(0, LOADER_NICE);
        if layer_ctx.kernel.awaited.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = super::sys::set_thread_priority(0, 0);
        }
        drop(layer_ctx);
        run(theirs)
    });
    if spawned.is_err() {
        run(slot);
    }
}

fn complete(ctx: &Arc<Ctx>, joining: Joining) {
    let Joining { early, enforce, fast_path_otherwise, kill_if_failed } = joining;
    let layer = &ctx.kernel;
    if crate::testing::disabled("late-layer-stall") {
        layer.wait_for_the_end();
    }
    let finished = match crate::testing::disabled("late-layer-fail") {
        true => Err(anyhow::anyhow!("failed to load (test switch late-layer-fail)")),
        false => early.finish(|| layer.begin_attach()),
    };
    let text = match finished {
        Ok(Some(witness)) => {
            let text = super::layer_text(&witness, enforce);
            let fast = fast_path_otherwise && witness.judges_every_inet_destination();
            ctx.fast_path.store(fast, std::sync::atomic::Ordering::Release);
            if let Ok(mut slot) = ctx.witness.write() {
                *slot = Some(witness);
            }
            text
        }
        // The run ended first.
        Ok(None) => return,
        Err(err) => {
            // Killing the program ends the run: its end must then find the failure.
            if !layer.hold_for_failure() {
                return;
            }
            if let Some(mut kill) = kill_if_failed {
                // Every trapped call is refused from now on; the program goes.
                layer.refuse_all.store(true, std::sync::atomic::Ordering::Release);
                use std::io::Write as _;
                if let Err(e) = kill.write_all(b"1") {
                    crate::report_writer::human::say!(
                        "sockstrace: error: killing the program after the kernel layer failed: {e}"
                    );
                }
            }
            layer.fail();
            super::off_because(&err)
        }
    };
    layer.settle(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_wait_until_the_layer_settles() {
        let layer = Arc::new(loading());
        let waiter = {
            let layer = layer.clone();
            std::thread::spawn(move || layer.wait())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished(), "a call went on while the layer was loading");
        assert!(layer.begin_attach());
        layer.settle("on".into());
        assert!(waiter.join().unwrap(), "the call may go on");
        assert_eq!(layer.end().as_deref(), Some("on"));
    }

    #[test]
    fn a_layer_that_failed_under_kernel_required_refuses_every_call() {
        let layer = loading();
        layer.refuse_all.store(true, std::sync::atomic::Ordering::Release);
        layer.fail();
        layer.settle("off (failed)".into());
        assert!(!layer.wait());
        assert!(layer.failed());
    }

    /// A required run's program is killed when its layer fails, which ends the run: the end
    /// must name the failure (CI once saw "still loading" when the end came between the kill
    /// and the failure's settling).
    #[test]
    fn an_end_during_a_failure_waits_for_it_and_names_it() {
        let layer = Arc::new(loading());
        assert!(layer.hold_for_failure());
        let end = {
            let layer = layer.clone();
            std::thread::spawn(move || layer.end())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!end.is_finished(), "the end did not wait for the failure");
        layer.fail();
        layer.settle("off (failed to load)".into());
        assert_eq!(end.join().unwrap().as_deref(), Some("off (failed to load)"));
        let ended = loading();
        assert!(ended.end().is_none());
        assert!(!ended.hold_for_failure(), "nothing to act on after the end");
    }

    #[test]
    fn an_end_before_the_layer_abandons_it() {
        let layer = loading();
        assert!(layer.end().is_none());
        assert!(!layer.begin_attach(), "nothing is attached after the end");
        // A call still held for it has no caller left: it is not performed.
        assert!(!layer.wait(), "a call held past the run's end goes on");
    }

    /// The loaders yield to the program's start, and get their priority back as soon as a
    /// call waits for them.
    #[test]
    fn a_call_that_waits_gives_the_loaders_their_priority_back() {
        if !nix::unistd::geteuid().is_root() {
            crate::testing::skipped("raising a thread's priority needs root");
            return;
        }
        let priority = |tid: libc::pid_t| {
            // SAFETY: plain integer arguments. (-1 is a valid nice value: errno is not asked.)
            unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
        };
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let loader = std::thread::Builder::new()
            .name(LOADER_THREAD.into())
            .spawn(move || {
                super::super::sys::set_thread_priority(0, LOADER_NICE).unwrap();
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        let tid = tid_rx.recv().unwrap();
        assert_eq!(priority(tid), LOADER_NICE);
        let layer = Arc::new(loading());
        let waiter = {
            let layer = layer.clone();
            std::thread::spawn(move || layer.wait())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while priority(tid) != 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(priority(tid), 0, "the loader still yields while a call waits for it");
        assert!(layer.begin_attach());
        layer.settle("on".into());
        assert!(waiter.join().unwrap());
        drop(done_tx);
        loader.join().unwrap();
    }

    #[test]
    fn a_settled_layer_lets_calls_through() {
        let layer = LateLayer::settled();
        assert!(layer.wait());
    }
}
