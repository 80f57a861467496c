//! The forwarders: listeners the child made inside the program's network
//! namespace, each relayed to the same address in the host's namespace.
//!
//! A connection the program makes to a forwarded address (the supervisor
//! performs the connect, as for any allowed call) is accepted here, then
//! relayed to the real destination from our own namespace. A destination that
//! refuses or cannot be reached closes the program's connection (the program
//! sees its connect succeed, then end of stream or a reset).
//!
//! A datagram forward (an allowed UDP destination, the `--dns proxy`
//! resolver) is relayed by [`super::udp`].

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::Forward;

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
    crate::supervisor::sys::raise_fd_limit();
    let _inside = runtime.enter();
    for (forward, fd) in sockets {
        if forward.udp {
            let std = std::net::UdpSocket::from(fd);
            std.set_nonblocking(true)?;
            runtime.spawn(super::udp::serve(UdpSocket::from_std(std)?, forward.outside));
        } else {
            let std = std::net::TcpListener::from(fd);
            std.set_nonblocking(true)?;
            let inspector = inspector.clone().filter(|i| i.takes(forward.outside));
            runtime.spawn(serve(TcpListener::from_std(std)?, forward.outside, inspector));
        }
    }
    Ok(())
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
