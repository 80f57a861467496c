//! What a socket is (family, type, protocol), and the names reports use for it.

/// The bits of a `socket()` type argument that name the type (the rest are
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
pub const SOCK_TYPE_MASK: i32 = 0xf;
/// The obsolete `SOCK_PACKET` type: a packet socket in the inet family.
pub const SOCK_PACKET: i32 = 10;

/// Facts the kernel holds about a socket, read from our own duplicate of it,
/// so the tracee cannot change them between check and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketFacts {
    pub family: i32,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ... (without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
    pub sock_type: i32,
    pub protocol: i32,
}

impl SocketFacts {
    /// A UDP socket of the family that sends to `dst` as given (an IPv4 address by an IPv4
    /// socket, any other by an IPv6 one).
    pub fn udp_for(dst: std::net::SocketAddr) -> Self {
        let family = if dst.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        Self { family, sock_type: libc::SOCK_DGRAM, protocol: libc::IPPROTO_UDP }
    }

    pub fn is_inet(&self) -> bool {
        self.family == libc::AF_INET || self.family == libc::AF_INET6
    }

    /// Families whose traffic stays on this machine and whose calls the
    /// kernel must run in the caller's context (unix paths resolve against
    /// its cwd, peers see its credentials): unix, netlink, alg.
    pub fn is_local_family(&self) -> bool {
        matches!(self.family, libc::AF_UNIX | libc::AF_NETLINK | libc::AF_ALG)
    }

    pub fn is_stream(&self) -> bool {
        self.sock_type == libc::SOCK_STREAM
    }

    pub fn family_name(&self) -> String {
        family_name(self.family)
    }

    pub fn type_name(&self) -> String {
        match self.sock_type {
            libc::SOCK_STREAM => "stream".into(),
            libc::SOCK_DGRAM => "dgram".into(),
            libc::SOCK_RAW => "raw".into(),
            libc::SOCK_SEQPACKET => "seqpacket".into(),
            libc::SOCK_RDM => "rdm".into(),
            SOCK_PACKET => "packet".into(),
            other => format!("type-{other}"),
        }
    }

    /// The transport protocol; `0` is resolved to the family's default. The
    /// type is read first: a `SOCK_RAW` socket writes whole IP packets
    /// whatever protocol number it names (`SOCK_RAW` with `IPPROTO_UDP` is
    /// no UDP socket), so it never gets a transport's name.
    pub fn protocol_name(&self) -> String {
        if !self.is_inet() {
            return match self.protocol {
                0 => "default".into(),
                other => format!("proto-{other}"),
            };
        }
        let named = match (self.sock_type, self.protocol) {
            (libc::SOCK_RAW, libc::IPPROTO_ICMP) => "icmp",
            (libc::SOCK_RAW, libc::IPPROTO_ICMPV6) => "icmpv6",
            (libc::SOCK_RAW, libc::IPPROTO_RAW) => "raw",
            (libc::SOCK_RAW, _) | (SOCK_PACKET, _) => "",
            (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => "tcp",
            (libc::SOCK_STREAM, libc::IPPROTO_MPTCP) => "mptcp",
            (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => "udp",
            (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE) => "udplite",
            (libc::SOCK_DGRAM, libc::IPPROTO_ICMP) => "icmp",
            (libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6) => "icmpv6",
            (_, libc::IPPROTO_SCTP) => "sctp",
            _ => "",
        };
        if named.is_empty() {
            format!("proto-{}", self.protocol)
        } else {
            named.into()
        }
    }

    /// Transport as the policy sees it: the type decides first (a raw
    /// socket is raw whatever its protocol number).
    pub fn transport(&self) -> Transport {
        if self.sock_type == libc::SOCK_RAW {
            return Transport::Raw;
        }
        if !self.is_inet() {
            return Transport::Other;
        }
        match self.protocol_name().as_str() {
            "tcp" | "mptcp" => Transport::Tcp,
            "udp" | "udplite" => Transport::Udp,
            _ => Transport::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    Raw,
    Other,
}

pub fn family_name(family: i32) -> String {
    match family {
        libc::AF_INET => "inet".into(),
        libc::AF_INET6 => "inet6".into(),
        libc::AF_UNIX => "unix".into(),
        libc::AF_NETLINK => "netlink".into(),
        libc::AF_PACKET => "packet".into(),
        libc::AF_ALG => "alg".into(),
        libc::AF_VSOCK => "vsock".into(),
        libc::AF_BLUETOOTH => "bluetooth".into(),
        libc::AF_UNSPEC => "unspec".into(),
        other => format!("family-{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(family: i32, sock_type: i32, protocol: i32) -> SocketFacts {
        SocketFacts { family, sock_type, protocol }
    }

    #[test]
    fn default_protocols_resolve() {
        assert_eq!(facts(libc::AF_INET, libc::SOCK_STREAM, 0).protocol_name(), "tcp");
        assert_eq!(facts(libc::AF_INET6, libc::SOCK_DGRAM, 0).protocol_name(), "udp");
        assert_eq!(facts(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP).protocol_name(), "icmp");
        assert_eq!(facts(libc::AF_INET, libc::SOCK_RAW, 255).transport(), Transport::Raw);
        assert_eq!(facts(libc::AF_UNIX, libc::SOCK_STREAM, 0).protocol_name(), "default");
    }

    #[test]
    fn names_match_the_report_contract() {
        let f = facts(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP);
        assert_eq!((f.family_name().as_str(), f.type_name().as_str()), ("inet6", "stream"));
        assert_eq!(family_name(libc::AF_PACKET), "packet");
    }

    #[test]
    fn local_families_are_unix_netlink_and_alg() {
        let of = |family| SocketFacts { family, sock_type: libc::SOCK_DGRAM, protocol: 0 };
        for family in [libc::AF_UNIX, libc::AF_NETLINK, libc::AF_ALG] {
            assert!(of(family).is_local_family(), "{family}");
        }
        for family in [libc::AF_INET, libc::AF_INET6, libc::AF_PACKET, libc::AF_VSOCK] {
            assert!(!of(family).is_local_family(), "{family}");
        }
    }

    #[test]
    fn raw_sockets_are_raw_whatever_their_protocol() {
        for proto in [libc::IPPROTO_UDP, libc::IPPROTO_TCP, libc::IPPROTO_UDPLITE, libc::IPPROTO_MPTCP, 0] {
            for family in [libc::AF_INET, libc::AF_INET6] {
                let raw = facts(family, libc::SOCK_RAW, proto);
                assert_eq!(raw.transport(), Transport::Raw, "raw with protocol {proto}");
                assert!(
                    !matches!(raw.protocol_name().as_str(), "udp" | "tcp" | "udplite" | "mptcp"),
                    "raw with protocol {proto} named {}",
                    raw.protocol_name()
                );
            }
        }
        assert_eq!(facts(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP).protocol_name(), "proto-17");
        assert_eq!(facts(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP).protocol_name(), "icmp");
        assert_eq!(facts(libc::AF_INET, SOCK_PACKET, libc::IPPROTO_UDP).transport(), Transport::Other);
        assert_eq!(facts(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_UDP).transport(), Transport::Other);
        assert_eq!(facts(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_TCP).transport(), Transport::Other);
        assert_eq!(facts(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP).transport(), Transport::Tcp);
        assert_eq!(facts(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE).transport(), Transport::Udp);
        assert_eq!(facts(libc::AF_UNIX, libc::SOCK_DGRAM, 0).transport(), Transport::Other);
    }
}
