//! SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): the request on the control connection, and the
//! header every relayed datagram carries. The codec is pure; [`associate`] drives the exchange
//! on a connected TCP socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::codec::{self, Credentials, SocksError};
use super::handshake::Io;

const VERSION: u8 = 5;
const CMD_UDP_ASSOCIATE: u8 = 3;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;
/// SOCKS5 reply code: command not supported (what proxies without UDP answer).
pub const REPLY_COMMAND_NOT_SUPPORTED: u8 = 7;

/// Appends `addr` as ATYP, address and port.
fn push_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // A v4-mapped peer is an IPv4 peer to the proxy.
            Some(v4) => {
                out.push(ATYP_V4);
                out.extend_from_slice(&v4.octets());
            }
            None => {
                out.push(ATYP_V6);
                out.extend_from_slice(&v6.octets());
            }
        },
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The UDP ASSOCIATE request; `from` is the address our datagrams will come from (zeros
/// when not known).
pub fn associate_request(from: SocketAddr) -> Vec<u8> {
    let mut out = vec![VERSION, CMD_UDP_ASSOCIATE, 0];
    push_addr(&mut out, from);
    out
}

/// The UDP request header for a datagram to `dst` (RSV, FRAG 0, address), followed by `data`.
pub fn wrap(dst: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + data.len());
    out.extend_from_slice(&[0, 0, 0]);
    push_addr(&mut out, dst);
    out.extend_from_slice(data);
    out
}

/// Reads an ATYP, address and port at the start of `buf`: the address and the bytes used.
/// A domain name (which a relay should not send us) is malformed here.
fn parse_addr(buf: &[u8]) -> Result<(SocketAddr, usize), SocksError> {
    let (ip, len) = match buf.first() {
        Some(&ATYP_V4) if buf.len() >= 7 => (IpAddr::V4(Ipv4Addr::new(buf[1], buf[2], buf[3], buf[4])), 5),
        Some(&ATYP_V6) if buf.len() >= 19 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&buf[1..17]);
            (IpAddr::V6(Ipv6Addr::from(octets)), 17)
        }
        _ => return Err(SocksError::Malformed),
    };
    let port = u16::from_be_bytes([buf[len], buf[len + 1]]);
    Ok((SocketAddr::new(ip, port), len + 2))
}

/// A datagram from the relay: the peer it came from and its payload. Fragments (FRAG != 0)
/// are refused, as RFC 1928 allows a client that does not reassemble.
pub fn unwrap(datagram: &[u8]) -> Result<(SocketAddr, &[u8]), SocksError> {
    if datagram.len() < 4 || datagram[2] != 0 {
        return Err(SocksError::Malformed);
    }
    let (peer, used) = parse_addr(&datagram[3..])?;
    Ok((peer, &datagram[3 + used..]))
}

/// Parses the UDP ASSOCIATE reply: the relay's address.
pub fn parse_associate_reply(reply: &[u8]) -> Result<SocketAddr, SocksError> {
    match reply {
        [VERSION, 0, _, rest @ ..] => parse_addr(rest).map(|(addr, _)| addr),
        [VERSION, code, ..] => Err(SocksError::Refused(*code)),
        _ => Err(SocksError::NotSocks5),
    }
}

/// Why an association failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssociateError {
    #[error("{}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
    #[error("the proxy does not offer UDP ASSOCIATE (reply 7: command not supported)")]
    NotSupported,
    #[error("{0}")]
    Socks(SocksError),
}

impl From<SocksError> for AssociateError {
    fn from(e: SocksError) -> Self {
        match e {
            SocksError::Refused(REPLY_COMMAND_NOT_SUPPORTED) => AssociateError::NotSupported,
            other => AssociateError::Socks(other),
        }
    }
}

/// Runs greeting, optional authentication and UDP ASSOCIATE on `fd`, a TCP socket connected
/// to the proxy. Returns the relay address, with an unspecified address replaced by `proxy`'s
/// (RFC 1928 lets a server answer 0.0.0.0 for "the address you reached me at").
pub fn associate(
    fd: BorrowedFd<'_>,
    proxy: SocketAddr,
    from: SocketAddr,
    creds: Option<&Credentials>,
    timeout: Duration,
    stop: super::Stop<'_>,
) -> Result<SocketAddr, AssociateError> {
    let io = Io::new(fd, Instant::now() + timeout, stop);
    let io_err = AssociateError::Io;
    io.write_all(&codec::greeting(creds)).map_err(io_err)?;
    let needs_auth = codec::parse_method(io.read_array().map_err(io_err)?, creds.is_some())?;
    if needs_auth {
        let creds = creds.ok_or(AssociateError::Socks(SocksError::NoAcceptableMethod))?;
        io.write_all(&codec::auth_request(creds)?).map_err(io_err)?;
        codec::parse_auth_reply(io.read_array().map_err(io_err)?)?;
    }
    io.write_all(&associate_request(from)).map_err(io_err)?;
    let head: [u8; 5] = io.read_array().map_err(io_err)?;
    if head[0] == VERSION && head[1] != 0 {
        return Err(SocksError::Refused(head[1]).into());
    }
    let rest = codec::parse_reply_head(head)?;
    if head[3] == ATYP_DOMAIN {
        return Err(SocksError::Malformed.into());
    }
    let mut reply = head.to_vec();
    reply.resize(5 + rest, 0);
    io.read_exact(&mut reply[5..]).map_err(io_err)?;
    let relay = parse_associate_reply(&reply)?;
    if relay.ip().is_unspecified() {
        return Ok(SocketAddr::new(proxy.ip(), relay.port()));
    }
    Ok(relay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_datagrams() {
        let v4: SocketAddr = "127.0.0.2:53".parse().unwrap();
        let wrapped = wrap(v4, b"hi");
        assert_eq!(wrapped, [0, 0, 0, 1, 127, 0, 0, 2, 0, 53, b'h', b'i']);
        assert_eq!(unwrap(&wrapped), Ok((v4, &b"hi"[..])));
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let wrapped = wrap(v6, b"");
        assert_eq!(wrapped.len(), 3 + 1 + 16 + 2);
        assert_eq!(unwrap(&wrapped), Ok((v6, &b""[..])));
        // A v4-mapped peer goes out as IPv4.
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:9".parse().unwrap();
        assert_eq!(wrap(mapped, b"x")[3], ATYP_V4);
    }

    #[test]
    fn refuses_fragments_and_short_or_named_headers() {
        assert_eq!(unwrap(&[0, 0, 1, 1, 127, 0, 0, 1, 0, 53]), Err(SocksError::Malformed));
        assert_eq!(unwrap(&[0, 0, 0, 1, 127, 0]), Err(SocksError::Malformed));
        assert_eq!(unwrap(&[0, 0, 0, 3, 1, b'a', 0, 53]), Err(SocksError::Malformed));
        assert_eq!(unwrap(&[]), Err(SocksError::Malformed));
    }

    #[test]
    fn builds_the_request_and_reads_the_reply() {
        assert_eq!(associate_request("0.0.0.0:0".parse().unwrap()), [5, 3, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_associate_reply(&[5, 0, 0, 1, 127, 0, 0, 1, 4, 0]),
            Ok("127.0.0.1:1024".parse().unwrap())
        );
        assert_eq!(parse_associate_reply(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]), Err(SocksError::Refused(7)));
        assert_eq!(parse_associate_reply(&[4, 0]), Err(SocksError::NotSocks5));
    }
}
