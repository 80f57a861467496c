//! The eBPF object built from `sockstrace-ebpf` and embedded by `build.rs`: loading every
//! program, attaching them all to a cgroup.

use std::{cmp::Reverse, os::fd::BorrowedFd, sync::Mutex, thread};

use anyhow::{bail, Context as _, Result};
use aya::{
    programs::{CgroupAttachMode, CgroupSkbAttachType, Program},
    Ebpf, EbpfLoader,
};
use sockstrace_common::{
    programs, EXEMPTIONS_GLOBAL, EXEMPT_CGROUPS_MAP, EXEMPT_COUNTS_MAP, EXEMPT_EXES_MAP, EXEMPT_UIDS_MAP,
    GONE_MAP, INBOUND_MAP, PROCS_MAP, SOCKETS_MAP, SOCKETS_SET_MASK_GLOBAL, SOCKETS_WAYS, UDP_PEERS_MAP,
};

/// The ELF object, 8-byte aligned as aya needs; empty when built with `AYA_BUILD_SKIP=1`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockstrace-ebpf"));

/// Whether the build embedded an object at all.
pub fn is_embedded() -> bool {
    !OBJECT.is_empty()
}

/// Parses the object, creates its maps and loads (without attaching) every program, so the
/// verifier has accepted all of them. Needs root.
///
/// The kernel's BTF is not read: our programs have no CO-RE relocations (they read the cgroup
/// hooks' contexts, whose layout is the kernel's ABI), so it would only cost time: aya's
/// `EbpfLoader::new` parses all 5 MB of it whatever the loader is then told, about 50 ms on our
/// machines, the largest part of the layer's start-up. See [`load_without_kernel_btf`]. What is
/// left is the maps and the verifier. `cargo test -p sockstrace load_cost -- --ignored
/// --nocapture` shows the details.
///
/// The programs log (aya-log) at the `log` crate's level ([`log::max_level`], set by
/// `logging::init`): the level is a read-only global of the object, so the verifier drops
/// every message below it as dead code and the kernel never produces one.
pub fn load() -> Result<Ebpf> {
    load_at(log::max_level())
}

/// [`load`], with the programs logging at `level`.
pub fn load_at(level: log::LevelFilter) -> Result<Ebpf> {
    load_some(level, Programs::All, Use::Audit)
}

/// [`load_at`] as a run loads it (`Use::Run`, nothing relayed or let in): what every run's
/// verifier walks.
#[cfg(test)]
pub fn load_run_at(level: log::LevelFilter) -> Result<Ebpf> {
    load_some(level, Programs::All, Use::Run { udp_relay: false, inbound: false })
}

/// What the object is loaded for: a run makes the maps only an audit uses with one entry
/// each, and the UDP relay's map too unless the run may relay UDP (their hundreds of
/// preallocated kilobytes are part of a run's start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Every map at its full size (also for `doctor` and the tests).
    Audit,
    Run {
        udp_relay: bool,
        /// The run may accept connections (`--incoming allow`, `--allow-incoming-from`).
        inbound: bool,
    },
}

/// The maps that only `audit` uses: process tracking and exemptions.
const AUDIT_ONLY_MAPS: &[&str] =
    &[PROCS_MAP, GONE_MAP, EXEMPT_CGROUPS_MAP, EXEMPT_UIDS_MAP, EXEMPT_EXES_MAP, EXEMPT_COUNTS_MAP];

/// Which of [`programs::ALL`] a step loads or attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Programs {
    All,
    /// [`FIRST`]: what must be attached before the program starts when the rest joins it late.
    First,
    /// All but [`FIRST`].
    Rest,
}

/// The programs a run attaches before its program starts when the others join it later
/// (`supervisor::late_layer`): the socket-creation hook alone. Every other hook runs on a
/// call the supervisor traps and holds until the layer is complete; socket creation is not
/// trapped, and who made a socket is known only at its creation.
pub const FIRST: &[&str] = &[programs::SOCK_CREATE];

impl Programs {
    fn has(self, name: &str) -> bool {
        match self {
            Programs::All => true,
            Programs::First => FIRST.contains(&name),
            Programs::Rest => !FIRST.contains(&name),
        }
    }
}

/// [`load`], with only the [`FIRST`] programs verified, for a layer whose other programs load
/// later ([`load_rest`]).
pub fn load_first(map_use: Use) -> Result<Ebpf> {
    load_some(log::max_level(), Programs::First, map_use)
}

/// [`load`] for `map_use`.
pub fn load_for(map_use: Use) -> Result<Ebpf> {
    load_some(log::max_level(), Programs::All, map_use)
}

/// Loads the programs that [`load_first`] left.
pub fn load_rest(ebpf: &mut Ebpf) -> Result<()> {
    load_programs(ebpf, Programs::Rest)
}

fn load_some(level: log::LevelFilter, which: Programs, map_use: Use) -> Result<Ebpf> {
    if !is_embedded() {
        bail!("this sockstrace was built without its eBPF object (AYA_BUILD_SKIP)");
    }
    let mut ebpf = load_object(level, map_use)?;
    load_programs(&mut ebpf, which)?;
    Ok(ebpf)
}

/// Parses the object and creates its maps, without the kernel's BTF, which the object does not
/// need (`the_programs_need_no_kernel_btf` checks it); with it where the way around its parse
/// is refused, or loading without it fails.
fn load_object(level: log::LevelFilter, map_use: Use) -> Result<Ebpf> {
    match load_without_kernel_btf(level, map_use) {
        Ok(Ok(loaded)) => return Ok(loaded),
        Ok(Err(why)) => log::debug!("loading with the kernel's BTF: {why:#}"),
        Err(why) => log::debug!("loading with the kernel's BTF: {why:#}"),
    }
    loader(level, map_use).load(OBJECT).context("loading the embedded eBPF object")
}

/// Whether the object has CO-RE relocations, the only thing aya reads the kernel's BTF for
/// when no program is of a BTF-typed kind (LSM, fentry, BTF tracepoints: the optional LSM
/// program reads it itself, see [`attach_socket_lsm`]).
#[cfg(test)]
fn needs_kernel_btf() -> Result<bool> {
    let object = aya_obj::Object::parse(OBJECT).context("parsing the embedded eBPF object")?;
    Ok(object.has_btf_relocations())
}

/// Runs aya's loader where `/sys/kernel/btf/vmlinux` reads empty, so that its constructor's
/// parse of the kernel's BTF fails at once instead of taking 50 ms: on a thread of its own, in a
/// private mount namespace (`unshare(CLONE_NEWNS)` affects the calling thread only) where
/// `/dev/null` is bound over the file. Nothing else happens on that thread; the maps and the
/// object's own BTF it creates are descriptors of the whole process. The namespace goes with
/// the thread, which is not waited for. `Err` when the namespace or the mount is refused
/// (then nothing was loaded).
fn load_without_kernel_btf(level: log::LevelFilter, map_use: Use) -> Result<Result<Ebpf, aya::EbpfError>> {
    let (send, receive) = std::sync::mpsc::channel();
    thread::Builder::new()
        .name("sockstrace-load".into())
        .spawn(move || {
            let outcome = hide_kernel_btf().map(|()| {
                let mut loader = loader(level, map_use);
                loader.btf(None);
                loader.load(OBJECT)
            });
            let _ = send.send(outcome);
        })
        .context("starting the loader thread")?;
    // aya's kernel feature probes (a dozen small BTF and program loads), which its loader
    // runs once the object is parsed: here meanwhile, so the loader finds them done.
    let _ = aya::features();
    receive.recv().context("the loader thread ended without an answer")?
}

/// In this thread only: a private mount namespace in which the kernel's BTF file reads empty.
fn hide_kernel_btf() -> Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    // Private first: the bind mount must not propagate to the namespace we came from.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context("making the thread's mounts private")?;
    mount(Some("/dev/null"), super::KERNEL_BTF, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .context("binding /dev/null over the kernel's BTF")?;
    Ok(())
}

/// The `SOCKETS` sets of a run ([`sockstrace_common::run_socket_sets`]) for the machine's
/// CPUs: every one the kernel may hand cookies out on, whatever this process's affinity or CPU
/// quota (the program may change its own affinity).
pub fn run_sockets_sets() -> u32 {
    use nix::unistd::{sysconf, SysconfVar};
    let cpus = match sysconf(SysconfVar::_NPROCESSORS_CONF) {
        Ok(Some(cpus)) => u32::try_from(cpus).unwrap_or(u32::MAX),
        // Unknown: the object's full size.
        _ => u32::MAX,
    };
    sockstrace_common::run_socket_sets(cpus)
}

/// A loader setting aya-log-ebpf's level global (`AYA_LOG_LEVEL`: 0 off, 1 error ... 5
/// trace, as `log::LevelFilter` counts) when the object has one.
fn loader(level: log::LevelFilter, map_use: Use) -> EbpfLoader<'static> {
    static LEVELS: [u8; 6] = [0, 1, 2, 3, 4, 5];
    let mut loader = EbpfLoader::new();
    loader.override_global(aya_log::LEVEL, &LEVELS[level as usize], false);
    if let Use::Run { udp_relay, inbound } = map_use {
        for &name in AUDIT_ONLY_MAPS {
            loader.map_max_entries(name, 1);
        }
        let sets = run_sockets_sets();
        loader.map_max_entries(SOCKETS_MAP, sets * SOCKETS_WAYS);
        // 'static: the loader keeps the reference; the value is the same for the process.
        static SET_MASKS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        loader.override_global(SOCKETS_SET_MASK_GLOBAL, SET_MASKS.get_or_init(|| sets - 1), true);
        // Nothing is exempt in a run.
        static NO_EXEMPTIONS: u8 = 0;
        loader.override_global(EXEMPTIONS_GLOBAL, &NO_EXEMPTIONS, true);
        if !udp_relay {
            loader.map_max_entries(UDP_PEERS_MAP, 1);
        }
        if !inbound {
            loader.map_max_entries(INBOUND_MAP, 1);
        }
    }
    loader
}

/// Loads the programs `which` of [`programs::ALL`] on [`LOADERS`] threads: privileged
/// `BPF_PROG_LOAD`s run the verifier concurrently. The egress gate and the sock_addr programs,
/// the costliest to verify, go first so the threads finish together. Reports the first failure in
/// [`programs::ALL`] order.
fn load_programs(ebpf: &mut Ebpf, which: Programs) -> Result<()> {
    if let Some(missing) = programs::ALL.iter().find(|&&name| which.has(name) && ebpf.program(name).is_none())
    {
        bail!("the eBPF object has no program {missing}");
    }
    // Those loaded already (a layer completed after its first programs) are left as they are.
    let mut queue: Vec<(usize, &str, &mut Program)> = ebpf
        .programs_mut()
        .filter(|(name, program)| which.has(name) && program.fd().is_err())
        .filter_map(|(name, program)| {
            let index = programs::ALL.iter().position(|&wanted| wanted == name)?;
            Some((index, name, program))
        })
        .collect();
    // Taken from the back: the costliest first, then in `ALL` order.
    queue.sort_by_key(|(index, _, program)| {
        let cost = match program {
            Program::CgroupSkb(_) => 2,
            Program::CgroupSockAddr(_) => 1,
            _ => 0,
        };
        (cost, Reverse(*index))
    });
    let queue = Mutex::new(queue);
    let work = || {
        // A poisoned lock means the other loader panicked; the scope passes that panic on.
        std::iter::from_fn(|| queue.lock().ok()?.pop())
            .filter_map(|(index, name, program)| load_one(name, program).err().map(|err| (index, err)))
            .collect::<Vec<_>>()
    };
    let mut failures = thread::scope(|scope| {
        let helpers: Vec<_> = (1..LOADERS).map(|_| scope.spawn(work)).collect();
        let mut failures = work();
        for helper in helpers {
            failures.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        failures
    });
    failures.sort_by_key(|(index, _)| *index);
    failures.into_iter().next().map_or(Ok(()), |(_, err)| Err(err))
}

/// Program loader threads: our machines have 2 cores (more threads than programs or cores
/// would only cost their spawning).
const LOADERS: usize = 2;

fn load_one(name: &str, program: &mut Program) -> Result<()> {
    let loaded = match program {
        Program::CgroupSockAddr(p) => p.load(),
        Program::CgroupSock(p) => p.load(),
        Program::SockOps(p) => p.load(),
        Program::CgroupSkb(p) => p.load(),
        Program::CgroupSockopt(p) => p.load(),
        other => bail!("program {name} has unexpected type {:?}", other.prog_type()),
    };
    loaded.with_context(|| format!("loading program {name}"))
}

/// Attaches every program to the cgroup `dir` (an open cgroup v2 directory). Programs stay
/// attached until `ebpf` is dropped.
pub fn attach_all(ebpf: &mut Ebpf, dir: BorrowedFd<'_>) -> Result<()> {
    attach(ebpf, dir, Programs::All)
}

/// Attaches the programs `which` to the cgroup `dir`, as [`attach_all`].
pub fn attach(ebpf: &mut Ebpf, dir: BorrowedFd<'_>, which: Programs) -> Result<()> {
    // aya attaches through BPF links (kernel 5.7+), which take no flags: the kernel always
    // attaches a cgroup link as multi, so programs others attach to this cgroup or its
    // ancestors keep running, and none can replace ours. (`AllowMultiple` makes it EINVAL.)
    let mode = CgroupAttachMode::Single;
    for &name in programs::ALL.iter().filter(|&&name| which.has(name)) {
        if name == programs::EGRESS && crate::testing::disabled("egress") {
            // Test-only: prove that an attack the egress gate stops gets through without it.
            continue;
        }
        if name == programs::SETSOCKOPT && crate::testing::disabled("kernel-options") {
            // Test-only: the egress gate's tests set the options this hook refuses.
            continue;
        }
        let attached = match program(ebpf, name)? {
            Program::CgroupSockAddr(p) => p.attach(dir, mode).map(drop),
            Program::CgroupSock(p) => p.attach(dir, mode).map(drop),
            Program::SockOps(p) => p.attach(dir, mode).map(drop),
            // The egress gate (the only skb program).
            Program::CgroupSkb(p) => p.attach(dir, CgroupSkbAttachType::Egress, mode).map(drop),
            // The setsockopt hook (its attach type comes from its section).
            Program::CgroupSockopt(p) => p.attach(dir, mode).map(drop),
            other => bail!("program {name} has unexpected type {:?}", other.prog_type()),
        };
        attached.with_context(|| format!("attaching program {name} to the cgroup"))?;
    }
    Ok(())
}

/// Loads and attaches the optional BPF LSM `socket_create` program (see
/// [`programs::SOCKET_CREATE_LSM`]): it runs for every task of the machine and refuses, for tasks
/// of the cgroup in `CONFIG`, sockets no other hook could gate. Fails where the kernel has no
/// BPF LSM (not in the active LSM list, or trampolines refused). Costs a parse of the kernel's
/// BTF (about 50 ms), so only runs that need it (io_uring allowed) pay. Returns the program's id.
pub fn attach_socket_lsm(ebpf: &mut Ebpf) -> Result<u32> {
    let name = programs::SOCKET_CREATE_LSM;
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if !lsms.trim().split(',').any(|lsm| lsm == "bpf") {
        bail!("BPF LSM is not active (the kernel's LSM list is {:?})", lsms.trim());
    }
    let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF")?;
    let program: &mut aya::programs::Lsm =
        program(ebpf, name)?.try_into().with_context(|| format!("program {name} is not an LSM program"))?;
    program.load(name, &btf).with_context(|| format!("loading program {name}"))?;
    program.attach().with_context(|| format!("attaching program {name}"))?;
    Ok(program.info().with_context(|| format!("reading the info of program {name}"))?.id())
}

/// The kernel's ids of every program of [`programs::ALL`] (loaded).
pub fn program_ids(ebpf: &Ebpf) -> Result<Vec<u32>> {
    programs::ALL
        .iter()
        .map(|&name| {
            let program =
                ebpf.program(name).with_context(|| format!("the eBPF object has no program {name}"))?;
            let info = program.info().with_context(|| format!("reading the info of program {name}"))?;
            Ok(info.id())
        })
        .collect()
}

/// How many instructions the verifier walked to accept a loaded `program` (0 when the kernel
/// does not say).
#[cfg(test)]
pub fn verified_instructions(program: &Program) -> Result<u32> {
    let info = match program {
        Program::CgroupSockAddr(p) => p.info(),
        Program::CgroupSock(p) => p.info(),
        Program::SockOps(p) => p.info(),
        Program::CgroupSkb(p) => p.info(),
        Program::TracePoint(p) => p.info(),
        Program::CgroupSockopt(p) => p.info(),
        other => bail!("unexpected program type {:?}", other.prog_type()),
    }
    .context("reading the program's info")?;
    Ok(info.verified_instruction_count().unwrap_or(0))
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Program> {
    ebpf.program_mut(name).with_context(|| format!("the eBPF object has no program {name}"))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn ms(start: Instant) -> f64 {
        start.elapsed().as_secs_f64() * 1e3
    }

    /// The first programs and the rest are every program once: a run whose layer completes
    /// late ends up with the same programs as one attached at once.
    #[test]
    fn first_and_rest_split_every_program_once() {
        for &name in programs::ALL {
            assert!(Programs::All.has(name));
            assert_ne!(Programs::First.has(name), Programs::Rest.has(name), "{name}");
        }
        assert!(FIRST.iter().all(|name| programs::ALL.contains(name)));
        assert_eq!(FIRST, [programs::SOCK_CREATE]);
    }

    /// Loading skips the kernel's BTF only because no program needs it: a CO-RE relocation
    /// added to the programs makes loads parse it again (50 ms each run); this says so.
    #[test]
    fn the_programs_need_no_kernel_btf() {
        if !is_embedded() {
            eprintln!("skipped: built with AYA_BUILD_SKIP, no eBPF object");
            return;
        }
        assert!(!needs_kernel_btf().unwrap(), "the eBPF object has CO-RE relocations");
    }

    /// Whether this kernel takes the BPF LSM program: `cargo test -p sockstrace socket_lsm_probe
    /// -- --ignored --nocapture` as root.
    #[test]
    #[ignore = "a probe, as root"]
    fn socket_lsm_probe() {
        let mut ebpf = load().unwrap();
        match attach_socket_lsm(&mut ebpf) {
            Ok(id) => eprintln!("BPF LSM socket_create attached: program id {id}"),
            Err(err) => eprintln!("BPF LSM socket_create refused: {err:#}"),
        }
    }

    /// What loading costs, step by step and per program (with the verifier's instruction
    /// count): `cargo test -p sockstrace load_cost -- --ignored --nocapture` as root.
    #[test]
    #[ignore = "a measurement, as root"]
    fn load_cost() {
        let start = Instant::now();
        drop(aya::Btf::from_sys_fs().unwrap());
        eprintln!("kernel BTF parse   {:7.1} ms", ms(start));
        // The default level (warn), then debug: every message the programs have is live.
        for level in [log::LevelFilter::Warn, log::LevelFilter::Debug] {
            let start = Instant::now();
            let mut ebpf = loader(level, Use::Audit).load(OBJECT).unwrap();
            eprintln!("object and maps    {:7.1} ms   (programs logging at {level})", ms(start));
            let whole = Instant::now();
            for &name in programs::ALL {
                let start = Instant::now();
                let program = program(&mut ebpf, name).unwrap();
                load_one(name, program).unwrap();
                let elapsed = ms(start);
                let verified = verified_instructions(program).unwrap();
                eprintln!("{name:12} {elapsed:11.1} ms  verified instructions {verified:>6}");
            }
            eprintln!("programs, serially {:7.1} ms", ms(whole));
        }
        let mut ebpf = loader(log::max_level(), Use::Audit).load(OBJECT).unwrap();
        let start = Instant::now();
        load_programs(&mut ebpf, Programs::All).unwrap();
        eprintln!("programs, threaded {:7.1} ms", ms(start));
        for _ in 0..3 {
            let start = Instant::now();
            needs_kernel_btf().unwrap();
            eprintln!("object parse       {:7.1} ms", ms(start));
            let start = Instant::now();
            let mut ebpf =
                load_object(log::max_level(), Use::Run { udp_relay: false, inbound: false }).unwrap();
            eprintln!("object, maps       {:7.1} ms   (no kernel BTF, a run's map sizes)", ms(start));
            let start = Instant::now();
            load_programs(&mut ebpf, Programs::First).unwrap();
            eprintln!("first              {:7.1} ms", ms(start));
        }
        let start = Instant::now();
        let mut ebpf = load_first(Use::Run { udp_relay: false, inbound: false }).unwrap();
        eprintln!(
            "object, maps, first{:7.1} ms   (what a run waits for before its program starts)",
            ms(start)
        );
        let start = Instant::now();
        load_rest(&mut ebpf).unwrap();
        eprintln!("the rest, threaded {:7.1} ms", ms(start));
        let start = Instant::now();
        drop(load().unwrap());
        eprintln!("load()             {:7.1} ms", ms(start));
    }
}
