//! The kernel layer: sockstrace's eBPF programs, as root, in cgroup v2 hooks.
//!
//! [`probe`] says whether the layer can be on on this machine (and why not);
//! [`Witness`] attaches the programs to a cgroup of the run's own (`run`) or to an existing one
//! (`audit`), enforces the backstop policy there, and reports what the kernel sees
//! ([`KernelEvent`], [`KernelFacts`]).
//!
//! | module | concern |
//! | --- | --- |
//! | `backstop` | `Policy` -> `CONFIG`/`RULES` map entries (pure) |
//! | `cgroup` | cgroup2 found or mounted; a run's cgroup (create, join, remove) or an existing one |
//! | `events` | `KernelEvent`; the ring buffer reader task |
//! | `exempt` | `audit --exempt-*`: exemptions resolved to cgroup ids, uids, exe paths (pure) |
//! | `facts` | `KernelFacts` (the report's `kernel` object) |
//! | `logs` | the programs' own diagnostics (aya-log) forwarded to the `log` crate |
//! | `maps` | typed map access |
//! | `mountinfo` | finding cgroup2 in `/proc/self/mountinfo` |
//! | `object` | the embedded object: load and attach every program |
//! | `query` | `BPF_PROG_QUERY`: which programs a cgroup has attached |
//! | `tracking` | audit: exec/fork/exit tracepoints (process records), exemption maps |
//! | `udp_peers` | UDP through the proxy: the shims of each socket (the only way to them) and the reply-address map |
//! | `witness` | `Witness`: all of the above for one run |

mod backstop;
mod cgroup;
mod events;
pub mod exempt;
mod facts;
mod logs;
pub mod lost;
mod maps;
mod mountinfo;
pub mod object;
mod query;
mod status;
pub mod tracking;
pub mod udp_peers;
mod witness;
#[cfg(test)]
mod witness_tests;

use std::path::Path;

pub use cgroup::{cgroup2_root, remove_run_cgroup, resolve as resolve_cgroup};
pub use events::KernelEvent;
pub use mountinfo::find_cgroup2_mount;
pub use status::{LayerStatus, Unavailable};
pub use witness::{Early, FactsReader, Preload, Witness};

/// Where the kernel publishes its own BTF; aya needs it for CO-RE relocations.
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Checks whether the kernel layer can be on: root, an embedded object, a cgroup2 mount,
/// kernel BTF, and a verifier that accepts every program (loaded, not attached, then dropped).
pub fn probe() -> LayerStatus {
    match check() {
        Ok(cgroup2) => LayerStatus::Available { cgroup2 },
        Err(reason) => LayerStatus::Unavailable(reason),
    }
}

fn check() -> Result<std::path::PathBuf, Unavailable> {
    if !is_root() {
        return Err(Unavailable::NotRoot);
    }
    if !object::is_embedded() {
        return Err(Unavailable::NotBuilt);
    }
    let cgroup2 = find_cgroup2_mount().ok_or(Unavailable::NoCgroup2)?;
    if !Path::new(KERNEL_BTF).exists() {
        return Err(Unavailable::NoBtf);
    }
    object::load().map_err(|err| Unavailable::LoadFailed(format!("{err:#}")))?;
    Ok(cgroup2)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instructions the verifier may walk per program (see `verifier_accepts_every_program`).
    const VERIFIER_BUDGET: u32 = 20_000;
    /// ... and all of them together at the default level (warn), as `audit` loads them: 39,300
    /// today (45,400 before the shared rule walk and the branch-free rule step); each message
    /// live at warn would add about 3,300 to each program that can reach it (two such messages
    /// once made it 89,000).
    const VERIFIER_TOTAL_AT_WARN: u32 = 42_000;

    /// Whether this test process can load the programs (root, an object built in); says why not.
    fn programs_loadable() -> bool {
        if !is_root() {
            crate::testing::skipped("not root");
            return false;
        }
        if !object::is_embedded() {
            crate::testing::skipped("built with AYA_BUILD_SKIP, no eBPF object");
            return false;
        }
        true
    }

    #[test]
    fn verifier_accepts_every_program() {
        if !programs_loadable() {
            return;
        }
        // At the default level (warn) and at debug, where every message of the programs is live
        // (each costs 2,000 to 3,000 instructions; see the diagnostics in sockstrace-ebpf).
        for level in [log::LevelFilter::Warn, log::LevelFilter::Debug] {
            let ebpf = object::load_at(level).unwrap_or_else(|err| panic!("{err:#}"));
            let mut total = 0;
            for &name in sockstrace_common::programs::ALL {
                let program = ebpf.program(name).unwrap_or_else(|| panic!("program {name} missing"));
                // Every run pays the verifier's time: about 1 us per instruction it walks.
                // Today's programs take under 8,500 at warn and at debug; the inline 64-rule
                // loop they once had took 620,000 (seconds per run), and aya-log statements
                // inline on every path 240,000. Guard against a change that multiplies the paths
                // again.
                let verified = object::verified_instructions(program).unwrap_or_else(|err| panic!("{err:#}"));
                total += verified;
                if level == log::LevelFilter::Warn {
                    eprintln!("VERIFIED {name} {verified}");
                }
                assert!(
                    verified < VERIFIER_BUDGET,
                    "program {name}: the verifier walked {verified} instructions (logging at {level})"
                );
            }
            if level == log::LevelFilter::Warn {
                assert!(
                    total < VERIFIER_TOTAL_AT_WARN,
                    "the verifier walked {total} instructions over all programs at warn: a message live at warn?"
                );
            }
        }
        // The process tracking tracepoints (audit): load and attach.
        let mut ebpf = object::load().unwrap_or_else(|err| panic!("{err:#}"));
        tracking::attach_tracking(&mut ebpf).unwrap_or_else(|err| panic!("{err:#}"));
        for &(name, _, _) in sockstrace_common::programs::TRACKING {
            let program = ebpf.program(name).unwrap_or_else(|| panic!("program {name} missing"));
            let verified = object::verified_instructions(program).unwrap_or_else(|err| panic!("{err:#}"));
            assert!(
                verified < VERIFIER_BUDGET,
                "program {name}: the verifier walked {verified} instructions"
            );
        }
        drop(ebpf);
        let ebpf = object::load().unwrap_or_else(|err| panic!("{err:#}"));
        use sockstrace_common::{CONFIG_MAP, DROPPED_MAP, EVENTS_MAP, RULES_MAP, SOCKETS_MAP};
        for map in [EVENTS_MAP, DROPPED_MAP, SOCKETS_MAP, CONFIG_MAP, RULES_MAP, "AYA_LOGS"] {
            assert!(ebpf.map(map).is_some(), "map {map} missing");
        }
    }

    /// What a run's programs (`Use::Run`: nothing can be exempt, so the verifier leaves the
    /// exemption checks out) may cost the verifier together: 22,400 today, the programs a run
    /// attaches while its program starts (`supervisor::late_layer`), which its first network
    /// call waits for.
    const VERIFIER_TOTAL_OF_A_RUN: u32 = 25_000;

    #[test]
    fn a_runs_programs_leave_the_exemption_checks_out() {
        if !programs_loadable() {
            return;
        }
        let count = |ebpf: &aya::Ebpf, name: &str| {
            let program = ebpf.program(name).unwrap_or_else(|| panic!("program {name} missing"));
            object::verified_instructions(program).unwrap_or_else(|err| panic!("{err:#}"))
        };
        let run = object::load_run_at(log::LevelFilter::Warn).unwrap_or_else(|err| panic!("{err:#}"));
        let audit = object::load_at(log::LevelFilter::Warn).unwrap_or_else(|err| panic!("{err:#}"));
        let mut total = 0;
        for &name in sockstrace_common::programs::ALL {
            let (in_run, in_audit) = (count(&run, name), count(&audit, name));
            eprintln!("{name}: {in_run} instructions verified in a run, {in_audit} in audit");
            total += in_run;
            // The egress gate's socket-owner check is its own global function: left out only
            // where the kernel checks global functions lazily (6.8+).
            if name == sockstrace_common::programs::EGRESS && kernel_checks_global_functions_lazily() {
                assert!(
                    in_run + 2_000 < in_audit,
                    "the egress gate of a run ({in_run}) still checks exemptions (audit: {in_audit})"
                );
            }
        }
        if !kernel_checks_global_functions_lazily() {
            crate::testing::skipped("kernel before 6.8: global functions are checked even where unreachable");
            return;
        }
        assert!(
            total < VERIFIER_TOTAL_OF_A_RUN,
            "a run's programs cost the verifier {total} instructions (budget {VERIFIER_TOTAL_OF_A_RUN})"
        );
    }

    /// Linux 6.8 checks a global function only where a call to it is reachable.
    fn kernel_checks_global_functions_lazily() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (6, 8)
    }

    #[test]
    fn probe_reports_a_reason_or_availability() {
        let status = probe();
        eprintln!("kernel layer: {status}");
        if !is_root() {
            assert_eq!(status, LayerStatus::Unavailable(Unavailable::NotRoot));
            return;
        }
        // As root, only machine facts may keep the layer off; our own object must load.
        assert!(!matches!(status, LayerStatus::Unavailable(Unavailable::LoadFailed(_))), "{status}");
    }
}
