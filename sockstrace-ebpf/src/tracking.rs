//! Process tracking (audit): exec, fork and exit, for exempt executables and for attribution
//! that outlives the process.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_ktime_get_ns, bpf_probe_read_kernel_str,
        },
    },
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext as _,
};
use sockstrace_common::{exempt, proc_flags, FILENAME_LEN};

use crate::maps::{EXEMPT_EXES, GONE, PROCS, PROCS_LOST, PROC_SCRATCH};
use crate::shared::{bump, config, zero};

/// `sched_process_exec`: `__data_loc char[] filename` (offset 8). Userspace checks the
/// tracepoint's format before it attaches the tracking programs.
const EXEC_FILENAME_LOC: usize = 8;
/// `sched_process_fork`: `pid_t child_pid`.
const FORK_CHILD_PID: usize = 20;
/// `sched_process_exit`: `bool group_dead`.
const EXIT_GROUP_DEAD: usize = 32;

/// Records the process's new executable: `PROCS[tgid]` with the file name `execve` was given,
/// its parent (kept from the fork), uid, cgroup and comm, marked exempt when that file name is
/// an exempt executable (an exec of anything else drops the mark).
#[tracepoint]
pub fn proc_exec(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(record) = PROC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the parent's id is a plain read of a live `PROCS` value.
    let ppid = PROCS.get_ptr(tgid).map_or(0, |known| unsafe { (*known).ppid });
    // SAFETY: the tracepoint's own record: a 4-byte field at a fixed offset.
    let loc: u32 = unsafe { ctx.read_at(EXEC_FILENAME_LOC) }.unwrap_or(0);
    // SAFETY: `record` is this CPU's live scratch value, consumed before we return (see
    // `shared::facts_of`). The file name is read from the tracepoint's own record, where its
    // `__data_loc` says it is; the helper stops at `FILENAME_LEN` bytes and writes a NUL.
    unsafe {
        zero(record);
        (*record).ppid = ppid;
        (*record).flags = proc_flags::EXECED;
        (*record).uid_gid = bpf_get_current_uid_gid();
        (*record).cgroup_id = bpf_get_current_cgroup_id();
        (*record).start_ns = bpf_ktime_get_ns();
        bpf_get_current_comm((*record).comm.as_mut_ptr().cast::<c_void>(), 16);
        if loc != 0 {
            let src = ctx.as_ptr().cast::<u8>().add((loc & 0xffff) as usize);
            bpf_probe_read_kernel_str(
                (*record).filename.as_mut_ptr().cast::<c_void>(),
                FILENAME_LEN as u32,
                src.cast::<c_void>(),
            );
        }
        // By reference: the key stays in the scratch value (a copy would take 128 bytes of stack).
        #[allow(clippy::needless_borrows_for_generic_args)]
        let exempt_exe =
            config().exempt & exempt::EXE != 0 && EXEMPT_EXES.get_ptr(&(*record).filename).is_some();
        if exempt_exe {
            (*record).flags |= proc_flags::EXEMPT;
        }
        #[allow(clippy::needless_borrows_for_generic_args)]
        if PROCS.insert(tgid, &*record, 0).is_err() {
            count_procs_lost();
        }
    }
    0
}

/// The child inherits its parent's record (executable, exemption), with the parent as `ppid`.
/// Runs for new threads too: their record (keyed by thread id) is dropped when they exit.
#[tracepoint]
pub fn proc_fork(ctx: TracePointContext) -> u32 {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the tracepoint's own record: a 4-byte field at a fixed offset.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(FORK_CHILD_PID) }) else {
        return 0;
    };
    let Some(record) = PROC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `record` is this CPU's live scratch value (see `proc_exec`); `known` a live
    // `PROCS` value of the same layout.
    unsafe {
        match PROCS.get_ptr(parent) {
            Some(known) => copy_words(record, known),
            None => {
                zero(record);
                (*record).uid_gid = bpf_get_current_uid_gid();
                (*record).cgroup_id = bpf_get_current_cgroup_id();
            }
        }
        (*record).ppid = parent;
        (*record).flags &= !proc_flags::EXECED;
        (*record).start_ns = bpf_ktime_get_ns();
        (*record).exit_ns = 0;
        bpf_get_current_comm((*record).comm.as_mut_ptr().cast::<c_void>(), 16);
        #[allow(clippy::needless_borrows_for_generic_args)]
        if PROCS.insert(child, &*record, 0).is_err() {
            count_procs_lost();
        }
    }
    0
}

/// A thread's record goes; when the whole process is dead, its record moves to `GONE`.
#[tracepoint]
pub fn proc_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tid != tgid {
        let _ = PROCS.remove(tid);
    }
    // SAFETY: the tracepoint's own record: a 1-byte field at a fixed offset.
    let group_dead: u8 = unsafe { ctx.read_at(EXIT_GROUP_DEAD) }.unwrap_or(1);
    if group_dead != 0 {
        if let Some(record) = PROCS.get_ptr_mut(tgid) {
            // SAFETY: a live `PROCS` value; the insert copies it before the remove below.
            unsafe {
                (*record).exit_ns = bpf_ktime_get_ns();
                #[allow(clippy::needless_borrows_for_generic_args)]
                let _ = GONE.insert(tgid, &*record, 0);
            }
        }
        let _ = PROCS.remove(tgid);
    }
    0
}

/// Counts a record that did not fit in `PROCS`.
#[inline(always)]
fn count_procs_lost() {
    if let Some(slot) = PROCS_LOST.get_ptr_mut(0) {
        // SAFETY: this CPU's live, aligned u64 in `PROCS_LOST`.
        unsafe { bump(slot) };
    }
}

/// Copies `*src` to `*dst` one 8-byte word at a time (see `shared::zero`).
///
/// # Safety
/// Both must be valid, 8-byte aligned `T`s of a multiple of 8 bytes.
#[inline(always)]
unsafe fn copy_words<T>(dst: *mut T, src: *const T) {
    const {
        assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() >= 8);
    }
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 8 {
        // SAFETY: per the contract.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}
