//! BPF LSM socket_create: socket creation by any path (io_uring's IORING_OP_SOCKET included).

use aya_ebpf::{helpers::generated::bpf_get_current_ancestor_cgroup_id, macros::lsm, programs::LsmContext};
use sockstrace_common::socket_family_refused;

use crate::shared::config;

/// How many cgroup levels up [`in_our_cgroup`] looks for ours.
const CGROUP_LEVELS: i32 = 16;

/// The `socket_create` LSM hook: runs for every socket any task creates, whatever the path
/// (`socket(2)`, `socketpair(2)`, io_uring's `IORING_OP_SOCKET`), before the socket exists,
/// which no cgroup hook sees for families other than inet (`AF_PACKET` above all). For a task
/// in our cgroup (or below it), with `CONFIG.enforce`, refuses with `EPERM` what
/// `sockstrace_common::socket_family_refused` says no hook could gate afterwards: raw sockets and
/// families other than unix, inet, inet6 and netlink. Kernel-internal sockets pass.
///
/// Optional: not in `programs::ALL`; userspace loads it where the kernel offers BPF LSM and
/// lets io_uring in only then.
#[lsm(hook = "socket_create")]
pub fn socket_create(ctx: LsmContext) -> i32 {
    // `socket_create(int family, int type, int protocol, int kern)` and, last, the return value
    // of the LSM programs before us: plain integer arguments.
    let (family, sock_type, kern, before) =
        (ctx.arg::<i32>(0), ctx.arg::<i32>(1), ctx.arg::<i32>(3), ctx.arg::<i32>(4));
    if before != 0 {
        return before;
    }
    if kern != 0 || !socket_family_refused(family as u32, (sock_type & 0xf) as u32) {
        return 0;
    }
    let config = config();
    if config.enforce == 0 || config.cgroup_id == 0 || !in_our_cgroup(config.cgroup_id) {
        return 0;
    }
    -1 // -EPERM
}

/// Whether the current task's cgroup is `ours` or below it.
#[inline(always)]
fn in_our_cgroup(ours: u64) -> bool {
    let mut level = 0;
    while level < CGROUP_LEVELS {
        // SAFETY: takes a level; answers 0 beyond the task's own level.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == ours {
            return true;
        }
        if id == 0 {
            return false;
        }
        level += 1;
    }
    false
}
