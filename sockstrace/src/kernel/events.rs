//! Leaks the kernel saw: `SockEvent`s from the `EVENTS` ring buffer, parsed and delivered on a
//! tokio channel.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use serde::Serialize;
use sockstrace_common::{egress, kind, reason, verdict, SockEvent};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::facts::socket_addr;
use crate::net::socket::SocketFacts;
use crate::policy::{Decision, Reason};
use crate::report_writer::{Action, Event, ProcessInfo};

/// One leak a kernel hook saw, refused (`denied`) or let through (observe-only mode, or a hook
/// that cannot refuse, like listen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelEvent {
    /// The hook: `connect4`, `connect6`, `sendmsg4`, `sendmsg6`, `bind4`, `bind6`,
    /// `sock_create`, `listen`, `egress4`, `egress6` (the egress gate: a packet).
    pub hook: &'static str,
    /// Socket cookie; equals `getsockopt(SO_COOKIE)` on the socket (0 never occurs for a live
    /// socket, but a refused `socket(2)` leaves no fd to ask).
    pub cookie: u64,
    /// The calling task: thread group id and thread. For a call the supervisor performs on its
    /// duplicate of the socket, that is the supervisor; for `listen`, the socket's creator.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// cgroup v2 id of the socket's cgroup.
    pub cgroup_id: u64,
    pub netns_cookie: u64,
    /// The socket's family, type and protocol.
    #[serde(skip)]
    pub socket: SocketFacts,
    /// Destination of a connect or send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<SocketAddr>,
    /// Local address of a bind or listen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// The policy's name for the leak (`direct-tcp`, `dns-udp`, `raw-socket`, ...).
    pub reason: &'static str,
    /// The kernel refused the call (`EPERM`), or dropped the packet.
    pub denied: bool,
    /// The egress gate's finding (`ipv4-options`, `ipv6-routing-header`,
    /// `loopback-on-device`, `destination`, ...); `None` for the other hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    /// For `setsockopt`: the option's level and name (the kernel's `int` arguments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option: Option<(i32, i32)>,
}

impl KernelEvent {
    /// Translates a ring buffer record.
    pub fn from_raw(raw: &SockEvent) -> Self {
        let addr = socket_addr(&raw.addr, raw.port);
        let egress = matches!(raw.kind, kind::EGRESS4 | kind::EGRESS6);
        let (dst, local) = match raw.kind {
            kind::CONNECT4
            | kind::CONNECT6
            | kind::SENDMSG4
            | kind::SENDMSG6
            | kind::EGRESS4
            | kind::EGRESS6 => (Some(addr), None),
            kind::BIND4 | kind::BIND6 | kind::LISTEN => (None, Some(addr)),
            _ => (None, None),
        };
        let mut event = Self {
            hook: kind::name(raw.kind),
            cookie: raw.cookie,
            pid: raw.pid(),
            tid: raw.tid(),
            uid: raw.uid(),
            gid: raw.gid(),
            comm: String::from_utf8_lossy(raw.comm_bytes()).into_owned(),
            cgroup_id: raw.cgroup_id,
            netns_cookie: raw.netns_cookie,
            socket: SocketFacts {
                family: i32::from(raw.family),
                sock_type: i32::from(raw.sock_type),
                protocol: i32::from(raw.protocol),
            },
            dst,
            local,
            reason: reason::name(raw.reason),
            denied: raw.verdict == verdict::DENY,
            detail: egress.then(|| egress::name(raw.detail)),
            option: (raw.kind == kind::SETSOCKOPT).then(|| raw.option()),
        };
        // The egress gate names the socket's creator from its facts (a packet may leave where no
        // task is current): facts that name this process do not say who made the socket
        // (`facts::creator_is_this_process`). The other hooks name the task that made the call.
        if egress && super::facts::creator_is_this_process(raw.pid_tgid) {
            (event.pid, event.tid, event.uid, event.gid, event.cgroup_id) = (0, 0, 0, 0, 0);
            event.comm.clear();
        }
        event
    }

    /// The system call family the hook stands for, as the report names syscalls.
    pub fn syscall(&self) -> &'static str {
        match self.hook {
            "connect4" | "connect6" => "connect",
            "sendmsg4" | "sendmsg6" => "sendmsg",
            "bind4" | "bind6" => "bind",
            "sock_create" => "socket",
            "listen" => "listen",
            // A packet, whatever call (or retransmission) sent it.
            "egress4" | "egress6" => "egress",
            "setsockopt" => "setsockopt",
            _ => "unknown",
        }
    }

    /// The report event for this leak (`source: "kernel"`), with what is known of the process
    /// from /proc (`info`; its pid must be this event's, or it is ignored). The kernel's own
    /// pid, tid, comm and uid always win: the process may be gone, or have changed since.
    /// `run` and `audit` both report kernel events through this.
    pub fn to_report_event(&self, info: ProcessInfo) -> Event {
        let decision = if self.is_refused_udp_connect() {
            Decision::allowed(Reason::UdpConnectRefused)
        } else {
            Decision::leak(self.policy_reason().unwrap_or(Reason::DirectOther))
        };
        let action = if self.denied { Action::Blocked } else { Action::Logged };
        let info = if info.pid == Some(self.pid) { info } else { ProcessInfo::default() };
        let mut event = Event::new(self.syscall(), self.tid, decision, action).with_process(info);
        event.source = "kernel".into();
        event.pid = Some(self.pid);
        event.comm = Some(self.comm.clone());
        // The setsockopt hook cannot learn the cookie (0): none rather than a wrong one.
        event.cookie = (self.cookie != 0).then_some(self.cookie);
        event.family = Some(self.socket.family_name());
        event.sock_type = Some(self.socket.type_name());
        event.protocol = Some(self.socket.protocol_name());
        event.dst = self.dst.map(|a| a.to_string());
        event.local = self.local.map(|a| a.to_string());
        if self.denied {
            event.errno = Some(libc::EPERM);
        }
        let mut kernel = serde_json::json!({
            "hook": self.hook,
            "cgroup_id": self.cgroup_id,
            "netns_cookie": self.netns_cookie,
            "uid": self.uid,
            "gid": self.gid,
        });
        if let Some(detail) = self.detail {
            kernel["detail"] = detail.into();
        }
        if let Some((level, optname)) = self.option {
            // Named as the supervisor names it (`SO_BINDTODEVICE`, `SOL_SCTP/N`).
            event.option = crate::net::sockopt::routing_option(level, optname)
                .or_else(|| Some(format!("{level}/{optname}")));
            kernel["level"] = level.into();
            kernel["optname"] = optname.into();
        }
        event.kernel = Some(kernel);
        event
    }

    /// A UDP socket's connect the kernel refused: nothing was sent, and nothing can be sent
    /// on the socket, as when the supervisor refuses it (`Reason::UdpConnectRefused`). One
    /// let through (observing) stays a `direct-udp` leak.
    pub fn is_refused_udp_connect(&self) -> bool {
        self.denied
            && matches!(self.hook, "connect4" | "connect6")
            && self.policy_reason() == Some(Reason::DirectUdp)
            && self.socket.transport() == crate::net::socket::Transport::Udp
    }

    /// The policy's reason for this leak.
    pub fn policy_reason(&self) -> Option<Reason> {
        [
            Reason::DirectTcp,
            Reason::DirectUdp,
            Reason::DirectOther,
            Reason::DnsTcp,
            Reason::DnsUdp,
            Reason::RawSocket,
            Reason::InboundBind,
            Reason::InboundListen,
            Reason::EgressPacket,
            Reason::RoutingOption,
        ]
        .into_iter()
        .find(|r| r.as_str() == self.reason)
    }
}

/// Reads `ring` on the current tokio runtime until `stop` fires (or its sender is dropped),
/// then drains what is left and ends, closing the channel; also ends when the receiver is gone.
pub fn spawn_reader(
    ring: RingBuf<MapData>,
    tx: mpsc::UnboundedSender<KernelEvent>,
    stop: oneshot::Receiver<()>,
) -> Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current()
        .context("Witness::take_events must be called inside a tokio runtime")?;
    let _guard = runtime.enter();
    // SAFETY: the ring buffer owns its map descriptor, which stays open, and is the one
    // `as_raw_fd` returns, for as long as the `AsyncFd` owns the ring buffer.
    let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(std::io::Error::from)
        .context("registering the event ring buffer with tokio")?;
    Ok(runtime.spawn(read(ring, tx, stop)))
}

async fn read(
    mut ring: AsyncFd<RingBuf<MapData>>,
    tx: mpsc::UnboundedSender<KernelEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            () = tx.closed() => return,
            ready = ring.readable_mut() => {
                let Ok(mut guard) = ready else {
                    // The reactor failed us; what is still queued goes out below.
                    break;
                };
                if !drain(guard.get_inner_mut(), &tx) {
                    return;
                }
                guard.clear_ready();
            }
        }
    }
    drain(ring.get_mut(), &tx);
}

/// Sends every queued event; false once nobody listens.
fn drain(ring: &mut RingBuf<MapData>, tx: &mpsc::UnboundedSender<KernelEvent>) -> bool {
    while let Some(item) = ring.next() {
        let Some(raw) = SockEvent::from_bytes(&item) else {
            log::warn!("a kernel event of {} bytes (an event is {}): skipped", item.len(), SockEvent::SIZE);
            continue;
        };
        if tx.send(KernelEvent::from_raw(&raw)).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use sockstrace_common::v4_mapped;

    use super::*;

    #[test]
    fn translates_a_denied_connect() {
        let mut raw = SockEvent::zeroed();
        raw.kind = kind::CONNECT6;
        raw.family = libc::AF_INET6 as u16;
        raw.sock_type = libc::SOCK_STREAM as u16;
        raw.protocol = libc::IPPROTO_TCP as u16;
        raw.cookie = 4242;
        raw.pid_tgid = (10 << 32) | 11;
        raw.addr = v4_mapped([127, 0, 0, 2]);
        raw.port = 80;
        raw.verdict = verdict::DENY;
        raw.reason = reason::DIRECT_TCP;
        let event = KernelEvent::from_raw(&raw);
        assert_eq!(event.hook, "connect6");
        assert_eq!(event.syscall(), "connect");
        assert_eq!((event.pid, event.tid, event.cookie), (10, 11, 4242));
        assert_eq!(event.dst, Some("127.0.0.2:80".parse().unwrap()));
        assert_eq!(event.local, None);
        assert!(event.denied);
        assert_eq!(event.policy_reason(), Some(Reason::DirectTcp));
        assert_eq!(event.socket.family_name(), "inet6");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["dst"], "127.0.0.2:80");
        assert_eq!(json["reason"], "direct-tcp");
    }

    #[test]
    fn translates_an_egress_drop_with_its_detail() {
        let mut raw = SockEvent::zeroed();
        raw.kind = kind::EGRESS6;
        raw.family = libc::AF_INET6 as u16;
        raw.sock_type = libc::SOCK_STREAM as u16;
        raw.protocol = libc::IPPROTO_TCP as u16;
        raw.cookie = 77;
        raw.addr = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        raw.port = 9050;
        raw.verdict = verdict::DENY;
        raw.reason = reason::EGRESS_PACKET;
        raw.detail = egress::IPV6_ROUTING_HEADER;
        let event = KernelEvent::from_raw(&raw);
        assert_eq!((event.hook, event.syscall()), ("egress6", "egress"));
        assert_eq!(event.dst, Some("[fd00::2]:9050".parse().unwrap()));
        assert_eq!(event.detail, Some("ipv6-routing-header"));
        assert_eq!(event.policy_reason(), Some(Reason::EgressPacket));
        let report = event.to_report_event(ProcessInfo::default());
        assert_eq!((report.source.as_ref(), report.reason.as_ref()), ("kernel", "egress-packet"));
        assert_eq!(report.kernel.as_ref().unwrap()["detail"], "ipv6-routing-header");
        // Other hooks carry no detail.
        raw.kind = kind::CONNECT6;
        assert_eq!(KernelEvent::from_raw(&raw).detail, None);
    }

    #[test]
    fn translates_a_refused_routing_option() {
        let mut raw = SockEvent::zeroed();
        raw.kind = kind::SETSOCKOPT;
        raw.family = libc::AF_INET as u16;
        raw.sock_type = libc::SOCK_DGRAM as u16;
        raw.protocol = libc::IPPROTO_UDP as u16;
        raw.pid_tgid = (20 << 32) | 21;
        raw.addr[..8].copy_from_slice(
            &sockstrace_common::option_word(libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP).to_ne_bytes(),
        );
        raw.verdict = verdict::DENY;
        raw.reason = reason::ROUTING_OPTION;
        let event = KernelEvent::from_raw(&raw);
        assert_eq!((event.hook, event.syscall()), ("setsockopt", "setsockopt"));
        assert_eq!((event.dst, event.local), (None, None));
        assert_eq!(event.option, Some((libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP)));
        assert_eq!(event.policy_reason(), Some(Reason::RoutingOption));
        let report = event.to_report_event(ProcessInfo::default());
        assert_eq!((report.source.as_ref(), report.reason.as_ref()), ("kernel", "routing-option"));
        assert_eq!(
            (report.syscall.as_ref(), report.option.as_deref()),
            ("setsockopt", Some("IP_ADD_MEMBERSHIP"))
        );
        assert_eq!((report.action, report.errno, report.cookie), (Action::Blocked, Some(libc::EPERM), None));
        assert_eq!(report.kernel.as_ref().unwrap()["optname"], libc::IP_ADD_MEMBERSHIP);
        // Every SCTP option, named as the supervisor names it.
        raw.addr[..8].copy_from_slice(&sockstrace_common::option_word(132, 100).to_ne_bytes());
        let report = KernelEvent::from_raw(&raw).to_report_event(ProcessInfo::default());
        assert_eq!(report.option.as_deref(), Some("SOL_SCTP/100"));
        // Other hooks carry no option.
        raw.kind = kind::CONNECT4;
        assert_eq!(KernelEvent::from_raw(&raw).option, None);
    }

    #[test]
    fn a_refused_udp_connect_is_no_leak_but_one_let_through_is() {
        let mut raw = SockEvent::zeroed();
        raw.kind = kind::CONNECT4;
        raw.family = libc::AF_INET as u16;
        raw.sock_type = libc::SOCK_DGRAM as u16;
        raw.protocol = libc::IPPROTO_UDP as u16;
        raw.addr = v4_mapped([127, 0, 0, 1]);
        raw.port = 9050;
        raw.reason = reason::DIRECT_UDP;
        raw.verdict = verdict::DENY;
        let report = KernelEvent::from_raw(&raw).to_report_event(ProcessInfo::default());
        assert_eq!((report.verdict.as_ref(), report.reason.as_ref()), ("allowed", "udp-connect-refused"));
        assert_eq!((report.action, report.errno), (Action::Blocked, Some(libc::EPERM)));
        // Observing: the connect went through; what is sent on it later is unseen.
        raw.verdict = verdict::PASS;
        let report = KernelEvent::from_raw(&raw).to_report_event(ProcessInfo::default());
        assert_eq!(
            (report.verdict.as_ref(), report.reason.as_ref(), report.action),
            ("leak", "direct-udp", Action::Logged)
        );
        // A datagram sent is a leak, refused or not.
        raw.kind = kind::SENDMSG4;
        raw.verdict = verdict::DENY;
        let report = KernelEvent::from_raw(&raw).to_report_event(ProcessInfo::default());
        assert_eq!((report.verdict.as_ref(), report.reason.as_ref()), ("leak", "direct-udp"));
    }

    #[test]
    fn binds_and_listens_carry_the_local_address() {
        let mut raw = SockEvent::zeroed();
        raw.kind = kind::LISTEN;
        raw.addr = v4_mapped([0, 0, 0, 0]);
        raw.port = 8080;
        raw.reason = reason::INBOUND_LISTEN;
        let event = KernelEvent::from_raw(&raw);
        assert_eq!((event.dst, event.local), (None, Some("0.0.0.0:8080".parse().unwrap())));
        assert!(!event.denied);
        assert_eq!(event.policy_reason(), Some(Reason::InboundListen));
    }

    #[test]
    fn every_kernel_reason_is_a_policy_reason() {
        for code in 1..=reason::EGRESS_PACKET {
            let mut raw = SockEvent::zeroed();
            raw.reason = code;
            let event = KernelEvent::from_raw(&raw);
            assert_eq!(event.policy_reason().map(Reason::as_str), Some(reason::name(code)), "code {code}");
        }
    }
}
