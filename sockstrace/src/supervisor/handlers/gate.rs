//! The gate every decided call goes through: the action its decision takes
//! under the user's settings (`policy::LeakRules`, pure), the event that
//! records it, a kill, and, for a refusal, the reply. Handlers decide on
//! confirmed copies (`materialize`), pass the decision here, and act on the
//! [`Outcome`]: they perform the call (or let the kernel run it) only when
//! it is [`Outcome::Allowed`] or [`Outcome::Logged`].

use super::{Call, BLOCKED_ERRNO};
use crate::net::sockaddr::SockAddr;
use crate::net::socket::SocketFacts;
use crate::policy::{Decision, LeakRules, Reason, Ruling};
use crate::report_writer::{Action, Event, ProcessInfo};
use crate::supervisor::abi::Abi;
use crate::supervisor::notif::Reply;
use crate::supervisor::sys::Errno;
use crate::supervisor::tracee::Socket;

/// What an event says about the socket.
pub enum Subject<'s> {
    Nothing,
    Socket(&'s Socket),
    /// A socket about to be created: only its family, type and protocol.
    Facts(SocketFacts),
}

impl Subject<'_> {
    fn facts(&self) -> Option<SocketFacts> {
        match self {
            Subject::Nothing => None,
            Subject::Socket(sock) => Some(sock.facts),
            Subject::Facts(facts) => Some(*facts),
        }
    }
}

/// The address an event names.
pub enum Target<'s> {
    Remote(Option<&'s SockAddr>),
    Local(Option<&'s SockAddr>),
}

/// One decided call, as its event will show it.
pub struct Judged<'s> {
    pub syscall: &'static str,
    pub subject: Subject<'s>,
    pub target: Target<'s>,
    pub decision: Decision,
    /// The refused socket option or control message (`routing-option`).
    pub option: Option<String>,
    /// The errno of a refusal, when not the decision's own ([`refusal_errno`]).
    pub errno: Option<Errno>,
}

impl<'s> Judged<'s> {
    pub fn new(syscall: &'static str, subject: Subject<'s>, target: Target<'s>, decision: Decision) -> Self {
        Judged { syscall, subject, target, decision, option: None, errno: None }
    }

    /// Names the option or control message the decision is about.
    pub fn option(mut self, option: String) -> Self {
        self.option = Some(option);
        self
    }

    /// A refusal fails with `errno` (also in the report).
    pub fn failing_with(mut self, errno: Errno) -> Self {
        self.errno = Some(errno);
        self
    }
}

/// What the gate lets happen to a call.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The policy allows the call: the handler performs it, or lets the
    /// kernel run it (CONTINUE, where that is sound).
    Allowed,
    /// A leak let through (`--on-leak log`, `--dns log`): the handler performs
    /// it as an allowed one; the kernel layer, where it enforces, would refuse
    /// it on its own.
    Logged,
    /// Taken through the proxy instead (`--on-leak socksify`): the handler does that.
    Socksified,
    /// Refused (blocked, or killed with the program): `reply` answers the call.
    Refused { action: Action, reply: Reply },
}

impl Outcome {
    /// The reply of a refusal; `None` when the handler goes on.
    pub fn refusal(self) -> Option<Reply> {
        match self {
            Outcome::Refused { reply, .. } => Some(reply),
            Outcome::Allowed | Outcome::Logged | Outcome::Socksified => None,
        }
    }
}

/// The errno of a call its decision refused: `EPERM`, or for an address of
/// another family than the socket the errno the kernel itself gives
/// (`EINVAL` on local families, `EAFNOSUPPORT` on inet ones).
pub fn refusal_errno(facts: Option<SocketFacts>, decision: Decision) -> Errno {
    match facts {
        Some(facts) if decision.reason == Reason::FamilyMismatch => {
            if facts.is_inet() {
                libc::EAFNOSUPPORT
            } else {
                libc::EINVAL
            }
        }
        _ => BLOCKED_ERRNO,
    }
}

impl<'a> Call<'a> {
    /// The user's `--on-leak` and `--dns log`.
    pub fn rules(&self) -> LeakRules {
        LeakRules { on_leak: self.ctx.on_leak, dns_log: self.ctx.dns_log }
    }

    /// The gate: the action `ruling` gives the decision, its event (read from
    /// /proc now, while the caller still waits in the call), a kill, and the
    /// outcome the handler acts on.
    ///
    /// A call that goes on (allowed, logged, socksified) first waits for a kernel layer still
    /// completing itself (`supervisor::late_layer`); a refusal does not, so that it is
    /// decided and reported while its caller waits, whatever becomes of the caller then.
    pub fn gate(&mut self, judged: Judged, ruling: Ruling) -> Outcome {
        let to_fake_address = self.is_fake_address(&judged.target);
        let mut action = self.rules().action(ruling, judged.decision, to_fake_address);
        let mut judged = judged;
        if matches!(action, Action::Allowed | Action::Logged | Action::Socksified) && !self.layer_wait_later {
            match self.wait_for_layer() {
                Ok(true) => {}
                // The layer failed under --kernel required (the program is being killed), or
                // the caller is gone while it waited: nothing goes on.
                Ok(false) => action = Action::Blocked,
                // On the reserve receiver, with no thread to take its role (`receivers`).
                Err(_) => {
                    action = Action::Blocked;
                    judged = judged.failing_with(libc::EAGAIN);
                    self.ctx.receivers.refused_busy();
                }
            }
        }
        if self.ctx.inspector.is_some() && !matches!(ruling, Ruling::Forced(_)) {
            self.note_dns(&judged.target);
        }
        let errno = judged.errno.unwrap_or_else(|| refusal_errno(judged.subject.facts(), judged.decision));
        let outcome = match action {
            Action::Allowed => Outcome::Allowed,
            Action::Logged => Outcome::Logged,
            Action::Socksified => Outcome::Socksified,
            Action::Blocked | Action::Killed | Action::Unknown => {
                Outcome::Refused { action, reply: Reply::Errno(errno) }
            }
        };
        // A refusal's errno is in its event; a kill's only when not `EPERM`.
        let shown = match outcome {
            Outcome::Refused { .. } if action == Action::Blocked || errno != BLOCKED_ERRNO => Some(errno),
            _ => None,
        };
        self.record(judged, action, shown);
        if action == Action::Killed {
            self.ctx.tree.kill_all(Some(self.tracee.pidfd()));
        }
        outcome
    }

    /// Records the event of a gated call. Refusals that are no leak (a UDP
    /// connect, a protocol downgraded) are counted in the summary, so they
    /// always make an event; other allowed calls only when asked for.
    fn record(&mut self, judged: Judged, action: Action, errno: Option<Errno>) {
        let Judged { syscall, subject, target, decision, option, .. } = judged;
        if !(decision.is_leak() || !action.lets_through() || self.ctx.reporter.wants_allowed()) {
            self.allowed_unreported += 1;
            return;
        }
        let info = self.caller_info();
        let mut event = Event::new(syscall, self.tracee.tid, decision, action).with_process(info);
        if let Subject::Socket(sock) = subject {
            event.fd = Some(self.args[0] as i32);
            event.cookie = sock.cookie();
        }
        if let Some(facts) = subject.facts() {
            event.family = Some(facts.family_name());
            event.sock_type = Some(facts.type_name());
            event.protocol = Some(facts.protocol_name());
        }
        match target {
            Target::Remote(addr) => event.dst = addr.map(|a| a.to_string()),
            Target::Local(addr) => event.local = addr.map(|a| a.to_string()),
        }
        event.errno = errno;
        event.option = option;
        if let (Some(debug), true) = (&self.ctx.leak_debug, event.is_leak()) {
            let (ctx, id, pid) = (self.ctx, self.n.id, event.pid.unwrap_or(self.tracee.tid));
            let earlier = self.events.iter().find_map(|e| e.captured.clone());
            debug.before_reply(&mut event, pid, self.abi == Abi::I386, || ctx.notifier.id_valid(id), earlier);
        }
        self.events.push(event);
    }

    /// [`Call::gate`] for a call the handler then answers CONTINUE (or refuses): an allowed one
    /// does not wait here for a kernel layer still loading, since a CONTINUE is held until the
    /// layer settles without holding a thread (`LateLayer::hold_continue`, in `handle`).
    pub fn gate_for_continue(&mut self, judged: Judged, ruling: Ruling) -> Outcome {
        let before = std::mem::replace(&mut self.layer_wait_later, true);
        let outcome = self.gate(judged, ruling);
        self.layer_wait_later = before;
        outcome
    }

    /// Lets the kernel run an allowed call in the caller's context, or refuses
    /// it when the arguments could change under the kernel (see
    /// [`Call::continue_is_sound`]): reported `socketcall-race`, never let
    /// through, whatever `--on-leak` says.
    pub fn continue_or_refuse(
        &mut self,
        syscall: &'static str,
        subject: Subject,
    ) -> Result<Reply, crate::supervisor::tracee::Failure> {
        // Sound only once the layer is attached (`continue_is_sound`): a multiplexed call waits
        // for it here, not held as a CONTINUE is, since a layer that fails makes it unsound.
        if self.multiplexed && self.ctx.kernel.is_loading() && !self.wait_for_layer()? {
            return Ok(Reply::Errno(BLOCKED_ERRNO));
        }
        if self.continue_is_sound() {
            return Ok(Reply::Continue);
        }
        self.events.retain(|e| e.is_leak());
        self.allowed_unreported = 0;
        let judged =
            Judged::new(syscall, subject, Target::Remote(None), Decision::leak(Reason::SocketcallRace));
        Ok(self.gate(judged, Ruling::FailClosed).refusal().unwrap_or(Reply::Errno(BLOCKED_ERRNO)))
    }

    /// A call whose check failed: its events so far are dropped, and it is
    /// reported `check-failed` and denied, whatever `--on-leak` says.
    pub fn check_failed(&mut self, syscall: &'static str) -> Reply {
        self.events.clear();
        self.allowed_unreported = 0;
        let judged =
            Judged::new(syscall, Subject::Nothing, Target::Remote(None), Decision::leak(Reason::CheckFailed));
        self.gate(judged, Ruling::FailClosed).refusal().unwrap_or(Reply::Errno(BLOCKED_ERRNO))
    }

    /// Whether answering CONTINUE is sound: the kernel then reads the
    /// arguments again. For registers that is harmless. For `socketcall`'s
    /// argument array it is not: another process can share the page (shared
    /// memory, `CLONE_VM` without threads), so "one thread" proves nothing.
    /// A multiplexed call is let through only where whatever a rewritten array
    /// could turn it into is gated anyway:
    /// - `connect`, `bind`, `sendto`, `sendmsg`, `sendmmsg` (on unix or
    ///   netlink sockets, the only ones we CONTINUE), when the kernel layer is
    ///   on: its cgroup hooks see the kernel's own copy of any inet address and
    ///   socket a rewrite (fd and address) produces.
    ///
    /// `listen` and `accept` are always performed by us, never CONTINUEd, and
    /// neither is `socket()` through `socketcall`: the program's socket maker
    /// makes the socket judged (`create`), or a rewritten family could make a
    /// socket of a family no hook judges, ready for an fd swap.
    fn continue_is_sound(&self) -> bool {
        !self.multiplexed || self.ctx.witness.read().is_ok_and(|w| w.is_some())
    }

    /// The wait for a kernel layer still loading, made by the gate and by a handler whose
    /// judgements were made with [`Call::layer_wait_later`] set: whether the call may go on
    /// (false: refused, the layer failed under `--kernel required`, the run ended, or the caller
    /// left meanwhile). On the reserve receiver the role is handed on first; `Failure::Busy`
    /// when it cannot be.
    pub fn wait_for_layer(&self) -> Result<bool, crate::supervisor::tracee::Failure> {
        if self.ctx.kernel.is_loading() && !super::super::receivers::may_wait_now(self.ctx) {
            return Err(crate::supervisor::tracee::Failure::Busy);
        }
        Ok(self.layer_allows())
    }

    /// Waits for a kernel layer still loading; whether the call may go on: not when the layer
    /// failed under `--kernel required`, nor when its caller left while it waited (nothing is
    /// done for a caller that is gone: a call performed on our duplicate of its socket would
    /// still reach the network after the program's end).
    fn layer_allows(&self) -> bool {
        let waited = self.ctx.kernel.is_loading();
        if !self.ctx.kernel.wait() {
            return false;
        }
        !waited || self.ctx.notifier.id_valid(self.n.id)
    }

    /// Overrides the errno of the last recorded event (a call taken through
    /// the proxy that then failed).
    pub fn set_last_errno(&mut self, errno: Errno) {
        if let Some(last) = self.events.last_mut() {
            last.errno = Some(errno);
        }
    }

    /// The caller's process id (thread group), read once per call.
    pub fn pid(&mut self) -> u32 {
        self.caller_info().pid.unwrap_or(self.tracee.tid)
    }

    /// Who the caller is, for its events, read once per call (see `supervisor::who`). It is
    /// read after the decision, and the caller may be gone by then: a thread that execs kills
    /// the process's other threads and takes the process id as its thread id, so /proc can
    /// show the next image for a call of the main thread (a program looping a refused call in
    /// its main thread while another thread execs `/bin/true` had leaks reported as
    /// `/usr/bin/true`'s). The call still pending after the read proves the caller outlived it
    /// (an exec goes on only once every other thread is gone); otherwise only the process id
    /// is kept (an exec keeps it), not what may be the next image's. A kept identity needs no
    /// such proof: it was read for this image earlier, and is kept only while the thread's
    /// executable is still the same file.
    pub fn caller_info(&mut self) -> ProcessInfo {
        if let Some(info) = &self.info {
            return info.clone();
        }
        let (info, read_now) = self.tracee.process_info();
        let info = if !read_now || self.ctx.notifier.id_valid(self.n.id) {
            info
        } else {
            ProcessInfo { pid: info.pid, ..ProcessInfo::default() }
        };
        self.info = Some(info.clone());
        info
    }

    /// Remembers that this process talked to a DNS port (for the SOCKS inspector).
    fn note_dns(&mut self, target: &Target) {
        if let Target::Remote(Some(SockAddr::Inet(addr))) = target {
            if addr.port() == 53 {
                let pid = self.pid();
                if let Ok(mut seen) = self.ctx.dns_seen.lock() {
                    if seen.len() > 65_536 {
                        seen.clear();
                    }
                    seen.insert(pid, std::time::Instant::now());
                }
            }
        }
    }

    /// Whether the target is one of the `--dns proxy` resolver's fake addresses.
    fn is_fake_address(&self, target: &Target) -> bool {
        match target {
            Target::Remote(Some(SockAddr::Inet(addr))) => {
                self.ctx.resolver.is_some() && crate::dns::in_pool(addr.ip())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(family: i32) -> SocketFacts {
        SocketFacts { family, sock_type: libc::SOCK_DGRAM, protocol: 0 }
    }

    #[test]
    fn a_refusal_fails_with_eperm_or_the_kernels_family_errno() {
        let mismatch = Decision::leak(Reason::FamilyMismatch);
        assert_eq!(refusal_errno(Some(facts(libc::AF_INET)), mismatch), libc::EAFNOSUPPORT);
        assert_eq!(refusal_errno(Some(facts(libc::AF_INET6)), mismatch), libc::EAFNOSUPPORT);
        assert_eq!(refusal_errno(Some(facts(libc::AF_UNIX)), mismatch), libc::EINVAL);
        assert_eq!(refusal_errno(Some(facts(libc::AF_NETLINK)), mismatch), libc::EINVAL);
        assert_eq!(refusal_errno(None, mismatch), BLOCKED_ERRNO);
        let direct = Decision::leak(Reason::DirectUdp);
        assert_eq!(refusal_errno(Some(facts(libc::AF_INET)), direct), BLOCKED_ERRNO);
        assert_eq!(refusal_errno(Some(facts(libc::AF_UNIX)), direct), BLOCKED_ERRNO);
    }

    #[test]
    fn only_a_refusal_has_a_reply() {
        assert_eq!(Outcome::Allowed.refusal(), None);
        assert_eq!(Outcome::Logged.refusal(), None);
        assert_eq!(Outcome::Socksified.refusal(), None);
        let refused = Outcome::Refused { action: Action::Killed, reply: Reply::Errno(libc::EPERM) };
        assert_eq!(refused.refusal(), Some(Reply::Errno(libc::EPERM)));
    }
}
