//! How much of the program's memory the supervisor copies: bounded per call
//! and for all calls in flight together, whatever the program sends.
//!
//! A send we perform is copied out of the caller first (so that no racing
//! thread can change it after our decision). Without bounds, a program with
//! many threads blocked in large sends would make the supervisor hold all of
//! it at once. The bounds keep to what the kernel's own rules allow:
//! - a stream send may be short (the caller's loop sends the rest), so one
//!   stream message copies at most [`STREAM_CHUNK`];
//! - a datagram cannot exceed [`DATAGRAM_MAX`] (UDP's 16-bit length): larger
//!   ones fail with `EMSGSIZE`, as in the kernel;
//! - control data cannot exceed the kernel's `net.core.optmem_max` (`ENOBUFS`);
//! - `sendmmsg` may send fewer messages than asked: one call copies at most
//!   [`CALL_MAX`] (but always its first message);
//! - all calls in flight together hold at most [`TOTAL_MAX`]; a call that
//!   would exceed it waits until others finish (or its caller gives up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The most payload one stream message copies.
pub const STREAM_CHUNK: usize = 256 << 10;
/// The largest datagram payload the kernel sends (UDP's length field).
pub const DATAGRAM_MAX: usize = 65_535;
/// The most one call copies, summed over its messages (`sendmmsg`).
pub const CALL_MAX: usize = 1 << 20;
/// The most all calls in flight copy together.
pub const TOTAL_MAX: usize = 32 << 20;
/// `net.core.optmem_max` when it cannot be read (the kernel's default).
const OPTMEM_DEFAULT: usize = 20_480;
/// How often a waiting call checks that its caller still waits.
const RECHECK: Duration = Duration::from_millis(50);

/// The limit on one message's control data: the kernel's `optmem_max`.
pub fn control_max() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/optmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(OPTMEM_DEFAULT)
    })
}

/// How many payload bytes to copy for one message of `len` bytes; `None`
/// when a datagram is too large to send at all (`EMSGSIZE`).
pub fn payload_len(is_stream: bool, len: u64) -> Option<usize> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if is_stream {
        Some(len.min(STREAM_CHUNK))
    } else if len <= DATAGRAM_MAX {
        Some(len)
    } else {
        None
    }
}

/// Bytes reserved by calls in flight.
pub struct CopyBudget {
    limit: usize,
    used: Mutex<usize>,
    freed: Condvar,
    /// Calls waiting on `freed` (changed under `used`'s lock): a grant returned while none
    /// waits wakes nobody, without the `futex` call a notify always makes.
    waiting: AtomicUsize,
}

impl Default for CopyBudget {
    fn default() -> Self {
        CopyBudget::new(TOTAL_MAX)
    }
}

/// A reservation, returned when dropped.
pub struct Grant<'a> {
    budget: &'a CopyBudget,
    bytes: usize,
}

impl CopyBudget {
    pub fn new(limit: usize) -> Self {
        CopyBudget { limit, used: Mutex::new(0), freed: Condvar::new(), waiting: AtomicUsize::new(0) }
    }

    /// Reserves `bytes` (at most the limit), waiting while other calls hold
    /// too much; `None` once `still_wanted` says the caller left the call.
    pub fn reserve(&self, bytes: usize, still_wanted: impl Fn() -> bool) -> Option<Grant<'_>> {
        let bytes = bytes.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + bytes > self.limit {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let (guard, _) = self.freed.wait_timeout(used, RECHECK).unwrap_or_else(|e| e.into_inner());
            used = guard;
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if *used + bytes > self.limit && !still_wanted() {
                return None;
            }
        }
        *used += bytes;
        Some(Grant { budget: self, bytes })
    }

    /// Reserves `bytes` (at most the limit) if they are free now; `None` otherwise.
    pub fn try_reserve(&self, bytes: usize) -> Option<Grant<'_>> {
        let bytes = bytes.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if *used + bytes > self.limit {
            return None;
        }
        *used += bytes;
        Some(Grant { budget: self, bytes })
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        *self.used.lock().unwrap()
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        // Read under the lock: a waiter counts itself before it releases the lock to wait.
        let waiting = self.budget.waiting.load(Ordering::Relaxed);
        drop(used);
        if waiting > 0 {
            self.budget.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn stream_sends_are_cut_to_a_chunk_and_datagrams_refused_past_the_maximum() {
        assert_eq!(payload_len(true, 10), Some(10));
        assert_eq!(payload_len(true, 16 << 20), Some(STREAM_CHUNK));
        assert_eq!(payload_len(true, u64::MAX), Some(STREAM_CHUNK));
        assert_eq!(payload_len(false, DATAGRAM_MAX as u64), Some(DATAGRAM_MAX));
        assert_eq!(payload_len(false, DATAGRAM_MAX as u64 + 1), None);
        assert_eq!(payload_len(false, u64::MAX), None);
    }

    #[test]
    fn control_limit_is_the_kernels() {
        assert!(control_max() >= 1024);
        assert!(control_max() <= 64 << 20);
    }

    #[test]
    fn grants_are_returned_when_dropped() {
        let budget = CopyBudget::new(100);
        let a = budget.reserve(60, || true).unwrap();
        let b = budget.reserve(40, || true).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_reservation_past_the_limit_waits_for_others() {
        let budget = Arc::new(CopyBudget::new(100));
        let held = budget.reserve(80, || true).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (budget, got) = (budget.clone(), got.clone());
            std::thread::spawn(move || {
                let grant = budget.reserve(50, || true);
                got.store(grant.is_some(), Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(120));
        assert!(!got.load(Ordering::SeqCst), "reserved past the limit");
        drop(held);
        waiter.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_caller_that_left_stops_waiting() {
        let budget = CopyBudget::new(100);
        let _held = budget.reserve(100, || true).unwrap();
        assert!(budget.reserve(1, || false).is_none());
        // More than the limit is cut to the limit, never a deadlock by itself.
        drop(_held);
        assert!(budget.reserve(1000, || true).is_some());
    }
}
