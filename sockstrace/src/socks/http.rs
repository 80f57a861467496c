//! HTTP CONNECT (RFC 9110 §9.3.6), for socksify through an HTTP proxy: the
//! request and the response head, on the program's own socket.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::codec::{Credentials, Target};

/// The longest response head we read.
const MAX_HEAD: usize = 8192;

/// The CONNECT request for `target`, with Basic credentials when given.
pub fn connect_request(target: &Target, creds: Option<&Credentials>) -> Vec<u8> {
    let authority = match target {
        Target::Addr(addr) => addr.to_string(),
        Target::Domain(name, port) => format!("{name}:{port}"),
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(creds) = creds {
        let mut pair = creds.user.clone();
        pair.push(b':');
        pair.extend_from_slice(&creds.pass);
        request.push_str(&format!("Proxy-Authorization: Basic {}\r\n", STANDARD.encode(&pair)));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// The errno for a response head: `Ok` for a 2xx status.
pub fn parse_response(head: &[u8]) -> Result<(), i32> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else { return Err(libc::ECONNREFUSED) };
    if !version.starts_with("HTTP/1.") {
        return Err(libc::ECONNREFUSED);
    }
    match code.parse::<u16>() {
        Ok(200..=299) => Ok(()),
        Ok(403 | 407) => Err(libc::EACCES),
        Ok(504) => Err(libc::ETIMEDOUT),
        _ => Err(libc::ECONNREFUSED),
    }
}

/// Sends CONNECT and reads the response head one byte at a time, so that not
/// a byte of the tunnel (a server that speaks first) is taken from the program.
pub fn handshake(
    fd: BorrowedFd<'_>,
    target: &Target,
    creds: Option<&Credentials>,
    timeout: Duration,
    stop: super::handshake::Stop<'_>,
) -> Result<(), i32> {
    let deadline = Instant::now() + timeout;
    let io = super::handshake::Io::new(fd, deadline, stop);
    io.write_all(&connect_request(target, creds))?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(libc::ECONNREFUSED);
        }
        let [byte] = io.read_array::<1>()?;
        head.push(byte);
    }
    parse_response(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_request() {
        let plain = connect_request(&Target::Domain("example.com".into(), 443), None);
        assert_eq!(plain, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        let v6 = connect_request(&Target::Addr("[2001:db8::1]:80".parse().unwrap()), None);
        assert!(v6.starts_with(b"CONNECT [2001:db8::1]:80 HTTP/1.1\r\n"));
        let creds = Credentials { user: b"Aladdin".to_vec(), pass: b"open sesame".to_vec() };
        let auth = String::from_utf8(connect_request(&Target::Domain("x".into(), 1), Some(&creds))).unwrap();
        assert!(auth.contains("Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"), "{auth}");
    }

    #[test]
    fn reads_the_status() {
        assert_eq!(parse_response(b"HTTP/1.1 200 Connection established\r\n\r\n"), Ok(()));
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n"), Ok(()));
        assert_eq!(parse_response(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"), Err(libc::EACCES));
        assert_eq!(parse_response(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"), Err(libc::ECONNREFUSED));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(libc::ECONNREFUSED));
        assert_eq!(parse_response(b""), Err(libc::ECONNREFUSED));
    }
}
