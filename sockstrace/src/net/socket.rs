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
    pub fn is_inet(&self) -> bool {
        self.family == libc::AF_INET || self.family == libc::AF_INET6
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

    /// The transport protocol; `0` is resolved to the family's default.
    pub fn protocol_name(&self) -> String {
        if !self.is_inet() {
            return match self.protocol {
                0 => "default".into(),
                other => format!("proto-{other}"),
            };
        }
        match (self.protocol, self.sock_type) {
            (libc::IPPROTO_TCP, _) | (0, libc::SOCK_STREAM) => "tcp".into(),
            (libc::IPPROTO_UDP, _) | (0, libc::SOCK_DGRAM) => "udp".into(),
            (libc::IPPROTO_UDPLITE, _) => "udplite".into(),
            (libc::IPPROTO_MPTCP, _) => "mptcp".into(),
            (libc::IPPROTO_SCTP, _) => "sctp".into(),
            (libc::IPPROTO_ICMP, _) => "icmp".into(),
            (libc::IPPROTO_ICMPV6, _) => "icmpv6".into(),
            (libc::IPPROTO_RAW, _) => "raw".into(),
            (other, _) => format!("proto-{other}"),
        }
    }

    /// Transport as the policy sees it.
    pub fn transport(&self) -> Transport {
        match self.protocol_name().as_str() {
            "tcp" | "mptcp" => Transport::Tcp,
            "udp" | "udplite" => Transport::Udp,
            _ if self.sock_type == libc::SOCK_RAW => Transport::Raw,
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
}
