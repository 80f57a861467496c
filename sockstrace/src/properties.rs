//! Property tests (bounded fuzzing) of everything that parses tracee bytes or
//! user input, and of the verdict function: no input makes them panic, and
//! the verdict keeps its promises on any destination.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use crate::net::msghdr::{self, Layout};
use crate::net::sockaddr::{self, SockAddr};
use crate::net::socket::SocketFacts;
use crate::policy::{self, decide, AllowRule, Operation, Policy, Reason, Request, Verdict};
use crate::supervisor::abi;

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

fn any_facts() -> impl Strategy<Value = SocketFacts> {
    (
        prop_oneof![
            Just(libc::AF_INET),
            Just(libc::AF_INET6),
            Just(libc::AF_UNIX),
            Just(libc::AF_PACKET),
            0..64i32
        ],
        prop_oneof![Just(libc::SOCK_STREAM), Just(libc::SOCK_DGRAM), Just(libc::SOCK_RAW), 0..16i32],
        prop_oneof![Just(0), Just(libc::IPPROTO_TCP), Just(libc::IPPROTO_UDP), 0..300i32],
    )
        .prop_map(|(family, sock_type, protocol)| SocketFacts { family, sock_type, protocol })
}

fn any_op() -> impl Strategy<Value = Operation> {
    let addr = prop::collection::vec(any::<u8>(), 0..130)
        .prop_map(|bytes| sockaddr::parse(&bytes).unwrap_or(SockAddr::Unspec));
    prop_oneof![
        addr.clone().prop_map(Operation::Connect),
        (prop::option::of(addr.clone()), any::<bool>())
            .prop_map(|(dst, fastopen)| Operation::Send { dst, fastopen }),
        addr.prop_map(Operation::Bind),
        prop::option::of((any_ip(), any::<u16>()))
            .prop_map(|l| Operation::Listen { local: l.map(SocketAddr::from) }),
        (prop::option::of((any_ip(), any::<u16>())), prop::option::of((any_ip(), any::<u16>()))).prop_map(
            |(l, p)| Operation::Accept { local: l.map(SocketAddr::from), peer: p.map(SocketAddr::from) }
        ),
        Just(Operation::Create),
    ]
}

fn default_policy() -> Policy {
    Policy {
        proxies: vec!["127.0.0.1:9050".parse().unwrap(), "[::1]:9050".parse().unwrap()],
        allow: vec![],
        allow_loopback: false,
        ..Policy::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn sockaddr_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let parsed = sockaddr::parse(&bytes);
        if let Ok(addr) = parsed {
            let _ = addr.to_string();
        }
        let _ = sockaddr::parse_inet4(&bytes);
    }

    #[test]
    fn inet_addresses_round_trip_normalized(ip in any_ip(), port in any::<u16>()) {
        let addr = SocketAddr::new(ip, port);
        let parsed = sockaddr::parse(&sockaddr::encode_inet(addr)).unwrap();
        prop_assert_eq!(parsed, SockAddr::Inet(sockaddr::normalize(addr)));
    }

    #[test]
    fn msghdr_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80), count in 0usize..8) {
        for layout in [Layout::X86_64, Layout::COMPAT] {
            if let Ok(hdr) = msghdr::parse_msghdr(&layout, &bytes) {
                prop_assert!(hdr.namelen <= sockaddr::SOCKADDR_MAX);
                prop_assert!(hdr.iovlen <= msghdr::UIO_MAXIOV as u64);
            }
            let _ = msghdr::parse_iovecs(&layout, &bytes, count);
        }
    }

    #[test]
    fn socketcall_words_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..32), count in 0usize..10) {
        let _ = abi::socketcall_args(&bytes, count);
    }

    #[test]
    fn rule_and_proxy_parsing_never_panic(text in "\\PC{0,40}") {
        let _ = text.parse::<AllowRule>();
        let _ = policy::parse_proxy(&text);
    }

    #[test]
    fn decide_never_panics_and_is_deterministic(facts in any_facts(), op in any_op(), loopback in any::<bool>()) {
        let mut policy = default_policy();
        policy.allow_loopback = loopback;
        let req = Request { socket: facts, op };
        prop_assert_eq!(decide(&policy, &req), decide(&policy, &req));
    }

    /// A TCP or UDP destination that is neither a proxy, a rule, nor loopback
    /// under --allow-loopback, is always a leak; DNS always needs a rule.
    #[test]
    fn unlisted_inet_destinations_are_leaks(ip in any_ip(), port in any::<u16>(), udp in any::<bool>()) {
        let dst = sockaddr::normalize(SocketAddr::new(ip, port));
        let policy = default_policy();
        let sock_type = if udp { libc::SOCK_DGRAM } else { libc::SOCK_STREAM };
        let facts = SocketFacts { family: libc::AF_INET6, sock_type, protocol: 0 };
        let decision = decide(&policy, &Request { socket: facts, op: Operation::Connect(SockAddr::Inet(dst)) });
        let is_proxy = !udp && policy.proxies.contains(&dst);
        prop_assert_eq!(decision.verdict == Verdict::Allowed, is_proxy);
        if port == 53 && !is_proxy {
            prop_assert!(matches!(decision.reason, Reason::DnsTcp | Reason::DnsUdp));
        }
        let mut lo = default_policy();
        lo.allow_loopback = true;
        let with_lo = decide(&lo, &Request { socket: facts, op: Operation::Connect(SockAddr::Inet(dst)) });
        if port == 53 && !is_proxy {
            prop_assert_eq!(with_lo.verdict, Verdict::Leak);
        }
    }
}
