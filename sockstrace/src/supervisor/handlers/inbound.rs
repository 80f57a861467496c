//! `bind`, `listen`, `accept`: who may receive traffic from outside.

use std::net::SocketAddr;
use std::os::fd::AsFd;

use super::{confirm, read_addr, Call, Subject, Target};
use crate::net::sockaddr::{self, SockAddr};
use crate::policy::{decide, Operation, Request};
use crate::report::Action;
use crate::supervisor::notif::Reply;
use crate::supervisor::sys;
use crate::supervisor::tracee::{Failure, Socket};

/// Ports below this need `CAP_NET_BIND_SERVICE` (the kernel's default).
const DEFAULT_UNPRIVILEGED_PORT_START: u16 = 1024;

pub fn bind(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = call.tracee.socket(args[0])?;
    if !sock.facts.is_inet() && sock.facts.family != libc::AF_PACKET {
        // Unix paths resolve against the caller's cwd and credentials: only the
        // kernel, in the caller's context, can bind them.
        return Ok(call.continue_or_refuse("bind", Subject::Socket(&sock)));
    }
    let raw = read_addr(&call.tracee, args[1], args[2])?;
    confirm(call)?;
    let addr = sockaddr::parse(&raw).map_err(|_| Failure::Caller(libc::EINVAL))?;
    let decision =
        decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Bind(addr.clone()) });
    if is_blocked(call.record("bind", Subject::Socket(&sock), Target::Local(Some(&addr)), decision)) {
        return Ok(Reply::Errno(super::BLOCKED_ERRNO));
    }
    if let SockAddr::Inet(local) = addr {
        // We bind with our own privileges: keep the caller's limits.
        if local.port() != 0 && local.port() < unprivileged_port_start() && !call.tracee.can_bind_privileged()
        {
            return Ok(Reply::Errno(libc::EACCES));
        }
    }
    Ok(to_reply(sys::bind(sock.as_fd(), &raw)))
}

pub fn listen(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = call.tracee.socket(args[0])?;
    if !sock.facts.is_inet() {
        return Ok(call.continue_or_refuse("listen", Subject::Socket(&sock)));
    }
    confirm(call)?;
    let local = local_addr(&sock);
    let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Listen { local } });
    let shown = local.map(SockAddr::Inet);
    if is_blocked(call.record("listen", Subject::Socket(&sock), Target::Local(shown.as_ref()), decision)) {
        return Ok(Reply::Errno(super::BLOCKED_ERRNO));
    }
    // On our duplicate: the fd number cannot be swapped under us.
    Ok(to_reply(sys::listen(sock.as_fd(), args[1] as i32)))
}

pub fn accept(call: &mut Call<'_>, name: &'static str) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = call.tracee.socket(args[0])?;
    if !sock.facts.is_inet() {
        return Ok(call.continue_or_refuse(name, Subject::Socket(&sock)));
    }
    confirm(call)?;
    let local = local_addr(&sock);
    let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Accept { local } });
    let shown = local.map(SockAddr::Inet);
    if is_blocked(call.record(name, Subject::Socket(&sock), Target::Local(shown.as_ref()), decision)) {
        return Ok(Reply::Errno(super::BLOCKED_ERRNO));
    }
    // The new connection's fd must land in the caller's table: the kernel
    // runs accept itself. Nothing it does depends on the caller's memory
    // beyond where to write the peer's address.
    Ok(call.continue_or_refuse(name, Subject::Socket(&sock)))
}

fn is_blocked(action: Action) -> bool {
    !action.lets_through()
}

fn to_reply(result: Result<(), sys::Errno>) -> Reply {
    match result {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Errno(e),
    }
}

fn local_addr(sock: &Socket) -> Option<SocketAddr> {
    match sys::getsockname(sock.fd.as_fd()).ok().and_then(|raw| sockaddr::parse(&raw).ok()) {
        Some(SockAddr::Inet(addr)) => Some(addr),
        _ => None,
    }
}

fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_UNPRIVILEGED_PORT_START)
}
