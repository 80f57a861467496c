//! Which network call a notification is, whatever ABI the caller used:
//! native x86_64, i386 direct calls, or i386 `socketcall` multiplexing.

use super::notif::{Notification, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};

/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// The calling convention of the caller, which fixes its structure layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    X86_64,
    I386,
}

/// The network calls the filter traps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetCall {
    Socket,
    Connect,
    Bind,
    Listen,
    Accept,
    Accept4,
    Sendto,
    Sendmsg,
    Sendmmsg,
    IoUringSetup,
    Setsockopt,
}

impl NetCall {
    pub fn name(self) -> &'static str {
        match self {
            NetCall::Socket => "socket",
            NetCall::Connect => "connect",
            NetCall::Bind => "bind",
            NetCall::Listen => "listen",
            NetCall::Accept => "accept",
            NetCall::Accept4 => "accept4",
            NetCall::Sendto => "sendto",
            NetCall::Sendmsg => "sendmsg",
            NetCall::Sendmmsg => "sendmmsg",
            NetCall::IoUringSetup => "io_uring_setup",
            NetCall::Setsockopt => "setsockopt",
        }
    }
}

/// What a notification asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// A call whose arguments are the notification's registers.
    Direct { abi: Abi, call: NetCall },
    /// i386 `socketcall(call, args)`: the arguments are `count` 32-bit words
    /// at `args` in the caller's memory.
    Socketcall { call: NetCall, args: u64, count: usize },
    /// x32 (this ABI is off in most kernels) or an unknown call/architecture.
    Unsupported,
}

pub fn classify(n: &Notification) -> Classified {
    match n.arch {
        AUDIT_ARCH_X86_64 if n.nr & X32_SYSCALL_BIT == 0 => {
            native(n.nr).map_or(Classified::Unsupported, |call| Classified::Direct { abi: Abi::X86_64, call })
        }
        AUDIT_ARCH_I386 if n.nr == I386_SOCKETCALL => match socketcall(n.args[0]) {
            Some((call, count)) => Classified::Socketcall { call, args: n.args[1] & 0xffff_ffff, count },
            None => Classified::Unsupported,
        },
        AUDIT_ARCH_I386 => {
            i386(n.nr).map_or(Classified::Unsupported, |call| Classified::Direct { abi: Abi::I386, call })
        }
        _ => Classified::Unsupported,
    }
}

fn native(nr: i32) -> Option<NetCall> {
    Some(match i64::from(nr) {
        libc::SYS_socket => NetCall::Socket,
        libc::SYS_connect => NetCall::Connect,
        libc::SYS_bind => NetCall::Bind,
        libc::SYS_listen => NetCall::Listen,
        libc::SYS_accept => NetCall::Accept,
        libc::SYS_accept4 => NetCall::Accept4,
        libc::SYS_sendto => NetCall::Sendto,
        libc::SYS_sendmsg => NetCall::Sendmsg,
        libc::SYS_sendmmsg => NetCall::Sendmmsg,
        libc::SYS_io_uring_setup => NetCall::IoUringSetup,
        libc::SYS_setsockopt => NetCall::Setsockopt,
        _ => return None,
    })
}

/// i386 system call numbers (arch/x86/entry/syscalls/syscall_32.tbl).
const I386_SOCKETCALL: i32 = 102;

fn i386(nr: i32) -> Option<NetCall> {
    Some(match nr {
        359 => NetCall::Socket,
        361 => NetCall::Bind,
        362 => NetCall::Connect,
        363 => NetCall::Listen,
        364 => NetCall::Accept4,
        366 => NetCall::Setsockopt,
        369 => NetCall::Sendto,
        370 => NetCall::Sendmsg,
        345 => NetCall::Sendmmsg,
        425 => NetCall::IoUringSetup,
        _ => return None,
    })
}

/// `socketcall` sub-calls (include/uapi/linux/net.h) and their argument counts.
fn socketcall(call: u64) -> Option<(NetCall, usize)> {
    Some(match call {
        1 => (NetCall::Socket, 3),
        2 => (NetCall::Bind, 3),
        3 => (NetCall::Connect, 3),
        4 => (NetCall::Listen, 2),
        5 => (NetCall::Accept, 3),
        11 => (NetCall::Sendto, 6),
        14 => (NetCall::Setsockopt, 5),
        16 => (NetCall::Sendmsg, 3),
        18 => (NetCall::Accept4, 4),
        20 => (NetCall::Sendmmsg, 4),
        _ => return None,
    })
}

/// Decodes `count` 32-bit socketcall argument words.
pub fn socketcall_args(words: &[u8], count: usize) -> Option<[u64; 6]> {
    if words.len() < count * 4 || count > 6 {
        return None;
    }
    let mut args = [0u64; 6];
    for (i, arg) in args.iter_mut().take(count).enumerate() {
        *arg = u64::from(u32::from_ne_bytes(words[i * 4..i * 4 + 4].try_into().ok()?));
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notif(arch: u32, nr: i32, args: [u64; 6]) -> Notification {
        Notification { id: 1, tid: 1, nr, arch, args }
    }

    #[test]
    fn native_calls() {
        let n = notif(AUDIT_ARCH_X86_64, libc::SYS_connect as i32, [0; 6]);
        assert_eq!(classify(&n), Classified::Direct { abi: Abi::X86_64, call: NetCall::Connect });
        let x32 = notif(AUDIT_ARCH_X86_64, libc::SYS_connect as i32 | X32_SYSCALL_BIT, [0; 6]);
        assert_eq!(classify(&x32), Classified::Unsupported);
        assert_eq!(classify(&notif(AUDIT_ARCH_X86_64, 0, [0; 6])), Classified::Unsupported);
    }

    #[test]
    fn i386_direct_and_multiplexed() {
        assert_eq!(
            classify(&notif(AUDIT_ARCH_I386, 362, [0; 6])),
            Classified::Direct { abi: Abi::I386, call: NetCall::Connect }
        );
        let sc = notif(AUDIT_ARCH_I386, I386_SOCKETCALL, [11, 0x8000, 0, 0, 0, 0]);
        assert_eq!(classify(&sc), Classified::Socketcall { call: NetCall::Sendto, args: 0x8000, count: 6 });
        let recv = notif(AUDIT_ARCH_I386, I386_SOCKETCALL, [10, 0x8000, 0, 0, 0, 0]);
        assert_eq!(classify(&recv), Classified::Unsupported);
        let setsockopt = notif(AUDIT_ARCH_I386, I386_SOCKETCALL, [14, 0x8000, 0, 0, 0, 0]);
        assert_eq!(
            classify(&setsockopt),
            Classified::Socketcall { call: NetCall::Setsockopt, args: 0x8000, count: 5 }
        );
        assert_eq!(
            classify(&notif(AUDIT_ARCH_I386, 366, [0; 6])),
            Classified::Direct { abi: Abi::I386, call: NetCall::Setsockopt }
        );
        assert_eq!(classify(&notif(0xdead, 1, [0; 6])), Classified::Unsupported);
    }

    #[test]
    fn decodes_socketcall_words() {
        let words: Vec<u8> = [3u32, 0xffff_ffff, 16].iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(socketcall_args(&words, 3), Some([3, 0xffff_ffff, 16, 0, 0, 0]));
        assert_eq!(socketcall_args(&words, 4), None);
    }
}
