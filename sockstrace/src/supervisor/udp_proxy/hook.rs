//! Where the handlers hand a UDP socket's datagram or connect over: a leak under
//! `--on-leak socksify`, with a proxy that offers UDP, goes through the relay. Each flow (socket
//! and peer) is one event, action `socksified`; its datagrams are counted in the summary.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Assoc, UdpProxy};
use crate::net::sockaddr::{self, SockAddr};
use crate::net::socket::Transport;
use crate::policy::{decide, Decision, Operation, Reason, Request, Ruling};
use crate::report_writer::Action;
use crate::supervisor::handlers::{Call, Judged, Subject, Target};
use crate::supervisor::notif::Reply;
use crate::supervisor::sys;
use crate::supervisor::tracee::{Failure, Socket};

/// A leaked datagram destination this relay takes: the proxy, the socket's cookie and the peer.
fn route(
    call: &Call<'_>,
    sock: &Socket,
    dst: &SockAddr,
    decision: Decision,
) -> Option<(Arc<UdpProxy>, u64, SocketAddr)> {
    let udp = call.ctx.udp.clone()?;
    if sock.facts.transport() != Transport::Udp
        || !decision.is_leak()
        || decision.reason == Reason::FamilyMismatch
    {
        return None;
    }
    let SockAddr::Inet(peer) = dst else { return None };
    if peer.is_ipv6() && sock.facts.family == libc::AF_INET {
        return None;
    }
    // Our resolver's fake addresses are names, which the relay is never asked to resolve.
    if call.ctx.resolver.is_some() && crate::dns::in_pool(peer.ip()) {
        return None;
    }
    let cookie = sock.cookie()?;
    // The first leaked datagram asks the proxies (waiting on them: the receiving role is
    // handed on, and the asking ends once its caller is gone); with none offering UDP, or the
    // asking ended, it is handled (judged and reported) as any leak.
    let offered = if udp.probed() {
        udp.server().is_ok()
    } else {
        let asked = crate::supervisor::handlers::run_stoppable(call, |stop| {
            udp.server_or_stop(stop).map(|found| found.is_ok()).ok_or(libc::EINTR)
        });
        matches!(asked, Ok(Ok(true)))
    };
    offered.then_some((udp, cookie, *peer))
}

/// The program socket's own address, binding it first (as the kernel's autobind would) so
/// that replies have somewhere to go.
fn local_of(sock: &Socket) -> Result<SocketAddr, i32> {
    let local = || match sys::getsockname(sock.fd.as_fd()).map(|raw| sockaddr::parse(&raw)) {
        Ok(Ok(SockAddr::Inet(addr))) => Ok(addr),
        Ok(_) => Err(libc::EINVAL),
        Err(e) => Err(e),
    };
    let addr = local()?;
    if addr.port() != 0 {
        return Ok(addr);
    }
    let any = SocketAddr::new(
        if sock.facts.family == libc::AF_INET {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        },
        0,
    );
    sys::bind(sock.fd.as_fd(), &sockaddr::encode_inet(any))?;
    local()
}

/// The association and whether it is new.
fn assoc(udp: &Arc<UdpProxy>, cookie: u64, sock: &Socket) -> Result<(Arc<Assoc>, bool), i32> {
    let local = local_of(sock)?;
    udp.assoc_for(cookie, sock.facts.family, local).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOBUFS))
}

/// Records the flow's event the first time (socket, peer) is seen; whether it did.
fn record_flow(
    call: &mut Call<'_>,
    syscall: &'static str,
    sock: &Socket,
    dst: &SockAddr,
    decision: Decision,
    new: bool,
) -> bool {
    if new {
        if let Some(udp) = &call.ctx.udp {
            udp.stats.flows.fetch_add(1, Ordering::Relaxed);
        }
        let judged = Judged::new(syscall, Subject::Socket(sock), Target::Remote(Some(dst)), decision);
        // Never refused: a forced `socksified` goes on to the relay.
        let _socksified = call.gate(judged, Ruling::Forced(Action::Socksified));
    }
    new
}

/// The test-only hole (debug builds, `SOCKSTRACE_TEST_DISABLE=udp-leak-through`): a leaked
/// UDP datagram (`sendto`, `sendmsg`) to a shim address (`127.83.84.1`, `::1`) is let
/// through to the kernel (`CONTINUE`), as one the syscall layer never judged would be, so that
/// a test sees what the kernel layer lets reach them.
fn leaks_through(call: &Call<'_>, sock: &Socket, dst: &SockAddr, decision: Decision) -> bool {
    let SockAddr::Inet(addr) = dst else { return false };
    call.ctx.udp.is_some()
        && sock.facts.transport() == Transport::Udp
        && decision.is_leak()
        && (addr.ip() == super::assoc::shim_ip(libc::AF_INET)
            || addr.ip() == super::assoc::shim_ip(libc::AF_INET6))
}

/// A send with destination `name` (already judged a leak, or not): `Some(reply)` when the
/// datagram went through the relay.
pub fn send(
    call: &mut Call<'_>,
    syscall: &'static str,
    sock: &Socket,
    name: &[u8],
    data: &[u8],
) -> Result<Option<Reply>, Failure> {
    if call.ctx.udp.is_none() || name.is_empty() {
        return Ok(None);
    }
    let Ok(dst) = sockaddr::parse(name) else { return Ok(None) };
    let op = Operation::Send { dst: Some(dst.clone()), fastopen: false };
    let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op });
    if syscall != "sendmmsg"
        && crate::testing::disabled("udp-leak-through")
        && leaks_through(call, sock, &dst, decision)
    {
        return Ok(Some(Reply::Continue));
    }
    let Some((udp, cookie, peer)) = route(call, sock, &dst, decision) else { return Ok(None) };
    let (recorded, result) = match assoc(&udp, cookie, sock) {
        Ok((assoc, _)) => {
            let new_flow = assoc.shim_for(&udp, peer).map(|(_, new)| new);
            let recorded =
                record_flow(call, syscall, sock, &dst, decision, new_flow.as_ref().is_ok_and(|&n| n));
            let result = match new_flow {
                // Setting the association up waits on the proxy: the receiving role is handed
                // on, and the exchange ends once its caller is gone (its event goes out, and
                // nothing is relayed for a dead caller).
                Ok(_) => crate::supervisor::handlers::run_stoppable(call, |stop| {
                    assoc.send(&udp, peer, data, stop)
                })?,
                Err(e) => Err(e.raw_os_error().unwrap_or(libc::ENOBUFS)),
            };
            (recorded, result)
        }
        Err(e) => (record_flow(call, syscall, sock, &dst, decision, true), Err(e)),
    };
    // On this datagram's own event only (a known flow's datagrams make none: an earlier
    // message's event of the same sendmmsg must keep its own errno).
    if let (true, Err(e)) = (recorded, result) {
        call.set_last_errno(e);
    }
    Ok(Some(crate::supervisor::handlers::reply_of(result.map(|n| n as i64))))
}

/// A leaked UDP connect: the program's socket is connected to the peer's shim instead, so its
/// sends reach the relay without a trap and replies come only from that peer.
pub fn connect(
    call: &mut Call<'_>,
    sock: &Socket,
    dst: &SockAddr,
    decision: Decision,
) -> Result<Option<Reply>, Failure> {
    let Some((udp, cookie, peer)) = route(call, sock, dst, decision) else { return Ok(None) };
    let connected = assoc(&udp, cookie, sock).and_then(|(assoc, _)| {
        let (shim, new) =
            assoc.shim_for(&udp, peer).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOBUFS))?;
        let shim_addr = shim.local_addr().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        sys::connect(sock.fd.as_fd(), &sockaddr::encode_inet(shim_addr))?;
        if let Ok(local) = local_of(sock) {
            assoc.set_local(local);
        }
        Ok(new)
    });
    record_flow(call, "connect", sock, dst, decision, connected.unwrap_or(true));
    if let Err(e) = connected {
        call.set_last_errno(e);
    }
    Ok(Some(crate::supervisor::handlers::reply_of(connected.map(|_| 0))))
}
