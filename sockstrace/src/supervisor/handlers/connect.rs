//! `connect(fd, addr, len)`.

use std::os::fd::AsFd;

use super::{confirm, read_addr, reply_of, run_call, Call, Subject, Target, BLOCKED_ERRNO};
use crate::net::sockaddr;
use crate::policy::{decide, Operation, Request};
use crate::report::Action;
use crate::supervisor::notif::Reply;
use crate::supervisor::sys;
use crate::supervisor::tracee::Failure;

pub async fn connect(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = call.tracee.socket(args[0])?;
    let raw = read_addr(&call.tracee, args[1], args[2])?;
    confirm(call)?;
    let addr = sockaddr::parse(&raw).map_err(|_| Failure::Caller(libc::EINVAL))?;
    let decision =
        decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Connect(addr.clone()) });
    match call.record("connect", Subject::Socket(&sock), Target::Remote(Some(&addr)), decision) {
        Action::Blocked | Action::Killed => return Ok(Reply::Errno(BLOCKED_ERRNO)),
        Action::Allowed | Action::Logged => {}
    }
    if !sock.facts.is_inet() {
        // Unix and other local families: the kernel must run the call in the
        // caller's context (path lookup, credentials passed to the peer).
        return Ok(call.continue_or_refuse("connect", Subject::Socket(&sock)));
    }
    let may_block = !sys::is_nonblocking(sock.as_fd()).map_err(Failure::Check)?;
    let result = run_call(may_block, move || sys::connect(sock.fd.as_fd(), &raw)).await?;
    Ok(reply_of(result.map(|()| 0)))
}
