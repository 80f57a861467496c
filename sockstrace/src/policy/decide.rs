//! `decide`: (policy, request) -> verdict and reason. No I/O, no state.

use std::net::{IpAddr, SocketAddr};

use super::{Incoming, Policy};
use crate::net::sockaddr::{SockAddr, UnixAddr};
use crate::net::socket::{SocketFacts, Transport};

/// The DNS port: traffic to it is a DNS leak unless explicitly allowed.
const DNS_PORT: u16 = 53;

/// What the program is trying to do with a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `connect` to an address (already parsed from our private copy).
    Connect(SockAddr),
    /// A send with an explicit destination, or `None` for the connected peer.
    Send { dst: Option<SockAddr>, fastopen: bool },
    /// `bind` to a local address.
    Bind(SockAddr),
    /// `listen` on a socket bound to `local` (read from the socket itself).
    Listen { local: Option<SocketAddr> },
    /// `accept` on a listener bound to `local`; `peer` once the connection
    /// has been taken (by us), `None` when deciding before it.
    Accept { local: Option<SocketAddr>, peer: Option<SocketAddr> },
    /// `socket()`: creating a socket of the request's family, type, protocol.
    Create,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub socket: SocketFacts,
    pub op: Operation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Leak,
}

/// Why a verdict was reached; `as_str` is the report's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Proxy,
    AllowRule,
    Loopback,
    Unix,
    LocalFamily,
    ConnectedPeer,
    Disconnect,
    LocalBind,
    LoopbackListener,
    DirectTcp,
    DirectUdp,
    DirectOther,
    DnsUdp,
    DnsTcp,
    RawSocket,
    PacketSocket,
    InboundBind,
    InboundListen,
    InboundAccept,
    /// `--incoming allow`.
    IncomingAllowed,
    /// A listener whose peers are checked one by one (`--allow-incoming-from`).
    IncomingFiltered,
    /// A peer listed in `--allow-incoming-from` (or on loopback).
    IncomingPeer,
    UnsupportedFamily,
    /// Set by the supervisor, not by `decide`: a call from another ABI.
    ForeignAbi,
    /// Set by the supervisor: io_uring would bypass every check.
    IoUring,
    /// Set by the supervisor: the check itself failed, so the call is denied.
    CheckFailed,
    /// Set by the supervisor: a `socketcall` whose argument array another
    /// thread could change after our check.
    SocketcallRace,
    SocketCreate,
    /// Set by the supervisor: a datagram connect to one of the `--dns proxy`
    /// resolver's fake addresses (resolvers do this to sort addresses; it
    /// sends nothing, and there is nowhere to send to).
    FakeAddress,
    /// Set by the supervisor (and for the kernel's refusals, by the kernel
    /// layer's report): a datagram `connect` to an address that is not
    /// allowed, refused. Connecting a UDP socket sends nothing (glibc's
    /// `getaddrinfo` connects one to each answer to sort them, RFC 6724), and
    /// once refused nothing can be sent on it: no leak, unless `--on-leak log`
    /// lets it through (then it stays `direct-udp`).
    UdpConnectRefused,
    /// Set by the SOCKS inspector: the program asked its proxy for an address
    /// it resolved itself (SOCKS4 without a name, or socks5 after a lookup).
    SocksByAddress,
    /// Set by the SOCKS inspector: no authentication (`--require-socks-auth`).
    SocksNoAuth,
    /// Set by the SOCKS inspector: credentials outside `--isolation-regex`.
    SocksIsolation,
    /// Set by the SOCKS inspector: a proxy connection it cannot follow (not
    /// SOCKS4/5, such as HTTP CONNECT to a mixed port; a method whose messages
    /// it cannot read, such as GSSAPI; a malformed message), whose bytes would
    /// otherwise pass unread.
    SocksUninspectable,
    /// A socket option or control message that moves the first hop away from
    /// the judged address (routing headers, source routes, binding to a
    /// device, a chosen outgoing interface or next hop, IPsec policies).
    RoutingOption,
    /// An address whose family is not the socket's (a unix socket given an
    /// inet address): the kernel would refuse it, unless the fd number names
    /// another socket by the time it runs the call.
    FamilyMismatch,
    /// A protocol whose kernel makes connections the program never asked for
    /// with `connect` (MPTCP subflows, SCTP multi-homing): refused at creation.
    UnsupportedProtocol,
    /// The packet itself, judged by the kernel layer's egress gate: a
    /// destination, IP option, routing header or device the syscall layer did
    /// not allow.
    EgressPacket,
    /// Set by the supervisor: a system call outside `--syscalls` (no network
    /// decision; the call failed with the profile's errno).
    SyscallDenied,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Proxy => "proxy",
            Reason::AllowRule => "allow-rule",
            Reason::Loopback => "loopback",
            Reason::Unix => "unix",
            Reason::LocalFamily => "local-family",
            Reason::ConnectedPeer => "connected-peer",
            Reason::Disconnect => "disconnect",
            Reason::LocalBind => "local-bind",
            Reason::LoopbackListener => "loopback-listener",
            Reason::DirectTcp => "direct-tcp",
            Reason::DirectUdp => "direct-udp",
            Reason::DirectOther => "direct-other",
            Reason::DnsUdp => "dns-udp",
            Reason::DnsTcp => "dns-tcp",
            Reason::RawSocket => "raw-socket",
            Reason::PacketSocket => "packet-socket",
            Reason::InboundBind => "inbound-bind",
            Reason::InboundListen => "inbound-listen",
            Reason::InboundAccept => "inbound-accept",
            Reason::IncomingAllowed => "incoming-allowed",
            Reason::IncomingFiltered => "incoming-filtered",
            Reason::IncomingPeer => "incoming-peer",
            Reason::UnsupportedFamily => "unsupported-family",
            Reason::ForeignAbi => "foreign-abi",
            Reason::IoUring => "io-uring",
            Reason::CheckFailed => "check-failed",
            Reason::SocketcallRace => "socketcall-race",
            Reason::SocketCreate => "socket-create",
            Reason::FakeAddress => "fake-address",
            Reason::UdpConnectRefused => "udp-connect-refused",
            Reason::SocksByAddress => "socks-by-address",
            Reason::SocksNoAuth => "socks-no-auth",
            Reason::SocksIsolation => "socks-isolation",
            Reason::SocksUninspectable => "socks-uninspectable",
            Reason::RoutingOption => "routing-option",
            Reason::FamilyMismatch => "family-mismatch",
            Reason::UnsupportedProtocol => "unsupported-protocol",
            Reason::EgressPacket => "egress-packet",
            Reason::SyscallDenied => "syscall-denied",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
}

impl Decision {
    pub const fn allowed(reason: Reason) -> Self {
        Decision { verdict: Verdict::Allowed, reason }
    }

    pub const fn leak(reason: Reason) -> Self {
        Decision { verdict: Verdict::Leak, reason }
    }

    pub fn is_leak(&self) -> bool {
        self.verdict == Verdict::Leak
    }
}

/// The verdict for one request under one policy.
pub fn decide(policy: &Policy, req: &Request) -> Decision {
    let socket = &req.socket;
    if req.op == Operation::Create {
        return create_decision(socket);
    }
    if family_mismatch(socket, &req.op) && !crate::testing::disabled("family-check") {
        return Decision::leak(Reason::FamilyMismatch);
    }
    match socket.family {
        libc::AF_UNIX => return unix_decision(policy, &req.op),
        libc::AF_NETLINK | libc::AF_ALG => return Decision::allowed(Reason::LocalFamily),
        libc::AF_PACKET => return Decision::leak(Reason::PacketSocket),
        libc::AF_INET | libc::AF_INET6 => {}
        _ => return Decision::leak(Reason::UnsupportedFamily),
    }
    match &req.op {
        Operation::Connect(SockAddr::Unspec) => Decision::allowed(Reason::Disconnect),
        Operation::Connect(SockAddr::Inet(dst)) => remote(policy, socket, *dst),
        Operation::Connect(_) => Decision::leak(Reason::FamilyMismatch),
        // A stream socket ignores the address unless the send is a Fast Open connect.
        Operation::Send { fastopen: false, .. } if socket.is_stream() => {
            Decision::allowed(Reason::ConnectedPeer)
        }
        // Without a destination the kernel can only use the peer checked at connect.
        Operation::Send { dst: None | Some(SockAddr::Unspec), .. } => {
            Decision::allowed(Reason::ConnectedPeer)
        }
        Operation::Send { dst: Some(SockAddr::Inet(dst)), .. } => remote(policy, socket, *dst),
        Operation::Send { .. } => Decision::leak(Reason::FamilyMismatch),
        Operation::Bind(SockAddr::Inet(local)) => bind_decision(policy, socket, *local),
        Operation::Bind(SockAddr::Unspec) => Decision::allowed(Reason::LocalBind),
        Operation::Bind(_) => Decision::leak(Reason::FamilyMismatch),
        Operation::Listen { local } => listen_decision(policy, *local),
        Operation::Accept { local, peer } => accept_decision(policy, *local, *peer),
        Operation::Create => create_decision(socket),
    }
}

/// Whether the address of a local-family socket's call is of another family
/// than the socket. The kernel would refuse such a call (`EINVAL`), so it can
/// only be a bug or an attack: a racing `dup2` that puts an inet socket under
/// the fd number before the kernel runs a call we let through (CONTINUE)
/// would have the inet socket use that address. `AF_UNSPEC` passes only for
/// `connect` (which dissolves an association in every family); a send or a
/// bind with it is refused, since an IPv4 socket reads an `AF_UNSPEC`
/// address as `sockaddr_in`. (Inet sockets are performed on our duplicate;
/// their mismatches are judged in `decide`'s inet arms.)
fn family_mismatch(socket: &SocketFacts, op: &Operation) -> bool {
    if !matches!(socket.family, libc::AF_UNIX | libc::AF_NETLINK | libc::AF_ALG) {
        return false;
    }
    let (addr, unspec_ok) = match op {
        Operation::Connect(addr) => (addr, true),
        Operation::Send { dst: Some(addr), .. } => (addr, false),
        Operation::Bind(addr) => (addr, false),
        _ => return false,
    };
    let family = match addr {
        SockAddr::Inet(SocketAddr::V4(_)) => libc::AF_INET,
        SockAddr::Inet(SocketAddr::V6(_)) => libc::AF_INET6,
        SockAddr::Unix(_) => libc::AF_UNIX,
        SockAddr::Unspec => return !unspec_ok,
        SockAddr::Other { family } => i32::from(*family),
    };
    family != socket.family
}

/// Raw and packet sockets write whatever packets they like: a leak unless
/// they stay local (netlink, unix).
fn create_decision(socket: &SocketFacts) -> Decision {
    match socket.family {
        libc::AF_UNIX | libc::AF_NETLINK | libc::AF_ALG => Decision::allowed(Reason::LocalFamily),
        libc::AF_PACKET => Decision::leak(Reason::PacketSocket),
        libc::AF_INET | libc::AF_INET6 => match socket.sock_type {
            libc::SOCK_RAW => Decision::leak(Reason::RawSocket),
            crate::net::socket::SOCK_PACKET => Decision::leak(Reason::PacketSocket),
            _ => Decision::allowed(Reason::SocketCreate),
        },
        _ => Decision::leak(Reason::UnsupportedFamily),
    }
}

fn unix_decision(policy: &Policy, op: &Operation) -> Decision {
    let path = match op {
        Operation::Connect(SockAddr::Unix(UnixAddr::Path(p))) => Some(p),
        Operation::Send { dst: Some(SockAddr::Unix(UnixAddr::Path(p))), .. } => Some(p),
        _ => None,
    };
    let ruled = path.is_some_and(|p| {
        policy.allow.iter().any(|r| matches!(r, super::AllowRule::Unix(allowed) if allowed == p))
    });
    Decision::allowed(if ruled { Reason::AllowRule } else { Reason::Unix })
}

/// Loopback, or an unspecified address (which Linux connects to the local host).
fn is_local_host(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

fn remote(policy: &Policy, socket: &SocketFacts, dst: SocketAddr) -> Decision {
    let transport = socket.transport();
    if transport == Transport::Tcp && policy.proxies.contains(&dst) {
        return Decision::allowed(Reason::Proxy);
    }
    if policy.allow.iter().any(|rule| rule.matches(dst)) {
        return Decision::allowed(Reason::AllowRule);
    }
    let dns = dst.port() == DNS_PORT;
    if policy.allow_loopback && is_local_host(dst.ip()) && !dns {
        return Decision::allowed(Reason::Loopback);
    }
    Decision::leak(match (transport, dns) {
        (Transport::Tcp, true) => Reason::DnsTcp,
        (Transport::Udp, true) => Reason::DnsUdp,
        (Transport::Tcp, false) => Reason::DirectTcp,
        (Transport::Udp, false) => Reason::DirectUdp,
        (Transport::Raw, _) => Reason::RawSocket,
        (Transport::Other, _) => Reason::DirectOther,
    })
}

/// Binding a TCP socket is harmless until it listens; binding a datagram socket
/// to a fixed port on a non-loopback address opens it to inbound traffic.
/// (Datagram peers cannot be filtered one by one, so `--allow-incoming-from`
/// does not open a datagram port.)
fn bind_decision(policy: &Policy, socket: &SocketFacts, local: SocketAddr) -> Decision {
    if socket.is_stream() || local.port() == 0 || local.ip().is_loopback() {
        Decision::allowed(Reason::LocalBind)
    } else if policy.incoming == Incoming::Allow {
        Decision::allowed(Reason::IncomingAllowed)
    } else {
        Decision::leak(Reason::InboundBind)
    }
}

fn is_loopback(addr: Option<SocketAddr>) -> bool {
    addr.is_some_and(|a| a.ip().is_loopback())
}

fn listen_decision(policy: &Policy, local: Option<SocketAddr>) -> Decision {
    if is_loopback(local) {
        Decision::allowed(Reason::LoopbackListener)
    } else if policy.incoming == Incoming::Allow {
        Decision::allowed(Reason::IncomingAllowed)
    } else if !policy.incoming_from.is_empty() {
        Decision::allowed(Reason::IncomingFiltered)
    } else {
        Decision::leak(Reason::InboundListen)
    }
}

fn accept_decision(policy: &Policy, local: Option<SocketAddr>, peer: Option<SocketAddr>) -> Decision {
    if is_loopback(local) {
        return Decision::allowed(Reason::LoopbackListener);
    }
    if policy.incoming == Incoming::Allow {
        return Decision::allowed(Reason::IncomingAllowed);
    }
    match peer {
        Some(p) if p.ip().is_loopback() || policy.incoming_from.iter().any(|n| n.contains(&p.ip())) => {
            Decision::allowed(Reason::IncomingPeer)
        }
        None if !policy.incoming_from.is_empty() => Decision::allowed(Reason::IncomingFiltered),
        _ => Decision::leak(Reason::InboundAccept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AllowRule;

    fn tcp4() -> SocketFacts {
        SocketFacts { family: libc::AF_INET, sock_type: libc::SOCK_STREAM, protocol: 0 }
    }
    fn tcp6() -> SocketFacts {
        SocketFacts { family: libc::AF_INET6, sock_type: libc::SOCK_STREAM, protocol: libc::IPPROTO_TCP }
    }
    fn udp4() -> SocketFacts {
        SocketFacts { family: libc::AF_INET, sock_type: libc::SOCK_DGRAM, protocol: 0 }
    }
    fn facts(family: i32, sock_type: i32) -> SocketFacts {
        SocketFacts { family, sock_type, protocol: 0 }
    }
    fn inet(text: &str) -> SockAddr {
        SockAddr::Inet(text.parse().unwrap())
    }
    fn policy() -> Policy {
        Policy {
            proxies: vec!["127.0.0.1:9050".parse().unwrap(), "[::1]:9050".parse().unwrap()],
            allow: vec![],
            allow_loopback: false,
            ..Policy::default()
        }
    }
    fn run(policy: &Policy, socket: SocketFacts, op: Operation) -> Decision {
        decide(policy, &Request { socket, op })
    }
    fn connect(policy: &Policy, socket: SocketFacts, dst: &str) -> Decision {
        run(policy, socket, Operation::Connect(inet(dst)))
    }
    fn send(policy: &Policy, socket: SocketFacts, dst: &str) -> Decision {
        run(policy, socket, Operation::Send { dst: Some(inet(dst)), fastopen: false })
    }

    #[test]
    fn proxy_is_allowed_over_tcp_only() {
        let p = policy();
        assert_eq!(connect(&p, tcp4(), "127.0.0.1:9050"), Decision::allowed(Reason::Proxy));
        assert_eq!(connect(&p, tcp6(), "[::1]:9050"), Decision::allowed(Reason::Proxy));
        assert_eq!(send(&p, udp4(), "127.0.0.1:9050"), Decision::leak(Reason::DirectUdp));
        assert_eq!(connect(&p, tcp4(), "127.0.0.1:9051"), Decision::leak(Reason::DirectTcp));
    }

    #[test]
    fn direct_traffic_is_a_leak_by_transport() {
        let p = policy();
        assert_eq!(connect(&p, tcp4(), "93.184.216.34:443"), Decision::leak(Reason::DirectTcp));
        assert_eq!(connect(&p, tcp6(), "[2001:db8::1]:443"), Decision::leak(Reason::DirectTcp));
        assert_eq!(connect(&p, udp4(), "1.1.1.1:443"), Decision::leak(Reason::DirectUdp));
        assert_eq!(send(&p, udp4(), "1.1.1.1:443"), Decision::leak(Reason::DirectUdp));
        let raw =
            SocketFacts { family: libc::AF_INET, sock_type: libc::SOCK_RAW, protocol: libc::IPPROTO_ICMP };
        assert_eq!(send(&p, raw, "1.1.1.1:0"), Decision::leak(Reason::RawSocket));
        let ping =
            SocketFacts { family: libc::AF_INET, sock_type: libc::SOCK_DGRAM, protocol: libc::IPPROTO_ICMP };
        assert_eq!(send(&p, ping, "1.1.1.1:0"), Decision::leak(Reason::DirectOther));
        let raw_any = SocketFacts { family: libc::AF_INET, sock_type: libc::SOCK_RAW, protocol: 255 };
        assert_eq!(send(&p, raw_any, "1.1.1.1:0"), Decision::leak(Reason::RawSocket));
    }

    #[test]
    fn dns_is_a_leak_even_on_loopback_unless_ruled() {
        let mut p = policy();
        p.allow_loopback = true;
        assert_eq!(send(&p, udp4(), "127.0.0.53:53"), Decision::leak(Reason::DnsUdp));
        assert_eq!(connect(&p, tcp4(), "127.0.0.53:53"), Decision::leak(Reason::DnsTcp));
        p.allow.push("127.0.0.53:53".parse::<AllowRule>().unwrap());
        assert_eq!(send(&p, udp4(), "127.0.0.53:53"), Decision::allowed(Reason::AllowRule));
    }

    #[test]
    fn loopback_needs_the_flag_and_covers_unspecified() {
        let mut p = policy();
        assert_eq!(connect(&p, tcp4(), "127.0.0.2:80"), Decision::leak(Reason::DirectTcp));
        p.allow_loopback = true;
        assert_eq!(connect(&p, tcp4(), "127.0.0.2:80"), Decision::allowed(Reason::Loopback));
        assert_eq!(connect(&p, tcp4(), "0.0.0.0:80"), Decision::allowed(Reason::Loopback));
        assert_eq!(connect(&p, tcp6(), "[::1]:80"), Decision::allowed(Reason::Loopback));
        assert_eq!(connect(&p, tcp4(), "10.0.0.1:80"), Decision::leak(Reason::DirectTcp));
    }

    #[test]
    fn allow_rules_match_network_and_port() {
        let mut p = policy();
        p.allow.push("10.0.0.0/8:443".parse().unwrap());
        assert_eq!(connect(&p, tcp4(), "10.1.1.1:443"), Decision::allowed(Reason::AllowRule));
        assert_eq!(connect(&p, tcp4(), "10.1.1.1:80"), Decision::leak(Reason::DirectTcp));
    }

    #[test]
    fn sends_without_destination_or_on_streams_use_the_checked_peer() {
        let p = policy();
        let none = Operation::Send { dst: None, fastopen: false };
        assert_eq!(run(&p, udp4(), none), Decision::allowed(Reason::ConnectedPeer));
        let unspec6 = Operation::Send { dst: Some(SockAddr::Unspec), fastopen: false };
        assert_eq!(
            run(&p, facts(libc::AF_INET6, libc::SOCK_DGRAM), unspec6),
            Decision::allowed(Reason::ConnectedPeer)
        );
        assert_eq!(send(&p, tcp4(), "1.1.1.1:80"), Decision::allowed(Reason::ConnectedPeer));
    }

    #[test]
    fn tcp_fast_open_is_a_connect() {
        let p = policy();
        let tfo = |dst: &str| Operation::Send { dst: Some(inet(dst)), fastopen: true };
        assert_eq!(run(&p, tcp4(), tfo("1.1.1.1:443")), Decision::leak(Reason::DirectTcp));
        assert_eq!(run(&p, tcp4(), tfo("127.0.0.1:9050")), Decision::allowed(Reason::Proxy));
        let tfo_none = Operation::Send { dst: None, fastopen: true };
        assert_eq!(run(&p, tcp4(), tfo_none), Decision::allowed(Reason::ConnectedPeer));
    }

    #[test]
    fn unix_netlink_are_local_and_packet_leaks() {
        let mut p = policy();
        let unix = facts(libc::AF_UNIX, libc::SOCK_STREAM);
        let path = SockAddr::Unix(UnixAddr::Path("/run/x".into()));
        assert_eq!(run(&p, unix, Operation::Connect(path.clone())), Decision::allowed(Reason::Unix));
        p.allow.push("unix:/run/x".parse().unwrap());
        assert_eq!(run(&p, unix, Operation::Connect(path)), Decision::allowed(Reason::AllowRule));
        let nl = facts(libc::AF_NETLINK, libc::SOCK_RAW);
        assert_eq!(
            run(&p, nl, Operation::Send { dst: None, fastopen: false }),
            Decision::allowed(Reason::LocalFamily)
        );
        let pkt = facts(libc::AF_PACKET, libc::SOCK_RAW);
        assert_eq!(
            run(&p, pkt, Operation::Send { dst: None, fastopen: false }),
            Decision::leak(Reason::PacketSocket)
        );
        let bt = facts(libc::AF_BLUETOOTH, libc::SOCK_STREAM);
        assert_eq!(
            run(&p, bt, Operation::Connect(SockAddr::Unspec)),
            Decision::leak(Reason::UnsupportedFamily)
        );
    }

    #[test]
    fn raw_and_packet_sockets_are_refused_at_creation() {
        let p = policy();
        let create = |family, sock_type| run(&p, facts(family, sock_type), Operation::Create);
        assert_eq!(create(libc::AF_INET, libc::SOCK_RAW), Decision::leak(Reason::RawSocket));
        assert_eq!(create(libc::AF_INET6, libc::SOCK_RAW), Decision::leak(Reason::RawSocket));
        assert_eq!(create(libc::AF_INET, 10), Decision::leak(Reason::PacketSocket));
        assert_eq!(create(libc::AF_PACKET, libc::SOCK_DGRAM), Decision::leak(Reason::PacketSocket));
        assert_eq!(create(libc::AF_NETLINK, libc::SOCK_RAW), Decision::allowed(Reason::LocalFamily));
        assert_eq!(create(libc::AF_INET, libc::SOCK_STREAM), Decision::allowed(Reason::SocketCreate));
        assert_eq!(create(libc::AF_BLUETOOTH, libc::SOCK_RAW), Decision::leak(Reason::UnsupportedFamily));
    }

    #[test]
    fn connect_oddities() {
        let p = policy();
        assert_eq!(
            run(&p, udp4(), Operation::Connect(SockAddr::Unspec)),
            Decision::allowed(Reason::Disconnect)
        );
        let unix_on_inet = Operation::Connect(SockAddr::Unix(UnixAddr::Unnamed));
        assert_eq!(run(&p, tcp4(), unix_on_inet), Decision::leak(Reason::FamilyMismatch));
    }

    #[test]
    fn an_address_of_another_family_is_refused() {
        let mut p = policy();
        p.allow_loopback = true;
        p.allow.push("unix:/run/x".parse().unwrap());
        let mismatch = Decision::leak(Reason::FamilyMismatch);
        let unix_path = SockAddr::Unix(UnixAddr::Path("/run/x".into()));
        let send = |dst: SockAddr| Operation::Send { dst: Some(dst), fastopen: false };
        for sock_type in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
            let unix = facts(libc::AF_UNIX, sock_type);
            for addr in ["127.0.0.1:9", "[::1]:9", "10.0.0.1:80"] {
                assert_eq!(run(&p, unix, Operation::Connect(inet(addr))), mismatch, "{addr}");
                assert_eq!(run(&p, unix, send(inet(addr))), mismatch, "{addr}");
                assert_eq!(run(&p, unix, Operation::Bind(inet(addr))), mismatch, "{addr}");
            }
            let vsock = SockAddr::Other { family: libc::AF_VSOCK as u16 };
            assert_eq!(run(&p, unix, Operation::Connect(vsock)), mismatch);
            // An IPv4 socket reads AF_UNSPEC as sockaddr_in: only a connect may name it.
            assert_eq!(run(&p, unix, send(SockAddr::Unspec)), mismatch);
            assert_eq!(run(&p, unix, Operation::Bind(SockAddr::Unspec)), mismatch);
            assert_eq!(run(&p, unix, Operation::Connect(SockAddr::Unspec)), Decision::allowed(Reason::Unix));
            assert_eq!(
                run(&p, unix, Operation::Connect(unix_path.clone())),
                Decision::allowed(Reason::AllowRule)
            );
            assert_eq!(run(&p, unix, send(unix_path.clone())), Decision::allowed(Reason::AllowRule));
            assert_eq!(
                run(&p, unix, Operation::Send { dst: None, fastopen: false }),
                Decision::allowed(Reason::Unix)
            );
        }
        let nl = facts(libc::AF_NETLINK, libc::SOCK_RAW);
        let nl_addr = SockAddr::Other { family: libc::AF_NETLINK as u16 };
        assert_eq!(run(&p, nl, send(inet("127.0.0.1:9"))), mismatch);
        assert_eq!(run(&p, nl, Operation::Bind(unix_path.clone())), mismatch);
        assert_eq!(run(&p, nl, send(nl_addr.clone())), Decision::allowed(Reason::LocalFamily));
        assert_eq!(run(&p, nl, Operation::Bind(nl_addr)), Decision::allowed(Reason::LocalFamily));
        // Inet sockets take each other's addresses (the kernel sorts them out
        // on our duplicate), not a unix one.
        assert_eq!(connect(&p, tcp6(), "127.0.0.1:80"), Decision::allowed(Reason::Loopback));
        assert_eq!(run(&p, udp4(), send(unix_path.clone())), mismatch);
        assert_eq!(run(&p, udp4(), Operation::Bind(unix_path)), mismatch);
    }

    #[test]
    fn inbound_is_judged_by_the_local_address() {
        let p = policy();
        let bind = |s, a: &str| run(&p, s, Operation::Bind(inet(a)));
        assert_eq!(bind(udp4(), "0.0.0.0:0"), Decision::allowed(Reason::LocalBind));
        assert_eq!(bind(udp4(), "127.0.0.1:5353"), Decision::allowed(Reason::LocalBind));
        assert_eq!(bind(udp4(), "0.0.0.0:5353"), Decision::leak(Reason::InboundBind));
        assert_eq!(bind(tcp4(), "0.0.0.0:8080"), Decision::allowed(Reason::LocalBind));
        let listen =
            |a: Option<&str>| run(&p, tcp4(), Operation::Listen { local: a.map(|a| a.parse().unwrap()) });
        assert_eq!(listen(Some("127.0.0.1:8080")), Decision::allowed(Reason::LoopbackListener));
        assert_eq!(listen(Some("0.0.0.0:8080")), Decision::leak(Reason::InboundListen));
        assert_eq!(listen(None), Decision::leak(Reason::InboundListen));
        let accept =
            run(&p, tcp6(), Operation::Accept { local: Some("[::]:22".parse().unwrap()), peer: None });
        assert_eq!(accept, Decision::leak(Reason::InboundAccept));
    }

    #[test]
    fn incoming_can_be_allowed_or_filtered_by_peer() {
        let wildcard = Some("0.0.0.0:8080".parse::<SocketAddr>().unwrap());
        let mut p = policy();
        p.incoming = Incoming::Allow;
        assert_eq!(
            run(&p, tcp4(), Operation::Listen { local: wildcard }),
            Decision::allowed(Reason::IncomingAllowed)
        );
        assert_eq!(
            run(&p, udp4(), Operation::Bind(inet("0.0.0.0:5353"))),
            Decision::allowed(Reason::IncomingAllowed)
        );

        let mut p = policy();
        p.incoming_from.push("192.168.0.0/16".parse().unwrap());
        assert_eq!(
            run(&p, tcp4(), Operation::Listen { local: wildcard }),
            Decision::allowed(Reason::IncomingFiltered)
        );
        let accept = |peer: Option<&str>| {
            run(&p, tcp4(), Operation::Accept { local: wildcard, peer: peer.map(|a| a.parse().unwrap()) })
        };
        assert_eq!(accept(None), Decision::allowed(Reason::IncomingFiltered));
        assert_eq!(accept(Some("192.168.1.5:4000")), Decision::allowed(Reason::IncomingPeer));
        assert_eq!(accept(Some("127.0.0.1:4000")), Decision::allowed(Reason::IncomingPeer));
        assert_eq!(accept(Some("10.0.0.1:4000")), Decision::leak(Reason::InboundAccept));
        assert_eq!(
            run(&p, udp4(), Operation::Bind(inet("0.0.0.0:5353"))),
            Decision::leak(Reason::InboundBind)
        );
    }
}
