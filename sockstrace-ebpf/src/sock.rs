//! cgroup sock: socket creation, and the address a bind settled on.

use aya_ebpf::{
    helpers::generated::{bpf_get_current_cgroup_id, bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock,
    programs::SockContext,
    EbpfContext as _,
};
use sockstrace_common::{judge_create, kind, reason, verdict, Ip6};

use crate::exemptions::{any_exempt, current_exempt};
use crate::shared::{
    bump, config, emit, facts_of, fill_task, record_new, store_addr, words4, Creator, ALLOW, REFUSE,
};

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
    let exempt = judged != reason::NONE && any_exempt(&config) && current_exempt(&config, kind::SOCK_CREATE);
    let leak = if exempt { reason::NONE } else { judged };
    let refuse = leak != reason::NONE && config.enforce != 0;
    // A new socket: its slot is taken without a lookup (see `shared::record_new`).
    let facts = record_new(cookie, netns_cookie, family, sock_type, protocol, Creator::Current);
    if leak != reason::NONE {
        if let Some(facts) = facts {
            // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
            unsafe {
                bump(&raw mut (*facts).leaks);
                if refuse {
                    bump(&raw mut (*facts).denied);
                }
            }
        }
        emit(move |event| {
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
        // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
        unsafe {
            store_addr(&raw mut (*facts).src_addr, addr);
            (*facts).src_port = port;
        }
    }
    ALLOW
}
