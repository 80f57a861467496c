//! One program socket's association with the proxy's UDP relay: the TCP control connection,
//! our UDP socket facing the relay, and one loopback shim per peer. A thread of its own moves
//! datagrams: relay → unwrap → shim → program socket, and program socket → shim → wrap →
//! relay (what a connected program socket sends without a trap). It ends when the control
//! connection closes or after [`IDLE`] without traffic, closing everything.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Stats, UdpProxy};
use crate::socks::udp;

/// An association without traffic this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);
/// Peers one program socket may have through the proxy (a shim socket each).
pub const MAX_PEERS: usize = 256;
/// The largest datagram relayed (a UDP payload plus the longest SOCKS header).
const BUF: usize = 65_536 + 22;
/// Receive buffers of our sockets: bursts must not be dropped before we read them.
const RCVBUF: i32 = 4 << 20;
/// How long the proxy gets to set up an association.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The loopback address the shims of a program socket of `family` bind to: for IPv4 sockets
/// an address of 127/8 that nothing else uses, for IPv6 ones `::1`. The kernel layer lets a
/// socket reach only its own shims (their `UDP_PEERS` entries), not these addresses.
pub fn shim_ip(family: i32) -> IpAddr {
    if family == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(127, 83, 84, 1))
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    }
}

/// Where the program socket receives what a shim sends: its own address, with a wildcard made
/// the loopback address of its family.
pub fn delivery_addr(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port()),
        IpAddr::V6(v6) if v6.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port()),
        _ => local,
    }
}

struct Relay {
    control: TcpStream,
    socket: UdpSocket,
}

/// One shim: the socket replies from `peer` come from.
struct Shim {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
}

#[derive(Default)]
struct Shims {
    by_peer: HashMap<SocketAddr, Arc<UdpSocket>>,
    all: Vec<Shim>,
}

pub struct Assoc {
    cookie: u64,
    family: i32,
    /// Where the program socket receives (see [`delivery_addr`]).
    delivery: Mutex<SocketAddr>,
    relay: Mutex<Option<Arc<Relay>>>,
    shims: Mutex<Shims>,
    /// Wakes the thread when the shims or the relay change.
    wake_tx: UnixDatagram,
    wake_rx: UnixDatagram,
    last: Mutex<Instant>,
    closed: std::sync::atomic::AtomicBool,
}

fn big_buffers(sock: &UdpSocket) {
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        if crate::supervisor::sys::setsockopt_int(sock.as_fd(), libc::SOL_SOCKET, opt, RCVBUF).is_ok() {
            break;
        }
    }
}

impl Assoc {
    pub fn new(cookie: u64, family: i32, local: SocketAddr) -> std::io::Result<Arc<Assoc>> {
        let (wake_tx, wake_rx) = UnixDatagram::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Arc::new(Assoc {
            cookie,
            family,
            delivery: Mutex::new(delivery_addr(local)),
            relay: Mutex::new(None),
            shims: Mutex::default(),
            wake_tx,
            wake_rx,
            last: Mutex::new(Instant::now()),
            closed: false.into(),
        }))
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn set_local(&self, local: SocketAddr) {
        if let Ok(mut d) = self.delivery.lock() {
            *d = delivery_addr(local);
        }
    }

    fn wake(&self) {
        let _ = self.wake_tx.send(&[1]);
    }

    fn touch(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
    }

    /// The shim standing for `peer`, made (and entered in the kernel's map) on first use;
    /// `Err` past [`MAX_PEERS`] or when a socket cannot be made.
    pub fn shim_for(&self, proxy: &UdpProxy, peer: SocketAddr) -> std::io::Result<(Arc<UdpSocket>, bool)> {
        let mut shims = self.shims.lock().map_err(|_| ErrorKind::Other)?;
        if let Some(s) = shims.by_peer.get(&peer) {
            return Ok((s.clone(), false));
        }
        if shims.all.len() >= MAX_PEERS {
            return Err(ErrorKind::OutOfMemory.into());
        }
        let socket = UdpSocket::bind(SocketAddr::new(shim_ip(self.family), 0))?;
        socket.set_nonblocking(true)?;
        big_buffers(&socket);
        proxy.peers.insert(self.cookie, socket.local_addr()?, peer).map_err(|_| ErrorKind::Other)?;
        let socket = Arc::new(socket);
        shims.by_peer.insert(peer, socket.clone());
        shims.all.push(Shim { socket: socket.clone(), peer });
        drop(shims);
        self.wake();
        Ok((socket, true))
    }

    /// The relay, set up on first use: a TCP connection to the proxy, UDP ASSOCIATE for our
    /// UDP socket bound to the same local address; `stop` ends the exchange early
    /// (`socks::Stop`).
    fn relay(&self, proxy: &UdpProxy, stop: crate::socks::Stop<'_>) -> Result<Arc<Relay>, i32> {
        let mut relay = self.relay.lock().map_err(|_| libc::EIO)?;
        if let Some(r) = relay.as_ref() {
            return Ok(r.clone());
        }
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        let server = proxy.server().map_err(|_| libc::ENETUNREACH)?;
        let control = TcpStream::connect_timeout(&server, SETUP_TIMEOUT).map_err(errno)?;
        let local_ip = control.local_addr().map_err(errno)?.ip();
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0)).map_err(errno)?;
        big_buffers(&socket);
        let from = socket.local_addr().map_err(errno)?;
        let creds = proxy.auth.as_ref().map(|a| a.credentials());
        let relay_addr = udp::associate(control.as_fd(), server, from, creds.as_ref(), SETUP_TIMEOUT, stop)
            .map_err(|e| match e {
            udp::AssociateError::Io(n) => n,
            udp::AssociateError::NotSupported => libc::EOPNOTSUPP,
            udp::AssociateError::Socks(s) => s.errno(),
        })?;
        socket.connect(relay_addr).map_err(errno)?;
        socket.set_nonblocking(true).map_err(errno)?;
        control.set_nonblocking(true).map_err(errno)?;
        let made = Arc::new(Relay { control, socket });
        *relay = Some(made.clone());
        drop(relay);
        self.wake();
        Ok(made)
    }

    /// Sends `data` to `peer` through the relay (the program's trapped send); `stop` ends the
    /// relay's setup early, when its caller is gone.
    pub fn send(
        &self,
        proxy: &UdpProxy,
        peer: SocketAddr,
        data: &[u8],
        stop: crate::socks::Stop<'_>,
    ) -> Result<usize, i32> {
        let relay = self.relay(proxy, stop)?;
        self.touch();
        send_wrapped(&relay.socket, peer, data, &proxy.stats)?;
        Ok(data.len())
    }

    /// Moves datagrams until the association ends, then removes its shims from the map.
    pub fn serve(self: Arc<Self>, proxy: Arc<UdpProxy>) {
        let mut buf = vec![0u8; BUF];
        loop {
            let relay = self.relay.lock().ok().and_then(|r| r.clone());
            let shims: Vec<(Arc<UdpSocket>, SocketAddr)> = match self.shims.lock() {
                Ok(s) => s.all.iter().map(|s| (s.socket.clone(), s.peer)).collect(),
                Err(_) => break,
            };
            let mut fds = vec![pollin(self.wake_rx.as_raw_fd())];
            if let Some(r) = &relay {
                fds.push(pollin(r.control.as_raw_fd()));
                fds.push(pollin(r.socket.as_raw_fd()));
            }
            let first_shim = fds.len();
            fds.extend(shims.iter().map(|(s, _)| pollin(s.as_raw_fd())));
            // SAFETY: `fds` is a live array of pollfds of open sockets we hold.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
            if n < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                break;
            }
            if fds[0].revents != 0 {
                while self.wake_rx.recv(&mut buf).is_ok() {}
            }
            if let Some(r) = &relay {
                if fds[1].revents != 0 && control_closed(&r.control, &mut buf) {
                    break;
                }
                if fds[2].revents != 0 {
                    self.relay_to_program(&proxy, &r.socket, &mut buf);
                }
            }
            for (i, (shim, peer)) in shims.iter().enumerate() {
                if fds[first_shim + i].revents != 0 {
                    self.program_to_relay(&proxy, shim, *peer, &mut buf);
                }
            }
            let idle = self.last.lock().map(|l| l.elapsed() > IDLE).unwrap_or(true);
            if idle {
                break;
            }
        }
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(shims) = self.shims.lock() {
            for shim in &shims.all {
                if let Ok(addr) = shim.socket.local_addr() {
                    proxy.peers.remove(self.cookie, addr);
                }
            }
        }
        proxy.forget(self.cookie);
    }

    /// Replies from the relay: unwrapped and delivered from the peer's shim.
    fn relay_to_program(&self, proxy: &UdpProxy, socket: &UdpSocket, buf: &mut [u8]) {
        let delivery = self.delivery.lock().map(|d| *d).ok();
        while let Ok(n) = socket.recv(buf) {
            self.touch();
            let Ok((peer, payload)) = udp::unwrap(&buf[..n]) else {
                proxy.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // The peer in the form the program used (v4-mapped on IPv6 sockets is kept as IPv4
            // by the policy's parser, and so in our table).
            let peer = normalize(peer);
            let (Some(to), Ok((shim, _))) = (delivery, self.shim_for(proxy, peer)) else {
                proxy.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match shim.send_to(payload, to) {
                Ok(_) => {
                    proxy.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    proxy.stats.bytes_in.fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    proxy.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// What the program's connected socket sent to a shim: wrapped for the peer and relayed.
    fn program_to_relay(&self, proxy: &UdpProxy, shim: &UdpSocket, peer: SocketAddr, buf: &mut [u8]) {
        let delivery = self.delivery.lock().map(|d| d.port()).unwrap_or(0);
        while let Ok((n, from)) = shim.recv_from(buf) {
            // Only the program socket of this association may use its shims.
            if from.port() != delivery || !from.ip().is_loopback() {
                proxy.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.touch();
            let relayed = self
                .relay(proxy, &crate::socks::never)
                .and_then(|r| send_wrapped(&r.socket, peer, &buf[..n], &proxy.stats));
            if relayed.is_err() {
                proxy.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A v4-mapped address as IPv4, as `net::sockaddr::parse` stores destinations.
fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

fn send_wrapped(socket: &UdpSocket, peer: SocketAddr, data: &[u8], stats: &Stats) -> Result<(), i32> {
    let wrapped = udp::wrap(peer, data);
    loop {
        match socket.send(&wrapped) {
            Ok(_) => {
                stats.datagrams_out.fetch_add(1, Ordering::Relaxed);
                stats.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
                return Ok(());
            }
            // A full send buffer: wait for room rather than drop (the program's own send
            // would have blocked, or the kernel queued it).
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                crate::supervisor::sys::poll_one(socket.as_fd(), libc::POLLOUT, 100);
            }
            Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

fn pollin(fd: i32) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// The control connection: any data is ignored; end of stream or an error ends the association.
fn control_closed(control: &TcpStream, buf: &mut [u8]) -> bool {
    use std::io::Read;
    let mut c = control;
    loop {
        match c.read(buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_to_the_programs_own_address() {
        assert_eq!(delivery_addr("0.0.0.0:5000".parse().unwrap()), "127.0.0.1:5000".parse().unwrap());
        assert_eq!(delivery_addr("[::]:5000".parse().unwrap()), "[::1]:5000".parse().unwrap());
        assert_eq!(delivery_addr("127.0.0.5:7".parse().unwrap()), "127.0.0.5:7".parse().unwrap());
        assert_eq!(shim_ip(libc::AF_INET), IpAddr::V4(Ipv4Addr::new(127, 83, 84, 1)));
        assert_eq!(normalize("[::ffff:1.2.3.4]:5".parse().unwrap()), "1.2.3.4:5".parse().unwrap());
    }
}
