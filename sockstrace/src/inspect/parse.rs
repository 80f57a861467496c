//! What a program's first bytes to its proxy say: the SOCKS version, the
//! offered authentication, the credentials, and whether it asked for a name
//! or an address. Pure: bytes in, a verdict out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where the program asked the proxy to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// By name: the proxy resolves it (socks4a, socks5h).
    Name(String, u16),
    /// By address: the program resolved the name itself, or had an address.
    Address(SocketAddr),
}

/// A SOCKS4 request (`VN CD DSTPORT DSTIP USERID\0 [HOST\0]`), once complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks4 {
    pub asked: Asked,
    pub user: Vec<u8>,
}

/// How much of a message a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Need more bytes.
    Incomplete,
    /// The message and how many bytes it took.
    Done(T, usize),
    /// Not this protocol.
    Invalid,
}

fn nul_terminated(bytes: &[u8]) -> Option<(&[u8], usize)> {
    bytes.iter().position(|&b| b == 0).map(|end| (&bytes[..end], end + 1))
}

pub fn socks4(buf: &[u8]) -> Parsed<Socks4> {
    if buf.len() < 8 {
        return Parsed::Incomplete;
    }
    if buf[0] != 4 {
        return Parsed::Invalid;
    }
    let port = u16::from_be_bytes([buf[2], buf[3]]);
    let ip = Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
    let Some((user, used)) = nul_terminated(&buf[8..]) else { return Parsed::Incomplete };
    let mut taken = 8 + used;
    let user = user.to_vec();
    // 0.0.0.x (x != 0) announces a SOCKS4a host name after the user id.
    let asked = if ip.octets()[..3] == [0, 0, 0] && ip.octets()[3] != 0 {
        let Some((host, used)) = nul_terminated(&buf[taken..]) else { return Parsed::Incomplete };
        taken += used;
        Asked::Name(String::from_utf8_lossy(host).into_owned(), port)
    } else {
        Asked::Address(SocketAddr::new(IpAddr::V4(ip), port))
    };
    Parsed::Done(Socks4 { asked, user }, taken)
}

/// The SOCKS5 greeting: the methods offered.
pub fn socks5_greeting(buf: &[u8]) -> Parsed<Vec<u8>> {
    if buf.len() < 2 {
        return Parsed::Incomplete;
    }
    if buf[0] != 5 {
        return Parsed::Invalid;
    }
    let n = usize::from(buf[1]);
    if buf.len() < 2 + n {
        return Parsed::Incomplete;
    }
    Parsed::Done(buf[2..2 + n].to_vec(), 2 + n)
}

/// The RFC 1929 username/password request: the user name.
pub fn socks5_auth(buf: &[u8]) -> Parsed<Vec<u8>> {
    if buf.len() < 2 {
        return Parsed::Incomplete;
    }
    if buf[0] != 1 {
        return Parsed::Invalid;
    }
    let ulen = usize::from(buf[1]);
    if buf.len() < 2 + ulen + 1 {
        return Parsed::Incomplete;
    }
    let plen = usize::from(buf[2 + ulen]);
    let total = 2 + ulen + 1 + plen;
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    Parsed::Done(buf[2..2 + ulen].to_vec(), total)
}

/// The SOCKS5 request (`VER CMD RSV ATYP DST.ADDR DST.PORT`).
pub fn socks5_request(buf: &[u8]) -> Parsed<Asked> {
    if buf.len() < 5 {
        return Parsed::Incomplete;
    }
    if buf[0] != 5 {
        return Parsed::Invalid;
    }
    let (addr_len, start) = match buf[3] {
        1 => (4, 4),
        4 => (16, 4),
        3 => (usize::from(buf[4]), 5),
        _ => return Parsed::Invalid,
    };
    let total = start + addr_len + 2;
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    let port = u16::from_be_bytes([buf[total - 2], buf[total - 1]]);
    let addr = &buf[start..start + addr_len];
    let asked = match buf[3] {
        1 => Asked::Address(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            port,
        )),
        4 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(addr);
            Asked::Address(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => Asked::Name(String::from_utf8_lossy(addr).into_owned(), port),
    };
    Parsed::Done(asked, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_socks4_and_socks4a() {
        let v4 = [4, 1, 0, 80, 10, 0, 0, 1, b'u', 0];
        let want = Socks4 { asked: Asked::Address("10.0.0.1:80".parse().unwrap()), user: b"u".to_vec() };
        assert_eq!(socks4(&v4), Parsed::Done(want, 10));
        let mut v4a = vec![4, 1, 1, 187, 0, 0, 0, 1, 0];
        v4a.extend_from_slice(b"example.com\0");
        let want = Socks4 { asked: Asked::Name("example.com".into(), 443), user: vec![] };
        assert_eq!(socks4(&v4a), Parsed::Done(want, v4a.len()));
        assert_eq!(socks4(&v4a[..12]), Parsed::Incomplete);
        assert_eq!(socks4(&[5, 1, 0, 0, 0, 0, 0, 0]), Parsed::Invalid);
    }

    #[test]
    fn reads_socks5_messages() {
        assert_eq!(socks5_greeting(&[5, 2, 0, 2]), Parsed::Done(vec![0, 2], 4));
        assert_eq!(socks5_greeting(&[5, 2, 0]), Parsed::Incomplete);
        assert_eq!(socks5_auth(&[1, 2, b'a', b'b', 1, b'p']), Parsed::Done(b"ab".to_vec(), 6));
        assert_eq!(socks5_auth(&[1, 2, b'a']), Parsed::Incomplete);
        let by_ip = [5, 1, 0, 1, 127, 0, 0, 2, 0, 80];
        assert_eq!(socks5_request(&by_ip), Parsed::Done(Asked::Address("127.0.0.2:80".parse().unwrap()), 10));
        let mut by_name = vec![5, 1, 0, 3, 3];
        by_name.extend_from_slice(b"a.b\x01\xbb");
        assert_eq!(socks5_request(&by_name), Parsed::Done(Asked::Name("a.b".into(), 443), by_name.len()));
        assert_eq!(socks5_request(&[5, 1, 0, 9, 0]), Parsed::Invalid);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = socks4(&bytes);
            let _ = socks5_greeting(&bytes);
            let _ = socks5_auth(&bytes);
            let _ = socks5_request(&bytes);
        }
    }
}
