//! sockstrace's eBPF programs: the kernel witness of one cgroup.
//!
//! Built for `bpfel-unknown-none` by `sockstrace/build.rs` (aya-build) and embedded in the
//! `sockstrace` binary. For any other target this compiles to a stub `main`, so host builds and
//! lints of the whole workspace keep working.
//!
//! Every program (a) records what it learns about the socket in `SOCKETS` (keyed by socket
//! cookie), (b) judges the operation with the backstop policy in `CONFIG`/`RULES` (the judges
//! live in the library so the host tests them) and, when `CONFIG.enforce` is set, refuses leaks
//! (the caller sees `EPERM`), and (c) reports every leak on `EVENTS`, refused or not, counting
//! what the ring buffer cannot take in `DROPPED`.
//!
//! The cgroup hooks run against the *socket's* cgroup, whoever makes the call: a call the
//! supervisor performs on its `pidfd_getfd` duplicate of a traced socket passes through them too.
//!
//! Every `sockstrace run` as root loads these programs, so the verifier's time is start-up time
//! (about 1 us per instruction it walks; `kernel::tests::verifier_accepts_every_program` holds
//! each program to a budget). What keeps it small: the rules are walked by `bpf_loop`, not an
//! inline loop (see `judge_remote`); what steers the code after a judge is a bool, the reason
//! being worked out only where the event takes it; memory is zeroed and addresses stored with
//! 8-byte stores (see `zero`), never through the byte-by-byte builtin `memset`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        bpf_sock, BPF_NOEXIST, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
        BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TCP_CONNECT_CB,
        BPF_SOCK_OPS_TCP_LISTEN_CB, BPF_TCP_ESTABLISHED, BPF_TCP_LISTEN, BPF_TCP_SYN_SENT,
    },
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_comm,
            bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_get_socket_uid, bpf_ktime_get_ns, bpf_loop,
            bpf_probe_read_kernel_str, bpf_sk_fullsock, bpf_skb_ancestor_cgroup_id,
        },
    },
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, lsm, map, sock_ops, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{LsmContext, SkBuffContext, SockAddrContext, SockContext, SockOpsContext, TracePointContext},
    EbpfContext as _,
};
use aya_log_ebpf::{debug, warn};
use sockstrace_ebpf::{
    abi, egress, egress_fast_pass, egress_reply_allowed, exempt, judge_bind, judge_create, judge_listen,
    judge_remote_matched, kind, loopback_misrouted, may_be_shim, proc_flags, reason, remote_allowed,
    rules_in_force, verdict, Config, ExemptCount, Ip6, ProcRecord, Rule, RuleQuery, SockEvent, SockFacts,
    UdpPeer, UdpPeerKey, EVENTS_BYTE_SIZE, EXEMPT_COUNTS_MAX_ENTRIES, EXEMPT_LEVELS, FILENAME_LEN,
    GONE_MAX_ENTRIES, MAX_EXEMPTIONS, MAX_RULES, PROCS_MAX_ENTRIES, SOCKETS_MAX_ENTRIES,
    UDP_PEERS_MAX_ENTRIES,
};

/// Reads the four `u32` words of an IPv6 address field of a context (or `bpf_sock`) one by one:
/// the verifier allows fixed-offset loads from these pointers but no pointer arithmetic, which
/// LLVM would use for an array copy. Needs `unsafe`: `$ptr` must be valid.
macro_rules! words4 {
    ($ptr:expr, $field:ident) => {{
        let p = $ptr;
        [
            core::ptr::read_volatile(&raw const (*p).$field[0]),
            core::ptr::read_volatile(&raw const (*p).$field[1]),
            core::ptr::read_volatile(&raw const (*p).$field[2]),
            core::ptr::read_volatile(&raw const (*p).$field[3]),
        ]
    }};
}

/// Return value of a cgroup hook that lets the operation proceed.
const ALLOW: i32 = 1;
/// Return value of a cgroup hook that refuses it (`EPERM`).
const REFUSE: i32 = 0;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTE_SIZE, 0);

#[map]
static DROPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static SOCKETS: LruHashMap<u64, SockFacts> = LruHashMap::with_max_entries(SOCKETS_MAX_ENTRIES, 0);

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
static RULES: Array<Rule> = Array::with_max_entries(MAX_RULES, 0);

/// Where a new `SOCKETS` value is put together: the BPF stack (512 bytes) is too small for it.
#[map]
static SCRATCH: PerCpuArray<SockFacts> = PerCpuArray::with_max_entries(1, 0);

/// `BPF_F_NO_PREALLOC`: hash map entries are allocated as they come (the process maps are
/// large and mostly empty; preallocating them would cost start-up time and memory).
const NO_PREALLOC: u32 = 1;

/// Live processes the tracking tracepoints saw (audit only): tgid -> record.
#[map]
static PROCS: HashMap<u32, ProcRecord> = HashMap::with_max_entries(PROCS_MAX_ENTRIES, NO_PREALLOC);

/// Processes that exited lately: tgid -> record.
#[map]
static GONE: LruHashMap<u32, ProcRecord> = LruHashMap::with_max_entries(GONE_MAX_ENTRIES, 0);

/// Records that did not fit in `PROCS`.
#[map]
static PROCS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Where a `PROCS` record is put together.
#[map]
static PROC_SCRATCH: PerCpuArray<ProcRecord> = PerCpuArray::with_max_entries(1, 0);

/// Exempt cgroups (and their descendants): cgroup id -> 1.
#[map]
static EXEMPT_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(MAX_EXEMPTIONS, 0);

/// Exempt users: uid -> 1.
#[map]
static EXEMPT_UIDS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_EXEMPTIONS, 0);

/// Exempt executables: the path `execve` is given, NUL-padded -> 1.
#[map]
static EXEMPT_EXES: HashMap<[u8; FILENAME_LEN], u8> = HashMap::with_max_entries(MAX_EXEMPTIONS, 0);

/// What exempt processes did around the proxy: tgid -> counts.
#[map]
static EXEMPT_COUNTS: LruHashMap<u32, ExemptCount> =
    LruHashMap::with_max_entries(EXEMPT_COUNTS_MAX_ENTRIES, 0);

// ---------------------------------------------------------------------------------------------
// cgroup sock_addr: connect, sendmsg (UDP with an address), bind
// ---------------------------------------------------------------------------------------------

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    let (addr, port) = user_addr4(&ctx);
    on_sock_addr(&ctx, kind::CONNECT4, abi::AF_INET, addr, port)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    let (addr, port) = user_addr6(&ctx);
    on_sock_addr(&ctx, kind::CONNECT6, abi::AF_INET6, addr, port)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    let (addr, port) = user_addr4(&ctx);
    on_sock_addr(&ctx, kind::SENDMSG4, abi::AF_INET, addr, port)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    let (addr, port) = user_addr6(&ctx);
    on_sock_addr(&ctx, kind::SENDMSG6, abi::AF_INET6, addr, port)
}

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    let (addr, port) = user_addr4(&ctx);
    on_sock_addr(&ctx, kind::BIND4, abi::AF_INET, addr, port)
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    let (addr, port) = user_addr6(&ctx);
    on_sock_addr(&ctx, kind::BIND6, abi::AF_INET6, addr, port)
}

/// The IPv4 address and port of the caller's sockaddr (the kernel's own copy).
#[inline(always)]
fn user_addr4(ctx: &SockAddrContext) -> (Ip6, u16) {
    let sa = ctx.sock_addr;
    // SAFETY: a cgroup sock_addr program gets a valid `bpf_sock_addr` context for its whole
    // run; `user_ip4` and `user_port` are 4-byte reads the verifier allows in the *4 hooks.
    let (ip, port) = unsafe { ((*sa).user_ip4, (*sa).user_port) };
    // The low 16 bits of `user_port` hold the port as in the sockaddr: network byte order.
    (Ip6::from_v4_word(ip), u16::from_be(port as u16))
}

/// The IPv6 address and port of the caller's sockaddr (the kernel's own copy).
#[inline(always)]
fn user_addr6(ctx: &SockAddrContext) -> (Ip6, u16) {
    let sa = ctx.sock_addr;
    // SAFETY: as in `user_addr4`; `user_ip6` is four 4-byte reads allowed in the *6 hooks.
    let (ip, port) = unsafe { (words4!(sa, user_ip6), (*sa).user_port) };
    (Ip6::from_words(ip), u16::from_be(port as u16))
}

/// Records, judges and reports one connect, send or bind to `addr`:`port`; `user_family` is the
/// sockaddr family the hook is for (`AF_INET` for the *4 hooks).
#[inline(always)]
fn on_sock_addr(ctx: &SockAddrContext, kind: u32, user_family: u16, addr: Ip6, port: u16) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: plain 4-byte context reads (the sockaddr's family, the socket's family, type and
    // resolved protocol).
    let (given_family, family, sock_type, protocol) =
        unsafe { ((*sa).user_family as u16, (*sa).family as u16, (*sa).type_ as u16, (*sa).protocol as u16) };
    if given_family != user_family {
        log_sockaddr_family(u32::from(given_family), u32::from(family));
    }
    // SAFETY: the helpers take the program's own, valid context pointer.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Asked only when needed: a new `SOCKETS` entry, or an event.
    // SAFETY: as above.
    let netns_cookie = || unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    let config = config();
    let is_bind = kind == kind::BIND4 || kind == kind::BIND6;
    // Only whether it is a leak steers what follows; its reason is worked out where the event
    // takes it (see `judge_remote`).
    let mut query = RuleQuery::new(addr, port, sock_type, protocol);
    let judged_leak = if is_bind {
        judge_bind(sock_type, addr, port, config.allow_inbound_bind != 0) != reason::NONE
    } else {
        // A socket's own shim counts as a matched rule: one answer, judged as before.
        query.matched = own_shim(cookie, &query);
        !judge_remote(&config, &mut query)
    };
    // Only a leak pays for the exemption check (proxy traffic never does), and only when
    // something is exempt at all.
    let exempt = judged_leak && config.exempt != 0 && current_exempt(&config, kind);
    let leak = judged_leak && !exempt;
    let refuse = leak && config.enforce != 0;

    let mut cgroup_id = 0;
    if let Some(facts) = facts_of(cookie, netns_cookie, family, sock_type, protocol, Creator::Current) {
        if exempt {
            // SAFETY: a live `SOCKETS` value, see below. Marked for the egress gate.
            unsafe { (*facts).exempt = 1 };
        }
        // SAFETY: `facts` points at a live `SOCKETS` value (map memory stays valid for the
        // program's run, even if the entry is evicted meanwhile). Concurrent hooks on the same
        // socket may interleave their plain stores (see `bump`).
        unsafe {
            cgroup_id = (*facts).cgroup_id;
            if is_bind {
                store_addr(&raw mut (*facts).src_addr, addr);
                (*facts).src_port = port;
            } else {
                store_addr(&raw mut (*facts).dst_addr, addr);
                (*facts).dst_port = port;
                let counter = if kind == kind::CONNECT4 || kind == kind::CONNECT6 {
                    &raw mut (*facts).connects
                } else {
                    &raw mut (*facts).sends
                };
                bump(counter);
            }
            if leak {
                bump(&raw mut (*facts).leaks);
                if refuse {
                    bump(&raw mut (*facts).denied);
                }
            }
            // The socket's own source, once the kernel has picked one (bound, or sent before).
            let sk: *mut bpf_sock = (*sa).__bindgen_anon_1.sk;
            let src_port = (*sk).src_port as u16;
            if !is_bind && src_port != 0 {
                (*facts).src_port = src_port;
                let src = if family == abi::AF_INET6 {
                    Ip6::from_words(words4!(sk, src_ip6))
                } else {
                    Ip6::from_v4_word((*sk).src_ip4)
                };
                store_addr(&raw mut (*facts).src_addr, src);
            }
        }
    }

    if leak {
        emit(cookie, move |event| {
            event.kind = kind;
            event.family = family;
            event.sock_type = sock_type;
            event.protocol = protocol;
            event.cookie = cookie;
            event.netns_cookie = netns_cookie();
            // SAFETY: takes no argument.
            event.cgroup_id = if cgroup_id != 0 { cgroup_id } else { unsafe { bpf_get_current_cgroup_id() } };
            // SAFETY: `event` is a valid, 8-byte aligned event; `addr` is at offset 48.
            unsafe { store_addr(&raw mut event.addr, addr) };
            event.port = port;
            event.verdict = if refuse { verdict::DENY } else { verdict::PASS };
            event.reason = if is_bind {
                judge_bind(sock_type, addr, port, config.allow_inbound_bind != 0)
            } else {
                judge_remote_matched(&config, &query)
            };
            fill_task(&mut event.pid_tgid, &mut event.uid_gid, &mut event.comm);
        });
    }
    if refuse {
        REFUSE
    } else {
        ALLOW
    }
}

// ---------------------------------------------------------------------------------------------
// cgroup sock: socket creation, and the address a bind settled on
// ---------------------------------------------------------------------------------------------

#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    let sk = ctx.sock;
    // SAFETY: a cgroup sock program's context is the new socket as a valid `bpf_sock`; family,
    // type and protocol are 4-byte reads allowed at creation.
    let (family, sock_type, protocol) =
        unsafe { ((*sk).family as u16, (*sk).type_ as u16, (*sk).protocol as u16) };
    // SAFETY: the helpers take the program's own, valid context pointer.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Asked only when needed: a new `SOCKETS` entry, or an event.
    // SAFETY: as above.
    let netns_cookie = || unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    let judged = judge_create(family, sock_type, protocol);
    let config = config();
    let exempt = judged != reason::NONE && config.exempt != 0 && current_exempt(&config, kind::SOCK_CREATE);
    let leak = if exempt { reason::NONE } else { judged };
    let refuse = leak != reason::NONE && config.enforce != 0;
    let facts = facts_of(cookie, netns_cookie, family, sock_type, protocol, Creator::Current);
    if leak != reason::NONE {
        if let Some(facts) = facts {
            // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
            unsafe {
                bump(&raw mut (*facts).leaks);
                if refuse {
                    bump(&raw mut (*facts).denied);
                }
            }
        }
        emit(cookie, move |event| {
            event.kind = kind::SOCK_CREATE;
            event.family = family;
            event.sock_type = sock_type;
            event.protocol = protocol;
            event.cookie = cookie;
            event.netns_cookie = netns_cookie();
            // SAFETY: takes no argument; at creation the caller's cgroup is the socket's.
            event.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
            event.verdict = if refuse { verdict::DENY } else { verdict::PASS };
            event.reason = leak;
            fill_task(&mut event.pid_tgid, &mut event.uid_gid, &mut event.comm);
        });
    }
    if refuse {
        REFUSE
    } else {
        ALLOW
    }
}

#[cgroup_sock(post_bind4)]
pub fn post_bind4(ctx: SockContext) -> i32 {
    // SAFETY: a valid `bpf_sock` context; `src_ip4` and `src_port` are readable after bind.
    let (addr, port) = unsafe { (Ip6::from_v4_word((*ctx.sock).src_ip4), (*ctx.sock).src_port as u16) };
    on_post_bind(&ctx, addr, port)
}

#[cgroup_sock(post_bind6)]
pub fn post_bind6(ctx: SockContext) -> i32 {
    // SAFETY: as in `post_bind4`, with the IPv6 source words.
    let (addr, port) = unsafe { (Ip6::from_words(words4!(ctx.sock, src_ip6)), (*ctx.sock).src_port as u16) };
    on_post_bind(&ctx, addr, port)
}

/// Records the local address a bind settled on (the real port when 0 was asked for).
#[inline(always)]
fn on_post_bind(ctx: &SockContext, addr: Ip6, port: u16) -> i32 {
    let sk = ctx.sock;
    // SAFETY: plain 4-byte context reads.
    let (family, sock_type, protocol) =
        unsafe { ((*sk).family as u16, (*sk).type_ as u16, (*sk).protocol as u16) };
    // SAFETY: the helpers take the program's own, valid context pointer.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Asked only when needed: a new `SOCKETS` entry, or an event.
    // SAFETY: as above.
    let netns_cookie = || unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    if let Some(facts) = facts_of(cookie, netns_cookie, family, sock_type, protocol, Creator::Current) {
        // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
        unsafe {
            store_addr(&raw mut (*facts).src_addr, addr);
            (*facts).src_port = port;
        }
    }
    ALLOW
}

// ---------------------------------------------------------------------------------------------
// sockops: TCP state changes, local address, bytes; listen
// ---------------------------------------------------------------------------------------------

/// Return value of a sockops program (its `reply` is what matters for the callbacks that ask).
const SOCK_OPS_OK: u32 = 1;

#[sock_ops]
pub fn sock_ops(ctx: SockOpsContext) -> u32 {
    let op = ctx.op();
    if op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && ctx.cb_flags() & BPF_SOCK_OPS_STATE_CB_FLAG != 0 {
        // The state callback has just recorded ESTABLISHED (set at TCP_CONNECT_CB, it runs first).
        return SOCK_OPS_OK;
    }
    let state = match op {
        BPF_SOCK_OPS_TCP_CONNECT_CB => BPF_TCP_SYN_SENT,
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => BPF_TCP_ESTABLISHED,
        BPF_SOCK_OPS_TCP_LISTEN_CB => BPF_TCP_LISTEN,
        BPF_SOCK_OPS_STATE_CB => ctx.arg(1),
        _ => return SOCK_OPS_OK,
    } as u8;
    if op != BPF_SOCK_OPS_STATE_CB {
        // From now on the kernel calls us on every state change of this socket. Failure (not a
        // full socket) only costs us the later states.
        let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
    }
    let family = ctx.family() as u16;
    let ops = ctx.ops;
    let (local, remote) = if family == abi::AF_INET6 {
        // SAFETY: the program's own valid context; 4-byte reads of the address words.
        unsafe { (Ip6::from_words(words4!(ops, local_ip6)), Ip6::from_words(words4!(ops, remote_ip6))) }
    } else {
        (Ip6::from_v4_word(ctx.local_ip4()), Ip6::from_v4_word(ctx.remote_ip4()))
    };
    // `local_port` is in host byte order; `remote_port` holds the network-order port such that
    // reading the whole word as big-endian gives it.
    let local_port = ctx.local_port() as u16;
    let remote_port = u32::from_be(ctx.remote_port()) as u16;
    // SAFETY: the program's own valid context; the byte counters are 8-byte context reads the
    // kernel turns into 0 for sockets that are not full ones.
    let (bytes_received, bytes_acked) = unsafe { ((*ctx.ops).bytes_received, (*ctx.ops).bytes_acked) };
    // SAFETY: the helpers take the program's own, valid context pointer.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Asked only when needed: a new `SOCKETS` entry, or an event.
    // SAFETY: as above.
    let netns_cookie = || unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    // Runs in softirq context for most callbacks: no task to speak of.
    let creator = Creator::Unknown { cgroup_id: config().cgroup_id };
    let Some(facts) = facts_of(cookie, netns_cookie, family, abi::SOCK_STREAM, abi::IPPROTO_TCP, creator)
    else {
        return SOCK_OPS_OK;
    };
    let leak = if op == BPF_SOCK_OPS_TCP_LISTEN_CB {
        let judged = judge_listen(local, config().allow_inbound_listen != 0);
        // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
        if judged != reason::NONE && config().exempt != 0 && unsafe { creator_exempt(facts) } {
            reason::NONE
        } else {
            judged
        }
    } else {
        reason::NONE
    };
    // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
    unsafe {
        (*facts).push_tcp_state(state);
        if local_port != 0 {
            store_addr(&raw mut (*facts).src_addr, local);
            (*facts).src_port = local_port;
        }
        if remote_port != 0 && (*facts).dst_port == 0 {
            // An accepted socket: its peer.
            store_addr(&raw mut (*facts).dst_addr, remote);
            (*facts).dst_port = remote_port;
        }
        if bytes_received != 0 || bytes_acked != 0 {
            (*facts).bytes_received = bytes_received;
            (*facts).bytes_acked = bytes_acked;
        }
        if leak != reason::NONE {
            bump(&raw mut (*facts).leaks);
        }
    }
    if leak != reason::NONE {
        emit(cookie, move |event| {
            event.kind = kind::LISTEN;
            event.family = family;
            event.cookie = cookie;
            // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
            event.netns_cookie = unsafe { (*facts).netns_cookie };
            // SAFETY: `event` is a valid, 8-byte aligned event; `addr` is at offset 48.
            unsafe { store_addr(&raw mut event.addr, local) };
            event.port = local_port;
            event.verdict = verdict::PASS;
            event.reason = leak;
            // SAFETY: a live `SOCKETS` value, see `on_sock_addr`. The creator, since no caller
            // is known here.
            unsafe {
                event.pid_tgid = (*facts).pid_tgid;
                event.uid_gid = (*facts).uid_gid;
                event.comm = (*facts).comm;
                event.cgroup_id = (*facts).cgroup_id;
                event.sock_type = (*facts).sock_type;
                event.protocol = (*facts).protocol;
            }
        });
    }
    SOCK_OPS_OK
}

// ---------------------------------------------------------------------------------------------
// cgroup_skb egress: the gate on each outgoing packet
// ---------------------------------------------------------------------------------------------

/// Return value of a cgroup_skb program that lets the packet go.
const PASS_PACKET: i32 = 1;
/// Return value that drops it (the sender sees `EPERM` where the path reports errors).
const DROP_PACKET: i32 = 0;

/// `skb->protocol` as the context holds it (the network-order `ETH_P_*` value in the low 16
/// bits, read as a little-endian word).
const ETH_P_IP_WORD: u32 = 0x0008;
const ETH_P_IPV6_WORD: u32 = 0xdd86;

/// `BPF_TCP_LISTEN` as `bpf_sock.state` holds it.
const TCP_LISTEN_STATE: u32 = BPF_TCP_LISTEN;

/// The egress gate: every packet a socket of the cgroup sends, as it leaves `ip_finish_output`
/// (after routing, options and extension headers, before fragmentation and the neighbour
/// layer). Whatever a socket option or control message did to the packet after the connect
/// and send hooks judged its address, the packet itself is judged here: IPv4 options and IPv6
/// routing headers (source routes: the first hop is not the judged destination), loopback
/// addresses on another device than loopback (`SO_BINDTODEVICE`, `IP_UNICAST_IF`, `IP_PKTINFO`),
/// and the destination against the backstop policy. A drop is counted on the socket and
/// reported once per socket (`kind::EGRESS4`/`EGRESS6`, reason `egress-packet`); without
/// `CONFIG.enforce` the packet goes anyway.
///
/// Fast path (bulk traffic through a loopback proxy): one header load, then a loopback
/// destination on the loopback device without options passes.
#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: a cgroup_skb program's context is a valid `__sk_buff`; `ifindex` (the output
    // device at egress) and `protocol` are 4-byte reads allowed here.
    let (ifindex, protocol) = unsafe { ((*skb).ifindex, (*skb).protocol) };
    let (kind, dst, detail, l4, l4_offset) = if protocol == ETH_P_IP_WORD {
        // The IPv4 header without options: 20 bytes, read as words (memory order).
        match ctx.load::<[u32; 5]>(0) {
            Ok(h) => {
                let version_ihl = h[0] & 0xff;
                let dst = Ip6::from_v4_word(h[4]);
                if version_ihl == 0x45 && egress_fast_pass(dst, ifindex) {
                    return PASS_PACKET;
                }
                let detail = if version_ihl != 0x45 {
                    egress::IPV4_OPTIONS
                } else if loopback_misrouted(Ip6::from_v4_word(h[3]), dst, ifindex) {
                    egress::LOOPBACK_ON_DEVICE
                } else {
                    egress::NONE
                };
                (kind::EGRESS4, dst, detail, ((h[2] >> 8) & 0xff) as u8, (version_ihl & 0xf) * 4)
            }
            Err(_) => (kind::EGRESS4, Ip6::default(), egress::MALFORMED, 0, 0),
        }
    } else if protocol == ETH_P_IPV6_WORD {
        match ctx.load::<[u32; 10]>(0) {
            Ok(h) => {
                let nexthdr = ((h[1] >> 16) & 0xff) as u8;
                let dst = Ip6::from_words([h[6], h[7], h[8], h[9]]);
                let plain = nexthdr == egress::NEXTHDR_TCP || nexthdr == egress::NEXTHDR_UDP;
                if plain && egress_fast_pass(dst, ifindex) {
                    return PASS_PACKET;
                }
                let (detail, l4, offset) = walk_ipv6(&ctx, nexthdr);
                let src = Ip6::from_words([h[2], h[3], h[4], h[5]]);
                let detail = if detail == egress::NONE && loopback_misrouted(src, dst, ifindex) {
                    egress::LOOPBACK_ON_DEVICE
                } else {
                    detail
                };
                (kind::EGRESS6, dst, detail, l4, offset)
            }
            Err(_) => (kind::EGRESS6, Ip6::default(), egress::MALFORMED, 0, 0),
        }
    } else {
        // Only IPv4 and IPv6 reach this hook.
        return PASS_PACKET;
    };
    on_packet(&ctx, kind, dst, detail, l4, l4_offset)
}

/// Walks the IPv6 extension headers after the fixed header (whose next header is `nexthdr`),
/// at most [`egress::MAX_EXTENSION_HEADERS`] of them: (what is wrong, the upper-layer protocol,
/// where its header starts).
#[inline(always)]
fn walk_ipv6(ctx: &SkBuffContext, nexthdr: u8) -> (u8, u8, u32) {
    let mut next = nexthdr;
    let mut offset: u32 = 40;
    let mut steps = 0;
    while steps < egress::MAX_EXTENSION_HEADERS {
        let fixed_len = match egress::step(next) {
            egress::Step::Upper => return (egress::NONE, next, offset),
            egress::Step::Routing => return (egress::IPV6_ROUTING_HEADER, next, offset),
            egress::Step::Skip { fixed_len } => fixed_len,
        };
        let Ok(ext) = ctx.load::<[u8; 2]>(offset as usize) else {
            return (egress::MALFORMED, next, offset);
        };
        next = ext[0];
        offset += if fixed_len { 8 } else { (u32::from(ext[1]) + 1) * 8 };
        steps += 1;
    }
    match egress::step(next) {
        egress::Step::Upper => (egress::NONE, next, offset),
        egress::Step::Routing => (egress::IPV6_ROUTING_HEADER, next, offset),
        egress::Step::Skip { .. } => (egress::IPV6_HEADER_CHAIN, next, offset),
    }
}

/// Gathers what the judge needs beyond the headers (the destination port, the socket's type,
/// protocol, state and peer, its cookie) and hands the packet to [`egress_judge`].
#[inline(always)]
fn on_packet(ctx: &SkBuffContext, kind: u32, dst: Ip6, detail: u8, l4: u8, l4_offset: u32) -> i32 {
    let port = if egress::has_ports(l4) {
        match ctx.load::<u32>(l4_offset as usize) {
            Ok(ports) => u16::from_be((ports >> 16) as u16),
            Err(_) => 0,
        }
    } else {
        0
    };
    // The socket: a full one (its type, protocol, state and peer), or a request or timewait
    // socket (TCP control packets: SYN-ACK, ACK in TIME_WAIT).
    // SAFETY: `sk` is a context read the verifier allows in cgroup_skb programs (a pointer or
    // null); the helper takes it as is and returns a full socket or null.
    let full = unsafe {
        let sk = (*ctx.skb.skb).__bindgen_anon_2.sk;
        if sk.is_null() {
            core::ptr::null_mut()
        } else {
            bpf_sk_fullsock(sk)
        }
    };
    let (sock_type, protocol, listener, to_peer) = if full.is_null() {
        // A request socket's SYN-ACK (or a timewait socket's ACK): the listener's traffic.
        (abi::SOCK_STREAM, abi::IPPROTO_TCP, true, false)
    } else {
        // SAFETY: `full` is a non-null full socket from `bpf_sk_fullsock`; `type`,
        // `protocol`, `state`, `dst_ip4`, `dst_ip6` and `dst_port` are readable on it.
        unsafe {
            let peer = if kind == kind::EGRESS4 {
                Ip6::from_v4_word((*full).dst_ip4)
            } else {
                Ip6::from_words(words4!(full, dst_ip6))
            };
            let peer_port = u16::from_be((*full).dst_port);
            (
                (*full).type_ as u16,
                (*full).protocol as u16,
                (*full).state == TCP_LISTEN_STATE,
                peer == dst && peer_port == port,
            )
        }
    };
    // SAFETY: the helpers take the program's own, valid context pointer.
    let (cookie, netns_cookie) =
        unsafe { (bpf_get_socket_cookie(ctx.as_ptr()), bpf_get_netns_cookie(ctx.as_ptr())) };
    let config = config();
    let exempt = config.exempt != 0 && skb_exempt(ctx, &config);
    let packed = EgressPacket {
        v6: kind == kind::EGRESS6,
        detail,
        port,
        sock_type,
        protocol,
        listener,
        to_peer,
        exempt,
    }
    .pack();
    let verdict = egress_judge(cookie, netns_cookie, dst.hi, dst.lo, packed);
    // Opaque to LLVM: it knows the global function returns 0 or 1 and would compute our return
    // value arithmetically from it, where the verifier (which checks the function on its own)
    // sees any `i32` and refuses a return value it cannot prove to be 0 or 1.
    // SAFETY: a read of a local.
    let verdict = unsafe { core::ptr::read_volatile(&raw const verdict) };
    if verdict == 1 {
        DROP_PACKET
    } else {
        PASS_PACKET
    }
}

/// The facts of one packet [`egress_judge`] takes, packed into one word: BPF functions take at
/// most five arguments.
struct EgressPacket {
    v6: bool,
    detail: u8,
    port: u16,
    sock_type: u16,
    protocol: u16,
    listener: bool,
    to_peer: bool,
    /// The socket's owner or cgroup is exempt (`audit --exempt-*`).
    exempt: bool,
}

impl EgressPacket {
    #[inline(always)]
    fn pack(&self) -> u64 {
        u64::from(self.v6)
            | u64::from(self.detail) << 8
            | u64::from(self.port) << 16
            | u64::from(self.sock_type & 0xff) << 32
            | u64::from(self.protocol) << 40
            | u64::from(self.listener) << 56
            | u64::from(self.to_peer) << 57
            | u64::from(self.exempt) << 58
    }

    #[inline(always)]
    fn unpack(word: u64) -> Self {
        Self {
            v6: word & 1 != 0,
            detail: (word >> 8) as u8,
            port: (word >> 16) as u16,
            sock_type: ((word >> 32) & 0xff) as u16,
            protocol: (word >> 40) as u16,
            listener: (word >> 56) & 1 != 0,
            to_peer: (word >> 57) & 1 != 0,
            exempt: (word >> 58) & 1 != 0,
        }
    }
}

/// The egress gate's judgement of one packet the parsing did not pass at once: what is wrong
/// with it (`detail` already, or a destination the policy does not allow), and then the
/// counting, the report and the verdict. Returns 1 to drop the packet, 0 to let it go.
///
/// A global function (`no_mangle`, scalar arguments): the verifier checks it once, on its own,
/// instead of once per way the header parsing reaches it (which cost 30,000 instructions).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn egress_judge(cookie: u64, netns_cookie: u64, dst_hi: u64, dst_lo: u64, packed: u64) -> i32 {
    let mut detail = EgressPacket::unpack(packed).detail;
    if detail == egress::NONE {
        if egress_rules(dst_hi, dst_lo, packed) == 1 || egress_reply(cookie, packed) == 1 {
            return 0;
        }
        detail = egress::DESTINATION;
    }
    let packed = (packed & !0xff00) | u64::from(detail) << 8;
    egress_drop(cookie, netns_cookie, dst_hi, dst_lo, packed)
}

/// Whether the rules (or loopback) let a packet go to its destination and port (`judge_remote`
/// on the socket's type and protocol): 1 if so, else 0. A global function of its own, so the
/// verifier checks the rule walk once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn egress_rules(dst_hi: u64, dst_lo: u64, packed: u64) -> i32 {
    let packet = EgressPacket::unpack(packed);
    let mut query =
        RuleQuery::new(Ip6 { hi: dst_hi, lo: dst_lo }, packet.port, packet.sock_type, packet.protocol);
    i32::from(judge_remote(&config(), &mut query))
}

/// Whether a packet the rules do not allow is a reply on an inbound TCP connection the policy
/// lets in (see `egress_reply_allowed`): 1 if so, else 0. A global function of its own, so the
/// verifier checks it once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn egress_reply(cookie: u64, packed: u64) -> i32 {
    let packet = EgressPacket::unpack(packed);
    if packet.sock_type != abi::SOCK_STREAM {
        return 0;
    }
    let connects = if packet.listener {
        0
    } else {
        match SOCKETS.get_ptr(cookie) {
            // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
            Some(facts) => unsafe { (*facts).connects },
            // A socket no hook of ours knows is no reply.
            None => u64::MAX,
        }
    };
    i32::from(egress_reply_allowed(&config(), packet.listener, packet.to_peer, connects))
}

/// Counts a packet the gate refused on its socket, reports the socket's first one, and says
/// whether to drop it (1: `CONFIG.enforce`) or let it go (0: observe only). A global function
/// of its own for the same reason as [`egress_judge`]: checked once, whatever way led here.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn egress_drop(cookie: u64, netns_cookie: u64, dst_hi: u64, dst_lo: u64, packed: u64) -> i32 {
    let packet = EgressPacket::unpack(packed);
    let dst = Ip6 { hi: dst_hi, lo: dst_lo };
    let detail = packet.detail;
    let config = config();
    let refuse = config.enforce != 0 && (detail != egress::DESTINATION || config.egress_destinations != 0);
    let (kind, family) =
        if packet.v6 { (kind::EGRESS6, abi::AF_INET6) } else { (kind::EGRESS4, abi::AF_INET) };
    let (sock_type, protocol, port) = (packet.sock_type, packet.protocol, packet.port);
    let creator = Creator::Unknown { cgroup_id: config.cgroup_id };
    let mut report = true;
    let facts = facts_of(cookie, || netns_cookie, family, sock_type, protocol, creator);
    if config.exempt != 0 {
        // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
        let socket_exempt = facts.is_some_and(|facts| unsafe { (*facts).exempt != 0 });
        if packet.exempt || socket_exempt {
            count_exempt_packet(facts);
            return 0;
        }
    }
    if let Some(facts) = facts {
        // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
        unsafe {
            // Once per socket; and a destination a connect or send hook already reported as a
            // leak (observe-only mode) is not reported again.
            report = (*facts).egress_reported == 0 && (detail != egress::DESTINATION || (*facts).leaks == 0);
            (*facts).egress_reported = 1;
            bump(&raw mut (*facts).leaks);
            if refuse {
                bump(&raw mut (*facts).denied);
            }
        }
    }
    if report {
        emit(cookie, move |event| {
            event.kind = kind;
            event.cookie = cookie;
            event.netns_cookie = netns_cookie;
            event.sock_type = sock_type;
            event.protocol = protocol;
            event.family = family;
            // SAFETY: `event` is a valid, 8-byte aligned event; `addr` is at offset 48.
            unsafe { store_addr(&raw mut event.addr, dst) };
            event.port = port;
            event.verdict = if refuse { verdict::DENY } else { verdict::PASS };
            event.reason = reason::EGRESS_PACKET;
            event.detail = detail;
            event.cgroup_id = config.cgroup_id;
            if let Some(facts) = facts {
                // SAFETY: a live `SOCKETS` value, see `on_sock_addr`. The socket's creator:
                // a packet may leave where no task of the socket is current (softirq).
                unsafe {
                    event.pid_tgid = (*facts).pid_tgid;
                    event.uid_gid = (*facts).uid_gid;
                    event.comm = (*facts).comm;
                    event.cgroup_id = (*facts).cgroup_id;
                    event.family = (*facts).family;
                }
            }
        });
    }
    i32::from(refuse)
}

// ---------------------------------------------------------------------------------------------
// Exemptions (audit --exempt-cgroup, --exempt-user, --exempt-exe)
// ---------------------------------------------------------------------------------------------
//
// Checked only for what would be a leak, and only when `CONFIG.exempt` says something is
// exempt: proxy traffic and audits without exemptions never pay for them.

/// Whether the current task is exempt; if so, counts the operation (`kind`) in
/// `EXEMPT_COUNTS`.
#[inline(always)]
fn current_exempt(config: &Config, kind: u32) -> bool {
    let why = exempt_why(u64::from(config.exempt), u64::from(config.exempt_levels));
    // Opaque to LLVM, see `on_packet`.
    // SAFETY: a read of a local.
    let why = unsafe { core::ptr::read_volatile(&raw const why) };
    if why == 0 {
        return false;
    }
    exempt_count(u64::from(kind), why as u64);
    true
}

/// Why the current task is exempt ([`exempt`] bits, the first reason found), 0 if it is not:
/// its process runs an exempt executable (`PROCS`), its uid is exempt, or its cgroup or an
/// ancestor at one of the `levels` (bits) is. `bits` are `CONFIG.exempt`'s. A global function:
/// the verifier checks the level walk once per program.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn exempt_why(bits: u64, levels: u64) -> i32 {
    if bits & u64::from(exempt::EXE) != 0 {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        if let Some(record) = PROCS.get_ptr(tgid) {
            // SAFETY: a live `PROCS` value.
            if unsafe { (*record).flags } & proc_flags::EXEMPT != 0 {
                return i32::from(exempt::EXE);
            }
        }
    }
    if bits & u64::from(exempt::UID) != 0 {
        let uid = bpf_get_current_uid_gid() as u32;
        if EXEMPT_UIDS.get_ptr(uid).is_some() {
            return i32::from(exempt::UID);
        }
    }
    if bits & u64::from(exempt::CGROUP) != 0 {
        let mut level = 0;
        while level < EXEMPT_LEVELS {
            if (levels >> level) & 1 != 0 {
                // SAFETY: takes a level; answers 0 beyond the task's own level.
                let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
                if id == 0 {
                    break;
                }
                if EXEMPT_CGROUPS.get_ptr(id).is_some() {
                    return i32::from(exempt::CGROUP);
                }
            }
            level += 1;
        }
    }
    0
}

/// Counts one exempt operation (`kind`) of the current process in `EXEMPT_COUNTS`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn exempt_count(kind: u64, why: u64) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let counts = match EXEMPT_COUNTS.get_ptr_mut(tgid) {
        Some(counts) => counts,
        None => {
            let mut fresh = core::mem::MaybeUninit::<ExemptCount>::uninit();
            // SAFETY: zeroing makes it a valid `ExemptCount`; `comm` is 16 bytes and we pass
            // exactly that.
            unsafe {
                zero(fresh.as_mut_ptr());
                let fresh = fresh.assume_init_mut();
                fresh.uid = bpf_get_current_uid_gid() as u32;
                bpf_get_current_comm(fresh.comm.as_mut_ptr().cast::<c_void>(), 16);
                let _ = EXEMPT_COUNTS.insert(tgid, *fresh, u64::from(BPF_NOEXIST));
            }
            match EXEMPT_COUNTS.get_ptr_mut(tgid) {
                Some(counts) => counts,
                None => return 0,
            }
        }
    };
    let kind = kind as u32;
    // SAFETY: a live `EXEMPT_COUNTS` value.
    unsafe {
        (*counts).why |= why as u32;
        let counter = if kind == kind::CONNECT4 || kind == kind::CONNECT6 {
            &raw mut (*counts).connects
        } else if kind == kind::SENDMSG4 || kind == kind::SENDMSG6 {
            &raw mut (*counts).sends
        } else if kind == kind::BIND4 || kind == kind::BIND6 {
            &raw mut (*counts).binds
        } else {
            &raw mut (*counts).sockets
        };
        bump(counter);
    }
    0
}

/// Counts one packet the egress gate let go for an exempt socket, on the socket's creator
/// (tgid 0 when unknown).
#[inline(always)]
fn count_exempt_packet(facts: Option<*mut SockFacts>) {
    // SAFETY: a live `SOCKETS` value, see `on_sock_addr`.
    let (tgid, uid, comm) = match facts {
        Some(facts) => unsafe { (((*facts).pid_tgid >> 32) as u32, (*facts).uid_gid as u32, (*facts).comm) },
        None => (0, 0, [0; 16]),
    };
    let counts = match EXEMPT_COUNTS.get_ptr_mut(tgid) {
        Some(counts) => counts,
        None => {
            let mut fresh = core::mem::MaybeUninit::<ExemptCount>::uninit();
            // SAFETY: zeroing makes it a valid `ExemptCount`.
            unsafe {
                zero(fresh.as_mut_ptr());
                let fresh = fresh.assume_init_mut();
                fresh.uid = uid;
                fresh.comm = comm;
                let _ = EXEMPT_COUNTS.insert(tgid, *fresh, u64::from(BPF_NOEXIST));
            }
            match EXEMPT_COUNTS.get_ptr_mut(tgid) {
                Some(counts) => counts,
                None => return,
            }
        }
    };
    // SAFETY: a live `EXEMPT_COUNTS` value.
    unsafe { bump(&raw mut (*counts).packets) };
}

/// Whether the socket's creator (as `SOCKETS` recorded it) is exempt, for hooks that run where
/// no task is known (listen): the socket was already used by an exempt process, or its creator
/// runs an exempt executable, has an exempt uid, or created it in an exempt cgroup (that very
/// cgroup: its ancestors cannot be asked here).
///
/// # Safety
/// `facts` must point at a live `SOCKETS` value.
#[inline(always)]
unsafe fn creator_exempt(facts: *mut SockFacts) -> bool {
    // SAFETY: per the contract.
    let (socket_exempt, pid_tgid, uid_gid, cgroup_id) =
        unsafe { ((*facts).exempt, (*facts).pid_tgid, (*facts).uid_gid, (*facts).cgroup_id) };
    if socket_exempt != 0 {
        return true;
    }
    let why = exempt_creator(pid_tgid, uid_gid, cgroup_id);
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&raw const why) != 0 }
}

/// [`creator_exempt`]'s lookups: the [`exempt`] bit that exempts a creator, 0 if none does (or
/// the creator is unknown).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn exempt_creator(pid_tgid: u64, uid_gid: u64, cgroup_id: u64) -> i32 {
    if pid_tgid == 0 {
        return 0;
    }
    let bits = config().exempt;
    let tgid = (pid_tgid >> 32) as u32;
    if bits & exempt::EXE != 0 {
        if let Some(record) = PROCS.get_ptr(tgid) {
            // SAFETY: a live `PROCS` value.
            if unsafe { (*record).flags } & proc_flags::EXEMPT != 0 {
                return i32::from(exempt::EXE);
            }
        }
    }
    let uid = uid_gid as u32;
    if bits & exempt::UID != 0 && EXEMPT_UIDS.get_ptr(uid).is_some() {
        return i32::from(exempt::UID);
    }
    if bits & exempt::CGROUP != 0 && EXEMPT_CGROUPS.get_ptr(cgroup_id).is_some() {
        return i32::from(exempt::CGROUP);
    }
    0
}

/// Whether the owner of the packet's socket (its uid) or the socket's cgroup (or an ancestor at
/// an exempt level) is exempt. For sockets made before the audit started too.
#[inline(always)]
fn skb_exempt(ctx: &SkBuffContext, config: &Config) -> bool {
    // SAFETY: the program's own context.
    let exempt =
        unsafe { skb_exempt_why(ctx.skb.skb, u64::from(config.exempt), u64::from(config.exempt_levels)) };
    // Opaque to LLVM, see `on_packet`.
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&raw const exempt) != 0 }
}

/// [`skb_exempt`]'s lookups, a global function (the verifier checks the level walk once; it
/// takes the program's context as its context).
///
/// # Safety
/// `skb` must be the program's own context.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn skb_exempt_why(
    skb: *mut aya_ebpf::bindings::__sk_buff,
    bits: u64,
    levels: u64,
) -> i32 {
    let bits = bits as u8;
    let levels = levels as u32;
    if bits & exempt::UID != 0 {
        // SAFETY: the program's own, valid context.
        let uid = unsafe { bpf_get_socket_uid(skb) };
        if EXEMPT_UIDS.get_ptr(uid).is_some() {
            return 1;
        }
    }
    if bits & exempt::CGROUP != 0 {
        let mut level = 0;
        while level < EXEMPT_LEVELS {
            if (levels >> level) & 1 != 0 {
                // SAFETY: the program's own, valid context; answers 0 beyond the socket's level.
                let id = unsafe { bpf_skb_ancestor_cgroup_id(skb, level as i32) };
                if id == 0 {
                    break;
                }
                if EXEMPT_CGROUPS.get_ptr(id).is_some() {
                    return 1;
                }
            }
            level += 1;
        }
    }
    0
}

// ---------------------------------------------------------------------------------------------
// Process tracking (audit): exec, fork and exit, for exempt executables and for attribution
// that outlives the process
// ---------------------------------------------------------------------------------------------

/// `sched_process_exec`: `__data_loc char[] filename` (offset 8). Userspace checks the
/// tracepoint's format before it attaches the tracking programs.
const EXEC_FILENAME_LOC: usize = 8;
/// `sched_process_fork`: `pid_t child_pid`.
const FORK_CHILD_PID: usize = 20;
/// `sched_process_exit`: `bool group_dead`.
const EXIT_GROUP_DEAD: usize = 32;

/// Records the process's new executable: `PROCS[tgid]` with the file name `execve` was given,
/// its parent (kept from the fork), uid, cgroup and comm, marked exempt when that file name is
/// an exempt executable (an exec of anything else drops the mark).
#[tracepoint]
pub fn proc_exec(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(record) = PROC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the parent's id is a plain read of a live `PROCS` value.
    let ppid = PROCS.get_ptr(tgid).map_or(0, |known| unsafe { (*known).ppid });
    // SAFETY: the tracepoint's own record: a 4-byte field at a fixed offset.
    let loc: u32 = unsafe { ctx.read_at(EXEC_FILENAME_LOC) }.unwrap_or(0);
    // SAFETY: `record` is this CPU's live scratch value, consumed before we return (see
    // `facts_of`). The file name is read from the tracepoint's own record, where its
    // `__data_loc` says it is; the helper stops at `FILENAME_LEN` bytes and writes a NUL.
    unsafe {
        zero(record);
        (*record).ppid = ppid;
        (*record).flags = proc_flags::EXECED;
        (*record).uid_gid = bpf_get_current_uid_gid();
        (*record).cgroup_id = bpf_get_current_cgroup_id();
        (*record).start_ns = bpf_ktime_get_ns();
        bpf_get_current_comm((*record).comm.as_mut_ptr().cast::<c_void>(), 16);
        if loc != 0 {
            let src = ctx.as_ptr().cast::<u8>().add((loc & 0xffff) as usize);
            bpf_probe_read_kernel_str(
                (*record).filename.as_mut_ptr().cast::<c_void>(),
                FILENAME_LEN as u32,
                src.cast::<c_void>(),
            );
        }
        // By reference: the key stays in the scratch value (a copy would take 128 bytes of stack).
        #[allow(clippy::needless_borrows_for_generic_args)]
        let exempt_exe =
            config().exempt & exempt::EXE != 0 && EXEMPT_EXES.get_ptr(&(*record).filename).is_some();
        if exempt_exe {
            (*record).flags |= proc_flags::EXEMPT;
        }
        #[allow(clippy::needless_borrows_for_generic_args)]
        if PROCS.insert(tgid, &*record, 0).is_err() {
            count_procs_lost();
        }
    }
    0
}

/// The child inherits its parent's record (executable, exemption), with the parent as `ppid`.
/// Runs for new threads too: their record (keyed by thread id) is dropped when they exit.
#[tracepoint]
pub fn proc_fork(ctx: TracePointContext) -> u32 {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the tracepoint's own record: a 4-byte field at a fixed offset.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(FORK_CHILD_PID) }) else {
        return 0;
    };
    let Some(record) = PROC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `record` is this CPU's live scratch value (see `proc_exec`); `known` a live
    // `PROCS` value of the same layout.
    unsafe {
        match PROCS.get_ptr(parent) {
            Some(known) => copy_words(record, known),
            None => {
                zero(record);
                (*record).uid_gid = bpf_get_current_uid_gid();
                (*record).cgroup_id = bpf_get_current_cgroup_id();
            }
        }
        (*record).ppid = parent;
        (*record).flags &= !proc_flags::EXECED;
        (*record).start_ns = bpf_ktime_get_ns();
        (*record).exit_ns = 0;
        bpf_get_current_comm((*record).comm.as_mut_ptr().cast::<c_void>(), 16);
        #[allow(clippy::needless_borrows_for_generic_args)]
        if PROCS.insert(child, &*record, 0).is_err() {
            count_procs_lost();
        }
    }
    0
}

/// A thread's record goes; when the whole process is dead, its record moves to `GONE`.
#[tracepoint]
pub fn proc_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tid != tgid {
        let _ = PROCS.remove(tid);
    }
    // SAFETY: the tracepoint's own record: a 1-byte field at a fixed offset.
    let group_dead: u8 = unsafe { ctx.read_at(EXIT_GROUP_DEAD) }.unwrap_or(1);
    if group_dead != 0 {
        if let Some(record) = PROCS.get_ptr_mut(tgid) {
            // SAFETY: a live `PROCS` value; the insert copies it before the remove below.
            unsafe {
                (*record).exit_ns = bpf_ktime_get_ns();
                #[allow(clippy::needless_borrows_for_generic_args)]
                let _ = GONE.insert(tgid, &*record, 0);
            }
        }
        let _ = PROCS.remove(tgid);
    }
    0
}

/// Counts a record that did not fit in `PROCS`.
#[inline(always)]
fn count_procs_lost() {
    if let Some(slot) = PROCS_LOST.get_ptr_mut(0) {
        // SAFETY: this CPU's live, aligned u64 in `PROCS_LOST`.
        unsafe { bump(slot) };
    }
}

/// Copies `*src` to `*dst` one 8-byte word at a time (see `zero`).
///
/// # Safety
/// Both must be valid, 8-byte aligned `T`s of a multiple of 8 bytes.
#[inline(always)]
unsafe fn copy_words<T>(dst: *mut T, src: *const T) {
    const {
        assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() >= 8);
    }
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 8 {
        // SAFETY: per the contract.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// BPF LSM socket_create: socket creation by any path (io_uring's IORING_OP_SOCKET included)
// ---------------------------------------------------------------------------------------------

/// How many cgroup levels up [`in_our_cgroup`] looks for ours.
const CGROUP_LEVELS: i32 = 16;

/// The `socket_create` LSM hook: runs for every socket any task creates, whatever the path
/// (`socket(2)`, `socketpair(2)`, io_uring's `IORING_OP_SOCKET`), before the socket exists,
/// which no cgroup hook sees for families other than inet (`AF_PACKET` above all). For a task
/// in our cgroup (or below it), with `CONFIG.enforce`, refuses with `EPERM` what
/// `sockstrace_ebpf::judge_family` says no hook could gate afterwards: raw sockets and
/// families other than unix, inet, inet6 and netlink. Kernel-internal sockets pass.
///
/// Optional: not in `programs::ALL`; userspace loads it where the kernel offers BPF LSM and
/// lets io_uring in only then.
#[lsm(hook = "socket_create")]
pub fn socket_create(ctx: LsmContext) -> i32 {
    // `socket_create(int family, int type, int protocol, int kern)` and, last, the return value
    // of the LSM programs before us: plain integer arguments.
    let (family, sock_type, kern, before) =
        (ctx.arg::<i32>(0), ctx.arg::<i32>(1), ctx.arg::<i32>(3), ctx.arg::<i32>(4));
    if before != 0 {
        return before;
    }
    if kern != 0 || !sockstrace_ebpf::socket_family_refused(family as u32, (sock_type & 0xf) as u32) {
        return 0;
    }
    let config = config();
    if config.enforce == 0 || config.cgroup_id == 0 || !in_our_cgroup(config.cgroup_id) {
        return 0;
    }
    -1 // -EPERM
}

/// Whether the current task's cgroup is `ours` or below it.
#[inline(always)]
fn in_our_cgroup(ours: u64) -> bool {
    let mut level = 0;
    while level < CGROUP_LEVELS {
        // SAFETY: takes a level; answers 0 beyond the task's own level.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == ours {
            return true;
        }
        if id == 0 {
            return false;
        }
        level += 1;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// Whether the backstop allows a connect or send (`query`): `sockstrace_ebpf::judge_remote`,
/// with the kernel walking the rules; `judge_remote_matched` on the same query then names a
/// leak's reason.
///
/// The walk is `bpf_loop` (5.17+) over [`rule_step`]: the verifier checks that callback once,
/// with an unknown index, instead of walking an inline loop once per possible rule (up to 64
/// times, and all the code after the loop once per way out of it: seconds of verifier time).
/// If `bpf_loop` fails, nothing is marked matched: the operation is judged a leak (and a
/// warning says so).
///
/// It answers a bool, not a reason: each distinct constant the verifier sees steering the rest
/// of the program is one more path it checks to the end.
#[inline(always)]
fn judge_remote(config: &Config, query: &mut RuleQuery) -> bool {
    // SAFETY: `rule_step` has the callback signature `bpf_loop` expects, and `query` outlives
    // the call; the callback gets it back as its context.
    let walked = unsafe {
        bpf_loop(
            rules_in_force(config),
            rule_step as *mut c_void,
            core::ptr::from_mut(query).cast::<c_void>(),
            0,
        )
    };
    if walked < 0 {
        log_rule_walk_failed(walked);
    }
    remote_allowed(config, query)
}

/// One step of [`judge_remote`]'s walk: does `RULES[index]` let `ctx` (a [`RuleQuery`])
/// through? Returns 1 (stop) once one does, 0 (go on) otherwise.
#[inline(never)]
extern "C" fn rule_step(index: u64, ctx: *mut c_void) -> i64 {
    let query = ctx.cast::<RuleQuery>();
    let Some(rule) = RULES.get(index as u32) else {
        return 0;
    };
    // SAFETY: `ctx` is the `RuleQuery` on `judge_remote`'s stack, alive for the whole loop.
    unsafe {
        if (*query).matches(rule) {
            (*query).matched = 1;
            return 1;
        }
    }
    0
}

/// The backstop's settings; all zero (observe only, no rules) if userspace wrote none.
#[inline(always)]
fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// Who a new `SOCKETS` entry names as the socket's creator.
#[derive(Clone, Copy)]
enum Creator {
    /// The current task: a hook running in the context of a call on the socket.
    Current,
    /// Unknown (softirq context); the socket is in the cgroup we are attached to.
    Unknown { cgroup_id: u64 },
}

/// The socket's `SOCKETS` entry, created on first sight.
#[inline(always)]
fn facts_of(
    cookie: u64,
    netns_cookie: impl FnOnce() -> u64,
    family: u16,
    sock_type: u16,
    protocol: u16,
    creator: Creator,
) -> Option<*mut SockFacts> {
    if let Some(facts) = SOCKETS.get_ptr_mut(cookie) {
        return Some(facts);
    }
    let fresh = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: `fresh` points at this CPU's live `SCRATCH` value; programs do not migrate
    // between CPUs, and the value is consumed (copied by the insert) before we return.
    unsafe {
        zero(fresh);
        (*fresh).netns_cookie = netns_cookie();
        (*fresh).family = family;
        (*fresh).sock_type = sock_type;
        (*fresh).protocol = protocol;
        match creator {
            Creator::Current => {
                // SAFETY: takes no argument.
                (*fresh).cgroup_id = bpf_get_current_cgroup_id();
                fill_task(&mut (*fresh).pid_tgid, &mut (*fresh).uid_gid, &mut (*fresh).comm);
            }
            Creator::Unknown { cgroup_id } => (*fresh).cgroup_id = cgroup_id,
        }
        // NOEXIST: if another CPU created it meanwhile, keep theirs.
        // By reference: the helper copies straight from the scratch value (a copy by value
        // would land on the stack, which is what the scratch map avoids).
        #[allow(clippy::needless_borrows_for_generic_args)]
        let _ = SOCKETS.insert(cookie, &*fresh, u64::from(BPF_NOEXIST));
    }
    SOCKETS.get_ptr_mut(cookie)
}

/// The current task's ids and comm.
#[inline(always)]
fn fill_task(pid_tgid: &mut u64, uid_gid: &mut u64, comm: &mut [u8; 16]) {
    *pid_tgid = bpf_get_current_pid_tgid();
    *uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `comm` is a 16-byte buffer and we pass exactly its size; on failure the helper
    // zeroes it, which is what we want anyway.
    unsafe {
        bpf_get_current_comm(comm.as_mut_ptr().cast::<c_void>(), comm.len() as u32);
    }
}

/// Adds one to a counter in map memory.
///
/// A plain read-modify-write: `core` offers no atomic add for the BPF target. Two hooks racing
/// on the same socket (or a program preempting another on the same CPU) can lose one count.
///
/// # Safety
/// `counter` must point at a live, 8-byte aligned `u64` in a map value.
#[inline(always)]
unsafe fn bump(counter: *mut u64) {
    // SAFETY: per the contract.
    unsafe { *counter = (*counter).wrapping_add(1) };
}

/// Zeroes `*value` (8-byte aligned, a multiple of 8 bytes) with one 8-byte store per word.
///
/// `write_bytes` would become a call to the builtin `memset`, a byte-by-byte loop the verifier
/// walks once per byte (152 turns for a `SockFacts`) at every call site. Volatile stores are
/// never merged back into a `memset`.
///
/// # Safety
/// `value` must be valid for writes of a `T`, and any bit pattern must be a valid `T`.
#[inline(always)]
unsafe fn zero<T>(value: *mut T) {
    const {
        assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() >= 8);
    }
    let words = value.cast::<u64>();
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 8 {
        // SAFETY: per the contract, word `i` lies within `*value` and is aligned.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

/// Writes `addr` as its 16 bytes (network order) with two 8-byte stores: a plain copy of
/// `to_bytes()` becomes a byte-by-byte `memset` call for the zero bytes of a v4-mapped address.
///
/// # Safety
/// `dst` must be valid for writes and 8-byte aligned (every address field of our map values and
/// events is).
#[inline(always)]
unsafe fn store_addr(dst: *mut [u8; 16], addr: Ip6) {
    let words = dst.cast::<u64>();
    // SAFETY: per the contract; the two words are the array's two halves.
    unsafe {
        core::ptr::write_volatile(words, addr.hi.to_be());
        core::ptr::write_volatile(words.add(1), addr.lo.to_be());
    }
}

/// Reserves a zeroed event in the ring buffer, lets `fill` describe it there (no stack copy) and
/// submits it; counts it as dropped when the buffer is full, with a warning for this CPU's 1st,
/// 2nd, 4th, 8th, ... drop (a flood costs a few lines, not one per event) naming the socket
/// (`cookie`) of the lost event.
///
/// Callers pass `move` closures: a value captured by reference lives in stack memory, and a
/// `bool` stored there as one byte reads back as 0..=255 to the verifier (a hook's return value
/// derived from it is then refused for not being 0 or 1).
#[inline(always)]
fn emit(cookie: u64, fill: impl FnOnce(&mut SockEvent)) {
    match EVENTS.reserve::<SockEvent>(0) {
        Some(mut entry) => {
            let event = entry.as_mut_ptr();
            // SAFETY: `event` points at `size_of::<SockEvent>()` reserved, 8-byte aligned ring
            // buffer bytes that only we touch until submit; zeroing makes them a valid event.
            unsafe {
                zero(event);
                fill(&mut *event);
            }
            entry.submit(0);
        }
        None => {
            let lost = count_dropped();
            if lost != 0 && lost & (lost - 1) == 0 {
                log_ring_full(cookie, lost);
            }
        }
    }
}

/// Counts one lost event; returns this CPU's count so far (0 if the counter cannot be had).
#[inline(always)]
fn count_dropped() -> u64 {
    match DROPPED.get_ptr_mut(0) {
        // SAFETY: `slot` points at this CPU's live, aligned u64 in `DROPPED`.
        Some(slot) => unsafe {
            bump(slot);
            *slot
        },
        None => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Diagnostics (aya-log): rare events worth a line on sockstrace's stderr
// ---------------------------------------------------------------------------------------------
//
// Each message is a global function (`no_mangle`, external linkage): the verifier checks it once
// per program, on its own, however many paths of the program call it. An aya-log statement is
// costly to verify: its copy code is walked once for each record size class it might reserve
// (64, 128, ... 8192 bytes), 2,000 to 3,000 instructions in all, so inline it would cost that
// on every path reaching it (the sock_addr programs went from 4,000 to 240,000). Hence also few
// messages per program, short texts and numbers only. A message below the level userspace loads
// the object with (`AYA_LOG_LEVEL`, read-only) is dead code to the verifier.
// The context argument of the macros is unused by aya-log 0.2 (records go to its ring buffer),
// so the functions take none, which keeps their arguments plain scalars as global functions need.

/// The event ring buffer was full: an event of socket `cookie` is lost, the `lost`th on this CPU.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn log_ring_full(cookie: u64, lost: u64) -> i32 {
    warn!(&(), "ring buffer full: event of socket {} lost ({} on this CPU)", cookie, lost);
    0
}

/// `bpf_loop` over the rules failed with `err`: nothing matched, so the operation was judged
/// a leak (failing closed).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn log_rule_walk_failed(err: i64) -> i32 {
    warn!(&(), "bpf_loop failed ({}): judged a leak", err);
    0
}

/// A sock_addr hook got a sockaddr of another family than its own: the caller's doing, so only
/// at debug level. `AF_UNSPEC` (bind4 takes it for INADDR_ANY, sendmsg4 for "no address"), or
/// another family on an IPv6 socket, which reaches the *6 hooks before the kernel refuses it
/// (EAFNOSUPPORT); the address words then hold whatever the caller's bytes were.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn log_sockaddr_family(given: u32, socket: u32) -> i32 {
    debug!(&(), "sockaddr family {} on socket family {}", given, socket);
    0
}

// ---------------------------------------------------------------------------------------------
// UDP through the proxy: replies show the original peer
// ---------------------------------------------------------------------------------------------

/// The program socket's shim address (where the supervisor delivers a relayed reply from) to
/// the peer the program addressed; written by the supervisor only.
#[map]
static UDP_PEERS: HashMap<UdpPeerKey, UdpPeer> = HashMap::with_max_entries(UDP_PEERS_MAX_ENTRIES, 0);

/// Whether a connect or send (`query`) goes to socket `cookie`'s own shim (1) or not (0): UDP
/// to loopback whose (socket, address, port) the supervisor entered in `UDP_PEERS` before
/// connecting the socket there. Nothing else reaches a shim address: not another socket's
/// shim, not a host service on `::1`. Asked before the rule walk and counted as a matched
/// rule: an unknown 0 or 1 to the verifier, so the rest of the hook is checked as before.
#[inline(always)]
fn own_shim(cookie: u64, query: &RuleQuery) -> u8 {
    let packed = u64::from(query.port) | u64::from(query.sock_type) << 16 | u64::from(query.protocol) << 32;
    let found = shim_registered(cookie, query.addr.hi, query.addr.lo, packed);
    // Opaque to LLVM, see `on_packet`: one unknown answer, not one path per way to it.
    // SAFETY: a read of a local.
    (unsafe { core::ptr::read_volatile(&raw const found) } & 1) as u8
}

/// Whether socket `cookie`'s UDP may go to `hi`/`lo` and the port, type and protocol packed in
/// `packed` (16 bits each) because `UDP_PEERS` holds that address as its shim: 1 if so, else 0.
/// A global function, so the verifier checks the test and the lookup once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn shim_registered(cookie: u64, hi: u64, lo: u64, packed: u64) -> i32 {
    let (addr, port) = (Ip6 { hi, lo }, packed as u16);
    let query = RuleQuery::new(addr, port, (packed >> 16) as u16, (packed >> 32) as u16);
    if !may_be_shim(query.transport(), addr, port) {
        return 0;
    }
    i32::from(UDP_PEERS.get_ptr(UdpPeerKey::new(cookie, addr, port)).is_some())
}

/// The source address `recvfrom`/`recvmsg`/`recvmmsg` report for a datagram of an IPv4 socket.
#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    peer_as_seen4(&ctx);
    ALLOW
}

/// The same for an IPv6 socket (IPv4 peers in `::ffff:a.b.c.d` form).
#[cgroup_sock_addr(recvmsg6)]
pub fn recvmsg6(ctx: SockAddrContext) -> i32 {
    peer_as_seen6(&ctx);
    ALLOW
}

/// The peer `getpeername` reports for a connected IPv4 socket.
#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    peer_as_seen4(&ctx);
    ALLOW
}

/// The peer `getpeername` reports for a connected IPv6 socket.
#[cgroup_sock_addr(getpeername6)]
pub fn getpeername6(ctx: SockAddrContext) -> i32 {
    peer_as_seen6(&ctx);
    ALLOW
}

/// `::ffff:0.0.0.0` in the kernel's network-order words: the third word of a v4-mapped address.
const V4_MAPPED_WORD: u32 = 0xffffu32.to_be();

/// Rewrites an IPv4 source address found in `UDP_PEERS` to the original peer.
#[inline(always)]
fn peer_as_seen4(ctx: &SockAddrContext) {
    let sa = ctx.sock_addr;
    // SAFETY: `user_ip4` and `user_port` are 4-byte context reads the recvmsg4 and getpeername4
    // hooks allow; the helper takes the program's own context.
    let (ip, port, cookie) =
        unsafe { ((*sa).user_ip4, (*sa).user_port, bpf_get_socket_cookie(ctx.as_ptr())) };
    let key = UdpPeerKey { cookie, ip: [0, 0, V4_MAPPED_WORD, ip], port, _pad: 0 };
    // SAFETY: a hash map lookup; the value is copied out at once.
    let Some(peer) = (unsafe { UDP_PEERS.get(key) }) else { return };
    let (peer_ip, peer_port) = (peer.ip[3], peer.port);
    // SAFETY: 4-byte context writes these hooks allow.
    unsafe {
        core::ptr::write_volatile(&raw mut (*sa).user_ip4, peer_ip);
        core::ptr::write_volatile(&raw mut (*sa).user_port, peer_port);
    }
}

/// Rewrites an IPv6 source address found in `UDP_PEERS` to the original peer.
#[inline(always)]
fn peer_as_seen6(ctx: &SockAddrContext) {
    let sa = ctx.sock_addr;
    // SAFETY: as in `peer_as_seen4`, for `user_ip6` (four 4-byte reads).
    let (ip, port, cookie) =
        unsafe { (words4!(sa, user_ip6), (*sa).user_port, bpf_get_socket_cookie(ctx.as_ptr())) };
    let key = UdpPeerKey { cookie, ip, port, _pad: 0 };
    // SAFETY: as in `peer_as_seen4`.
    let Some(peer) = (unsafe { UDP_PEERS.get(key) }) else { return };
    let (w, peer_port) = (peer.ip, peer.port);
    // SAFETY: 4-byte context writes these hooks allow.
    unsafe {
        core::ptr::write_volatile(&raw mut (*sa).user_ip6[0], w[0]);
        core::ptr::write_volatile(&raw mut (*sa).user_ip6[1], w[1]);
        core::ptr::write_volatile(&raw mut (*sa).user_ip6[2], w[2]);
        core::ptr::write_volatile(&raw mut (*sa).user_ip6[3], w[3]);
        core::ptr::write_volatile(&raw mut (*sa).user_port, peer_port);
    }
}

/// GPL-compatible so every helper is available to the verifier; the crate itself is MIT/Apache.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects reachable loops, so any path that can panic fails to load: panics are
    // caught at load time, never at run time.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("sockstrace-ebpf is an eBPF object: sockstrace builds it for bpfel and loads it");
    std::process::exit(2);
}
