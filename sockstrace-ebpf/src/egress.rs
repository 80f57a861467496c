//! cgroup_skb egress: the gate on each outgoing packet.

use aya_ebpf::{
    bindings::{__sk_buff, BPF_TCP_LISTEN},
    helpers::generated::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_sk_fullsock},
    macros::cgroup_skb,
    programs::SkBuffContext,
    EbpfContext as _,
};
use sockstrace_common::{
    abi, egress, egress_fast_pass, egress_reply_allowed, kind, loopback_misrouted, reason, verdict, Ip6,
    RuleQuery,
};

use crate::exemptions::{any_exempt, count_exempt_packet, skb_exempt};
use crate::maps::INBOUND;
use crate::shared::{bump, config, emit, facts_get, facts_of, rules_allow, store_addr, words4, Creator};

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
/// Fast path (bulk traffic through a loopback proxy): the IP header read directly (see
/// [`direct_fast_pass`]), then a loopback destination on the loopback device without options
/// passes.
#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: a cgroup_skb program's context is a valid `__sk_buff`; `ifindex` (the output
    // device at egress) and `protocol` are 4-byte reads allowed here.
    let (ifindex, protocol) = unsafe { ((*skb).ifindex, (*skb).protocol) };
    if direct_fast_pass(skb, ifindex, protocol) {
        return PASS_PACKET;
    }
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

/// The fast path by direct packet access, without the load helper's call: at this hook the
/// packet's data starts at its IP header, and a locally sent packet's headers are in its
/// linear part. Whatever this does not pass (headers not there, or not the plain loopback
/// case) goes the helper's way, which judges it in full.
#[inline(always)]
fn direct_fast_pass(skb: *mut __sk_buff, ifindex: u32, protocol: u32) -> bool {
    if ifindex != egress::LOOPBACK_IFINDEX {
        return false;
    }
    // SAFETY: a cgroup_skb program may read `data` and `data_end` (the verifier turns them into
    // packet pointers); each read below is within the bounds checked right before it.
    unsafe {
        let (data, data_end) = ((*skb).data as usize, (*skb).data_end as usize);
        let header = data as *const u32;
        if protocol == ETH_P_IP_WORD && data + 20 <= data_end {
            let version_ihl = core::ptr::read_volatile(header) & 0xff;
            let dst = Ip6::from_v4_word(core::ptr::read_volatile(header.add(4)));
            version_ihl == 0x45 && egress_fast_pass(dst, ifindex)
        } else if protocol == ETH_P_IPV6_WORD && data + 40 <= data_end {
            let nexthdr = ((core::ptr::read_volatile(header.add(1)) >> 16) & 0xff) as u8;
            let dst = Ip6::from_words([
                core::ptr::read_volatile(header.add(6)),
                core::ptr::read_volatile(header.add(7)),
                core::ptr::read_volatile(header.add(8)),
                core::ptr::read_volatile(header.add(9)),
            ]);
            (nexthdr == egress::NEXTHDR_TCP || nexthdr == egress::NEXTHDR_UDP)
                && egress_fast_pass(dst, ifindex)
        } else {
            false
        }
    }
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
    let exempt = any_exempt(&config) && skb_exempt(ctx, &config);
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
        let packet = EgressPacket::unpack(packed);
        let socket =
            RuleQuery::new(Ip6 { hi: dst_hi, lo: dst_lo }, packet.port, packet.sock_type, packet.protocol)
                .pack_socket();
        if rules_allow(dst_hi, dst_lo, socket) == 1 || egress_reply(cookie, packed) == 1 {
            return 0;
        }
        detail = egress::DESTINATION;
    }
    let packed = (packed & !0xff00) | u64::from(detail) << 8;
    egress_drop(cookie, netns_cookie, dst_hi, dst_lo, packed)
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
        match facts_get(cookie) {
            // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
            Some(facts) => unsafe { (*facts).connects },
            // Facts given to newer sockets: an accepted connection is still one (never
            // connected: it was established passively).
            None if INBOUND.get_ptr(cookie).is_some() => 0,
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
    if any_exempt(&config) {
        // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
        let socket_exempt = facts.is_some_and(|facts| unsafe { (*facts).exempt != 0 });
        if packet.exempt || socket_exempt {
            count_exempt_packet(facts);
            return 0;
        }
    }
    if let Some(facts) = facts {
        // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
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
        emit(move |event| {
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
                // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`. The socket's creator:
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
