//! `socket(family, type, protocol)`: the filter traps only raw and packet
//! sockets natively, the protocols refused below, the families no hook judges
//! (all but unix, inet, inet6, netlink, alg), and every creation of the i386 ABI.

use super::{Call, Subject, Target, BLOCKED_ERRNO};
use crate::net::socket::{SocketFacts, SOCK_TYPE_MASK};
use crate::policy::{decide, Decision, Operation, Reason, Request};
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
        call.record_action("socket", Subject::Facts(facts), Target::Remote(None), refused, Action::Blocked);
        call.set_last_errno(libc::EPROTONOSUPPORT);
        return Ok(Reply::Errno(libc::EPROTONOSUPPORT));
    }
    let decision = decide(&call.ctx.policy, &Request { socket: facts, op: Operation::Create });
    if !call.record("socket", Subject::Facts(facts), Target::Remote(None), decision).lets_through() {
        return Ok(Reply::Errno(BLOCKED_ERRNO));
    }
    // Creating a socket must happen in the caller's context.
    Ok(call.continue_or_refuse("socket", Subject::Facts(facts)))
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
