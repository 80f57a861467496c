//! System call names by ABI and number (libseccomp's tables), and the
//! i386 `socketcall` sub-calls, which go by their own names.

use std::collections::HashMap;

use libseccomp::{ScmpArch, ScmpSyscall};

/// `AUDIT_ARCH_X86_64` and `AUDIT_ARCH_I386`, as notifications carry them.
pub const ARCH_X86_64: u32 = 0xC000_003E;
pub const ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: i32 = 0x4000_0000;
/// i386 `socketcall`.
pub const I386_SOCKETCALL: i32 = 102;

/// The highest number looked up (both ABIs end well below).
const MAX_NR: i32 = 1024;

/// `socketcall` sub-calls by number (include/uapi/linux/net.h).
const SOCKETCALL: [&str; 20] = [
    "socket",
    "bind",
    "connect",
    "listen",
    "accept",
    "getsockname",
    "getpeername",
    "socketpair",
    "send",
    "recv",
    "sendto",
    "recvfrom",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "sendmsg",
    "recvmsg",
    "accept4",
    "recvmmsg",
    "sendmmsg",
];

/// Whether libseccomp knows `name` on x86_64 or i386 (directly, or as a
/// `socketcall`/`ipc` sub-call).
pub fn known_name(name: &str) -> bool {
    [ScmpArch::X8664, ScmpArch::X86]
        .into_iter()
        .any(|arch| ScmpSyscall::from_name_by_arch(name, arch).is_ok())
}

/// Names of both ABIs' calls, looked up once.
pub struct Names {
    by_nr: HashMap<(u32, i32), &'static str>,
    /// `x86_64:462`: numbers this libseccomp has no name for (calls newer
    /// than it), made once each (below `MAX_NR`, so the set stays small).
    unnamed: std::sync::Mutex<HashMap<(u32, i32), &'static str>>,
}

/// Whether the call belongs to neither x86_64 nor i386 (x32, another
/// architecture), or is a `socketcall` with no valid sub-call: the network
/// handlers refuse those as foreign.
pub fn foreign(arch: u32, nr: i32, arg0: u64) -> bool {
    match arch {
        ARCH_X86_64 => nr & X32_SYSCALL_BIT != 0,
        ARCH_I386 => nr == I386_SOCKETCALL && !(1..=SOCKETCALL.len() as u64).contains(&arg0),
        _ => true,
    }
}

/// Which ABI a notification's call belongs to, for the report.
pub fn abi_name(arch: u32, nr: i32) -> &'static str {
    match arch {
        ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => "x32",
        ARCH_X86_64 => "x86_64",
        ARCH_I386 => "i386",
        _ => "other",
    }
}

impl Names {
    /// Builds the table (a few thousand lookups in libseccomp's tables). The
    /// names are kept for the life of the process: reports refer to them.
    pub fn load() -> Self {
        let mut by_nr = HashMap::new();
        for (arch_id, arch) in [(ARCH_X86_64, ScmpArch::X8664), (ARCH_I386, ScmpArch::X86)] {
            for nr in 0..MAX_NR {
                if let Ok(name) = ScmpSyscall::from(nr).get_name_by_arch(arch) {
                    by_nr.insert((arch_id, nr), &*Box::leak(name.into_boxed_str()));
                }
            }
        }
        Names { by_nr, unnamed: Default::default() }
    }

    /// What a call with no name is called in reports: `ABI:NUMBER`.
    pub fn unnamed(&self, arch: u32, nr: i32) -> &'static str {
        if !(0..MAX_NR).contains(&nr) {
            return "unknown";
        }
        let Ok(mut unnamed) = self.unnamed.lock() else { return "unknown" };
        unnamed
            .entry((arch, nr))
            .or_insert_with(|| Box::leak(format!("{}:{nr}", abi_name(arch, nr)).into_boxed_str()))
    }

    /// The call's name: a `socketcall` goes by its sub-call's. `None` for x32
    /// calls and numbers no table knows.
    pub fn name(&self, arch: u32, nr: i32, arg0: u64) -> Option<&'static str> {
        if arch == ARCH_I386 && nr == I386_SOCKETCALL {
            return arg0.checked_sub(1).and_then(|i| SOCKETCALL.get(i as usize)).copied();
        }
        if arch == ARCH_X86_64 && nr & X32_SYSCALL_BIT != 0 {
            return None;
        }
        self.by_nr.get(&(arch, nr)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_abis_and_socketcall_sub_calls() {
        let names = Names::load();
        assert_eq!(names.name(ARCH_X86_64, libc::SYS_ptrace as i32, 0), Some("ptrace"));
        assert_eq!(names.name(ARCH_X86_64, libc::SYS_bpf as i32, 0), Some("bpf"));
        assert_eq!(names.name(ARCH_I386, 26, 0), Some("ptrace"));
        assert_eq!(names.name(ARCH_I386, 192, 0), Some("mmap2"));
        assert_eq!(names.name(ARCH_I386, I386_SOCKETCALL, 3), Some("connect"));
        assert_eq!(names.name(ARCH_I386, I386_SOCKETCALL, 10), Some("recv"));
        assert_eq!(names.name(ARCH_I386, I386_SOCKETCALL, 0), None);
        assert_eq!(names.name(ARCH_I386, I386_SOCKETCALL, 99), None);
        assert_eq!(names.name(ARCH_X86_64, X32_SYSCALL_BIT | 1, 0), None);
        assert!(known_name("mmap2") && known_name("newfstatat") && known_name("recv"));
        assert!(!known_name("no_such_call"));
        assert_eq!(names.unnamed(ARCH_X86_64, 1000), "x86_64:1000");
        assert_eq!(names.unnamed(ARCH_I386, 1000), "i386:1000");
        assert!(std::ptr::eq(names.unnamed(ARCH_I386, 1000), names.unnamed(ARCH_I386, 1000)));
        assert_eq!(names.unnamed(ARCH_I386, 5000), "unknown");
        assert!(foreign(ARCH_X86_64, X32_SYSCALL_BIT | 1, 0) && foreign(0xdead, 1, 0));
        assert!(foreign(ARCH_I386, I386_SOCKETCALL, 0) && !foreign(ARCH_I386, I386_SOCKETCALL, 3));
        assert!(!foreign(ARCH_X86_64, 462, 0));
    }
}
