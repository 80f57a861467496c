//! cgroup sock_addr: connect, sendmsg (UDP with an address), bind.

use aya_ebpf::{
    bindings::bpf_sock,
    helpers::generated::{bpf_get_current_cgroup_id, bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
    EbpfContext as _,
};
use sockstrace_common::{abi, judge_bind, kind, reason, remote_leak_reason, verdict, Ip6, RuleQuery};

use crate::exemptions::{any_exempt, current_exempt};
use crate::log_sockaddr_family;
use crate::shared::{
    bump, config, emit, facts_get, facts_of, fill_task, rules_allow, store_addr, words4, Creator, ALLOW,
    REFUSE,
};
use crate::udp_peers::own_shim;

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
    // SAFETY: as above.
    let netns_cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    let config = config();
    let is_bind = kind == kind::BIND4 || kind == kind::BIND6;
    // Only whether it is a leak steers what follows; its reason is worked out where the event
    // takes it (see `shared::judge_remote`).
    let query = RuleQuery::new(addr, port, sock_type, protocol);
    let judged_leak = if is_bind {
        judge_bind(sock_type, addr, port, config.allow_inbound_bind != 0) != reason::NONE
    } else {
        // A socket's own shim counts as a matched rule.
        let allowed =
            own_shim(cookie, &query) != 0 || rules_allow(addr.hi, addr.lo, query.pack_socket()) != 0;
        !allowed
    };
    // Only a leak pays for the exemption check (proxy traffic never does), and only when
    // something is exempt at all.
    let exempt = judged_leak && any_exempt(&config) && current_exempt(&config, kind);
    let leak = judged_leak && !exempt;
    let refuse = leak && config.enforce != 0;

    let update =
        FactsUpdate { v6: family == abi::AF_INET6, kind, sock_type, protocol, port, leak, refuse, exempt };
    let cgroup_id = sock_addr_facts(cookie, netns_cookie, addr.hi, addr.lo, update.pack());
    // The socket's own source, once the kernel has picked one (bound, or sent before).
    // SAFETY: `sk` is the context's socket, a full `bpf_sock` in every sock_addr hook; its
    // `src_port`, `src_ip4` and `src_ip6` are readable.
    unsafe {
        let sk: *mut bpf_sock = (*sa).__bindgen_anon_1.sk;
        let src_port = (*sk).src_port as u16;
        if !is_bind && src_port != 0 {
            let src = if family == abi::AF_INET6 {
                Ip6::from_words(words4!(sk, src_ip6))
            } else {
                Ip6::from_v4_word((*sk).src_ip4)
            };
            sock_addr_source(cookie, src.hi, src.lo, u64::from(src_port));
        }
    }
    if leak {
        emit(move |event| {
            event.kind = kind;
            event.family = family;
            event.sock_type = sock_type;
            event.protocol = protocol;
            event.cookie = cookie;
            event.netns_cookie = netns_cookie;
            event.cgroup_id = if cgroup_id != 0 {
                cgroup_id
            } else {
                // SAFETY: takes no argument.
                unsafe { bpf_get_current_cgroup_id() }
            };
            // SAFETY: `event` is a valid, 8-byte aligned event; `addr` is at offset 48.
            unsafe { store_addr(&raw mut event.addr, addr) };
            event.port = port;
            event.verdict = if refuse { verdict::DENY } else { verdict::PASS };
            event.reason = if is_bind {
                judge_bind(sock_type, addr, port, config.allow_inbound_bind != 0)
            } else {
                // Nothing allowed it (a leak): the reason `judge_remote_matched` gives then.
                remote_leak_reason(query.transport(), port)
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

/// What one connect, send or bind tells its socket's facts, packed into one word for
/// [`sock_addr_facts`] (BPF functions take at most five arguments).
struct FactsUpdate {
    v6: bool,
    kind: u32,
    sock_type: u16,
    protocol: u16,
    port: u16,
    leak: bool,
    refuse: bool,
    exempt: bool,
}

impl FactsUpdate {
    #[inline(always)]
    fn pack(&self) -> u64 {
        u64::from(self.v6)
            | u64::from(self.kind & 0x7) << 1
            | u64::from(self.leak) << 4
            | u64::from(self.refuse) << 5
            | u64::from(self.exempt) << 6
            | u64::from(self.sock_type & 0xff) << 8
            | u64::from(self.protocol) << 16
            | u64::from(self.port) << 32
    }

    #[inline(always)]
    fn unpack(word: u64) -> Self {
        Self {
            v6: word & 1 != 0,
            kind: ((word >> 1) & 0x7) as u32,
            leak: (word >> 4) & 1 != 0,
            refuse: (word >> 5) & 1 != 0,
            exempt: (word >> 6) & 1 != 0,
            sock_type: ((word >> 8) & 0xff) as u16,
            protocol: (word >> 16) as u16,
            port: (word >> 32) as u16,
        }
    }
}

/// Records one connect, send or bind to `addr_hi`:`addr_lo` (an [`Ip6`]'s halves) in its
/// socket's facts (taken on first sight, the caller its creator); returns the socket's cgroup
/// id, 0 if it has no facts.
///
/// A global function (`no_mangle`, scalar arguments): the verifier checks the slot choice and
/// the stores once, on their own, instead of once per way the judgement reaches them (that
/// cost each IPv6 hook 2,000 instructions more, each IPv4 one 500).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sock_addr_facts(
    cookie: u64,
    netns_cookie: u64,
    addr_hi: u64,
    addr_lo: u64,
    packed: u64,
) -> u64 {
    let update = FactsUpdate::unpack(packed);
    let family = if update.v6 { abi::AF_INET6 } else { abi::AF_INET };
    let Some(facts) =
        facts_of(cookie, || netns_cookie, family, update.sock_type, update.protocol, Creator::Current)
    else {
        return 0;
    };
    let addr = Ip6 { hi: addr_hi, lo: addr_lo };
    let is_bind = update.kind == kind::BIND4 || update.kind == kind::BIND6;
    // SAFETY: `facts` points at a live `SOCKETS` value (array memory stays valid for the
    // program's run, even if the slot goes to another socket meanwhile: see
    // `shared::facts_get`). Concurrent hooks on the same socket may interleave their plain
    // stores (see `shared::bump`).
    unsafe {
        if update.exempt {
            // Marked for the egress gate.
            (*facts).exempt = 1;
        }
        if is_bind {
            store_addr(&raw mut (*facts).src_addr, addr);
            (*facts).src_port = update.port;
        } else {
            store_addr(&raw mut (*facts).dst_addr, addr);
            (*facts).dst_port = update.port;
            let counter = if update.kind == kind::CONNECT4 || update.kind == kind::CONNECT6 {
                &raw mut (*facts).connects
            } else {
                &raw mut (*facts).sends
            };
            bump(counter);
        }
        if update.leak {
            bump(&raw mut (*facts).leaks);
            if update.refuse {
                bump(&raw mut (*facts).denied);
            }
        }
        (*facts).cgroup_id
    }
}

/// Records the socket's own source address and port (an [`Ip6`]'s halves), once the kernel has
/// picked them, in its facts if it has any. A global function, as [`sock_addr_facts`].
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sock_addr_source(cookie: u64, src_hi: u64, src_lo: u64, src_port: u64) -> i32 {
    let Some(facts) = facts_get(cookie) else {
        return 0;
    };
    // SAFETY: a live `SOCKETS` value, as in `sock_addr_facts`.
    unsafe {
        (*facts).src_port = src_port as u16;
        store_addr(&raw mut (*facts).src_addr, Ip6 { hi: src_hi, lo: src_lo });
    }
    1
}
