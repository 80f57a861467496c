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
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
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
) -> anyhow::Result<Uploads> {
    crate::supervisor::sys::raise_fd_limit();
    let _inside = runtime.enter();
    let mut uploads = Uploads::default();
    for (forward, fd) in sockets {
        if forward.udp {
            let std = std::net::UdpSocket::from(fd);
            std.set_nonblocking(true)?;
            runtime.spawn(super::udp::serve(UdpSocket::from_std(std)?, forward.outside));
        } else {
            let std = std::net::TcpListener::from(fd);
            std.set_nonblocking(true)?;
            if let Ok(watched) = std.as_fd().try_clone_to_owned() {
                uploads.listeners.push(watched);
            }
            let inspector = inspector.clone().filter(|i| i.takes(forward.outside));
            let active = uploads.active.clone();
            runtime.spawn(serve(TcpListener::from_std(std)?, forward.outside, inspector, active));
        }
    }
    Ok(uploads)
}

/// What the program sent through the TCP forwarders and we have not passed on yet: at the
/// run's end, a short program's last connection may still wait in a listener's queue, or its
/// bytes in our relay; [`Uploads::drain`] lets them reach their destination before the
/// runtime (and every relay with it) goes.
#[derive(Default)]
pub struct Uploads {
    /// Relays whose program-to-destination direction has not ended yet.
    active: Arc<AtomicUsize>,
    /// The listeners (duplicates), whose accept queues are read.
    listeners: Vec<OwnedFd>,
}

impl Uploads {
    /// Waits until no connection waits to be accepted and every relay has passed on what the
    /// program sent (its end of stream included), or `patience` has run out.
    pub fn drain(&self, patience: Duration) {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            let queued = self
                .listeners
                .iter()
                .any(|l| crate::supervisor::sys::accept_queue(l.as_fd()).is_ok_and(|n| n > 0));
            if !queued && self.active.load(Ordering::Acquire) == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Counts one relay's upload while it lasts.
struct Uploading(Arc<AtomicUsize>);

impl Uploading {
    fn new(active: &Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::AcqRel);
        Uploading(active.clone())
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    inspector: Option<crate::inspect::Handoff>,
    active: Arc<AtomicUsize>,
) {
    loop {
        match listener.accept().await {
            Ok((inside, peer)) => match &inspector {
                Some(inspector) => inspector.relay(inside, peer),
                None => {
                    let uploading = Uploading::new(&active);
                    drop(tokio::spawn(relay(inside, target, uploading)));
                }
            },
            // EMFILE and the like: back off a little rather than spin.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn relay(mut inside: TcpStream, target: SocketAddr, uploading: Uploading) {
    let _ = inside.set_nodelay(true);
    let Ok(mut outside) = TcpStream::connect(target).await else {
        // The program's connection ends with a reset, as a refused connect would look later.
        // A zero linger never blocks the drop (the deprecation is about a non-zero one).
        #[allow(deprecated)]
        let _ = inside.set_linger(Some(std::time::Duration::ZERO));
        return;
    };
    let _ = outside.set_nodelay(true);
    let (mut from_program, mut to_program) = inside.split();
    let (mut from_destination, mut to_destination) = outside.split();
    let upload = async {
        let _ = tokio::io::copy(&mut from_program, &mut to_destination).await;
        let _ = to_destination.shutdown().await;
        drop(uploading);
    };
    let download = async {
        let _ = tokio::io::copy(&mut from_destination, &mut to_program).await;
        let _ = to_program.shutdown().await;
    };
    tokio::join!(upload, download);
}
