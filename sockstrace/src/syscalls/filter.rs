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
    /// Native `socket` of the ordinary kinds is allowed in the kernel.
    plain_socket: bool,
    /// Native `setsockopt` of common options is allowed in the kernel.
    plain_setsockopt: bool,
}

/// `socket()` families, with `SOCK_STREAM` or `SOCK_DGRAM`, and these
/// protocols, created without a stop under an allowlist.
const PLAIN_FAMILIES: [i32; 4] = [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK];
const PLAIN_TYPES: [i32; 2] = [libc::SOCK_STREAM, libc::SOCK_DGRAM];
const PLAIN_PROTOCOLS: [i32; 3] = [0, libc::IPPROTO_TCP, libc::IPPROTO_UDP];

/// `(level, optname)` pairs set without a stop under an allowlist: the
/// common ones, none of them a routing option.
const PLAIN_OPTIONS: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
    (libc::SOL_SOCKET, libc::SO_SNDTIMEO),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_PASSCRED),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP),
    (libc::SOL_SOCKET, libc::SO_ZEROCOPY),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::IPPROTO_TCP, libc::TCP_QUICKACK),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
    (libc::IPPROTO_TCP, libc::TCP_CONGESTION),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IP, libc::IP_RECVERR),
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
    (libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
    (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
];

/// Argument `arg` equals `value` as the kernel reads it: as a 32-bit `int`.
fn int_equals(arg: u32, value: i32) -> ScmpArgCompare {
    ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(0xffff_ffff), value as u32 as u64)
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
        let has = |name: &str| names.iter().any(|n| n == name);
        let (plain_sendto, plain_socket, plain_setsockopt) =
            (has("sendto"), has("socket"), has("setsockopt"));
        let allow = names.into_iter().filter(|n| !NETWORK.contains(&n.as_str())).collect();
        Some(Plan { allow, plain_sendto, plain_socket, plain_setsockopt })
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
        // A binary tree over the call numbers rather than a list of hundreds: the calls the
        // action cache does not decide (the network ones) find their rule in a few steps.
        for ctx in [&mut *native, &mut *compat] {
            ctx.set_ctl_optimize(2).context("libseccomp binary tree layout")?;
        }
        for name in &self.allow {
            if let Ok(nr) = ScmpSyscall::from_name_by_arch(name, ScmpArch::X8664) {
                native.add_rule(ScmpAction::Allow, nr).with_context(|| format!("allow rule for {name}"))?;
            }
            if ScmpSyscall::from_name_by_arch(name, ScmpArch::X86).is_ok() {
                let nr = ScmpSyscall::from_name(name).with_context(|| format!("syscall {name}"))?;
                compat
                    .add_rule(ScmpAction::Allow, nr)
                    .with_context(|| format!("i386 allow rule for {name}"))?;
            }
        }
        if self.plain_socket {
            // The ordinary sockets: a subset of those the network rules let through in any run
            // (never raw, packet or SEQPACKET, never MPTCP or SCTP); any other kind stops.
            let socket = ScmpSyscall::from_name("socket").context("syscall socket")?;
            let type_mask = crate::net::socket::SOCK_TYPE_MASK as u64;
            for family in PLAIN_FAMILIES {
                for kind in PLAIN_TYPES {
                    for protocol in PLAIN_PROTOCOLS {
                        let conds = [
                            int_equals(0, family),
                            ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(type_mask), kind as u64),
                            int_equals(2, protocol),
                        ];
                        native
                            .add_rule_conditional(ScmpAction::Allow, socket, &conds)
                            .context("allow socket")?;
                    }
                }
            }
        }
        if self.plain_setsockopt {
            // Options that move no first hop (`net::sockopt::routing_option` says none of
            // these does); any other option stops.
            let setsockopt = ScmpSyscall::from_name("setsockopt").context("syscall setsockopt")?;
            for &(level, optname) in PLAIN_OPTIONS {
                let conds = [int_equals(1, level), int_equals(2, optname)];
                native
                    .add_rule_conditional(ScmpAction::Allow, setsockopt, &conds)
                    .context("allow setsockopt")?;
            }
        }
        if self.plain_sendto {
            // send(2) is sendto without an address: nothing to judge (the peer was, at connect).
            let sendto = ScmpSyscall::from_name("sendto").context("syscall sendto")?;
            let no_addr = ScmpArgCompare::new(4, ScmpCompareOp::Equal, 0);
            native
                .add_rule_conditional(ScmpAction::Allow, sendto, &[no_addr])
                .context("allow rule for send")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_plain_option_is_a_routing_option() {
        for &(level, optname) in super::PLAIN_OPTIONS {
            assert_eq!(crate::net::sockopt::routing_option(level, optname), None, "{level}/{optname}");
        }
    }

    #[test]
    fn no_plain_socket_is_one_the_network_rules_stop() {
        use crate::net::socket::SOCK_PACKET;
        for family in super::PLAIN_FAMILIES {
            assert_ne!(family, libc::AF_PACKET);
        }
        for protocol in super::PLAIN_PROTOCOLS {
            assert!(![libc::IPPROTO_MPTCP, libc::IPPROTO_SCTP].contains(&protocol));
        }
        for kind in super::PLAIN_TYPES {
            assert!(![libc::SOCK_RAW, SOCK_PACKET, libc::SOCK_SEQPACKET].contains(&kind));
        }
    }
}
