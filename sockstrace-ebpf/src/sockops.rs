//! sockops: TCP state changes, local address, bytes; listen.

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TCP_CONNECT_CB, BPF_SOCK_OPS_TCP_LISTEN_CB,
        BPF_TCP_ESTABLISHED, BPF_TCP_LISTEN, BPF_TCP_SYN_SENT,
    },
    helpers::generated::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::sock_ops,
    programs::SockOpsContext,
    EbpfContext as _,
};
use sockstrace_common::{abi, judge_listen, kind, reason, verdict, Ip6};

use crate::exemptions::{any_exempt, creator_exempt};
use crate::maps::INBOUND;
use crate::shared::{bump, config, emit, facts_of, store_addr, words4, Creator};

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
    if op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB {
        // Kept apart from `SOCKETS`, whose facts a churn of newer sockets can take: the egress
        // gate still knows this connection's replies as replies (`egress::egress_reply`).
        let _ = INBOUND.insert(cookie, 1, 0);
    }
    // Runs in softirq context for most callbacks: no task to speak of.
    let creator = Creator::Unknown { cgroup_id: config().cgroup_id };
    let Some(facts) = facts_of(cookie, netns_cookie, family, abi::SOCK_STREAM, abi::IPPROTO_TCP, creator)
    else {
        return SOCK_OPS_OK;
    };
    let leak = if op == BPF_SOCK_OPS_TCP_LISTEN_CB {
        let judged = judge_listen(local, config().allow_inbound_listen != 0);
        // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
        if judged != reason::NONE && any_exempt(&config()) && unsafe { creator_exempt(facts) } {
            reason::NONE
        } else {
            judged
        }
    } else {
        reason::NONE
    };
    // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
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
        emit(move |event| {
            event.kind = kind::LISTEN;
            event.family = family;
            event.cookie = cookie;
            // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`.
            event.netns_cookie = unsafe { (*facts).netns_cookie };
            // SAFETY: `event` is a valid, 8-byte aligned event; `addr` is at offset 48.
            unsafe { store_addr(&raw mut event.addr, local) };
            event.port = local_port;
            event.verdict = verdict::PASS;
            event.reason = leak;
            // SAFETY: a live `SOCKETS` value, see `sock_addr::on_sock_addr`. The creator, since no caller
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
