//! Inbound listeners under `--isolate-network`: a program's listener in its
//! namespace, made reachable from the host's.
//!
//! When the supervisor performs an allowed `listen` (`--incoming allow`,
//! `--allow-incoming-from`), [`Inbound::on_listen`] opens a listener of ours
//! on the same address and port in the host's namespace (a wildcard address
//! stays a wildcard, loopback stays loopback). Each connection accepted there
//! is relayed into the program's namespace: a socket the [`crate::supervisor::maker`]
//! made there, bound to [`RELAY_SOURCE`], connects to the program's listener.
//!
//! The program's `accept` (performed by the supervisor) must judge the real
//! peer, not the relay. The relay records its inside address (source address
//! and port, known after bind and before connect) with the real peer before
//! it connects; the accept looks its peer up ([`Inbound::real_peer`]): the
//! decision, the report and the address accept returns name the real peer.
//! A connection from [`RELAY_SOURCE`] that is not (or no longer) recorded is
//! refused: nothing else in the program's namespace uses that address unless
//! the program binds it itself, and then it is refused, never let through as
//! a loopback peer. (`getpeername` on the accepted socket still names the
//! relay.) An IPv6-only listener on a non-loopback address is not forwarded:
//! the relay reaches listeners over IPv4 from [`RELAY_SOURCE`], or over `::1`
//! for a loopback one, whose connections are not judged per peer.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::supervisor::maker::Maker;

/// Where relayed connections come from in the program's namespace.
pub const RELAY_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 78, 0, 1);
/// Relayed connections at once; more wait in our listener's backlog.
const MAX_RELAYED: usize = 4096;

/// What the program's listener is, and how the relay reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Our listener in the host's namespace.
    pub host: SocketAddr,
    /// The host listener is IPv6 only.
    pub v6only: bool,
    /// Where the relay connects in the program's namespace.
    pub inside: SocketAddr,
    /// The relay's source address there (port 0).
    pub source: SocketAddr,
}

/// How to forward a listener on `local` (`v6only`: `IPV6_V6ONLY` set on it);
/// `None` when it cannot be (an IPv6-only listener on a non-loopback address).
pub fn route(local: SocketAddr, v6only: bool) -> Option<Route> {
    let port = local.port();
    let v4_source = SocketAddr::new(IpAddr::V4(RELAY_SOURCE), 0);
    let (inside, source) = match local.ip() {
        IpAddr::V6(ip) if ip.is_loopback() => (
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
        ),
        IpAddr::V6(_) if v6only => return None,
        IpAddr::V6(ip) if ip.is_unspecified() => {
            (SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), v4_source)
        }
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => (SocketAddr::new(IpAddr::V4(v4), port), v4_source),
            None => return None,
        },
        IpAddr::V4(ip) if ip.is_unspecified() => {
            (SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), v4_source)
        }
        IpAddr::V4(_) => (local, v4_source),
    };
    Some(Route { host: local, v6only, inside, source })
}

/// The address accept hands the program for `peer`, in the listener's
/// family (an IPv6 listener sees IPv4 peers v4-mapped).
pub fn peer_as_seen(peer: SocketAddr, listener_v6: bool) -> SocketAddr {
    match (peer, listener_v6) {
        (SocketAddr::V4(v4), true) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        _ => peer,
    }
}

/// What an accepted connection's peer really is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Not relayed: the peer as the kernel gave it.
    Direct,
    /// Relayed from this peer in the host's namespace.
    Relayed(SocketAddr),
    /// From the relay's address but not recorded: refuse.
    Unknown,
}

/// The forwarded listeners and the relayed connections' real peers.
pub struct Inbound {
    runtime: tokio::runtime::Handle,
    maker: Arc<Maker>,
    /// Relay source (in the program's namespace) -> real peer.
    peers: Mutex<HashMap<SocketAddr, SocketAddr>>,
    /// Host addresses we listen on (one listener each, kept to the end).
    hosts: Mutex<HashSet<SocketAddr>>,
    relayed: Arc<tokio::sync::Semaphore>,
}

impl Inbound {
    pub fn new(runtime: tokio::runtime::Handle, maker: Maker) -> Inbound {
        Inbound {
            runtime,
            maker: Arc::new(maker),
            peers: Mutex::default(),
            hosts: Mutex::default(),
            relayed: Arc::new(tokio::sync::Semaphore::new(MAX_RELAYED)),
        }
    }

    /// The real peer of a connection the program's listener accepted from
    /// `peer` (its address in the program's namespace).
    pub fn real_peer(&self, peer: SocketAddr) -> Peer {
        let peer = crate::net::sockaddr::normalize(peer);
        if let Some(real) = lock(&self.peers).get(&peer) {
            return Peer::Relayed(*real);
        }
        if peer.ip() == IpAddr::V4(RELAY_SOURCE) {
            return Peer::Unknown;
        }
        Peer::Direct
    }

    /// After the supervisor performed an allowed `listen` on `sock` (our
    /// duplicate of the program's socket): listens on the same address in
    /// the host's namespace and relays its connections. Once per address for
    /// the run (a listener closed and opened again reuses ours). A failure
    /// (the port is taken in the host's namespace) is said on stderr; the
    /// program's listen stands.
    pub fn on_listen(self: &Arc<Self>, sock: BorrowedFd<'_>) {
        let Some(local) = local_inet(sock) else { return };
        let v6only = local.is_ipv6() && sockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Some(1);
        let Some(route) = route(local, v6only) else {
            crate::report_writer::human::say!("sockstrace: --isolate-network: the IPv6-only listener on {local} is not forwarded to the host");
            return;
        };
        if !lock(&self.hosts).insert(route.host) {
            return;
        }
        match host_listener(route) {
            Ok(listener) => {
                let this = self.clone();
                let _inside = self.runtime.enter();
                match TcpListener::from_std(listener) {
                    Ok(l) => {
                        self.runtime.spawn(this.serve(l, route));
                    }
                    Err(e) => crate::report_writer::human::say!(
                        "sockstrace: --isolate-network: forwarding {local}: {e}"
                    ),
                }
            }
            Err(e) => {
                lock(&self.hosts).remove(&route.host);
                crate::report_writer::human::say!(
                    "sockstrace: --isolate-network: the program's listener on {local} is not reachable from the host: {e}"
                );
            }
        }
    }

    async fn serve(self: Arc<Self>, listener: TcpListener, route: Route) {
        loop {
            let Ok(slot) = self.relayed.clone().acquire_owned().await else { return };
            match listener.accept().await {
                Ok((outside, peer)) => {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        this.relay(outside, crate::net::sockaddr::normalize(peer), route).await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    async fn relay(&self, mut outside: TcpStream, peer: SocketAddr, route: Route) {
        let _ = outside.set_nodelay(true);
        let maker = self.maker.clone();
        let v6 = route.inside.is_ipv6();
        let made = tokio::task::spawn_blocking(move || maker.make(v6)).await;
        let sock = made.ok().and_then(Result::ok).and_then(|fd| {
            let std = std::net::TcpStream::from(fd);
            std.set_nonblocking(true).ok()?;
            let sock = TcpSocket::from_std_stream(std);
            sock.bind(route.source).ok()?;
            Some(sock)
        });
        let Some((sock, source)) = sock.and_then(|s| Some((s.local_addr().ok()?, s))).map(|(a, s)| (s, a))
        else {
            reset(&outside);
            return;
        };
        // Recorded before the connect: the program cannot accept the
        // connection before its real peer is known.
        lock(&self.peers).insert(source, peer);
        match sock.connect(route.inside).await {
            Ok(mut inside) => {
                let _ = inside.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut outside, &mut inside).await;
            }
            Err(_) => reset(&outside),
        }
        lock(&self.peers).remove(&source);
    }
}

/// Our listener on `route.host` in the host's namespace.
fn host_listener(route: Route) -> std::io::Result<std::net::TcpListener> {
    let domain = if route.host.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    let owned = crate::supervisor::sys::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK)
        .map_err(std::io::Error::from_raw_os_error)?;
    let set = |level, opt, v: libc::c_int| {
        let _ = crate::supervisor::sys::setsockopt_int(std::os::fd::AsFd::as_fd(&owned), level, opt, v);
    };
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    if route.host.is_ipv6() {
        set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, route.v6only as libc::c_int);
    }
    let raw = crate::net::sockaddr::encode_inet(route.host);
    crate::supervisor::sys::bind(std::os::fd::AsFd::as_fd(&owned), &raw)
        .map_err(std::io::Error::from_raw_os_error)?;
    crate::supervisor::sys::listen(std::os::fd::AsFd::as_fd(&owned), 1024)
        .map_err(std::io::Error::from_raw_os_error)?;
    Ok(std::net::TcpListener::from(owned))
}

/// Ends the peer's connection with a reset.
fn reset(s: &TcpStream) {
    // A zero linger never blocks the drop (the deprecation is about a non-zero one).
    #[allow(deprecated)]
    let _ = s.set_linger(Some(std::time::Duration::ZERO));
}

fn local_inet(sock: BorrowedFd<'_>) -> Option<SocketAddr> {
    match crate::supervisor::sys::getsockname(sock).ok().map(|raw| crate::net::sockaddr::parse(&raw)) {
        Some(Ok(crate::net::sockaddr::SockAddr::Inet(a))) => Some(a),
        _ => None,
    }
}

fn sockopt_int(sock: BorrowedFd<'_>, level: libc::c_int, opt: libc::c_int) -> Option<libc::c_int> {
    crate::supervisor::sys::getsockopt_int(sock, level, opt).ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listeners_are_reached_from_the_relay_source_or_over_v6_loopback() {
        let src = a("127.78.0.1:0");
        for (local, v6only, inside, source) in [
            ("0.0.0.0:80", false, "127.0.0.1:80", src),
            ("127.0.0.5:80", false, "127.0.0.5:80", src),
            ("[::]:80", false, "127.0.0.1:80", src),
            ("[::ffff:127.0.0.1]:80", false, "127.0.0.1:80", src),
            ("[::1]:80", true, "[::1]:80", a("[::1]:0")),
        ] {
            let r = route(a(local), v6only).unwrap();
            assert_eq!((r.host, r.inside, r.source), (a(local), a(inside), source), "{local}");
        }
        assert_eq!(route(a("[::]:80"), true), None);
        assert_eq!(route(a("[2001:db8::1]:80"), false), None);
    }

    #[test]
    fn peers_are_shown_in_the_listeners_family() {
        assert_eq!(peer_as_seen(a("10.0.0.1:5"), true), a("[::ffff:10.0.0.1]:5"));
        assert_eq!(peer_as_seen(a("10.0.0.1:5"), false), a("10.0.0.1:5"));
    }
}
