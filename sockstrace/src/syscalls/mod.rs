//! `run --syscalls` and `run --learn-syscalls`: an allowlist of system calls
//! in the same seccomp filter as the network calls (docs/SYSCALLS.md).
//!
//! The filter allows the listed calls in the kernel (the kernel's action
//! cache then skips the filter for them), stops the network calls for the
//! supervisor as in every run, and stops everything else too: the
//! supervisor ([`Gate::judge`]) answers a call outside the list with its
//! errno and reports it, or, while learning, counts it and lets it run.

pub mod filter;
mod learn;
pub mod profile;
pub mod strict;
pub mod table;

use std::path::PathBuf;

use anyhow::Result;

pub use profile::{Denial, Profile};

/// `--syscalls all|strict|FILE` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallsArg {
    All,
    Strict,
    File(PathBuf),
}

impl SyscallsArg {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(SyscallsArg::All),
            "strict" => Ok(SyscallsArg::Strict),
            "" => Err("give all, strict, or a profile FILE".into()),
            path => Ok(SyscallsArg::File(path.into())),
        }
    }
}

/// What the run does about system calls other than the network ones.
#[derive(Debug, Clone)]
pub enum Setting {
    /// Every call runs (the network calls are judged as always).
    All,
    Enforce(Profile),
    /// Record every call and write a profile to this file at the end.
    Learn(PathBuf),
}

impl Setting {
    /// Resolves the options; a profile file is read (and checked) now.
    pub fn resolve(arg: &SyscallsArg, learn: Option<PathBuf>) -> Result<Self> {
        match (arg, learn) {
            (SyscallsArg::All, Some(out)) => Ok(Setting::Learn(out)),
            (_, Some(_)) => {
                anyhow::bail!("--learn-syscalls records every call: it goes with --syscalls all only")
            }
            (SyscallsArg::All, None) => Ok(Setting::All),
            (SyscallsArg::Strict, None) => Ok(Setting::Enforce(Profile::strict())),
            (SyscallsArg::File(path), None) => Ok(Setting::Enforce(Profile::load(path)?)),
        }
    }

    /// The words of the summary's layers line.
    pub fn describe(&self) -> String {
        match self {
            Setting::All => "all".into(),
            Setting::Enforce(p) => {
                let on_deny = match p.default {
                    Denial::Errno(e) => profile::errno_name(e),
                    Denial::Kill => "kill".into(),
                };
                format!("{} ({} names allowed, others {on_deny})", p.label, p.allow.len())
            }
            Setting::Learn(path) => format!("learning (profile to {})", path.display()),
        }
    }
}

/// What the supervisor does with one stopped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// A network call (or a foreign ABI's): judged by the network handlers.
    Network,
    /// Allowed: the kernel runs it as it would have without a filter.
    Continue,
    /// Outside the list.
    Deny { name: &'static str, denial: Denial },
}

/// The supervisor's side of the allowlist.
pub struct Gate {
    mode: Mode,
    names: table::Names,
}

enum Mode {
    Enforce(Profile),
    Learn(learn::Learner),
}

impl Gate {
    /// `None` for `--syscalls all`: nothing to judge.
    pub fn new(setting: &Setting) -> Option<Self> {
        let mode = match setting {
            Setting::All => return None,
            Setting::Enforce(p) => Mode::Enforce(p.clone()),
            Setting::Learn(_) => Mode::Learn(learn::Learner::default()),
        };
        Some(Gate { mode, names: table::Names::load() })
    }

    /// Judges a stopped call: `network` says whether the network handlers
    /// know it (a network call of a known ABI). Foreign calls (x32, other
    /// architectures, a `socketcall` without a valid sub-call) go to the
    /// network handlers, which refuse them. A number this libseccomp has no
    /// name for (a call newer than it) goes by `ABI:NUMBER`, which no profile
    /// can allow.
    pub fn judge(&self, arch: u32, nr: i32, arg0: u64, network: bool) -> Judged {
        if table::foreign(arch, nr, arg0) {
            return Judged::Network;
        }
        let name = self.names.name(arch, nr, arg0).unwrap_or_else(|| self.names.unnamed(arch, nr));
        let allowed = match &self.mode {
            Mode::Learn(learner) => {
                learner.record(table::abi_name(arch, nr), name);
                true
            }
            Mode::Enforce(profile) => match profile.judge(name) {
                None => true,
                Some(denial) => return Judged::Deny { name, denial },
            },
        };
        match (allowed, network) {
            (true, true) => Judged::Network,
            _ => Judged::Continue,
        }
    }

    /// While learning: writes the profile of what was seen; says what it wrote.
    pub fn finish(&self, setting: &Setting, program: &str) -> Result<Option<String>> {
        match (&self.mode, setting) {
            (Mode::Learn(learner), Setting::Learn(path)) => learner.write(path, program).map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::table::{ARCH_I386, ARCH_X86_64, I386_SOCKETCALL};
    use super::*;

    #[test]
    fn strict_sends_network_calls_on_denies_others_and_lets_allowed_ones_continue() {
        let gate = Gate::new(&Setting::Enforce(Profile::strict())).unwrap();
        let ptrace = libc::SYS_ptrace as i32;
        let denied = Judged::Deny { name: "ptrace", denial: Denial::Errno(libc::EPERM) };
        assert_eq!(gate.judge(ARCH_X86_64, ptrace, 0, false), denied);
        assert_eq!(gate.judge(ARCH_I386, 26, 0, false), denied, "i386 ptrace");
        assert_eq!(gate.judge(ARCH_X86_64, libc::SYS_connect as i32, 0, true), Judged::Network);
        assert_eq!(gate.judge(ARCH_I386, I386_SOCKETCALL, 3, true), Judged::Network, "socketcall connect");
        assert_eq!(gate.judge(ARCH_I386, I386_SOCKETCALL, 10, false), Judged::Continue, "socketcall recv");
        assert_eq!(gate.judge(ARCH_X86_64, libc::SYS_getpid as i32, 0, false), Judged::Continue);
        // x32: the network handlers refuse foreign ABIs.
        assert_eq!(gate.judge(ARCH_X86_64, 0x4000_0000 | ptrace, 0, false), Judged::Network);
        // A number with no name (mseal with libseccomp 2.5): denied by its number.
        let Judged::Deny { name, .. } = gate.judge(ARCH_X86_64, 1000, 0, false) else { panic!("not denied") };
        assert_eq!(name, "x86_64:1000");
    }

    #[test]
    fn a_profile_without_connect_denies_it_before_any_network_judgment() {
        let profile = profile::parse("version = 1\nallow = [\"socket\"]", "test").unwrap();
        let gate = Gate::new(&Setting::Enforce(profile)).unwrap();
        let denied = Judged::Deny { name: "connect", denial: Denial::Errno(libc::EPERM) };
        assert_eq!(gate.judge(ARCH_X86_64, libc::SYS_connect as i32, 0, true), denied);
        assert_eq!(gate.judge(ARCH_I386, I386_SOCKETCALL, 3, true), denied);
        assert_eq!(gate.judge(ARCH_I386, I386_SOCKETCALL, 1, true), Judged::Network, "socket is listed");
    }

    #[test]
    fn learning_lets_every_call_run_and_counts_it() {
        let gate = Gate::new(&Setting::Learn("/dev/null".into())).unwrap();
        assert_eq!(gate.judge(ARCH_X86_64, libc::SYS_ptrace as i32, 0, false), Judged::Continue);
        assert_eq!(gate.judge(ARCH_I386, 26, 0, false), Judged::Continue);
        assert_eq!(gate.judge(ARCH_X86_64, libc::SYS_connect as i32, 0, true), Judged::Network);
        let Mode::Learn(learner) = &gate.mode else { panic!("not learning") };
        let seen = learner.snapshot();
        assert_eq!(seen["x86_64"]["ptrace"], 1);
        assert_eq!(seen["x86_64"]["connect"], 1);
        assert_eq!(seen["i386"]["ptrace"], 1);
    }

    #[test]
    fn options_resolve() {
        assert!(matches!(Setting::resolve(&SyscallsArg::All, None), Ok(Setting::All)));
        assert!(matches!(Setting::resolve(&SyscallsArg::Strict, None), Ok(Setting::Enforce(_))));
        assert!(Setting::resolve(&SyscallsArg::Strict, Some("/tmp/x".into())).is_err());
        assert!(matches!(Setting::resolve(&SyscallsArg::All, Some("/tmp/x".into())), Ok(Setting::Learn(_))));
        assert_eq!(SyscallsArg::parse("./strict"), Ok(SyscallsArg::File("./strict".into())));
    }
}
