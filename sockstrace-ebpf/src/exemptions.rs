//! Exemptions (audit --exempt-cgroup, --exempt-user, --exempt-exe).
//!
//! Checked only for what would be a leak, and only when `CONFIG.exempt` says something is
//! exempt: proxy traffic and audits without exemptions never pay for them.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_socket_uid,
            bpf_skb_ancestor_cgroup_id,
        },
    },
    programs::SkBuffContext,
};
use sockstrace_common::{exempt, kind, proc_flags, Config, ExemptCount, SockFacts, EXEMPT_LEVELS};

use crate::maps::{EXEMPT_CGROUPS, EXEMPT_COUNTS, EXEMPT_UIDS, PROCS};
use crate::shared::{bump, config, zero};

/// The [`exempt`] bits a configuration may set: all of them (`audit`), or none where nothing
/// can be exempt (`run`; read-only data the loader sets: `sockstrace_common::EXEMPTIONS_GLOBAL`).
/// The verifier reads it as the constant it is, and with none leaves out every exemption check,
/// and the global functions only they call (kernels that check global functions lazily, 6.8+):
/// about 3,000 instructions of the egress gate, 1,700 of each sock_addr hook.
#[unsafe(no_mangle)]
static EXEMPTIONS: u8 = u8::MAX;

/// Whether anything may be exempt: the object allows exemptions and `config` names some.
#[inline(always)]
pub(crate) fn any_exempt(config: &Config) -> bool {
    // SAFETY: a read of a static; volatile, so that the value the loader put in the object is
    // read rather than the one compiled in.
    let allowed = unsafe { core::ptr::read_volatile(&raw const EXEMPTIONS) };
    config.exempt & allowed != 0
}

/// Whether the current task is exempt; if so, counts the operation (`kind`) in
/// `EXEMPT_COUNTS`.
#[inline(always)]
pub(crate) fn current_exempt(config: &Config, kind: u32) -> bool {
    let why = exempt_why(u64::from(config.exempt), u64::from(config.exempt_levels));
    // Opaque to LLVM, see `egress::on_packet`.
    // SAFETY: a read of a local.
    let why = unsafe { core::ptr::read_volatile(&raw const why) };
    if why == 0 {
        return false;
    }
    exempt_count(u64::from(kind), why as u64);
    true
}

/// Why the current task is exempt ([`exempt`] bits, the first reason found), 0 if it is not:
/// its process runs an exempt executable (`PROCS`), its uid is exempt, or its cgroup or an
/// ancestor at one of the `levels` (bits) is. `bits` are `CONFIG.exempt`'s. A global function:
/// the verifier checks the level walk once per program.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn exempt_why(bits: u64, levels: u64) -> i32 {
    if bits & u64::from(exempt::EXE) != 0 {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        if let Some(record) = PROCS.get_ptr(tgid) {
            // SAFETY: a live `PROCS` value.
            if unsafe { (*record).flags } & proc_flags::EXEMPT != 0 {
                return i32::from(exempt::EXE);
            }
        }
    }
    if bits & u64::from(exempt::UID) != 0 {
        let uid = bpf_get_current_uid_gid() as u32;
        if EXEMPT_UIDS.get_ptr(uid).is_some() {
            return i32::from(exempt::UID);
        }
    }
    if bits & u64::from(exempt::CGROUP) != 0 {
        let mut level = 0;
        while level < EXEMPT_LEVELS {
            if (levels >> level) & 1 != 0 {
                // SAFETY: takes a level; answers 0 beyond the task's own level.
                let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
                if id == 0 {
                    break;
                }
                if EXEMPT_CGROUPS.get_ptr(id).is_some() {
                    return i32::from(exempt::CGROUP);
                }
            }
            level += 1;
        }
    }
    0
}

/// Counts one exempt operation (`kind`) of the current process in `EXEMPT_COUNTS`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn exempt_count(kind: u64, why: u64) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let counts = match EXEMPT_COUNTS.get_ptr_mut(tgid) {
        Some(counts) => counts,
        None => {
            let mut fresh = core::mem::MaybeUninit::<ExemptCount>::uninit();
            // SAFETY: zeroing makes it a valid `ExemptCount`; `comm` is 16 bytes and we pass
            // exactly that.
            unsafe {
                zero(fresh.as_mut_ptr());
                let fresh = fresh.assume_init_mut();
                fresh.uid = bpf_get_current_uid_gid() as u32;
                bpf_get_current_comm(fresh.comm.as_mut_ptr().cast::<c_void>(), 16);
                let _ = EXEMPT_COUNTS.insert(tgid, *fresh, u64::from(BPF_NOEXIST));
            }
            match EXEMPT_COUNTS.get_ptr_mut(tgid) {
                Some(counts) => counts,
                None => return 0,
            }
        }
    };
    let kind = kind as u32;
    // SAFETY: a live `EXEMPT_COUNTS` value.
    unsafe {
        (*counts).why |= why as u32;
        let counter = if kind == kind::CONNECT4 || kind == kind::CONNECT6 {
            &raw mut (*counts).connects
        } else if kind == kind::SENDMSG4 || kind == kind::SENDMSG6 {
            &raw mut (*counts).sends
        } else if kind == kind::BIND4 || kind == kind::BIND6 {
            &raw mut (*counts).binds
        } else {
            &raw mut (*counts).sockets
        };
        bump(counter);
    }
    0
}

/// Counts one packet the egress gate let go for an exempt socket, on the socket's creator
/// (tgid 0 when unknown).
#[inline(always)]
pub(crate) fn count_exempt_packet(facts: Option<*mut SockFacts>) {
    let (tgid, uid, comm) = match facts {
        // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
        Some(facts) => unsafe { (((*facts).pid_tgid >> 32) as u32, (*facts).uid_gid as u32, (*facts).comm) },
        None => (0, 0, [0; 16]),
    };
    let counts = match EXEMPT_COUNTS.get_ptr_mut(tgid) {
        Some(counts) => counts,
        None => {
            let mut fresh = core::mem::MaybeUninit::<ExemptCount>::uninit();
            // SAFETY: zeroing makes it a valid `ExemptCount`.
            unsafe {
                zero(fresh.as_mut_ptr());
                let fresh = fresh.assume_init_mut();
                fresh.uid = uid;
                fresh.comm = comm;
                let _ = EXEMPT_COUNTS.insert(tgid, *fresh, u64::from(BPF_NOEXIST));
            }
            match EXEMPT_COUNTS.get_ptr_mut(tgid) {
                Some(counts) => counts,
                None => return,
            }
        }
    };
    // SAFETY: a live `EXEMPT_COUNTS` value.
    unsafe { bump(&raw mut (*counts).packets) };
}

/// Whether the socket's creator (as `SOCKETS` recorded it) is exempt, for hooks that run where
/// no task is known (listen): the socket was already used by an exempt process, or its creator
/// runs an exempt executable, has an exempt uid, or created it in an exempt cgroup (that very
/// cgroup: its ancestors cannot be asked here).
///
/// # Safety
/// `facts` must point at a live `SOCKETS` value.
#[inline(always)]
pub(crate) unsafe fn creator_exempt(facts: *mut SockFacts) -> bool {
    // SAFETY: per the contract.
    let (socket_exempt, pid_tgid, uid_gid, cgroup_id) =
        unsafe { ((*facts).exempt, (*facts).pid_tgid, (*facts).uid_gid, (*facts).cgroup_id) };
    if socket_exempt != 0 {
        return true;
    }
    let why = exempt_creator(pid_tgid, uid_gid, cgroup_id);
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&raw const why) != 0 }
}

/// [`creator_exempt`]'s lookups: the [`exempt`] bit that exempts a creator, 0 if none does (or
/// the creator is unknown).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn exempt_creator(pid_tgid: u64, uid_gid: u64, cgroup_id: u64) -> i32 {
    if pid_tgid == 0 {
        return 0;
    }
    let bits = config().exempt;
    let tgid = (pid_tgid >> 32) as u32;
    if bits & exempt::EXE != 0 {
        if let Some(record) = PROCS.get_ptr(tgid) {
            // SAFETY: a live `PROCS` value.
            if unsafe { (*record).flags } & proc_flags::EXEMPT != 0 {
                return i32::from(exempt::EXE);
            }
        }
    }
    let uid = uid_gid as u32;
    if bits & exempt::UID != 0 && EXEMPT_UIDS.get_ptr(uid).is_some() {
        return i32::from(exempt::UID);
    }
    if bits & exempt::CGROUP != 0 && EXEMPT_CGROUPS.get_ptr(cgroup_id).is_some() {
        return i32::from(exempt::CGROUP);
    }
    0
}

/// Whether the owner of the packet's socket (its uid) or the socket's cgroup (or an ancestor at
/// an exempt level) is exempt. For sockets made before the audit started too.
#[inline(always)]
pub(crate) fn skb_exempt(ctx: &SkBuffContext, config: &Config) -> bool {
    // SAFETY: the program's own context.
    let exempt =
        unsafe { skb_exempt_why(ctx.skb.skb, u64::from(config.exempt), u64::from(config.exempt_levels)) };
    // Opaque to LLVM, see `egress::on_packet`.
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&raw const exempt) != 0 }
}

/// [`skb_exempt`]'s lookups, a global function (the verifier checks the level walk once; it
/// takes the program's context as its context).
///
/// # Safety
/// `skb` must be the program's own context.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn skb_exempt_why(
    skb: *mut aya_ebpf::bindings::__sk_buff,
    bits: u64,
    levels: u64,
) -> i32 {
    let bits = bits as u8;
    let levels = levels as u32;
    if bits & exempt::UID != 0 {
        // SAFETY: the program's own, valid context.
        let uid = unsafe { bpf_get_socket_uid(skb) };
        if EXEMPT_UIDS.get_ptr(uid).is_some() {
            return 1;
        }
    }
    if bits & exempt::CGROUP != 0 {
        let mut level = 0;
        while level < EXEMPT_LEVELS {
            if (levels >> level) & 1 != 0 {
                // SAFETY: the program's own, valid context; answers 0 beyond the socket's level.
                let id = unsafe { bpf_skb_ancestor_cgroup_id(skb, level as i32) };
                if id == 0 {
                    break;
                }
                if EXEMPT_CGROUPS.get_ptr(id).is_some() {
                    return 1;
                }
            }
            level += 1;
        }
    }
    0
}
