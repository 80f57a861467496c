//! The allowlist's rules in the seccomp filter (built by
//! `supervisor::filter`, which adds the network rules).
//!
//! With an allowlist the filter's default is USER_NOTIF: the listed calls
//! are ALLOW rules (a constant verdict, which the kernel's action cache
//! remembers per call number, so they cost nothing after the first), the
//! network calls stop as in every run, everything else stops too and the
//! supervisor answers it (see `Gate::judge`).

use anyhow::{Context, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use super::Setting;

/// Calls the network rules own: never an unconditional ALLOW, whatever a
/// profile lists (the supervisor judges them). `socketcall` carries every
/// i386 socket call: its allowed sub-calls get their own rules by name.
const NETWORK: &[&str] = &[
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "sendmsg",
    "sendmmsg",
    "io_uring_setup",
    "sendto",
    "socket",
    "setsockopt",
    "socketcall",
];

/// What the filter needs from the setting.
pub struct Plan {
    /// Names allowed in the kernel.
    allow: Vec<String>,
    /// Native `sendto` without an address is allowed in the kernel.
    plain_sendto: bool,
}

impl Plan {
    /// `None`: no allowlist (`--syscalls all`), the filter allows by default.
    pub fn of(setting: &Setting) -> Option<Plan> {
        let names: Vec<String> = match setting {
            Setting::All => return None,
            Setting::Enforce(profile) => profile.allow.iter().cloned().collect(),
            // Learning: only what our child needs before exec runs unseen.
            Setting::Learn(_) => super::profile::ALWAYS.iter().map(|s| (*s).to_owned()).collect(),
        };
        let plain_sendto = names.iter().any(|n| n == "sendto");
        let allow = names.into_iter().filter(|n| !NETWORK.contains(&n.as_str())).collect();
        Some(Plan { allow, plain_sendto })
    }

    /// The default action of both ABIs' filters.
    pub fn default_action(plan: Option<&Plan>) -> ScmpAction {
        if plan.is_some() {
            ScmpAction::Notify
        } else {
            ScmpAction::Allow
        }
    }

    /// Adds the ALLOW rules: `native` is the x86_64 filter, `compat` the
    /// i386 (and x32) one. A name that does not exist on an ABI is skipped
    /// there.
    pub fn add_rules(&self, native: &mut ScmpFilterContext, compat: &mut ScmpFilterContext) -> Result<()> {
        for name in &self.allow {
            if let Ok(nr) = ScmpSyscall::from_name_by_arch(name, ScmpArch::X8664) {
                native.add_rule(ScmpAction::Allow, nr).with_context(|| format!("allow rule for {name}"))?;
            }
            if ScmpSyscall::from_name_by_arch(name, ScmpArch::X86).is_ok() {
                let nr = ScmpSyscall::from_name(name).with_context(|| format!("syscall {name}"))?;
                compat.add_rule(ScmpAction::Allow, nr).with_context(|| format!("i386 allow rule for {name}"))?;
            }
        }
        if self.plain_sendto {
            // send(2) is sendto without an address: nothing to judge (the peer was, at connect).
            let sendto = ScmpSyscall::from_name("sendto").context("syscall sendto")?;
            let no_addr = ScmpArgCompare::new(4, ScmpCompareOp::Equal, 0);
            native.add_rule_conditional(ScmpAction::Allow, sendto, &[no_addr]).context("allow rule for send")?;
        }
        Ok(())
    }
}
