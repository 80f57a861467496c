//! A Dante SOCKS5 server on loopback that grants UDP ASSOCIATE, for the tests of UDP through
//! the proxy (`--on-leak socksify`).

/// The address Dante sends IPv4 datagrams from.
pub const PROXY_EXTERNAL_V4: &str = "127.0.0.3";

/// A Dante server on 127.0.0.1:PORT granting UDP ASSOCIATE to loopback clients.
pub struct Dante {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dante {
    pub const PATH: &'static str = "/usr/sbin/danted";

    pub fn start() -> Result<Dante, String> {
        if !crate::util::is_root() {
            return Err("needs root (the kernel layer shows replies from the original peer)".into());
        }
        if !std::path::Path::new(Self::PATH).exists() {
            return Err(format!("{} is not installed (cargo xtask setup installs dante-server)", Self::PATH));
        }
        let dir = tempfile::Builder::new().prefix("sockstrace-dante").tempdir().map_err(|e| e.to_string())?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = super::net::free_port();
            let conf = dir.path().join("danted.conf");
            std::fs::write(
                &conf,
                format!(
                    "logoutput: stderr\n\
                     internal: 127.0.0.1 port = {port}\n\
                     external: {PROXY_EXTERNAL_V4}\n\
                     external: ::1\n\
                     socksmethod: none\n\
                     clientmethod: none\n\
                     user.privileged: root\n\
                     user.unprivileged: nobody\n\
                     internal.socket.so_rcvbufforce: 8388608\n\
                     external.socket.so_rcvbufforce: 8388608\n\
                     client pass {{\n  from: 127.0.0.0/8 to: 0/0\n}}\n\
                     socks pass {{\n  from: 0/0 to: 0/0\n  command: connect udpassociate udpreply\n}}\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut child = std::process::Command::new(Self::PATH)
                .arg("-f")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path().join("danted.pid"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("starting danted: {e}"))?;
            let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if crate::util::wait_until(std::time::Duration::from_secs(5), || {
                std::net::TcpStream::connect(addr).is_ok()
            }) {
                return Ok(Dante { child, addr, _dir: dir });
            }
            let _ = child.kill();
            let _ = child.wait();
            last = format!("danted did not listen on {addr}");
        }
        Err(last)
    }
}

impl Drop for Dante {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
