//! `Upstream::TcpViaSocks`: the query, as received, over DNS-over-TCP
//! (RFC 7766, 2-byte length prefix) to a resolver reached by SOCKS5 CONNECT.
//! A few idle connections are kept for reuse; a reused connection that fails
//! is replaced by a fresh one once.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::TcpStream;

use super::{frame, proxy};

/// Idle connections kept, and for how long (resolvers close idle ones).
const IDLE_MAX: usize = 4;
const IDLE_FOR: Duration = Duration::from_secs(20);

pub struct Forwarder {
    proxy: SocketAddr,
    resolver: SocketAddr,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl Forwarder {
    pub fn new(proxy: SocketAddr, resolver: SocketAddr) -> Forwarder {
        Forwarder { proxy, resolver, idle: Mutex::new(Vec::new()) }
    }

    /// The resolver's reply to `query` (a complete DNS message).
    pub async fn exchange(&self, query: &[u8]) -> anyhow::Result<Vec<u8>> {
        if let Some(mut stream) = self.take_idle() {
            if let Ok(reply) = round_trip(&mut stream, query).await {
                self.put_idle(stream);
                return Ok(reply);
            }
        }
        let mut stream = proxy::connect(self.proxy, self.resolver, &proxy::fresh_credentials()).await?;
        let reply = round_trip(&mut stream, query)
            .await
            .with_context(|| format!("DNS over TCP with {} via {}", self.resolver, self.proxy))?;
        self.put_idle(stream);
        Ok(reply)
    }

    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.retain(|(_, since)| since.elapsed() < IDLE_FOR);
        idle.pop().map(|(stream, _)| stream)
    }

    fn put_idle(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push((stream, Instant::now()));
        }
    }
}

/// One query and its reply on a DNS-over-TCP connection.
async fn round_trip(stream: &mut TcpStream, query: &[u8]) -> anyhow::Result<Vec<u8>> {
    frame::write(stream, query).await.context("sending the query")?;
    let reply = frame::read(stream).await?.context("the resolver closed the connection")?;
    if reply.get(..2) != query.get(..2) {
        bail!("the resolver's reply has another ID");
    }
    Ok(reply)
}
