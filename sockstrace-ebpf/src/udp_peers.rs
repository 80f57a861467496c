//! UDP through the proxy: replies show the original peer.

use aya_ebpf::{
    helpers::generated::bpf_get_socket_cookie, macros::cgroup_sock_addr, programs::SockAddrContext,
    EbpfContext as _,
};
use sockstrace_common::{may_be_shim, Ip6, RuleQuery, UdpPeerKey};

use crate::maps::UDP_PEERS;
use crate::shared::{words4, ALLOW};

/// Whether a connect or send (`query`) goes to socket `cookie`'s own shim (1) or not (0): UDP
/// to loopback whose (socket, address, port) the supervisor entered in `UDP_PEERS` before
/// connecting the socket there. Nothing else reaches a shim address: not another socket's
/// shim, not a host service on `::1`. Asked before the rule walk and counted as a matched
/// rule: an unknown 0 or 1 to the verifier, so the rest of the hook is checked as before.
#[inline(always)]
pub(crate) fn own_shim(cookie: u64, query: &RuleQuery) -> u8 {
    let found = shim_registered(cookie, query.addr.hi, query.addr.lo, query.pack_socket());
    // Opaque to LLVM, see `egress::on_packet`: one unknown answer, not one path per way to it.
    // SAFETY: a read of a local.
    (unsafe { core::ptr::read_volatile(&raw const found) } & 1) as u8
}

/// Whether socket `cookie`'s UDP may go to `hi`/`lo` and the port, type and protocol packed in
/// `packed` ([`RuleQuery::pack_socket`]) because `UDP_PEERS` holds that address as its shim: 1 if so, else 0.
/// A global function, so the verifier checks the test and the lookup once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn shim_registered(cookie: u64, hi: u64, lo: u64, packed: u64) -> i32 {
    let query = RuleQuery::unpack(Ip6 { hi, lo }, packed);
    let (addr, port) = (query.addr, query.port);
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
