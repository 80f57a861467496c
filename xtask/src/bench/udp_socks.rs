//! The UDP-through-the-proxy row: datagram round trips and send rate to an echo server on
//! loopback, direct and under `sockstrace run --on-leak socksify` through Dante's UDP relay
//! (as root: the relay needs the kernel layer). Uses `tests/clients/udp_socks_probe.c`.

use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::fixture::{bench_dir, die_with_parent};
use crate::cmd;

const ROUND_TRIPS: &str = "2000";
const SENDS: &str = "20000";

/// Round trip and send cost, direct and through the relay.
pub struct UdpSocks {
    pub rtt_direct_us: f64,
    pub rtt_relay_us: f64,
    pub send_direct_us: f64,
    pub send_relay_us: f64,
}

impl UdpSocks {
    pub fn line(&self) -> String {
        format!(
            "udp via SOCKS5 relay (danted): round trip {:.1} us vs {:.1} us direct (+{:.1} us); send {:.1} us vs {:.1} us direct ({:.0} vs {:.0} datagrams/s)",
            self.rtt_relay_us,
            self.rtt_direct_us,
            self.rtt_relay_us - self.rtt_direct_us,
            self.send_relay_us,
            self.send_direct_us,
            1e6 / self.send_relay_us,
            1e6 / self.send_direct_us,
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "rtt_direct_us": self.rtt_direct_us, "rtt_relay_us": self.rtt_relay_us,
            "send_direct_us": self.send_direct_us, "send_relay_us": self.send_relay_us,
        })
    }
}

/// Measures the row.
pub fn measure(sockstrace: &Path) -> Result<UdpSocks> {
    let dir = bench_dir()?;
    let probe = dir.join("udp_socks_probe");
    let source = cmd::workspace_root().join("tests").join("clients").join("udp_socks_probe.c");
    cmd::run(Command::new("gcc").args(["-O2", "-Wall", "-Wextra", "-o"]).arg(&probe).arg(&source))?;
    let echo = UdpSocket::bind("127.0.0.2:0").context("binding the echo server")?;
    let port = echo.local_addr()?.port().to_string();
    echo.set_read_timeout(Some(Duration::from_millis(200)))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let echoing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        })
    };
    let result = (|| {
        let proxy_port = free_port()?;
        let conf = dir.join("danted.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: stderr\ninternal: 127.0.0.1 port = {proxy_port}\nexternal: 127.0.0.3\n\
                 socksmethod: none\nclientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
                 client pass {{\n from: 127.0.0.0/8 to: 0/0\n}}\n\
                 socks pass {{\n from: 0/0 to: 0/0\n command: connect udpassociate udpreply\n}}\n"
            ),
        )?;
        let mut danted = Command::new("danted");
        danted.arg("-f").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child =
            die_with_parent(&mut danted).spawn().context("starting danted (`cargo xtask setup`)")?;
        let proxy = format!("127.0.0.1:{proxy_port}");
        let listening = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect(&proxy).is_ok()
        });
        let run = |mode: &str, count: &str, relay: bool| -> Result<f64> {
            let mut command = if relay {
                let mut c = Command::new(sockstrace);
                c.args(["run", "--proxy", &proxy, "--on-leak", "socksify", "--"]);
                c.arg(&probe);
                c
            } else {
                Command::new(&probe)
            };
            command.args([mode, count, "127.0.0.2", &port]).stderr(Stdio::null());
            let out = command.output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let ns: f64 = text.split_whitespace().nth(1).and_then(|n| n.parse().ok()).context("no timing")?;
            Ok(ns / 1000.0)
        };
        let measured = if listening {
            Ok(UdpSocks {
                rtt_direct_us: run("rtt", ROUND_TRIPS, false)?,
                rtt_relay_us: run("rtt", ROUND_TRIPS, true)?,
                send_direct_us: run("flood", SENDS, false)?,
                send_relay_us: run("flood", SENDS, true)?,
            })
        } else {
            Err(anyhow::anyhow!("danted did not listen on {proxy}"))
        };
        let _ = child.kill();
        let _ = child.wait();
        measured
    })();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = echoing.join();
    result
}

fn free_port() -> Result<u16> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    if port == 0 {
        bail!("no free port");
    }
    Ok(port)
}
