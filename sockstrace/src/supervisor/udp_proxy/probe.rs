//! Which proxy offers UDP: a UDP ASSOCIATE request to each candidate at start (microsocks and
//! Tor answer "command not supported", Dante grants it).

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::socks::udp;
use crate::supervisor::handlers::SocksAuth;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The first of `candidates` that grants a UDP association, or why none did; `None` when
/// `stop` ended the asking first (nothing is known then).
pub fn first_offering_udp(
    candidates: &[SocketAddr],
    auth: &SocksAuth,
    stop: crate::socks::Stop<'_>,
) -> Option<Result<SocketAddr, String>> {
    if candidates.is_empty() {
        return Some(Err("no SOCKS5 proxy to ask for UDP ASSOCIATE".into()));
    }
    let mut why = Vec::new();
    for &server in candidates {
        if stop() {
            return None;
        }
        match offers_udp(server, auth, stop) {
            Ok(()) => return Some(Ok(server)),
            Err(_) if stop() => return None,
            Err(e) => why.push(format!("{server}: {e}")),
        }
    }
    Some(Err(format!("no proxy offers UDP: {}", why.join("; "))))
}

fn offers_udp(server: SocketAddr, auth: &SocksAuth, stop: crate::socks::Stop<'_>) -> Result<(), String> {
    let control = TcpStream::connect_timeout(&server, PROBE_TIMEOUT).map_err(|e| e.to_string())?;
    let unspecified = SocketAddr::new(
        if server.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        },
        0,
    );
    let creds = auth.credentials();
    udp::associate(control.as_fd(), server, unspecified, Some(&creds), PROBE_TIMEOUT, stop)
        .map(drop)
        .map_err(|e| e.to_string())
}
