//! Control messages (`struct cmsghdr` sequences) of a send, parsed from the
//! caller's copied control buffer with the kernel's own walking rules, judged
//! against an allowlist, and written out again in the native layout for the
//! send we perform.
//!
//! Control messages can move the first hop as socket options do (an IPv4
//! source route in `IP_RETOPTS`, an IPv6 routing header, a next hop, an
//! outgoing interface in `IP_PKTINFO`): only messages that cannot are let
//! through.

use super::msghdr::Layout;
use super::sockopt::SOL_UDP;

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmsg {
    pub level: i32,
    pub kind: i32,
    pub data: Vec<u8>,
}

/// The header layout of one ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// `sizeof(struct cmsghdr)`: `size_t` length plus two ints.
    size: usize,
    /// `CMSG_ALIGN`'s unit.
    align: usize,
}

const NATIVE: Header = Header { size: 16, align: 8 };
/// `struct compat_cmsghdr` (i386 callers).
const COMPAT: Header = Header { size: 12, align: 4 };

fn header(layout: &Layout) -> Header {
    if *layout == Layout::COMPAT {
        COMPAT
    } else {
        NATIVE
    }
}

fn align(len: usize, unit: usize) -> usize {
    len.div_ceil(unit) * unit
}

/// A control buffer the kernel would refuse with `EINVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed control message buffer")]
pub struct Malformed;

/// Walks `bytes` as the kernel does (`for_each_cmsghdr` with `CMSG_OK`, or
/// `cmsghdr_from_user_compat_to_kern` for i386): a message whose length is
/// below the header or past the buffer is `EINVAL`; trailing bytes too short
/// for a header are ignored; an i386 buffer with no header at all is `EINVAL`.
pub fn parse(layout: &Layout, bytes: &[u8]) -> Result<Vec<Cmsg>, Malformed> {
    let h = header(layout);
    let mut out = Vec::new();
    if bytes.is_empty() {
        return Ok(out);
    }
    if bytes.len() < h.size {
        return if h == COMPAT { Err(Malformed) } else { Ok(out) };
    }
    let mut off = 0usize;
    loop {
        let rest = &bytes[off..];
        let len = if h == COMPAT {
            u32::from_ne_bytes(rest[0..4].try_into().map_err(|_| Malformed)?) as u64
        } else {
            u64::from_ne_bytes(rest[0..8].try_into().map_err(|_| Malformed)?)
        };
        let at = h.size - 8;
        let level = i32::from_ne_bytes(rest[at..at + 4].try_into().map_err(|_| Malformed)?);
        let kind = i32::from_ne_bytes(rest[at + 4..at + 8].try_into().map_err(|_| Malformed)?);
        if len < h.size as u64 || len > rest.len() as u64 {
            return Err(Malformed);
        }
        let len = len as usize;
        out.push(Cmsg { level, kind, data: rest[h.size..len].to_vec() });
        let next = off + align(len, h.align);
        if next + h.size > bytes.len() {
            return Ok(out);
        }
        off = next;
    }
}

/// The messages in the native layout, each padded to `CMSG_SPACE`.
pub fn encode_native(msgs: &[Cmsg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let len = NATIVE.size + m.data.len();
        out.extend_from_slice(&(len as u64).to_ne_bytes());
        out.extend_from_slice(&m.level.to_ne_bytes());
        out.extend_from_slice(&m.kind.to_ne_bytes());
        out.extend_from_slice(&m.data);
        out.resize(out.len() + align(len, NATIVE.align) - len, 0);
    }
    out
}

const SOL_SOCKET: i32 = libc::SOL_SOCKET;
const SOL_IP: i32 = libc::SOL_IP;
const SOL_IPV6: i32 = libc::SOL_IPV6;

/// The name of a control message, for the report.
pub fn name(level: i32, kind: i32) -> String {
    let known = match (level, kind) {
        (SOL_SOCKET, 1) => "SCM_RIGHTS",
        (SOL_SOCKET, 2) => "SCM_CREDENTIALS",
        (SOL_SOCKET, 12) => "SO_PRIORITY",
        (SOL_SOCKET, 36) => "SO_MARK",
        (SOL_SOCKET, 37) => "SO_TIMESTAMPING_OLD",
        (SOL_SOCKET, 61) => "SCM_TXTIME",
        (SOL_SOCKET, 65) => "SO_TIMESTAMPING_NEW",
        (SOL_IP, 1) => "IP_TOS",
        (SOL_IP, 2) => "IP_TTL",
        (SOL_IP, 7) => "IP_RETOPTS",
        (SOL_IP, 8) => "IP_PKTINFO",
        (SOL_IPV6, 2) => "IPV6_2292PKTINFO",
        (SOL_IPV6, 3) => "IPV6_2292HOPOPTS",
        (SOL_IPV6, 4) => "IPV6_2292DSTOPTS",
        (SOL_IPV6, 5) => "IPV6_2292RTHDR",
        (SOL_IPV6, 8) => "IPV6_2292HOPLIMIT",
        (SOL_IPV6, 9) => "IPV6_NEXTHOP",
        (SOL_IPV6, 11) => "IPV6_FLOWINFO",
        (SOL_IPV6, 50) => "IPV6_PKTINFO",
        (SOL_IPV6, 52) => "IPV6_HOPLIMIT",
        (SOL_IPV6, 54) => "IPV6_HOPOPTS",
        (SOL_IPV6, 55) => "IPV6_RTHDRDSTOPTS",
        (SOL_IPV6, 57) => "IPV6_RTHDR",
        (SOL_IPV6, 59) => "IPV6_DSTOPTS",
        (SOL_IPV6, 62) => "IPV6_DONTFRAG",
        (SOL_IPV6, 67) => "IPV6_TCLASS",
        (SOL_UDP, 103) => "UDP_SEGMENT",
        _ => return format!("cmsg-{level}/{kind}"),
    };
    known.to_string()
}

/// An `int` at `at` in `data`, if there.
fn int_at(data: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Whether one message leaves the first hop alone.
pub fn allowed(m: &Cmsg) -> bool {
    match (m.level, m.kind) {
        // SO_TIMESTAMPING (old and new), SCM_TXTIME, SO_PRIORITY.
        (SOL_SOCKET, 37 | 65 | 61 | 12) => true,
        // IP_TOS, IP_TTL.
        (SOL_IP, 1 | 2) => true,
        // IP_PKTINFO: struct in_pktinfo, ipi_ifindex first; only "any interface".
        (SOL_IP, 8) => int_at(&m.data, 0) == Some(0),
        // IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_DONTFRAG, IPV6_FLOWINFO, IPV6_2292HOPLIMIT.
        (SOL_IPV6, 52 | 67 | 62 | 11 | 8) => true,
        // IPV6_PKTINFO and IPV6_2292PKTINFO: struct in6_pktinfo, the
        // interface after the 16-byte address; only "any interface".
        (SOL_IPV6, 50 | 2) => int_at(&m.data, 16) == Some(0),
        // UDP_SEGMENT.
        (SOL_UDP, 103) => true,
        _ => false,
    }
}

/// The first message that is not allowed, by name.
pub fn refused(msgs: &[Cmsg]) -> Option<String> {
    msgs.iter().find(|m| !allowed(m)).map(|m| name(m.level, m.kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn native(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        encode_native(&[Cmsg { level, kind, data: data.to_vec() }])
    }

    fn compat(msgs: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (level, kind, data) in msgs {
            let len = 12 + data.len();
            out.extend_from_slice(&(len as u32).to_ne_bytes());
            out.extend_from_slice(&level.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(data);
            out.resize(out.len() + align(len, 4) - len, 0);
        }
        out
    }

    fn c(level: i32, kind: i32, data: &[u8]) -> Cmsg {
        Cmsg { level, kind, data: data.to_vec() }
    }

    #[test]
    fn native_layout_matches_libc_macros() {
        // SAFETY: CMSG_LEN and CMSG_SPACE are pure arithmetic.
        let (len, space) = unsafe { (libc::CMSG_LEN(4) as usize, libc::CMSG_SPACE(4) as usize) };
        let bytes = native(libc::SOL_IP, libc::IP_TTL, &64i32.to_ne_bytes());
        assert_eq!(bytes.len(), space);
        assert_eq!(u64::from_ne_bytes(bytes[0..8].try_into().unwrap()) as usize, len);
        assert_eq!(
            parse(&Layout::X86_64, &bytes).unwrap(),
            vec![c(libc::SOL_IP, libc::IP_TTL, &64i32.to_ne_bytes())]
        );
    }

    #[test]
    fn walks_several_messages_and_ignores_a_short_tail() {
        let mut bytes = native(0, 2, &[1, 0, 0, 0]);
        bytes.extend(native(41, 57, &[9; 24]));
        bytes.extend([0u8; 15]);
        let msgs = parse(&Layout::X86_64, &bytes).unwrap();
        assert_eq!(msgs, vec![c(0, 2, &[1, 0, 0, 0]), c(41, 57, &[9; 24])]);
        assert_eq!(parse(&Layout::X86_64, &[0u8; 15]).unwrap(), vec![]);
        assert_eq!(parse(&Layout::X86_64, &[]).unwrap(), vec![]);
    }

    #[test]
    fn malformed_lengths_are_einval() {
        let mut bytes = native(0, 2, &[1, 0, 0, 0]);
        bytes[0..8].copy_from_slice(&15u64.to_ne_bytes());
        assert_eq!(parse(&Layout::X86_64, &bytes), Err(Malformed));
        let too_long = bytes.len() as u64 + 1;
        bytes[0..8].copy_from_slice(&too_long.to_ne_bytes());
        assert_eq!(parse(&Layout::X86_64, &bytes), Err(Malformed));
        bytes[0..8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(parse(&Layout::X86_64, &bytes), Err(Malformed));
        // An i386 buffer too short for one header.
        assert_eq!(parse(&Layout::COMPAT, &[0u8; 11]), Err(Malformed));
    }

    #[test]
    fn compat_messages_become_native() {
        let bytes = compat(&[(0, 7, &[0x83, 7, 4, 0, 0, 0, 0, 0]), (0, 2, &[64, 0, 0, 0])]);
        let msgs = parse(&Layout::COMPAT, &bytes).unwrap();
        assert_eq!(msgs, vec![c(0, 7, &[0x83, 7, 4, 0, 0, 0, 0, 0]), c(0, 2, &[64, 0, 0, 0])]);
        let out = encode_native(&msgs);
        assert_eq!(parse(&Layout::X86_64, &out).unwrap(), msgs);
        // The same bytes read natively are another thing entirely.
        assert_ne!(parse(&Layout::X86_64, &bytes).ok(), Some(msgs));
    }

    #[test]
    fn the_allowlist() {
        let zero_if = [0u8; 12];
        let mut veth_if = [0u8; 12];
        veth_if[0] = 3;
        let mut zero6 = [0u8; 20];
        zero6[0] = 0xfd;
        let mut veth6 = zero6;
        veth6[16] = 3;
        for m in [
            c(1, 37, &[0; 4]),
            c(1, 65, &[0; 4]),
            c(1, 61, &[0; 8]),
            c(1, 12, &[0; 4]),
            c(0, 1, &[0; 4]),
            c(0, 2, &[0; 4]),
            c(0, 8, &zero_if),
            c(41, 52, &[0; 4]),
            c(41, 67, &[0; 4]),
            c(41, 62, &[0; 4]),
            c(41, 11, &[0; 4]),
            c(41, 50, &zero6),
            c(41, 8, &[0; 4]),
            c(17, 103, &[0; 2]),
        ] {
            assert!(allowed(&m), "{m:?} must be allowed");
        }
        for (m, label) in [
            (c(0, 7, &[0x83, 7, 4, 0]), "IP_RETOPTS"),
            (c(0, 8, &veth_if), "IP_PKTINFO"),
            (c(0, 8, &[0; 2]), "IP_PKTINFO"),
            (c(41, 50, &veth6), "IPV6_PKTINFO"),
            (c(41, 2, &veth6), "IPV6_2292PKTINFO"),
            (c(41, 57, &[0; 24]), "IPV6_RTHDR"),
            (c(41, 5, &[0; 24]), "IPV6_2292RTHDR"),
            (c(41, 9, &[0; 28]), "IPV6_NEXTHOP"),
            (c(1, 36, &[0; 4]), "SO_MARK"),
            (c(1, 1, &[0; 4]), "SCM_RIGHTS"),
            (c(99, 1, &[]), "cmsg-99/1"),
        ] {
            assert_eq!(refused(&[c(0, 2, &[0; 4]), m]).as_deref(), Some(label));
        }
    }

    proptest! {
        /// Whatever the bytes, parsing never panics, and what parses survives
        /// a round trip through the native encoding.
        #[test]
        fn parse_is_total_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200), compat_abi: bool) {
            let layout = if compat_abi { Layout::COMPAT } else { Layout::X86_64 };
            if let Ok(msgs) = parse(&layout, &bytes) {
                prop_assert_eq!(parse(&Layout::X86_64, &encode_native(&msgs)).unwrap(), msgs);
            }
        }

        /// Built messages parse back exactly; the judge refuses a buffer iff
        /// one of its messages is refused alone.
        #[test]
        fn built_messages_parse_back(msgs in proptest::collection::vec(
            (prop_oneof![Just(0i32), Just(1), Just(17), Just(41), any::<i32>()],
             0i32..128,
             proptest::collection::vec(any::<u8>(), 0..40)), 0..6)) {
            let msgs: Vec<Cmsg> = msgs.into_iter().map(|(level, kind, data)| Cmsg { level, kind, data }).collect();
            prop_assert_eq!(parse(&Layout::X86_64, &encode_native(&msgs)).unwrap(), msgs.clone());
            let any_refused = msgs.iter().any(|m| refused(std::slice::from_ref(m)).is_some());
            prop_assert_eq!(refused(&msgs).is_some(), any_refused);
        }
    }
}
