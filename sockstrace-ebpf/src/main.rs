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
//! inline loop (see `shared::judge_remote`); what steers the code after a judge is a bool, the reason
//! being worked out only where the event takes it; memory is zeroed and addresses stored with
//! 8-byte stores (see `shared::zero`), never through the byte-by-byte builtin `memset`.
//!
//! The modules follow the hooks: `sock_addr` (connect, send, bind), `sock` (creation, the bound
//! address), `sockops` (TCP states, listen), `egress` (the packet gate), `lsm` (socket creation by
//! any path), `tracking` (audit's process records), `udp_peers` (UDP through the proxy), with
//! `exemptions` (audit's exempt processes), `maps` (every map; their names are the ABI),
//! `shared` (the pieces every hook uses) and `diagnostics` (aya-log messages). The types, judges
//! and names the programs share with userspace are in `sockstrace-common`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod diagnostics;
mod egress;
mod exemptions;
mod lsm;
mod maps;
mod shared;
mod sock;
mod sock_addr;
mod sockops;
mod tracking;
mod udp_peers;

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
