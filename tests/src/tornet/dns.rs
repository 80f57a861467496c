//! The resolver of the private Tor network's exit: a small DNS server on a
//! loopback UDP port that knows a fixed table of names (A and PTR), answers
//! NXDOMAIN for anything else, and records every question it was asked.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
const RCODE_NXDOMAIN: u16 = 3;

/// A DNS server answering from `names`, until dropped.
pub struct TableDns {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TableDns {
    /// Serves `names` (lower case, no trailing dot) on 127.0.0.1:0.
    pub fn start(names: Vec<(String, Ipv4Addr)>) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (asked, stop) = (asked.clone(), stop.clone());
            std::thread::Builder::new().name("tornet-dns".into()).spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
                    let Some(query) = Query::parse(&buf[..n]) else { continue };
                    asked.lock().unwrap().push((query.name.clone(), query.qtype));
                    let _ = socket.send_to(&query.answer(&names), peer);
                }
            })?
        };
        Ok(TableDns { addr, asked, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every (name, query type) asked so far.
    pub fn asked(&self) -> Vec<(String, u16)> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for TableDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One question, as received.
struct Query<'a> {
    packet: &'a [u8],
    /// Where the question section ends.
    end: usize,
    /// Lower case, without the trailing dot.
    name: String,
    qtype: u16,
}

impl<'a> Query<'a> {
    fn parse(packet: &'a [u8]) -> Option<Self> {
        if packet.len() < 12 || packet[2] & 0x80 != 0 || u16::from_be_bytes([packet[4], packet[5]]) != 1 {
            return None;
        }
        let mut at = 12;
        let mut labels = Vec::new();
        loop {
            let len = usize::from(*packet.get(at)?);
            at += 1;
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_ascii_lowercase());
            at += len;
        }
        let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
        packet.get(at + 3)?;
        Some(Query { packet, end: at + 4, name: labels.join("."), qtype })
    }

    /// The answer from `names`: A and PTR records, NODATA for other types of
    /// a known name, NXDOMAIN for an unknown one.
    fn answer(&self, names: &[(String, Ipv4Addr)]) -> Vec<u8> {
        let by_name = names.iter().find(|(n, _)| *n == self.name).map(|(_, ip)| *ip);
        let by_addr = reverse_v4(&self.name).and_then(|ip| names.iter().find(|(_, a)| *a == ip));
        let rdata: Option<Vec<u8>> = match self.qtype {
            TYPE_A => by_name.map(|ip| ip.octets().to_vec()),
            TYPE_PTR => by_addr.map(|(n, _)| encode_name(n)),
            _ => None,
        };
        let known = by_name.is_some() || by_addr.is_some();
        let rd = u16::from_be_bytes([self.packet[2], self.packet[3]]) & 0x0100;
        let flags = 0x8000 | 0x0400 | rd | 0x0080 | if known { 0 } else { RCODE_NXDOMAIN };
        let mut out = Vec::with_capacity(self.end + 32);
        out.extend_from_slice(&self.packet[..2]);
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, u8::from(rdata.is_some()), 0, 0, 0, 0]);
        out.extend_from_slice(&self.packet[12..self.end]);
        if let Some(rdata) = rdata {
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&self.qtype.to_be_bytes());
            out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(&rdata);
        }
        out
    }
}

/// "2.0.0.127.in-addr.arpa" -> 127.0.0.2.
fn reverse_v4(name: &str) -> Option<Ipv4Addr> {
    let digits = name.strip_suffix(".in-addr.arpa")?;
    let mut octets: Vec<u8> = digits.split('.').map(|d| d.parse().ok()).collect::<Option<_>>()?;
    if octets.len() != 4 {
        return None;
    }
    octets.reverse();
    Some(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(encode_name(name));
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn answers_a_ptr_and_nxdomain() {
        let names = vec![("web.tor.test".to_string(), Ipv4Addr::new(127, 0, 0, 2))];
        let q = query("Web.Tor.Test", TYPE_A);
        let a = Query::parse(&q).unwrap().answer(&names);
        assert_eq!(&a[..4], &[0x12, 0x34, 0x85, 0x80]);
        assert_eq!(a[7], 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[127, 0, 0, 2]);

        let q = query("2.0.0.127.in-addr.arpa", TYPE_PTR);
        let a = Query::parse(&q).unwrap().answer(&names);
        assert!(a.ends_with(&encode_name("web.tor.test")));

        let q = query("nowhere.tor.test", TYPE_A);
        let a = Query::parse(&q).unwrap().answer(&names);
        assert_eq!(a[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(a[7], 0);
    }
}
