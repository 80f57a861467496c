//! `sockstrace run --user`: the program runs as its own user (no
//! capabilities) under a root supervisor, which keeps the kernel layer, the
//! cgroup and the Landlock fence. Under `sudo` (SUDO_UID set, we are root) the
//! invoking user is the default; `--user root` keeps root.

use std::time::Duration;

use sockstrace_tests::{is_root, skip, LeakSpec, Outcome, TcpSink, Trace};

const NOBODY_UID: &str = "65534";
const PY: &str = "/usr/bin/python3";

/// Prints who the program is, one `key=value` per line.
const WHOAMI: &str = r#"echo uid=$(id -u) gid=$(id -g) groups="$(id -G)"
echo HOME=$HOME USER=$USER LOGNAME=$LOGNAME SHELL=$SHELL
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status"#;

fn whoami(t: Trace) -> Outcome {
    t.program(["/bin/sh", "-c", WHOAMI]).run()
}

/// The value of `Key:` in the program's /proc/self/status lines.
fn status_field<'a>(out: &'a Outcome, key: &str) -> &'a str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in the program's output\n{}", out.describe()))
}

fn layers_program(out: &Outcome) -> String {
    out.summary_obj()["layers"]["program"].as_str().unwrap_or_default().to_owned()
}

fn assert_no_capabilities(out: &Outcome) {
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(out, key), "0000000000000000", "{key}\n{}", out.describe());
    }
    assert_eq!(status_field(out, "NoNewPrivs"), "1", "{}", out.describe());
}

#[test]
fn user_nobody_runs_the_program_without_capabilities() {
    if !is_root() {
        skip!("--user needs a root supervisor");
    }
    let out = whoami(Trace::new().opts(["--user", "nobody"]).env_remove("SUDO_UID"));
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!("uid={NOBODY_UID} gid={NOBODY_UID} groups={NOBODY_UID}\n")),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("USER=nobody LOGNAME=nobody"), "{}", out.describe());
    assert!(out.stdout.contains("HOME=/nonexistent"), "HOME is nobody's\n{}", out.describe());
    assert_no_capabilities(&out);
    let program = layers_program(&out);
    assert_eq!(program, "uid 65534 (nobody), no capabilities", "{}", out.describe());
    assert!(
        out.stderr.contains("program uid 65534 (nobody), no capabilities"),
        "the layers line names the program's user\n{}",
        out.describe()
    );
    // The kernel layer stays with the root supervisor.
    assert!(out.kernel_layer().starts_with("on (enforcing"), "{}", out.describe());
}

#[test]
fn a_numeric_user_and_the_environment_variable_work_too() {
    if !is_root() {
        skip!("--user needs a root supervisor");
    }
    let out = whoami(Trace::new().opts(["--user", NOBODY_UID]));
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("uid={NOBODY_UID} gid={NOBODY_UID}")), "{}", out.describe());
    let out = whoami(Trace::new().env("SOCKSTRACE_USER", "nobody"));
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("uid={NOBODY_UID} gid={NOBODY_UID}")), "{}", out.describe());
}

#[test]
fn under_sudo_the_invoking_user_is_the_default() {
    if !is_root() {
        skip!("the SUDO_UID default applies to a root supervisor");
    }
    let out = whoami(Trace::new().env("SUDO_UID", NOBODY_UID).env("SUDO_GID", NOBODY_UID));
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("uid={NOBODY_UID} gid={NOBODY_UID}")), "{}", out.describe());
    assert_no_capabilities(&out);
    assert!(
        out.stderr.contains(
            "sockstrace: running the program as nobody (uid 65534) from SUDO_UID; --user root keeps root"
        ),
        "one line says so\n{}",
        out.describe()
    );
}

#[test]
fn user_root_keeps_root_even_under_sudo() {
    if !is_root() {
        skip!("needs root");
    }
    let out =
        whoami(Trace::new().opts(["--user", "root"]).env("SUDO_UID", NOBODY_UID).env("SUDO_GID", NOBODY_UID));
    out.assert_code(0);
    assert!(out.stdout.contains("uid=0 gid=0"), "{}", out.describe());
    assert!(!out.stderr.contains("from SUDO_UID"), "{}", out.describe());
    assert_ne!(status_field(&out, "CapEff"), "0000000000000000", "{}", out.describe());
    assert!(layers_program(&out).starts_with("root (all capabilities"), "{}", out.describe());
}

/// The test harness (root, no SUDO_UID) and CI: nothing changes.
#[test]
fn root_without_sudo_uid_keeps_root_and_says_so() {
    if !is_root() {
        skip!("needs root");
    }
    let out = whoami(Trace::new().env_remove("SUDO_UID").env_remove("SUDO_GID"));
    out.assert_code(0);
    assert!(out.stdout.contains("uid=0 gid=0"), "{}", out.describe());
    assert_eq!(
        layers_program(&out),
        "root (all capabilities: it can leave its cgroup and change the network)",
        "{}",
        out.describe()
    );
}

#[test]
fn unknown_user_is_a_usage_error() {
    if !is_root() {
        skip!("needs root");
    }
    let out = Trace::new().opts(["--user", "no-such-user-sockstrace"]).program(["true"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("no-such-user-sockstrace"), "{}", out.describe());
}

#[test]
fn python_client_as_nobody_reaches_the_proxy_and_not_around_it() {
    if !is_root() {
        skip!("needs root");
    }
    let proxy = TcpSink::bind("127.0.0.1");
    let direct = TcpSink::bind("127.0.0.2");
    let script = format!(
        r#"import os, socket
print("uid", os.getuid(), flush=True)
s = socket.create_connection(("{ph}", {pp}))
s.sendall(b"through-the-proxy")
s.close()
try:
    socket.create_connection(("{dh}", {dp})).sendall(b"around")
    print("direct: connected", flush=True)
except OSError as e:
    print("direct: errno", e.errno, flush=True)
"#,
        ph = proxy.host(),
        pp = proxy.port(),
        dh = direct.host(),
        dp = direct.port()
    );
    let out = Trace::new().proxy(proxy.addr()).opts(["--user", "nobody"]).program([PY, "-c", &script]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("uid 65534"), "{}", out.describe());
    assert!(proxy.wait_bytes(17, Duration::from_secs(5)), "the proxy got nothing\n{}", out.describe());
    assert!(out.stdout.contains("direct: errno 1"), "{}", out.describe());
    let leak = out.assert_leak(&LeakSpec { comm: "python3", ..LeakSpec::tcp(&direct.dst()) });
    assert_eq!(leak["kernel"]["uid"], 65534, "the kernel layer attributes it to nobody: {}", leak);
    direct.assert_nothing_arrived(&out.describe());
}

/// A unix listener's credentials (SO_PEERCRED, read by its clients) are taken
/// when `listen` runs, which the supervisor performs: they must be the
/// program's user, not the supervisor's root.
#[test]
fn unix_listener_peer_credentials_are_the_programs_user() {
    if !is_root() {
        skip!("needs root");
    }
    let trace = Trace::new().world_writable_dir().opts(["--user", "nobody"]);
    let path = trace.dir().join("server.sock");
    let script = format!(
        r#"import socket, struct
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("{path}")
srv.listen(1)
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cli.connect("{path}")
pid, uid, gid = struct.unpack("3i", cli.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
print("peercred uid", uid, "gid", gid, flush=True)
"#,
        path = path.display()
    );
    let out = trace.program([PY, "-c", &script]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("peercred uid 65534 gid 65534"), "{}", out.describe());
}

/// `--dns proxy` gives the program a private mount namespace (root's to
/// make) before it becomes its user: both hold.
#[test]
fn dns_proxy_and_user_go_together() {
    if !is_root() {
        skip!("--dns proxy needs root");
    }
    let out = Trace::new()
        .opts(["--dns", "proxy", "--user", "nobody"])
        .program(["/bin/sh", "-c", "id -u; cat /etc/resolv.conf"])
        .run();
    out.assert_code(0);
    assert!(out.stdout.starts_with("65534\n"), "{}", out.describe());
    assert!(out.stdout.contains("written by sockstrace --dns proxy"), "{}", out.describe());
}

/// An unprivileged sockstrace cannot give the program another user; naming
/// itself changes nothing.
#[test]
fn unprivileged_user_switch_is_refused_and_naming_yourself_is_fine() {
    if !is_root() {
        skip!("needs root to become nobody with setpriv");
    }
    let copies = sockstrace_tests::unpriv::Copies::new();
    let out = copies.as_nobody().opts(["--user", "root"]).program(["true"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("only root can run the program as another user"), "{}", out.describe());
    let out = copies.as_nobody().opts(["--user", "nobody"]).program(["id", "-u"]).run();
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), NOBODY_UID, "{}", out.describe());
    assert_eq!(layers_program(&out), "uid 65534 (nobody)", "{}", out.describe());
}
