//! `setsockopt` options and send control messages that move the first hop
//! (routing headers, source routes, binding to a device, an outgoing
//! interface or next hop, policy marks, IPsec policies): refused, reason
//! `routing-option`, so that what the decision judged is where packets go.
//!
//! Native calls reach us only for the refused options (the filter matches
//! `(level, optname)` exactly, on registers). i386 calls all stop: a direct
//! call is decided on its registers and continued when allowed; a
//! `socketcall` is never continued (its arguments are in memory another
//! thread could change): we perform the allowed option ourselves on our
//! duplicate, with a private copy of the value.

use std::os::fd::BorrowedFd;
use std::sync::OnceLock;

use super::materialize;
use super::{reply_of, Call, Judged, Outcome, Subject, Target};
use crate::net::cmsg;
use crate::net::msghdr::Layout;
use crate::net::sockopt::{self, CompatValue};
use crate::policy::{Decision, Reason, Ruling};
use crate::supervisor::abi::Abi;
use crate::supervisor::notif::Reply;
use crate::supervisor::sys::Errno;
use crate::supervisor::tracee::{Failure, Socket};

/// The longest option value we copy for a `socketcall` setsockopt (the
/// largest ordinary values are a few hundred bytes).
const MAX_OPTVAL: usize = 4096;

pub fn setsockopt(call: &mut Call<'_>) -> Result<Reply, Failure> {
    let args = call.args;
    // The kernel reads level and optname as `int`.
    let (level, optname) = (args[1] as u32 as i32, args[2] as u32 as i32);
    if let Some(option) = sockopt::routing_option(level, optname) {
        if !crate::testing::disabled("options") {
            // Decided on the registers; the socket is the event's.
            let sock = materialize::socket(call, args[0])?.confirm(call)?;
            if let Some(refused) = refuse(call, "setsockopt", &sock, option).refusal() {
                return Ok(refused);
            }
            if !call.multiplexed && call.abi == Abi::X86_64 && kernel_layer_on(call) {
                // Logged and continued: the observing kernel layer sees the call too (it
                // skips compat callers), and one event is enough.
                crate::supervisor::kernel_events::expect_echo(call.tracee.tid, level, optname);
            }
        }
    }
    if !call.multiplexed {
        // Registers only: the kernel reads the same option we judged.
        return Ok(Reply::Continue);
    }
    perform(call, level, optname, args[0], args[3], args[4])
}

/// Whether the kernel layer is on (its setsockopt hook sees a call we continue).
fn kernel_layer_on(call: &Call<'_>) -> bool {
    call.ctx.witness.read().is_ok_and(|w| w.is_some())
}

/// Gates a refused option or control message (a leak: `--on-leak log` lets it through).
fn refuse(call: &mut Call<'_>, syscall: &'static str, sock: &Socket, option: String) -> Outcome {
    let decision = Decision::leak(Reason::RoutingOption);
    let judged = Judged::new(syscall, Subject::Socket(sock), Target::Remote(None), decision).option(option);
    call.gate(judged, Ruling::OnLeak)
}

/// An i386 `socketcall(SYS_SETSOCKOPT)` that may go ahead: done by us on our
/// duplicate with the copied value.
fn perform(
    call: &mut Call<'_>,
    level: i32,
    optname: i32,
    fd: u64,
    optval: u64,
    optlen: u64,
) -> Result<Reply, Failure> {
    let len = optlen as u32 as i32;
    if len < 0 || len as usize > MAX_OPTVAL {
        return Err(Failure::Caller(libc::EINVAL));
    }
    let sock = materialize::socket(call, fd)?;
    let value = materialize::read(call, optval, len as usize)?;
    let (sock, value) = sock.and(value).confirm(call)?;
    let value = match sockopt::compat_value(level, optname) {
        CompatValue::Same => value,
        CompatValue::Timeval => sockopt::timeval_from_compat(&value).ok_or(Failure::Caller(libc::EINVAL))?,
        // A layout with pointers or other padding: not converted, so not done.
        CompatValue::Unconverted => return Err(Failure::Check(libc::EOPNOTSUPP)),
    };
    // The kernel checks an option's privilege against the process that sets
    // it: us. We must not lend the caller capabilities it lacks.
    if !caller_holds_our_capabilities(call.tracee.tid) {
        return Err(Failure::Check(libc::EPERM));
    }
    Ok(reply_of(set(sock.as_fd(), level, optname, &value).map(|()| 0)))
}

fn cap_eff(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    u64::from_str_radix(crate::procfs::status_field(&status, "CapEff:")?.trim(), 16).ok()
}

/// Whether the caller's effective capabilities include all of ours
/// (unreadable: no).
fn caller_holds_our_capabilities(tid: u32) -> bool {
    static OURS: OnceLock<Option<u64>> = OnceLock::new();
    match (*OURS.get_or_init(|| cap_eff("self")), cap_eff(&tid.to_string())) {
        (Some(ours), Some(theirs)) => ours & !theirs == 0,
        _ => false,
    }
}

/// `setsockopt` on our duplicate with a private value.
fn set(fd: BorrowedFd<'_>, level: i32, optname: i32, value: &[u8]) -> Result<(), Errno> {
    crate::supervisor::sys::setsockopt(fd, level, optname, value)
}

/// The control messages of a send we perform: parsed in the caller's layout
/// (an i386 buffer is rewritten in the native one, as the kernel converts
/// it), and refused when one of them could move the first hop. A malformed
/// buffer is `EINVAL`, as from the kernel.
pub fn vet_control(
    call: &mut Call<'_>,
    syscall: &'static str,
    sock: &Socket,
    control: &mut Vec<u8>,
) -> Result<Outcome, Failure> {
    if control.is_empty() {
        return Ok(Outcome::Allowed);
    }
    let layout: Layout = call.layout();
    let msgs = cmsg::parse(&layout, control).map_err(|_| Failure::Caller(libc::EINVAL))?;
    // What the kernel gets is exactly what was judged.
    *control = cmsg::encode_native(&msgs);
    if crate::testing::disabled("cmsg") {
        return Ok(Outcome::Allowed);
    }
    Ok(match cmsg::refused(&msgs) {
        Some(name) => refuse(call, syscall, sock, name),
        None => Outcome::Allowed,
    })
}
