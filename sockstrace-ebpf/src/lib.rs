//! Types shared by sockstrace's eBPF programs and its userspace.
//!
//! Everything here is plain `#[repr(C)]` data with explicit padding, so the kernel side
//! (`src/main.rs`, built for `bpfel-unknown-none`) and userspace (x86_64, aarch64, ...) agree on
//! every byte. The crate is `no_std` and depends on nothing, so userspace can link it freely.
#![cfg_attr(not(test), no_std)]

/// Ring buffer map (`BPF_MAP_TYPE_RINGBUF`) carrying one [`SockEvent`] per hook invocation.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU array map with one `u64` slot (index 0): events lost because `EVENTS` was full.
pub const DROPPED_MAP: &str = "DROPPED";
/// Default size of `EVENTS` in bytes (a power-of-two multiple of the page size).
pub const EVENTS_BYTE_SIZE: u32 = 1 << 20;

/// Program names (the ELF symbols userspace looks up with `Ebpf::program_mut`).
pub mod programs {
    /// `cgroup/connect4`: IPv4 `connect(2)` (also TCP Fast Open's implicit connect).
    pub const CONNECT4: &str = "connect4";
    /// `cgroup/connect6`: IPv6 `connect(2)`, including v4-mapped destinations.
    pub const CONNECT6: &str = "connect6";
    /// Every program the object holds, for loading them all.
    pub const ALL: &[&str] = &[CONNECT4, CONNECT6];
}

/// What produced a [`SockEvent`] (its `kind` field).
pub mod kind {
    /// IPv4 connect (cgroup sock_addr `connect4`).
    pub const CONNECT4: u32 = 1;
    /// IPv6 connect (cgroup sock_addr `connect6`).
    pub const CONNECT6: u32 = 2;
    /// IPv4 unconnected send: `sendto`/`sendmsg` with an address (cgroup `sendmsg4`).
    pub const SENDMSG4: u32 = 3;
    /// IPv6 unconnected send (cgroup `sendmsg6`).
    pub const SENDMSG6: u32 = 4;
    /// IPv4 bind (cgroup `bind4`).
    pub const BIND4: u32 = 5;
    /// IPv6 bind (cgroup `bind6`).
    pub const BIND6: u32 = 6;
    /// Socket creation (cgroup sock `sock_create`): family, type and protocol only.
    pub const SOCK_CREATE: u32 = 7;
    /// TCP state change (`sock:inet_sock_set_state` tracepoint).
    pub const STATE_CHANGE: u32 = 8;

    /// A stable lowercase name for `kind`, or `"unknown"`.
    pub const fn name(kind: u32) -> &'static str {
        match kind {
            CONNECT4 => "connect4",
            CONNECT6 => "connect6",
            SENDMSG4 => "sendmsg4",
            SENDMSG6 => "sendmsg6",
            BIND4 => "bind4",
            BIND6 => "bind6",
            SOCK_CREATE => "sock_create",
            STATE_CHANGE => "state_change",
            _ => "unknown",
        }
    }
}

/// What the kernel hook did with the operation (a [`SockEvent`]'s `verdict` field).
pub mod verdict {
    /// The operation was let through (the hook returned 1).
    pub const PASS: u8 = 0;
    /// The operation was refused (the hook returned 0; the caller sees `EPERM`).
    pub const DENY: u8 = 1;
}

/// One socket operation seen by a kernel hook.
///
/// Addresses are stored as the kernel keeps them (network byte order bytes): an IPv4 address
/// fills `addr[..4]` and leaves the rest zero; an IPv6 address fills all 16 bytes. `port` is in
/// host byte order. `pid_tgid` and `uid_gid` are the raw helper values (tgid and gid in the
/// upper 32 bits); `comm` is NUL-padded. Fields a hook cannot know stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEvent {
    /// One of the [`kind`] constants.
    pub kind: u32,
    /// `AF_INET`, `AF_INET6`, ...
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`, ...
    pub sock_type: u16,
    /// `bpf_get_socket_cookie`; equals `getsockopt(SO_COOKIE)` on the same socket.
    pub cookie: u64,
    /// `bpf_get_current_cgroup_id` (cgroup v2 inode number).
    pub cgroup_id: u64,
    /// `bpf_get_netns_cookie` of the socket's network namespace.
    pub netns_cookie: u64,
    /// `bpf_get_current_pid_tgid`: tgid << 32 | tid.
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid`: gid << 32 | uid.
    pub uid_gid: u64,
    /// Destination (or bound) address, network byte order.
    pub addr: [u8; 16],
    /// `bpf_get_current_comm`.
    pub comm: [u8; 16],
    /// `IPPROTO_TCP`, `IPPROTO_UDP`, ...
    pub protocol: u16,
    /// Destination (or bound) port, host byte order.
    pub port: u16,
    /// One of the [`verdict`] constants.
    pub verdict: u8,
    /// Explicit padding to the 8-byte alignment; always zero.
    pub _pad: [u8; 3],
}

impl SockEvent {
    /// Size in bytes as both sides see it.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// An all-zero event.
    pub const fn zeroed() -> Self {
        Self {
            kind: 0,
            family: 0,
            sock_type: 0,
            cookie: 0,
            cgroup_id: 0,
            netns_cookie: 0,
            pid_tgid: 0,
            uid_gid: 0,
            addr: [0; 16],
            comm: [0; 16],
            protocol: 0,
            port: 0,
            verdict: 0,
            _pad: [0; 3],
        }
    }

    /// Decodes an event from a ring buffer record, or `None` if `bytes` is too short.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: `bytes` holds at least `SIZE` readable bytes; `read_unaligned` copes with any
        // alignment, and every bit pattern is a valid `SockEvent` (integers and byte arrays).
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// Thread group id (what userspace calls the pid).
    pub const fn pid(&self) -> u32 {
        (self.pid_tgid >> 32) as u32
    }

    /// Thread id.
    pub const fn tid(&self) -> u32 {
        self.pid_tgid as u32
    }

    /// User id.
    pub const fn uid(&self) -> u32 {
        self.uid_gid as u32
    }

    /// Group id.
    pub const fn gid(&self) -> u32 {
        (self.uid_gid >> 32) as u32
    }

    /// `comm` up to its first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        let len = self.comm.iter().position(|&b| b == 0).unwrap_or(self.comm.len());
        &self.comm[..len]
    }
}

// The layout is the ABI: fail the build (for either side) if it changes by accident.
const _: () = {
    assert!(core::mem::size_of::<SockEvent>() == 88);
    assert!(core::mem::align_of::<SockEvent>() == 8);
    assert!(core::mem::offset_of!(SockEvent, cookie) == 8);
    assert!(core::mem::offset_of!(SockEvent, addr) == 48);
    assert!(core::mem::offset_of!(SockEvent, comm) == 64);
    assert!(core::mem::offset_of!(SockEvent, protocol) == 80);
    assert!(core::mem::offset_of!(SockEvent, port) == 82);
    assert!(core::mem::offset_of!(SockEvent, verdict) == 84);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_it_is_given() {
        let mut event = SockEvent::zeroed();
        event.kind = kind::CONNECT6;
        event.pid_tgid = (42 << 32) | 43;
        event.uid_gid = (1000 << 32) | 1001;
        event.port = 9050;
        event.addr[15] = 1;
        event.comm[..4].copy_from_slice(b"curl");
        // SAFETY: `SockEvent` is `repr(C)` plain data without uninitialised padding (the padding
        // is an explicit field), so viewing it as bytes is sound.
        let bytes = unsafe { core::slice::from_raw_parts((&raw const event).cast::<u8>(), SockEvent::SIZE) };
        let decoded = SockEvent::from_bytes(bytes).unwrap();
        assert_eq!(decoded, event);
        assert_eq!((decoded.pid(), decoded.tid()), (42, 43));
        assert_eq!((decoded.uid(), decoded.gid()), (1001, 1000));
        assert_eq!(decoded.comm_bytes(), b"curl");
        assert_eq!(kind::name(decoded.kind), "connect6");
        assert!(SockEvent::from_bytes(&bytes[1..]).is_none());
    }

    #[test]
    fn every_program_name_fits_the_kernel_limit() {
        // BPF_OBJ_NAME_LEN is 16 including the NUL.
        assert!(programs::ALL.iter().all(|name| name.len() < 16));
    }
}
