//! Whether io_uring may be let in: its operations bypass seccomp, so only where the kernel
//! layer gates what they can do. The cgroup hooks gate its connects and sends, but no cgroup
//! hook sees a packet socket created (`IORING_OP_SOCKET` with `AF_PACKET`, or a raw inet
//! socket where the kernel layer only observes). So socket creation must be gated too: by the
//! kernel layer's BPF LSM `socket_create` program where this kernel takes it, or else by the
//! caller's lack of `CAP_NET_RAW` (needed for raw and packet sockets) with no way back to it.

use std::path::Path;

/// `CAP_NET_RAW`'s bit in the capability masks.
const CAP_NET_RAW: u32 = 13;

/// What `/proc/PID/status` says about the task's hold on `CAP_NET_RAW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCapability {
    /// In the permitted set: the task can raise it into its effective set at will.
    pub permitted: bool,
    /// In the bounding set: an `exec` (of a set-user-id or file-capability binary, or as root)
    /// could give it back.
    pub bounding: bool,
    /// `no_new_privs`: no `exec` gives any capability back.
    pub no_new_privs: bool,
}

impl RawCapability {
    /// Whether the task can never create a raw or packet socket (in its network namespace's
    /// owner, the initial user namespace for the host's devices).
    pub fn never(&self) -> bool {
        !self.permitted && (!self.bounding || self.no_new_privs)
    }
}

/// Parses the `CapPrm`, `CapBnd` and `NoNewPrivs` lines of a `/proc/PID/status` text; `None`
/// when one is missing or unreadable (the caller then fails closed).
pub fn parse_status(status: &str) -> Option<RawCapability> {
    let field = |name: &str| {
        status.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    let has_raw =
        |name: &str| u64::from_str_radix(field(name)?, 16).ok().map(|mask| mask & (1 << CAP_NET_RAW) != 0);
    Some(RawCapability {
        permitted: has_raw("CapPrm")?,
        bounding: has_raw("CapBnd")?,
        no_new_privs: field("NoNewPrivs")? == "1",
    })
}

/// Whether the thread `tid` (a pid in our namespace) can never create raw or packet sockets;
/// false when its status cannot be read.
pub fn lacks_net_raw(tid: u32) -> bool {
    let path = Path::new("/proc").join(tid.to_string()).join("status");
    std::fs::read_to_string(path).ok().as_deref().and_then(parse_status).is_some_and(|caps| caps.never())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(prm: &str, bnd: &str, nnp: &str) -> String {
        format!("Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t{prm}\nCapEff:\t{prm}\nCapBnd:\t{bnd}\nNoNewPrivs:\t{nnp}\n")
    }

    #[test]
    fn raw_capability_from_status() {
        let root = parse_status(&status("000001ffffffffff", "000001ffffffffff", "0")).unwrap();
        assert!(root.permitted && root.bounding && !root.never());
        // Dropped from the bounding set and the permitted set (setpriv): never again.
        let dropped = parse_status(&status("000001ffffffdfff", "000001ffffffdfff", "0")).unwrap();
        assert!(!dropped.permitted && !dropped.bounding && dropped.never());
        // An ordinary user without no_new_privs: a set-user-id binary could give it back.
        let user = parse_status(&status("0000000000000000", "000001ffffffffff", "0")).unwrap();
        assert!(!user.never());
        let user_nnp = parse_status(&status("0000000000000000", "000001ffffffffff", "1")).unwrap();
        assert!(user_nnp.never());
        assert_eq!(parse_status("Name:\tx\n"), None);
        assert_eq!(parse_status(&status("zz", "0", "0")), None);
    }

    #[test]
    fn this_process_is_read() {
        let me = std::process::id();
        let path = format!("/proc/{me}/status");
        let caps = parse_status(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(lacks_net_raw(me), caps.never());
    }
}
