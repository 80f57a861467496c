//! `bind`, `listen`, `accept`: who may receive traffic from outside.

use std::net::SocketAddr;
use std::os::fd::AsFd;

use super::materialize;
use super::{run_call, Call, Judged, Outcome, Subject, Target};
use crate::net::sockaddr::{self, SockAddr};
use crate::policy::{decide, Decision, Operation, Reason, Request, Ruling};
use crate::report_writer::Action;
use crate::supervisor::isolate;
use crate::supervisor::notif::Reply;
use crate::supervisor::sys;
use crate::supervisor::tracee::{Failure, Socket};

/// Ports below this need `CAP_NET_BIND_SERVICE` (the kernel's default).
const DEFAULT_UNPRIVILEGED_PORT_START: u16 = 1024;

pub fn bind(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = materialize::socket(call, args[0])?;
    let raw = materialize::addr(call, args[1], args[2])?;
    let (sock, raw) = sock.and(raw).confirm(call)?;
    let addr = sockaddr::parse(&raw).map_err(|_| Failure::Caller(libc::EINVAL))?;
    // Every family is decided: an address of another family than a unix
    // socket's is refused (a swapped fd number would bind it on an inet
    // socket), and families that leave the machine are refused.
    let decision =
        decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Bind(addr.clone()) });
    let judged = Judged::new("bind", Subject::Socket(&sock), Target::Local(Some(&addr)), decision);
    // A local family's bind is answered CONTINUE (below); an inet one is performed by us.
    let outcome = match sock.facts.is_local_family() {
        true => call.gate_for_continue(judged, Ruling::OnLeak),
        false => call.gate(judged, Ruling::OnLeak),
    };
    if let Some(refused) = outcome.refusal() {
        return Ok(refused);
    }
    if sock.facts.is_local_family() {
        return call.continue_or_refuse("bind", Subject::Socket(&sock));
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

/// `listen`, performed on our duplicate for every family: the fd number can
/// no longer name another socket by the time the call runs. A unix listener
/// keeps the credentials of whoever called `listen` (its clients read them
/// with `SO_PEERCRED`): a root supervisor takes the caller's uids, gids and
/// groups on a short-lived thread of its own for the call
/// ([`listen_as_caller`]); the pid its clients see is still ours.
pub fn listen(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = materialize::socket(call, args[0])?.confirm(call)?;
    let local = local_addr(&sock);
    let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Listen { local } });
    let shown = local.map(SockAddr::Inet);
    let judged = Judged::new("listen", Subject::Socket(&sock), Target::Local(shown.as_ref()), decision);
    if let Some(refused) = call.gate(judged, Ruling::OnLeak).refusal() {
        return Ok(refused);
    }
    if sock.facts.family == libc::AF_UNIX && nix::unistd::geteuid().is_root() {
        let status = std::fs::read_to_string(format!("/proc/{}/status", call.tracee.tid))
            .map_err(|e| Failure::Check(errno_of(&e)))?;
        let creds = Credentials::parse(&status).ok_or(Failure::Check(libc::EIO))?;
        if !creds.is_root() {
            return listen_as_caller(sock.as_fd(), args[1] as i32, &creds);
        }
    }
    let result = sys::listen(sock.as_fd(), args[1] as i32);
    // --isolate-network: the listener is reachable from the host's namespace too.
    if let (Ok(()), Some(inbound), true) =
        (result, &call.ctx.inbound, matches!(sock.facts.family, libc::AF_INET | libc::AF_INET6))
    {
        inbound.on_listen(sock.as_fd());
    }
    Ok(to_reply(result))
}

/// A caller's credentials, from `/proc/TID/status` (ids as our user
/// namespace sees them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credentials {
    /// Real, effective, saved.
    uid: [u32; 3],
    gid: [u32; 3],
    groups: Vec<u32>,
}

impl Credentials {
    fn parse(status: &str) -> Option<Credentials> {
        let ids = |field: &str| -> Option<[u32; 3]> {
            let v: Vec<u32> = crate::procfs::status_field(status, field)?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some([*v.first()?, *v.get(1)?, *v.get(2)?])
        };
        let groups = crate::procfs::status_field(status, "Groups:")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Credentials { uid: ids("Uid:")?, gid: ids("Gid:")?, groups })
    }

    fn is_root(&self) -> bool {
        self.uid == [0; 3] && self.gid == [0; 3] && self.groups.iter().all(|&g| g == 0)
    }
}

/// `listen` on a thread that first takes the caller's groups, gids and uids
/// (raw system calls: they change the calling thread only, where libc's
/// wrappers would change every thread of ours), so the listener's
/// `SO_PEERCRED` names the caller's user. The thread ends with the call; its
/// credentials go with it.
fn listen_as_caller(
    sock: std::os::fd::BorrowedFd<'_>,
    backlog: i32,
    creds: &Credentials,
) -> Result<Reply, Failure> {
    use std::os::fd::AsRawFd;
    // Changing a thread's uid resets the dumpable flag of the whole process
    // to fs.suid_dumpable; at 1 that would open us to same-uid ptrace for a
    // moment. Listen as ourselves then (clients see root's credentials).
    if std::fs::read_to_string("/proc/sys/fs/suid_dumpable").map(|s| s.trim() == "1").unwrap_or(true) {
        return Ok(to_reply(sys::listen(sock, backlog)));
    }
    let fd = sock.as_raw_fd();
    // A thread that cannot be started (the program used up the machine's pids, say) denies
    // the call (`check-failed`): `Scope::spawn` would panic the receiver instead.
    let result = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .spawn_scoped(scope, || -> Result<(), (&'static str, sys::Errno)> {
                // SAFETY: raw system calls with integer arguments and a
                // pointer to a live Vec of gids; `fd` stays open (borrowed)
                // until this scoped thread is joined.
                unsafe {
                    let step =
                        |r: libc::c_long, what| if r == 0 { Ok(()) } else { Err((what, sys::last_errno())) };
                    step(
                        libc::syscall(libc::SYS_setgroups, creds.groups.len(), creds.groups.as_ptr()),
                        "setgroups",
                    )?;
                    let [r, e, s] = creds.gid;
                    step(libc::syscall(libc::SYS_setresgid, r, e, s), "setresgid")?;
                    let [r, e, s] = creds.uid;
                    step(libc::syscall(libc::SYS_setresuid, r, e, s), "setresuid")?;
                    step(libc::listen(fd, backlog) as libc::c_long, "listen")
                }
            })
            .map(|thread| thread.join())
    });
    // Belt and braces: we stay non-dumpable whatever the thread did.
    let _ = crate::supervisor::fence::make_non_dumpable();
    match result {
        Ok(Ok(Ok(()))) => Ok(Reply::Value(0)),
        Ok(Ok(Err(("listen", e)))) => Ok(Reply::Errno(e)),
        Ok(Ok(Err((_, e)))) => Err(Failure::Check(e)),
        Ok(Err(_)) => Err(Failure::Check(libc::EIO)),
        Err(e) => Err(Failure::Check(e.raw_os_error().unwrap_or(libc::EAGAIN))),
    }
}

/// `accept`/`accept4`, performed by us for every family: we take the
/// connection on our duplicate of the listener and install it in the caller's
/// fd table (`SECCOMP_IOCTL_NOTIF_ADDFD`), so the fd number cannot name
/// another listener by the time the call runs.
pub fn accept(call: &mut Call<'_>, name: &'static str) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = materialize::socket(call, args[0])?.confirm(call)?;
    let flags = if name == "accept4" { args[3] as i32 } else { 0 };
    if flags & !(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) != 0 {
        return Err(Failure::Caller(libc::EINVAL));
    }
    let local = local_addr(&sock);
    let op = Operation::Accept { local, peer: None };
    let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op });
    if decision.reason == Reason::IncomingFiltered {
        return take_connections(call, name, flags, sock, Some(local));
    }
    let shown = local.map(SockAddr::Inet);
    let judged = Judged::new(name, Subject::Socket(&sock), Target::Local(shown.as_ref()), decision);
    if let Some(refused) = call.gate(judged, Ruling::OnLeak).refusal() {
        return Ok(refused);
    }
    take_connections(call, name, flags, sock, None)
}

/// How often a blocking accept we perform checks that its caller still waits
/// and has no signal to handle.
const ACCEPT_RECHECK_MS: i32 = 100;

/// Takes a connection on our duplicate of the listener and hands it to the
/// caller (installed in its fd table and returned as accept's result, its
/// peer's address written back). `judge_peers` (`--allow-incoming-from`,
/// with the listener's local address): each peer is judged first; a refused
/// one is closed and, on a blocking listener, we wait for the next.
///
/// A blocking wait ends when the caller leaves the call (killed), or with
/// `EINTR` when a signal it does not block is pending for it (the kernel holds
/// it in the call until we answer, so we look).
fn take_connections(
    call: &mut Call<'_>,
    name: &'static str,
    flags: i32,
    sock: Socket,
    judge_peers: Option<Option<SocketAddr>>,
) -> Result<Reply, Failure> {
    let args = call.args;
    let blocking = !sys::is_nonblocking(sock.as_fd()).map_err(Failure::Check)?;
    let listener = std::sync::Arc::new(sock.fd.try_clone().map_err(|e| Failure::Check(errno_of(&e)))?);
    loop {
        let (listener, notifier, id, tid) =
            (listener.clone(), call.ctx.notifier.clone(), call.n.id, call.tracee.tid);
        // A connection already queued is taken at once: the receiving role stays here (handing
        // it on wakes another thread for every accept of a busy server). Not on the reserve
        // receiver: another accept of the program's may take that connection first, and ours,
        // on a blocking listener, would then wait for the next.
        let waits = blocking
            && (!crate::supervisor::receivers::may_wait()
                || !sys::poll_one(listener.as_fd(), libc::POLLIN, 0));
        let taken = run_call(call.ctx, waits, move || {
            while blocking && !sys::poll_one(listener.as_fd(), libc::POLLIN, ACCEPT_RECHECK_MS) {
                if !notifier.id_valid(id) {
                    return Err(libc::ESRCH);
                }
                if crate::supervisor::tracee::signal_pending(tid) {
                    return Err(libc::EINTR);
                }
            }
            sys::accept4(listener.as_fd(), flags & libc::SOCK_NONBLOCK)
        })?;
        let (conn, raw_peer) = match taken {
            Ok(taken) => taken,
            Err(libc::ESRCH) => return Err(Failure::Gone),
            Err(e) => return Ok(Reply::Errno(e)),
        };
        let (peer, relayed) = real_peer(call, &raw_peer);
        let outcome = match judge_peers {
            Some(local) => {
                let op = Operation::Accept { local, peer: peer.ok().flatten() };
                let decision = match peer {
                    Err(()) => Decision::leak(Reason::InboundAccept),
                    Ok(_) => decide(&call.ctx.policy, &Request { socket: sock.facts, op }),
                };
                let shown = peer.ok().flatten().map(SockAddr::Inet);
                let judged =
                    Judged::new(name, Subject::Socket(&sock), Target::Remote(shown.as_ref()), decision);
                call.gate(judged, Ruling::OnLeak)
            }
            None => Outcome::Allowed,
        };
        let Outcome::Refused { action, reply } = outcome else {
            let raw_peer = match relayed {
                Some(real) => sockaddr::encode_inet(isolate::inbound::peer_as_seen(
                    real,
                    sock.facts.family == libc::AF_INET6,
                )),
                None => raw_peer,
            };
            write_peer_address(call, args[1], args[2], &raw_peer)?;
            let cloexec = flags & libc::SOCK_CLOEXEC != 0;
            return super::answer_with_fd(call, conn.as_fd(), cloexec);
        };
        // A refused peer's connection is closed: for a non-blocking accept as
        // if none waited; a blocking one waits for the next (unless killed).
        drop(conn);
        if !blocking {
            return Ok(Reply::Errno(libc::EAGAIN));
        }
        if action != Action::Blocked {
            return Ok(reply);
        }
        materialize::confirm(call)?;
    }
}

/// The peer of an accepted connection: as the kernel gave it, or, for a
/// connection the inbound relay made (`--isolate-network`), the real peer in
/// the host's namespace (also returned apart). `Err`: from the relay's
/// address but not one of its connections (refused).
#[allow(clippy::type_complexity)]
fn real_peer(call: &Call<'_>, raw: &[u8]) -> (Result<Option<SocketAddr>, ()>, Option<SocketAddr>) {
    let peer = match sockaddr::parse(raw) {
        Ok(SockAddr::Inet(peer)) => Some(peer),
        _ => None,
    };
    match (peer, &call.ctx.inbound) {
        (Some(p), Some(inbound)) => match inbound.real_peer(p) {
            isolate::inbound::Peer::Direct => (Ok(Some(p)), None),
            isolate::inbound::Peer::Relayed(real) => (Ok(Some(real)), Some(real)),
            isolate::inbound::Peer::Unknown => (Err(()), None),
        },
        _ => (Ok(peer), None),
    }
}

/// Stores the peer's address as accept does: at most `*addrlen` bytes at
/// `addr`, and the full length in `*addrlen`.
fn write_peer_address(call: &Call<'_>, addr: u64, addrlen: u64, raw: &[u8]) -> Result<(), Failure> {
    if addr == 0 {
        return Ok(());
    }
    // How much to write back, read as the kernel reads it; confirmed just before the writes,
    // so that they go to the caller still waiting in the call (a blocking accept may have
    // waited long, and its thread id could name another process once it is gone).
    let room = materialize::read(call, addrlen, 4)?.confirm(call)?;
    let room = i32::from_ne_bytes(room.as_slice().try_into().unwrap_or([0; 4]));
    if room < 0 {
        return Err(Failure::Caller(libc::EINVAL));
    }
    call.tracee.write(addr, &raw[..raw.len().min(room as usize)])?;
    call.tracee.write(addrlen, &(raw.len() as u32).to_ne_bytes())
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
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

#[cfg(test)]
mod tests {
    use super::Credentials;

    #[test]
    fn credentials_come_from_the_status_file() {
        let status =
            "Name:\tpython3\nUid:\t1000\t1001\t1002\t1001\nGid:\t100\t101\t102\t101\nGroups:\t100 27 \n";
        let c = Credentials::parse(status).unwrap();
        assert_eq!(c, Credentials { uid: [1000, 1001, 1002], gid: [100, 101, 102], groups: vec![100, 27] });
        assert!(!c.is_root());
        let root = Credentials::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n").unwrap();
        assert!(root.is_root() && root.groups.is_empty());
        assert!(Credentials::parse("Uid:\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n").is_none());
    }
}
