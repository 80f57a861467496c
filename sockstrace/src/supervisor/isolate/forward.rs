//! The forwarders: listeners the child made inside the program's network
//! namespace, each relayed to the same address in the host's namespace.
//!
//! A connection the program makes to a forwarded address (the supervisor
//! performs the connect, as for any allowed call) is accepted here, then
//! relayed to the real destination from our own namespace. A destination that
//! refuses or cannot be reached closes the program's connection (the program
//! sees its connect succeed, then end of stream or a reset).
//!
//! A datagram forward (the `--dns proxy` resolver) relays each datagram from a
//! socket of its own in the host's namespace, and the one reply that comes
//! back within [`UDP_REPLY_WAIT`] to the sender.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::Forward;

/// How long a relayed datagram waits for its reply.
const UDP_REPLY_WAIT: Duration = Duration::from_secs(10);
/// Datagrams relayed at once; more are dropped (the sender retries).
const UDP_IN_FLIGHT: usize = 256;

/// Starts one relay task per socket on `runtime`. Called after the program
/// started (it keeps the limits it was given): each of its connections
/// through a forwarder holds two of our fds, so ours are raised to the hard
/// limit, lest the program exhaust them before its own.
///
/// Connections to the SOCKS inspector's own addresses go to `inspector`,
/// with the program's address (see [`crate::inspect::Handoff`]).
pub fn start(
    runtime: &tokio::runtime::Runtime,
    sockets: Vec<(Forward, OwnedFd)>,
    inspector: Option<crate::inspect::Handoff>,
) -> anyhow::Result<()> {
    raise_fd_limit();
    let _inside = runtime.enter();
    for (forward, fd) in sockets {
        if forward.udp {
            let std = std::net::UdpSocket::from(fd);
            std.set_nonblocking(true)?;
            runtime.spawn(serve_udp(UdpSocket::from_std(std)?, forward.outside));
        } else {
            let std = std::net::TcpListener::from(fd);
            std.set_nonblocking(true)?;
            let inspector = inspector.clone().filter(|i| i.takes(forward.outside));
            runtime.spawn(serve(TcpListener::from_std(std)?, forward.outside, inspector));
        }
    }
    Ok(())
}

async fn serve_udp(inside: UdpSocket, target: SocketAddr) {
    let inside = Arc::new(inside);
    let slots = Arc::new(tokio::sync::Semaphore::new(UDP_IN_FLIGHT));
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, peer)) = inside.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let datagram = buf[..n].to_vec();
        let inside = inside.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ =
                tokio::time::timeout(UDP_REPLY_WAIT, relay_datagram(&inside, peer, &datagram, target)).await;
        });
    }
}

async fn relay_datagram(
    inside: &UdpSocket,
    peer: SocketAddr,
    datagram: &[u8],
    target: SocketAddr,
) -> Option<()> {
    let any = match target.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let outside = UdpSocket::bind(SocketAddr::new(any, 0)).await.ok()?;
    outside.connect(target).await.ok()?;
    outside.send(datagram).await.ok()?;
    let mut reply = vec![0u8; 65_535];
    let n = outside.recv(&mut reply).await.ok()?;
    inside.send_to(&reply[..n], peer).await.ok()?;
    Some(())
}

async fn serve(listener: TcpListener, target: SocketAddr, inspector: Option<crate::inspect::Handoff>) {
    loop {
        match listener.accept().await {
            Ok((inside, peer)) => match &inspector {
                Some(inspector) => inspector.relay(inside, peer),
                None => drop(tokio::spawn(relay(inside, target))),
            },
            // EMFILE and the like: back off a little rather than spin.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn relay(mut inside: TcpStream, target: SocketAddr) {
    let _ = inside.set_nodelay(true);
    let Ok(mut outside) = TcpStream::connect(target).await else {
        // The program's connection ends with a reset, as a refused connect would look later.
        // A zero linger never blocks the drop (the deprecation is about a non-zero one).
        #[allow(deprecated)]
        let _ = inside.set_linger(Some(std::time::Duration::ZERO));
        return;
    };
    let _ = outside.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
}

/// Raises our soft `RLIMIT_NOFILE` to the hard limit (best effort).
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a live local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
