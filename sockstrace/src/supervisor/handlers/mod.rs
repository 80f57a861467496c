//! Turning one trapped call into a reply: materialize (copy the caller's
//! arguments once, usable once confirmed: `materialize`), decide (the pure
//! policy), gate (action, event, refusal reply: `gate`), act (perform the
//! allowed call ourselves on a duplicate of the caller's socket), report.

mod connect;
mod create;
mod gate;
mod inbound;
mod materialize;
mod options;
mod send;
mod socksify;
mod uring;

pub use gate::{Judged, Outcome, Subject, Target};
pub use socksify::SocksAuth;

pub use crate::policy::LeakAction;

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use super::abi::{self, Abi, Classified, NetCall};
use super::notif::{Notification, Reply};
use super::sys::Errno;
use super::tracee::{Failure, Socket, Tracee};
use super::Ctx;
use crate::kernel::Witness;
use crate::net::msghdr::Layout;
use crate::net::sockaddr::{self, SockAddr};
use crate::policy::{Decision, Reason, Ruling};
use crate::report_writer::{Action, Event, ProcessInfo};
use crate::syscalls::{self, Denial};

/// The errno a blocked call fails with.
pub const BLOCKED_ERRNO: Errno = libc::EPERM;

/// One notification being handled.
pub struct Call<'a> {
    pub ctx: &'a Arc<Ctx>,
    pub n: &'a Notification,
    pub tracee: Tracee,
    /// The call's arguments: the registers, or the words a `socketcall` points at.
    pub args: [u64; 6],
    pub abi: Abi,
    /// Arguments came from the caller's memory (`socketcall`): the kernel
    /// reads them again after a CONTINUE.
    multiplexed: bool,
    info: Option<ProcessInfo>,
    events: Vec<Event>,
    /// Allowed decisions that needed no event (no JSON report): only counted.
    allowed_unreported: u64,
    /// The gate does not wait for a kernel layer still loading: the handler judges every part
    /// of the call first, then waits once ([`Call::wait_for_layer`]).
    pub layer_wait_later: bool,
}

impl<'a> Call<'a> {
    pub fn layout(&self) -> Layout {
        match self.abi {
            Abi::X86_64 => Layout::X86_64,
            Abi::I386 => Layout::COMPAT,
        }
    }

    /// Whether an allowed connect or addressed datagram on a socket of `facts` may be answered
    /// CONTINUE, the kernel running it in the caller's context on the address it reads then,
    /// instead of being performed by us on our duplicate: on UDP sockets when the run has the
    /// fast path (`supervisor::fast_path_otherwise` says why that is sound), and never for i386
    /// `socketcall`, whose arguments the kernel would read again from an array the program can
    /// rewrite (`kernel_judges_any`). Anything the kernel refuses
    /// it reports (`source: kernel`). Not TCP: answered CONTINUE, a connect measured slower
    /// than one we perform (the caller's thread must wake to run it and wait for the
    /// handshake; ours runs it while the caller sleeps, and the caller wakes once).
    pub fn kernel_judges(&self, facts: &crate::net::socket::SocketFacts) -> bool {
        let udp = matches!((facts.sock_type, facts.protocol), (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP));
        self.kernel_judges_any() && facts.is_inet() && udp
    }

    /// Whether the run has the fast path (see [`Call::kernel_judges`]) and the call's arguments
    /// are its own registers (not i386 `socketcall`'s copy of them): the kernel then judges
    /// whatever inet socket the fd number names (see `send::sent_by_kernel_unseen`).
    pub fn kernel_judges_any(&self) -> bool {
        !self.multiplexed && self.ctx.fast_path.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Handles one notification to the end: exactly one reply is always sent.
pub fn handle(ctx: &Arc<Ctx>, n: Notification) {
    let tracee = match Tracee::open(n.tid, &ctx.tracee_cache) {
        Ok(t) => t,
        Err(f) => {
            // The caller vanished (or we cannot reach it): answer anyway, closed.
            let _ = ctx.notifier.respond(n.id, Reply::Errno(BLOCKED_ERRNO));
            if let Failure::Check(e) = f {
                crate::report_writer::human::say!(
                    "sockstrace: cannot open thread {}: {}; call denied",
                    n.tid,
                    std::io::Error::from_raw_os_error(e)
                );
            }
            return;
        }
    };
    let mut call = Call {
        ctx,
        n: &n,
        tracee,
        args: n.args,
        abi: Abi::X86_64,
        multiplexed: false,
        info: None,
        events: Vec::new(),
        allowed_unreported: 0,
        layer_wait_later: false,
    };
    let mut name = "unknown";
    let reply = match dispatch(&mut call, &mut name) {
        Ok(reply) => reply,
        Err(Failure::Caller(e)) => {
            ctx.reporter.count_invalid();
            Reply::Errno(e)
        }
        Err(Failure::Gone) => Reply::Errno(BLOCKED_ERRNO),
        Err(Failure::Busy) => {
            // Judged and reported as usual; only not performed.
            call.set_last_errno(libc::EAGAIN);
            ctx.receivers.refused_busy();
            Reply::Errno(libc::EAGAIN)
        }
        Err(Failure::Check(e)) => {
            let reply = call.check_failed(name);
            crate::report_writer::human::say!(
                "sockstrace: could not check {name} of thread {}: {}; call denied",
                n.tid,
                std::io::Error::from_raw_os_error(e)
            );
            reply
        }
    };
    // A call the kernel runs (CONTINUE) meets the whole kernel layer, whichever path let it
    // go (the gate waits for calls it lets through before they are performed): for a layer
    // still completing itself it is held, on no thread, and answered when the layer settles
    // (`LateLayer::hold_continue`); under `--kernel required` a layer that failed refuses it.
    // Refusals go at once.
    let mut reply = match reply {
        Reply::Continue if ctx.kernel.is_loading() && ctx.kernel.hold_continue(n.id) => None,
        Reply::Continue if !ctx.kernel.wait() => Some(Reply::Errno(BLOCKED_ERRNO)),
        reply => Some(reply),
    };
    // Events go out before the reply, so that one thread's events keep the
    // order of its calls; except that a stack taken for --stack is symbolized
    // after the reply, off the decision's path.
    if call.events.iter().any(|e| e.captured.is_some()) {
        answer(ctx, n.id, reply.take());
    }
    let mut stack = None;
    for mut event in call.events {
        if let Some(debug) = &ctx.leak_debug {
            debug.after_reply(&mut event, &mut stack);
        }
        // The kernel's view of the same socket, joined on its cookie; read
        // after the call ran, so it includes what the call did.
        if let (Some(facts), Some(cookie)) = (&ctx.kernel_facts, event.cookie) {
            event.kernel = facts.get(cookie).and_then(|f| serde_json::to_value(f).ok());
        }
        ctx.reporter.emit(event);
    }
    ctx.reporter.count_allowed(call.allowed_unreported);
    answer(ctx, n.id, reply);
}

fn answer(ctx: &Ctx, id: u64, reply: Option<Reply>) {
    if let Some(Err(e)) = reply.map(|reply| ctx.notifier.respond(id, reply)) {
        crate::report_writer::human::say!(
            "sockstrace: cannot answer a trapped call: {}",
            std::io::Error::from_raw_os_error(e)
        );
    }
}

fn dispatch(call: &mut Call<'_>, name: &mut &'static str) -> Result<Reply, Failure> {
    if call.ctx.tree.is_killing() {
        return Ok(Reply::Errno(BLOCKED_ERRNO));
    }
    let classified = abi::classify(call.n);
    if let Some(gate) = &call.ctx.syscalls {
        let network = classified != Classified::Unsupported;
        match gate.judge(call.n.arch, call.n.nr, call.n.args[0], network) {
            syscalls::Judged::Network => {}
            // An allowed call of no concern to the network handlers: as the
            // kernel would have run it (its number and sub-call are registers).
            syscalls::Judged::Continue => return Ok(Reply::Continue),
            syscalls::Judged::Deny { name: denied, denial } => {
                *name = denied;
                return Ok(deny_syscall(call, denied, denial));
            }
        }
    }
    let net_call = match classified {
        Classified::Direct { abi, call: net_call } => {
            call.abi = abi;
            net_call
        }
        Classified::Socketcall { call: net_call, args, count } => {
            *name = net_call.name();
            // The words are the arguments the handler reads by (pointers,
            // lengths); what it reads by them it confirms, and that confirm
            // covers the words, read before.
            let words = materialize::read(call, args, count * 4)?;
            call.args = abi::socketcall_args(words.plan(), count).ok_or(Failure::Caller(libc::EFAULT))?;
            call.abi = Abi::I386;
            call.multiplexed = true;
            net_call
        }
        Classified::Unsupported => return Ok(foreign_abi(call)),
    };
    *name = net_call.name();
    match net_call {
        NetCall::Socket => create::socket(call),
        NetCall::Connect => connect::connect(call),
        NetCall::Sendto => send::sendto(call),
        NetCall::Sendmsg => send::sendmsg(call),
        NetCall::Sendmmsg => send::sendmmsg(call),
        NetCall::Bind => inbound::bind(call),
        NetCall::Listen => inbound::listen(call),
        NetCall::Accept | NetCall::Accept4 => inbound::accept(call, net_call.name()),
        NetCall::IoUringSetup => Ok(io_uring(call)),
        NetCall::Setsockopt => options::setsockopt(call),
    }
}

/// A call outside the system call allowlist: its errno (or a kill of the
/// whole tree), reported.
fn deny_syscall(call: &mut Call<'_>, name: &'static str, denial: Denial) -> Reply {
    let judged =
        Judged::new(name, Subject::Nothing, Target::Remote(None), Decision::allowed(Reason::SyscallDenied));
    let (judged, action) = match denial {
        Denial::Errno(errno) => (judged.failing_with(errno), Action::Blocked),
        Denial::Kill => (judged, Action::Killed),
    };
    call.gate(judged, Ruling::Forced(action)).refusal().unwrap_or(Reply::Errno(BLOCKED_ERRNO))
}

/// x32 or unknown calls: their structures are not parsed; deny them unless
/// logging (the arguments are registers, so CONTINUE is sound).
fn foreign_abi(call: &mut Call<'_>) -> Reply {
    let judged = Judged::new(
        "foreign-abi",
        Subject::Nothing,
        Target::Remote(None),
        Decision::leak(Reason::ForeignAbi),
    );
    call.gate_for_continue(judged, Ruling::OnLeak).refusal().unwrap_or(Reply::Continue)
}

/// io_uring operations bypass seccomp entirely: refused unless logging, or
/// unless the kernel layer gates what they can do (`--allow-io-uring`): their
/// connects and sends (the cgroup hooks), their options (the setsockopt hook),
/// and socket creation (the BPF LSM program where the kernel takes it, else a
/// caller that can never hold `CAP_NET_RAW`; see `uring`). Never for an i386
/// caller: the kernel runs a compat ring's setsockopt commands without the
/// cgroup setsockopt hook (`do_sock_setsockopt` skips it for compat callers),
/// so a 32-bit ring could join a multicast group that nothing refuses.
fn io_uring(call: &mut Call<'_>) -> Reply {
    let gated = call.ctx.allow_io_uring && call.abi == Abi::X86_64 && {
        // Tried once (the first io_uring_setup), then remembered.
        let lsm =
            call.ctx.witness.write().is_ok_and(|mut w| w.as_mut().is_some_and(Witness::gate_socket_creation));
        let kernel_on = call.ctx.witness.read().is_ok_and(|w| w.is_some());
        kernel_on && (lsm || (uring::lacks_net_raw(call.n.tid) && materialize::confirm(call).is_ok()))
    };
    let decision = if gated { Decision::allowed(Reason::IoUring) } else { Decision::leak(Reason::IoUring) };
    let judged = Judged::new("io_uring_setup", Subject::Nothing, Target::Remote(None), decision);
    call.gate_for_continue(judged, Ruling::OnLeak).refusal().unwrap_or(Reply::Continue)
}

/// Runs an allowed call that we perform ourselves, on this receiver thread.
/// Before a call that waits on the network, another thread takes the
/// receiving role, so the wait holds up no other call (a call that stalls
/// unexpectedly is noticed by the receivers' watcher instead). On the reserve
/// receiver, which must not wait, the reserve's role is handed on first, and a
/// call that waits is not run when it cannot be ([`Failure::Busy`]).
pub fn run_call<T, F>(ctx: &Arc<Ctx>, waits_on_network: bool, call: F) -> Result<T, Failure>
where
    F: FnOnce() -> T,
{
    if waits_on_network {
        if !super::receivers::may_wait_now(ctx) {
            return Err(Failure::Busy);
        }
        super::receivers::hand_off(ctx);
    }
    Ok(call())
}

/// Runs an allowed call that may block on a socket (a connect, a send), as
/// [`run_call`], but interruptible as the caller's own call would be: it ends
/// early with the errno the caller is to see (`ERESTARTSYS` or `EINTR`) when
/// the caller has a signal to handle, and at once when the caller is gone
/// (see `supervisor::interrupt`). `blocks`: the socket blocks and the flags
/// lack `MSG_DONTWAIT` ([`blocks`]); otherwise nothing waits and the call
/// runs as is.
pub fn run_interruptible<T, F>(
    call: &Call<'_>,
    sock: &Socket,
    blocks: bool,
    waits_on_network: bool,
    mut f: F,
) -> Result<Result<T, Errno>, Failure>
where
    F: FnMut() -> Result<T, Errno>,
{
    if !blocks {
        return run_call(call.ctx, waits_on_network, f);
    }
    if !super::receivers::may_wait_now(call.ctx) {
        return Err(Failure::Busy);
    }
    if waits_on_network {
        super::receivers::hand_off(call.ctx);
    }
    match super::interrupt::perform(&call.ctx.notifier, call.tracee.tid, call.n.id, &mut f) {
        Ok(result) => Ok(result),
        // A socket with a send timeout is never restarted (the kernel's `sock_intr_errno`).
        Err(super::interrupt::Stop::Signal(super::interrupt::ERESTARTSYS)) if has_send_timeout(sock) => {
            Ok(Err(libc::EINTR))
        }
        Err(super::interrupt::Stop::Signal(errno)) => Ok(Err(errno)),
        Err(super::interrupt::Stop::Gone) => Err(Failure::Gone),
    }
}

/// Runs an allowed call that waits on the network and cannot be restarted half-way (a SOCKS
/// exchange), as [`run_call`], registered with `supervisor::interrupt`, whose kicks interrupt
/// its waits while its caller is gone or has a signal to handle. `f` is given the stop to ask
/// on each interrupted wait (`socks::Stop`): true once the caller is gone (a program's own
/// signals, Go's preemption among them, do not end it), and `f` then ends with `EINTR`, so
/// that the call ends at once and its events go out (a run's end waits for calls in flight
/// only so long). `EINTR` for anything else is answered as is.
pub fn run_stoppable<T, F>(call: &Call<'_>, mut f: F) -> Result<Result<T, Errno>, Failure>
where
    F: FnMut(crate::socks::Stop<'_>) -> Result<T, Errno>,
{
    if !super::receivers::may_wait_now(call.ctx) {
        return Err(Failure::Busy);
    }
    super::receivers::hand_off(call.ctx);
    let (notifier, id) = (&call.ctx.notifier, call.n.id);
    let gone = || !notifier.id_valid(id);
    match super::interrupt::perform(&call.ctx.notifier, call.tracee.tid, call.n.id, &mut || f(&gone)) {
        Ok(result) => Ok(result),
        Err(super::interrupt::Stop::Signal(_)) => Ok(Err(libc::EINTR)),
        Err(super::interrupt::Stop::Gone) => Err(Failure::Gone),
    }
}

/// Whether `SO_SNDTIMEO` is set on the socket.
fn has_send_timeout(sock: &Socket) -> bool {
    super::sys::send_timeout(sock.as_fd()).is_ok_and(|t| t.tv_sec != 0 || t.tv_usec != 0)
}

/// Whether a call on `sock` with `flags` may wait: the socket blocks and the
/// flags lack `MSG_DONTWAIT`.
pub fn blocks(sock: &Socket, flags: i32) -> Result<bool, Failure> {
    if flags & libc::MSG_DONTWAIT != 0 {
        return Ok(false);
    }
    Ok(!super::sys::is_nonblocking(sock.as_fd()).map_err(Failure::Check)?)
}

/// Whether performing a call on `sock` toward `dest` (a raw sockaddr) may wait
/// on another machine: the destination is not loopback (loopback handshakes and
/// sends complete within the call), `flags` lack `MSG_DONTWAIT` and the socket
/// blocks.
pub fn waits_on_network(sock: &Socket, dest: &[u8], flags: i32) -> Result<bool, Failure> {
    match sockaddr::parse(dest) {
        Ok(SockAddr::Inet(addr)) if !addr.ip().to_canonical().is_loopback() => {}
        _ => return Ok(false),
    }
    if flags & libc::MSG_DONTWAIT != 0 {
        return Ok(false);
    }
    Ok(!super::sys::is_nonblocking(sock.as_fd()).map_err(Failure::Check)?)
}

/// Answers the call with a new fd of the caller for `fd` (made or accepted
/// by us), as its result (`SECCOMP_IOCTL_NOTIF_ADDFD` with `SEND`): the
/// reply is then already given.
pub fn answer_with_fd(call: &Call<'_>, fd: BorrowedFd<'_>, cloexec: bool) -> Result<Reply, Failure> {
    match call.ctx.notifier.add_fd_and_respond(call.n.id, fd, cloexec) {
        Ok(_) => Ok(Reply::Answered),
        Err(libc::ENOENT) => Err(Failure::Gone),
        Err(e) => Err(Failure::Check(e)),
    }
}

/// The reply for the result of a call we performed.
pub fn reply_of(result: Result<i64, Errno>) -> Reply {
    match result {
        Ok(v) => Reply::Value(v),
        Err(e) => Reply::Errno(e),
    }
}
