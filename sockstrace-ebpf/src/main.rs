//! sockstrace's eBPF programs: the kernel witness of one cgroup.
//!
//! Built for `bpfel-unknown-none` by `sockstrace/build.rs` (aya-build) and embedded in the
//! `sockstrace` binary. For any other target this compiles to a stub `main`, so host builds and
//! lints of the whole workspace keep working.
//!
//! Every program (a) records what it learns about the socket in `SOCKETS` (keyed by socket
//! cookie), (b) judges the operation with the backstop policy in `CONFIG`/`RULES` (the judges
//! live in `sockstrace-common` so the host tests them) and, when `CONFIG.enforce` is set,
//! refuses leaks (the caller sees `EPERM`), and (c) reports every leak on `EVENTS`, refused or
//! not, counting what the ring buffer cannot take in `DROPPED`.
//!
//! The cgroup hooks run against the *socket's* cgroup, whoever makes the call: a call the
//! supervisor performs on its `pidfd_getfd` duplicate of a traced socket passes through them too.
//!
//! Every `sockstrace run` as root loads these programs, so the verifier's time is start-up time
//! (about 1 us per instruction it walks; `kernel::tests::verifier_accepts_every_program` holds
//! each program to a budget). What keeps it small: the rules are walked by `bpf_loop`, not an
//! inline loop (see `shared::judge_remote`); what steers the code after a judge is a bool, the
//! reason being worked out only where the event takes it; memory is zeroed and addresses stored
//! with 8-byte stores (see `shared::zero`), never through the byte-by-byte builtin `memset`.
//!
//! The modules follow the hooks: `sock_addr` (connect, send, bind), `sock` (creation, the bound
//! address), `sockops` (TCP states, listen), `egress` (the packet gate), `lsm` (socket creation by
//! any path), `sockopt` (setsockopt of the options that move the first hop, by any path),
//! `tracking` (audit's process records), `udp_peers` (UDP through the proxy), with
//! `exemptions` (audit's exempt processes), `maps` (every map; their names are the ABI) and
//! `shared` (the pieces every hook uses); the aya-log messages are here, at the root. The types,
//! judges and names the programs share with userspace are in `sockstrace-common`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod egress;
mod exemptions;
mod lsm;
mod maps;
mod shared;
mod sock;
mod sock_addr;
mod sockops;
mod sockopt;
mod tracking;
mod udp_peers;

use aya_log_ebpf::debug;

// ---------------------------------------------------------------------------------------------
// Diagnostics (aya-log): rare events worth a line on sockstrace's stderr
// ---------------------------------------------------------------------------------------------
//
// Each message is a global function (`no_mangle`, external linkage): the verifier checks it once
// per program, on its own, however many paths of the program call it. An aya-log statement is
// costly to verify: its copy code is walked once for each record size class it might reserve
// (64, 128, ... 8192 bytes), 2,000 to 3,000 instructions in all, so inline it would cost that
// on every path reaching it (the sock_addr programs went from 4,000 to 240,000). Hence also few
// messages per program, short texts and numbers only. A message below the level userspace loads
// the object with (`AYA_LOG_LEVEL`, read-only) is dead code to the verifier.
// The context argument of the macros is unused by aya-log 0.2 (records go to its ring buffer),
// so the functions take none, which keeps their arguments plain scalars as global functions need.
// They stay at the crate root: aya-log puts the module path and file name of each statement in
// its record, and longer ones would cost every program that calls a message more verifier work.
//
// So no message is live at the default level (warn): one there costs every program that can
// reach it its 2,000-3,300 instructions of verification on every run, and the two it once had
// (a full ring buffer, a failed rule walk) made up 58% of the layer's verifier work, most of its
// start-up. A full ring buffer is counted (`DROPPED`) and said by userspace, which polls the
// count (`kernel::lost`); a failed rule walk cannot happen (see `shared::judge_remote`).

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
