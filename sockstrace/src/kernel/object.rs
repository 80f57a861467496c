//! The eBPF object built from `sockstrace-ebpf` and embedded by `build.rs`.

use anyhow::{bail, Context as _, Result};
use aya::{programs::CgroupSockAddr, Ebpf};
use sockstrace_ebpf::programs;

/// The ELF object, 8-byte aligned as aya needs; empty when built with `AYA_BUILD_SKIP=1`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockstrace-ebpf"));

/// Whether the build embedded an object at all.
pub fn is_embedded() -> bool {
    !OBJECT.is_empty()
}

/// Parses the object, creates its maps and loads (without attaching) every program, so the
/// verifier has accepted all of them. Needs root. Attach the returned programs with
/// `CgroupSockAddr::attach` on a cgroup2 directory.
pub fn load() -> Result<Ebpf> {
    if !is_embedded() {
        bail!("this sockstrace was built without its eBPF object (AYA_BUILD_SKIP)");
    }
    let mut ebpf = Ebpf::load(OBJECT).context("loading the embedded eBPF object")?;
    for &name in programs::ALL {
        load_sock_addr(&mut ebpf, name)?;
    }
    Ok(ebpf)
}

/// Loads the cgroup sock_addr program `name` into the kernel.
fn load_sock_addr(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    let program: &mut CgroupSockAddr = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?
        .try_into()
        .with_context(|| format!("program {name} is not a cgroup sock_addr program"))?;
    program.load().with_context(|| format!("loading program {name}"))
}
