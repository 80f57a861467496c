//! `--on-leak socksify`: a leaked TCP connect is connected to the proxy
//! instead, and the SOCKS5 handshake for the original destination runs on the
//! program's own socket (through our duplicate). The program sees a normal
//! connect; a proxy failure becomes the errno of that connect.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::net::sockaddr::encode_inet;
use crate::net::socket::SocketFacts;
use crate::socks::{self, Credentials, Target};
use crate::supervisor::sys::{self, Errno};

/// How long the proxy gets for the TCP connect and the whole handshake.
const PROXY_TIMEOUT: Duration = Duration::from_secs(60);

/// Which SOCKS credentials socksified connections use.
#[derive(Debug, Clone)]
pub enum SocksAuth {
    /// A fresh random pair per connection: Tor puts each on its own circuit.
    PerConnection,
    /// The same pair every time (`--proxy-user`/`--proxy-pass`, `--one-circuit`).
    Fixed(Credentials),
}

impl SocksAuth {
    /// 16 random bytes, hex-encoded, for user and password.
    pub fn random_credentials() -> Credentials {
        Credentials { user: random_hex().into_bytes(), pass: random_hex().into_bytes() }
    }

    /// Credentials the user gave (HTTP proxies get only these).
    pub fn fixed(&self) -> Option<&Credentials> {
        match self {
            SocksAuth::PerConnection => None,
            SocksAuth::Fixed(creds) => Some(creds),
        }
    }

    pub fn credentials(&self) -> Credentials {
        match self {
            SocksAuth::PerConnection => Self::random_credentials(),
            SocksAuth::Fixed(creds) => creds.clone(),
        }
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most bytes.len() bytes into our buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Credentials isolate streams; they are not secrets. A time-based
        // fallback still gives distinct pairs.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes[..16].copy_from_slice(&nanos.as_nanos().to_ne_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The protocol a proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Socks5,
    /// HTTP CONNECT (`--http-proxy`).
    HttpConnect,
}

/// A proxy to reach from a given socket: where to connect, and how to talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub connect_to: SocketAddr,
    pub kind: ProxyKind,
}

/// The proxy a socket of this family can reach: IPv4 sockets need an IPv4
/// proxy; IPv6 sockets take an IPv6 proxy, else an IPv4 one in mapped form.
/// SOCKS proxies come before HTTP ones.
pub fn proxy_for(proxies: &[SocketAddr], http: &[SocketAddr], facts: &SocketFacts) -> Option<Route> {
    let kind = |p: &SocketAddr| if http.contains(p) { ProxyKind::HttpConnect } else { ProxyKind::Socks5 };
    let mut ordered: Vec<&SocketAddr> = proxies.iter().filter(|p| !http.contains(p)).collect();
    ordered.extend(proxies.iter().filter(|p| http.contains(p)));
    let route = |p: &SocketAddr, connect_to| Route { connect_to, kind: kind(p) };
    if facts.family == libc::AF_INET {
        return ordered.into_iter().find(|p| p.is_ipv4()).map(|p| route(p, *p));
    }
    ordered.iter().find(|p| p.is_ipv6()).map(|p| route(p, **p)).or_else(|| {
        ordered.iter().find(|p| p.is_ipv4()).map(|p| match p.ip() {
            IpAddr::V4(v4) => route(p, SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), p.port())),
            IpAddr::V6(_) => route(p, **p),
        })
    })
}

/// Connects `fd` to `proxy` and asks it for `target`. Blocks (with poll) up
/// to the timeout whatever the socket's own mode, so that a non-blocking
/// program finds its socket ready once its connect returns. `stop`, asked when
/// a wait is interrupted, ends it early with `EINTR` (the caller is gone or has
/// a signal to handle: `supervisor::interrupt`).
pub fn connect_through(
    fd: BorrowedFd<'_>,
    proxy: Route,
    target: &Target,
    creds: &Credentials,
    http_creds: Option<&Credentials>,
    stop: socks::Stop<'_>,
) -> Result<(), Errno> {
    match sys::connect(fd, &encode_inet(proxy.connect_to)) {
        Ok(()) => {}
        Err(libc::EINPROGRESS) | Err(libc::EINTR) => wait_connected(fd, stop)?,
        Err(e) => return Err(e),
    }
    match proxy.kind {
        ProxyKind::Socks5 => socks::handshake(fd, target, Some(creds), PROXY_TIMEOUT, stop),
        ProxyKind::HttpConnect => socks::http::handshake(fd, target, http_creds, PROXY_TIMEOUT, stop),
    }
}

fn wait_connected(fd: BorrowedFd<'_>, stop: socks::Stop<'_>) -> Result<(), Errno> {
    let deadline = std::time::Instant::now() + PROXY_TIMEOUT;
    let n = loop {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().clamp(0, i32::MAX as u128) as i32;
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            if stop() {
                return Err(libc::EINTR);
            }
            continue;
        }
        break n;
    };
    if n == 0 {
        return Err(libc::ETIMEDOUT);
    }
    match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)? {
        0 => Ok(()),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(family: i32) -> SocketFacts {
        SocketFacts { family, sock_type: libc::SOCK_STREAM, protocol: 0 }
    }

    #[test]
    fn picks_a_proxy_the_socket_can_reach() {
        let v4: SocketAddr = "127.0.0.1:9050".parse().unwrap();
        let v6: SocketAddr = "[::1]:9050".parse().unwrap();
        let socks = |connect_to| Some(Route { connect_to, kind: ProxyKind::Socks5 });
        assert_eq!(proxy_for(&[v6, v4], &[], &facts(libc::AF_INET)), socks(v4));
        assert_eq!(proxy_for(&[v4, v6], &[], &facts(libc::AF_INET6)), socks(v6));
        assert_eq!(
            proxy_for(&[v4], &[], &facts(libc::AF_INET6)),
            socks("[::ffff:127.0.0.1]:9050".parse().unwrap())
        );
        assert_eq!(proxy_for(&[v6], &[], &facts(libc::AF_INET)), None);
    }

    #[test]
    fn prefers_socks_and_knows_http_proxies() {
        let http: SocketAddr = "127.0.0.1:3128".parse().unwrap();
        let socks: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        let v4 = facts(libc::AF_INET);
        assert_eq!(
            proxy_for(&[http, socks], &[http], &v4),
            Some(Route { connect_to: socks, kind: ProxyKind::Socks5 })
        );
        let only_http = proxy_for(&[http], &[http], &facts(libc::AF_INET6));
        let mapped = "[::ffff:127.0.0.1]:3128".parse().unwrap();
        assert_eq!(only_http, Some(Route { connect_to: mapped, kind: ProxyKind::HttpConnect }));
    }

    #[test]
    fn random_credentials_differ() {
        let a = SocksAuth::PerConnection.credentials();
        let b = SocksAuth::PerConnection.credentials();
        assert_ne!(a, b);
        assert_eq!(a.user.len(), 32);
    }
}
