//! SOCKS5 messages, built and parsed without I/O.

use std::net::{IpAddr, SocketAddr};

const VERSION: u8 = 5;
const METHOD_NONE: u8 = 0x00;
const METHOD_USERPASS: u8 = 0x02;
const METHOD_REJECTED: u8 = 0xff;
const USERPASS_VERSION: u8 = 1;
const CMD_CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// Where the proxy should connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    /// A name the proxy resolves (no local DNS lookup).
    Domain(String, u16),
}

/// RFC 1929 credentials; with Tor, distinct credentials give distinct circuits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: Vec<u8>,
    pub pass: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    #[error("the proxy is not a SOCKS5 server")]
    NotSocks5,
    #[error("the proxy accepts none of our authentication methods")]
    NoAcceptableMethod,
    #[error("the proxy rejected our credentials")]
    AuthRejected,
    #[error("the proxy refused the connection (reply {0})")]
    Refused(u8),
    #[error("a name or credential longer than 255 bytes")]
    TooLong,
    #[error("malformed reply")]
    Malformed,
}

impl SocksError {
    /// The errno a program sees for this failure, as if its connect failed.
    pub fn errno(self) -> i32 {
        match self {
            SocksError::Refused(2) => libc::EACCES,
            SocksError::Refused(3) => libc::ENETUNREACH,
            SocksError::Refused(4) => libc::EHOSTUNREACH,
            SocksError::Refused(6) => libc::ETIMEDOUT,
            SocksError::Refused(8) => libc::EAFNOSUPPORT,
            SocksError::TooLong => libc::EINVAL,
            _ => libc::ECONNREFUSED,
        }
    }
}

/// The method-selection greeting. With credentials we offer both methods: a
/// proxy that needs no authentication (microsocks) picks "none", Tor picks
/// username/password and isolates streams by it.
pub fn greeting(creds: Option<&Credentials>) -> Vec<u8> {
    match creds {
        Some(_) => vec![VERSION, 2, METHOD_NONE, METHOD_USERPASS],
        None => vec![VERSION, 1, METHOD_NONE],
    }
}

/// Parses the 2-byte method choice; `true` when credentials must follow.
pub fn parse_method(reply: [u8; 2], offered_userpass: bool) -> Result<bool, SocksError> {
    match reply {
        [VERSION, METHOD_NONE] => Ok(false),
        [VERSION, METHOD_USERPASS] if offered_userpass => Ok(true),
        [VERSION, METHOD_REJECTED] => Err(SocksError::NoAcceptableMethod),
        [VERSION, _] => Err(SocksError::NoAcceptableMethod),
        _ => Err(SocksError::NotSocks5),
    }
}

/// The RFC 1929 sub-negotiation request.
pub fn auth_request(creds: &Credentials) -> Result<Vec<u8>, SocksError> {
    let user = u8::try_from(creds.user.len()).map_err(|_| SocksError::TooLong)?;
    let pass = u8::try_from(creds.pass.len()).map_err(|_| SocksError::TooLong)?;
    let mut out = vec![USERPASS_VERSION, user];
    out.extend_from_slice(&creds.user);
    out.push(pass);
    out.extend_from_slice(&creds.pass);
    Ok(out)
}

pub fn parse_auth_reply(reply: [u8; 2]) -> Result<(), SocksError> {
    match reply {
        [USERPASS_VERSION, 0] => Ok(()),
        _ => Err(SocksError::AuthRejected),
    }
}

/// The CONNECT request for `target`.
pub fn connect_request(target: &Target) -> Result<Vec<u8>, SocksError> {
    let mut out = vec![VERSION, CMD_CONNECT, 0];
    let port = match target {
        Target::Domain(name, port) => {
            let len = u8::try_from(name.len()).map_err(|_| SocksError::TooLong)?;
            out.push(ATYP_DOMAIN);
            out.push(len);
            out.extend_from_slice(name.as_bytes());
            *port
        }
        Target::Addr(addr) => {
            match addr.ip() {
                IpAddr::V4(v4) => {
                    out.push(ATYP_V4);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(ATYP_V6);
                    out.extend_from_slice(&v6.octets());
                }
            }
            addr.port()
        }
    };
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// Checks the first 5 bytes of the CONNECT reply; returns how many more bytes
/// (the bound address and port) follow.
pub fn parse_reply_head(head: [u8; 5]) -> Result<usize, SocksError> {
    if head[0] != VERSION {
        return Err(SocksError::NotSocks5);
    }
    if head[1] != 0 {
        return Err(SocksError::Refused(head[1]));
    }
    // head[3] is the address type; head[4] is the first address byte.
    match head[3] {
        ATYP_V4 => Ok(4 - 1 + 2),
        ATYP_V6 => Ok(16 - 1 + 2),
        ATYP_DOMAIN => Ok(usize::from(head[4]) + 2),
        _ => Err(SocksError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_requests_byte_for_byte() {
        assert_eq!(greeting(None), [5, 1, 0]);
        let creds = Credentials { user: b"u".to_vec(), pass: b"pw".to_vec() };
        assert_eq!(greeting(Some(&creds)), [5, 2, 0, 2]);
        assert_eq!(auth_request(&creds).unwrap(), [1, 1, b'u', 2, b'p', b'w']);
        let v4 = connect_request(&Target::Addr("1.2.3.4:443".parse().unwrap())).unwrap();
        assert_eq!(v4, [5, 1, 0, 1, 1, 2, 3, 4, 1, 187]);
        let name = connect_request(&Target::Domain("example.com".into(), 80)).unwrap();
        assert_eq!(&name[..5], &[5, 1, 0, 3, 11]);
        assert_eq!(&name[16..], &[0, 80]);
        assert_eq!(connect_request(&Target::Domain("x".repeat(256), 1)), Err(SocksError::TooLong));
        let v6 = connect_request(&Target::Addr("[::1]:80".parse().unwrap())).unwrap();
        assert_eq!(v6.len(), 4 + 16 + 2);
        assert_eq!(v6[3], 4);
    }

    #[test]
    fn parses_replies() {
        assert_eq!(parse_method([5, 0], false), Ok(false));
        assert_eq!(parse_method([5, 2], true), Ok(true));
        assert_eq!(parse_method([5, 2], false), Err(SocksError::NoAcceptableMethod));
        assert_eq!(parse_method([5, 0xff], true), Err(SocksError::NoAcceptableMethod));
        assert_eq!(parse_method([4, 0], true), Err(SocksError::NotSocks5));
        assert_eq!(parse_auth_reply([1, 0]), Ok(()));
        assert_eq!(parse_auth_reply([1, 1]), Err(SocksError::AuthRejected));
        assert_eq!(parse_reply_head([5, 0, 0, 1, 127]), Ok(5));
        assert_eq!(parse_reply_head([5, 0, 0, 4, 0]), Ok(17));
        assert_eq!(parse_reply_head([5, 0, 0, 3, 9]), Ok(11));
        assert_eq!(parse_reply_head([5, 5, 0, 1, 0]), Err(SocksError::Refused(5)));
        assert_eq!(parse_reply_head([5, 0, 0, 9, 0]), Err(SocksError::Malformed));
    }

    #[test]
    fn maps_failures_to_errnos() {
        assert_eq!(SocksError::Refused(5).errno(), libc::ECONNREFUSED);
        assert_eq!(SocksError::Refused(4).errno(), libc::EHOSTUNREACH);
        assert_eq!(SocksError::NotSocks5.errno(), libc::ECONNREFUSED);
    }
}
