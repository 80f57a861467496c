//! The pieces every hook uses: the rule walk, the backstop's settings, a socket's `SOCKETS`
//! entry, the task's ids, map-memory stores and the event ring buffer.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_loop},
};
use sockstrace_common::{remote_allowed, rules_in_force, Config, Ip6, RuleQuery, SockEvent, SockFacts};

use crate::maps::{sockets_slot, CONFIG, DROPPED, EVENTS, RULES, SOCKETS};

/// Reads the four `u32` words of an IPv6 address field of a context (or `bpf_sock`) one by one:
/// the verifier allows fixed-offset loads from these pointers but no pointer arithmetic, which
/// LLVM would use for an array copy. Needs `unsafe`: `$ptr` must be valid.
macro_rules! words4 {
    ($ptr:expr, $field:ident) => {{
        let p = $ptr;
        [
            core::ptr::read_volatile(&raw const (*p).$field[0]),
            core::ptr::read_volatile(&raw const (*p).$field[1]),
            core::ptr::read_volatile(&raw const (*p).$field[2]),
            core::ptr::read_volatile(&raw const (*p).$field[3]),
        ]
    }};
}

/// Return value of a cgroup hook that lets the operation proceed.
pub(crate) const ALLOW: i32 = 1;
/// Return value of a cgroup hook that refuses it (`EPERM`).
pub(crate) const REFUSE: i32 = 0;
pub(crate) use words4;

/// Whether the backstop allows a connect or send (`query`): `sockstrace_common::judge_remote`,
/// with the kernel walking the rules; a leak's reason is then `remote_leak_reason` of its
/// transport and port (what `judge_remote_matched` names when nothing allowed it). Hooks ask it
/// through [`rules_allow`].
///
/// The walk is `bpf_loop` (5.17+) over [`rule_step`]: the verifier checks that callback once,
/// with an unknown index, instead of walking an inline loop once per possible rule (up to 64
/// times, and all the code after the loop once per way out of it: seconds of verifier time).
/// `bpf_loop` fails only for more than 2^23 iterations or unknown flags (we ask at most
/// `MAX_RULES`, flags 0); if it did fail, nothing would be marked matched: the operation is
/// judged a leak.
///
/// It answers a bool, not a reason: each distinct constant the verifier sees steering the rest
/// of the program is one more path it checks to the end.
#[inline(always)]
pub(crate) fn judge_remote(config: &Config, query: &mut RuleQuery) -> bool {
    // SAFETY: `rule_step` has the callback signature `bpf_loop` expects, and `query` outlives
    // the call; the callback gets it back as its context.
    unsafe {
        bpf_loop(
            rules_in_force(config),
            rule_step as *mut c_void,
            core::ptr::from_mut(query).cast::<c_void>(),
            0,
        )
    };
    remote_allowed(config, query)
}

/// Whether the backstop lets a connect or send to `hi`/`lo` (an [`Ip6`]'s halves) with the
/// socket of `socket` ([`RuleQuery::pack_socket`]) go: 1 if a rule matches or loopback allows
/// it, else 0 ([`judge_remote`]).
///
/// A global function: the verifier checks the walk once per program, and its callers get one
/// unknown answer.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rules_allow(hi: u64, lo: u64, socket: u64) -> i32 {
    let mut query = RuleQuery::unpack(Ip6 { hi, lo }, socket);
    i32::from(judge_remote(&config(), &mut query))
}

/// One step of [`judge_remote`]'s walk: does `RULES[index]` let `ctx` (a [`RuleQuery`])
/// through? Returns 1 (stop) once one does, 0 (go on) otherwise, without a branch but the
/// rule's lookup ([`RuleQuery::match_bit`]).
#[inline(never)]
extern "C" fn rule_step(index: u64, ctx: *mut c_void) -> i64 {
    let query = ctx.cast::<RuleQuery>();
    let Some(rule) = RULES.get(index as u32) else {
        return 0;
    };
    // SAFETY: `ctx` is the `RuleQuery` on `judge_remote`'s stack, alive for the whole loop.
    unsafe {
        // Or'ed in, never cleared: a query may come matched already (it once came so from a
        // socket's own UDP shim, and a step that wrote 0 unmatched it).
        let matched = (*query).match_bit(rule, hidden);
        (*query).matched |= matched as u8;
        matched as i64
    }
}

/// `x`, by a way LLVM cannot see through (a volatile load of it).
#[inline(always)]
fn hidden(x: u64) -> u64 {
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&raw const x) }
}

/// The backstop's settings; all zero (observe only, no rules) if userspace wrote none.
#[inline(always)]
pub(crate) fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// Who a new `SOCKETS` entry names as the socket's creator.
#[derive(Clone, Copy)]
pub(crate) enum Creator {
    /// The current task: a hook running in the context of a call on the socket.
    Current,
    /// Unknown (softirq context); the socket is in the cgroup we are attached to.
    Unknown { cgroup_id: u64 },
}

/// The socket's `SOCKETS` slot, taken on first sight.
#[inline(always)]
pub(crate) fn facts_of(
    cookie: u64,
    netns_cookie: impl FnOnce() -> u64,
    family: u16,
    sock_type: u16,
    protocol: u16,
    creator: Creator,
) -> Option<*mut SockFacts> {
    if let Some(facts) = facts_get(cookie) {
        return Some(facts);
    }
    record_new(cookie, netns_cookie, family, sock_type, protocol, creator)
}

/// The socket's `SOCKETS` slot if it has one (marked used, see `SockFacts::recent`).
///
/// A pointer into the array stays valid for the program's run; if another CPU gives the slot
/// to a new socket meanwhile, our stores land in its facts (as plain stores of two hooks on one
/// socket may interleave, see [`bump`]): a 2-way set of 32,768 holds three live sockets only
/// when they are 32,768 cookies apart.
#[inline(always)]
pub(crate) fn facts_get(cookie: u64) -> Option<*mut SockFacts> {
    if cookie == 0 {
        // No socket (the helper's answer without one): never an empty slot's owner.
        return None;
    }
    let way0 = SOCKETS.get_ptr_mut(sockets_slot(cookie, 0))?;
    let way1 = SOCKETS.get_ptr_mut(sockets_slot(cookie, 1))?;
    // SAFETY: both point at live `SOCKETS` values (array memory, valid for the whole run).
    unsafe {
        let found = if (*way0).cookie == cookie {
            way0
        } else if (*way1).cookie == cookie {
            way1
        } else {
            return None;
        };
        if (*found).recent == 0 {
            (*found).recent = 1;
        }
        Some(found)
    }
}

/// Gives a socket no hook has seen a `SOCKETS` slot and records what is known at first sight,
/// in place, without looking it up first: `sock_create` knows the socket is new (its cookie is
/// made by that very call). The slot: an empty way of the cookie's set, else one not used since
/// the set last filled, else (both in use: their marks are cleared) the newer socket's, so
/// that an old socket still in use keeps its facts.
#[inline(always)]
pub(crate) fn record_new(
    cookie: u64,
    netns_cookie: impl FnOnce() -> u64,
    family: u16,
    sock_type: u16,
    protocol: u16,
    creator: Creator,
) -> Option<*mut SockFacts> {
    if cookie == 0 {
        return None;
    }
    let way0 = SOCKETS.get_ptr_mut(sockets_slot(cookie, 0))?;
    let way1 = SOCKETS.get_ptr_mut(sockets_slot(cookie, 1))?;
    // SAFETY: both point at live `SOCKETS` values (see `facts_get`); `slot` is one of them.
    unsafe {
        let (cookie0, cookie1) = ((*way0).cookie, (*way1).cookie);
        let slot = if cookie0 == 0 {
            way0
        } else if cookie1 == 0 {
            way1
        } else if (*way0).recent == 0 {
            way0
        } else if (*way1).recent == 0 {
            way1
        } else {
            (*way0).recent = 0;
            (*way1).recent = 0;
            if cookie0 > cookie1 {
                way0
            } else {
                way1
            }
        };
        zero(slot);
        (*slot).netns_cookie = netns_cookie();
        (*slot).family = family;
        (*slot).sock_type = sock_type;
        (*slot).protocol = protocol;
        match creator {
            Creator::Current => {
                // SAFETY: takes no argument.
                (*slot).cgroup_id = bpf_get_current_cgroup_id();
                fill_task(&mut (*slot).pid_tgid, &mut (*slot).uid_gid, &mut (*slot).comm);
            }
            Creator::Unknown { cgroup_id } => (*slot).cgroup_id = cgroup_id,
        }
        (*slot).recent = 1;
        (*slot).cookie = cookie;
        Some(slot)
    }
}

/// The current task's ids and comm.
#[inline(always)]
pub(crate) fn fill_task(pid_tgid: &mut u64, uid_gid: &mut u64, comm: &mut [u8; 16]) {
    *pid_tgid = bpf_get_current_pid_tgid();
    *uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `comm` is a 16-byte buffer and we pass exactly its size; on failure the helper
    // zeroes it, which is what we want anyway.
    unsafe {
        bpf_get_current_comm(comm.as_mut_ptr().cast::<c_void>(), comm.len() as u32);
    }
}

/// Adds one to a counter in map memory.
///
/// A plain read-modify-write: `core` offers no atomic add for the BPF target. Two hooks racing
/// on the same socket (or a program preempting another on the same CPU) can lose one count.
///
/// # Safety
/// `counter` must point at a live, 8-byte aligned `u64` in a map value.
#[inline(always)]
pub(crate) unsafe fn bump(counter: *mut u64) {
    // SAFETY: per the contract.
    unsafe { *counter = (*counter).wrapping_add(1) };
}

/// Zeroes `*value` (8-byte aligned, a multiple of 8 bytes) with one 8-byte store per word.
///
/// `write_bytes` would become a call to the builtin `memset`, a byte-by-byte loop the verifier
/// walks once per byte (152 turns for a `SockFacts`) at every call site. Volatile stores are
/// never merged back into a `memset`.
///
/// # Safety
/// `value` must be valid for writes of a `T`, and any bit pattern must be a valid `T`.
#[inline(always)]
pub(crate) unsafe fn zero<T>(value: *mut T) {
    const {
        assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() >= 8);
    }
    let words = value.cast::<u64>();
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 8 {
        // SAFETY: per the contract, word `i` lies within `*value` and is aligned.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

/// Writes `addr` as its 16 bytes (network order) with two 8-byte stores: a plain copy of
/// `to_bytes()` becomes a byte-by-byte `memset` call for the zero bytes of a v4-mapped address.
///
/// # Safety
/// `dst` must be valid for writes and 8-byte aligned (every address field of our map values and
/// events is).
#[inline(always)]
pub(crate) unsafe fn store_addr(dst: *mut [u8; 16], addr: Ip6) {
    let words = dst.cast::<u64>();
    // SAFETY: per the contract; the two words are the array's two halves.
    unsafe {
        core::ptr::write_volatile(words, addr.hi.to_be());
        core::ptr::write_volatile(words.add(1), addr.lo.to_be());
    }
}

/// Reserves a zeroed event in the ring buffer, lets `fill` describe it there (no stack copy) and
/// submits it; counts it as dropped when the buffer is full (userspace polls the count and says
/// so: `kernel::lost`).
///
/// Callers pass `move` closures: a value captured by reference lives in stack memory, and a
/// `bool` stored there as one byte reads back as 0..=255 to the verifier (a hook's return value
/// derived from it is then refused for not being 0 or 1).
#[inline(always)]
pub(crate) fn emit(fill: impl FnOnce(&mut SockEvent)) {
    match EVENTS.reserve::<SockEvent>(0) {
        Some(mut entry) => {
            let event = entry.as_mut_ptr();
            // SAFETY: `event` points at `size_of::<SockEvent>()` reserved, 8-byte aligned ring
            // buffer bytes that only we touch until submit; zeroing makes them a valid event.
            unsafe {
                zero(event);
                fill(&mut *event);
            }
            entry.submit(0);
        }
        None => count_dropped(),
    }
}

/// Counts one lost event (userspace says so, see `kernel::lost`).
#[inline(always)]
fn count_dropped() {
    if let Some(slot) = DROPPED.get_ptr_mut(0) {
        // SAFETY: `slot` points at this CPU's live, aligned u64 in `DROPPED`.
        unsafe { bump(slot) };
    }
}
