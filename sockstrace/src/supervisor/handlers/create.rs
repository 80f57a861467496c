//! `socket(family, type, protocol)`: the filter traps only raw and packet
//! sockets natively, the protocols refused below, the families no hook judges
//! (all but unix, inet, inet6, netlink, alg), and every creation of the i386 ABI.
//!
//! An allowed creation whose arguments are registers is CONTINUEd (a socket
//! must be made in the caller's context). One through i386 `socketcall` is
//! not: the kernel would read the family again from memory another thread or
//! process of the program can rewrite after our decision (and make a vsock
//! socket, say, that no hook judges, ready for an fd swap under a continued
//! unix call). The program's socket maker (`supervisor::maker`, in its cgroup,
//! namespaces and credentials) makes the socket we judged, and it is
//! installed in the caller's fd table.

use std::os::fd::AsFd;

use super::materialize;
use super::{Call, Judged, Subject, Target};
use crate::net::socket::{SocketFacts, SOCK_TYPE_MASK};
use crate::policy::{decide, Decision, Operation, Reason, Request, Ruling};
use crate::report_writer::Action;
use crate::supervisor::notif::Reply;
use crate::supervisor::tracee::Failure;

pub fn socket(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    // The kernel reads all three as `int`.
    let facts = SocketFacts {
        family: args[0] as i32,
        sock_type: args[1] as i32 & SOCK_TYPE_MASK,
        protocol: args[2] as i32,
    };
    if connects_on_its_own(&facts) {
        // A downgrade, not a leak: the program falls back to TCP as on a
        // kernel without the protocol.
        let refused = Decision::allowed(Reason::UnsupportedProtocol);
        let judged = Judged::new("socket", Subject::Facts(facts), Target::Remote(None), refused)
            .failing_with(libc::EPROTONOSUPPORT);
        let outcome = call.gate(judged, Ruling::Forced(Action::Blocked));
        return Ok(outcome.refusal().unwrap_or(Reply::Errno(libc::EPROTONOSUPPORT)));
    }
    let decision = decide(&call.ctx.policy, &Request { socket: facts, op: Operation::Create });
    let judged = Judged::new("socket", Subject::Facts(facts), Target::Remote(None), decision);
    // Registers only: answered CONTINUE (below); socketcall's socket is made by the maker.
    let outcome = match call.multiplexed {
        true => call.gate(judged, Ruling::OnLeak),
        false => call.gate_for_continue(judged, Ruling::OnLeak),
    };
    if let Some(refused) = outcome.refusal() {
        return Ok(refused);
    }
    if call.multiplexed {
        return make_for_caller(call, facts, args[1] as i32);
    }
    // Creating a socket must happen in the caller's context.
    call.continue_or_refuse("socket", Subject::Facts(facts))
}

/// An allowed i386 `socketcall(SYS_SOCKET)`: the socket of `facts` (our copy
/// of the arguments) made by the program's socket maker and installed in the
/// caller's fd table, its number the call's result. `raw_type` carries the
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags.
fn make_for_caller(call: &mut Call<'_>, facts: SocketFacts, raw_type: i32) -> Result<Reply, Failure> {
    let flags = raw_type & !SOCK_TYPE_MASK;
    if flags & !(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) != 0 {
        return Err(Failure::Caller(libc::EINVAL));
    }
    // A caller that moved to a network namespace of its own gets its socket
    // there (the maker enters it, where it may; else the call fails closed).
    let netns = match call.ctx.in_program_netns(call.n.tid) {
        true => None,
        false => Some(
            std::fs::File::open(format!("/proc/{}/ns/net", call.n.tid))
                .map_err(|e| Failure::Check(e.raw_os_error().unwrap_or(libc::EIO)))?,
        ),
    };
    let kind = facts.sock_type | (flags & libc::SOCK_NONBLOCK);
    let made = call
        .ctx
        .maker
        .make_socket(facts.family, kind, facts.protocol, netns.as_ref().map(AsFd::as_fd))
        .map_err(|e| Failure::Check(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let fd = match made {
        Ok(fd) => fd,
        // The kernel's own answer to this creation (no such protocol, no memory, ...).
        Err(errno) => return Ok(Reply::Errno(errno)),
    };
    materialize::confirm(call)?;
    super::answer_with_fd(call, fd.as_fd(), flags & libc::SOCK_CLOEXEC != 0)
}

/// Internet protocols whose kernel connects to addresses the program never
/// passed to `connect`: MPTCP (subflows to addresses the peer announces) and
/// SCTP (multi-homing; `SOCK_SEQPACKET` with protocol 0 is SCTP on inet).
fn connects_on_its_own(facts: &SocketFacts) -> bool {
    facts.is_inet()
        && (matches!(facts.protocol, libc::IPPROTO_MPTCP | libc::IPPROTO_SCTP)
            || (facts.sock_type == libc::SOCK_SEQPACKET && facts.protocol == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mptcp_and_sctp_are_refused_on_inet_only() {
        let f = |family, sock_type, protocol| SocketFacts { family, sock_type, protocol };
        assert!(connects_on_its_own(&f(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP)));
        assert!(connects_on_its_own(&f(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_MPTCP)));
        assert!(connects_on_its_own(&f(libc::AF_INET, libc::SOCK_SEQPACKET, libc::IPPROTO_SCTP)));
        assert!(connects_on_its_own(&f(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_SCTP)));
        assert!(connects_on_its_own(&f(libc::AF_INET, libc::SOCK_SEQPACKET, 0)));
        assert!(!connects_on_its_own(&f(libc::AF_INET, libc::SOCK_STREAM, 0)));
        assert!(!connects_on_its_own(&f(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP)));
        assert!(!connects_on_its_own(&f(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0)));
    }
}
