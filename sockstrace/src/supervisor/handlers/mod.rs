//! Turning one trapped call into a reply: materialize (copy the caller's
//! arguments once), decide (the pure policy), act (perform the allowed call
//! ourselves on a duplicate of the caller's socket), report.

mod connect;
mod inbound;
mod send;

use std::sync::Arc;

use super::notif::{Notification, Reply};
use super::sys::Errno;
use super::tracee::{Failure, Socket, Tracee};
use super::Ctx;
use crate::net::sockaddr::{self, SockAddr};
use crate::policy::{Decision, Reason};
use crate::report::{Action, Event, ProcessInfo};

/// What the user asked to happen to a leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    Block,
    Log,
    Kill,
}

/// The errno a blocked call fails with.
pub const BLOCKED_ERRNO: Errno = libc::EPERM;

/// One notification being handled.
pub struct Call<'a> {
    pub ctx: &'a Ctx,
    pub n: &'a Notification,
    pub tracee: Tracee,
    info: Option<ProcessInfo>,
    events: Vec<Event>,
}

impl<'a> Call<'a> {
    /// The action for a decision under the user's `--on-leak`.
    pub fn action(&self, decision: Decision) -> Action {
        if !decision.is_leak() {
            return Action::Allowed;
        }
        match self.ctx.on_leak {
            LeakAction::Block => Action::Blocked,
            LeakAction::Log => Action::Logged,
            LeakAction::Kill => Action::Killed,
        }
    }

    /// Records the decision for the report (read from /proc now, while the
    /// caller still waits in the call), and carries out a kill.
    pub fn record(
        &mut self,
        syscall: &'static str,
        sock: Option<&Socket>,
        target: Target,
        decision: Decision,
    ) -> Action {
        let action = self.action(decision);
        if decision.is_leak() || self.ctx.reporter.wants_allowed() {
            let info = self.info.get_or_insert_with(|| self.tracee.process_info()).clone();
            let mut event = Event::new(syscall, self.tracee.tid, decision, action).with_process(info);
            event.fd = sock.map(|_| self.n.args[0] as i32);
            if let Some(sock) = sock {
                event.cookie = sock.cookie();
                event.family = Some(sock.facts.family_name());
                event.sock_type = Some(sock.facts.type_name());
                event.protocol = Some(sock.facts.protocol_name());
            }
            match target {
                Target::Remote(addr) => event.dst = addr.map(|a| a.to_string()),
                Target::Local(addr) => event.local = addr.map(|a| a.to_string()),
            }
            if action == Action::Blocked {
                event.errno = Some(BLOCKED_ERRNO);
            }
            self.events.push(event);
        }
        if action == Action::Killed {
            self.ctx.tree.kill_all(Some(self.tracee.pidfd()));
        }
        action
    }
}

/// The address an event names.
pub enum Target<'s> {
    Remote(Option<&'s SockAddr>),
    Local(Option<&'s SockAddr>),
}

/// Handles one notification to the end: exactly one reply is always sent.
pub async fn handle(ctx: Arc<Ctx>, n: Notification) {
    let tracee = match Tracee::open(n.tid) {
        Ok(t) => t,
        Err(f) => {
            // The caller vanished (or we cannot reach it): answer anyway, closed.
            let _ = ctx.notifier.respond(n.id, Reply::Errno(BLOCKED_ERRNO));
            if let Failure::Check(e) = f {
                eprintln!(
                    "sockstrace: cannot open thread {}: {}; call denied",
                    n.tid,
                    std::io::Error::from_raw_os_error(e)
                );
            }
            return;
        }
    };
    let mut call = Call { ctx: &ctx, n: &n, tracee, info: None, events: Vec::new() };
    let reply = match dispatch(&mut call).await {
        Ok(reply) => reply,
        Err(Failure::Caller(e)) => {
            ctx.reporter.count_invalid();
            Reply::Errno(e)
        }
        Err(Failure::Gone) => Reply::Errno(BLOCKED_ERRNO),
        Err(Failure::Check(e)) => {
            let decision = Decision::leak(Reason::CheckFailed);
            call.events.clear();
            call.record(syscall_name(n.nr), None, Target::Remote(None), decision);
            if let Some(last) = call.events.last_mut() {
                // Denied even under --on-leak log: an unchecked call never passes.
                if last.action != Action::Killed {
                    last.action = Action::Blocked;
                    last.errno = Some(BLOCKED_ERRNO);
                }
            }
            eprintln!(
                "sockstrace: could not check {} of thread {}: {}; call denied",
                syscall_name(n.nr),
                n.tid,
                std::io::Error::from_raw_os_error(e)
            );
            Reply::Errno(BLOCKED_ERRNO)
        }
    };
    if let Err(e) = ctx.notifier.respond(n.id, reply) {
        eprintln!("sockstrace: cannot answer a trapped call: {}", std::io::Error::from_raw_os_error(e));
    }
    for event in call.events {
        ctx.reporter.emit(event);
    }
}

async fn dispatch(call: &mut Call<'_>) -> Result<Reply, Failure> {
    if call.ctx.tree.is_killing() {
        return Ok(Reply::Errno(BLOCKED_ERRNO));
    }
    if !call.n.is_native() {
        return Ok(foreign_abi(call));
    }
    match i64::from(call.n.nr) {
        libc::SYS_connect => connect::connect(call).await,
        libc::SYS_sendto => send::sendto(call).await,
        libc::SYS_sendmsg => send::sendmsg(call).await,
        libc::SYS_sendmmsg => send::sendmmsg(call).await,
        libc::SYS_bind => inbound::bind(call),
        libc::SYS_listen => inbound::listen(call),
        libc::SYS_accept | libc::SYS_accept4 => inbound::accept(call),
        libc::SYS_io_uring_setup => Ok(io_uring(call)),
        // The filter traps nothing else; never let an unknown call through.
        _ => Ok(Reply::Errno(libc::ENOSYS)),
    }
}

/// 32-bit and x32 calls: their structures differ; deny them unless logging.
fn foreign_abi(call: &mut Call<'_>) -> Reply {
    let action = call.record("foreign-abi", None, Target::Remote(None), Decision::leak(Reason::ForeignAbi));
    match action {
        Action::Logged | Action::Allowed => Reply::Continue,
        _ => Reply::Errno(BLOCKED_ERRNO),
    }
}

/// io_uring operations bypass seccomp entirely: refused unless logging.
fn io_uring(call: &mut Call<'_>) -> Reply {
    let action = call.record("io_uring_setup", None, Target::Remote(None), Decision::leak(Reason::IoUring));
    match action {
        Action::Logged | Action::Allowed => Reply::Continue,
        _ => Reply::Errno(BLOCKED_ERRNO),
    }
}

pub fn syscall_name(nr: i32) -> &'static str {
    match i64::from(nr) {
        libc::SYS_connect => "connect",
        libc::SYS_sendto => "sendto",
        libc::SYS_sendmsg => "sendmsg",
        libc::SYS_sendmmsg => "sendmmsg",
        libc::SYS_bind => "bind",
        libc::SYS_listen => "listen",
        libc::SYS_accept => "accept",
        libc::SYS_accept4 => "accept4",
        libc::SYS_io_uring_setup => "io_uring_setup",
        _ => "unknown",
    }
}

/// Reads a `(pointer, socklen_t)` address argument pair, with the kernel's
/// length rules (negative or over 128 is `EINVAL`).
pub fn read_addr(tracee: &Tracee, ptr: u64, len: u64) -> Result<Vec<u8>, Failure> {
    let len = len as u32 as i32;
    if len < 0 || len as usize > sockaddr::SOCKADDR_MAX {
        return Err(Failure::Caller(libc::EINVAL));
    }
    tracee.read(ptr, len as usize)
}

/// Confirms the caller is still the same waiting thread after we read its
/// memory; otherwise the bytes may belong to a recycled pid.
pub fn confirm(call: &Call<'_>) -> Result<(), Failure> {
    if call.ctx.notifier.id_valid(call.n.id) {
        Ok(())
    } else {
        Err(Failure::Gone)
    }
}

/// Runs an allowed call that we perform ourselves. A call that may block runs
/// on a blocking thread, so it never stalls the handling of other calls.
pub async fn run_call<T, F>(may_block: bool, call: F) -> Result<T, Failure>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if may_block {
        tokio::task::spawn_blocking(call).await.map_err(|_| Failure::Check(libc::EIO))
    } else {
        Ok(call())
    }
}

/// The reply for the result of a call we performed.
pub fn reply_of(result: Result<i64, Errno>) -> Reply {
    match result {
        Ok(v) => Reply::Value(v),
        Err(e) => Reply::Errno(e),
    }
}
