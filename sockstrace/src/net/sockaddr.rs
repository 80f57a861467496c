//! `struct sockaddr_*` parsing and the textual form used in reports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The largest address the kernel accepts (`sizeof(struct sockaddr_storage)`).
pub const SOCKADDR_MAX: usize = 128;

const SOCKADDR_IN_LEN: usize = 16;
/// RFC 2133 `sockaddr_in6` without `sin6_scope_id`; the kernel accepts it.
const SOCKADDR_IN6_MIN_LEN: usize = 24;
const SUN_PATH_OFFSET: usize = 2;

/// A destination or local address, normalized for policy decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// IPv4 or IPv6; a v4-mapped IPv6 address is stored as IPv4.
    Inet(SocketAddr),
    Unix(UnixAddr),
    /// `AF_UNSPEC`: on `connect`, dissolves the association.
    Unspec,
    /// Any other address family, by number.
    Other {
        family: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    Path(PathBuf),
    /// Linux abstract namespace (leading NUL byte), name without the NUL.
    Abstract(Vec<u8>),
    /// Only the family: autobind or an unnamed peer.
    Unnamed,
}

/// Why a sockaddr could not be parsed; the kernel would answer `EINVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("address is shorter than its family requires")]
    TooShort,
    #[error("address is longer than sockaddr_storage")]
    TooLong,
}

/// Parses a sockaddr as the kernel would read it from `len` bytes.
pub fn parse(bytes: &[u8]) -> Result<SockAddr, AddrError> {
    if bytes.len() > SOCKADDR_MAX {
        return Err(AddrError::TooLong);
    }
    if bytes.len() < 2 {
        return Err(AddrError::TooShort);
    }
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    match i32::from(family) {
        libc::AF_INET => parse_inet4(bytes).map(SockAddr::Inet),
        libc::AF_INET6 => parse_inet6(bytes).map(SockAddr::Inet),
        libc::AF_UNIX => Ok(SockAddr::Unix(parse_unix(bytes))),
        libc::AF_UNSPEC => Ok(SockAddr::Unspec),
        _ => Ok(SockAddr::Other { family }),
    }
}

/// Reads the bytes as `sockaddr_in` whatever their family field says, as IPv4
/// datagram sockets do for an `AF_UNSPEC` destination.
pub fn parse_inet4(bytes: &[u8]) -> Result<SocketAddr, AddrError> {
    if bytes.len() < SOCKADDR_IN_LEN {
        return Err(AddrError::TooShort);
    }
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
    Ok(SocketAddr::new(IpAddr::V4(ip), port))
}

fn parse_inet6(bytes: &[u8]) -> Result<SocketAddr, AddrError> {
    if bytes.len() < SOCKADDR_IN6_MIN_LEN {
        return Err(AddrError::TooShort);
    }
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[8..24]);
    let ip = Ipv6Addr::from(octets);
    Ok(normalize(SocketAddr::new(IpAddr::V6(ip), port)))
}

fn parse_unix(bytes: &[u8]) -> UnixAddr {
    let path = &bytes[SUN_PATH_OFFSET..];
    match path.first() {
        None => UnixAddr::Unnamed,
        Some(0) => UnixAddr::Abstract(path[1..].to_vec()),
        Some(_) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            use std::os::unix::ffi::OsStrExt;
            UnixAddr::Path(PathBuf::from(std::ffi::OsStr::from_bytes(&path[..end])))
        }
    }
}

/// Writes a v4-mapped IPv6 address (`::ffff:a.b.c.d`) in its IPv4 form.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(addr) => write!(f, "{addr}"),
            SockAddr::Unix(UnixAddr::Path(p)) => write!(f, "unix:{}", p.display()),
            SockAddr::Unix(UnixAddr::Abstract(name)) => {
                write!(f, "unix:@{}", String::from_utf8_lossy(name))
            }
            SockAddr::Unix(UnixAddr::Unnamed) => write!(f, "unix:"),
            SockAddr::Unspec => write!(f, "unspec"),
            SockAddr::Other { family } => write!(f, "family:{family}"),
        }
    }
}

/// Encodes an inet address as the kernel expects it (for the supervisor's own
/// calls, such as connecting a socket to the proxy).
pub fn encode_inet(addr: SocketAddr) -> Vec<u8> {
    match addr {
        SocketAddr::V4(v4) => {
            let mut out = vec![0u8; SOCKADDR_IN_LEN];
            out[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            out[2..4].copy_from_slice(&v4.port().to_be_bytes());
            out[4..8].copy_from_slice(&v4.ip().octets());
            out
        }
        SocketAddr::V6(v6) => {
            let mut out = vec![0u8; 28];
            out[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            out[2..4].copy_from_slice(&v6.port().to_be_bytes());
            out[4..8].copy_from_slice(&v6.flowinfo().to_be_bytes());
            out[8..24].copy_from_slice(&v6.ip().octets());
            out[24..28].copy_from_slice(&v6.scope_id().to_ne_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4() {
        let bytes = encode_inet("127.0.0.2:8080".parse().unwrap());
        assert_eq!(parse(&bytes), Ok(SockAddr::Inet("127.0.0.2:8080".parse().unwrap())));
    }

    #[test]
    fn parses_ipv6_and_maps_v4() {
        let bytes = encode_inet("[2001:db8::1]:443".parse().unwrap());
        assert_eq!(parse(&bytes), Ok(SockAddr::Inet("[2001:db8::1]:443".parse().unwrap())));
        let mapped = encode_inet("[::ffff:127.0.0.2]:80".parse().unwrap());
        assert_eq!(parse(&mapped), Ok(SockAddr::Inet("127.0.0.2:80".parse().unwrap())));
    }

    #[test]
    fn accepts_rfc2133_sized_ipv6() {
        let bytes = encode_inet("[::1]:53".parse().unwrap());
        assert_eq!(parse(&bytes[..24]), Ok(SockAddr::Inet("[::1]:53".parse().unwrap())));
        assert_eq!(parse(&bytes[..23]), Err(AddrError::TooShort));
    }

    #[test]
    fn rejects_short_and_long() {
        assert_eq!(parse(&[]), Err(AddrError::TooShort));
        assert_eq!(parse(&[2]), Err(AddrError::TooShort));
        let v4 = encode_inet("1.2.3.4:5".parse().unwrap());
        assert_eq!(parse(&v4[..15]), Err(AddrError::TooShort));
        assert_eq!(parse(&[0u8; 129]), Err(AddrError::TooLong));
    }

    #[test]
    fn parses_unix_variants() {
        let mut path = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        path.extend_from_slice(b"/run/x.sock\0garbage");
        assert_eq!(parse(&path), Ok(SockAddr::Unix(UnixAddr::Path("/run/x.sock".into()))));
        let mut abs = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        abs.extend_from_slice(b"\0name");
        assert_eq!(parse(&abs), Ok(SockAddr::Unix(UnixAddr::Abstract(b"name".to_vec()))));
        let unnamed = (libc::AF_UNIX as u16).to_ne_bytes();
        assert_eq!(parse(&unnamed), Ok(SockAddr::Unix(UnixAddr::Unnamed)));
        assert_eq!(SockAddr::Unix(UnixAddr::Path("/a".into())).to_string(), "unix:/a");
    }

    #[test]
    fn other_families_are_named_by_number() {
        let bytes = (libc::AF_PACKET as u16).to_ne_bytes();
        assert_eq!(parse(&bytes), Ok(SockAddr::Other { family: libc::AF_PACKET as u16 }));
        assert_eq!(parse(&[0, 0]), Ok(SockAddr::Unspec));
    }

    #[test]
    fn displays_like_the_report_contract() {
        assert_eq!(SockAddr::Inet("[::1]:9050".parse().unwrap()).to_string(), "[::1]:9050");
        assert_eq!(SockAddr::Inet("1.2.3.4:443".parse().unwrap()).to_string(), "1.2.3.4:443");
    }
}
