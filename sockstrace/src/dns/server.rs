//! The listeners: UDP and TCP on one address, served on the current tokio
//! runtime until the `Resolver` is dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use super::frame;
use super::handler::{Handler, Step};
use super::pool::DEFAULT_CAPACITY;
use super::reply::Transport;
use super::stats::ResolverStats;
use super::Upstream;

/// Queries waiting for the upstream at once (UDP); beyond, dropped (the
/// client retries).
const MAX_IN_FLIGHT: usize = 256;
/// TCP connections at once; beyond, closed at once.
const MAX_TCP_CONNECTIONS: usize = 64;
/// A TCP connection idle this long is closed (RFC 7766 6.2.3 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The DNS resolver for a traced program. Stops when dropped.
pub struct Resolver {
    local_addr: SocketAddr,
    handler: Arc<Handler>,
    tasks: Vec<JoinHandle<()>>,
}

/// A cheap, cloneable handle for `name_for` from any thread.
#[derive(Clone)]
pub struct Names(Arc<Handler>);

impl Names {
    /// See `Resolver::name_for`.
    #[cfg(test)]
    pub fn name_for(&self, ip: IpAddr) -> Option<String> {
        self.0.name_for(ip)
    }

    /// What `ip` is to the fake-address pool: outside it (or there is no
    /// pool: Tor or DNS-over-TCP answers), a name's, or nobody's.
    pub fn pool_address(&self, ip: IpAddr) -> super::PoolAddress {
        self.0.pool_address(ip)
    }

    /// Whether `ip` lies in the fake-address pool, when there is one (named or not).
    pub fn in_fake_pool(&self, ip: IpAddr) -> bool {
        self.0.in_fake_pool(ip)
    }
}

impl Resolver {
    /// Binds UDP and TCP on `addr` (port 0: one free port for both) and
    /// serves on the current tokio runtime until dropped or stopped.
    pub async fn start(addr: SocketAddr, upstream: Upstream) -> anyhow::Result<Resolver> {
        Resolver::start_with_capacity(addr, upstream, DEFAULT_CAPACITY).await
    }

    /// `start`, remembering at most `capacity` names in FakeIp mode.
    pub async fn start_with_capacity(
        addr: SocketAddr,
        upstream: Upstream,
        capacity: usize,
    ) -> anyhow::Result<Resolver> {
        let (udp, tcp) = bind(addr).await?;
        let local_addr = udp.local_addr().context("the DNS UDP socket's address")?;
        let handler = Arc::new(Handler::new(upstream, capacity));
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), handler.clone())),
            tokio::spawn(serve_tcp(tcp, handler.clone())),
        ];
        Ok(Resolver { local_addr, handler, tasks })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// For FakeIp: the name a pool address stands for (v4-mapped IPv6 too),
    /// if we handed it out and still remember it. Cheap (a read lock), from
    /// any thread; `None` in the other modes.
    #[cfg(test)]
    pub fn name_for(&self, ip: IpAddr) -> Option<String> {
        self.handler.name_for(ip)
    }

    /// A handle for `name_for` to give to other threads.
    pub fn names(&self) -> Names {
        Names(self.handler.clone())
    }

    pub fn stats(&self) -> ResolverStats {
        self.handler.stats()
    }

    /// Stops serving (as dropping does); the sockets close as the tasks end.
    #[cfg(test)]
    pub fn stop(self) {}
}

impl Drop for Resolver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr).await.with_context(|| format!("binding DNS UDP {addr}"))?;
        let port = udp.local_addr().context("the DNS UDP socket's address")?.port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(tcp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Port 0: the port free for UDP may be taken for TCP; try another.
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && attempts < 16 => {
                attempts += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("binding DNS TCP {tcp_addr}")),
        }
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, handler: Arc<Handler>) {
    let mut buf = vec![0u8; 65_535];
    let mut in_flight = JoinSet::new();
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(_) => {
                // Transient (ENOMEM, an ICMP error); do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while in_flight.try_join_next().is_some() {}
        let request = match handler.start(&buf[..len], Transport::Udp) {
            Step::Done(Some(reply)) => {
                let _ = socket.send_to(&reply, peer).await;
                continue;
            }
            Step::Done(None) => continue,
            Step::Upstream(request) => request,
        };
        if in_flight.len() >= MAX_IN_FLIGHT {
            handler.overloaded();
            continue;
        }
        let (socket, handler) = (socket.clone(), handler.clone());
        in_flight.spawn(async move {
            if let Some(reply) = handler.resolve(request, Transport::Udp).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // EMFILE and the like; do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() < MAX_TCP_CONNECTIONS {
            connections.spawn(serve_connection(stream, handler.clone()));
        }
    }
}

/// Queries on one TCP connection, answered in order.
async fn serve_connection(mut stream: TcpStream, handler: Arc<Handler>) {
    loop {
        let message = match tokio::time::timeout(TCP_IDLE, frame::read(&mut stream)).await {
            Ok(Ok(Some(message))) => message,
            _ => return,
        };
        let reply = match handler.start(&message, Transport::Tcp) {
            Step::Done(reply) => reply,
            Step::Upstream(request) => handler.resolve(request, Transport::Tcp).await,
        };
        if let Some(reply) = reply {
            // A client that does not read its replies loses the connection.
            match tokio::time::timeout(TCP_IDLE, frame::write(&mut stream, &reply)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}
