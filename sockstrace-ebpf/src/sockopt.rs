//! cgroup setsockopt: the socket options that move a packet's first hop, by any path.
//!
//! The seccomp filter traps `setsockopt(2)` for these options, but io_uring's setsockopt
//! (`IORING_OP_URING_CMD` with `SOCKET_URING_OP_SETSOCKOPT`, Linux 6.7) never passes seccomp.
//! Both reach `do_sock_setsockopt`, which runs this hook (for native callers: the kernel skips
//! it for compat ones) against the socket's cgroup, before the option is applied.

use aya_ebpf::{
    helpers::generated::{bpf_get_current_cgroup_id, bpf_get_netns_cookie},
    macros::cgroup_sockopt,
    programs::SockoptContext,
    EbpfContext as _,
};
use sockstrace_common::{
    kind, option_word, reason,
    sockopt::{option_key, ROUTING_KEYS, SOL_SCTP},
    verdict,
};

use crate::exemptions::{any_exempt, exempt_why};
use crate::shared::{config, emit, fill_task, ALLOW, REFUSE};

/// Refuses (`EPERM`), with `CONFIG.enforce`, an option of `sockstrace_common::sockopt`'s table
/// (and any of `SOL_SCTP`), reporting it either way; every other option passes untouched.
///
/// The program never writes the context: `optlen` and `optval` left as they are, the kernel
/// applies the caller's value (returning 1 passes the original through).
#[cgroup_sockopt(setsockopt)]
pub fn setsockopt(ctx: SockoptContext) -> i32 {
    let opt = ctx.sockopt;
    // SAFETY: the context is a valid `bpf_sockopt`; `level` and `optname` are readable 4-byte
    // fields (read as such, volatile keeps LLVM from merging them into one 8-byte load).
    let (level, optname) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*opt).level),
            core::ptr::read_volatile(&raw const (*opt).optname),
        )
    };
    if routing_option(level as u32 as u64, optname as u32 as u64) == 0 {
        return ALLOW;
    }
    let config = config();
    if any_exempt(&config) && exempt_why(u64::from(config.exempt), u64::from(config.exempt_levels)) != 0 {
        return ALLOW;
    }
    let refuse = config.enforce != 0;
    // SAFETY: `sk` is the context's socket (never null for this hook), a valid `bpf_sock`
    // whose family, type and protocol are readable 4-byte fields.
    let (family, sock_type, protocol) = unsafe {
        let sk = (*opt).__bindgen_anon_1.sk;
        ((*sk).family as u16, (*sk).type_ as u16, (*sk).protocol as u16)
    };
    // No socket cookie: `bpf_get_socket_cookie` is not offered to sockopt programs.
    emit(move |event| {
        event.kind = kind::SETSOCKOPT;
        event.family = family;
        event.sock_type = sock_type;
        event.protocol = protocol;
        // SAFETY: the helper takes the program's own, valid context pointer.
        event.netns_cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
        // SAFETY: takes no argument.
        event.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
        event.verdict = if refuse { verdict::DENY } else { verdict::PASS };
        event.reason = reason::ROUTING_OPTION;
        // SAFETY: `addr` is 8-byte aligned in the reserved event (see `SockEvent`'s layout).
        unsafe {
            core::ptr::write_volatile((&raw mut event.addr).cast::<u64>(), option_word(level, optname))
        };
        fill_task(&mut event.pid_tgid, &mut event.uid_gid, &mut event.comm);
    });
    if refuse {
        REFUSE
    } else {
        ALLOW
    }
}

/// The refused options as [`option_key`]s, in the object's read-only data.
static KEYS: [u64; ROUTING_KEYS.len()] = ROUTING_KEYS;

/// 1 if `setsockopt(level, optname)` (the low 32 bits of each) is refused, else 0: the walk of
/// `sockstrace_common::sockopt::is_routing_option` over [`KEYS`].
///
/// A global function: the verifier checks the walk once, on its own, and the program sees an
/// unknown answer. The keys are read as data (volatile loads): compared as constants, the
/// compiler made each comparison a conditional move, and the verifier followed every
/// combination of them (9,000 instructions instead of a few hundred).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn routing_option(level: u64, optname: u64) -> i32 {
    if level as u32 == SOL_SCTP as u32 {
        return 1;
    }
    let key = option_key(level as u32 as i32, optname as u32 as i32);
    let mut i = 0;
    while i < KEYS.len() {
        // SAFETY: `i` is within `KEYS`.
        if unsafe { core::ptr::read_volatile(KEYS.as_ptr().add(i)) } == key {
            return 1;
        }
        i += 1;
    }
    0
}
