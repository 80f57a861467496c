//! A private Tor network on loopback, in the manner of Tor's own chutney
//! test networks: three directory authorities, one exit and one client, all
//! on 127.0.0.1, bootstrapped by `TestingTorNetwork 1` in well under a
//! minute. Nothing in it asks the machine's resolver or any non-loopback
//! address: the exit resolves through [`dns::TableDns`] (a table of names
//! on a loopback port), and the tests ask it for loopback destinations only.
//!
//! [`TorNet::start`] generates the keys (`tor-gencert`, `tor
//! --list-fingerprint`), writes each torrc ([`torrc`]), starts the five tor
//! processes, and waits for the client's "Bootstrapped 100%", then for a
//! RESOLVE and a CONNECT (to a listener of its own) through the exit. Dropping the `TorNet` kills them and
//! removes the directory; they also die with the thread that started them
//! (`PR_SET_PDEATHSIG`) and with this process (`__OwningControllerProcess`).

pub mod control;
pub mod dns;
mod keys;
pub mod torrc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control::Control;
use dns::TableDns;
use torrc::{AuthorityId, Node, Role, Shared};

/// How long the network may take to bootstrap (it usually needs 15 to 30 s).
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(120);

const AUTHORITIES: usize = 3;

/// The tor binary, if installed.
pub fn tor_bin() -> Option<PathBuf> {
    find_bin("tor")
}

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A running private Tor network.
pub struct TorNet {
    children: Vec<(String, Child)>,
    socks: SocketAddr,
    control: SocketAddr,
    dns: TableDns,
    client_dir: PathBuf,
    /// How long the start took, up to a working RESOLVE through the exit.
    pub bootstrap: Duration,
    dir: tempfile::TempDir,
}

impl TorNet {
    /// Starts a network whose exit resolves `names` (and nothing else) and
    /// serves destinations on 127.0.0.0/8 whose port is in `exit_ports`.
    pub fn start(names: &[(&str, Ipv4Addr)], exit_ports: &[u16]) -> Result<TorNet, String> {
        let started = Instant::now();
        let tor = tor_bin().ok_or("tor is not installed (apt-get install tor)")?;
        let gencert = find_bin("tor-gencert").ok_or("tor-gencert is not installed (apt-get install tor)")?;
        let names: Vec<(String, Ipv4Addr)> =
            names.iter().map(|(n, ip)| (n.to_ascii_lowercase(), *ip)).collect();
        let probe = names.first().cloned().ok_or("at least one name for the exit's resolver")?;
        // A listener the exit connects to once the network carries streams.
        let probe_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let probe_addr = match probe_listener.local_addr().map_err(|e| e.to_string())? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err("127.0.0.1 bound as IPv6".into()),
        };
        let mut exit_ports = exit_ports.to_vec();
        exit_ports.push(probe_addr.port());
        let dns = TableDns::start(names).map_err(|e| format!("start the exit's resolver: {e}"))?;
        let dir =
            tempfile::Builder::new().prefix("sockstrace-tornet").tempdir().map_err(|e| e.to_string())?;
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, torrc::resolv_conf(dns.addr())).map_err(|e| e.to_string())?;
        let empty = dir.path().join("empty-torrc");
        std::fs::write(&empty, "").map_err(|e| e.to_string())?;

        let ports = free_ports(2 * (AUTHORITIES + 2))?;
        let mut nodes: Vec<Node> = (0..AUTHORITIES)
            .map(|i| Node {
                nick: format!("auth{i}"),
                role: Role::Authority,
                port: ports[2 * i],
                port2: ports[2 * i + 1],
            })
            .collect();
        let n = AUTHORITIES;
        nodes.push(Node {
            nick: "exit".into(),
            role: Role::Exit,
            port: ports[2 * n],
            port2: ports[2 * n + 1],
        });
        nodes.push(Node {
            nick: "client".into(),
            role: Role::Client,
            port: ports[2 * n + 2],
            port2: ports[2 * n + 3],
        });

        let relays: Vec<(&str, bool)> = nodes
            .iter()
            .filter(|n| n.role != Role::Client)
            .map(|n| (n.nick.as_str(), n.role == Role::Authority))
            .collect();
        let cache = keys::cache(&tor, &gencert, &relays)?;
        let mut authorities = Vec::new();
        let mut exit_fingerprint = String::new();
        for node in nodes.iter().filter(|n| n.role != Role::Client) {
            let identity =
                keys::install(&cache, &node.nick, &keys::private_dir(&dir.path().join(&node.nick))?)?;
            if node.role == Role::Exit {
                exit_fingerprint = identity.fingerprint.clone();
            }
            if let (Role::Authority, Some(v3ident)) = (node.role, identity.v3ident) {
                authorities.push(AuthorityId {
                    nick: node.nick.clone(),
                    or_port: node.port,
                    dir_port: node.port2,
                    v3ident,
                    fingerprint: identity.fingerprint,
                });
            }
        }
        let shared = Shared {
            authorities: &authorities,
            resolv_conf: &resolv_conf,
            empty: &empty,
            exit_ports: &exit_ports,
            exit_fingerprint: &exit_fingerprint,
            owner_pid: std::process::id(),
        };
        let mut net = TorNet {
            children: Vec::new(),
            socks: SocketAddr::from((Ipv4Addr::LOCALHOST, nodes[n + 1].port)),
            control: SocketAddr::from((Ipv4Addr::LOCALHOST, nodes[n + 1].port2)),
            dns,
            client_dir: dir.path().join("client"),
            bootstrap: Duration::ZERO,
            dir,
        };
        for node in &nodes {
            let node_dir = keys::private_dir(&net.dir.path().join(&node.nick))?;
            let torrc_path = node_dir.join("torrc");
            std::fs::write(&torrc_path, torrc::torrc(node, &node_dir, &shared)).map_err(|e| e.to_string())?;
            let stdout = std::fs::File::create(node_dir.join("stdout.log")).map_err(|e| e.to_string())?;
            let child =
                quiet(Command::new(&tor).arg("--defaults-torrc").arg(&empty).arg("-f").arg(&torrc_path))
                    .stdout(stdout)
                    .spawn()
                    .map_err(|e| format!("start tor ({}): {e}", node.nick))?;
            net.children.push((node.nick.clone(), child));
        }
        net.wait_bootstrapped(started + BOOTSTRAP_TIMEOUT)?;
        net.wait_resolves(&probe.0, probe.1, started + BOOTSTRAP_TIMEOUT)?;
        net.wait_connects(probe_addr, started + BOOTSTRAP_TIMEOUT)?;
        drop(probe_listener);
        net.bootstrap = started.elapsed();
        Ok(net)
    }

    /// The client's SOCKS port.
    pub fn socks(&self) -> SocketAddr {
        self.socks
    }

    /// The client's control port (no authentication needed).
    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    /// A new, authenticated control connection to the client.
    pub fn control(&self) -> Result<Control, String> {
        Control::connect(self.control).map_err(|e| format!("control port {}: {e}", self.control))
    }

    /// Every (name, query type) the exit's resolver was asked.
    pub fn dns_asked(&self) -> Vec<(String, u16)> {
        self.dns.asked()
    }

    /// The directory holding every node's data directory and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every node's notice log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (nick, _) in &self.children {
            let log =
                std::fs::read_to_string(self.dir.path().join(nick).join("notice.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- {nick} (last lines of notice.log) ---\n"));
            for line in &lines[lines.len().saturating_sub(12)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn check_alive(&mut self) -> Result<(), String> {
        let dir = self.dir.path().to_path_buf();
        for (nick, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join(&*nick).join("stdout.log")).unwrap_or_default();
                return Err(format!("tor ({nick}) exited: {status}\n{log}"));
            }
        }
        Ok(())
    }

    fn wait_bootstrapped(&mut self, deadline: Instant) -> Result<(), String> {
        let log = self.client_dir.join("notice.log");
        loop {
            self.check_alive()?;
            if std::fs::read_to_string(&log).unwrap_or_default().contains("Bootstrapped 100%") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the Tor client did not bootstrap within {BOOTSTRAP_TIMEOUT:?}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the client connects through the exit to `target`.
    fn wait_connects(&mut self, target: std::net::SocketAddrV4, deadline: Instant) -> Result<(), String> {
        loop {
            self.check_alive()?;
            let last = control::socks_connect(self.socks, target);
            if last.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("CONNECT {target} through the exit gave {last:?}\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until the client resolves `name` through the exit to `ip`.
    fn wait_resolves(&mut self, name: &str, ip: Ipv4Addr, deadline: Instant) -> Result<(), String> {
        loop {
            self.check_alive()?;
            let last = control::socks_resolve(self.socks, name);
            if last == Ok(IpAddr::V4(ip)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "RESOLVE {name} through the exit gave {last:?}, not {ip}; the resolver was asked {:?}\n{}",
                    self.dns.asked(),
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for TorNet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
        }
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// No stdin, stderr to /dev/null, and death with the thread that spawned it.
fn quiet(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    };
    cmd
}

/// `n` distinct TCP ports free on 127.0.0.1 a moment ago.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}
