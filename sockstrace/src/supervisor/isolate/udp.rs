//! The datagram relay of a UDP forward (an allowed UDP destination, the
//! `--dns proxy` resolver): a session per sender in the program's namespace.
//!
//! The first datagram from a sender (its address and port inside) opens a
//! socket of ours in the host's namespace, connected to the destination; the
//! sender's datagrams go out on it, and every datagram that comes back is sent
//! to the sender from the forwarded address (the program sees the reply come
//! from where it sent). A session ends after [`IDLE`] without traffic either
//! way; at [`MAX_SESSIONS`], the least recently used one is ended for a new one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// How long a session lives without a datagram either way.
const IDLE: Duration = Duration::from_secs(30);
/// Sessions at once, per forward.
const MAX_SESSIONS: usize = 256;
/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_535;

struct Session {
    outside: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
    task: tokio::task::JoinHandle<()>,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Session>>>;

/// Relays datagrams received on `inside` (the forward's socket in the
/// program's namespace) to `target` in ours, and the replies back.
pub async fn serve(inside: UdpSocket, target: SocketAddr) {
    let inside = Arc::new(inside);
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, peer)) = inside.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let existing = lock(&sessions).get(&peer).map(|s| {
            *lock(&s.last) = Instant::now();
            s.outside.clone()
        });
        let outside = match existing {
            Some(outside) => outside,
            None => match open(&inside, &sessions, peer, target).await {
                Some(outside) => outside,
                None => continue,
            },
        };
        // A send that fails (no route, refused by an ICMP error) drops the
        // datagram, as the network would.
        let _ = outside.send(&buf[..n]).await;
    }
}

/// A new session for `peer`: our socket, connected to `target`, and the task
/// that sends its replies back.
async fn open(
    inside: &Arc<UdpSocket>,
    sessions: &Sessions,
    peer: SocketAddr,
    target: SocketAddr,
) -> Option<Arc<UdpSocket>> {
    let outside = Arc::new(UdpSocket::bind(unspecified(target)).await.ok()?);
    outside.connect(target).await.ok()?;
    let last = Arc::new(Mutex::new(Instant::now()));
    let task = tokio::spawn(replies(inside.clone(), outside.clone(), peer, last.clone(), sessions.clone()));
    let mut map = lock(sessions);
    if map.len() >= MAX_SESSIONS {
        if let Some(oldest) = least_recent(&map) {
            if let Some(s) = map.remove(&oldest) {
                s.task.abort();
            }
        }
    }
    if let Some(old) = map.insert(peer, Session { outside: outside.clone(), last, task }) {
        old.task.abort();
    }
    Some(outside)
}

/// Sends what comes back on `outside` to `peer` until the session is idle.
async fn replies(
    inside: Arc<UdpSocket>,
    outside: Arc<UdpSocket>,
    peer: SocketAddr,
    last: Arc<Mutex<Instant>>,
    sessions: Sessions,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let idle_for = lock(&last).elapsed();
        if idle_for >= IDLE {
            break;
        }
        match tokio::time::timeout(IDLE - idle_for, outside.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                *lock(&last) = Instant::now();
                let _ = inside.send_to(&buf[..n], peer).await;
            }
            // An ICMP error reported on the connected socket: keep waiting.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => {}
        }
    }
    let mut map = lock(&sessions);
    if map.get(&peer).is_some_and(|s| Arc::ptr_eq(&s.outside, &outside)) {
        map.remove(&peer);
    }
}

/// The session used least recently.
fn least_recent(map: &HashMap<SocketAddr, Session>) -> Option<SocketAddr> {
    map.iter().min_by_key(|(_, s)| *lock(&s.last)).map(|(peer, _)| *peer)
}

/// Port 0 of the unspecified address of `target`'s family.
fn unspecified(target: SocketAddr) -> SocketAddr {
    let any = match target.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(any, 0)
}

/// A poisoned lock still holds consistent data here (plain values).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server in our namespace, and a sender: every datagram comes
    /// back to the sender from the forward's address, replies beyond the first
    /// included, and two senders get their own replies.
    #[tokio::test]
    async fn datagrams_and_every_reply_are_relayed_per_sender() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 100];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                // Two replies per datagram.
                let _ = echo.send_to(&buf[..n], from).await;
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let inside = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let forward = inside.local_addr().unwrap();
        tokio::spawn(serve(inside, target));
        for word in [&b"one"[..], b"two"] {
            let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sender.send_to(word, forward).await.unwrap();
            for _ in 0..2 {
                let mut buf = [0u8; 100];
                let (n, from) = tokio::time::timeout(Duration::from_secs(5), sender.recv_from(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!((&buf[..n], from), (word, forward));
            }
        }
    }
}
