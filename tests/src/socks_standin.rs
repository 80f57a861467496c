//! A SOCKS5 stand-in on loopback for the tests of UDP through the proxy (`--on-leak socksify`):
//! it grants UDP ASSOCIATE at once, late or never, and records when connections, associations
//! and relayed datagrams came.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a SOCKS5 stand-in does with a UDP ASSOCIATE request.
#[derive(Clone, Copy)]
pub enum Grant {
    /// Grants the probe (its request names the unspecified address) at once, a real
    /// association after this long.
    After(Duration),
    /// Reads the greeting and never answers (a proxy that hangs).
    Never,
}

/// A SOCKS5 stand-in on loopback that records when each connection came and each association
/// was asked for, and whether datagrams reached its relay. Connections are kept open while it
/// lives.
pub struct Socks {
    pub addr: SocketAddr,
    started: Instant,
    /// When each control connection was accepted, since `started`.
    pub connected: Arc<Mutex<Vec<Duration>>>,
    /// When each association (not a probe) was asked for, since `started`.
    pub asked: Arc<Mutex<Vec<Duration>>>,
    /// When each datagram reached the relay, since `started`.
    pub relayed: Arc<Mutex<Vec<Duration>>>,
}

impl Socks {
    pub fn start(grant: Grant) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = l.local_addr().unwrap();
        let relay = UdpSocket::bind("127.0.0.1:0").expect("bind relay");
        let relay_addr = relay.local_addr().unwrap();
        let started = Instant::now();
        type Times = Arc<Mutex<Vec<Duration>>>;
        let (connected, asked, relayed): (Times, Times, Times) = Default::default();
        let seen = relayed.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while relay.recv_from(&mut buf).is_ok() {
                seen.lock().unwrap().push(started.elapsed());
            }
        });
        let keep: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (conns, asks) = (Arc::clone(&connected), Arc::clone(&asked));
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                conns.lock().unwrap().push(started.elapsed());
                let (keep, asks) = (keep.clone(), asks.clone());
                std::thread::spawn(move || {
                    let _ = Self::serve(s, relay_addr, grant, started, &asks, &keep);
                });
            }
        });
        Socks { addr, started, connected, asked, relayed }
    }

    fn serve(
        mut s: TcpStream,
        relay: SocketAddr,
        grant: Grant,
        started: Instant,
        asked: &Mutex<Vec<Duration>>,
        keep: &Mutex<Vec<TcpStream>>,
    ) -> std::io::Result<()> {
        let mut head = [0u8; 2];
        s.read_exact(&mut head)?;
        let mut methods = vec![0u8; head[1] as usize];
        s.read_exact(&mut methods)?;
        let delay = match grant {
            Grant::Never => {
                keep.lock().unwrap().push(s);
                return Ok(());
            }
            Grant::After(delay) => delay,
        };
        s.write_all(&[5, 0])?;
        let mut req = [0u8; 4];
        s.read_exact(&mut req)?;
        let len = match req[3] {
            1 => 4,
            4 => 16,
            _ => return Ok(()),
        };
        let mut from = vec![0u8; len + 2];
        s.read_exact(&mut from)?;
        if !from.iter().all(|&b| b == 0) {
            asked.lock().unwrap().push(started.elapsed());
            std::thread::sleep(delay);
        }
        let std::net::IpAddr::V4(ip) = relay.ip() else { unreachable!() };
        let mut reply = vec![5, 0, 0, 1];
        reply.extend_from_slice(&ip.octets());
        reply.extend_from_slice(&relay.port().to_be_bytes());
        s.write_all(&reply)?;
        keep.lock().unwrap().push(s);
        Ok(())
    }

    /// `at`, as time since the stand-in started.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// What it saw, for a failure's message.
    pub fn describe(&self) -> String {
        format!(
            "proxy {}: connections at {:?}, associations asked at {:?}, datagrams relayed: {} (since it started)",
            self.addr,
            self.connected.lock().unwrap(),
            self.asked.lock().unwrap(),
            self.relayed.lock().unwrap().len()
        )
    }
}
