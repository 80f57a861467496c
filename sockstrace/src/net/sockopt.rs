//! Socket options that move a packet's first hop away from the address the
//! program names (routing headers, source routes, binding to a device, an
//! outgoing interface, a next hop, policy routing marks, IPsec policies) or
//! make the kernel send packets of its own for the program (multicast
//! membership reports), and
//! the option names the report uses. Pure tables: the seccomp filter traps
//! exactly these `(level, optname)` pairs and the supervisor refuses them.
//! The table is `sockstrace_common::sockopt`'s, the one the kernel layer's
//! `cgroup/setsockopt` program refuses too.

use sockstrace_common::sockopt as shared;

/// `SOL_SCTP`: every SCTP option is refused (`connectx` and peer addresses
/// go through setsockopt).
pub const SOL_SCTP: i32 = shared::SOL_SCTP;
/// `SOL_UDP`.
pub const SOL_UDP: i32 = 17;

const SOL_SOCKET: i32 = libc::SOL_SOCKET;
const SOL_IP: i32 = libc::SOL_IP;
const SOL_IPV6: i32 = libc::SOL_IPV6;

/// The refused options: (level, optname, name), from the shared table.
pub const ROUTING_OPTIONS: &[(i32, i32, &str)] = &as_tuples();

const fn as_tuples() -> [(i32, i32, &'static str); shared::ROUTING_OPTIONS.len()] {
    let mut out = [(0, 0, ""); shared::ROUTING_OPTIONS.len()];
    let mut i = 0;
    while i < out.len() {
        let e = shared::ROUTING_OPTIONS[i];
        out[i] = (e.level, e.optname, e.name);
        i += 1;
    }
    out
}

/// The name of a refused option, or `None` when the option may be set.
/// `level` and `optname` are the kernel's `int` arguments (low 32 bits).
pub fn routing_option(level: i32, optname: i32) -> Option<String> {
    if level == SOL_SCTP {
        return Some(format!("SOL_SCTP/{optname}"));
    }
    shared::routing_option_entry(level, optname).map(|e| e.name.to_string())
}

/// `MCAST_*` group requests: `struct group_req` and friends hold a
/// `sockaddr_storage` after an `int`, padded differently for i386.
const MCAST_RANGE: std::ops::RangeInclusive<i32> = 42..=48;

/// How an i386 caller's option value becomes the value we pass to our own
/// (native) `setsockopt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatValue {
    /// The same bytes mean the same thing on both ABIs.
    Same,
    /// `struct compat_timeval` (two 32-bit words) to `struct timeval`.
    Timeval,
    /// A layout with pointers or different padding that we do not convert.
    Unconverted,
}

/// How to carry an i386 option value over to a native call.
pub fn compat_value(level: i32, optname: i32) -> CompatValue {
    match (level, optname) {
        // SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD.
        (SOL_SOCKET, 20 | 21) => CompatValue::Timeval,
        // SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF: a pointer inside.
        (SOL_SOCKET, 26 | 51) => CompatValue::Unconverted,
        (SOL_IP | SOL_IPV6, o) if MCAST_RANGE.contains(&o) => CompatValue::Unconverted,
        // Netfilter's table replacement (IPT_SO_SET_REPLACE and friends).
        (SOL_IP | SOL_IPV6, 64..=67) => CompatValue::Unconverted,
        _ => CompatValue::Same,
    }
}

/// Converts a compat timeval to the native one; `None` when too short.
pub fn timeval_from_compat(value: &[u8]) -> Option<Vec<u8>> {
    let sec = i32::from_ne_bytes(value.get(0..4)?.try_into().ok()?);
    let usec = i32::from_ne_bytes(value.get(4..8)?.try_into().ok()?);
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&i64::from(sec).to_ne_bytes());
    out.extend_from_slice(&i64::from(usec).to_ne_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_libc_constants() {
        let by_name = |n: &str| ROUTING_OPTIONS.iter().find(|e| e.2 == n).map(|e| (e.0, e.1));
        assert_eq!(by_name("SO_BINDTODEVICE"), Some((libc::SOL_SOCKET, libc::SO_BINDTODEVICE)));
        assert_eq!(by_name("SO_MARK"), Some((libc::SOL_SOCKET, libc::SO_MARK)));
        assert_eq!(by_name("IP_OPTIONS"), Some((libc::IPPROTO_IP, libc::IP_OPTIONS)));
        assert_eq!(by_name("IPV6_RTHDR"), Some((libc::IPPROTO_IPV6, libc::IPV6_RTHDR)));
        assert_eq!(by_name("IPV6_2292RTHDR"), Some((libc::IPPROTO_IPV6, libc::IPV6_2292RTHDR)));
        assert_eq!(by_name("IPV6_2292PKTOPTIONS"), Some((libc::IPPROTO_IPV6, libc::IPV6_2292PKTOPTIONS)));
        assert_eq!(by_name("IPV6_NEXTHOP"), Some((libc::IPPROTO_IPV6, libc::IPV6_NEXTHOP)));
        assert_eq!(by_name("IPV6_PKTINFO"), Some((libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)));
        assert_eq!(by_name("IPV6_UNICAST_IF"), Some((libc::IPPROTO_IPV6, libc::IPV6_UNICAST_IF)));
        assert_eq!(by_name("IP_UNICAST_IF"), Some((libc::IPPROTO_IP, libc::IP_UNICAST_IF)));
        assert_eq!(by_name("IPV6_XFRM_POLICY"), Some((libc::IPPROTO_IPV6, libc::IPV6_XFRM_POLICY)));
        assert_eq!(by_name("IPV6_IPSEC_POLICY"), Some((libc::IPPROTO_IPV6, libc::IPV6_IPSEC_POLICY)));
        assert_eq!(by_name("IP_XFRM_POLICY"), Some((libc::IPPROTO_IP, libc::IP_XFRM_POLICY)));
        assert_eq!(by_name("IP_IPSEC_POLICY"), Some((libc::IPPROTO_IP, libc::IP_IPSEC_POLICY)));
    }

    #[test]
    fn ordinary_options_pass() {
        for (level, name) in [
            (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            (libc::IPPROTO_IP, libc::IP_TOS),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
            (libc::IPPROTO_IP, libc::IP_PKTINFO),
        ] {
            assert_eq!(routing_option(level, name), None, "{level}/{name}");
        }
        // The same number at another level is another option.
        assert_eq!(routing_option(libc::IPPROTO_TCP, 25), None);
        assert_eq!(routing_option(libc::IPPROTO_IP, libc::IPV6_RTHDR), None);
    }

    #[test]
    fn every_listed_option_and_all_of_sctp_are_refused() {
        for &(level, name, label) in ROUTING_OPTIONS {
            assert_eq!(routing_option(level, name).as_deref(), Some(label));
        }
        assert_eq!(routing_option(SOL_SCTP, 100).as_deref(), Some("SOL_SCTP/100"));
    }

    #[test]
    fn the_kernel_layer_refuses_exactly_what_this_layer_refuses() {
        // Every option named here is one the kernel program refuses, and the reverse for a
        // sweep of levels and names.
        for level in
            [libc::SOL_SOCKET, libc::IPPROTO_IP, libc::IPPROTO_IPV6, libc::IPPROTO_TCP, SOL_UDP, SOL_SCTP]
        {
            for optname in 0..128 {
                assert_eq!(
                    routing_option(level, optname).is_some(),
                    shared::is_routing_option(level, optname),
                    "{level}/{optname}"
                );
            }
        }
        assert_eq!((SOL_SOCKET, SOL_IP, SOL_IPV6), (shared::SOL_SOCKET, shared::SOL_IP, shared::SOL_IPV6));
    }

    #[test]
    fn compat_values() {
        assert_eq!(compat_value(libc::SOL_SOCKET, libc::SO_REUSEADDR), CompatValue::Same);
        assert_eq!(compat_value(libc::SOL_SOCKET, 20), CompatValue::Timeval);
        assert_eq!(compat_value(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER), CompatValue::Unconverted);
        assert_eq!(compat_value(libc::IPPROTO_IPV6, libc::MCAST_JOIN_GROUP), CompatValue::Unconverted);
        let tv: Vec<u8> = [5i32, 250_000].iter().flat_map(|w| w.to_ne_bytes()).collect();
        let native = timeval_from_compat(&tv).unwrap();
        assert_eq!(native[0..8], 5i64.to_ne_bytes());
        assert_eq!(native[8..16], 250_000i64.to_ne_bytes());
        assert_eq!(timeval_from_compat(&tv[..7]), None);
    }
}
