//! `run --isolate-network`: the ways out besides the TCP forwarders to the
//! proxies: UDP to an allowed destination, the program's own listeners
//! reached from the host (judged by the real peer), and abstract unix sockets
//! (X11, D-Bus) bridged to the host's namespace.
//!
//! Ground truth from the other end: an echo server's reply, sinks that count
//! what arrives, a server's own log of the requests it served, an X server
//! and a D-Bus bus that answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockstrace_tests::netns::NetNs;
use sockstrace_tests::unpriv::as_root_and_nobody;
use sockstrace_tests::unpriv::NOBODY;
use sockstrace_tests::util::{settle, wait_until};
use sockstrace_tests::{is_root, skip, Outcome, Running, Trace, UdpSink};

const ISOLATE: &str = "--isolate-network";
/// The system's python3 (nobody can run it; one under root's home it could not).
const PYTHON: &str = "/usr/bin/python3";

/// Runs `argv` as nobody when `who` says so (servers the test starts for a
/// client that runs as nobody: a session bus admits its own user only).
fn command_as(who: &str, argv: &[&str]) -> Command {
    let mut cmd = if who == "nobody" {
        let mut c = Command::new("setpriv");
        c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups"]).args(argv);
        c
    } else {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..]);
        c
    };
    cmd.stdin(Stdio::null());
    cmd
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------- UDP

/// A UDP echo server on `host`:0 (a thread of the test): answers each
/// datagram with "echo:" and the datagram.
fn udp_echo(host: &str) -> SocketAddr {
    let s = UdpSocket::bind((host, 0)).expect("bind the echo server");
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from);
        }
    });
    addr
}

/// A python3 client: sends "ping" to the echo server and prints what comes
/// back, then sends "leak" to the sink (not allowed).
const UDP_CLIENT: &str = r#"
import socket, sys
echo = (sys.argv[1], int(sys.argv[2]))
sink = (sys.argv[3], int(sys.argv[4]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"ping", echo)
data, src = s.recvfrom(100)
print("reply", data.decode(), "from", "%s:%d" % src, flush=True)
try:
    s.sendto(b"leak", sink)
    print("sent to the sink", flush=True)
except OSError as e:
    print("sink refused", e.errno, flush=True)
"#;

/// `--allow ADDR:PORT` is forwarded for UDP: a python3 client under isolation
/// gets its echo back from a server on 127.0.0.2 in the host's namespace
/// (the reply comes from the address it sent to), as root and as nobody.
/// A destination that is not allowed gets nothing, even with the leak let
/// through (`--on-leak log`): the datagram stays in the program's namespace.
#[test]
fn udp_to_an_allowed_destination_is_forwarded_and_nothing_else_arrives() {
    let echo = udp_echo("127.0.0.2");
    let sink = UdpSink::bind("127.0.0.3");
    for (who, trace, _copies) in as_root_and_nobody() {
        let out = trace
            .opts([ISOLATE])
            .allow(&echo.to_string())
            .on_leak("log")
            .program([
                PYTHON,
                "-c",
                UDP_CLIENT,
                &echo.ip().to_string(),
                &echo.port().to_string(),
                &sink.host(),
                &sink.port(),
            ])
            .run();
        out.assert_isolated();
        out.assert_code(0);
        assert!(
            out.stdout.contains(&format!("reply echo:ping from {echo}")),
            "as {who}: no echo came back through the UDP forwarder\n{}",
            out.describe()
        );
        assert!(
            out.stdout.contains("sent to the sink"),
            "as {who}: the leak was not let through\n{}",
            out.describe()
        );
        settle();
        sink.assert_nothing_arrived(&format!("as {who}: a UDP destination that is not allowed, isolated"));
        assert!(
            out.events.iter().any(|e| e.is_leak() && e.s("dst") == sink.dst()),
            "as {who}: the datagram to the sink is not reported as a leak\n{}",
            out.describe()
        );
    }
}

// ---------------------------------------------------------------- inbound

/// A python3 HTTP server under sockstrace on `port` (all addresses).
fn http_server(trace: Trace, port: u16, opts: &[&str]) -> Running {
    trace
        .opts([ISOLATE])
        .opts(opts)
        .timeout(Duration::from_secs(60))
        .program([PYTHON, "-u", "-m", "http.server", &port.to_string()])
        .spawn()
}

/// One HTTP request to `dst` from `source` (when given: bound first); the
/// response, empty when the connection was closed or refused.
fn http_get(dst: SocketAddr, source: Option<SocketAddr>) -> String {
    let connect = || -> std::io::Result<TcpStream> {
        match source {
            None => TcpStream::connect_timeout(&dst, Duration::from_secs(5)),
            Some(src) => {
                let sock = RawTcp::bind(src)?;
                sock.connect(dst)?;
                Ok(sock.into())
            }
        }
    };
    let Ok(mut s) = connect() else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal bound, unconnected TCP socket (std cannot bind before connect).
struct RawTcp(std::os::fd::OwnedFd);

impl RawTcp {
    fn bind(src: SocketAddr) -> std::io::Result<RawTcp> {
        use std::os::fd::FromRawFd;
        let SocketAddr::V4(v4) = src else { return Err(std::io::Error::other("IPv4 only")) };
        // SAFETY: socket with integer arguments; the fd is ours.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: socket just returned this fd and nothing else owns it.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: bind with a live sockaddr_in of the right size.
        let r = unsafe {
            libc::bind(
                fd,
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RawTcp(owned))
    }

    fn connect(&self, dst: SocketAddr) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let SocketAddr::V4(v4) = dst else { return Err(std::io::Error::other("IPv4 only")) };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: connect with a live sockaddr_in of the right size.
        let r = unsafe {
            libc::connect(
                self.0.as_raw_fd(),
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl From<RawTcp> for TcpStream {
    fn from(s: RawTcp) -> TcpStream {
        TcpStream::from(s.0)
    }
}

/// Stops a server run and collects its outcome.
fn stop(run: Running) -> Outcome {
    run.signal(libc::SIGINT);
    run.wait()
}

/// With `--incoming allow`, a python3 http.server under isolation (listening
/// on all addresses) is reachable by curl from the host's namespace, as root
/// and as nobody; the server logs the real client address (the address its
/// accept returned), not the relay's.
#[test]
fn a_server_inside_is_reachable_from_the_host_with_incoming_allow() {
    for (who, trace, _copies) in as_root_and_nobody() {
        let port = sockstrace_tests::net::free_port();
        let run = http_server(trace, port, &["--incoming", "allow"]);
        let url = format!("http://127.0.0.1:{port}/");
        let mut body = String::new();
        let reached = wait_until(Duration::from_secs(15), || {
            let out = Command::new("curl").args(["-q", "-sS", "--max-time", "5", &url]).output();
            body = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            body.contains("Directory listing")
        });
        let described = run.describe();
        let out = stop(run);
        assert!(
            reached,
            "as {who}: curl from the host did not reach the server\n{described}\n{}",
            out.describe()
        );
        out.assert_isolated();
        assert!(
            out.stderr.contains("\"GET / HTTP/1.1\" 200") && out.stderr.contains("127.0.0.1 - - "),
            "as {who}: the server did not log the request from 127.0.0.1\n{}",
            out.describe()
        );
        assert!(
            !out.stderr.contains("127.78.0.1"),
            "as {who}: the server saw the relay's address\n{}",
            out.describe()
        );
    }
}

const LAN_HOST: &str = "10.231.71.1";
const LAN_ALLOWED: &str = "10.231.71.2";
const LAN_OTHER: &str = "10.231.71.3";

/// `--allow-incoming-from` judges the real peer of a relayed connection: on a
/// veth LAN the test makes, the allowed address gets the server's answer and
/// another address of the same LAN is refused and reported (the relay's own
/// address, loopback in the program's namespace, would have let it through).
/// As root and as nobody.
#[test]
fn allow_incoming_from_judges_the_real_peer_of_a_relayed_connection() {
    if !is_root() {
        skip!("the test LAN (network namespace, veth pair) needs root");
    }
    let ns = match NetNs::create(
        &[&format!("{LAN_HOST}/24")],
        &[&format!("{LAN_ALLOWED}/24"), &format!("{LAN_OTHER}/24")],
    ) {
        Ok(ns) => ns,
        Err(e) => skip!("test LAN: {e}"),
    };
    for (who, trace, _copies) in as_root_and_nobody() {
        let port = sockstrace_tests::net::free_port();
        let run = http_server(trace, port, &["--allow-incoming-from", &format!("{LAN_ALLOWED}/32")]);
        let dst: SocketAddr = format!("{LAN_HOST}:{port}").parse().unwrap();
        let get = |from: &str| {
            let src: SocketAddr = format!("{from}:0").parse().unwrap();
            ns.inside(move || http_get(dst, Some(src)))
        };
        let mut first = String::new();
        let reached = wait_until(Duration::from_secs(15), || {
            first = get(LAN_ALLOWED);
            first.contains("Directory listing")
        });
        let refused = get(LAN_OTHER);
        let again = get(LAN_ALLOWED);
        let described = run.describe();
        let out = stop(run);
        assert!(
            reached,
            "as {who}: the allowed peer did not reach the server\n{described}\n{}",
            out.describe()
        );
        out.assert_isolated();
        assert!(
            !refused.contains("HTTP/"),
            "as {who}: the refused peer got an answer: {refused}\n{}",
            out.describe()
        );
        assert!(
            again.contains("Directory listing"),
            "as {who}: the server stopped serving\n{}",
            out.describe()
        );
        assert!(
            !out.stderr.contains(&format!("{LAN_OTHER} - - ")),
            "as {who}: the server served the refused peer\n{}",
            out.describe()
        );
        let accepts = |ip: &str| {
            out.events
                .iter()
                .filter(|e| e.s("syscall").starts_with("accept") && e.s("dst").starts_with(&format!("{ip}:")))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(
            accepts(LAN_OTHER).iter().any(|e| e.is_leak() && e.s("reason") == "inbound-accept"),
            "as {who}: the refused peer is not reported by its own address\n{}",
            out.describe()
        );
        assert!(
            accepts(LAN_ALLOWED).iter().all(|e| e.is_allowed()) && !accepts(LAN_ALLOWED).is_empty(),
            "as {who}: the allowed peer is not reported as allowed by its own address\n{}",
            out.describe()
        );
    }
}

// ---------------------------------------------------------------- abstract unix sockets

/// Xvfb on a free display, listening on the abstract name only: its path
/// socket is removed once it listens. Killed on drop.
struct Xvfb {
    child: Child,
    display: u32,
}

impl Xvfb {
    fn start() -> Result<Xvfb, String> {
        if !have("Xvfb") || !have("xdpyinfo") {
            return Err("Xvfb or xdpyinfo is not installed (apt: xvfb, x11-utils)".into());
        }
        let display = (100..400)
            .map(|n| n + std::process::id() % 300)
            .find(|n| {
                !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .ok_or("no free display")?;
        let child = Command::new("Xvfb")
            // -noreset: a server reset (its last client gone) would make the path socket again.
            .args([&format!(":{display}"), "-nolisten", "tcp", "-noreset", "-screen", "0", "640x480x24"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("Xvfb: {e}"))?;
        let x = Xvfb { child, display };
        // Both sockets listen once a client is served (the path one is made after the abstract one).
        let served = || {
            Command::new("xdpyinfo")
                .args(["-display", &x.display()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !wait_until(Duration::from_secs(10), served) {
            return Err(format!("Xvfb {} does not serve", x.display()));
        }
        let path = x.path();
        std::fs::remove_file(&path).map_err(|e| format!("removing {path}: {e}"))?;
        Ok(x)
    }

    fn abstract_name(&self) -> String {
        format!("/tmp/.X11-unix/X{}", self.display)
    }

    fn display(&self) -> String {
        format!(":{}", self.display)
    }

    fn path(&self) -> String {
        format!("/tmp/.X11-unix/X{}", self.display)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.display));
        let _ = std::fs::remove_file(self.path());
    }
}

/// X11 over the abstract socket: with `DISPLAY` naming an X server that
/// listens on its abstract name only, `xdpyinfo` under isolation talks to it
/// through the bridge (as root and as nobody); given the display on its
/// command line instead (no `DISPLAY`, so nothing is bridged) it cannot.
/// `--bridge-abstract` bridges a name explicitly.
#[test]
fn x11_on_an_abstract_socket_is_bridged_from_display() {
    let x = match Xvfb::start() {
        Ok(x) => x,
        Err(e) => skip!("{e}"),
    };
    let outside = Command::new("xdpyinfo").args(["-display", &x.display()]).output().expect("xdpyinfo");
    assert!(outside.status.success(), "xdpyinfo does not reach Xvfb from the host: {outside:?}");
    assert!(!std::path::Path::new(&x.path()).exists(), "the X server's path socket is still there");
    for (who, trace, _copies) in as_root_and_nobody() {
        let out = trace.opts([ISOLATE]).env("DISPLAY", x.display()).program(["xdpyinfo"]).run();
        out.assert_isolated();
        out.assert_code(0);
        assert!(
            out.stdout.contains(&format!("name of display:    {}", x.display())),
            "as {who}: xdpyinfo did not talk to the X server\n{}",
            out.describe()
        );
        assert!(out.stderr.contains(&format!("unix:@{}", x.abstract_name())), "{}", out.describe());
    }
    let without = Trace::new()
        .opts([ISOLATE])
        .env_remove("DISPLAY")
        .program(["xdpyinfo", "-display", &x.display()])
        .run();
    without.assert_isolated();
    assert_ne!(without.code(), 0, "xdpyinfo reached the X server without the bridge\n{}", without.describe());
    let explicit = Trace::new()
        .opts([ISOLATE, "--bridge-abstract", &format!("@{}", x.abstract_name())])
        .env_remove("DISPLAY")
        .program(["xdpyinfo", "-display", &x.display()])
        .run();
    explicit.assert_code(0);
}

/// A dbus-daemon on an abstract address only, killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start(who: &str) -> Result<Bus, String> {
        if !have("dbus-daemon") || !have("dbus-send") {
            return Err("dbus-daemon or dbus-send is not installed (apt: dbus)".into());
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let address = format!("unix:abstract=/tmp/sockstrace-test-bus-{}-{n}", std::process::id());
        let child =
            command_as(who, &["dbus-daemon", "--session", "--nofork", &format!("--address={address}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("dbus-daemon: {e}"))?;
        let bus = Bus { child, address };
        let name = format!("@{}", bus.address.trim_start_matches("unix:abstract="));
        let listening =
            || std::fs::read_to_string("/proc/net/unix").is_ok_and(|t| t.lines().any(|l| l.ends_with(&name)));
        if !wait_until(Duration::from_secs(10), listening) {
            return Err(format!("dbus-daemon did not listen on {name}"));
        }
        Ok(bus)
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const GET_ID: [&str; 4] =
    ["--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId"];

/// D-Bus on an abstract address: with `DBUS_SESSION_BUS_ADDRESS` naming a
/// bus that listens on an abstract name, `dbus-send --session` under
/// isolation gets the bus's answer through the bridge (as root and as
/// nobody, each with a bus of its own user: a session bus admits its owner);
/// the same address given on the command line only (nothing bridged) is not
/// found.
#[test]
fn a_dbus_bus_on_an_abstract_address_is_bridged_from_the_environment() {
    for (who, trace, _copies) in as_root_and_nobody() {
        let bus = match Bus::start(who) {
            Ok(b) => b,
            Err(e) => skip!("{e}"),
        };
        let mut argv = vec!["dbus-send", "--session"];
        argv.extend(GET_ID);
        let out = trace.opts([ISOLATE]).env("DBUS_SESSION_BUS_ADDRESS", &bus.address).program(&argv).run();
        out.assert_isolated();
        out.assert_code(0);
        assert!(
            out.stdout.contains("method return") && out.stdout.contains("string \""),
            "as {who}: the bus did not answer through the bridge\n{}",
            out.describe()
        );
        let bus_arg = format!("--bus={}", bus.address);
        let mut argv = vec!["dbus-send", bus_arg.as_str()];
        argv.extend(GET_ID);
        let without = Trace::new()
            .opts([ISOLATE])
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .program(&argv)
            .run();
        assert_ne!(
            without.code(),
            0,
            "as {who}: the bus was reached without the bridge\n{}",
            without.describe()
        );
    }
}
