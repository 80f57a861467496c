//! `socket(family, type, protocol)`: the filter traps only raw and packet
//! sockets natively (and every creation of the i386 ABI).

use super::{Call, Subject, Target, BLOCKED_ERRNO};
use crate::net::socket::{SocketFacts, SOCK_TYPE_MASK};
use crate::policy::{decide, Operation, Request};
use crate::supervisor::notif::Reply;
use crate::supervisor::tracee::Failure;

pub fn socket(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let facts = SocketFacts {
        family: args[0] as i32,
        sock_type: args[1] as i32 & SOCK_TYPE_MASK,
        protocol: args[2] as i32,
    };
    let decision = decide(&call.ctx.policy, &Request { socket: facts, op: Operation::Create });
    if !call.record("socket", Subject::Facts(facts), Target::Remote(None), decision).lets_through() {
        return Ok(Reply::Errno(BLOCKED_ERRNO));
    }
    // Creating a socket must happen in the caller's context.
    Ok(call.continue_or_refuse("socket", Subject::Facts(facts)))
}
