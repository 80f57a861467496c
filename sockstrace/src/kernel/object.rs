//! The eBPF object built from `sockstrace-ebpf` and embedded by `build.rs`: loading every
//! program, attaching them all to a cgroup.

use std::os::fd::BorrowedFd;

use anyhow::{bail, Context as _, Result};
use aya::{
    programs::{CgroupAttachMode, Program},
    Ebpf,
};
use sockstrace_ebpf::programs;

/// The ELF object, 8-byte aligned as aya needs; empty when built with `AYA_BUILD_SKIP=1`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockstrace-ebpf"));

/// Whether the build embedded an object at all.
pub fn is_embedded() -> bool {
    !OBJECT.is_empty()
}

/// Parses the object, creates its maps and loads (without attaching) every program, so the
/// verifier has accepted all of them. Needs root.
pub fn load() -> Result<Ebpf> {
    if !is_embedded() {
        bail!("this sockstrace was built without its eBPF object (AYA_BUILD_SKIP)");
    }
    let mut ebpf = Ebpf::load(OBJECT).context("loading the embedded eBPF object")?;
    for &name in programs::ALL {
        let loaded = match program(&mut ebpf, name)? {
            Program::CgroupSockAddr(p) => p.load(),
            Program::CgroupSock(p) => p.load(),
            Program::SockOps(p) => p.load(),
            other => bail!("program {name} has unexpected type {:?}", other.prog_type()),
        };
        loaded.with_context(|| format!("loading program {name}"))?;
    }
    Ok(ebpf)
}

/// Attaches every program to the cgroup `dir` (an open cgroup v2 directory). Programs stay
/// attached until `ebpf` is dropped.
pub fn attach_all(ebpf: &mut Ebpf, dir: BorrowedFd<'_>) -> Result<()> {
    // aya attaches through BPF links (kernel 5.7+), which take no flags: the kernel always
    // attaches a cgroup link as multi, so programs others attach to this cgroup or its
    // ancestors keep running, and none can replace ours. (`AllowMultiple` makes it EINVAL.)
    let mode = CgroupAttachMode::Single;
    for &name in programs::ALL {
        let attached = match program(ebpf, name)? {
            Program::CgroupSockAddr(p) => p.attach(dir, mode).map(drop),
            Program::CgroupSock(p) => p.attach(dir, mode).map(drop),
            Program::SockOps(p) => p.attach(dir, mode).map(drop),
            other => bail!("program {name} has unexpected type {:?}", other.prog_type()),
        };
        attached.with_context(|| format!("attaching program {name} to the cgroup"))?;
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Program> {
    ebpf.program_mut(name).with_context(|| format!("the eBPF object has no program {name}"))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// What each program costs the verifier: `cargo test -p sockstrace load_cost -- --ignored
    /// --nocapture` as root.
    #[test]
    #[ignore = "a measurement, as root"]
    fn load_cost() {
        let mut ebpf = Ebpf::load(OBJECT).unwrap();
        let whole = Instant::now();
        for &name in programs::ALL {
            let start = Instant::now();
            let info = match program(&mut ebpf, name).unwrap() {
                Program::CgroupSockAddr(p) => p.load().map(|()| p.info()),
                Program::CgroupSock(p) => p.load().map(|()| p.info()),
                Program::SockOps(p) => p.load().map(|()| p.info()),
                _ => unreachable!(),
            }
            .unwrap()
            .unwrap();
            eprintln!(
                "{name:12} {:8.1} ms  verified insns {:>7}  xlated bytes {:>6}",
                start.elapsed().as_secs_f64() * 1e3,
                info.verified_instruction_count().unwrap_or(0),
                info.size_translated().unwrap_or(0),
            );
        }
        eprintln!("all          {:8.1} ms", whole.elapsed().as_secs_f64() * 1e3);
    }
}
