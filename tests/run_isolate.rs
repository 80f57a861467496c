//! `run --isolate-network`: the program in a network namespace of its own,
//! where sockstrace's forwarders to the proxies (and allowed ADDR:PORT
//! destinations) are its only way out.
//!
//! Ground truth: sinks in the host's namespace (the test's). The central test
//! switches the syscall layer's own fences off (debug builds:
//! `SOCKSTRACE_TEST_DISABLE`), lets every judged call through (`--on-leak
//! log`) and the kernel layer off, shows that each attack reaches its sink
//! without isolation, then that with `--isolate-network` nothing arrives:
//! isolation alone holds.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use sockstrace_tests::apps::no_proxy_env;
use sockstrace_tests::unpriv::as_root_and_nobody;
use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::util::{settle, wait_until};
use sockstrace_tests::{client, is_root, skip, HttpServer, Microsocks, Outcome, Trace, UdpSink};

const ISOLATE: &str = "--isolate-network";
const FENCES_OFF: &str = "options,cmsg,family-check,landlock";
const TRIES: &str = "3000";

fn release_build() -> bool {
    sockstrace_tests::sockstrace_bin().components().any(|c| c.as_os_str() == "release")
}

#[test]
fn curl_through_microsocks_works_isolated() {
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    for (who, trace, _copies) in as_root_and_nobody() {
        let before = http.requests();
        let out = no_proxy_env(trace)
            .opts([ISOLATE])
            .proxy(ms.addr())
            .program([
                "curl",
                "-q",
                "-sS",
                "--max-time",
                "30",
                "--socks5-hostname",
                &ms.addr().to_string(),
                &http.url(),
            ])
            .run();
        out.assert_code(0);
        assert_eq!(out.stdout, http.body(), "as {who}\n{}", out.describe());
        assert_eq!(http.requests(), before + 1, "as {who}");
        out.assert_report_well_formed();
        out.assert_no_leaks();
        out.assert_isolated();
        assert!(
            out.events.iter().any(|e| e.is_allowed()
                && e.s("syscall") == "connect"
                && e.s("dst") == ms.addr().to_string()
                && e.s("reason") == "proxy"),
            "as {who}: no allowed proxy connect reported\n{}",
            out.describe()
        );
    }
}

#[test]
fn direct_connect_is_blocked_and_reported_isolated() {
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    for (who, trace, _copies) in as_root_and_nobody() {
        let out = no_proxy_env(trace)
            .opts([ISOLATE])
            .proxy(ms.addr())
            .program(["curl", "-q", "-sS", "--max-time", "30", "--noproxy", "*", &http.url()])
            .run();
        assert_ne!(out.code(), 0, "as {who}: curl must fail\n{}", out.describe());
        assert_eq!(http.accepts(), 0, "as {who}: the server saw a connection\n{}", out.describe());
        out.assert_report_well_formed();
        out.assert_isolated();
        let ev = out.the_event("direct connect leak", |e| e.is_leak() && e.s("syscall") == "connect");
        assert_eq!(ev.s("dst"), http.dst(), "as {who}: {ev}\n{}", out.describe());
        assert_eq!(ev.s("action"), "blocked", "as {who}: {ev}\n{}", out.describe());
    }
}

/// Socksify goes through the same forwarder: the program's direct connect is
/// connected to the proxy inside its namespace, and the handshake runs there.
#[test]
fn socksify_reaches_the_server_through_the_forwarder() {
    let ms = match Microsocks::start() {
        Ok(m) => m,
        Err(e) => skip!("microsocks: {e}"),
    };
    let http = HttpServer::bind("127.0.0.2");
    let out = no_proxy_env(Trace::new())
        .opts([ISOLATE])
        .proxy(ms.addr())
        .on_leak("socksify")
        .program(["curl", "-q", "-sS", "--max-time", "30", "--noproxy", "*", &http.url()])
        .run();
    out.assert_code(0);
    assert_eq!(out.stdout, http.body(), "{}", out.describe());
    let ev = out.the_event("socksified connect", |e| e.is_leak() && e.s("syscall") == "connect");
    assert_eq!(ev.s("action"), "socksified", "{ev}\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// Isolation alone holds: the syscall layer's fences off, every leak let through
// ---------------------------------------------------------------------------

/// One attack on a UDP sink at 127.0.0.2 in the host's namespace. (An IPv6
/// routing header needs the veth LAN of tests/redteam_routing.rs to show its
/// packet; inside the isolated namespace there is no device but lo to carry it.)
struct Attack {
    what: &'static str,
    argv: Vec<String>,
}

fn attacks(route: &Path, race: &Path, udp: &UdpSink) -> Vec<Attack> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let (r, x) = (route.to_str().unwrap(), race.to_str().unwrap());
    vec![
        Attack { what: "UDP sendmsg to 127.0.0.2", argv: s(&[r, "cmsg-ok", &udp.host(), &udp.port()]) },
        Attack {
            what: "SO_BINDTODEVICE lo, UDP sendto 127.0.0.2",
            argv: s(&[r, "bind-dev", "lo", &udp.host(), &udp.port(), "udp"]),
        },
        Attack {
            what: "fd swap under a unix sendto (the residual double race)",
            argv: s(&[x, "fd-swap-sendto", &udp.host(), &udp.port(), TRIES]),
        },
    ]
}

fn fences_off_trace(t: Trace) -> Trace {
    t.opts(["--kernel", "off"]).on_leak("log").env("SOCKSTRACE_TEST_DISABLE", FENCES_OFF)
}

fn isolation_alone_holds(who: &str, trace: impl Fn() -> Trace, route: &Path, race: &Path) {
    let udp = UdpSink::bind("127.0.0.2");
    for attack in attacks(route, race, &udp) {
        // Baseline: through the supervisor with its fences off, the attack arrives.
        let before = udp.datagrams();
        let base = fences_off_trace(trace()).program(&attack.argv).run();
        let got = wait_until(Duration::from_secs(5), || udp.datagrams() != before);
        assert!(got, "as {who}: baseline: {} reached no sink\n{}", attack.what, base.describe());
        // Isolated: nothing arrives.
        let before = udp.datagrams();
        let out = fences_off_trace(trace()).opts([ISOLATE]).program(&attack.argv).run();
        settle();
        out.assert_isolated();
        assert_eq!(
            udp.datagrams(),
            before,
            "as {who}: isolated: {} reached a sink in the host's namespace\n{}",
            attack.what,
            out.describe()
        );
    }
}

#[test]
fn with_the_fences_off_isolation_alone_holds() {
    if release_build() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    isolation_alone_holds("root", Trace::new, &client("attack_route"), &client("attack_race"));
}

#[test]
fn with_the_fences_off_isolation_alone_holds_as_nobody() {
    if release_build() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    if !is_root() {
        skip!("switching to nobody needs root");
    }
    let mut c = Copies::new();
    let route = c.add(&client("attack_route"), "attack_route");
    let race = c.add(&client("attack_race"), "attack_race");
    isolation_alone_holds("nobody", || c.as_nobody(), &route, &race);
}

// ---------------------------------------------------------------------------
// Without user namespaces, --isolate-network fails; it never runs unisolated
// ---------------------------------------------------------------------------

/// A user namespace of the test's own, mapping root and nobody, where the
/// test lowers `user.max_user_namespaces` to 0 (a limit per namespace), so
/// that nobody inside cannot create one.
struct NoUserNs {
    holder: Child,
}

impl NoUserNs {
    fn new() -> Result<NoUserNs, String> {
        let holder =
            Command::new("unshare").args(["-U", "sleep", "120"]).spawn().map_err(|e| e.to_string())?;
        let ours = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
        let ns = format!("/proc/{}/ns/user", holder.id());
        // Killed on drop, whatever happens next.
        let this = NoUserNs { holder };
        if !wait_until(Duration::from_secs(5), || std::fs::read_link(&ns).is_ok_and(|n| n != ours)) {
            return Err("unshare -U made no user namespace".into());
        }
        for map in ["uid_map", "gid_map"] {
            // One write: the kernel takes a map whole or not at all.
            let path = format!("/proc/{}/{map}", this.holder.id());
            std::fs::write(&path, format!("0 0 1\n{NOBODY} {NOBODY} 1\n"))
                .map_err(|e| format!("{path}: {e}"))?;
        }
        Ok(this)
    }

    /// nsenter into it, set the limit, and run sockstrace as nobody.
    fn wrapper(&self) -> Vec<String> {
        [
            "nsenter",
            "-t",
            &self.holder.id().to_string(),
            "-U",
            "--preserve-credentials",
            "sh",
            "-c",
            &format!(
                "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \"$@\""
            ),
            "sh",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for NoUserNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn without_user_namespaces_isolation_fails_clearly() {
    if !is_root() {
        skip!("making a user namespace without user namespaces for nobody needs root");
    }
    let ns = match NoUserNs::new() {
        Ok(ns) => ns,
        Err(e) => skip!("a user namespace for the test: {e}"),
    };
    let c = Copies::new();
    let marker = tempfile::Builder::new().prefix("sockstrace-isolate").tempdir().unwrap();
    std::fs::set_permissions(marker.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let ran: PathBuf = marker.path().join("ran");
    let program = format!("touch {}", ran.display());
    let out = Trace::new()
        .bin(&c.sockstrace)
        .world_writable_dir()
        .wrapper(ns.wrapper())
        .opts([ISOLATE])
        .program(["sh", "-c", &program])
        .run();
    assert_eq!(out.code(), 125, "{}", out.describe());
    assert!(
        out.stderr.contains("--isolate-network") && out.stderr.contains("user namespace"),
        "the error does not say what failed\n{}",
        out.describe()
    );
    assert!(!ran.exists(), "the program ran without isolation\n{}", out.describe());
    // The same namespace, without --isolate-network: the program runs (the
    // failure above was the isolation's, not the setup's).
    let out = Trace::new()
        .bin(&c.sockstrace)
        .world_writable_dir()
        .wrapper(ns.wrapper())
        .program(["sh", "-c", &program])
        .run();
    out.assert_code(0);
    assert!(ran.exists(), "the program did not run\n{}", out.describe());
    // doctor says so too.
    let out = Trace::raw(["doctor"]).bin(&c.sockstrace).world_writable_dir().wrapper(ns.wrapper()).run();
    assert!(
        out.stdout.lines().any(|l| l.starts_with("off") && l.contains("--isolate-network")),
        "doctor does not say isolation is unavailable\n{}",
        out.describe()
    );
}

/// A process of another user (nobody) outside the run; killed on drop.
struct Victim(Child);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// As root, the program runs in a user namespace with the full identity map:
/// it keeps root's file access (a 0600 file of root's is read) and runs as
/// uid 0, but holds no capability over the host: loading a module or turning
/// a swap device off (judged before its path, which does not exist), killing
/// another user's process outside the run, mounting in the host's mount
/// namespace (a mount lands in its own mount namespace, if anywhere) and
/// opening the host's network namespace all fail, with the Landlock domain
/// (which refuses most of these by itself) off.
#[test]
fn a_root_program_keeps_its_files_and_has_no_power_over_the_host_isolated() {
    if !is_root() {
        skip!("the root half of isolation needs root");
    }
    if release_build() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    let dir = tempfile::Builder::new().prefix("sockstrace-rootns").tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "only-root-reads-this\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let victim = Victim(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"])
            .spawn()
            .expect("start a process as nobody"),
    );
    let program = client("root_host");
    let (victim_pid, host_pid) = (victim.0.id().to_string(), std::process::id().to_string());
    let out = Trace::new()
        .env("SOCKSTRACE_TEST_DISABLE", "landlock")
        .opts([ISOLATE])
        .program([
            program.as_os_str(),
            secret.as_os_str(),
            victim_pid.as_ref(),
            mnt.as_os_str(),
            host_pid.as_ref(),
        ])
        .run();
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(mnt.to_str().unwrap());
    if mounted {
        let _ = Command::new("umount").arg(&mnt).status();
    }
    out.assert_code(0);
    out.assert_isolated();
    assert!(out.stderr.contains("root mapped whole"), "{}", out.describe());
    assert!(
        out.stderr.contains("program root in a user namespace of its own"),
        "the layers line says what the root program can do\n{}",
        out.describe()
    );
    for want in [
        "uid: 0 euid: 0",
        "read: ok only-root-reads-this",
        "swapoff: errno=1 ",
        "kill: errno=1 ",
        "mount: ",
        "setns: open errno=13 ",
    ] {
        assert!(out.stdout.lines().any(|l| l.starts_with(want)), "want {want:?}\n{}", out.describe());
    }
    // EPERM, or ENOSYS on a kernel without modules.
    assert!(!out.stdout.contains("init_module: ok"), "{}", out.describe());
    assert!(!mounted, "the program mounted a tmpfs in the host's mount namespace\n{}", out.describe());
}

// ---------------------------------------------------------------------------
// The SOCKS inspector through the forwarder: the findings of run_inspect.rs
// ---------------------------------------------------------------------------

const NAME: &str = "web.sockstrace.test";

/// curl under `trace` with `--isolate-network`, no proxy from the environment.
fn isolated_curl(trace: Trace, args: &[&str]) -> Outcome {
    let mut argv = vec!["curl", "-q", "-sS", "--max-time", "20"];
    argv.extend_from_slice(args);
    let out = no_proxy_env(trace).opts([ISOLATE]).program(argv).run();
    out.assert_isolated();
    out
}

/// A finding names the program (pid, fd of its socket), as without
/// isolation: the relay knew who was behind the forwarded connection.
fn assert_names_the_program(ev: &sockstrace_tests::Event, who: &str, out: &Outcome) {
    assert_eq!(ev.s("comm"), "curl", "as {who}: {ev}\n{}", out.describe());
    assert!(ev.i("pid").is_some_and(|p| p > 0), "as {who}: {ev}\n{}", out.describe());
    assert!(ev.i("fd").is_some_and(|fd| fd >= 0), "as {who}: {ev}\n{}", out.describe());
}

#[test]
fn a_socks4_request_by_address_is_flagged_and_refused_isolated() {
    let socks = match Microsocks::start() {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let proxy = socks.addr().to_string();
    for (who, trace, _copies) in as_root_and_nobody() {
        let trace = trace.proxy(socks.addr()).opts(["--inspect-socks"]);
        let out = isolated_curl(trace, &["--socks4", &proxy, &web.url()]);
        assert_ne!(out.code(), 0, "as {who}: the relay refuses the request\n{}", out.describe());
        let flagged = out.leaks_for("socks-by-address");
        assert_eq!(flagged.len(), 1, "as {who}\n{}", out.describe());
        assert_eq!(flagged[0].s("dst"), web.dst(), "as {who}\n{}", out.describe());
        assert_eq!(flagged[0].s("action"), "blocked", "as {who}\n{}", out.describe());
        assert_names_the_program(flagged[0], who, &out);
        assert_eq!(web.requests(), 0, "as {who}");
    }
    // SOCKS4a carries the name: nothing to flag (microsocks speaks SOCKS5 only). A name, not
    // the URL's address: a SOCKS4a host that spells an address is by address
    // (`redteam_r37::a_socks4a_host_that_is_a_dotted_address_is_flagged`).
    let url = format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap());
    let out = isolated_curl(
        Trace::new().proxy(socks.addr()).opts(["--inspect-socks"]),
        &["--socks4a", &proxy, &url],
    );
    assert!(out.leaks().is_empty(), "{}", out.describe());
}

#[test]
fn socks5h_through_the_inspector_works_isolated() {
    let socks = match Microsocks::start_with_hosts(&format!("127.0.0.2 {NAME}\n")) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let url = format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap());
    let proxy = socks.addr().to_string();
    for (who, trace, _copies) in as_root_and_nobody() {
        let before = web.requests();
        let trace = trace.proxy(socks.addr()).opts(["--inspect-socks"]);
        let out = isolated_curl(trace, &["--socks5-hostname", &proxy, &url]);
        out.assert_code(0);
        assert!(out.stdout.contains(web.body()), "as {who}\n{}", out.describe());
        assert!(out.leaks().is_empty(), "as {who}\n{}", out.describe());
        assert_eq!(web.requests(), before + 1, "as {who}");
    }
}

/// `--dns proxy` works without root under isolation, so this runs as nobody too.
#[test]
fn socks5_by_address_after_a_local_lookup_is_flagged_isolated() {
    let socks = match Microsocks::start_with_hosts(&format!("127.0.0.2 {NAME}\n")) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let url = format!("http://{NAME}:{}/", web.dst().rsplit(':').next().unwrap());
    let proxy = socks.addr().to_string();
    for (who, trace, _copies) in as_root_and_nobody() {
        // curl --socks5 resolves the name itself (through sockstrace's own
        // resolver), then asks the proxy for the address.
        let trace = trace.proxy(socks.addr()).opts(["--inspect-socks", "--dns", "proxy"]);
        let out = isolated_curl(trace, &["--socks5", &proxy, &url]);
        assert_ne!(out.code(), 0, "as {who}\n{}", out.describe());
        let flagged = out.leaks_for("socks-by-address");
        assert_eq!(flagged.len(), 1, "as {who}\n{}", out.describe());
        assert_names_the_program(flagged[0], who, &out);
        assert_eq!(web.requests(), 0, "as {who}");
    }
}

#[test]
fn require_socks_auth_and_isolation_regex_isolated() {
    let open = match Microsocks::start() {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let locked = match Microsocks::start_with("", Some(("shared", "pw"))) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let matching = match Microsocks::start_with("", Some(("iso-7", "pw"))) {
        Ok(s) => s,
        Err(e) => skip!("{e}"),
    };
    let web = HttpServer::bind("127.0.0.2");
    let isolation = ["--isolation-regex", "^iso-[0-9]+$"];
    let with = |user: &str, px: &Microsocks| format!("socks5://{user}:pw@{}", px.addr());
    for (who, trace, _copies) in as_root_and_nobody() {
        let before = web.requests();
        let proxy = open.addr().to_string();
        let out = isolated_curl(
            trace.proxy(open.addr()).opts(["--require-socks-auth"]),
            &["--socks5", &proxy, &web.url()],
        );
        assert_ne!(out.code(), 0, "as {who}\n{}", out.describe());
        let flagged = out.leaks_for("socks-no-auth");
        assert_eq!(flagged.len(), 1, "as {who}\n{}", out.describe());
        assert_names_the_program(flagged[0], who, &out);
        assert_eq!(web.requests(), before, "as {who}");
    }
    for (who, trace, _copies) in as_root_and_nobody() {
        let before = web.requests();
        let out = isolated_curl(
            trace.proxy(locked.addr()).opts(isolation),
            &["-x", &with("shared", &locked), &web.url()],
        );
        assert_ne!(out.code(), 0, "as {who}\n{}", out.describe());
        assert_eq!(out.leaks_for("socks-isolation").len(), 1, "as {who}\n{}", out.describe());
        assert_eq!(web.requests(), before, "as {who}");
    }
    // Credentials that match pass, and the request goes through.
    for (who, trace, _copies) in as_root_and_nobody() {
        let before = web.requests();
        let out = isolated_curl(
            trace.proxy(matching.addr()).opts(isolation),
            &["-x", &with("iso-7", &matching), &web.url()],
        );
        out.assert_code(0);
        assert!(out.leaks().is_empty(), "as {who}\n{}", out.describe());
        assert_eq!(web.requests(), before + 1, "as {who}");
    }
}

/// `--dns proxy` without root: the program's own mount namespace (in its user
/// namespace) names the resolver, reached over UDP through the forwarder.
#[test]
fn dns_proxy_works_isolated_as_root_and_nobody() {
    for (who, trace, _copies) in as_root_and_nobody() {
        let out = trace
            .opts([ISOLATE, "--dns", "proxy"])
            .program(["sh", "-c", "grep nameserver /etc/resolv.conf; getent hosts example.com"])
            .run();
        out.assert_code(0);
        assert!(out.stdout.contains("nameserver 127.77."), "as {who}\n{}", out.describe());
        assert!(
            out.stdout.lines().any(|l| l.ends_with(" example.com")),
            "as {who}: no answer for example.com\n{}",
            out.describe()
        );
        assert!(
            out.stderr.contains("answered by sockstrace's resolver (0 failed)"),
            "as {who}\n{}",
            out.describe()
        );
        out.assert_isolated();
        out.assert_no_leaks();
    }
}

// ---------------------------------------------------------------------------
// An allowed address that is not loopback: added to lo inside, forwarded
// ---------------------------------------------------------------------------

const LAN_HOST: &str = "10.79.0.1";
const LAN_FAR: &str = "10.79.0.2";

/// A TCP listener on the LAN's far end that counts what it accepts (the
/// harness's TcpSink takes loopback only).
struct LanListener {
    port: u16,
    accepts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LanListener {
    fn start(ns: &sockstrace_tests::netns::NetNs) -> LanListener {
        let l = ns.inside(|| std::net::TcpListener::bind((LAN_FAR, 0)).expect("listen on the far end"));
        let port = l.local_addr().unwrap().port();
        let accepts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepts.clone();
        // Ends with the test process.
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if conn.is_ok() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        LanListener { port, accepts }
    }

    fn port(&self) -> String {
        self.port.to_string()
    }

    fn dst(&self) -> String {
        format!("{LAN_FAR}:{}", self.port)
    }

    fn accepts(&self) -> usize {
        self.accepts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// On a veth LAN the test makes: `--allow FAR:PORT` reaches the far end through
/// the forwarder (as root and as nobody); another port of the same address and
/// a UDP datagram to it reach nothing, with the fences off and leaks let through,
/// where without isolation both arrive.
#[test]
fn an_allowed_lan_address_is_forwarded_and_nothing_else_reaches_the_lan() {
    if !is_root() {
        skip!("the test LAN (network namespace, veth pair) needs root");
    }
    if release_build() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    let ns = match sockstrace_tests::netns::NetNs::create(
        &[&format!("{LAN_HOST}/24")],
        &[&format!("{LAN_FAR}/24")],
    ) {
        Ok(ns) => ns,
        Err(e) => skip!("test LAN: {e}"),
    };
    let allowed = LanListener::start(&ns);
    let other = LanListener::start(&ns);
    let udp = ns.udp_sink(LAN_FAR);
    let mut c = Copies::new();
    let probe = c.add(&client("netprobe"), "netprobe");
    let p = probe.to_str().unwrap();
    for (who, trace) in [("root", Trace::new()), ("nobody", c.as_nobody())] {
        let before = allowed.accepts();
        let out = trace
            .opts([ISOLATE])
            .allow(&allowed.dst())
            .program([p, "tcp-connect", LAN_FAR, &allowed.port()])
            .run();
        out.assert_code(0);
        out.assert_isolated();
        assert!(
            wait_until(Duration::from_secs(5), || allowed.accepts() > before),
            "as {who}: the allowed LAN address was not reached\n{}",
            out.describe()
        );
    }
    let (other_port, udp_port) = (other.port(), udp.port());
    let attacks: [(&str, Vec<&str>); 2] = [
        ("TCP to another port", vec![p, "tcp-connect", LAN_FAR, &other_port]),
        ("UDP", vec![p, "udp-sendto", LAN_FAR, &udp_port]),
    ];
    let arrived = || (other.accepts(), udp.datagrams());
    for (what, argv) in &attacks {
        let before = arrived();
        let base = fences_off_trace(Trace::new()).allow(&allowed.dst()).program(argv).run();
        assert!(
            wait_until(Duration::from_secs(5), || arrived() != before),
            "baseline: {what} did not reach the LAN\n{}",
            base.describe()
        );
        let before = arrived();
        let out = fences_off_trace(Trace::new()).opts([ISOLATE]).allow(&allowed.dst()).program(argv).run();
        settle();
        out.assert_isolated();
        assert_eq!(arrived(), before, "isolated: {what} reached the LAN\n{}", out.describe());
    }
}

/// A non-blocking connect to the proxy (what event loops do) completes as
/// without isolation: the supervisor connects the program's own socket to the
/// forwarder, so whatever watches it (poll, epoll) sees it complete. The
/// configuration file's `isolate-network = true` turns isolation on.
#[test]
fn nonblocking_connect_to_the_proxy_works_isolated_from_the_config_file() {
    let px = sockstrace_tests::TcpSink::bind("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sockstrace.toml");
    std::fs::write(&config, "isolate-network = true\n").unwrap();
    let out = Trace::new()
        .opts(["--config", config.to_str().unwrap()])
        .proxy(px.addr())
        .program([client("netprobe").to_str().unwrap(), "tcp-connect-nonblock", &px.host(), &px.port()])
        .run();
    out.assert_code(0);
    out.assert_isolated();
    out.assert_no_leaks();
    assert!(
        wait_until(Duration::from_secs(5), || px.accepts() == 1),
        "the proxy did not see the connection through the forwarder\n{}",
        out.describe()
    );
}

/// The first of `paths` that exists, or "-".
fn first_existing(paths: &[&str]) -> String {
    paths.iter().find(|p| Path::new(p).exists()).map_or("-".into(), |p| p.to_string())
}

/// As root, the program's /proc/sys, /sys (and every mount below it) and
/// /proc/sysrq-trigger are read-only, and it cannot make them writable
/// again: root inside the user namespace is still uid 0, which is all the
/// kernel asks of a writer of a global sysctl (`kernel.core_pattern` names a
/// helper the kernel runs as real root in the host's namespaces) or of a sysfs
/// attribute, and the cgroup file system below /sys is how it would leave
/// the run's cgroup (and the kernel layer's hooks). Unmounting /proc/sys (to uncover the writable one below) and
/// remounting it read-write fail (so does reaching the host's /proc/sys
/// through /proc/1/root or the supervisor's /proc/PPID/root), and each is followed by a fresh try to
/// write. It still reads /proc/sys, /sys and a root-only file. Nothing is
/// ever written but a file's own current value, and only if it opened.
#[test]
fn a_root_program_cannot_write_sysctls_or_sysfs_isolated() {
    if !is_root() {
        skip!("the root half of isolation needs root");
    }
    if release_build() {
        skip!("a release build ignores SOCKSTRACE_TEST_DISABLE");
    }
    let dir = tempfile::Builder::new().prefix("sockstrace-rosys").tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "only-root-reads-this\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let attr = first_existing(&["/sys/kernel/mm/ksm/run", "/sys/kernel/mm/transparent_hugepage/enabled"]);
    if attr == "-" {
        skip!("no root-writable sysfs attribute known here");
    }
    let sub = first_existing(&["/sys/kernel/tracing/tracing_on", "/sys/kernel/debug/tracing/tracing_on"]);
    let program = client("root_sys");
    let out = Trace::new()
        .env("SOCKSTRACE_TEST_DISABLE", "landlock")
        .opts([ISOLATE])
        .program([program.as_os_str(), secret.as_os_str(), attr.as_ref(), sub.as_ref(), mnt.as_os_str()])
        .run();
    out.assert_code(0);
    out.assert_isolated();
    let line = |op: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{op}: ")))
            .unwrap_or_else(|| panic!("no {op:?} line\n{}", out.describe()))
            .to_string()
    };
    let erofs = "errno=30 ";
    assert!(line("read").starts_with("read: ok only-root-reads-this"), "{}", out.describe());
    assert!(line("sysctl_read").starts_with("sysctl_read: ok "), "{}", out.describe());
    assert!(line("sys_read").starts_with("sys_read: ok "), "{}", out.describe());
    for op in [
        "sysctl_write",
        "sysctl_write_after_umount",
        "sysctl_write_after_umount_detach",
        "sysctl_write_after_remount_rw",
        "sysctl_write_after_setattr_rw",
        "sys_write",
        "cgroup_write",
    ] {
        assert!(line(op).contains(erofs), "want EROFS for {op}\n{}", out.describe());
    }
    for op in [
        "umount",
        "umount_detach",
        "remount_rw",
        "setattr_rw",
        "sys_remount_rw",
        "sysfs_mount",
        "via_init",
        "via_parent",
    ] {
        assert!(line(op).contains("errno="), "{op} worked\n{}", out.describe());
    }
    if sub != "-" {
        assert!(line("sub_write").contains(erofs), "{}", out.describe());
    }
    if Path::new("/proc/sysrq-trigger").exists() {
        assert!(line("sysrq_write").contains(erofs), "{}", out.describe());
    }
}

/// A short program's last connection through a forwarder reaches its destination: the
/// program connects (to the forwarder in its namespace), sends and exits at once, while the
/// far end's address comes 300 ms later. The run's end waits (up to 2 s) for the
/// forwarders' accept queues and uploads (`forward::Uploads`); the test above flaked once
/// under load as nobody without that wait (the relay went with the runtime). This test did
/// not make that race certain here: it guards the delivery itself.
#[test]
fn a_short_programs_last_forwarded_connection_is_delivered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if !is_root() {
        skip!("the test LAN (network namespace, veth pair) needs root");
    }
    let ns = match sockstrace_tests::netns::NetNs::create(&[&format!("{LAN_HOST}/24")], &[]) {
        Ok(ns) => ns,
        Err(e) => skip!("test LAN: {e}"),
    };
    let ns_if = ns.veth().expect("the veth pair").1.to_owned();
    let l = ns.inside(|| std::net::TcpListener::bind(("0.0.0.0", 0)).expect("listen on the far end"));
    let port = l.local_addr().unwrap().port();
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut { conn }, &mut buf);
            counter.fetch_add(buf.len(), Ordering::SeqCst);
        }
    });
    let late_address = {
        let (name, ns_if) = (ns.name().to_owned(), ns_if.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let far = format!("{LAN_FAR}/24");
            Command::new("ip")
                .args(["netns", "exec", &name, "ip", "addr", "add", &far, "dev", &ns_if])
                .status()
        })
    };
    let dst = format!("{LAN_FAR}:{port}");
    let out =
        Trace::new().opts([ISOLATE]).allow(&dst).netprobe(["tcp-connect", LAN_FAR, &port.to_string()]).run();
    assert!(late_address.join().unwrap().is_ok_and(|s| s.success()), "adding the far end's address");
    out.assert_code(0);
    out.assert_isolated();
    assert!(out.stdout.contains("send: ok"), "{}", out.describe());
    assert!(
        wait_until(Duration::from_secs(3), || received.load(Ordering::SeqCst) > 0),
        "the far end received nothing of what the program sent\n{}",
        out.describe()
    );
}
