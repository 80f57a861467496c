//! The forwarders: listeners the child made inside the program's network
//! namespace, each relayed to the same address in the host's namespace.
//!
//! A connection the program makes to a forwarded address (the supervisor
//! performs the connect, as for any allowed call) is accepted here, then
//! relayed to the real destination from our own namespace. A destination that
//! refuses or cannot be reached closes the program's connection (the program
//! sees its connect succeed, then end of stream or a reset).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use tokio::net::{TcpListener, TcpStream};

/// Starts one relay task per listener on `runtime`.
pub fn start(runtime: &tokio::runtime::Runtime, listeners: Vec<(SocketAddr, OwnedFd)>) -> anyhow::Result<()> {
    let _inside = runtime.enter();
    for (target, fd) in listeners {
        let std = std::net::TcpListener::from(fd);
        std.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std)?;
        runtime.spawn(serve(listener, target));
    }
    Ok(())
}

async fn serve(listener: TcpListener, target: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((inside, _)) => {
                tokio::spawn(relay(inside, target));
            }
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
