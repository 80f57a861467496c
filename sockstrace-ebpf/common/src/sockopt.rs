//! Socket options that move a packet's first hop away from the address the program names
//! (routing headers, source routes, binding to a device, an outgoing interface, a next hop,
//! policy routing marks, IPsec policies) or make the kernel send packets of its own for the
//! program (multicast membership reports): the one list both layers refuse.
//!
//! The seccomp filter traps exactly these `(level, optname)` pairs and the supervisor refuses
//! them (`sockstrace::net::sockopt::routing_option`); the kernel layer's `cgroup/setsockopt`
//! program refuses the same ones ([`is_routing_option`]), which also catches the setsockopt
//! calls that never pass seccomp (io_uring's `SOCKET_URING_OP_SETSOCKOPT`). Every option of
//! [`SOL_SCTP`] is refused too (`connectx` and peer addresses go through setsockopt).

/// `SOL_SOCKET`.
pub const SOL_SOCKET: i32 = 1;
/// `SOL_IP` (`IPPROTO_IP`).
pub const SOL_IP: i32 = 0;
/// `SOL_IPV6` (`IPPROTO_IPV6`).
pub const SOL_IPV6: i32 = 41;
/// `SOL_SCTP`: every option of this level is refused.
pub const SOL_SCTP: i32 = 132;

/// One refused option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutingOption {
    pub level: i32,
    pub optname: i32,
    /// The uapi name, as the report gives it.
    pub name: &'static str,
}

const fn opt(level: i32, optname: i32, name: &'static str) -> RoutingOption {
    RoutingOption { level, optname, name }
}

/// The refused options. Values from the kernel's uapi headers (asm-generic/socket.h,
/// linux/in.h, linux/in6.h), the same on every Linux architecture sockstrace runs on.
pub const ROUTING_OPTIONS: [RoutingOption; 23] = [
    opt(SOL_SOCKET, 25, "SO_BINDTODEVICE"),
    opt(SOL_SOCKET, 62, "SO_BINDTOIFINDEX"),
    opt(SOL_SOCKET, 36, "SO_MARK"),
    opt(SOL_IP, 4, "IP_OPTIONS"),
    opt(SOL_IP, 50, "IP_UNICAST_IF"),
    opt(SOL_IP, 16, "IP_IPSEC_POLICY"),
    opt(SOL_IP, 17, "IP_XFRM_POLICY"),
    opt(SOL_IPV6, 57, "IPV6_RTHDR"),
    opt(SOL_IPV6, 5, "IPV6_2292RTHDR"),
    opt(SOL_IPV6, 6, "IPV6_2292PKTOPTIONS"),
    opt(SOL_IPV6, 9, "IPV6_NEXTHOP"),
    opt(SOL_IPV6, 50, "IPV6_PKTINFO"),
    opt(SOL_IPV6, 76, "IPV6_UNICAST_IF"),
    opt(SOL_IPV6, 34, "IPV6_IPSEC_POLICY"),
    opt(SOL_IPV6, 35, "IPV6_XFRM_POLICY"),
    // Joining a multicast group makes the kernel send membership reports (IGMP, MLD) of its
    // own, naming groups the program chose: a channel onto the LAN that no socket of the
    // program's carries. Blocking sources, filters and leaving need a membership first.
    opt(SOL_IP, 35, "IP_ADD_MEMBERSHIP"),
    opt(SOL_IP, 39, "IP_ADD_SOURCE_MEMBERSHIP"),
    opt(SOL_IP, 42, "MCAST_JOIN_GROUP"),
    opt(SOL_IP, 46, "MCAST_JOIN_SOURCE_GROUP"),
    opt(SOL_IPV6, 20, "IPV6_ADD_MEMBERSHIP"),
    opt(SOL_IPV6, 27, "IPV6_JOIN_ANYCAST"),
    opt(SOL_IPV6, 42, "MCAST_JOIN_GROUP"),
    opt(SOL_IPV6, 46, "MCAST_JOIN_SOURCE_GROUP"),
];

/// `(level, optname)` as one word, the form the kernel program compares (see [`ROUTING_KEYS`]).
#[inline(always)]
pub const fn option_key(level: i32, optname: i32) -> u64 {
    (level as u32 as u64) << 32 | optname as u32 as u64
}

/// [`option_key`] of every entry of [`ROUTING_OPTIONS`], in order: what the kernel program
/// walks (a loop over data the compiler cannot turn into a tree of conditional moves, whose
/// combinations the verifier would each follow).
pub const ROUTING_KEYS: [u64; ROUTING_OPTIONS.len()] = {
    let mut keys = [0; ROUTING_OPTIONS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = option_key(ROUTING_OPTIONS[i].level, ROUTING_OPTIONS[i].optname);
        i += 1;
    }
    keys
};

/// Whether `setsockopt(level, optname)` is refused: all of [`SOL_SCTP`], and every entry of
/// [`ROUTING_OPTIONS`]. `level` and `optname` are the kernel's `int` arguments.
///
/// The host's answer; the kernel program walks [`ROUTING_KEYS`] the same way.
#[inline(always)]
pub const fn is_routing_option(level: i32, optname: i32) -> bool {
    if level == SOL_SCTP {
        return true;
    }
    let mut i = 0;
    while i < ROUTING_OPTIONS.len() {
        let entry = &ROUTING_OPTIONS[i];
        if entry.level == level && entry.optname == optname {
            return true;
        }
        i += 1;
    }
    false
}

/// The table's entry for `(level, optname)`, if any ([`SOL_SCTP`] has none: all of it is
/// refused).
pub fn routing_option_entry(level: i32, optname: i32) -> Option<&'static RoutingOption> {
    ROUTING_OPTIONS.iter().find(|e| e.level == level && e.optname == optname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_agrees_with_the_table() {
        for e in &ROUTING_OPTIONS {
            assert!(is_routing_option(e.level, e.optname), "{}", e.name);
            assert_eq!(routing_option_entry(e.level, e.optname), Some(e));
        }
        for (e, &key) in ROUTING_OPTIONS.iter().zip(&ROUTING_KEYS) {
            assert_eq!(key, option_key(e.level, e.optname), "{}", e.name);
        }
        assert!(is_routing_option(SOL_SCTP, 0));
        assert!(is_routing_option(SOL_SCTP, 1234));
        assert_eq!(routing_option_entry(SOL_SCTP, 1), None);
        // SO_REUSEADDR, TCP_NODELAY, IP_TTL, IPV6_V6ONLY.
        for (level, optname) in [(SOL_SOCKET, 2), (6, 1), (SOL_IP, 2), (SOL_IPV6, 26)] {
            assert!(!is_routing_option(level, optname), "{level}/{optname}");
        }
        // The same number at another level is another option.
        assert!(!is_routing_option(6, 25));
        assert!(!is_routing_option(SOL_IP, 57));
    }

    #[test]
    fn an_event_carries_its_option() {
        for (level, optname) in [(SOL_IPV6, 57), (SOL_SCTP, 100), (-1, i32::MIN)] {
            let mut event = crate::SockEvent::zeroed();
            event.addr[..8].copy_from_slice(&crate::option_word(level, optname).to_ne_bytes());
            assert_eq!(event.option(), (level, optname));
        }
    }

    #[test]
    fn no_pair_is_listed_twice() {
        for (i, a) in ROUTING_OPTIONS.iter().enumerate() {
            for b in &ROUTING_OPTIONS[i + 1..] {
                assert!((a.level, a.optname) != (b.level, b.optname), "{} and {}", a.name, b.name);
            }
        }
    }
}
