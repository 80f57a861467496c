//! `bind`, `listen`, `accept`: who may receive traffic from outside.

use std::net::SocketAddr;
use std::os::fd::AsFd;

use super::{confirm, read_addr, run_call, Call, Subject, Target};
use crate::net::sockaddr::{self, SockAddr};
use crate::policy::{decide, Operation, Reason, Request};
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
    let op = Operation::Accept { local, peer: None };
    let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op });
    if decision.reason == Reason::IncomingFiltered {
        return accept_filtered(call, name, sock, local);
    }
    let shown = local.map(SockAddr::Inet);
    if is_blocked(call.record(name, Subject::Socket(&sock), Target::Local(shown.as_ref()), decision)) {
        return Ok(Reply::Errno(super::BLOCKED_ERRNO));
    }
    // The new connection's fd must land in the caller's table: the kernel
    // runs accept itself. Nothing it does depends on the caller's memory
    // beyond where to write the peer's address.
    Ok(call.continue_or_refuse(name, Subject::Socket(&sock)))
}

/// How often a blocking accept we perform checks that its caller still waits.
const ACCEPT_RECHECK_MS: i32 = 500;

/// `--allow-incoming-from`: we take each connection ourselves, judge its peer,
/// and hand an allowed one to the caller (installed in its fd table and
/// returned as accept's result); a refused one is closed and, on a blocking
/// listener, we wait for the next.
fn accept_filtered(
    call: &mut Call<'_>,
    name: &'static str,
    sock: Socket,
    local: Option<SocketAddr>,
) -> Result<Reply, Failure> {
    let args = call.args;
    let flags = if name == "accept4" { args[3] as i32 } else { 0 };
    let blocking = !sys::is_nonblocking(sock.as_fd()).map_err(Failure::Check)?;
    let listener = std::sync::Arc::new(sock.fd.try_clone().map_err(|e| Failure::Check(errno_of(&e)))?);
    loop {
        let (listener, notifier, id) = (listener.clone(), call.ctx.notifier.clone(), call.n.id);
        let taken = run_call(call.ctx, blocking, move || {
            while blocking && !sys::poll_one(listener.as_fd(), libc::POLLIN, ACCEPT_RECHECK_MS) {
                if !notifier.id_valid(id) {
                    return Err(libc::ESRCH);
                }
            }
            sys::accept4(listener.as_fd(), flags & libc::SOCK_NONBLOCK)
        })?;
        let (conn, raw_peer) = match taken {
            Ok(taken) => taken,
            Err(libc::ESRCH) => return Err(Failure::Gone),
            Err(e) => return Ok(Reply::Errno(e)),
        };
        let peer = match sockaddr::parse(&raw_peer) {
            Ok(SockAddr::Inet(peer)) => Some(peer),
            _ => None,
        };
        let op = Operation::Accept { local, peer };
        let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op });
        let shown = peer.map(SockAddr::Inet);
        let action = call.record(name, Subject::Socket(&sock), Target::Remote(shown.as_ref()), decision);
        if action.lets_through() {
            write_peer_address(call, args[1], args[2], &raw_peer)?;
            let cloexec = flags & libc::SOCK_CLOEXEC != 0;
            return match call.ctx.notifier.add_fd_and_respond(call.n.id, conn.as_fd(), cloexec) {
                Ok(_) => Ok(Reply::Answered),
                Err(libc::ENOENT) => Err(Failure::Gone),
                Err(e) => Err(Failure::Check(e)),
            };
        }
        drop(conn);
        if !blocking || action != Action::Blocked {
            return Ok(Reply::Errno(if blocking { super::BLOCKED_ERRNO } else { libc::EAGAIN }));
        }
        confirm(call)?;
    }
}

/// Stores the peer's address as accept does: at most `*addrlen` bytes at
/// `addr`, and the full length in `*addrlen`.
fn write_peer_address(call: &Call<'_>, addr: u64, addrlen: u64, raw: &[u8]) -> Result<(), Failure> {
    if addr == 0 {
        return Ok(());
    }
    let room = i32::from_ne_bytes(call.tracee.read(addrlen, 4)?.try_into().unwrap_or([0; 4]));
    if room < 0 {
        return Err(Failure::Caller(libc::EINVAL));
    }
    call.tracee.write(addr, &raw[..raw.len().min(room as usize)])?;
    call.tracee.write(addrlen, &(raw.len() as u32).to_ne_bytes())
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
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
