//! Types and pure logic shared by sockstrace's eBPF programs and its userspace.
//!
//! Everything here is plain `#[repr(C)]` data with explicit padding, so the kernel side
//! (`sockstrace-ebpf`, built for `bpfel-unknown-none`) and userspace (x86_64, aarch64, ...) agree
//! on every byte. The crate is `no_std` and depends on nothing; its `user` feature (userspace
//! only) implements `aya::Pod` for the map keys and values, so aya reads and writes them as they
//! are.
//!
//! The backstop policy's matching ([`judge_remote`], [`judge_bind`], [`judge_create`],
//! [`judge_listen`]) lives here too, so the very code the kernel runs is unit-tested on the host
//! and cross-checked against `sockstrace::policy::decide`. It avoids anything the verifier
//! cannot follow: no slices, no variable indexing, no panicking paths.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "user")]
mod pod;
pub mod sockopt;

/// Ring buffer map (`BPF_MAP_TYPE_RINGBUF`) carrying one [`SockEvent`] per leak a hook saw.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU array map with one `u64` slot (index 0): events lost because `EVENTS` was full.
pub const DROPPED_MAP: &str = "DROPPED";
/// Array map of [`SOCKETS_MAX_ENTRIES`] [`SockFacts`], a set-associative cache keyed by socket
/// cookie: a socket's facts are in one of the [`SOCKETS_WAYS`] slots [`socket_slot`] names, the
/// one whose `cookie` field is the socket's (see [`SockFacts::cookie`]).
pub const SOCKETS_MAP: &str = "SOCKETS";
/// Array map with one [`Config`] (index 0).
pub const CONFIG_MAP: &str = "CONFIG";
/// Array map of [`MAX_RULES`] [`Rule`]s; the first `Config::rule_count` are in force.
pub const RULES_MAP: &str = "RULES";
/// Default size of `EVENTS` in bytes (a power-of-two multiple of the page size).
pub const EVENTS_BYTE_SIZE: u32 = 1 << 20;
/// Capacity of `SOCKETS` (a power of two): `SOCKETS_MAX_ENTRIES / SOCKETS_WAYS` sets. The
/// object's size, which an audit (every socket of the machine) keeps; a run, whose cgroup's
/// sockets alone take slots, loads it smaller ([`run_socket_sets`]).
pub const SOCKETS_MAX_ENTRIES: u32 = 1 << 16;
/// Slots per set of `SOCKETS`: a new socket takes an empty one, else one no hook used since
/// the set last filled, else the newer of the two (an old socket still in use keeps its slot).
pub const SOCKETS_WAYS: u32 = 2;
/// The object's global that holds the number of `SOCKETS` sets less one (a power of two less
/// one), which the loader sets to match the size it gives the map.
pub const SOCKETS_SET_MASK_GLOBAL: &str = "SOCKETS_SET_MASK";
/// The object's global that says whether anything may be exempt (1, `audit`) or nothing can
/// (0, `run`: the verifier then leaves the exemption checks out).
pub const EXEMPTIONS_GLOBAL: &str = "EXEMPTIONS";
/// The kernel hands socket cookies out in runs of this many consecutive numbers, one run per
/// CPU at a time (`COOKIE_LOCAL_BATCH`).
pub const COOKIE_RUN: u32 = 4096;

/// The `SOCKETS` slot of way `way` (0 or 1) of the set `cookie` falls in, of `set_mask + 1`
/// sets. Cookies are handed out in increasing runs per CPU, so the sockets alive at one time
/// mostly fall in distinct sets.
#[inline(always)]
pub const fn socket_slot(cookie: u64, way: u32, set_mask: u32) -> u32 {
    (cookie as u32 & set_mask) * SOCKETS_WAYS + (way & (SOCKETS_WAYS - 1))
}

/// How many `SOCKETS` sets a run loads on a machine whose programs run on `cpus` CPUs: one
/// cookie run per CPU (rounded up to a power of two, at least two), so that sockets made at
/// the same time on different CPUs fall in distinct sets; at most the object's size. Its
/// memory (zeroed by the kernel when the map is made) is part of every run's start-up: 2.5 MiB
/// on two CPUs, against the object's 10 MiB.
pub const fn run_socket_sets(cpus: u32) -> u32 {
    let most = SOCKETS_MAX_ENTRIES / SOCKETS_WAYS;
    if cpus >= most / COOKIE_RUN {
        return most;
    }
    let runs = if cpus < 2 { 2 } else { cpus.next_power_of_two() };
    runs * COOKIE_RUN
}
/// Capacity of `RULES`: proxies plus allow rules.
pub const MAX_RULES: u32 = 64;
/// Hash map: thread group id (`u32`) -> [`ProcRecord`] of every live process the tracking
/// tracepoints saw exec or fork (audit only; see [`programs::PROC_EXEC`]).
pub const PROCS_MAP: &str = "PROCS";
/// LRU hash map: thread group id -> [`ProcRecord`] of processes that exited lately, so a leak
/// read after its process is gone is still attributed.
pub const GONE_MAP: &str = "GONE";
/// Per-CPU array map with one `u64` slot: process records that did not fit in `PROCS`.
pub const PROCS_LOST_MAP: &str = "PROCS_LOST";
/// Hash map: cgroup v2 id (`u64`) -> 1 for each exempt cgroup (its descendants are exempt too).
pub const EXEMPT_CGROUPS_MAP: &str = "EXEMPT_CGROUPS";
/// Hash map: uid (`u32`) -> 1 for each exempt user.
pub const EXEMPT_UIDS_MAP: &str = "EXEMPT_UIDS";
/// Hash map: executable path, NUL-padded to [`FILENAME_LEN`] bytes -> 1 for each exempt
/// executable (compared with the file name `execve` was given).
pub const EXEMPT_EXES_MAP: &str = "EXEMPT_EXES";
/// LRU hash map: thread group id -> [`ExemptCount`]: what exempt processes did.
pub const EXEMPT_COUNTS_MAP: &str = "EXEMPT_COUNTS";
/// Capacity of `PROCS` (live processes tracked at once).
pub const PROCS_MAX_ENTRIES: u32 = 1 << 15;
/// Capacity of `GONE`.
pub const GONE_MAX_ENTRIES: u32 = 1 << 13;
/// Capacity of each exemption map.
pub const MAX_EXEMPTIONS: u32 = 64;
/// Capacity of `EXEMPT_COUNTS`.
pub const EXEMPT_COUNTS_MAX_ENTRIES: u32 = 1024;
/// Bytes of an executable's path kept in a [`ProcRecord`] (and compared for exemption).
pub const FILENAME_LEN: usize = 128;
/// Cgroup levels the exemption check looks at (a cgroup deeper than this is not exempt by an
/// ancestor beyond it).
pub const EXEMPT_LEVELS: u32 = 32;
/// Hash map (`BPF_MAP_TYPE_HASH`) of the datagram flows that go through the proxy: a program
/// socket's [`UdpPeerKey`] (the local shim address its replies come from) to the original peer.
/// It is also the only way to the shims: the connect and send hooks let a socket's UDP reach a
/// loopback address the rules refuse only where its key is in the map.
pub const UDP_PEERS_MAP: &str = "UDP_PEERS";
/// Entries of [`UDP_PEERS_MAP`].
pub const UDP_PEERS_MAX_ENTRIES: u32 = 1 << 14;
/// LRU hash map: socket cookie (`u64`) -> 1 for each TCP connection established passively (an
/// accepted one), written by sockops. The egress gate asks it for a socket whose `SOCKETS`
/// facts were given to newer sockets: a reply on an inbound connection stays one.
pub const INBOUND_MAP: &str = "INBOUND";
/// Entries of [`INBOUND_MAP`] (an audit's; a run that lets nothing in makes it with one).
pub const INBOUND_MAX_ENTRIES: u32 = 1 << 14;

/// A key of [`UDP_PEERS_MAP`]: the program's socket and the address a datagram arrived from
/// (the shim the supervisor made for it; a connect or send of that socket there is allowed),
/// as the kernel's `bpf_sock_addr` holds them (network-order words; IPv4 as `::ffff:a.b.c.d`;
/// the port in the low 16 bits, network order, as `user_port` reads).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UdpPeerKey {
    pub cookie: u64,
    pub ip: [u32; 4],
    pub port: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

impl UdpPeerKey {
    /// The key for socket `cookie` and `addr`:`port` (port in host order) as the hooks see them:
    /// a connect or send there is one to that socket's own shim when the key is in the map.
    #[inline(always)]
    pub const fn new(cookie: u64, addr: Ip6, port: u16) -> Self {
        Self {
            cookie,
            ip: [
                ((addr.hi >> 32) as u32).to_be(),
                (addr.hi as u32).to_be(),
                ((addr.lo >> 32) as u32).to_be(),
                (addr.lo as u32).to_be(),
            ],
            port: port.to_be() as u32,
            _pad: 0,
        }
    }
}

/// Whether a connect or send the rules refused may still be one to the socket's own shim (UDP
/// through the proxy), worth a `UDP_PEERS` lookup: shims are UDP sockets on loopback.
#[inline(always)]
pub const fn may_be_shim(transport: u8, addr: Ip6, port: u16) -> bool {
    transport == transport::UDP && port != 0 && addr.is_loopback()
}

/// A value of [`UDP_PEERS_MAP`]: the peer the program addressed, in the same layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpPeer {
    pub ip: [u32; 4],
    pub port: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

/// Program names (the ELF symbols userspace looks up with `Ebpf::program_mut`).
pub mod programs {
    /// `cgroup/connect4`: IPv4 `connect(2)` (also TCP Fast Open's implicit connect).
    pub const CONNECT4: &str = "connect4";
    /// `cgroup/connect6`: IPv6 `connect(2)`, including v4-mapped destinations.
    pub const CONNECT6: &str = "connect6";
    /// `cgroup/sendmsg4`: IPv4 UDP `sendto`/`sendmsg`/`sendmmsg` with an address.
    pub const SENDMSG4: &str = "sendmsg4";
    /// `cgroup/sendmsg6`: IPv6 UDP sends with an address.
    pub const SENDMSG6: &str = "sendmsg6";
    /// `cgroup/bind4`: IPv4 `bind(2)`.
    pub const BIND4: &str = "bind4";
    /// `cgroup/bind6`: IPv6 `bind(2)`.
    pub const BIND6: &str = "bind6";
    /// `cgroup/sock_create`: every AF_INET/AF_INET6 `socket(2)`.
    pub const SOCK_CREATE: &str = "sock_create";
    /// `cgroup/post_bind4`: after an IPv4 bind (explicit or not), with the bound address.
    pub const POST_BIND4: &str = "post_bind4";
    /// `cgroup/post_bind6`: after an IPv6 bind.
    pub const POST_BIND6: &str = "post_bind6";
    /// `sockops`: TCP state changes, local address, byte counts, listen.
    pub const SOCK_OPS: &str = "sock_ops";
    /// `cgroup_skb/egress`: the egress gate, judging each outgoing packet as it is.
    pub const EGRESS: &str = "egress";
    /// `lsm/socket_create` (BPF LSM): refuses raw and packet sockets, and families no hook
    /// gates, to tasks of the cgroup, whatever creates them (io_uring too). Optional: loaded
    /// and attached only where the kernel has BPF LSM; not in [`ALL`].
    pub const SOCKET_CREATE_LSM: &str = "socket_create";
    /// `tracepoint/sched/sched_process_exec`: records a process's executable (and marks it
    /// exempt if that is an `--exempt-exe`). Audit only; not in [`ALL`].
    pub const PROC_EXEC: &str = "proc_exec";
    /// `tracepoint/sched/sched_process_fork`: the child inherits its parent's record.
    pub const PROC_FORK: &str = "proc_fork";
    /// `tracepoint/sched/sched_process_exit`: a dead process's record moves to `GONE`.
    pub const PROC_EXIT: &str = "proc_exit";
    /// The process tracking programs and their tracepoints (category, name).
    /// `cgroup/recvmsg4`, `cgroup/recvmsg6`: a datagram relayed through the proxy shows the
    /// original peer as its source (see [`super::UDP_PEERS_MAP`]).
    pub const RECVMSG4: &str = "recvmsg4";
    pub const RECVMSG6: &str = "recvmsg6";
    /// `cgroup/getpeername4`, `cgroup/getpeername6`: the same for a connected socket's peer.
    pub const GETPEERNAME4: &str = "getpeername4";
    pub const GETPEERNAME6: &str = "getpeername6";
    /// `cgroup/setsockopt`: refuses the options that move a packet's first hop (see
    /// [`crate::sockopt`]), by any path (io_uring's setsockopt too).
    pub const SETSOCKOPT: &str = "setsockopt";
    pub const TRACKING: &[(&str, &str, &str)] = &[
        (PROC_EXEC, "sched", "sched_process_exec"),
        (PROC_FORK, "sched", "sched_process_fork"),
        (PROC_EXIT, "sched", "sched_process_exit"),
    ];
    /// Every program the object holds but the optional [`SOCKET_CREATE_LSM`], for loading and
    /// attaching them all.
    pub const ALL: &[&str] = &[
        CONNECT4,
        CONNECT6,
        SENDMSG4,
        SENDMSG6,
        BIND4,
        BIND6,
        SOCK_CREATE,
        POST_BIND4,
        POST_BIND6,
        SOCK_OPS,
        EGRESS,
        RECVMSG4,
        RECVMSG6,
        GETPEERNAME4,
        GETPEERNAME6,
        SETSOCKOPT,
    ];
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
    /// A TCP socket started listening (`sockops` `TCP_LISTEN_CB`); report only.
    pub const LISTEN: u32 = 8;
    /// An outgoing IPv4 packet the egress gate judged (`cgroup_skb/egress`); see
    /// [`SockEvent::detail`](crate::SockEvent::detail) for what was wrong with it.
    pub const EGRESS4: u32 = 9;
    /// An outgoing IPv6 packet the egress gate judged.
    pub const EGRESS6: u32 = 10;
    /// A `setsockopt` of an option that moves the first hop (cgroup `setsockopt`); the event's
    /// option is [`SockEvent::option`](crate::SockEvent::option).
    pub const SETSOCKOPT: u32 = 11;

    /// A stable lowercase name for `kind` (the hook), or `"unknown"`.
    pub const fn name(kind: u32) -> &'static str {
        match kind {
            CONNECT4 => "connect4",
            CONNECT6 => "connect6",
            SENDMSG4 => "sendmsg4",
            SENDMSG6 => "sendmsg6",
            BIND4 => "bind4",
            BIND6 => "bind6",
            SOCK_CREATE => "sock_create",
            LISTEN => "listen",
            EGRESS4 => "egress4",
            EGRESS6 => "egress6",
            SETSOCKOPT => "setsockopt",
            _ => "unknown",
        }
    }
}

/// What the kernel hook did with the operation (a [`SockEvent`]'s `verdict` field).
pub mod verdict {
    /// The operation was let through (observe-only, or a hook that cannot refuse).
    pub const PASS: u8 = 0;
    /// The operation was refused (the hook returned 0; the caller sees `EPERM`).
    pub const DENY: u8 = 1;
}

/// Why the backstop judged an operation a leak (a [`SockEvent`]'s `reason` field). The names
/// are exactly `sockstrace::policy::Reason::as_str` of the same case.
pub mod reason {
    /// Not a leak.
    pub const NONE: u8 = 0;
    pub const DIRECT_TCP: u8 = 1;
    pub const DIRECT_UDP: u8 = 2;
    pub const DIRECT_OTHER: u8 = 3;
    pub const DNS_TCP: u8 = 4;
    pub const DNS_UDP: u8 = 5;
    pub const RAW_SOCKET: u8 = 6;
    pub const INBOUND_BIND: u8 = 7;
    pub const INBOUND_LISTEN: u8 = 8;
    /// An outgoing packet the egress gate refused (see [`crate::egress`] for the detail).
    pub const EGRESS_PACKET: u8 = 9;
    /// A socket option that moves the first hop (see [`crate::sockopt`]).
    pub const ROUTING_OPTION: u8 = 10;

    /// The report's name for `reason`, or `"unknown"`.
    pub const fn name(reason: u8) -> &'static str {
        match reason {
            NONE => "none",
            DIRECT_TCP => "direct-tcp",
            DIRECT_UDP => "direct-udp",
            DIRECT_OTHER => "direct-other",
            DNS_TCP => "dns-tcp",
            DNS_UDP => "dns-udp",
            RAW_SOCKET => "raw-socket",
            INBOUND_BIND => "inbound-bind",
            INBOUND_LISTEN => "inbound-listen",
            EGRESS_PACKET => "egress-packet",
            ROUTING_OPTION => "routing-option",
            _ => "unknown",
        }
    }
}

/// Transports as the policy sees them (mirrors `sockstrace::net::socket::Transport`).
pub mod transport {
    pub const TCP: u8 = 1;
    pub const UDP: u8 = 2;
    pub const RAW: u8 = 3;
    pub const OTHER: u8 = 4;
}

/// [`Rule::flags`] bits.
pub mod rule_flags {
    /// Matches TCP sockets only (proxies: `--proxy` is a TCP endpoint).
    pub const TCP_ONLY: u8 = 1;
    /// Never matches a v4-mapped address (an IPv6 `--allow` network: the policy compares
    /// IPv4 destinations, mapped or not, with IPv4 networks only).
    pub const NOT_V4_MAPPED: u8 = 2;
}

/// The socket ABI numbers the judges need (the same on every Linux architecture).
pub mod abi {
    pub const AF_INET: u16 = 2;
    pub const AF_INET6: u16 = 10;
    pub const SOCK_STREAM: u16 = 1;
    pub const SOCK_DGRAM: u16 = 2;
    pub const SOCK_RAW: u16 = 3;
    pub const IPPROTO_TCP: u16 = 6;
    pub const IPPROTO_UDP: u16 = 17;
    pub const IPPROTO_UDPLITE: u16 = 136;
    pub const IPPROTO_MPTCP: u16 = 262;
    /// DNS: a leak unless a rule or the proxy matches it explicitly.
    pub const DNS_PORT: u16 = 53;
}

/// The backstop's settings (`CONFIG[0]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// 1: refuse leaks (the hook returns 0, the caller gets `EPERM`); 0: observe only.
    pub enforce: u8,
    /// 1: loopback and unspecified destinations are allowed (except DNS).
    pub allow_loopback: u8,
    /// 1: datagram sockets may bind fixed ports on non-loopback addresses (`--incoming allow`).
    pub allow_inbound_bind: u8,
    /// 1: TCP may listen on non-loopback addresses (`--incoming allow`, or peers filtered by
    /// `--allow-incoming-from`, which the supervisor checks at accept).
    pub allow_inbound_listen: u8,
    /// How many entries of `RULES` are in force (at most [`MAX_RULES`]).
    pub rule_count: u32,
    /// The cgroup the programs are attached to: recorded for a socket first seen where no task
    /// is current (an accepted connection, seen by sockops in softirq context).
    pub cgroup_id: u64,
    /// 1: with `enforce`, the egress gate also drops packets to destinations the rules do not
    /// allow (a run: its program's sockets were all judged by the socket-call hooks). 0: it
    /// drops only what no policy allows (options, routing headers, loopback on a device) and
    /// reports destinations (an audit: sockets made before it started, or accepted by
    /// listeners it could not refuse, would be cut).
    pub egress_destinations: u8,
    /// [`exempt`] bits: which exemption maps hold entries (0: nobody is exempt, and the hooks
    /// look nothing up).
    pub exempt: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
    /// Bit `n` set: an exempt cgroup is at level `n` of the hierarchy (the root is level 0);
    /// only those levels of a task's ancestry are looked up.
    pub exempt_levels: u32,
}

/// Exemptions (`audit --exempt-*`): `Config::exempt` bits, and why a process was exempt
/// (`ExemptCount::why`).
pub mod exempt {
    /// Its cgroup, or an ancestor of it, is exempt.
    pub const CGROUP: u8 = 1;
    /// Its uid is exempt.
    pub const UID: u8 = 2;
    /// It runs an exempt executable (marked at exec, inherited at fork).
    pub const EXE: u8 = 4;
}

/// `ProcRecord::flags` bits.
pub mod proc_flags {
    /// The process runs an exempt executable.
    pub const EXEMPT: u32 = 1;
    /// `filename` is the one its last `execve` was given (else inherited or unknown).
    pub const EXECED: u32 = 2;
}

/// What the tracking tracepoints know of one process (`PROCS[tgid]`, `GONE[tgid]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcRecord {
    /// The parent's thread group id at fork; 0 if unknown (the process predates the audit).
    pub ppid: u32,
    /// [`proc_flags`] bits.
    pub flags: u32,
    /// gid << 32 | uid at exec or fork.
    pub uid_gid: u64,
    /// cgroup v2 id at exec or fork.
    pub cgroup_id: u64,
    /// `bpf_ktime_get_ns` at the last exec or fork.
    pub start_ns: u64,
    /// `bpf_ktime_get_ns` at exit (in `GONE`), else 0.
    pub exit_ns: u64,
    /// `comm` at exec or fork, NUL-padded.
    pub comm: [u8; 16],
    /// The file name `execve` was given, NUL-padded (cut at [`FILENAME_LEN`] - 1 bytes).
    pub filename: [u8; FILENAME_LEN],
}

impl ProcRecord {
    /// All zero.
    pub const fn zeroed() -> Self {
        Self {
            ppid: 0,
            flags: 0,
            uid_gid: 0,
            cgroup_id: 0,
            start_ns: 0,
            exit_ns: 0,
            comm: [0; 16],
            filename: [0; FILENAME_LEN],
        }
    }

    /// `comm` up to its first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        until_nul(&self.comm)
    }

    /// `filename` up to its first NUL.
    pub fn filename_bytes(&self) -> &[u8] {
        let len = self.filename.iter().position(|&b| b == 0).unwrap_or(FILENAME_LEN);
        &self.filename[..len]
    }
}

/// What one exempt process did that would otherwise have been a leak (`EXEMPT_COUNTS[tgid]`;
/// tgid 0 for packets whose socket's process is unknown).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExemptCount {
    pub connects: u64,
    pub sends: u64,
    pub binds: u64,
    /// Sockets created (raw and other non-TCP/UDP inet sockets).
    pub sockets: u64,
    /// Packets the egress gate let go.
    pub packets: u64,
    pub uid: u32,
    /// [`exempt`] bits: why.
    pub why: u32,
    pub comm: [u8; 16],
}

impl ExemptCount {
    /// `comm` up to its first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        until_nul(&self.comm)
    }
}

/// One allowed destination (`RULES[i]`): a proxy or an `--allow` network. Build it with
/// [`Rule::new`], which derives the masked network and mask halves the kernel compares with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// The network address (IPv6 form, IPv4 as `::ffff:a.b.c.d`), masked to the prefix.
    pub net: Ip6,
    /// The prefix as a mask.
    pub mask: Ip6,
    /// Port in host byte order; 0 matches any port.
    pub port: u16,
    /// Prefix length over the 128 bits (IPv4 /n is 96 + n); at most 128.
    pub prefix: u8,
    /// [`rule_flags`] bits.
    pub flags: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 4],
}

impl Rule {
    /// A rule for `addr`/`prefix` (clamped to 128), `port` (0: any) and `flags`.
    pub const fn new(addr: [u8; 16], prefix: u8, port: u16, flags: u8) -> Self {
        let prefix = if prefix > 128 { 128 } else { prefix };
        let (mask_hi, mask_lo) = prefix_masks(prefix);
        let addr = Ip6::from_bytes(addr);
        Self {
            net: Ip6 { hi: addr.hi & mask_hi, lo: addr.lo & mask_lo },
            mask: Ip6 { hi: mask_hi, lo: mask_lo },
            port,
            prefix,
            flags,
            _pad: [0; 4],
        }
    }
}

/// An IPv6 address (IPv4 as `::ffff:a.b.c.d`) as two host integers: the first and last eight
/// bytes read big-endian. The judges compare these: a handful of 64-bit operations the verifier
/// follows cheaply, instead of sixteen byte loads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ip6 {
    pub hi: u64,
    pub lo: u64,
}

/// What the kernel knows about one socket (its `SOCKETS` slot, see [`socket_slot`]).
///
/// Addresses are IPv6 bytes (IPv4 as `::ffff:a.b.c.d`, see `family` for the socket's own
/// family); ports are in host byte order. The task fields describe the socket's creator (the
/// task that ran `socket(2)`, or the first task a hook saw using it). Fields a hook could not
/// learn stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFacts {
    /// cgroup v2 id of the socket's cgroup (the creator's cgroup at `socket(2)`).
    pub cgroup_id: u64,
    /// `bpf_get_netns_cookie` of the socket's network namespace.
    pub netns_cookie: u64,
    /// Creator's tgid << 32 | tid.
    pub pid_tgid: u64,
    /// Creator's gid << 32 | uid.
    pub uid_gid: u64,
    /// `connect` calls seen (cgroup connect hooks).
    pub connects: u64,
    /// Sends with an address seen (cgroup sendmsg hooks: UDP).
    pub sends: u64,
    /// Operations the backstop judged leaks.
    pub leaks: u64,
    /// Of those, how many it refused.
    pub denied: u64,
    /// TCP: bytes received, as of the last state change.
    pub bytes_received: u64,
    /// TCP: bytes acknowledged by the peer, as of the last state change.
    pub bytes_acked: u64,
    /// Creator's `comm`, NUL-padded.
    pub comm: [u8; 16],
    /// Last destination (connect or send).
    pub dst_addr: [u8; 16],
    /// Local address once known (bind, post_bind, TCP connect).
    pub src_addr: [u8; 16],
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub dst_port: u16,
    pub src_port: u16,
    /// Last TCP state (`BPF_TCP_*`, 1 = ESTABLISHED ... 12 = NEW_SYN_RECV); 0 unknown.
    pub tcp_state: u8,
    /// How many transitions `tcp_states` holds (at most 8; later ones are not kept).
    pub tcp_state_count: u8,
    /// The first TCP states the socket went through, in order.
    pub tcp_states: [u8; 8],
    /// 1 once the egress gate reported a packet of this socket (it reports one per socket).
    pub egress_reported: u8,
    /// 1 once a hook let an exempt process (`audit --exempt-*`) use this socket around the
    /// proxy: the egress gate lets its packets go too.
    pub exempt: u8,
    /// 1 when a hook used the slot since its set last filled (cleared then): a slot with 0 is
    /// the first to be taken for a new socket.
    pub recent: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
    /// The socket cookie whose facts these are; 0 for an empty slot (the kernel's cookies
    /// start at 1).
    pub cookie: u64,
}

/// One leak seen by a kernel hook.
///
/// The address is IPv6 bytes (IPv4 as `::ffff:a.b.c.d`; `family` is the socket's) and is the
/// destination for connects and sends, the local address for binds and listens; `port` is in
/// host byte order. The task fields describe the task that made the call (for `LISTEN`, which
/// runs where no task is known, the socket's creator); `cgroup_id` is the socket's cgroup.
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
    /// The socket's cgroup v2 id.
    pub cgroup_id: u64,
    /// `bpf_get_netns_cookie` of the socket's network namespace.
    pub netns_cookie: u64,
    /// tgid << 32 | tid.
    pub pid_tgid: u64,
    /// gid << 32 | uid.
    pub uid_gid: u64,
    /// Address (see above).
    pub addr: [u8; 16],
    /// The task's `comm`, NUL-padded.
    pub comm: [u8; 16],
    /// `IPPROTO_TCP`, `IPPROTO_UDP`, ...
    pub protocol: u16,
    /// Port, host byte order.
    pub port: u16,
    /// One of the [`verdict`] constants.
    pub verdict: u8,
    /// One of the [`reason`] constants.
    pub reason: u8,
    /// For [`kind::EGRESS4`]/[`kind::EGRESS6`]: one of the [`egress`] constants; else 0.
    pub detail: u8,
    /// Explicit padding to the 8-byte alignment; always zero.
    pub _pad: u8,
}

impl SockFacts {
    /// Size in bytes as both sides see it.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// All zero.
    pub const fn zeroed() -> Self {
        Self {
            cgroup_id: 0,
            netns_cookie: 0,
            pid_tgid: 0,
            uid_gid: 0,
            connects: 0,
            sends: 0,
            leaks: 0,
            denied: 0,
            bytes_received: 0,
            bytes_acked: 0,
            comm: [0; 16],
            dst_addr: [0; 16],
            src_addr: [0; 16],
            family: 0,
            sock_type: 0,
            protocol: 0,
            dst_port: 0,
            src_port: 0,
            tcp_state: 0,
            tcp_state_count: 0,
            tcp_states: [0; 8],
            egress_reported: 0,
            exempt: 0,
            recent: 0,
            _pad: 0,
            cookie: 0,
        }
    }

    /// Records a TCP state, skipping a repeat of the last one.
    #[inline(always)]
    pub fn push_tcp_state(&mut self, state: u8) {
        if state == 0 || state == self.tcp_state {
            return;
        }
        self.tcp_state = state;
        let count = self.tcp_state_count;
        if count as usize >= self.tcp_states.len() {
            return;
        }
        // The mask repeats the bound in a form the verifier tracks through to the store.
        self.tcp_states[(count & 7) as usize] = state;
        self.tcp_state_count += 1;
    }

    /// The recorded TCP states, in order.
    pub fn tcp_states(&self) -> &[u8] {
        let n = (self.tcp_state_count as usize).min(self.tcp_states.len());
        &self.tcp_states[..n]
    }

    /// Creator's comm up to its first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        until_nul(&self.comm)
    }
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
            reason: 0,
            detail: 0,
            _pad: 0,
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
        until_nul(&self.comm)
    }

    /// For [`kind::SETSOCKOPT`] (which has no address): the first eight bytes of `addr` as
    /// the hook stores `(level, optname)` in them, see [`option_word`].
    pub const fn option(&self) -> (i32, i32) {
        let a = &self.addr;
        (i32::from_le_bytes([a[0], a[1], a[2], a[3]]), i32::from_le_bytes([a[4], a[5], a[6], a[7]]))
    }
}

/// How a [`kind::SETSOCKOPT`] event carries its option: `level` and `optname` as the first
/// eight bytes of `addr`, little-endian, written as one 8-byte word (the kernel side stores it
/// with a single store; see [`SockEvent::option`]).
#[inline(always)]
pub const fn option_word(level: i32, optname: i32) -> u64 {
    ((optname as u32 as u64) << 32 | level as u32 as u64).to_le()
}

fn until_nul(bytes: &[u8; 16]) -> &[u8] {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..len]
}

// The layout is the ABI: fail the build (for either side) if it changes by accident.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Config>() == 24);
    assert!(offset_of!(Config, exempt) == 17);
    assert!(offset_of!(Config, exempt_levels) == 20);
    assert!(size_of::<ProcRecord>() == 56 + FILENAME_LEN);
    assert!(offset_of!(ProcRecord, filename) == 56);
    assert!(size_of::<ExemptCount>() == 64);
    assert!(offset_of!(Config, egress_destinations) == 16);
    assert!(offset_of!(Config, rule_count) == 4);
    assert!(offset_of!(Config, cgroup_id) == 8);
    assert!(size_of::<Ip6>() == 16);
    assert!(size_of::<Rule>() == 40);
    assert!(align_of::<Rule>() == 8);
    assert!(offset_of!(Rule, mask) == 16);
    assert!(offset_of!(Rule, port) == 32);
    assert!(offset_of!(Rule, prefix) == 34);
    assert!(offset_of!(Rule, flags) == 35);
    assert!(size_of::<SockFacts>() == 160);
    assert!(align_of::<SockFacts>() == 8);
    assert!(offset_of!(SockFacts, comm) == 80);
    assert!(offset_of!(SockFacts, dst_addr) == 96);
    assert!(offset_of!(SockFacts, src_addr) == 112);
    assert!(offset_of!(SockFacts, family) == 128);
    assert!(offset_of!(SockFacts, src_port) == 136);
    assert!(offset_of!(SockFacts, tcp_state) == 138);
    assert!(offset_of!(SockFacts, tcp_states) == 140);
    assert!(size_of::<RuleQuery>() == 24);
    assert!(size_of::<SockEvent>() == 88);
    assert!(align_of::<SockEvent>() == 8);
    assert!(offset_of!(SockEvent, cookie) == 8);
    assert!(offset_of!(SockEvent, addr) == 48);
    assert!(offset_of!(SockEvent, comm) == 64);
    assert!(offset_of!(SockEvent, protocol) == 80);
    assert!(offset_of!(SockEvent, port) == 82);
    assert!(offset_of!(SockEvent, verdict) == 84);
    assert!(offset_of!(SockEvent, reason) == 85);
    assert!(offset_of!(SockEvent, detail) == 86);
    assert!(offset_of!(SockFacts, egress_reported) == 148);
    assert!(offset_of!(SockFacts, recent) == 150);
    assert!(offset_of!(SockFacts, cookie) == 152);
    assert!(size_of::<UdpPeerKey>() == 32);
    assert!(size_of::<UdpPeer>() == 24);
};

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// `::ffff:a.b.c.d` for the IPv4 address whose network-order bytes are `v4`.
#[inline(always)]
pub const fn v4_mapped(v4: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3]]
}

/// The `lo` half of `::ffff:0.0.0.0`.
const V4_MAPPED_LO: u64 = 0xffff_0000_0000;

impl Ip6 {
    /// From the 16 address bytes.
    #[inline(always)]
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self {
            hi: u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            lo: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        }
    }

    /// The 16 address bytes.
    #[inline(always)]
    pub const fn to_bytes(self) -> [u8; 16] {
        let h = self.hi.to_be_bytes();
        let l = self.lo.to_be_bytes();
        [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]]
    }

    /// From an IPv4 word as the kernel stores it (`user_ip4`, `src_ip4`: memory bytes in
    /// network order), mapped into IPv6.
    #[inline(always)]
    pub const fn from_v4_word(word: u32) -> Self {
        Self { hi: 0, lo: V4_MAPPED_LO | u32::from_be(word) as u64 }
    }

    /// From the kernel's four network-order `u32` words (`user_ip6`, `src_ip6`, `local_ip6`).
    #[inline(always)]
    pub const fn from_words(w: [u32; 4]) -> Self {
        Self {
            hi: ((u32::from_be(w[0]) as u64) << 32) | u32::from_be(w[1]) as u64,
            lo: ((u32::from_be(w[2]) as u64) << 32) | u32::from_be(w[3]) as u64,
        }
    }

    /// Whether this is `::ffff:a.b.c.d`.
    #[inline(always)]
    pub const fn is_v4_mapped(self) -> bool {
        self.hi == 0 && (self.lo >> 32) == 0xffff
    }

    /// 127.0.0.0/8 (mapped) or `::1`.
    #[inline(always)]
    pub const fn is_loopback(self) -> bool {
        self.hi == 0 && ((self.lo >> 24) == (V4_MAPPED_LO | 127 << 24) >> 24 || self.lo == 1)
    }

    /// `0.0.0.0` (mapped) or `::`.
    #[inline(always)]
    pub const fn is_unspecified(self) -> bool {
        self.hi == 0 && (self.lo == 0 || self.lo == V4_MAPPED_LO)
    }
}

/// Masks over the two halves of an address for a prefix length (clamped to 128).
#[inline(always)]
pub const fn prefix_masks(prefix: u8) -> (u64, u64) {
    let p = if prefix > 128 { 128 } else { prefix as u32 };
    let hi = if p == 0 {
        0
    } else if p >= 64 {
        u64::MAX
    } else {
        u64::MAX << (64 - p)
    };
    let lo = if p <= 64 {
        0
    } else if p >= 128 {
        u64::MAX
    } else {
        u64::MAX << (128 - p)
    };
    (hi, lo)
}

// ---------------------------------------------------------------------------------------------
// Judges (the backstop policy). They return a `reason` code: `reason::NONE` means allowed.
// ---------------------------------------------------------------------------------------------

/// The policy's transport for a socket type and (resolved) protocol.
///
/// The type decides first: a `SOCK_RAW` socket is raw whatever protocol it names (raw
/// `IPPROTO_UDP` writes whole IP packets, not UDP datagrams), and a protocol counts only on the
/// type that carries it (TCP and MPTCP on streams, UDP and UDP-Lite on datagrams).
#[inline(always)]
pub const fn transport_of(sock_type: u16, protocol: u16) -> u8 {
    use abi::*;
    match sock_type {
        SOCK_RAW => transport::RAW,
        SOCK_STREAM => match protocol {
            0 | IPPROTO_TCP | IPPROTO_MPTCP => transport::TCP,
            _ => transport::OTHER,
        },
        SOCK_DGRAM => match protocol {
            0 | IPPROTO_UDP | IPPROTO_UDPLITE => transport::UDP,
            _ => transport::OTHER,
        },
        _ => transport::OTHER,
    }
}

/// Whether `rule` lets a socket of transport `transport` reach `addr`:`port`; `mapped` is
/// `addr.is_v4_mapped()`, computed once by the caller.
#[inline(always)]
pub const fn rule_matches(rule: &Rule, addr: Ip6, mapped: bool, port: u16, transport: u8) -> bool {
    let net = ((addr.hi ^ rule.net.hi) & rule.mask.hi) | ((addr.lo ^ rule.net.lo) & rule.mask.lo);
    net == 0
        && (rule.port == 0 || rule.port == port)
        && (rule.flags & rule_flags::TCP_ONLY == 0 || transport == transport::TCP)
        && (rule.flags & rule_flags::NOT_V4_MAPPED == 0 || !mapped)
}

/// One connect or send as the rules see it: what [`RuleQuery::matches`] compares every rule
/// with. `repr(C)`: the kernel keeps it on the stack and hands `bpf_loop`'s callback a pointer
/// to it.
///
/// It holds the socket's raw type and protocol, not its transport, and works out what it needs
/// where it needs it: in the kernel, a value computed before the walk would be a known constant
/// on each of the verifier's paths, and every one of them would be checked separately.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleQuery {
    pub addr: Ip6,
    /// Port in host byte order.
    pub port: u16,
    pub sock_type: u16,
    /// The socket's (resolved) protocol.
    pub protocol: u16,
    /// Set to 1 by whoever finds a matching rule.
    pub matched: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
}

impl RuleQuery {
    #[inline(always)]
    pub const fn new(addr: Ip6, port: u16, sock_type: u16, protocol: u16) -> Self {
        Self { addr, port, sock_type, protocol, matched: 0, _pad: 0 }
    }

    /// [`RuleQuery::matches`] as a number, 1 or 0, worked out without a branch: the kernel's
    /// rule walk runs it in `bpf_loop`'s callback, which the verifier walks over and over until
    /// its states settle, once per way through it (the comparisons of the address, port, flags
    /// and transport made a dozen ways, 3,400 instructions of the egress gate's walk).
    ///
    /// `hide` must return its argument. The kernel passes one that LLVM cannot see through, so
    /// that it does not turn the arithmetic back into comparisons (branches, in BPF).
    #[inline(always)]
    pub fn match_bit(&self, rule: &Rule, hide: impl Fn(u64) -> u64) -> u64 {
        use abi::*;
        // 1 if `x` is 0: for any other `x`, `x` or its negation has the top bit set.
        let is_zero = |x: u64| 1 ^ ((x | hide(x.wrapping_neg())) >> 63);
        let (addr, port) = (self.addr, self.port as u64);
        let net = ((addr.hi ^ rule.net.hi) & rule.mask.hi) | ((addr.lo ^ rule.net.lo) & rule.mask.lo);
        let any_port = is_zero(rule.port as u64);
        let same_port = is_zero(rule.port as u64 ^ port);
        let protocol = self.protocol as u64;
        let tcp = is_zero(self.sock_type as u64 ^ SOCK_STREAM as u64)
            & (is_zero(protocol)
                | is_zero(protocol ^ IPPROTO_TCP as u64)
                | is_zero(protocol ^ IPPROTO_MPTCP as u64));
        let mapped = is_zero(addr.hi) & is_zero((addr.lo >> 32) ^ 0xffff);
        let flags = rule.flags as u64;
        let transport_ok = is_zero(flags & rule_flags::TCP_ONLY as u64) | tcp;
        let family_ok = is_zero(flags & rule_flags::NOT_V4_MAPPED as u64) | (mapped ^ 1);
        is_zero(net) & (any_port | same_port) & transport_ok & family_ok
    }

    /// The port, type and protocol in one word (16 bits each), for BPF functions, which take
    /// at most five arguments; [`RuleQuery::unpack`] makes the query again.
    #[inline(always)]
    pub const fn pack_socket(&self) -> u64 {
        self.port as u64 | (self.sock_type as u64) << 16 | (self.protocol as u64) << 32
    }

    /// The query of `addr` and a word of [`RuleQuery::pack_socket`], not matched yet.
    #[inline(always)]
    pub const fn unpack(addr: Ip6, socket: u64) -> Self {
        Self::new(addr, socket as u16, (socket >> 16) as u16, (socket >> 32) as u16)
    }

    /// The policy's transport for the socket.
    #[inline(always)]
    pub const fn transport(&self) -> u8 {
        transport_of(self.sock_type, self.protocol)
    }

    /// Whether `rule` lets this traffic through.
    #[inline(always)]
    pub const fn matches(&self, rule: &Rule) -> bool {
        rule_matches(rule, self.addr, self.addr.is_v4_mapped(), self.port, self.transport())
    }
}

/// How many entries of `RULES` are in force: `config.rule_count`, at most [`MAX_RULES`].
#[inline(always)]
pub const fn rules_in_force(config: &Config) -> u32 {
    if config.rule_count < MAX_RULES {
        config.rule_count
    } else {
        MAX_RULES
    }
}

/// The leak reason for traffic to `port` over `transport` that nothing allowed.
#[inline(always)]
pub const fn remote_leak_reason(transport: u8, port: u16) -> u8 {
    let dns = port == abi::DNS_PORT;
    match transport {
        transport::TCP if dns => reason::DNS_TCP,
        transport::UDP if dns => reason::DNS_UDP,
        transport::TCP => reason::DIRECT_TCP,
        transport::UDP => reason::DIRECT_UDP,
        transport::RAW => reason::RAW_SOCKET,
        _ => reason::DIRECT_OTHER,
    }
}

/// A connect or a send with an address to `addr`:`port` on a socket of `sock_type` and
/// (resolved) `protocol`: allowed by a rule (proxies are TCP-only rules), by `allow_loopback`
/// (never DNS), or a leak. `rule_at(i)` yields `RULES[i]`.
///
/// The kernel runs the same steps, with the walk over the rules done by `bpf_loop` (so the
/// verifier checks one step, not [`MAX_RULES`] of them): [`RuleQuery::matches`] on each of the
/// first [`rules_in_force`] rules until one matches, then [`remote_allowed`] and, for a leak,
/// [`judge_remote_matched`].
pub fn judge_remote<F: FnMut(u32) -> Option<Rule>>(
    config: &Config,
    mut rule_at: F,
    addr: Ip6,
    port: u16,
    sock_type: u16,
    protocol: u16,
) -> u8 {
    let mut query = RuleQuery::new(addr, port, sock_type, protocol);
    for i in 0..rules_in_force(config) {
        if rule_at(i).is_some_and(|rule| query.matches(&rule)) {
            query.matched = 1;
            break;
        }
    }
    judge_remote_matched(config, &query)
}

/// Whether `query` is allowed once the rules have been searched (`query.matched` set if one
/// matched): by a rule, or by `allow_loopback` (never DNS).
#[inline(always)]
pub const fn remote_allowed(config: &Config, query: &RuleQuery) -> bool {
    let (addr, port) = (query.addr, query.port);
    query.matched != 0
        || (config.allow_loopback != 0
            && (addr.is_loopback() || addr.is_unspecified())
            && port != abi::DNS_PORT)
}

/// The verdict on `query` once the rules have been searched: [`reason::NONE`] if
/// [`remote_allowed`], else the leak's reason.
#[inline(always)]
pub const fn judge_remote_matched(config: &Config, query: &RuleQuery) -> u8 {
    if remote_allowed(config, query) {
        reason::NONE
    } else {
        remote_leak_reason(query.transport(), query.port)
    }
}

/// A bind to `addr`:`port`: stream sockets, port 0 and loopback are fine; a datagram socket on
/// a fixed port of a non-loopback address is open to inbound traffic, unless `allow_inbound`.
#[inline(always)]
pub const fn judge_bind(sock_type: u16, addr: Ip6, port: u16, allow_inbound: bool) -> u8 {
    if sock_type == abi::SOCK_STREAM || port == 0 || addr.is_loopback() || allow_inbound {
        reason::NONE
    } else {
        reason::INBOUND_BIND
    }
}

/// A listen on `addr`: only loopback listeners are fine, unless `allow_inbound`.
#[inline(always)]
pub const fn judge_listen(addr: Ip6, allow_inbound: bool) -> u8 {
    if addr.is_loopback() || allow_inbound {
        reason::NONE
    } else {
        reason::INBOUND_LISTEN
    }
}

/// `socket(2)`: an inet socket whose traffic the cgroup hooks cannot gate is a leak from the
/// start: raw sockets (as for the supervisor), and, stricter than the supervisor (which judges
/// each of their sends), ICMP "ping" and other non-TCP/UDP sockets: their `connect` passes the
/// connect hook but their sends pass no sock_addr hook (seen on 6.18), so a send the seccomp
/// layer never sees (io_uring) would go unnoticed.
#[inline(always)]
pub const fn judge_create(family: u16, sock_type: u16, protocol: u16) -> u8 {
    if family != abi::AF_INET && family != abi::AF_INET6 {
        return reason::NONE;
    }
    if protocol == abi::IPPROTO_UDPLITE {
        // UDP-Lite's connect runs no cgroup connect hook (the protocol has no
        // pre_connect), and its connected sends no sendmsg hook: a connect by
        // io_uring, which seccomp never sees, would go unjudged.
        return reason::DIRECT_OTHER;
    }
    match transport_of(sock_type, protocol) {
        transport::TCP | transport::UDP => reason::NONE,
        transport::RAW => reason::RAW_SOCKET,
        _ => reason::DIRECT_OTHER,
    }
}

// ---------------------------------------------------------------------------------------------
// The egress gate: each outgoing packet as it leaves (cgroup_skb/egress)
// ---------------------------------------------------------------------------------------------

/// What the egress gate found wrong with a packet (a [`SockEvent`]'s `detail` field for
/// [`kind::EGRESS4`] and [`kind::EGRESS6`]), and the facts it judges with.
pub mod egress {
    /// Nothing: the packet may leave.
    pub const NONE: u8 = 0;
    /// An IPv4 header with options (IHL > 5): source routes (LSRR, SSRR) and the like.
    pub const IPV4_OPTIONS: u8 = 1;
    /// An IPv6 routing header (type 0, 2 or 4): the first hop is not the judged destination.
    pub const IPV6_ROUTING_HEADER: u8 = 2;
    /// More IPv6 extension headers than the gate walks ([`MAX_EXTENSION_HEADERS`]).
    pub const IPV6_HEADER_CHAIN: u8 = 3;
    /// A loopback destination or source on a device that is not the loopback device
    /// (`SO_BINDTODEVICE`, `IP_UNICAST_IF`, `IP_PKTINFO`, ...).
    pub const LOOPBACK_ON_DEVICE: u8 = 4;
    /// A destination the backstop policy does not allow.
    pub const DESTINATION: u8 = 5;
    /// A header the gate could not read (a packet shorter than its headers claim).
    pub const MALFORMED: u8 = 6;

    /// The loopback device's index: the same in every network namespace
    /// (`LOOPBACK_IFINDEX` in the kernel's `include/net/flow.h`).
    pub const LOOPBACK_IFINDEX: u32 = 1;
    /// How many IPv6 extension headers the gate walks before giving up on the packet.
    pub const MAX_EXTENSION_HEADERS: u32 = 4;

    /// IPv6 next-header values the gate knows.
    pub const NEXTHDR_HOP: u8 = 0;
    pub const NEXTHDR_TCP: u8 = 6;
    pub const NEXTHDR_UDP: u8 = 17;
    pub const NEXTHDR_ROUTING: u8 = 43;
    pub const NEXTHDR_FRAGMENT: u8 = 44;
    pub const NEXTHDR_DEST: u8 = 60;
    pub const NEXTHDR_UDPLITE: u8 = 136;

    /// The report's name for `detail`, or `"unknown"`.
    pub const fn name(detail: u8) -> &'static str {
        match detail {
            NONE => "none",
            IPV4_OPTIONS => "ipv4-options",
            IPV6_ROUTING_HEADER => "ipv6-routing-header",
            IPV6_HEADER_CHAIN => "ipv6-header-chain",
            LOOPBACK_ON_DEVICE => "loopback-on-device",
            DESTINATION => "destination",
            MALFORMED => "malformed",
            _ => "unknown",
        }
    }

    /// One step of the IPv6 extension header walk at a header of type `nexthdr`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Step {
        /// An extension header the gate skips: `(hdrlen + 1) * 8` bytes (`fixed_len` false),
        /// or 8 bytes (a fragment header, `fixed_len` true).
        Skip { fixed_len: bool },
        /// A routing header: the packet is refused.
        Routing,
        /// The upper-layer header (TCP, UDP, anything else): the walk ends here.
        Upper,
    }

    /// What the walk does at a header of type `nexthdr`.
    #[inline(always)]
    pub const fn step(nexthdr: u8) -> Step {
        match nexthdr {
            NEXTHDR_HOP | NEXTHDR_DEST => Step::Skip { fixed_len: false },
            NEXTHDR_FRAGMENT => Step::Skip { fixed_len: true },
            NEXTHDR_ROUTING => Step::Routing,
            _ => Step::Upper,
        }
    }

    /// Whether an upper-layer protocol carries ports the policy judges (the first four bytes
    /// of its header are source and destination port).
    #[inline(always)]
    pub const fn has_ports(protocol: u8) -> bool {
        matches!(protocol, NEXTHDR_TCP | NEXTHDR_UDP | NEXTHDR_UDPLITE)
    }
}

/// The loopback check of the egress gate: a packet from or to a loopback address (127/8,
/// `::1`, `::ffff:127.x`) must leave on the loopback device (`ifindex`, the output device).
#[inline(always)]
pub const fn loopback_misrouted(src: Ip6, dst: Ip6, ifindex: u32) -> bool {
    ifindex != egress::LOOPBACK_IFINDEX && (src.is_loopback() || dst.is_loopback())
}

/// The fast path of the egress gate: a packet without options or extension headers from a
/// loopback socket to a loopback address on the loopback device passes at once (the connect and
/// send hooks judged its destination already).
#[inline(always)]
pub const fn egress_fast_pass(dst: Ip6, ifindex: u32) -> bool {
    ifindex == egress::LOOPBACK_IFINDEX && dst.is_loopback()
}

/// Whether a TCP packet to a peer the policy does not allow may still leave as a reply on an
/// inbound connection: the policy lets TCP listen beyond loopback (`allow_inbound_listen`), and
/// the packet is the listener's (a SYN-ACK: `listener`), or goes to the socket's own peer on a
/// socket no connect hook ever judged (`connects == 0`, an accepted connection).
#[inline(always)]
pub const fn egress_reply_allowed(config: &Config, listener: bool, to_peer: bool, connects: u64) -> bool {
    config.allow_inbound_listen != 0 && (listener || (to_peer && connects == 0))
}

/// The BPF LSM `socket_create` judge: whether a socket of `family` and `sock_type` (without
/// its flags) is one the other hooks could not gate once it exists: raw sockets of any family,
/// and families other than unix, inet, inet6 and netlink (packet sockets above all).
#[inline(always)]
pub const fn socket_family_refused(family: u32, sock_type: u32) -> bool {
    const AF_UNIX: u32 = 1;
    const AF_NETLINK: u32 = 16;
    let local_or_gated = matches!(family, AF_UNIX | AF_NETLINK)
        || family == abi::AF_INET as u32
        || family == abi::AF_INET6 as u32;
    let raw = sock_type == abi::SOCK_RAW as u32 && family != AF_NETLINK && family != AF_UNIX;
    !local_or_gated || raw
}

/// `BPF_TCP_*` state names (as in `include/net/tcp_states.h`), or `"UNKNOWN"`.
pub const fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branchless_rule_match_agrees_with_the_rule_match() {
        // Addresses and rules near each other's edges: v4-mapped and not, prefixes across both
        // halves, ports equal or not or any, every flag; every socket type and protocol that
        // steers the transport, and some that do not.
        let addrs = [
            v4(127, 0, 0, 1),
            v4(10, 1, 2, 3),
            v4(10, 255, 0, 0),
            Ip6 { hi: 0, lo: 0 },
            Ip6 { hi: 0, lo: 1 },
            Ip6 { hi: 0xfd77 << 48, lo: 2 },
            Ip6 { hi: 0, lo: 0x0000_fffe_0a01_0203 },
            Ip6 { hi: 1, lo: V4_MAPPED_LO | 0x0a01_0203 },
            Ip6 { hi: u64::MAX, lo: u64::MAX },
        ];
        let types = [0, abi::SOCK_STREAM, abi::SOCK_DGRAM, abi::SOCK_RAW, 5, 10, 0x101, u16::MAX];
        let protocols = [
            0,
            abi::IPPROTO_TCP,
            abi::IPPROTO_UDP,
            abi::IPPROTO_MPTCP,
            abi::IPPROTO_UDPLITE,
            1,
            255,
            256 + 6,
            u16::MAX,
        ];
        let mut rules = Vec::new();
        for net in addrs {
            for prefix in [0, 1, 8, 63, 64, 65, 96, 104, 120, 127, 128] {
                for port in [0, 80, 9050, u16::MAX] {
                    for flags in 0..4 {
                        rules.push(Rule::new(net.to_bytes(), prefix, port, flags));
                    }
                }
            }
        }
        let mut compared = 0u64;
        for rule in &rules {
            for addr in addrs {
                for port in [0, 80, 9050, u16::MAX] {
                    for sock_type in types {
                        for protocol in protocols {
                            let query = RuleQuery::new(addr, port, sock_type, protocol);
                            let bit = query.match_bit(rule, |x| x);
                            assert_eq!(bit, u64::from(query.matches(rule)), "{rule:?} {query:?}");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 1_000_000, "{compared}");
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Ip6 {
        Ip6::from_bytes(v4_mapped([a, b, c, d]))
    }

    fn v6(text: &str) -> Ip6 {
        Ip6::from_bytes(text.parse::<std::net::Ipv6Addr>().unwrap().octets())
    }

    #[test]
    fn decodes_what_it_is_given() {
        let mut event = SockEvent::zeroed();
        event.kind = kind::CONNECT6;
        event.pid_tgid = (42 << 32) | 43;
        event.uid_gid = (1000 << 32) | 1001;
        event.port = 9050;
        event.addr[15] = 1;
        event.reason = reason::DNS_UDP;
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
        assert_eq!(reason::name(decoded.reason), "dns-udp");
        assert!(SockEvent::from_bytes(&bytes[1..]).is_none());
    }

    #[test]
    fn every_program_name_fits_the_kernel_limit() {
        // BPF_OBJ_NAME_LEN is 16 including the NUL.
        assert!(programs::ALL.iter().all(|name| name.len() < 16));
    }

    #[test]
    fn kernel_words_become_address_bytes() {
        // user_ip4 of 127.0.0.2 holds the bytes 7f 00 00 02 in memory.
        let word = u32::from_ne_bytes([127, 0, 0, 2]);
        assert_eq!(Ip6::from_v4_word(word), v4(127, 0, 0, 2));
        let bytes = "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let words =
            [0, 4, 8, 12].map(|i| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]));
        assert_eq!(Ip6::from_words(words), v6("2001:db8::1"));
        assert_eq!(Ip6::from_words(words).to_bytes(), bytes);
    }

    #[test]
    fn classifies_addresses() {
        assert!(v4(1, 2, 3, 4).is_v4_mapped());
        assert!(!v6("::1").is_v4_mapped());
        assert!(!v6("::102:304").is_v4_mapped());
        assert!(v4(127, 9, 9, 9).is_loopback() && v6("::1").is_loopback());
        assert!(!v4(128, 0, 0, 1).is_loopback() && !v6("::2").is_loopback());
        assert!(!v6("::7f00:1").is_loopback() && !v6("1::ffff:7f00:1").is_loopback());
        assert!(v4(0, 0, 0, 0).is_unspecified() && v6("::").is_unspecified());
        assert!(!v4(0, 0, 0, 1).is_unspecified());
    }

    #[test]
    fn prefix_masks_cover_every_length() {
        assert_eq!(prefix_masks(0), (0, 0));
        assert_eq!(prefix_masks(1), (1 << 63, 0));
        assert_eq!(prefix_masks(64), (u64::MAX, 0));
        assert_eq!(prefix_masks(65), (u64::MAX, 1 << 63));
        assert_eq!(prefix_masks(104), (u64::MAX, 0xffff_ffff_ff00_0000));
        assert_eq!(prefix_masks(128), (u64::MAX, u64::MAX));
        assert_eq!(prefix_masks(200), (u64::MAX, u64::MAX));
    }

    #[test]
    fn rules_match_network_port_transport_and_family() {
        let matches = |rule: &Rule, addr: Ip6, port, transport| {
            rule_matches(rule, addr, addr.is_v4_mapped(), port, transport)
        };
        // The host bits of the network are masked away.
        let net10 = Rule::new(v4_mapped([10, 9, 9, 9]), 104, 0, 0);
        assert_eq!(net10.net, v4(10, 0, 0, 0));
        assert!(matches(&net10, v4(10, 1, 2, 3), 80, transport::UDP));
        assert!(!matches(&net10, v4(11, 1, 2, 3), 80, transport::UDP));
        let proxy = Rule::new(v4_mapped([127, 0, 0, 1]), 128, 9050, rule_flags::TCP_ONLY);
        assert!(matches(&proxy, v4(127, 0, 0, 1), 9050, transport::TCP));
        assert!(!matches(&proxy, v4(127, 0, 0, 1), 9050, transport::UDP));
        assert!(!matches(&proxy, v4(127, 0, 0, 1), 9051, transport::TCP));
        assert!(!matches(&proxy, v4(127, 0, 0, 2), 9050, transport::TCP));
        let all6 = Rule::new([0; 16], 0, 0, rule_flags::NOT_V4_MAPPED);
        assert!(matches(&all6, v6("2001:db8::1"), 1, transport::TCP));
        assert!(!matches(&all6, v4(1, 2, 3, 4), 1, transport::TCP));
        let net6 = Rule::new(v6("2001:db8::").to_bytes(), 32, 443, 0);
        assert!(matches(&net6, v6("2001:db8:ffff::1"), 443, transport::TCP));
        assert!(!matches(&net6, v6("2001:db9::1"), 443, transport::TCP));
    }

    #[test]
    fn remote_judge_follows_rules_then_loopback_then_leaks() {
        let rules = [Rule::new(v4_mapped([127, 0, 0, 1]), 128, 9050, rule_flags::TCP_ONLY)];
        let rule_at = |i: u32| rules.get(i as usize).copied();
        let mut config = Config { rule_count: 1, ..Config::default() };
        // A socket of each transport.
        let judge = |c: &Config, a: Ip6, p, t| {
            let (sock_type, protocol) = match t {
                transport::TCP => (abi::SOCK_STREAM, 0),
                transport::UDP => (abi::SOCK_DGRAM, abi::IPPROTO_UDP),
                _ => (abi::SOCK_RAW, 1),
            };
            judge_remote(c, rule_at, a, p, sock_type, protocol)
        };
        assert_eq!(judge(&config, v4(127, 0, 0, 1), 9050, transport::TCP), reason::NONE);
        assert_eq!(judge(&config, v4(127, 0, 0, 2), 80, transport::TCP), reason::DIRECT_TCP);
        assert_eq!(judge(&config, v4(127, 0, 0, 1), 9050, transport::UDP), reason::DIRECT_UDP);
        assert_eq!(judge(&config, v4(8, 8, 8, 8), 53, transport::UDP), reason::DNS_UDP);
        assert_eq!(judge(&config, v4(8, 8, 8, 8), 53, transport::TCP), reason::DNS_TCP);
        assert_eq!(judge(&config, v4(8, 8, 8, 8), 0, transport::RAW), reason::RAW_SOCKET);
        config.allow_loopback = 1;
        assert_eq!(judge(&config, v4(127, 0, 0, 2), 80, transport::TCP), reason::NONE);
        assert_eq!(judge(&config, v6("::"), 80, transport::TCP), reason::NONE);
        assert_eq!(judge(&config, v4(127, 0, 0, 53), 53, transport::UDP), reason::DNS_UDP);
        // A rule count beyond the table is harmless.
        config.rule_count = 1000;
        assert_eq!(judge(&config, v4(1, 1, 1, 1), 80, transport::TCP), reason::DIRECT_TCP);
    }

    #[test]
    fn bind_listen_and_create_judges() {
        use abi::*;
        assert_eq!(judge_bind(SOCK_STREAM, v4(0, 0, 0, 0), 8080, false), reason::NONE);
        assert_eq!(judge_bind(SOCK_DGRAM, v4(0, 0, 0, 0), 0, false), reason::NONE);
        assert_eq!(judge_bind(SOCK_DGRAM, v4(127, 0, 0, 1), 5353, false), reason::NONE);
        assert_eq!(judge_bind(SOCK_DGRAM, v4(0, 0, 0, 0), 5353, false), reason::INBOUND_BIND);
        assert_eq!(judge_bind(SOCK_DGRAM, v4(0, 0, 0, 0), 5353, true), reason::NONE);
        assert_eq!(judge_listen(v4(127, 0, 0, 1), false), reason::NONE);
        assert_eq!(judge_listen(v6("::"), false), reason::INBOUND_LISTEN);
        assert_eq!(judge_listen(v6("::"), true), reason::NONE);
        assert_eq!(judge_create(AF_INET, SOCK_STREAM, IPPROTO_TCP), reason::NONE);
        assert_eq!(judge_create(AF_INET6, SOCK_DGRAM, 0), reason::NONE);
        assert_eq!(judge_create(AF_INET, SOCK_RAW, 1), reason::RAW_SOCKET);
        assert_eq!(judge_create(AF_INET, SOCK_DGRAM, 1), reason::DIRECT_OTHER);
        assert_eq!(judge_create(AF_INET6, SOCK_DGRAM, IPPROTO_UDPLITE), reason::DIRECT_OTHER);
        assert_eq!(judge_create(1, SOCK_RAW, 0), reason::NONE);
    }

    #[test]
    fn transport_is_decided_by_the_type_first() {
        use abi::*;
        assert_eq!(transport_of(SOCK_RAW, IPPROTO_UDP), transport::RAW);
        assert_eq!(transport_of(SOCK_RAW, IPPROTO_TCP), transport::RAW);
        assert_eq!(transport_of(SOCK_STREAM, IPPROTO_UDP), transport::OTHER);
        assert_eq!(transport_of(SOCK_DGRAM, IPPROTO_TCP), transport::OTHER);
        assert_eq!(transport_of(SOCK_STREAM, IPPROTO_MPTCP), transport::TCP);
        assert_eq!(transport_of(SOCK_DGRAM, IPPROTO_UDPLITE), transport::UDP);
        assert_eq!(transport_of(SOCK_DGRAM, 0), transport::UDP);
        assert_eq!(transport_of(5, IPPROTO_TCP), transport::OTHER);
        assert_eq!(judge_create(AF_INET, SOCK_RAW, IPPROTO_UDP), reason::RAW_SOCKET);
    }

    #[test]
    fn socket_create_lsm_refuses_what_no_hook_gates() {
        use abi::*;
        assert!(!socket_family_refused(AF_INET.into(), SOCK_STREAM.into()));
        assert!(!socket_family_refused(AF_INET6.into(), SOCK_DGRAM.into()));
        assert!(!socket_family_refused(1, SOCK_STREAM.into()));
        assert!(!socket_family_refused(16, SOCK_RAW.into()), "netlink is SOCK_RAW by convention");
        assert!(socket_family_refused(AF_INET.into(), SOCK_RAW.into()));
        assert!(socket_family_refused(AF_INET6.into(), SOCK_RAW.into()));
        assert!(socket_family_refused(17, SOCK_RAW.into()), "AF_PACKET");
        assert!(socket_family_refused(17, SOCK_DGRAM.into()), "AF_PACKET");
        assert!(socket_family_refused(44, SOCK_RAW.into()), "AF_XDP");
    }

    #[test]
    fn egress_gate_checks() {
        use egress::*;
        // Loopback addresses must stay on the loopback device, either way round.
        assert!(!loopback_misrouted(v4(127, 0, 0, 1), v4(127, 0, 0, 2), LOOPBACK_IFINDEX));
        assert!(loopback_misrouted(v4(10, 0, 0, 1), v4(127, 0, 0, 2), 3));
        assert!(loopback_misrouted(v4(127, 0, 0, 1), v4(10, 0, 0, 2), 3));
        assert!(loopback_misrouted(v6("fd00::1"), v6("::1"), 3));
        assert!(loopback_misrouted(v6("fd00::1"), v6("::ffff:127.0.0.1"), 3));
        assert!(!loopback_misrouted(v6("fd00::1"), v6("fd00::2"), 3));
        assert!(egress_fast_pass(v4(127, 0, 0, 1), LOOPBACK_IFINDEX));
        assert!(egress_fast_pass(v6("::1"), LOOPBACK_IFINDEX));
        assert!(!egress_fast_pass(v4(10, 0, 0, 1), LOOPBACK_IFINDEX));
        assert!(!egress_fast_pass(v4(127, 0, 0, 1), 2));
        // The extension header walk.
        assert_eq!(step(NEXTHDR_HOP), Step::Skip { fixed_len: false });
        assert_eq!(step(NEXTHDR_DEST), Step::Skip { fixed_len: false });
        assert_eq!(step(NEXTHDR_FRAGMENT), Step::Skip { fixed_len: true });
        assert_eq!(step(NEXTHDR_ROUTING), Step::Routing);
        assert_eq!(step(NEXTHDR_TCP), Step::Upper);
        assert_eq!(step(58), Step::Upper);
        assert!(has_ports(NEXTHDR_UDP) && !has_ports(58));
        assert_eq!(name(IPV6_ROUTING_HEADER), "ipv6-routing-header");
        assert_eq!(name(LOOPBACK_ON_DEVICE), "loopback-on-device");
        assert_eq!(reason::name(reason::EGRESS_PACKET), "egress-packet");
        // Replies on inbound connections.
        let mut config = Config::default();
        assert!(!egress_reply_allowed(&config, true, false, 0));
        config.allow_inbound_listen = 1;
        assert!(egress_reply_allowed(&config, true, false, 0));
        assert!(egress_reply_allowed(&config, false, true, 0));
        assert!(!egress_reply_allowed(&config, false, true, 1));
        assert!(!egress_reply_allowed(&config, false, false, 0));
    }

    #[test]
    fn a_cookie_has_two_adjacent_slots_in_its_set() {
        for sets in [SOCKETS_MAX_ENTRIES / SOCKETS_WAYS, run_socket_sets(2)] {
            let (mask, entries) = (sets - 1, sets * SOCKETS_WAYS);
            assert_eq!((socket_slot(1, 0, mask), socket_slot(1, 1, mask)), (2, 3));
            assert_eq!(socket_slot(u64::from(sets) + 1, 1, mask), 3, "cookies a set count apart share a set");
            assert_eq!(socket_slot(u64::from(sets) - 1, 1, mask), entries - 1);
            assert_eq!(socket_slot(u64::MAX, 7, mask), entries - 1, "always in bounds");
            let mut seen = std::collections::HashSet::new();
            for cookie in 4096..4096 + u64::from(sets) {
                assert!(seen.insert(socket_slot(cookie, 0, mask)), "consecutive cookies take distinct sets");
            }
        }
    }

    #[test]
    fn a_run_has_a_cookie_run_of_sets_per_cpu_within_the_objects_size() {
        let most = SOCKETS_MAX_ENTRIES / SOCKETS_WAYS;
        assert_eq!(run_socket_sets(0), 2 * COOKIE_RUN);
        assert_eq!(run_socket_sets(1), 2 * COOKIE_RUN);
        assert_eq!(run_socket_sets(2), 2 * COOKIE_RUN);
        assert_eq!(run_socket_sets(3), 4 * COOKIE_RUN);
        assert_eq!(run_socket_sets(8), most);
        assert_eq!(run_socket_sets(512), most);
        assert_eq!(run_socket_sets(u32::MAX), most, "unknown CPUs: the object's size");
        for cpus in 0..600 {
            let sets = run_socket_sets(cpus);
            assert!(sets.is_power_of_two() && sets <= most, "{cpus} CPUs: {sets} sets");
        }
    }

    #[test]
    fn tcp_state_history_keeps_the_first_eight_changes() {
        let mut facts = SockFacts::zeroed();
        facts.push_tcp_state(2);
        facts.push_tcp_state(2);
        facts.push_tcp_state(1);
        assert_eq!(facts.tcp_states(), &[2, 1]);
        for state in 3..=12 {
            facts.push_tcp_state(state);
        }
        assert_eq!(facts.tcp_states().len(), 8);
        assert_eq!(facts.tcp_state, 12);
        assert_eq!(tcp_state_name(facts.tcp_states()[1]), "ESTABLISHED");
    }
}
