//! `sendto`, `sendmsg`, `sendmmsg`: every message with a destination is
//! decided on our private copy and, if allowed, sent by us on a duplicate of
//! the caller's socket, so a racing thread cannot swap the address.

use std::os::fd::AsFd;

use super::materialize::{self, addr_len, Unconfirmed};
use super::{reply_of, run_call, waits_on_network, Call, Judged, Subject, Target, BLOCKED_ERRNO};
use crate::net::msghdr::{self, Layout, MsgHdr, UIO_MAXIOV};
use crate::net::sockaddr::{self, SockAddr};
use crate::net::socket::SocketFacts;
use crate::policy::{decide, Decision, Operation, Request, Ruling};
use crate::supervisor::copy_budget::{self, Grant};
use crate::supervisor::notif::Reply;
use crate::supervisor::sys::{self, Errno};
use crate::supervisor::tracee::{Failure, Socket, Tracee};
use crate::supervisor::{udp_proxy, Ctx};

/// One message, copied out of the caller.
struct Outgoing {
    name: Vec<u8>,
    data: Vec<u8>,
    control: Vec<u8>,
}

fn fastopen(flags: i32) -> bool {
    flags & libc::MSG_FASTOPEN != 0
}

/// How much payload to copy for a send of `len` bytes (see `copy_budget`).
fn copy_len(facts: &SocketFacts, len: u64) -> Result<usize, Failure> {
    copy_budget::payload_len(facts.is_stream(), len).ok_or(Failure::Caller(libc::EMSGSIZE))
}

/// Room in the copy budget for a send of `want` bytes, at once, never waiting (`copy_budget`):
/// past the limit, for a stream the first message's `fixed` part (its address and control
/// data) and a floor of payload (a short send), for datagrams the first message whole
/// (`first`: a datagram cannot be cut; a `sendmmsg` sends fewer messages).
fn room<'c>(ctx: &'c Ctx, facts: &SocketFacts, want: usize, fixed: usize, first: usize) -> Grant<'c> {
    let least = if facts.is_stream() { fixed + copy_budget::STREAM_FLOOR } else { first };
    ctx.copy_budget.grant(want, least)
}

/// The messages a `sendmmsg` leaves unsent (past the call's copy limit or the room left in the
/// copy budget): the first that the policy refuses outright (a leak `--on-leak` does not let
/// through) is judged and reported all the same, since the program asked to send it and may
/// never ask again; nothing else of them is recorded (what it asks again is judged then).
fn judge_unsent(call: &mut Call<'_>, sock: &Socket, unsent: &[MsgHdr], flags: i32) -> Result<(), Failure> {
    let regions: Vec<(u64, usize)> = unsent.iter().map(|h| (h.name, h.namelen)).collect();
    let names = materialize::read_regions(call, &regions)?.confirm(call)?;
    let mut at = 0;
    for hdr in unsent {
        let name = &names[at..at + hdr.namelen];
        at += hdr.namelen;
        if refused_outright(call, &sock.facts, name, flags) {
            judge(call, "sendmmsg", sock, name, flags)?;
            break;
        }
    }
    Ok(())
}

/// Whether the policy refuses a send to `name` outright: a leak that `--on-leak` does not let
/// through (a bad address fails the call anyway).
fn refused_outright(call: &Call<'_>, facts: &SocketFacts, name: &[u8], flags: i32) -> bool {
    let Ok(dst) = destination(facts, name, flags) else { return false };
    let op = Operation::Send { dst, fastopen: fastopen(flags) };
    let decision = decide(&call.ctx.policy, &Request { socket: *facts, op });
    decision.is_leak() && !call.rules().chosen(decision).lets_through()
}

/// The destination a send names, as the kernel will read it from `name`.
fn destination(facts: &SocketFacts, name: &[u8], flags: i32) -> Result<Option<SockAddr>, Failure> {
    if name.is_empty() || (facts.is_stream() && !fastopen(flags)) {
        // No address, or a stream socket, which ignores it outside Fast Open.
        return Ok(None);
    }
    let parsed = sockaddr::parse(name).map_err(|_| Failure::Caller(libc::EINVAL))?;
    if parsed == SockAddr::Unspec && facts.family == libc::AF_INET {
        // IPv4 datagram sockets read an AF_UNSPEC destination as sockaddr_in.
        return sockaddr::parse_inet4(name)
            .map(|a| Some(SockAddr::Inet(a)))
            .map_err(|_| Failure::Caller(libc::EINVAL));
    }
    Ok(Some(parsed))
}

/// Judges one message and records the decision; `Some(reply)` when refused.
fn judge(
    call: &mut Call<'_>,
    syscall: &'static str,
    sock: &Socket,
    name: &[u8],
    flags: i32,
) -> Result<Option<Reply>, Failure> {
    let dst = destination(&sock.facts, name, flags)?;
    let op = Operation::Send { dst: dst.clone(), fastopen: fastopen(flags) };
    let mut decision: Decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op });
    if crate::testing::disabled("plant-bug") && planted_hole(&sock.facts, &dst) {
        decision = Decision::allowed(crate::policy::Reason::AllowRule);
    }
    let to_proxy = |dst: &Option<SockAddr>| match dst {
        Some(SockAddr::Inet(dst)) => crate::inspect::proxy_reached(&call.ctx.policy.proxies, *dst).is_some(),
        _ => false,
    };
    let tcp = sock.facts.transport() == crate::net::socket::Transport::Tcp;
    if fastopen(flags) && tcp && !decision.is_leak() && call.ctx.inspector.is_some() && to_proxy(&dst) {
        // Its SYN would carry the handshake to the proxy around the inspector's relay: refused
        // as where Fast Open is off, on which programs connect (through the relay) instead.
        return Ok(Some(Reply::Errno(libc::EOPNOTSUPP)));
    }
    let judged = Judged::new(syscall, Subject::Socket(sock), Target::Remote(dst.as_ref()), decision);
    Ok(call.gate(judged, Ruling::OnLeak).refusal())
}

/// The fast path (`Call::kernel_judges`): a datagram the policy allows is recorded and
/// answered CONTINUE, sent by the caller itself, the kernel's hooks judging the address it
/// uses then. `None` for anything else (a leak, whatever `--on-leak` makes of it), which
/// takes the usual path.
fn sent_by_kernel(
    call: &mut Call<'_>,
    syscall: &'static str,
    sock: &Socket,
    name: &[u8],
) -> Result<Option<Reply>, Failure> {
    let dst = destination(&sock.facts, name, 0)?;
    Ok(continued_if_allowed(call, syscall, Subject::Socket(sock), sock.facts, dst))
}

/// The fast path's answer to a datagram to `dst` on a socket of `facts`: allowed, recorded and
/// answered CONTINUE (or what the gate makes of it); `None` for a leak, which takes the usual
/// path.
fn continued_if_allowed(
    call: &mut Call<'_>,
    syscall: &'static str,
    subject: Subject<'_>,
    facts: SocketFacts,
    dst: Option<SockAddr>,
) -> Option<Reply> {
    let op = Operation::Send { dst: dst.clone(), fastopen: false };
    let decision = decide(&call.ctx.policy, &Request { socket: facts, op });
    if decision.is_leak() {
        return None;
    }
    let judged = Judged::new(syscall, subject, Target::Remote(dst.as_ref()), decision);
    Some(call.gate_for_continue(judged, Ruling::OnLeak).refusal().unwrap_or(Reply::Continue))
}

/// The fast path at its barest, for a `sendto` with an inet address (`Call::kernel_judges_any`):
/// the address alone is copied and judged as a UDP datagram's; allowed, the call is counted and
/// answered CONTINUE, without a look at the socket (no duplicate, no cookie, no `ID_VALID`, no
/// close: four system calls fewer a datagram). `None` for anything else (another family, a bad
/// address, Fast Open, a leak), which takes the usual path, the socket's facts known.
///
/// What the fd number names does not matter here, nor what the address holds by the time the
/// kernel reads it: an inet socket of the run is judged by the kernel's hooks and its egress gate
/// (a stream socket ignores the address outside Fast Open, whose flag is a register); a unix or
/// netlink socket refuses an inet address (`EINVAL`), so nothing is sent; and no socket made
/// outside the run's cgroup can be under it (`supervisor::inherited`). What changes is only what
/// such a refused call leaves behind: the kernel's `EINVAL`, not our `family-mismatch` event.
fn sent_by_kernel_unseen(call: &mut Call<'_>, flags: i32) -> Option<Reply> {
    let args = call.args;
    if args[4] == 0 || fastopen(flags) || !call.kernel_judges_any() {
        return None;
    }
    let name = materialize::read(call, args[4], addr_len(args[5]).ok()?).ok()?.for_continue();
    let Ok(SockAddr::Inet(dst)) = sockaddr::parse(&name) else { return None };
    let facts = SocketFacts::udp_for(dst);
    continued_if_allowed(call, "sendto", Subject::Facts(facts), facts, Some(SockAddr::Inet(dst)))
}

/// The fuzzer's self-check (debug builds, `SOCKSTRACE_TEST_DISABLE=plant-bug`):
/// plain UDP datagrams to port 9 (discard) pass as if allowed. Nothing else: a
/// TCP Fast Open SYN through the hole would be retransmitted into the
/// fuzzer's next run, and UDP-Lite is not the bug it looks for.
fn planted_hole(facts: &SocketFacts, dst: &Option<SockAddr>) -> bool {
    facts.sock_type == libc::SOCK_DGRAM
        && matches!(facts.protocol, 0 | libc::IPPROTO_UDP)
        && facts.is_inet()
        && matches!(dst, Some(SockAddr::Inet(addr)) if addr.port() == 9)
}

/// Sends on our duplicate. SIGPIPE would hit us, not the caller: we always
/// pass MSG_NOSIGNAL and raise SIGPIPE in the caller when it asked for it.
fn send_one(fd: std::os::fd::BorrowedFd<'_>, msg: &Outgoing, flags: i32) -> Result<usize, Errno> {
    sys::sendmsg(fd, &msg.data, &msg.name, &msg.control, flags | libc::MSG_NOSIGNAL)
}

fn raise_sigpipe(tracee: &Tracee, result: &Reply, flags: i32) {
    if *result == Reply::Errno(libc::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        let _ = sys::pidfd_send_signal(tracee.pidfd(), libc::SIGPIPE);
    }
}

pub fn sendto(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let flags = args[3] as i32;
    if let Some(reply) = sent_by_kernel_unseen(call, flags) {
        return Ok(reply);
    }
    let sock = materialize::socket_seen_before(call, args[0])?;
    if sock.plan().facts.is_local_family() {
        return local_send(call, "sendto", sock, &[(args[4], args[5])]);
    }
    let name_len = addr_len(args[5])?;
    let data_len = copy_len(&sock.plan().facts, args[2])?;
    let facts = sock.plan().facts;
    if name_len > 0 && !facts.is_stream() && !fastopen(flags) && call.kernel_judges(&facts) {
        // Only the address is copied: an allowed datagram is sent by the caller itself.
        let (sock, name) = sock.and(materialize::read(call, args[4], name_len)?).confirm(call)?;
        if let Some(reply) = sent_by_kernel(call, "sendto", &sock, &name)? {
            return Ok(reply);
        }
        // A leak: judged and carried out as usual, on the address already copied.
        let _grant = room(call.ctx, &facts, data_len, 0, data_len);
        let data = materialize::read(call, args[1], data_len)?.confirm(call)?;
        return send_checked(call, sock, name, data, flags);
    }
    let grant = room(call.ctx, &facts, data_len + name_len, name_len, data_len + name_len);
    let data_len = data_len.min(grant.bytes().saturating_sub(name_len));
    // Payload and address in one copy.
    let copied =
        materialize::read_regions(call, &[(args[1], data_len), (args[4], name_len)])?.map(|mut data| {
            let name = data.split_off(data_len);
            (data, name)
        });
    let (sock, (data, name)) = sock.and(copied).confirm(call)?;
    send_checked(call, sock, name, data, flags)
}

/// A `sendto` copied and confirmed: through the UDP relay, refused, or sent by us.
fn send_checked(
    call: &mut Call<'_>,
    sock: Socket,
    name: Vec<u8>,
    data: Vec<u8>,
    flags: i32,
) -> Result<Reply, Failure> {
    if let Some(reply) = udp_proxy::hook::send(call, "sendto", &sock, &name, &data)? {
        return Ok(reply);
    }
    if let Some(refused) = judge(call, "sendto", &sock, &name, flags)? {
        return Ok(refused);
    }
    send_judged(call, sock, Outgoing { name, data, control: Vec::new() }, flags)
}

/// Sends one allowed message on our duplicate and answers as the kernel would.
fn send_judged(call: &Call<'_>, sock: Socket, msg: Outgoing, flags: i32) -> Result<Reply, Failure> {
    if sock.facts.sock_type == libc::SOCK_DGRAM && flags & libc::MSG_DONTWAIT == 0 {
        // A datagram goes whole or not at all, and waits only for room in the send buffer: sent
        // without waiting first, it is answered as the caller's own call would be unless there
        // is no room (`EAGAIN`), and only then is it asked whether the socket blocks (one
        // `fcntl` a datagram fewer) and the send run as one that may wait.
        match send_one(sock.fd.as_fd(), &msg, flags | libc::MSG_DONTWAIT) {
            Err(libc::EAGAIN) => {}
            sent => {
                let reply = reply_of(sent.map(|n| n as i64));
                raise_sigpipe(&call.tracee, &reply, flags);
                return Ok(reply);
            }
        }
    }
    let waits = waits_on_network(&sock, &msg.name, flags)?;
    let blocks = super::blocks(&sock, flags)?;
    let result =
        super::run_interruptible(call, &sock, blocks, waits, || send_one(sock.fd.as_fd(), &msg, flags))?;
    let reply = reply_of(result.map(|n| n as i64));
    raise_sigpipe(&call.tracee, &reply, flags);
    Ok(reply)
}

/// Unix, netlink, alg: the call runs in the kernel (Continue). Every
/// message's address (`names`: pointer and length) is read and judged: one of
/// another family than the socket is refused, since an inet socket swapped
/// under the fd number before the kernel runs the call would use it. Names
/// are read, confirmed and judged in order (the first with the socket), up
/// to the first refused one, as the kernel reads them.
fn local_send(
    call: &mut Call<'_>,
    syscall: &'static str,
    sock: Unconfirmed<Socket>,
    names: &[(u64, u64)],
) -> Result<Reply, Failure> {
    let Some((&first, rest)) = names.split_first() else { return Ok(Reply::Value(0)) };
    let (sock, mut raw) = match read_name(call, first)? {
        Some(name) => {
            let (sock, raw) = sock.and(name).confirm(call)?;
            (sock, Some(raw))
        }
        None => (sock.confirm(call)?, None),
    };
    let mut rest = rest.iter();
    let mut judged: Option<(Option<SockAddr>, Decision)> = None;
    loop {
        let dst =
            raw.map(|raw| sockaddr::parse(&raw).map_err(|_| Failure::Caller(libc::EINVAL))).transpose()?;
        let op = Operation::Send { dst: dst.clone(), fastopen: false };
        let decision = decide(&call.ctx.policy, &Request { socket: sock.facts, op });
        let leak = decision.is_leak();
        if judged.is_none() || leak {
            judged = Some((dst, decision));
        }
        let Some(&next) = rest.next().filter(|_| !leak) else { break };
        raw = read_name(call, next)?.map(|name| name.confirm(call)).transpose()?;
    }
    let Some((dst, decision)) = judged else { return Ok(Reply::Value(0)) };
    let judged = Judged::new(syscall, Subject::Socket(&sock), Target::Remote(dst.as_ref()), decision);
    if let Some(refused) = call.gate_for_continue(judged, Ruling::OnLeak).refusal() {
        return Ok(refused);
    }
    call.continue_or_refuse(syscall, Subject::Socket(&sock))
}

/// A message's address (pointer and length), unread when there is none.
fn read_name(call: &Call<'_>, (ptr, len): (u64, u64)) -> Result<Option<Unconfirmed<Vec<u8>>>, Failure> {
    if ptr == 0 || len as u32 == 0 {
        return Ok(None);
    }
    materialize::addr(call, ptr, len).map(Some)
}

/// What to copy for one msghdr: its payload regions (cut to the copy
/// limits), name and control data.
struct CopyPlan {
    regions: Vec<(u64, usize)>,
    data_len: usize,
    name_len: usize,
}

impl CopyPlan {
    fn bytes(&self) -> usize {
        self.regions.iter().map(|&(_, len)| len).sum()
    }

    /// What cannot be cut: the name and the control data (the last two regions).
    fn fixed(&self) -> usize {
        self.bytes() - self.data_len
    }

    /// Cuts the payload so that the whole copy fits in `room` (a stream's short send).
    fn cut_to(&mut self, room: usize) {
        let mut left = room.saturating_sub(self.fixed());
        if left >= self.data_len {
            return;
        }
        let payload = self.regions.len() - 2;
        for region in &mut self.regions[..payload] {
            region.1 = region.1.min(left);
            left -= region.1;
        }
        self.data_len = self.regions[..payload].iter().map(|&(_, len)| len).sum();
    }
}

/// Reads one msghdr's iovec array and plans the copy of its payload, name
/// and control data, within the limits of `copy_budget`.
fn plan_copy(
    call: &Call<'_>,
    layout: &Layout,
    facts: &SocketFacts,
    hdr: &MsgHdr,
) -> Result<CopyPlan, Failure> {
    let count = hdr.iovlen as usize;
    let iovecs = materialize::read(call, hdr.iov, count * layout.iovec_size)?;
    let iovs = msghdr::parse_iovecs(layout, iovecs.plan(), count).map_err(|e| Failure::Caller(e.errno()))?;
    let total: u64 = iovs.iter().fold(0u64, |acc, v| acc.saturating_add(v.len));
    let mut budget = copy_len(facts, total)?;
    let mut regions = Vec::with_capacity(iovs.len() + 2);
    for iov in iovs {
        let take = (iov.len as usize).min(budget);
        if take > 0 {
            regions.push((iov.base, take));
        }
        budget -= take;
    }
    let control_len =
        if hdr.control == 0 { 0 } else { usize::try_from(hdr.controllen).unwrap_or(usize::MAX) };
    if control_len > copy_budget::control_max() {
        // The kernel's own limit on control data (sock_kmalloc under optmem_max).
        return Err(Failure::Caller(libc::ENOBUFS));
    }
    let data_len: usize = regions.iter().map(|&(_, len)| len).sum();
    regions.push((hdr.name, hdr.namelen));
    regions.push((hdr.control, control_len));
    Ok(CopyPlan { regions, data_len, name_len: hdr.namelen })
}

/// Copies a planned message's payload, address and control data, in one read.
fn copy_message(call: &Call<'_>, plan: &CopyPlan) -> Result<Unconfirmed<Outgoing>, Failure> {
    Ok(materialize::read_regions(call, &plan.regions)?.map(|mut data| {
        let control = data.split_off(plan.data_len + plan.name_len);
        let name = data.split_off(plan.data_len);
        Outgoing { name, data, control }
    }))
}

/// A msghdr: where its parts are, to plan their copy.
fn read_msghdr(call: &Call<'_>, layout: &Layout, addr: u64) -> Result<MsgHdr, Failure> {
    let raw = materialize::read(call, addr, layout.msghdr_size)?;
    msghdr::parse_msghdr(layout, raw.plan()).map_err(|e| Failure::Caller(e.errno()))
}

pub fn sendmsg(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let layout = call.layout();
    let flags = args[2] as i32;
    let sock = materialize::socket_seen_before(call, args[0])?;
    let hdr = read_msghdr(call, &layout, args[1])?;
    if sock.plan().facts.is_local_family() {
        return local_send(call, "sendmsg", sock, &[(hdr.name, hdr.namelen as u64)]);
    }
    let mut plan = plan_copy(call, &layout, &sock.plan().facts, &hdr)?;
    let grant = room(call.ctx, &sock.plan().facts, plan.bytes(), plan.fixed(), plan.bytes());
    plan.cut_to(grant.bytes());
    let msg = copy_message(call, &plan)?;
    let (sock, mut msg) = sock.and(msg).confirm(call)?;
    if let Some(refused) = super::options::vet_control(call, "sendmsg", &sock, &mut msg.control)?.refusal() {
        return Ok(refused);
    }
    if let Some(reply) = udp_proxy::hook::send(call, "sendmsg", &sock, &msg.name, &msg.data)? {
        return Ok(reply);
    }
    if let Some(refused) = judge(call, "sendmsg", &sock, &msg.name, flags)? {
        return Ok(refused);
    }
    send_judged(call, sock, msg, flags)
}

pub fn sendmmsg(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    let layout = call.layout();
    let (vec, flags) = (args[1], args[3] as i32);
    let vlen = (args[2] as u32 as usize).min(UIO_MAXIOV);
    let sock = materialize::socket_seen_before(call, args[0])?;
    if vlen == 0 {
        return Ok(Reply::Value(0));
    }
    let raw = materialize::read(call, vec, vlen * layout.mmsghdr_size)?;
    let hdrs = raw
        .plan()
        .chunks_exact(layout.mmsghdr_size)
        .map(|chunk| msghdr::parse_msghdr(&layout, chunk).map_err(|e| Failure::Caller(e.errno())))
        .collect::<Result<Vec<_>, _>>()?;
    if sock.plan().facts.is_local_family() {
        let names = hdrs.iter().map(|h| (h.name, h.namelen as u64)).collect::<Vec<_>>();
        return local_send(call, "sendmmsg", sock, &names);
    }
    // Messages past the call's copy limit are left unsent: sendmmsg may send
    // fewer than asked (the first one is always taken).
    let mut plans = Vec::with_capacity(hdrs.len());
    let mut planned = 0usize;
    for hdr in &hdrs {
        let plan = plan_copy(call, &layout, &sock.plan().facts, hdr)?;
        if !plans.is_empty() && planned + plan.bytes() > copy_budget::CALL_MAX {
            break;
        }
        planned += plan.bytes();
        plans.push(plan);
    }
    // Room at once (`copy_budget`): the first message whole if a datagram, cut to the room
    // (at least its floor) if a stream; messages past the room are left unsent.
    let facts = sock.plan().facts;
    let fixed_first = plans.first().map_or(0, CopyPlan::fixed);
    let first = plans.first().map_or(0, CopyPlan::bytes);
    let grant = room(call.ctx, &facts, planned, fixed_first, first);
    if grant.bytes() < planned {
        let mut left = grant.bytes();
        let mut kept = 0;
        for plan in &mut plans {
            if kept > 0 && plan.bytes() > left {
                break;
            }
            plan.cut_to(left);
            left -= plan.bytes().min(left);
            kept += 1;
        }
        plans.truncate(kept);
    }
    let vlen = plans.len();
    let msgs = plans.iter().map(|plan| copy_message(call, plan)).collect::<Result<Vec<_>, _>>()?;
    let (sock, msgs) = sock.and(Unconfirmed::all(msgs)).confirm(call)?;
    let unsent = &hdrs[vlen..];
    // Every message is judged; sending stops at the first blocked one, as the
    // kernel stops at the first failing one.
    let mut allowed = Vec::with_capacity(msgs.len());
    let mut first_refusal = None;
    // Every message is judged before any waits for a kernel layer still loading: a leak
    // behind an allowed message is judged and reported whatever becomes of the wait.
    call.layer_wait_later = true;
    for mut msg in msgs {
        if let Some(refused) =
            super::options::vet_control(call, "sendmmsg", &sock, &mut msg.control)?.refusal()
        {
            first_refusal = Some(refused);
            break;
        }
        // Through the UDP relay: sent now, counted in order with the others below.
        match udp_proxy::hook::send(call, "sendmmsg", &sock, &msg.name, &msg.data)? {
            Some(Reply::Value(n)) => {
                allowed.push((msg, Some(n as usize)));
                continue;
            }
            Some(failed) => {
                first_refusal = Some(failed);
                break;
            }
            None => {}
        }
        if let Some(refused) = judge(call, "sendmmsg", &sock, &msg.name, flags)? {
            first_refusal = Some(refused);
            break;
        }
        allowed.push((msg, None));
    }
    call.layer_wait_later = false;
    if first_refusal.is_none() && !unsent.is_empty() {
        judge_unsent(call, &sock, unsent, flags)?;
    }
    if allowed.is_empty() {
        return Ok(first_refusal.unwrap_or(Reply::Errno(BLOCKED_ERRNO)));
    }
    if !call.wait_for_layer()? {
        return Ok(Reply::Errno(BLOCKED_ERRNO));
    }
    let any_blocked = allowed.len() < vlen;
    let mut waits = false;
    for (msg, _) in &allowed {
        if waits_on_network(&sock, &msg.name, flags)? {
            waits = true;
            break;
        }
    }
    let fd = sock.fd;
    let (sent, error) = run_call(call.ctx, waits, move || {
        let mut sent = Vec::new();
        for (msg, proxied) in &allowed {
            if let Some(n) = proxied {
                sent.push(*n);
                continue;
            }
            match send_one(fd.as_fd(), msg, flags) {
                Ok(n) => sent.push(n),
                Err(e) => return (sent, Some(e)),
            }
        }
        (sent, None)
    })?;
    // The caller still waits in the call (a long send may have outlived it, and its thread id
    // could then name another process): only then are the lengths written back.
    let still_waiting = materialize::confirm(call).is_ok();
    for (i, n) in sent.iter().enumerate().filter(|_| still_waiting) {
        let at = vec + (i * layout.mmsghdr_size + layout.mmsg_len_offset) as u64;
        // As in the kernel, a failure to store msg_len does not undo the send.
        let _ = call.tracee.write(at, &(*n as u32).to_ne_bytes());
    }
    let reply = match (sent.len(), error) {
        (0, Some(e)) => Reply::Errno(e),
        (0, None) if any_blocked => Reply::Errno(BLOCKED_ERRNO),
        (n, _) => Reply::Value(n as i64),
    };
    raise_sigpipe(&call.tracee, &reply, flags);
    Ok(reply)
}
