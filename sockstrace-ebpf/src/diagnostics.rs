//! Diagnostics (aya-log): rare events worth a line on sockstrace's stderr.
//!
//! Each message is a global function (`no_mangle`, external linkage): the verifier checks it once
//! per program, on its own, however many paths of the program call it. An aya-log statement is
//! costly to verify: its copy code is walked once for each record size class it might reserve
//! (64, 128, ... 8192 bytes), 2,000 to 3,000 instructions in all, so inline it would cost that
//! on every path reaching it (the sock_addr programs went from 4,000 to 240,000). Hence also few
//! messages per program, short texts and numbers only. A message below the level userspace loads
//! the object with (`AYA_LOG_LEVEL`, read-only) is dead code to the verifier.
//! The context argument of the macros is unused by aya-log 0.2 (records go to its ring buffer),
//! so the functions take none, which keeps their arguments plain scalars as global functions need.

use aya_log_ebpf::{debug, warn};

/// The event ring buffer was full: an event of socket `cookie` is lost, the `lost`th on this CPU.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn log_ring_full(cookie: u64, lost: u64) -> i32 {
    warn!(&(), "ring buffer full: event of socket {} lost ({} on this CPU)", cookie, lost);
    0
}

/// `bpf_loop` over the rules failed with `err`: nothing matched, so the operation was judged
/// a leak (failing closed).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn log_rule_walk_failed(err: i64) -> i32 {
    warn!(&(), "bpf_loop failed ({}): judged a leak", err);
    0
}

/// A sock_addr hook got a sockaddr of another family than its own: the caller's doing, so only
/// at debug level. `AF_UNSPEC` (bind4 takes it for INADDR_ANY, sendmsg4 for "no address"), or
/// another family on an IPv6 socket, which reaches the *6 hooks before the kernel refuses it
/// (EAFNOSUPPORT); the address words then hold whatever the caller's bytes were.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn log_sockaddr_family(given: u32, socket: u32) -> i32 {
    debug!(&(), "sockaddr family {} on socket family {}", given, socket);
    0
}
