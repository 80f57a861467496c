//! The relay: accepts the program's proxy connections (which the supervisor
//! connected here instead of to the proxy, after registering who made them),
//! reads the handshake message by message, passes each on or refuses it, then
//! copies both ways.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::findings::{self, Chosen, Resolved, Rules};
use super::parse::{self, Asked, Parsed};
use crate::dns::Names;
use crate::policy::{Decision, Reason};
use crate::report_writer::{Action, Event, ProcessInfo, Reporter};

/// How long the relay waits for the supervisor to register a connection.
const REGISTER_WAIT: Duration = Duration::from_secs(2);
/// How long the handshake may take, up to the request passed to the proxy.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the proxy may take to answer the request (Tor gives a circuit two
/// minutes).
const REPLY_TIMEOUT: Duration = Duration::from_secs(150);
/// The longest handshake message read (SOCKS5's are under 600 bytes; a
/// SOCKS4 user id and host name have no bound of their own).
const MAX_MESSAGE: usize = 16 * 1024;
/// A process's own DNS query this recent makes a CONNECT by address suspect.
pub const RESOLVED_RECENTLY: Duration = Duration::from_secs(10);

/// Who made a proxy connection, recorded when the supervisor connected it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub proxy: SocketAddr,
    pub tid: u32,
    pub info: ProcessInfo,
    pub cookie: Option<u64>,
    pub fd: i32,
    /// The process (thread group) id, and when each process last made a DNS
    /// query: looked up when the CONNECT comes (a program may resolve a name
    /// after connecting to its proxy, before asking it).
    pub pid: u32,
    pub dns_seen: DnsSeen,
}

/// When each process last made a DNS query.
pub type DnsSeen = Arc<Mutex<HashMap<u32, Instant>>>;

type Pending = Arc<Mutex<HashMap<SocketAddr, Origin>>>;

/// The relay's listeners and the connections waiting to be claimed.
pub struct Inspector {
    v4: SocketAddr,
    v6: Option<SocketAddr>,
    pending: Pending,
    shared: Arc<Shared>,
}

/// The inspector's side of the forwarders (`--isolate-network`). There the
/// supervisor connects the program's socket to the inspector's address inside
/// the program's namespace, where a forwarder accepts it; the forwarder hands
/// the connection over here with its peer, the program's own socket (the
/// address the supervisor registered), instead of connecting to our listener
/// from the host's namespace (which would hide the program behind the
/// forwarder's address).
#[derive(Clone)]
pub struct Handoff {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

impl Handoff {
    /// Whether a forwarder to `target` carries connections to the inspector.
    pub fn takes(&self, target: SocketAddr) -> bool {
        self.addrs.contains(&target)
    }

    /// Inspects the program's connection `client`, accepted from `peer` (its
    /// address in the program's namespace), on the current runtime.
    pub fn relay(&self, client: TcpStream, peer: SocketAddr) {
        tokio::spawn(relay(client, peer, self.shared.clone()));
    }
}

impl Inspector {
    /// Listens on 127.0.0.1 and ::1 (free ports) on the current runtime.
    /// `names`: the `--dns proxy` resolver's, when it hands out fake addresses.
    /// `isolated` (`--isolate-network`): the program's connections come only
    /// through the forwarders ([`Handoff`]); the listeners in our namespace
    /// give the addresses to forward and accept nothing (a process of the
    /// host's could otherwise claim, from the same address and port in the
    /// host's namespace, a connection registered in the program's).
    pub async fn start(
        rules: Rules,
        refuse: bool,
        reporter: Arc<Reporter>,
        isolated: bool,
        names: Option<Names>,
    ) -> Result<Inspector> {
        let v4 = TcpListener::bind("127.0.0.1:0").await.context("binding the SOCKS inspector")?;
        let v6 = TcpListener::bind("[::1]:0").await.ok();
        let pending: Pending = Arc::default();
        let shared = Arc::new(Shared { rules, refuse, reporter, pending: pending.clone(), names });
        let addrs = (v4.local_addr()?, v6.as_ref().and_then(|l| l.local_addr().ok()));
        if !isolated {
            tokio::spawn(serve(v4, shared.clone()));
            if let Some(v6) = v6 {
                tokio::spawn(serve(v6, shared.clone()));
            }
        }
        Ok(Inspector { v4: addrs.0, v6: addrs.1, pending, shared })
    }

    /// What the forwarders need to hand the program's connections over.
    pub fn handoff(&self) -> Handoff {
        Handoff { addrs: self.addrs(), shared: self.shared.clone() }
    }

    /// Where a socket of this family connects instead of to the proxy.
    pub fn listen_addr(&self, family: i32) -> SocketAddr {
        match (family, self.v6) {
            (libc::AF_INET6, Some(v6)) => v6,
            (libc::AF_INET6, None) => self.v4.map_v6(),
            _ => self.v4,
        }
    }

    /// The addresses to allow (the kernel layer must let the program reach them).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.v4).chain(self.v6).collect()
    }

    /// Records who is behind the connection from `local`.
    pub fn register(&self, local: SocketAddr, origin: Origin) {
        if let Ok(mut pending) = self.pending.lock() {
            if pending.len() > 4096 {
                // Connections the relay never claimed (the program gave up).
                pending.clear();
            }
            pending.insert(crate::net::sockaddr::normalize(local), origin);
        }
    }
}

trait MapV6 {
    fn map_v6(self) -> SocketAddr;
}

impl MapV6 for SocketAddr {
    /// An IPv4 address in v4-mapped IPv6 form, for an IPv6 socket.
    fn map_v6(self) -> SocketAddr {
        match self {
            SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            v6 => v6,
        }
    }
}

struct Shared {
    rules: Rules,
    refuse: bool,
    reporter: Arc<Reporter>,
    pending: Pending,
    /// `--dns proxy`: the resolver, whose fake addresses in a request mean a
    /// name resolved locally.
    names: Option<Names>,
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, peer)) = listener.accept().await else { continue };
        tokio::spawn(relay(client, peer, shared.clone()));
    }
}

async fn claim(shared: &Shared, peer: SocketAddr) -> Option<Origin> {
    let peer = crate::net::sockaddr::normalize(peer);
    let deadline = Instant::now() + REGISTER_WAIT;
    loop {
        if let Some(origin) = shared.pending.lock().ok()?.remove(&peer) {
            return Some(origin);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One proxied connection: handshake inspected, then bytes copied both ways.
async fn relay(mut client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    // Only connections the supervisor registered are relayed.
    let Some(origin) = claim(&shared, peer).await else { return };
    let Ok(mut upstream) = TcpStream::connect(origin.proxy).await else { return };
    let mut session =
        Session { client: &mut client, upstream: &mut upstream, buf: Vec::new(), shared: &shared, origin };
    let mut go_on = session.negotiate().await;
    // A handshake inside the tunnel just granted (the proxy asked to connect to itself, or to
    // another proxy) is read by the same rules, as deep as it goes.
    while go_on {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, session.nested()).await {
            Ok(Ok(true)) => go_on = session.negotiate().await,
            Ok(Ok(false)) => break,
            Ok(Err(_)) | Err(_) => return,
        }
    }
    let leftover = std::mem::take(&mut session.buf);
    if !go_on {
        return;
    }
    if !leftover.is_empty() && upstream.write_all(&leftover).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

struct Session<'a> {
    client: &'a mut TcpStream,
    upstream: &'a mut TcpStream,
    /// Bytes read from the program and not yet passed on.
    buf: Vec<u8>,
    shared: &'a Shared,
    origin: Origin,
}

/// Where a step of the handshake leaves the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Copy both ways from now on.
    Copy,
    /// The request went to the proxy: its answer decides (a refused request
    /// ends the connection, as the protocol has it: a proxy that read on
    /// would read unseen requests).
    AwaitReply(Version),
    /// Close both sides: refused, ended by the proxy, or not to be followed.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Socks4,
    Socks5,
}

impl Session<'_> {
    /// One handshake, up to the proxy's answer to its request: whether to copy on.
    async fn negotiate(&mut self) -> bool {
        let then = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake()).await.unwrap_or(Ok(Then::Stop));
        match then {
            Ok(Then::Copy) => true,
            Ok(Then::AwaitReply(version)) => {
                let granted = tokio::time::timeout(REPLY_TIMEOUT, self.granted(version)).await;
                matches!(granted, Ok(Ok(Then::Copy)))
            }
            Ok(Then::Stop) | Err(_) => false,
        }
    }

    /// Whether the program's first bytes in the tunnel open another SOCKS handshake. Decided
    /// as soon as the bytes tell, or when the far side speaks first (no SOCKS server does),
    /// or when the program sends nothing more.
    async fn nested(&mut self) -> std::io::Result<bool> {
        loop {
            if let Some(opens) = parse::opens_socks(&self.buf) {
                return Ok(opens);
            }
            let (mut chunk, mut far) = ([0u8; 1024], [0u8; 1]);
            let read = tokio::select! {
                read = self.client.read(&mut chunk) => read?,
                // A real peek (readiness alone may be left over from the reply's read).
                peeked = self.upstream.peek(&mut far), if self.buf.is_empty() => {
                    peeked?;
                    return Ok(false);
                }
            };
            if read == 0 {
                return Ok(false);
            }
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }

    /// Reads from the program until `parse` has a whole message; returns it
    /// with its bytes (taken out of the buffer). `None`: not this protocol,
    /// or longer than any handshake message.
    async fn next<T>(&mut self, parse: impl Fn(&[u8]) -> Parsed<T>) -> std::io::Result<Option<(T, Vec<u8>)>> {
        loop {
            match parse(&self.buf) {
                Parsed::Done(value, used) => return Ok(Some((value, self.buf.drain(..used).collect()))),
                Parsed::Invalid => return Ok(None),
                Parsed::Incomplete if self.buf.len() > MAX_MESSAGE => return Ok(None),
                Parsed::Incomplete => self.fill().await?,
            }
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 1024];
        let n = self.client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Passes a reply of `len` bytes from the proxy to the program.
    async fn reply(&mut self, len: usize) -> std::io::Result<Vec<u8>> {
        let mut reply = vec![0u8; len];
        self.upstream.read_exact(&mut reply).await?;
        self.client.write_all(&reply).await?;
        Ok(reply)
    }

    async fn handshake(&mut self) -> std::io::Result<Then> {
        while self.buf.is_empty() {
            self.fill().await?;
        }
        match self.buf[0] {
            4 => self.socks4().await,
            5 => self.socks5().await,
            // Not SOCKS (HTTP CONNECT to a mixed port, TLS, anything): nothing to read it by.
            _ => Ok(self.uninspectable(parse::other_protocol(&self.buf))),
        }
    }

    /// A connection the relay cannot follow: refused, or under `--on-leak
    /// log` reported and passed on unread (as log passes every leak).
    fn uninspectable(&self, protocol: &str) -> Then {
        match self.flag(Reason::SocksUninspectable, None, protocol) {
            true => Then::Stop,
            false => Then::Copy,
        }
    }

    async fn socks4(&mut self) -> std::io::Result<Then> {
        let Some((request, bytes)) = self.next(parse::socks4).await? else {
            return Ok(self.uninspectable("socks4"));
        };
        if let Some(reason) = findings::socks4(&self.shared.rules, &request) {
            if self.flag(reason, Some(&request.asked), "socks4") {
                // SOCKS4 "request rejected or failed".
                self.client.write_all(&[0, 91, 0, 0, 0, 0, 0, 0]).await?;
                return Ok(Then::Stop);
            }
        }
        self.upstream.write_all(&bytes).await?;
        Ok(Then::AwaitReply(Version::Socks4))
    }

    async fn socks5(&mut self) -> std::io::Result<Then> {
        let Some((methods, bytes)) = self.next(parse::socks5_greeting).await? else {
            return Ok(self.uninspectable("socks5"));
        };
        let greeted = findings::greeting(&self.shared.rules, &methods);
        if let Some(reason) = greeted {
            if self.flag(reason, None, "socks5") {
                self.client.write_all(&[5, 0xff]).await?;
                return Ok(Then::Stop);
            }
        }
        self.upstream.write_all(&bytes).await?;
        // What the connection carries is the method the proxy chose, not the ones offered.
        let method = self.reply(2).await?[1];
        let no_auth_finding = match findings::chosen(&self.shared.rules, method) {
            Chosen::End => return Ok(Then::Stop),
            Chosen::Uninspectable => return Ok(self.uninspectable("socks5")),
            // Already reported with the greeting (`--on-leak log`): once is enough.
            Chosen::Request(finding) => finding.filter(|&reason| Some(reason) != greeted),
            Chosen::Credentials => {
                let Some((sent, bytes)) = self.next(parse::socks5_auth).await? else {
                    return Ok(self.uninspectable("socks5"));
                };
                if let Some(reason) = findings::userpass(&self.shared.rules, &sent) {
                    if self.flag(reason, None, "socks5") {
                        self.client.write_all(&[1, 1]).await?;
                        return Ok(Then::Stop);
                    }
                }
                self.upstream.write_all(&bytes).await?;
                if self.reply(2).await?[1] != 0 {
                    // Authentication failed: RFC 1929 has the client close; a proxy that
                    // read on would read what the relay no longer follows.
                    return Ok(Then::Stop);
                }
                None
            }
        };
        let Some((asked, bytes)) = self.next(parse::socks5_request).await? else {
            return Ok(self.uninspectable("socks5"));
        };
        let command = bytes.get(1).copied().unwrap_or(0);
        let resolved =
            Resolved { recently: self.resolved_recently(), fake_address: self.fake_address(&asked) };
        for finding in [no_auth_finding, findings::request(&asked, command, resolved)].into_iter().flatten() {
            if self.flag(finding, Some(&asked), "socks5") {
                // "connection not allowed by ruleset".
                self.client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                return Ok(Then::Stop);
            }
        }
        self.upstream.write_all(&bytes).await?;
        Ok(Then::AwaitReply(Version::Socks5))
    }

    /// The proxy's answer to the request, passed to the program: copy on if
    /// it granted it, else stop.
    async fn granted(&mut self, version: Version) -> std::io::Result<Then> {
        if version == Version::Socks4 {
            let granted = self.reply(8).await?[1] == parse::SOCKS4_GRANTED;
            return Ok(if granted { Then::Copy } else { Then::Stop });
        }
        let mut head = [0u8; 5];
        self.upstream.read_exact(&mut head).await?;
        let Some(len) = parse::socks5_reply_len(head) else {
            self.client.write_all(&head).await?;
            return Ok(self.uninspectable("socks5"));
        };
        // Passed on whole, in one write, as the proxy most likely sent it: a client that reads
        // the reply with a short `recv` must not find half of it in its first data.
        let mut reply = head.to_vec();
        reply.resize(len, 0);
        self.upstream.read_exact(&mut reply[head.len()..]).await?;
        self.client.write_all(&reply).await?;
        Ok(if head[1] == 0 { Then::Copy } else { Then::Stop })
    }

    /// Whether this process made a DNS query just before.
    fn resolved_recently(&self) -> bool {
        let last_dns = self.origin.dns_seen.lock().ok().and_then(|seen| seen.get(&self.origin.pid).copied());
        last_dns.is_some_and(|t| t.elapsed() < RESOLVED_RECENTLY)
    }

    /// Whether `asked` is one of the `--dns proxy` resolver's fake addresses.
    fn fake_address(&self, asked: &Asked) -> bool {
        match (asked, &self.shared.names) {
            (Asked::Address(addr), Some(names)) => names.in_fake_pool(addr.ip()),
            _ => false,
        }
    }

    /// Reports a finding; whether to refuse the handshake.
    fn flag(&self, reason: Reason, asked: Option<&Asked>, protocol: &str) -> bool {
        let refuse = self.shared.refuse;
        let action = if refuse { Action::Blocked } else { Action::Logged };
        let origin = &self.origin;
        let mut event =
            Event::new("socks", origin.tid, Decision::leak(reason), action).with_process(origin.info.clone());
        event.fd = Some(origin.fd);
        event.cookie = origin.cookie;
        event.protocol = Some(protocol.to_owned());
        event.dst = Some(match asked {
            Some(Asked::Address(addr)) => addr.to_string(),
            Some(Asked::Name(name, port)) => format!("{name}:{port}"),
            None => origin.proxy.to_string(),
        });
        if refuse {
            // The program's SOCKS client sees the proxy refuse.
            event.errno = Some(libc::ECONNREFUSED);
        }
        self.shared.reporter.emit(event);
        refuse
    }
}
