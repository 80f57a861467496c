//! The seccomp filter: which calls stop for the supervisor's decision.
//!
//! Built with libseccomp in the parent, before fork, and exported as a raw BPF
//! program so that the child only needs the `seccomp(2)` system call.

use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// Calls that always stop for a decision.
const NOTIFIED: &[&str] =
    &["connect", "bind", "listen", "accept", "accept4", "sendmsg", "sendmmsg", "io_uring_setup"];

/// A BPF program ready for `seccomp(SECCOMP_SET_MODE_FILTER)`, and the guard installed beside
/// it (see [`terminal_guard`]).
pub struct FilterProgram {
    insns: Vec<libc::sock_filter>,
    guard: Vec<libc::sock_filter>,
}

impl FilterProgram {
    /// The `sock_fprog` the kernel reads; valid while `self` lives.
    pub fn as_fprog(&self) -> libc::sock_fprog {
        fprog(&self.insns)
    }

    /// The guard's `sock_fprog`, installed before the main filter; valid while `self` lives.
    pub fn guard_fprog(&self) -> libc::sock_fprog {
        fprog(&self.guard)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.insns.len()
    }
}

/// Builds the filter: native x86_64 calls are checked as designed; the same
/// calls of the i386 ABI (direct and through `socketcall`) and of x32 stop
/// too, so none reaches the network unchecked. With a system call allowlist
/// (`syscalls`), its rules go into the same filter.
pub fn build(syscalls: Option<&crate::syscalls::filter::Plan>) -> Result<FilterProgram> {
    let default = crate::syscalls::filter::Plan::default_action(syscalls);
    let mut native = ScmpFilterContext::new(default).context("seccomp filter context")?;
    let mut compat = ScmpFilterContext::new(default).context("compat filter context")?;
    compat.add_arch(ScmpArch::X86).context("x86 arch")?;
    compat.add_arch(ScmpArch::X32).context("x32 arch")?;
    compat.remove_arch(ScmpArch::native()).context("remove native arch")?;
    match syscalls {
        None => network_rules(&mut native, &mut compat)?,
        // Every call the allowlist does not allow stops (the default), the
        // network calls among them: they are never in its ALLOW rules.
        Some(plan) => plan.add_rules(&mut native, &mut compat)?,
    }
    native.merge(compat).context("merge compat filter")?;
    Ok(FilterProgram { insns: export(&native)?, guard: terminal_guard()? })
}

fn fprog(insns: &[libc::sock_filter]) -> libc::sock_fprog {
    libc::sock_fprog { len: insns.len() as u16, filter: insns.as_ptr() as *mut libc::sock_filter }
}

/// A filter of its own, installed beside the main one, that refuses [`terminal_rules`]'s,
/// [`image_rules`]', [`limit_rules`]' and [`socketpair_rules`]'s calls: the kernel runs every filter and the most restrictive answer wins (`ERRNO` over
/// user notification and `ALLOW`), whereas in one filter libseccomp drops a conditional rule
/// for a call that an allowlist allows unconditionally (`ioctl` under `--syscalls strict`).
fn terminal_guard() -> Result<Vec<libc::sock_filter>> {
    let mut native = ScmpFilterContext::new(ScmpAction::Allow).context("guard filter context")?;
    let mut compat = ScmpFilterContext::new(ScmpAction::Allow).context("guard compat context")?;
    compat.add_arch(ScmpArch::X86).context("x86 arch")?;
    compat.add_arch(ScmpArch::X32).context("x32 arch")?;
    compat.remove_arch(ScmpArch::native()).context("remove native arch")?;
    terminal_rules(&mut native, &mut compat)?;
    image_rules(&mut native, &mut compat)?;
    limit_rules(&mut native, &mut compat)?;
    socketpair_rules(&mut native)?;
    native.merge(compat).context("merge guard compat filter")?;
    export(&native)
}

/// `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` refused with `EPERM`, whatever the mode: the program
/// keeps its controlling terminal (the user's), and TIOCSTI would type a command into the shell
/// that started sockstrace, to be run after the program, outside every layer (TIOCLINUX's
/// selection paste does the same on a virtual console). The request is an `unsigned int` to the
/// kernel: compared on the low 32 bits.
fn terminal_rules(native: &mut ScmpFilterContext, compat: &mut ScmpFilterContext) -> Result<()> {
    let ioctl = ScmpSyscall::from_name("ioctl").context("syscall ioctl")?;
    for request in [libc::TIOCSTI, libc::TIOCLINUX] {
        let cond = [ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(0xffff_ffff), request)];
        for ctx in [&mut *native, &mut *compat] {
            ctx.add_rule_conditional(ScmpAction::Errno(libc::EPERM), ioctl, &cond)
                .with_context(|| format!("rule for ioctl {request:#x}"))?;
        }
    }
    Ok(())
}

/// `prctl(PR_SET_MM)` refused with `EPERM`, whatever the mode: it rewrites what the kernel says
/// a process runs (its `/proc/PID/exe` link with `PR_SET_MM_MAP`'s `exe_fd` or
/// `PR_SET_MM_EXE_FILE`, where its `argv` and environment are), which its events report. A
/// program needs no privilege for it beyond a user namespace of its own (`CAP_SYS_ADMIN` there
/// is enough for `PR_SET_MM_MAP`); only checkpoint/restore tools use it. The option is an `int`
/// to the kernel: compared on the low 32 bits.
fn image_rules(native: &mut ScmpFilterContext, compat: &mut ScmpFilterContext) -> Result<()> {
    let prctl = ScmpSyscall::from_name("prctl").context("syscall prctl")?;
    let cond = [int_equals(0, libc::PR_SET_MM)];
    for ctx in [native, compat] {
        ctx.add_rule_conditional(ScmpAction::Errno(libc::EPERM), prctl, &cond)
            .context("rule for prctl PR_SET_MM")?;
    }
    Ok(())
}

/// `prlimit64()` that sets a limit of another process refused with `EPERM`, whatever the mode:
/// a process of the same user needs no privilege to lower its supervisor's limits (the file
/// size limit kills it with `SIGXFSZ` at its next report write, the CPU limit with `SIGXCPU`,
/// the open-file limit starves it of descriptors), and no Landlock scope covers it. A process
/// still sets its own limits (pid 0, as `setrlimit` asks) and reads anyone's (no new limit).
/// A pid with bits set beyond the `int` the kernel reads is refused too (64-bit compare).
fn limit_rules(native: &mut ScmpFilterContext, compat: &mut ScmpFilterContext) -> Result<()> {
    let prlimit = ScmpSyscall::from_name("prlimit64").context("syscall prlimit64")?;
    let cond = [
        ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, 0),
        ScmpArgCompare::new(2, ScmpCompareOp::NotEqual, 0),
    ];
    for ctx in [native, compat] {
        ctx.add_rule_conditional(ScmpAction::Errno(libc::EPERM), prlimit, &cond)
            .context("rule for prlimit64 of another process")?;
    }
    Ok(())
}

/// `socketpair()` of any family but unix refused with `EAFNOSUPPORT`, whatever the mode: the
/// only other family that makes pairs is TIPC, whose sockets reach other nodes over a bearer
/// the host may have configured, and which no hook judges (a pair made there could be swapped
/// under a call the kernel runs). A family with high bits set in the register is refused too
/// (the comparison looks at all 64 bits). x86_64 only: on i386, libseccomp would apply the
/// rule to every `socketcall` pair without looking at the family (which is in memory there),
/// refusing unix pairs too (see docs/THREAT-MODEL.md for what is left).
fn socketpair_rules(native: &mut ScmpFilterContext) -> Result<()> {
    let socketpair = ScmpSyscall::from_name("socketpair").context("syscall socketpair")?;
    let not_unix = [ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, libc::AF_UNIX as u64)];
    native
        .add_rule_conditional(ScmpAction::Errno(libc::EAFNOSUPPORT), socketpair, &not_unix)
        .context("rule for socketpair")?;
    Ok(())
}

/// The calls that stop when everything else is allowed.
fn network_rules(native: &mut ScmpFilterContext, compat: &mut ScmpFilterContext) -> Result<()> {
    for name in NOTIFIED {
        let syscall = ScmpSyscall::from_name(name).with_context(|| format!("syscall {name}"))?;
        native.add_rule(ScmpAction::Notify, syscall).with_context(|| format!("rule for {name}"))?;
    }
    // sendto without a destination (send(2), write-like) keeps the peer checked at connect:
    // only calls with an address stop.
    let sendto = ScmpSyscall::from_name("sendto").context("syscall sendto")?;
    let has_addr = ScmpArgCompare::new(4, ScmpCompareOp::NotEqual, 0);
    native.add_rule_conditional(ScmpAction::Notify, sendto, &[has_addr]).context("rule for sendto")?;

    // socket(): only the kinds that write raw packets stop (raw, packet, the
    // obsolete SOCK_PACKET type), and the protocols whose kernel connects on
    // its own (MPTCP subflows, SCTP, which SOCK_SEQPACKET means on inet);
    // everything else is created freely. The kernel reads these arguments as
    // `int`: the comparisons look at the low 32 bits only, so that high bits
    // in the 64-bit register cannot slip a value past them.
    let socket = ScmpSyscall::from_name("socket").context("syscall socket")?;
    let type_mask = crate::net::socket::SOCK_TYPE_MASK as u64;
    for cond in [
        int_equals(0, libc::AF_PACKET),
        ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(type_mask), libc::SOCK_RAW as u64),
        ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(type_mask), crate::net::socket::SOCK_PACKET as u64),
        ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(type_mask), libc::SOCK_SEQPACKET as u64),
        int_equals(2, libc::IPPROTO_MPTCP),
        int_equals(2, libc::IPPROTO_SCTP),
    ] {
        native.add_rule_conditional(ScmpAction::Notify, socket, &[cond]).context("rule for socket")?;
    }
    // ... and every family but the ones that stay local or that the network calls judge
    // (unix, inet, inet6, netlink, alg): a vsock, Bluetooth, RxRPC or TIPC socket is refused
    // when it is made (`unsupported-family`), so that no fd-number swap under a call we let
    // the kernel run can bring one in.
    for family in other_families() {
        native
            .add_rule_conditional(ScmpAction::Notify, socket, &[int_equals(0, family)])
            .with_context(|| format!("rule for socket family {family}"))?;
    }

    // setsockopt(): the options that move the first hop, by exact (level, optname).
    let setsockopt = ScmpSyscall::from_name("setsockopt").context("syscall setsockopt")?;
    for &(level, optname, name) in crate::net::sockopt::ROUTING_OPTIONS {
        let conds = [int_equals(1, level), int_equals(2, optname)];
        native
            .add_rule_conditional(ScmpAction::Notify, setsockopt, &conds)
            .with_context(|| format!("rule for setsockopt {name}"))?;
    }
    native
        .add_rule_conditional(ScmpAction::Notify, setsockopt, &[int_equals(1, crate::net::sockopt::SOL_SCTP)])
        .context("rule for setsockopt SOL_SCTP")?;

    // Every i386 setsockopt stops (its socketcall form carries the arguments
    // in memory, where the filter cannot look): the supervisor decides.
    for name in NOTIFIED.iter().chain(&["sendto", "socket", "setsockopt"]) {
        let syscall = ScmpSyscall::from_name(name).with_context(|| format!("syscall {name}"))?;
        compat.add_rule(ScmpAction::Notify, syscall).with_context(|| format!("compat rule for {name}"))?;
    }
    Ok(())
}

/// Address families below `AF_MAX` other than the ones created freely.
fn other_families() -> impl Iterator<Item = i32> {
    const FREE: [i32; 5] = [libc::AF_UNSPEC, libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK];
    /// `AF_MAX` of Linux 6.x (`AF_MCTP` is 45); the kernel refuses families beyond.
    const AF_MAX: i32 = 46;
    (1..AF_MAX).filter(|f| !FREE.contains(f) && *f != libc::AF_ALG && *f != libc::AF_PACKET)
}

/// Argument `arg` equals `value` as the kernel reads it: as a 32-bit `int`.
fn int_equals(arg: u32, value: i32) -> ScmpArgCompare {
    ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(0xffff_ffff), value as u32 as u64)
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let fd = super::sys::memfd_create(c"sockstrace-filter")
        .map_err(std::io::Error::from_raw_os_error)
        .context("memfd_create")?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file).context("export seccomp BPF")?;
    file.seek(SeekFrom::Start(0))?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)?;
    decode(&raw)
}

fn decode(raw: &[u8]) -> Result<Vec<libc::sock_filter>> {
    anyhow::ensure!(
        raw.len().is_multiple_of(8) && !raw.is_empty(),
        "exported BPF has a bad size ({})",
        raw.len()
    );
    anyhow::ensure!(raw.len() / 8 <= u16::MAX as usize, "exported BPF is too long");
    Ok(raw
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_a_nonempty_program() {
        let prog = super::build(None).expect("filter builds");
        assert!(prog.len() > 10, "program has {} instructions", prog.len());
    }

    #[test]
    fn builds_with_the_strict_allowlist_and_while_learning() {
        use crate::syscalls::{filter::Plan, Profile, Setting};
        for setting in [Setting::Enforce(Profile::strict()), Setting::Learn("/dev/null".into())] {
            let plan = Plan::of(&setting).expect("a plan");
            let prog = super::build(Some(&plan)).expect("filter builds");
            assert!(prog.len() < 4096, "program has {} instructions", prog.len());
        }
    }
}
