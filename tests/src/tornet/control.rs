//! Talking to the Tor client: its control port (commands, STREAM events) and
//! its SOCKS port's RESOLVE extension.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A control port connection (the test network's control port needs no
/// authentication beyond `AUTHENTICATE`).
pub struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut control = Control { reader: BufReader::new(stream.try_clone()?), writer: stream };
        control.command("AUTHENTICATE")?;
        Ok(control)
    }

    /// Sends one command; returns the reply's lines, or an error for a
    /// reply other than 250.
    pub fn command(&mut self, command: &str) -> std::io::Result<Vec<String>> {
        self.writer.write_all(format!("{command}\r\n").as_bytes())?;
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            if line.starts_with("650") {
                continue;
            }
            let done = line.len() >= 4 && &line[3..4] == " ";
            lines.push(line);
            if done {
                break;
            }
        }
        match lines.last() {
            Some(last) if last.starts_with("250") => Ok(lines),
            _ => Err(std::io::Error::other(format!("{command}: {lines:?}"))),
        }
    }

    /// `GETINFO key`: the value, one line or several.
    pub fn getinfo(&mut self, key: &str) -> std::io::Result<String> {
        let lines = self.command(&format!("GETINFO {key}"))?;
        let body: Vec<&str> = lines
            .iter()
            .filter(|l| l.as_str() != "250 OK" && l.as_str() != ".")
            .map(|l| l.get(4..).unwrap_or(""))
            .map(|l| l.strip_prefix(&format!("{key}=")).unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        Ok(body.join("\n"))
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_string())
    }

    /// Subscribes to `SETEVENTS STREAM` and collects the events in a
    /// background thread until the returned [`StreamEvents`] is dropped.
    pub fn stream_events(mut self) -> std::io::Result<StreamEvents> {
        self.command("SETEVENTS STREAM")?;
        self.writer.set_read_timeout(Some(Duration::from_millis(100)))?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let shutdown = self.writer.try_clone()?;
        let thread = std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match self.reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(_) => break,
                }
                while let Some(at) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=at).collect();
                    let line = String::from_utf8_lossy(&line).trim_end().to_string();
                    if let Some(event) = StreamEvent::parse(&line) {
                        seen.lock().unwrap().push(event);
                    }
                }
            }
        });
        Ok(StreamEvents { events, shutdown, thread: Some(thread) })
    }
}

/// One `650 STREAM` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub stream: String,
    pub status: String,
    /// The circuit ("0" while unattached).
    pub circuit: String,
    /// "127.0.0.2:8080", or "name:port".
    pub target: String,
    /// The SOCKS username the stream came with, when it had one.
    pub username: Option<String>,
}

impl StreamEvent {
    /// "650 STREAM 12 SUCCEEDED 5 127.0.0.2:80 SOCKS_USERNAME=\"u\" ...".
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("650 STREAM ")?;
        let mut words = rest.split(' ');
        let (stream, status, circuit, target) = (words.next()?, words.next()?, words.next()?, words.next()?);
        let username = rest
            .split(' ')
            .find_map(|w| w.strip_prefix("SOCKS_USERNAME="))
            .map(|u| u.trim_matches('"').to_string());
        Some(StreamEvent {
            stream: stream.into(),
            status: status.into(),
            circuit: circuit.into(),
            target: target.into(),
            username,
        })
    }
}

/// STREAM events collected in the background.
pub struct StreamEvents {
    events: Arc<Mutex<Vec<StreamEvent>>>,
    shutdown: TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StreamEvents {
    pub fn all(&self) -> Vec<StreamEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The circuits of the streams to `target` that succeeded, in order.
    pub fn succeeded_circuits(&self, target: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|e| e.status == "SUCCEEDED" && e.target == target)
            .map(|e| e.circuit)
            .collect()
    }
}

impl Drop for StreamEvents {
    fn drop(&mut self) {
        let _ = self.shutdown.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A SOCKS5 CONNECT to `target` through the proxy at `socks`: `Ok` once the
/// proxy says it is connected, or the SOCKS reply code of a refusal (`Err(0)`
/// for an I/O failure).
pub fn socks_connect(socks: SocketAddr, target: std::net::SocketAddrV4) -> Result<(), u8> {
    let io = |_| 0u8;
    let mut s = TcpStream::connect_timeout(&socks, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(20))).map_err(io)?;
    s.write_all(&[5, 1, 0]).map_err(io)?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method).map_err(io)?;
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&target.ip().octets());
    request.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&request).map_err(io)?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).map_err(io)?;
    if reply[1] == 0 {
        Ok(())
    } else {
        Err(reply[1])
    }
}

/// Tor's SOCKS RESOLVE (command 0xF0) of `name` through the proxy at
/// `socks`: the address, or the SOCKS reply code of a refusal (`Err(0)` for
/// an I/O failure).
pub fn socks_resolve(socks: SocketAddr, name: &str) -> Result<IpAddr, u8> {
    let io = |_| 0u8;
    let mut s = TcpStream::connect_timeout(&socks, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(20))).map_err(io)?;
    s.write_all(&[5, 1, 0]).map_err(io)?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method).map_err(io)?;
    let mut request = vec![5, 0xf0, 0, 3, name.len() as u8];
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(&[0, 0]);
    s.write_all(&request).map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).map_err(io)?;
    if head[1] != 0 {
        return Err(head[1]);
    }
    match head[3] {
        1 => {
            let mut a = [0u8; 6];
            s.read_exact(&mut a).map_err(io)?;
            Ok(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
        }
        4 => {
            let mut a = [0u8; 18];
            s.read_exact(&mut a).map_err(io)?;
            let octets: [u8; 16] = a[..16].try_into().expect("16 bytes");
            Ok(IpAddr::from(octets))
        }
        _ => Err(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_events() {
        let e = StreamEvent::parse(
            "650 STREAM 17 SUCCEEDED 9 127.0.0.2:4000 SOCKS_USERNAME=\"a1\" SOCKS_PASSWORD=\"b\"",
        )
        .unwrap();
        assert_eq!((e.stream.as_str(), e.status.as_str(), e.circuit.as_str()), ("17", "SUCCEEDED", "9"));
        assert_eq!(e.target, "127.0.0.2:4000");
        assert_eq!(e.username.as_deref(), Some("a1"));
        assert_eq!(StreamEvent::parse("650 CIRC 1 BUILT"), None);
    }
}
