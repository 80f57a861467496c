//! `tor-net` (run by `cargo xtask tor-net`): starts the private Tor network the tests use (three
//! directory authorities, an exit and a client on 127.0.0.1; `tests/src/tornet.rs`), prints how
//! to reach it, and keeps it running until Ctrl-C.
//!
//! The exit resolves only the names given with `--name NAME=IPV4` (default `web.tor.test` ->
//! 127.0.0.2) and serves 127.0.0.0/8 on the ports given with `--port` (default 80, 8000, 8080).

use std::net::Ipv4Addr;

use std::process::ExitCode;

use sockstrace_tests::tornet::TorNet;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tor-net: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let mut names: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = || args.clone().next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--name" => {
                let v = value()?;
                let (name, ip) = v.split_once('=').ok_or_else(|| format!("--name NAME=IPV4, not {v}"))?;
                names.push((name.to_string(), ip.parse().map_err(|e| format!("--name {v}: {e}"))?));
                args.next();
            }
            "--port" => {
                let v = value()?;
                ports.push(v.parse().map_err(|e| format!("--port {v}: {e}"))?);
                args.next();
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (tor-net [--name NAME=IPV4]... [--port PORT]...)"
                ))
            }
        }
    }
    if names.is_empty() {
        names.push(("web.tor.test".into(), Ipv4Addr::new(127, 0, 0, 2)));
    }
    if ports.is_empty() {
        ports = vec![80, 8000, 8080];
    }
    let borrowed: Vec<(&str, Ipv4Addr)> = names.iter().map(|(n, ip)| (n.as_str(), *ip)).collect();
    // Ctrl-C and SIGTERM are waited for below, not delivered: the network is dropped (killed and
    // removed) on the way out.
    let signals = block_signals();
    println!("tor-net: starting 3 authorities, an exit and a client on 127.0.0.1 ...");
    let net = TorNet::start(&borrowed, &ports).map_err(|e| e.to_string())?;
    println!("tor-net: bootstrapped in {:.1?}", net.bootstrap);
    println!("  SOCKS:        {}", net.socks());
    println!("  control port: {} (AUTHENTICATE with no secret)", net.control_addr());
    println!("  data and logs: {}", net.dir().display());
    for (name, ip) in &names {
        println!("  the exit resolves {name} -> {ip}");
    }
    println!("  the exit serves 127.0.0.0/8 on ports {ports:?}");
    println!("  try: python3 -m http.server {} --bind 127.0.0.2 &", ports[ports.len() - 1]);
    println!(
        "       sockstrace run --proxy {} -- curl --socks5-hostname {} http://{}:{}/",
        net.socks(),
        net.socks(),
        names[0].0,
        ports[ports.len() - 1]
    );
    println!("tor-net: running until Ctrl-C");
    wait_for(&signals);
    println!("tor-net: stopping");
    drop(net);
    Ok(())
}

/// Blocks SIGINT and SIGTERM in this thread, so that `sigwait` takes them. The tor processes
/// inherit the mask, so a Ctrl-C at the terminal (sent to the whole process group) leaves them to
/// the network's drop, which kills them and removes their directory.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) {
    let mut signal = 0;
    // SAFETY: `set` is a valid signal set and `signal` a valid out-pointer.
    unsafe { libc::sigwait(set, &mut signal) };
}
