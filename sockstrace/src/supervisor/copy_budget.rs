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
//! - all calls in flight together hold at most [`TOTAL_MAX`], and no call ever
//!   waits for room ([`CopyBudget::grant`]): a wait would come before the send is
//!   judged, and a program that holds the budget with sends that stall would keep
//!   its next leak from being judged and reported. A stream send is cut to the
//!   room left (at least [`STREAM_FLOOR`]: a short send, which the caller's loop
//!   completes); a datagram cannot be cut, and is given its room over the limit
//!   if need be: at most one datagram (64 KiB and its control data) for each call
//!   in flight beyond [`TOTAL_MAX`].

use std::sync::Mutex;

/// The most payload one stream message copies.
pub const STREAM_CHUNK: usize = 256 << 10;
/// The largest datagram payload the kernel sends (UDP's length field).
pub const DATAGRAM_MAX: usize = 65_535;
/// The most one call copies, summed over its messages (`sendmmsg`).
pub const CALL_MAX: usize = 1 << 20;
/// The most all calls in flight copy together.
pub const TOTAL_MAX: usize = 32 << 20;
/// The least payload a stream send is given while the budget is used up.
pub const STREAM_FLOOR: usize = 16 << 10;
/// `net.core.optmem_max` when it cannot be read (the kernel's default).
const OPTMEM_DEFAULT: usize = 20_480;

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

/// Bytes granted to calls in flight.
pub struct CopyBudget {
    limit: usize,
    used: Mutex<usize>,
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
        CopyBudget { limit, used: Mutex::new(0) }
    }

    /// Room for a copy of `want` bytes, at once: all of it while it fits under the limit,
    /// else what is left but at least `least` (`want` for a datagram, which cannot be cut;
    /// for a stream, its address, control data and [`STREAM_FLOOR`] of payload).
    pub fn grant(&self, want: usize, least: usize) -> Grant<'_> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let free = self.limit.saturating_sub(*used);
        let bytes = if want <= free { want } else { free.max(least.min(want)) };
        *used += bytes;
        Grant { budget: self, bytes }
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        *self.used.lock().unwrap()
    }
}

impl Grant<'_> {
    /// The bytes granted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let a = budget.grant(60, 60);
        let b = budget.grant(40, 40);
        assert_eq!((a.bytes(), b.bytes()), (60, 40));
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn past_the_limit_a_stream_is_cut_and_a_datagram_given_its_room_at_once() {
        let budget = CopyBudget::new(100);
        let held = budget.grant(80, 80);
        // A stream send: what is left.
        let stream = budget.grant(50, 10);
        assert_eq!(stream.bytes(), 20);
        // Nothing left: its floor.
        let floor = budget.grant(50, 10);
        assert_eq!(floor.bytes(), 10);
        // Never more than asked, whatever the floor.
        assert_eq!(budget.grant(5, 10).bytes(), 5);
        // A datagram: whole.
        let datagram = budget.grant(30, 30);
        assert_eq!(datagram.bytes(), 30);
        assert_eq!(budget.in_use(), 140);
        drop((held, stream, floor, datagram));
        assert_eq!(budget.in_use(), 0);
    }
}
