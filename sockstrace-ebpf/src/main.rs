//! sockstrace's eBPF programs.
//!
//! Built for `bpfel-unknown-none` by `sockstrace/build.rs` (aya-build) and embedded in the
//! `sockstrace` binary. For any other target this compiles to a stub `main`, so host builds and
//! lints of the whole workspace keep working.
//!
//! Every program observes and reports; none refuses anything yet (they all return 1).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_netns_cookie, bpf_get_socket_cookie,
        },
    },
    macros::{cgroup_sock_addr, map},
    maps::{PerCpuArray, RingBuf},
    programs::SockAddrContext,
    EbpfContext as _,
};
use sockstrace_ebpf::{kind, verdict, SockEvent, EVENTS_BYTE_SIZE};

/// Return value of a cgroup sock_addr program that lets the operation proceed.
const ALLOW: i32 = 1;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTE_SIZE, 0);

#[map]
static DROPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    emit_sock_addr(&ctx, kind::CONNECT4);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    emit_sock_addr(&ctx, kind::CONNECT6);
    ALLOW
}

/// Describes the operation in `ctx` and queues it on `EVENTS` (or counts it in `DROPPED`).
#[inline(always)]
fn emit_sock_addr(ctx: &SockAddrContext, kind: u32) {
    let sa = ctx.sock_addr;
    let mut event = SockEvent::zeroed();
    event.kind = kind;
    event.verdict = verdict::PASS;
    // SAFETY: the kernel hands a cgroup sock_addr program a valid `bpf_sock_addr` context that
    // stays alive for the whole run; these are plain 4-byte field reads the verifier allows.
    unsafe {
        event.family = (*sa).user_family as u16;
        event.sock_type = (*sa).type_ as u16;
        event.protocol = (*sa).protocol as u16;
        // The low 16 bits hold the port exactly as in the sockaddr: network byte order.
        event.port = u16::from_be((*sa).user_port as u16);
        if kind == kind::CONNECT4 {
            event.addr[..4].copy_from_slice(&(*sa).user_ip4.to_ne_bytes());
        } else {
            let ip6 = (*sa).user_ip6;
            event.addr[..4].copy_from_slice(&ip6[0].to_ne_bytes());
            event.addr[4..8].copy_from_slice(&ip6[1].to_ne_bytes());
            event.addr[8..12].copy_from_slice(&ip6[2].to_ne_bytes());
            event.addr[12..].copy_from_slice(&ip6[3].to_ne_bytes());
        }
    }
    // SAFETY: socket and netns cookie helpers take the program's own context pointer, which is
    // valid; the cgroup id helper takes nothing.
    unsafe {
        event.cookie = bpf_get_socket_cookie(ctx.as_ptr());
        event.netns_cookie = bpf_get_netns_cookie(ctx.as_ptr());
        event.cgroup_id = bpf_get_current_cgroup_id();
    }
    event.pid_tgid = bpf_get_current_pid_tgid();
    event.uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `comm` is a 16-byte buffer on our stack and we pass exactly its size; on failure
    // the helper zeroes it, which is what we want anyway.
    unsafe {
        bpf_get_current_comm(event.comm.as_mut_ptr().cast(), event.comm.len() as u32);
    }
    submit(&event);
}

/// Copies `event` into the ring buffer, or counts it as dropped when the buffer is full.
#[inline(always)]
fn submit(event: &SockEvent) {
    match EVENTS.reserve::<SockEvent>(0) {
        Some(mut entry) => {
            entry.write(*event);
            entry.submit(0);
        }
        None => count_dropped(),
    }
}

#[inline(always)]
fn count_dropped() {
    if let Some(slot) = DROPPED.get_ptr_mut(0) {
        // SAFETY: `slot` points at this CPU's live, aligned u64 in `DROPPED`. The slot is
        // per-CPU and programs run with migration disabled, so only a preempting program on the
        // same CPU could interleave (losing one count at worst); stable Rust has no atomic add
        // for the BPF target.
        unsafe { *slot += 1 };
    }
}

/// GPL-compatible so every helper is available to the verifier; the crate itself is MIT/Apache.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects reachable loops, so any path that can panic fails to load: panics are
    // caught at load time, never at run time.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("sockstrace-ebpf is an eBPF object: sockstrace builds it for bpfel and loads it");
    std::process::exit(2);
}
