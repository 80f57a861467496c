//! Receiver threads: each waits in `SECCOMP_IOCTL_NOTIF_RECV` and handles the
//! call it receives to the end, on the same thread (no hand-off between
//! threads: with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` the caller and the
//! receiver take turns on one CPU). A handler about to make a call that may
//! block first makes sure another receiver is waiting, so one slow connect
//! never holds up the others; idle receivers beyond a few leave again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{handlers, Ctx};

/// Receivers started with the program.
pub const INITIAL: usize = 2;
/// A receiver leaves after a call when at least this many others are idle.
const KEEP_IDLE: usize = 2;
/// Upper bound on receiver threads (each blocked call holds one).
const MAX_THREADS: usize = 1024;

#[derive(Default)]
pub struct Receivers {
    idle: AtomicUsize,
    total: AtomicUsize,
    in_flight: AtomicUsize,
}

impl Receivers {
    /// Calls received and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

pub fn start(ctx: &Arc<Ctx>) {
    for _ in 0..INITIAL {
        spawn(ctx);
    }
}

/// Makes sure some receiver is waiting for the next call.
pub fn ensure_spare(ctx: &Arc<Ctx>) {
    if ctx.receivers.idle.load(Ordering::Acquire) == 0 {
        spawn(ctx);
    }
}

fn spawn(ctx: &Arc<Ctx>) {
    let receivers = &ctx.receivers;
    if receivers.total.fetch_add(1, Ordering::AcqRel) >= MAX_THREADS {
        receivers.total.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let owned = ctx.clone();
    let spawned = std::thread::Builder::new().name("sockstrace-recv".into()).spawn(move || receive(owned));
    if let Err(e) = spawned {
        receivers.total.fetch_sub(1, Ordering::AcqRel);
        eprintln!("sockstrace: cannot start a receiver thread: {e}");
    }
}

fn receive(ctx: Arc<Ctx>) {
    super::block_signals_in_this_thread();
    let receivers = &ctx.receivers;
    loop {
        receivers.idle.fetch_add(1, Ordering::AcqRel);
        let received = ctx.notifier.recv();
        receivers.idle.fetch_sub(1, Ordering::AcqRel);
        match received {
            Ok(n) => {
                receivers.in_flight.fetch_add(1, Ordering::AcqRel);
                handlers::handle(&ctx, n);
                receivers.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            // The caller died before we took its call, or a signal: wait again.
            Err(libc::ENOENT) | Err(libc::EINTR) => {}
            Err(e) => {
                eprintln!(
                    "sockstrace: receiving a trapped call failed: {}",
                    std::io::Error::from_raw_os_error(e)
                );
                break;
            }
        }
        if receivers.idle.load(Ordering::Acquire) >= KEEP_IDLE {
            break;
        }
    }
    receivers.total.fetch_sub(1, Ordering::AcqRel);
}
