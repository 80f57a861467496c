//! Red team: the supervisor's copies of the program's memory are bounded per
//! call and in total, whatever the program sends (many threads blocked in
//! huge sends, a sendmmsg of a thousand datagrams, oversized control data).

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockstrace_tests::{client, TcpSink, Trace, UdpSink};

const T: Duration = Duration::from_secs(30);

/// A listener that accepts and never reads, so that senders block.
struct Stalled {
    addr: std::net::SocketAddr,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Stalled {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stalled listener");
        let addr = listener.local_addr().expect("local addr");
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().unwrap().push(conn);
            }
        });
        Stalled { addr, _held: held }
    }
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn many_threads_blocked_in_huge_sends_do_not_grow_the_supervisor() {
    // 24 threads, each blocked in a 16 MiB sendmsg on a connection whose peer
    // never reads: unbounded, the supervisor holds 24 copies (~390 MiB).
    let proxy = Stalled::bind();
    let attacker = client("attack_memory");
    let size = (16u64 << 20).to_string();
    let running = Trace::new()
        .proxy(proxy.addr)
        .program([
            attacker.to_str().unwrap(),
            "stream",
            "127.0.0.1",
            &proxy.addr.port().to_string(),
            "24",
            &size,
            "4",
        ])
        .timeout(T)
        .spawn();
    assert!(running.wait_stdout("ready", T), "attacker did not start\n{}", running.describe());
    // Give every thread time to be trapped, copied and blocked in its send.
    let mut peak = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(status_kib(running.pid(), "VmHWM:").unwrap_or(0));
    }
    let out = running.wait();
    eprintln!("supervisor peak RSS: {peak} KiB");
    assert!(peak > 0, "could not read the supervisor's VmHWM\n{}", out.describe());
    assert!(
        peak < 64 << 10,
        "supervisor peak RSS {peak} KiB with 24 threads in 16 MiB sends (bound: 64 MiB)\n{}",
        out.describe()
    );
    out.assert_no_leaks();
}

#[test]
fn a_thousand_datagram_sendmmsg_is_cut_not_copied_whole() {
    // 1024 datagrams of 60 KiB: 60 MiB in one call. The call sends a prefix
    // (sendmmsg may send fewer messages than asked) and the rest is the
    // caller's to retry.
    let sink = UdpSink::bind("127.0.0.1");
    let attacker = client("attack_memory");
    let out = Trace::new()
        .allow(&sink.dst())
        .program([attacker.to_str().unwrap(), "mmsg", &sink.host(), &sink.port(), "1024", "61440"])
        .timeout(T)
        .run();
    out.assert_code(0);
    let sent: usize = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("sendmmsg: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sendmmsg count\n{}", out.describe()));
    assert!((1..1024).contains(&sent), "sendmmsg sent {sent} of 1024 in one call\n{}", out.describe());
    assert!(sink.wait_datagrams(1, T), "no datagram arrived\n{}", out.describe());
    out.assert_no_leaks();
}

#[test]
fn control_data_past_the_kernels_limit_is_enobufs() {
    // More control data than net.core.optmem_max allows fails as in the
    // kernel, without the supervisor copying it.
    let optmem: usize = std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .expect("read optmem_max")
        .trim()
        .parse()
        .expect("parse optmem_max");
    let sink = UdpSink::bind("127.0.0.1");
    let attacker = client("attack_memory");
    let len = (optmem + 4096).to_string();
    let native =
        sockstrace_tests::direct([attacker.to_str().unwrap(), "control", &sink.host(), &sink.port(), &len]);
    let traced = Trace::new()
        .allow(&sink.dst())
        .program([attacker.to_str().unwrap(), "control", &sink.host(), &sink.port(), &len])
        .timeout(T)
        .run();
    assert!(native.stdout.contains("errno=105"), "natively: {}", native.stdout);
    assert!(
        traced.stdout.contains("errno=105"),
        "under sockstrace (ENOBUFS expected)\n{}",
        traced.describe()
    );
    sink.assert_nothing_arrived("oversized control data");
}

#[test]
fn a_stream_send_past_the_chunk_is_short_and_delivered() {
    // A program that loops on short sends (as stream programs must) still
    // delivers everything: 4 MiB in one sendmsg arrives whole.
    let proxy = TcpSink::bind("127.0.0.1");
    let attacker = client("attack_memory");
    let size = 4usize << 20;
    let out = Trace::new()
        .proxy(proxy.addr())
        .program([
            attacker.to_str().unwrap(),
            "stream",
            &proxy.host(),
            &proxy.port(),
            "1",
            &size.to_string(),
            "1",
        ])
        .timeout(T)
        .run();
    let sent: usize = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("sendmsg: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sendmsg result\n{}", out.describe()));
    assert!(sent > 0 && sent <= size, "sendmsg returned {sent}\n{}", out.describe());
    assert!(proxy.wait_bytes(sent, T), "the proxy did not get the {sent} bytes sent\n{}", out.describe());
    out.assert_no_leaks();
}
