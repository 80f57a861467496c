//! What a program's first bytes to its proxy say: the SOCKS version, the
//! offered authentication, the credentials, and whether it asked for a name
//! or an address; and how long the proxy's answers are. Pure: bytes in, a
//! verdict out.
//!
//! A host name that is an address literal (`"127.0.0.2"` in a SOCKS5 domain
//! field or a SOCKS4a host) is read as the address it spells
//! ([`super::literal`]): the proxy connects to it without resolving anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::literal::address_literal;

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
        named(host, port)
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
pub fn socks5_auth(buf: &[u8]) -> Parsed<Credentials> {
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
    let credentials = Credentials { user: buf[2..2 + ulen].to_vec(), pass: buf[3 + ulen..total].to_vec() };
    Parsed::Done(credentials, total)
}

/// RFC 1929 username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: Vec<u8>,
    pub pass: Vec<u8>,
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
        _ => named(addr, port),
    };
    Parsed::Done(asked, total)
}

/// A host name asked of the proxy: an address when it spells one.
fn named(host: &[u8], port: u16) -> Asked {
    match address_literal(host) {
        Some(ip) => Asked::Address(SocketAddr::new(ip, port)),
        None => Asked::Name(String::from_utf8_lossy(host).into_owned(), port),
    }
}

/// The length of a SOCKS5 reply (`VER REP RSV ATYP BND.ADDR BND.PORT`) from
/// its first five bytes; `None`: not a SOCKS5 reply.
pub fn socks5_reply_len(head: [u8; 5]) -> Option<usize> {
    if head[0] != 5 {
        return None;
    }
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => 1 + usize::from(head[4]),
        _ => return None,
    };
    Some(4 + addr_len + 2)
}

/// What a proxy connection that is not SOCKS4/5 speaks, for the report: an
/// HTTP request (CONNECT to a mixed port), TLS, or something else.
pub fn other_protocol(first: &[u8]) -> &'static str {
    let token = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if token > 0 && first.get(token) == Some(&b' ') {
        "http"
    } else if first.starts_with(&[0x16, 3]) {
        "tls"
    } else {
        "unknown"
    }
}

/// Whether `first`, the program's first bytes in a tunnel, open a SOCKS handshake; `None` until
/// the bytes tell. Read strictly, so that another protocol is not taken for one (a MongoDB
/// message of 261 bytes starts `05 01 00 00`): a SOCKS5 greeting is whole (`05 N` and N known
/// methods) and followed by nothing, or by what a pipelining client sends next (a request `05
/// CMD 00 ATYP`, or RFC 1929 credentials `01 ULEN`); a SOCKS4 CONNECT or BIND is whole (its user
/// id, and a SOCKS4a host, NUL-terminated) within [`UNDECIDED`] bytes. The handshake's own
/// parsers (`socks5_greeting`, `socks4`) read them.
pub fn opens_socks(first: &[u8]) -> Option<bool> {
    let known = |m: &u8| matches!(m, 0..=3 | 0x80..=0xfe);
    match first {
        [] | [4 | 5] => None,
        [5, 0, ..] => Some(false),
        [5, ..] => match socks5_greeting(first) {
            Parsed::Done(methods, used) if methods.iter().all(known) => follows_a_greeting(&first[used..]),
            Parsed::Incomplete if first[2..].iter().all(known) => None,
            _ => Some(false),
        },
        [4, 1 | 2, ..] => match socks4(first) {
            Parsed::Done(..) => Some(true),
            Parsed::Incomplete if first.len() < UNDECIDED => None,
            _ => Some(false),
        },
        _ => Some(false),
    }
}

/// How many first bytes a SOCKS4 request may take before it is told apart (its user id and
/// SOCKS4a host, each NUL-terminated).
const UNDECIDED: usize = 8 + 2 * 256;

/// Whether what follows a whole SOCKS5 greeting is what a pipelining client sends next (see
/// [`opens_socks`]).
fn follows_a_greeting(after: &[u8]) -> Option<bool> {
    match after {
        [] => Some(true),
        [5] | [5, 1..=3] | [5, 1..=3, 0] | [1] => None,
        [5, 1..=3, 0, 1 | 3 | 4, ..] | [1, 1..=255, ..] => Some(true),
        _ => Some(false),
    }
}

/// SOCKS4's reply code for "request granted".
pub const SOCKS4_GRANTED: u8 = 90;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_that_opens_socks_is_told_by_two_bytes() {
        assert_eq!(opens_socks(b""), None);
        assert_eq!(opens_socks(&[5]), None);
        assert_eq!(opens_socks(&[5, 1, 0]), Some(true));
        assert_eq!(opens_socks(&[5, 2, 0]), None, "a method still to come");
        assert_eq!(opens_socks(&[5, 0]), Some(false));
        // Pipelined: the request (or credentials) right after the greeting.
        assert_eq!(opens_socks(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 2, 0, 80]), Some(true));
        assert_eq!(opens_socks(&[5, 1, 2, 1, 4, b'u', b's', b'e', b'r']), Some(true));
        // A MongoDB message of 261 bytes: its length, little-endian, then more.
        let mut mongo = vec![5, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7];
        mongo.resize(261, 0);
        assert_eq!(opens_socks(&mongo), Some(false));
        assert_eq!(opens_socks(&[4, 1, 0, 80, 127, 0, 0, 2, b'u', 0]), Some(true));
        assert_eq!(opens_socks(&[4, 1, 0, 80, 127, 0, 0, 2, b'u']), None, "the user id still to end");
        assert_eq!(opens_socks(&[4, 3]), Some(false));
        assert_eq!(opens_socks(b"GET / HTTP/1.1"), Some(false));
        assert_eq!(opens_socks(&[0x16, 3, 1]), Some(false));
    }

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
    fn a_host_name_that_spells_an_address_is_an_address() {
        let mut v4a = vec![4, 1, 0, 80, 0, 0, 0, 1, b'u', 0];
        v4a.extend_from_slice(b"127.0.0.2\0");
        let want = Socks4 { asked: Asked::Address("127.0.0.2:80".parse().unwrap()), user: b"u".to_vec() };
        assert_eq!(socks4(&v4a), Parsed::Done(want, v4a.len()));
        for host in [&b"127.0.0.2"[..], b"2130706434", b"0x7f.2", b"127.2", b"0177.0.0.2"] {
            let mut req = vec![5, 1, 0, 3, host.len() as u8];
            req.extend_from_slice(host);
            req.extend_from_slice(&[0, 80]);
            let want = Asked::Address("127.0.0.2:80".parse().unwrap());
            assert_eq!(socks5_request(&req), Parsed::Done(want, req.len()), "{host:?}");
        }
        let mut v6 = vec![5, 1, 0, 3, 5];
        v6.extend_from_slice(b"[::1]\x01\xbb");
        assert_eq!(socks5_request(&v6), Parsed::Done(Asked::Address("[::1]:443".parse().unwrap()), v6.len()));
    }

    #[test]
    fn names_what_is_not_socks() {
        assert_eq!(other_protocol(b"CONNECT 127.0.0.2:80 HTTP/1.1\r\n"), "http");
        assert_eq!(other_protocol(b"GET / HTTP/1.0"), "http");
        assert_eq!(other_protocol(&[0x16, 3, 1, 0, 0x20]), "tls");
        assert_eq!(other_protocol(b"CONNECT"), "unknown");
        assert_eq!(other_protocol(&[6, 1]), "unknown");
        assert_eq!(other_protocol(b""), "unknown");
    }

    #[test]
    fn measures_socks5_replies() {
        assert_eq!(socks5_reply_len([5, 0, 0, 1, 127]), Some(10));
        assert_eq!(socks5_reply_len([5, 0, 0, 4, 0]), Some(22));
        assert_eq!(socks5_reply_len([5, 0, 0, 3, 7]), Some(14));
        assert_eq!(socks5_reply_len([5, 1, 0, 9, 0]), None);
        assert_eq!(socks5_reply_len([4, 90, 0, 1, 0]), None);
    }

    #[test]
    fn reads_socks5_messages() {
        assert_eq!(socks5_greeting(&[5, 2, 0, 2]), Parsed::Done(vec![0, 2], 4));
        assert_eq!(socks5_greeting(&[5, 2, 0]), Parsed::Incomplete);
        let ab = Credentials { user: b"ab".to_vec(), pass: b"p".to_vec() };
        assert_eq!(socks5_auth(&[1, 2, b'a', b'b', 1, b'p']), Parsed::Done(ab, 6));
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
            let _ = other_protocol(&bytes);
            if let Some(head) = bytes.first_chunk::<5>() {
                let _ = socks5_reply_len(*head);
            }
        }
    }
}
