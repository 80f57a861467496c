//! The resolver end to end, on loopback only: real UDP and TCP clients, a
//! fake Tor SOCKS server, Debian's microsocks and a DNS-over-TCP server.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::query::tests::query_bytes;
use super::{frame, Resolver, Upstream};

const WAIT: Duration = Duration::from_secs(10);

fn listen_addr() -> SocketAddr {
    "127.77.0.1:0".parse().unwrap()
}

async fn udp_exchange(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(query, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, from) =
        tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await.expect("a UDP reply").unwrap();
    assert_eq!(from, server);
    buf.truncate(len);
    buf
}

async fn tcp_exchange(server: SocketAddr, queries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut replies = Vec::new();
    for query in queries {
        frame::write(&mut stream, query).await.unwrap();
        let reply = tokio::time::timeout(WAIT, frame::read(&mut stream)).await.expect("a TCP reply").unwrap();
        replies.push(reply.expect("not closed"));
    }
    replies
}

fn addresses(reply: &[u8]) -> Vec<IpAddr> {
    Message::from_vec(reply)
        .unwrap()
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

fn rcode(reply: &[u8]) -> ResponseCode {
    Message::from_vec(reply).unwrap().response_code
}

#[tokio::test]
async fn fake_ip_over_udp_and_tcp() {
    let resolver = Resolver::start(listen_addr(), Upstream::FakeIp).await.unwrap();
    let server = resolver.local_addr();
    assert_eq!(server.ip(), "127.77.0.1".parse::<IpAddr>().unwrap());

    let a = udp_exchange(server, &query_bytes(1, "www.example.com.", RecordType::A, None)).await;
    let v4 = addresses(&a);
    assert_eq!(v4.len(), 1);
    assert!(super::pool::in_pool(v4[0]));
    let replies = tcp_exchange(
        server,
        &[
            query_bytes(2, "WWW.example.com.", RecordType::AAAA, Some(1232)),
            query_bytes(3, "www.example.com.", RecordType::HTTPS, None),
        ],
    )
    .await;
    let v6 = addresses(&replies[0]);
    assert!(super::pool::in_pool(v6[0]));
    assert!(Message::from_vec(&replies[0]).unwrap().edns.is_some());
    assert_eq!(rcode(&replies[1]), ResponseCode::NoError);
    assert!(addresses(&replies[1]).is_empty());

    assert_eq!(resolver.name_for(v4[0]).as_deref(), Some("www.example.com"));
    let names = resolver.names();
    let v6_addr = v6[0];
    let from_thread = std::thread::spawn(move || names.name_for(v6_addr)).join().unwrap();
    assert_eq!(from_thread.as_deref(), Some("www.example.com"));

    // Garbage does not stop the server; a malformed query gets FORMERR.
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [&b""[..], b"x", &[0xff; 40], &[0; 512]] {
        sender.send_to(junk, server).await.unwrap();
    }
    let mut cut = query_bytes(4, "example.org.", RecordType::A, None);
    cut.truncate(20);
    assert_eq!(rcode(&udp_exchange(server, &cut).await), ResponseCode::FormErr);
    let again = udp_exchange(server, &query_bytes(5, "www.example.com.", RecordType::A, None)).await;
    assert_eq!(addresses(&again), v4);

    let stats = resolver.stats();
    assert!(stats.answered.get("A").copied().unwrap_or(0) >= 2);
    assert_eq!(stats.answered.get("HTTPS"), Some(&1));
    assert!(stats.malformed >= 1);
    assert!(stats.lookups.iter().any(|l| l.name == "www.example.com" && l.qtype == "AAAA"));

    resolver.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(server).await.is_err(), "stopped resolvers close their listener");
}

/// A plain client outside our code: python3 builds the query by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_gets_a_pool_address() {
    let resolver = Resolver::start(listen_addr(), Upstream::FakeIp).await.unwrap();
    let server = resolver.local_addr();
    let script = r#"
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in "python.example.net".split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (host, port))
r = s.recv(512)
ident, flags, qd, an = struct.unpack(">HHHH", r[:8])
assert ident == 0x4242 and flags & 0x8000 and flags & 0xf == 0 and an == 1, (ident, flags, an)
print(socket.inet_ntoa(r[-4:]))
"#;
    let args = [script.to_owned(), server.ip().to_string(), server.port().to_string()];
    let output = tokio::task::spawn_blocking(move || Command::new("python3").arg("-c").args(args).output())
        .await
        .unwrap();
    let Ok(output) = output else {
        eprintln!("python3 not found: skipped");
        return;
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let ip: IpAddr = String::from_utf8(output.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(resolver.name_for(ip).as_deref(), Some("python.example.net"));
}

/// What the fake Tor saw.
#[derive(Default)]
struct TorLog {
    users: Vec<Vec<u8>>,
    requests: Vec<(u8, Vec<u8>)>,
}

/// A tiny Tor-speaking SOCKS5 server: username/password required, RESOLVE
/// and RESOLVE_PTR only; `nx.example` does not exist.
async fn fake_tor() -> (SocketAddr, Arc<Mutex<TorLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(TorLog::default()));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 2];
                s.read_exact(&mut head).await.unwrap();
                assert_eq!(head[0], 5);
                let mut methods = vec![0u8; usize::from(head[1])];
                s.read_exact(&mut methods).await.unwrap();
                assert!(methods.contains(&2), "offers username/password");
                s.write_all(&[5, 2]).await.unwrap();
                let mut auth = [0u8; 2];
                s.read_exact(&mut auth).await.unwrap();
                let mut user = vec![0u8; usize::from(auth[1])];
                s.read_exact(&mut user).await.unwrap();
                let plen = s.read_u8().await.unwrap();
                let mut pass = vec![0u8; usize::from(plen)];
                s.read_exact(&mut pass).await.unwrap();
                assert!(!user.is_empty() && !pass.is_empty());
                s.write_all(&[1, 0]).await.unwrap();
                let mut req = [0u8; 4];
                s.read_exact(&mut req).await.unwrap();
                let (cmd, atyp) = (req[1], req[3]);
                let target = match atyp {
                    3 => {
                        let len = s.read_u8().await.unwrap();
                        let mut name = vec![0u8; usize::from(len)];
                        s.read_exact(&mut name).await.unwrap();
                        name
                    }
                    1 => {
                        let mut ip = vec![0u8; 4];
                        s.read_exact(&mut ip).await.unwrap();
                        ip
                    }
                    _ => panic!("unexpected address type {atyp}"),
                };
                let _port = s.read_u16().await.unwrap();
                seen.lock().unwrap().users.push(user);
                seen.lock().unwrap().requests.push((cmd, target.clone()));
                let reply: Vec<u8> = match (cmd, atyp, target.as_slice()) {
                    (0xf0, 3, b"nx.example") => vec![5, 4, 0, 1, 0, 0, 0, 0, 0, 0],
                    (0xf0, 3, b"v6.example") => {
                        let mut r = vec![5, 0, 0, 4];
                        r.extend("2001:db8::5".parse::<std::net::Ipv6Addr>().unwrap().octets());
                        r.extend([0, 0]);
                        r
                    }
                    (0xf0, 3, _) => vec![5, 0, 0, 1, 192, 0, 2, 44, 0, 0],
                    (0xf1, 1, [192, 0, 2, 44]) => {
                        let mut r = vec![5, 0, 0, 3, 11];
                        r.extend(b"tor.example");
                        r.extend([0, 0]);
                        r
                    }
                    _ => vec![5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
                };
                s.write_all(&reply).await.unwrap();
            });
        }
    });
    (addr, log)
}

#[tokio::test]
async fn tor_resolve_through_a_fake_tor() {
    let (proxy, log) = fake_tor().await;
    let resolver = Resolver::start(listen_addr(), Upstream::TorResolve { proxy }).await.unwrap();
    let server = resolver.local_addr();

    let a = udp_exchange(server, &query_bytes(1, "Check.TorProject.org.", RecordType::A, None)).await;
    assert_eq!(addresses(&a), ["192.0.2.44".parse::<IpAddr>().unwrap()]);
    let aaaa = udp_exchange(server, &query_bytes(2, "check.torproject.org.", RecordType::AAAA, None)).await;
    assert_eq!(rcode(&aaaa), ResponseCode::NoError);
    assert!(addresses(&aaaa).is_empty(), "an IPv4 answer is NODATA for AAAA");
    let v6 = udp_exchange(server, &query_bytes(3, "v6.example.", RecordType::AAAA, None)).await;
    assert_eq!(addresses(&v6), ["2001:db8::5".parse::<IpAddr>().unwrap()]);
    let nx = udp_exchange(server, &query_bytes(4, "nx.example.", RecordType::A, None)).await;
    assert_eq!(rcode(&nx), ResponseCode::NXDomain);
    let ptr =
        tcp_exchange(server, &[query_bytes(5, "44.2.0.192.in-addr.arpa.", RecordType::PTR, None)]).await;
    let ptr = Message::from_vec(&ptr[0]).unwrap();
    assert!(matches!(&ptr.answers[0].data, RData::PTR(name) if name.0.to_ascii() == "tor.example."));
    let local = udp_exchange(server, &query_bytes(6, "localhost.", RecordType::A, None)).await;
    assert_eq!(addresses(&local), ["127.0.0.1".parse::<IpAddr>().unwrap()]);

    let log = log.lock().unwrap();
    assert_eq!(
        log.requests,
        [
            (0xf0, b"check.torproject.org".to_vec()),
            (0xf0, b"check.torproject.org".to_vec()),
            (0xf0, b"v6.example".to_vec()),
            (0xf0, b"nx.example".to_vec()),
            (0xf1, vec![192, 0, 2, 44]),
        ],
        "CMD 0xF0 with the domain, 0xF1 with the address; localhost never asked"
    );
    let mut users = log.users.clone();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), log.users.len(), "fresh credentials per query");
    let stats = resolver.stats();
    assert_eq!(stats.nxdomain, 1);
    assert!(stats.lookups.iter().any(|l| l.name == "check.torproject.org" && l.answer == "192.0.2.44"));
}

#[tokio::test]
async fn tor_resolve_failures_are_servfail() {
    // A proxy that closes every connection at once.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            drop(listener.accept().await.unwrap());
        }
    });
    let resolver = Resolver::start(listen_addr(), Upstream::TorResolve { proxy }).await.unwrap();
    let reply =
        udp_exchange(resolver.local_addr(), &query_bytes(1, "example.com.", RecordType::A, None)).await;
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    let stats = resolver.stats();
    assert_eq!(stats.failures, 1);
    assert!(stats.lookups[0].answer.starts_with("SERVFAIL: "), "{}", stats.lookups[0].answer);
}

/// A DNS-over-TCP server: A -> 192.0.2.7; TXT big.example -> 40 long TXT records.
async fn tcp_dns_server() -> (SocketAddr, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                while let Ok(Some(query)) = frame::read(&mut s).await {
                    *counter.lock().unwrap() += 1;
                    let query = Message::from_vec(&query).unwrap();
                    let mut reply = Message::new(query.id, MessageType::Response, OpCode::Query);
                    reply.metadata.recursion_desired = query.recursion_desired;
                    reply.metadata.recursion_available = true;
                    reply.add_queries(query.queries.clone());
                    let question: &Query = &query.queries[0];
                    let owner = question.name().clone();
                    match question.query_type() {
                        RecordType::A => {
                            reply.add_answer(Record::from_rdata(owner, 300, RData::A(A::new(192, 0, 2, 7))));
                        }
                        RecordType::TXT => {
                            for i in 0..40 {
                                let text = format!("{i:02}-{}", "x".repeat(40));
                                reply.add_answer(Record::from_rdata(
                                    owner.clone(),
                                    300,
                                    RData::TXT(TXT::new(vec![text])),
                                ));
                            }
                        }
                        _ => {}
                    }
                    frame::write(&mut s, &reply.to_vec().unwrap()).await.unwrap();
                }
            });
        }
    });
    (addr, count)
}

struct Microsocks(Child);

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn microsocks() -> Option<(Microsocks, SocketAddr)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("microsocks not installed: skipped");
        return None;
    };
    let guard = Microsocks(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Some((guard, addr));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("microsocks did not start on {addr}");
}

#[tokio::test]
async fn tcp_via_socks_through_microsocks() {
    let Some((_microsocks, proxy)) = microsocks().await else { return };
    let (upstream, count) = tcp_dns_server().await;
    let resolver =
        Resolver::start(listen_addr(), Upstream::TcpViaSocks { proxy, resolver: upstream }).await.unwrap();
    let server = resolver.local_addr();

    let a = udp_exchange(server, &query_bytes(0x77, "example.com.", RecordType::A, None)).await;
    assert_eq!(Message::from_vec(&a).unwrap().id, 0x77);
    assert_eq!(addresses(&a), ["192.0.2.7".parse::<IpAddr>().unwrap()]);

    // Over 512 bytes without EDNS: TC set, then the client's retry over TCP gets all.
    let big = query_bytes(0x78, "big.example.", RecordType::TXT, None);
    let cut = Message::from_vec(&udp_exchange(server, &big).await).unwrap();
    assert!(cut.truncation);
    assert!(cut.answers.is_empty());
    let full = tcp_exchange(server, std::slice::from_ref(&big)).await;
    let full = Message::from_vec(&full[0]).unwrap();
    assert!(!full.truncation);
    assert_eq!(full.answers.len(), 40);

    let again = tcp_exchange(server, &[query_bytes(0x79, "example.org.", RecordType::A, None)]).await;
    assert_eq!(addresses(&again[0]), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(*count.lock().unwrap(), 4, "every query reached the resolver through the proxy");
    let stats = resolver.stats();
    assert_eq!(stats.truncated, 1);
    assert_eq!(stats.answered.get("TXT"), Some(&2));
}

#[tokio::test]
async fn tcp_via_socks_with_the_resolver_down_is_servfail() {
    let Some((_microsocks, proxy)) = microsocks().await else { return };
    // A port nobody listens on.
    let down = std::net::TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap();
    let resolver =
        Resolver::start(listen_addr(), Upstream::TcpViaSocks { proxy, resolver: down }).await.unwrap();
    let reply =
        udp_exchange(resolver.local_addr(), &query_bytes(1, "example.com.", RecordType::A, None)).await;
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    assert_eq!(resolver.stats().failures, 1);
}

/// `dig` (dnsutils) if installed: EDNS with a cookie, UDP and TCP, reverse lookups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_if_installed() {
    let resolver = Resolver::start(listen_addr(), Upstream::FakeIp).await.unwrap();
    let server = resolver.local_addr();
    let dig = move |args: &[&str]| {
        let mut command = Command::new("dig");
        command.arg(format!("@{}", server.ip())).args([
            "-p",
            &server.port().to_string(),
            "+time=2",
            "+tries=1",
        ]);
        command.args(args);
        tokio::task::spawn_blocking(move || command.output())
    };
    let Ok(a) = dig(&["dig.example.com", "A", "+short"]).await.unwrap() else {
        eprintln!("dig not installed: skipped");
        return;
    };
    let a: IpAddr = String::from_utf8(a.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(resolver.name_for(a).as_deref(), Some("dig.example.com"));
    let aaaa = dig(&["dig.example.com", "AAAA", "+short", "+tcp"]).await.unwrap().unwrap();
    let aaaa: IpAddr = String::from_utf8(aaaa.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(resolver.name_for(aaaa).as_deref(), Some("dig.example.com"));
    let ptr = dig(&["-x", &a.to_string(), "+short"]).await.unwrap().unwrap();
    assert_eq!(String::from_utf8(ptr.stdout).unwrap().trim(), "dig.example.com.");
    let ptr6 = dig(&["-x", &aaaa.to_string(), "+short"]).await.unwrap().unwrap();
    assert_eq!(String::from_utf8(ptr6.stdout).unwrap().trim(), "dig.example.com.");
    let mx = dig(&["dig.example.com", "MX"]).await.unwrap().unwrap();
    let mx = String::from_utf8(mx.stdout).unwrap();
    assert!(mx.contains("status: NOERROR") && mx.contains("ANSWER: 0"), "{mx}");
}
