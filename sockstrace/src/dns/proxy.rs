//! A small async SOCKS5 client on tokio for the resolver's own connections
//! to the proxy (the program's sockets use `socks::handshake` instead).
//! Messages are built and parsed by `socks::codec`.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::socks::codec::{self, Credentials, SocksError, Target};

/// Tor's RESOLVE and RESOLVE_PTR commands (tor's doc/socks-extensions.txt).
pub const CMD_RESOLVE: u8 = 0xf0;
pub const CMD_RESOLVE_PTR: u8 = 0xf1;
const CMD_CONNECT: u8 = 1;

/// What a reply's bound address holds: RESOLVE answers with an address,
/// RESOLVE_PTR with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Ip(IpAddr),
    Name(String),
}

/// Fresh credentials: with Tor, a connection using them gets a circuit of
/// its own (IsolateSOCKSAuth, on by default). Distinct and unguessable, not
/// secret: std's RandomState is seeded from the OS once per thread and
/// changes with every instance.
pub fn fresh_credentials() -> Credentials {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| format!("{:016x}", RandomState::new().hash_one((n, salt)));
    Credentials { user: format!("sockstrace-dns-{}", word(1)).into_bytes(), pass: word(2).into_bytes() }
}

/// Connects to `proxy` and negotiates the method (and `creds` if asked).
pub async fn open(proxy: SocketAddr, creds: &Credentials) -> anyhow::Result<TcpStream> {
    let mut stream =
        TcpStream::connect(proxy).await.with_context(|| format!("connecting to the proxy {proxy}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY on the proxy connection")?;
    stream.write_all(&codec::greeting(Some(creds))).await.context("sending the SOCKS greeting")?;
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.context("reading the SOCKS method choice")?;
    if codec::parse_method(method, true)? {
        stream.write_all(&codec::auth_request(creds)?).await.context("sending SOCKS credentials")?;
        let mut status = [0u8; 2];
        stream.read_exact(&mut status).await.context("reading the SOCKS authentication status")?;
        codec::parse_auth_reply(status)?;
    }
    Ok(stream)
}

/// Sends request `cmd` for `target` on a negotiated connection and returns
/// the reply's bound address.
pub async fn command(stream: &mut TcpStream, cmd: u8, target: &Target) -> anyhow::Result<Bound> {
    // CONNECT and Tor's commands share the layout; only the command byte differs.
    let mut request = codec::connect_request(target)?;
    request[1] = cmd;
    stream.write_all(&request).await.context("sending the SOCKS request")?;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await.context("reading the SOCKS reply")?;
    let rest_len = codec::parse_reply_head(head)?;
    let mut rest = vec![0u8; rest_len];
    stream.read_exact(&mut rest).await.context("reading the SOCKS reply's address")?;
    Ok(bound(head, &rest)?)
}

/// Tor's RESOLVE: the address `name` resolves to, looked up by the proxy.
pub async fn resolve(proxy: SocketAddr, name: &str) -> anyhow::Result<IpAddr> {
    let mut stream = open(proxy, &fresh_credentials()).await?;
    match command(&mut stream, CMD_RESOLVE, &Target::Domain(name.to_owned(), 0)).await? {
        Bound::Ip(ip) => Ok(ip),
        Bound::Name(_) => bail!("the proxy answered RESOLVE {name} with a name"),
    }
}

/// Tor's RESOLVE_PTR: the name of `ip`, looked up by the proxy.
pub async fn resolve_ptr(proxy: SocketAddr, ip: IpAddr) -> anyhow::Result<String> {
    let mut stream = open(proxy, &fresh_credentials()).await?;
    match command(&mut stream, CMD_RESOLVE_PTR, &Target::Addr(SocketAddr::new(ip, 0))).await? {
        Bound::Name(name) => Ok(name),
        Bound::Ip(_) => bail!("the proxy answered RESOLVE_PTR {ip} with an address"),
    }
}

/// A connection to `target` through the proxy (SOCKS5 CONNECT).
pub async fn connect(
    proxy: SocketAddr,
    target: SocketAddr,
    creds: &Credentials,
) -> anyhow::Result<TcpStream> {
    let mut stream = open(proxy, creds).await?;
    command(&mut stream, CMD_CONNECT, &Target::Addr(target))
        .await
        .with_context(|| format!("SOCKS CONNECT to {target} via {proxy}"))?;
    Ok(stream)
}

/// The bound address of a reply from its first 5 bytes and the rest
/// (`codec::parse_reply_head` has checked the type and sized `rest`).
fn bound(head: [u8; 5], rest: &[u8]) -> Result<Bound, SocksError> {
    // The address is head[4] followed by all of `rest` but the 2-byte port.
    let tail =
        rest.get(..rest.len().saturating_sub(2)).filter(|_| rest.len() >= 2).ok_or(SocksError::Malformed)?;
    let mut addr = vec![head[4]];
    addr.extend_from_slice(tail);
    match (head[3], addr.len()) {
        (1, 4) => Ok(Bound::Ip(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into())),
        (4, 16) => {
            let octets: [u8; 16] = addr.try_into().map_err(|_| SocksError::Malformed)?;
            Ok(Bound::Ip(Ipv6Addr::from(octets).into()))
        }
        // A name: head[4] is its length, `tail` the name.
        (3, _) if tail.len() == usize::from(head[4]) => {
            String::from_utf8(tail.to_vec()).map(Bound::Name).map_err(|_| SocksError::Malformed)
        }
        _ => Err(SocksError::Malformed),
    }
}

/// The SOCKS reply code behind an error, if the proxy refused.
pub fn refusal(error: &anyhow::Error) -> Option<u8> {
    error.chain().find_map(|cause| match cause.downcast_ref::<SocksError>() {
        Some(SocksError::Refused(code)) => Some(*code),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_addresses() {
        assert_eq!(bound([5, 0, 0, 1, 10], &[1, 2, 3, 0, 0]), Ok(Bound::Ip("10.1.2.3".parse().unwrap())));
        let mut v6 = vec![0u8; 15];
        v6[14] = 1;
        v6.extend([0, 0]);
        assert_eq!(bound([5, 0, 0, 4, 0], &v6), Ok(Bound::Ip("::1".parse().unwrap())));
        assert_eq!(bound([5, 0, 0, 3, 3], b"abc\0\0"), Ok(Bound::Name("abc".into())));
        assert_eq!(bound([5, 0, 0, 3, 2], b"\xff\xfe\0\0"), Err(SocksError::Malformed));
        assert_eq!(bound([5, 0, 0, 1, 10], &[1]), Err(SocksError::Malformed));
    }

    #[test]
    fn credentials_differ() {
        let (a, b) = (fresh_credentials(), fresh_credentials());
        assert_ne!(a, b);
        assert!(a.user.len() <= 255 && a.pass.len() == 16);
    }

    #[test]
    fn refusal_survives_context() {
        let error = anyhow::Error::from(SocksError::Refused(4)).context("resolving x");
        assert_eq!(refusal(&error), Some(4));
        assert_eq!(refusal(&anyhow::anyhow!("other")), None);
    }
}
