//! `connect(fd, addr, len)`.

use std::os::fd::AsFd;

use super::materialize;
use super::socksify;
use super::{reply_of, run_call, waits_on_network, Call, Judged, LeakAction, Subject, Target};
use crate::dns::PoolAddress;
use crate::net::sockaddr::{self, SockAddr};
use crate::net::socket::Transport;
use crate::policy::{decide, Decision, Operation, Reason, Request, Ruling};
use crate::report_writer::Action;
use crate::supervisor::notif::Reply;
use crate::supervisor::sys;
use crate::supervisor::tracee::{Failure, Socket};

pub fn connect(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let sock = materialize::socket(call, args[0])?;
    let raw = materialize::addr(call, args[1], args[2])?;
    let (sock, raw) = sock.and(raw).confirm(call)?;
    let addr = sockaddr::parse(&raw).map_err(|_| Failure::Caller(libc::EINVAL))?;
    let decision =
        decide(&call.ctx.policy, &Request { socket: sock.facts, op: Operation::Connect(addr.clone()) });
    // A connect to one of our resolver's fake addresses can only mean its name.
    let pool = match &addr {
        SockAddr::Inet(dst) => {
            call.ctx.resolver.as_ref().map_or(PoolAddress::Outside, |r| r.pool_address(dst.ip()))
        }
        _ => PoolAddress::Outside,
    };
    let names_a_fake_address = matches!(pool, PoolAddress::Named(_));
    if names_a_fake_address && sock.facts.transport() != Transport::Tcp {
        // Unreachable except through the proxy, which carries TCP only.
        return Ok(refuse_without_leak(call, &sock, &addr, Reason::FakeAddress, libc::ENETUNREACH));
    }
    if socksifies(decision, call.ctx.on_leak, &pool) {
        if let Some(reply) = socksify(call, &sock, &addr, decision, pool)? {
            return Ok(reply);
        }
    }
    if refuses_datagram_connect(call, &sock, decision) {
        // Nothing is sent by a datagram connect, and nothing can be sent on
        // the socket once it is refused: not a leak (see `Reason::UdpConnectRefused`).
        return Ok(refuse_without_leak(call, &sock, &addr, Reason::UdpConnectRefused, super::BLOCKED_ERRNO));
    }
    let judged = Judged::new("connect", Subject::Socket(&sock), Target::Remote(Some(&addr)), decision);
    // Unix and other local families are answered CONTINUE (below).
    let outcome = match sock.facts.is_inet() {
        true => call.gate(judged, Ruling::OnLeak),
        false => call.gate_for_continue(judged, Ruling::OnLeak),
    };
    if let Some(refused) = outcome.refusal() {
        return Ok(refused);
    }
    if !decision.is_leak() && sock.facts.transport() == Transport::Tcp {
        if let (Some(inspector), SockAddr::Inet(dst)) = (&call.ctx.inspector, &addr) {
            // The proxy, or a spelling of the local host that reaches it (`proxy_reached`).
            if let Some(proxy) = crate::inspect::proxy_reached(&call.ctx.policy.proxies, *dst) {
                return through_inspector(call, sock, inspector, proxy);
            }
        }
    }
    if !sock.facts.is_inet() {
        // Unix and other local families: the kernel must run the call in the
        // caller's context (path lookup, credentials passed to the peer). The
        // address was checked to be of the socket's own family (see
        // `decide`), so an inet socket swapped under the fd number meanwhile
        // gets an address the kernel refuses.
        return call.continue_or_refuse("connect", Subject::Socket(&sock));
    }
    if !decision.is_leak() && call.kernel_judges(&sock.facts) {
        // The cgroup connect hooks judge the address the kernel uses (see `kernel_judges`).
        return Ok(Reply::Continue);
    }
    let waits = waits_on_network(&sock, &raw, 0)?;
    let blocks = super::blocks(&sock, 0)?;
    let result =
        super::run_interruptible(call, &sock, blocks, waits, || sys::connect(sock.fd.as_fd(), &raw))?;
    Ok(reply_of(result.map(|()| 0)))
}

/// Whether a connect goes through the proxy: a leak under `--on-leak
/// socksify`, or any leak to a fake address (by its name). A pool address
/// that names nothing (never handed out, or evicted) never does: by address,
/// the proxy would reach whatever really lies there, so it is judged as any
/// leak (refused under every `--on-leak`: `log` does not let a fake address
/// through, see `LeakRules::action`).
fn socksifies(decision: Decision, on_leak: LeakAction, pool: &PoolAddress) -> bool {
    decision.is_leak()
        && match pool {
            PoolAddress::Named(_) => true,
            PoolAddress::Unnamed => false,
            PoolAddress::Outside => on_leak == LeakAction::Socksify,
        }
}

/// Whether a leaked connect is a UDP socket's connect that is refused
/// without being a leak: any `--on-leak` but `log` (which lets it through, so
/// that what is sent on it later stays a leak we cannot see). A DNS server's
/// address stays a leak (`dns-udp`): resolvers connect to their server to
/// send it a query, not to sort addresses.
fn refuses_datagram_connect(call: &Call<'_>, sock: &Socket, decision: Decision) -> bool {
    decision.is_leak()
        && decision.reason == Reason::DirectUdp
        && sock.facts.transport() == Transport::Udp
        && !call.rules().chosen(decision).lets_through()
}

/// Refuses a connect that is not a leak (nothing was or can be sent): reported
/// as allowed by the policy, blocked, with `errno`.
fn refuse_without_leak(
    call: &mut Call<'_>,
    sock: &Socket,
    addr: &SockAddr,
    reason: Reason,
    errno: i32,
) -> Reply {
    let judged =
        Judged::new("connect", Subject::Socket(sock), Target::Remote(Some(addr)), Decision::allowed(reason));
    call.gate(judged.failing_with(errno), Ruling::Forced(Action::Blocked))
        .refusal()
        .unwrap_or(Reply::Errno(errno))
}

/// Sends a leaked TCP connect through the proxy; `None` when it cannot be
/// socksified (not TCP, or no proxy of a family the socket can reach), so the
/// caller blocks it instead. `pool`: what the destination is to our resolver's fake-address
/// pool, as `connect` looked it up (once: the name it judged is the name asked for).
fn socksify(
    call: &mut Call<'_>,
    sock: &Socket,
    addr: &SockAddr,
    decision: Decision,
    pool: PoolAddress,
) -> Result<Option<Reply>, Failure> {
    if sock.facts.transport() == Transport::Udp {
        return crate::supervisor::udp_proxy::hook::connect(call, sock, addr, decision);
    }
    let SockAddr::Inet(dst) = addr else { return Ok(None) };
    if sock.facts.transport() != Transport::Tcp {
        return Ok(None);
    }
    // The proxy resolves names our resolver handed out (socks5h semantics); a pool address
    // that names nothing never comes here (`socksifies`), nor is it asked for by address.
    let target = match pool {
        PoolAddress::Named(name) => crate::socks::Target::Domain(name, dst.port()),
        PoolAddress::Unnamed => return Ok(None),
        PoolAddress::Outside => crate::socks::Target::Addr(*dst),
    };
    let policy = &call.ctx.policy;
    let Some(proxy) = socksify::proxy_for(&policy.proxies, &policy.http_proxies, &sock.facts) else {
        return Ok(None);
    };
    let judged = Judged::new("connect", Subject::Socket(sock), Target::Remote(Some(addr)), decision);
    if let Some(refused) = call.gate(judged, Ruling::Forced(Action::Socksified)).refusal() {
        return Ok(Some(refused));
    }
    let fd = sock.fd.try_clone().map_err(|e| Failure::Check(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let creds = call.ctx.socks_auth.credentials();
    let http_creds = call.ctx.socks_auth.fixed().cloned();
    let result = super::run_stoppable(call, |stop| {
        socksify::connect_through(fd.as_fd(), proxy, &target, &creds, http_creds.as_ref(), stop)
    })?;
    Ok(Some(reply_of(result.map(|()| 0))))
}

/// `--inspect-socks`: the program's connection to its proxy goes to the
/// inspector's relay instead, registered under the socket's local address so
/// that the relay knows who it is and which proxy to continue to.
fn through_inspector(
    call: &mut Call<'_>,
    sock: Socket,
    inspector: &crate::inspect::Inspector,
    proxy: std::net::SocketAddr,
) -> Result<Reply, Failure> {
    let relay = crate::net::sockaddr::encode_inet(inspector.listen_addr(sock.facts.family));
    let pid = call.pid();
    let origin = crate::inspect::Origin {
        proxy,
        tid: call.tracee.tid,
        info: call.caller_info(),
        cookie: sock.cookie(),
        fd: call.args[0] as i32,
        pid,
        dns_seen: call.ctx.dns_seen.clone(),
    };
    let fd = sock.fd;
    // The relay listens on loopback: the connect completes within the call.
    let result = run_call(call.ctx, false, || sys::connect(fd.as_fd(), &relay))?;
    // Registered whatever the outcome (EINPROGRESS is the usual non-blocking
    // one): the relay waits a moment for it.
    if let Ok(SockAddr::Inet(local)) = sys::getsockname(fd.as_fd())
        .map(|raw| sockaddr::parse(&raw))
        .unwrap_or(Err(sockaddr::AddrError::TooShort))
    {
        inspector.register(local, origin);
    }
    Ok(reply_of(result.map(|()| 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_pool_address_is_never_socksified() {
        let leak = Decision::leak(Reason::DirectTcp);
        let allowed = Decision::allowed(Reason::AllowRule);
        let named = PoolAddress::Named("example.com".into());
        for mode in [LeakAction::Block, LeakAction::Log, LeakAction::Kill, LeakAction::Socksify] {
            assert!(!socksifies(leak, mode, &PoolAddress::Unnamed), "{mode:?}");
            assert!(socksifies(leak, mode, &named), "{mode:?}: by its name");
            assert_eq!(socksifies(leak, mode, &PoolAddress::Outside), mode == LeakAction::Socksify);
            for pool in [PoolAddress::Outside, PoolAddress::Unnamed, named.clone()] {
                assert!(!socksifies(allowed, mode, &pool), "{mode:?} {pool:?}: not a leak");
            }
        }
    }
}
