//! Red team r40 against the report path's resolution on descriptors
//! (`report_writer::resolve::open_report`, `kept`), the cgroup-file fence (`supervisor::cgroup_files`,
//! `fence`: a Landlock domain handling `WRITE_FILE` for every program not run as root) and the
//! terminal-stop guard (`supervisor::sys::hold_terminal_stops`).
//!
//! Attackers: `tests/clients/r40_tty.c` (terminal flow control against the supervisor), shell
//! steps run as nobody (`unshare -rm`, writes to `/dev/shm`, FIFOs, memfds, pipes), and a hard
//! link planted at the report's name. Ground truth: the sink, the victim file's contents, the
//! program's own log, whether sockstrace exits at all.
//!
//! Found (each test asserts the right behaviour and failed before its fix; all closed since: no
//! O_TRUNC and one name only, the cgroup fence only where a cgroup reaches the supervisor, nested
//! greetings read strictly and the reply passed whole, terminal lines through their own thread):
//!
//! - `the_program_cannot_freeze_its_supervisor_through_terminal_flow_control` (high: the
//!   supervisor frozen, the run never ends): the program clears `IXON` on its terminal and
//!   suspends its output (`tcflow(tty, TCOOFF)`, what ^S does; any process that has the terminal
//!   open may, no signal involved, so neither the blocked SIGTTOU/SIGTTIN nor the Landlock signal
//!   scope applies), then leaks. The worker thread that judges the leak writes its line to stderr,
//!   the terminal, *before* answering the notification, and blocks there for ever: the program's
//!   `sendto` never returns, the program never exits, no summary, no exit status, no end check of
//!   the report (the leak's line is in the report, but nothing guards the file any more, and no
//!   `report_altered` can be written). Reproduce in any terminal: `sockstrace run -- r40_tty tcooff
//!   127.0.0.1 9` (hangs; `stty -F /dev/pts/N` cannot restart it, `python3 -c 'import
//!   termios,sys; termios.tcflow(0, termios.TCOON)'` from another shell on that terminal does).
//! - `root_does_not_truncate_a_root_only_file_hard_linked_at_the_report_path` (critical where
//!   `fs.protected_hardlinks=0`, the kernel's own default, kept by systems without systemd's
//!   sysctl defaults and by many containers): the walk opens the last name with `O_NOFOLLOW |
//!   O_CREAT | O_TRUNC` whatever file it is. A hard link is no link to `O_NOFOLLOW`: the program's
//!   user (before the run, or a process of it beside the run) links a root-only file (`/etc/shadow`
//!   on the same file system) to the report's name in its own directory; `sudo sockstrace run
//!   --user nobody --report DIR/r.jsonl` truncates it and writes the report into it, exit 0, no
//!   word. The test plants the link as root when the sysctl forbids nobody to (what nobody does
//!   itself where it is 0). Reproduce: as nobody in a nobody directory `ln /etc/shadow r.jsonl`
//!   (protected_hardlinks=0), then as root `sockstrace run --user nobody --report $DIR/r.jsonl --
//!   true`.
//! - `a_program_that_mounts_in_a_namespace_of_its_own_keeps_working` (medium, false breakage):
//!   a Landlock domain that handles any file-system access refuses `mount`, `umount`,
//!   `pivot_root` and `move_mount` outright (`hook_sb_mount`: `-EPERM` for any domain with file
//!   system rights). Since the cgroup fence handles `WRITE_FILE` for every program not run as
//!   root, `unshare -rm mount -t tmpfs ...`, `bwrap`, rootless `podman`/`buildah`, flatpak apps,
//!   `firejail`, `nsjail` and test suites that make a private mount all fail under sockstrace
//!   (`unshare: cannot change root filesystem propagation: Operation not permitted`), exit 0
//!   from sockstrace's side with "0 leak(s)".
//!
//! - `a_protocol_whose_first_bytes_look_like_a_socks5_greeting_passes_the_tunnel` (medium, false
//!   breakage under `--inspect-socks`): `nested()` reads the first bytes of *every* granted
//!   tunnel; a protocol whose first message starts with its length little endian (MongoDB's wire
//!   protocol: a 261-byte `hello` begins `05 01 00 00`) is taken for a SOCKS5 greeting; the client
//!   gets 5 zero bytes instead of the server's answer, the server never its message, and the run
//!   says 0 leaks (not even `socks-uninspectable`). Reproduce: `sockstrace run --proxy P
//!   --inspect-socks -- python3 tests/clients/r40_mongo.py PHOST PPORT NAME PORT` against any
//!   server that answers a 261-byte message.
//!
//! Held:
//!
//! - `writes_that_real_programs_make_keep_working_under_the_cgroup_fence`: `/dev/shm`, `/dev/null`,
//!   a FIFO in `/tmp` opened by path, a memfd and a pipe reopened through `/proc/self/fd/N`, a
//!   file in `/tmp`, all as nobody under the fence.
//!
//! Not tried (time): `..` after a directory moved elsewhere between its open and `openat(dir,
//! "..")` (the kernel resolves `..` the same way, so the walk follows what a reader would; the
//! only gain is landing in another directory the program can write, e.g. a sticky `/tmp` holding
//! another user's file of the same name: worth a test); the `ELOOP` retry as a denial of service
//! (8 walks, then the error: a failed start, not a silent one); evasions of the relay's
//! `nested()` (SOCKS inside a granted tunnel behind TLS or HTTP CONNECT: it reads the first bytes
//! only, so both pass unread by design), `[4, 1]` protocols; cgroupfs through `/proc/PID/root` of a namespace where it is mounted beneath a granted
//! directory; an already-open `cgroup.kill` descriptor passed in by `SCM_RIGHTS` (Landlock does
//! not look at writes on open files: the question is only who outside a domain would send it,
//! e.g. a `systemd --user` transient unit started over D-Bus, which is no domain's and escapes
//! every Landlock fence of the run); vhangup, TIOCNOTTY, `TIOCSETD` (a line discipline that
//! swallows the summary), a tty whose output buffer the program fills.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sockstrace_tests::unpriv::{Copies, NOBODY};
use sockstrace_tests::{client, skip, UdpSink};

macro_rules! need_root {
    () => {
        if !sockstrace_tests::is_root() {
            skip!("switching to nobody needs root");
        }
    };
}

/// `setpriv` to nobody (no groups), then `argv`.
fn nobody(argv: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
        .args(argv)
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A scratch tree: `base` (root's, 755) holding `dir` (nobody's, 755), and copies of sockstrace
/// and the attack programs that nobody may run.
struct Scratch {
    base: tempfile::TempDir,
    dir: PathBuf,
    copies: Copies,
}

impl Scratch {
    fn new() -> Self {
        let base = tempfile::Builder::new().prefix("sockstrace-r40").tempdir().expect("tempdir");
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = base.path().join("home");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        Scratch { base, dir, copies: Copies::new() }
    }

    fn sockstrace(&self) -> String {
        self.copies.sockstrace.display().to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Found
// ---------------------------------------------------------------------------------------------

/// Found: terminal output flow control (`tcflow(TCOOFF)`, `IXON` cleared) freezes the
/// supervisor: the leak's line blocks the worker before it answers, the run never ends.
#[test]
fn the_program_cannot_freeze_its_supervisor_through_terminal_flow_control() {
    need_root!();
    let mut s = Scratch::new();
    let tty = s.copies.add(&client("r40_tty"), "r40_tty");
    let sink = UdpSink::bind("127.0.0.1");
    let log = s.dir.join("log");
    let exit = s.dir.join("exit");
    let report = s.dir.join("r.jsonl");
    let job = format!(
        "R40_LOG={log} {st} run --kernel off --report {report} -- {tty} tcooff {host} {port}; echo EXIT=$? > {exit}",
        log = log.display(),
        st = s.sockstrace(),
        report = report.display(),
        tty = tty.display(),
        host = sink.host(),
        port = sink.port(),
        exit = exit.display(),
    );
    let shell = format!("bash --norc -m -c '{job}'");
    // `timeout` ends `script`, which hangs the terminal up and kills its session.
    let out = nobody(&["timeout", "20", "script", "-qec", &shell, "/dev/null"]).output().expect("script");
    sink.assert_nothing_arrived("the leak");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let ended = std::fs::read_to_string(&exit).unwrap_or_default();
    let written = std::fs::read_to_string(&report).unwrap_or_default();
    let what = format!(
        "program's log:\n{logged}\nexit file: {ended:?}\nscript: {:?}\nreport:\n{written}",
        out.status
    );
    assert!(logged.contains("tcooff: ok"), "the attack did not run\n{what}");
    assert!(ended.starts_with("EXIT="), "sockstrace never ended the run (20 s)\n{what}");
    assert!(logged.contains("leak: refused"), "the program's leak was never answered\n{what}");
    assert!(written.contains("\"summary\""), "no summary in the report\n{what}");
}

/// Found: a root-only file hard-linked at the report's name (in the program's user's directory)
/// is truncated and overwritten by root: `O_NOFOLLOW` stops symbolic links, not hard ones.
#[test]
fn root_does_not_truncate_a_root_only_file_hard_linked_at_the_report_path() {
    need_root!();
    let s = Scratch::new();
    let victim = s.base.path().join("victim");
    std::fs::write(&victim, "SECRET\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = s.dir.join("r.jsonl");
    let (v, r) = (victim.display().to_string(), report.display().to_string());
    // nobody links it itself where the kernel lets it (fs.protected_hardlinks=0); otherwise the
    // test plants what nobody would have made.
    let linked = nobody(&["ln", "--", &v, &r]).output().expect("ln").status.success();
    if !linked {
        std::fs::hard_link(&victim, &report).unwrap();
    }
    let out = Command::new(s.sockstrace())
        .args(["run", "--kernel", "off", "--user", "nobody", "--report", &r, "--", "true"])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("sockstrace");
    let left = std::fs::read_to_string(&victim).unwrap_or_default();
    assert_eq!(
        left,
        "SECRET\n",
        "root wrote into the root-only file linked at the report's name (nobody made the link: {linked})\nexit {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sh -c SCRIPT` as nobody, bare and under sockstrace: (bare stdout, traced stdout+stderr).
fn bare_and_traced(s: &Scratch, script: &str) -> (String, String) {
    let bare = nobody(&["sh", "-c", script]).output().expect("sh");
    let traced = nobody(&[&s.sockstrace(), "run", "--kernel", "off", "--", "sh", "-c", script])
        .output()
        .expect("sockstrace");
    (
        String::from_utf8_lossy(&bare.stdout).into_owned(),
        format!("{}{}", String::from_utf8_lossy(&traced.stdout), String::from_utf8_lossy(&traced.stderr)),
    )
}

/// Found: a program that makes a user and mount namespace of its own and mounts there (what
/// `bwrap`, rootless containers and `unshare -rm` do) fails: the Landlock domain that closes
/// cgroup files refuses every mount.
#[test]
fn a_program_that_mounts_in_a_namespace_of_its_own_keeps_working() {
    need_root!();
    let s = Scratch::new();
    let script = "unshare -rm sh -c 'mount -t tmpfs none /mnt && touch /mnt/x && echo MOUNTED' 2>&1";
    let (bare, traced) = bare_and_traced(&s, script);
    if !bare.contains("MOUNTED") {
        skip!("no unprivileged user namespaces here: {bare}");
    }
    assert!(traced.contains("MOUNTED"), "the mount failed under sockstrace\n{traced}");
}

// ---------------------------------------------------------------------------------------------
// Held
// ---------------------------------------------------------------------------------------------

/// Held: writes that ordinary programs make, as nobody under the cgroup fence.
#[test]
fn writes_that_real_programs_make_keep_working_under_the_cgroup_fence() {
    need_root!();
    let s = Scratch::new();
    let d = s.dir.display();
    let script = format!(
        "echo x > /dev/shm/r40.$$ && echo SHM; rm -f /dev/shm/r40.$$; \
         echo x > /dev/null && echo NULL; \
         echo x > {d}/f && echo FILE; \
         mkfifo {d}/fifo.$$ && (cat {d}/fifo.$$ > /dev/null &) && echo x > {d}/fifo.$$ && echo FIFO; rm -f {d}/fifo.$$; \
         python3 -c 'import os; fd = os.memfd_create(\"m\"); open(\"/proc/self/fd/%d\" % fd, \"w\").write(\"x\"); print(\"MEMFD\")'; \
         python3 -c 'import os; r, w = os.pipe(); open(\"/proc/self/fd/%d\" % w, \"w\").write(\"x\"); print(\"PIPE\")'"
    );
    let (bare, traced) = bare_and_traced(&s, &script);
    for word in ["SHM", "NULL", "FILE", "FIFO", "MEMFD", "PIPE"] {
        if bare.contains(word) {
            assert!(traced.contains(word), "{word} failed under sockstrace\n{traced}");
        }
    }
}

/// Found: the relay reads the first bytes in every granted tunnel again (`nested`), and a
/// protocol whose first message starts with its length, little endian, opens "a SOCKS5
/// handshake" when that length is 0x?05 with a second byte of 1 or more: MongoDB's first message
/// (`hello`, its length set by the driver's metadata) of 261 bytes begins `05 01 00 00`. The
/// relay takes it for a greeting, then the request it cannot parse, and ends the connection.
#[test]
fn a_protocol_whose_first_bytes_look_like_a_socks5_greeting_passes_the_tunnel() {
    use std::io::{Read as _, Write as _};
    let name = "db.sockstrace.test";
    let socks = match sockstrace_tests::Microsocks::start_with_hosts(&format!("127.0.0.2 {name}\n")) {
        Ok(s) => s,
        Err(e) => panic!("microsocks: {e}"),
    };
    let server = std::net::TcpListener::bind("127.0.0.2:0").expect("bind");
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in server.incoming().flatten() {
            let mut msg = [0u8; 261];
            if c.read_exact(&mut msg).is_ok() {
                let _ = c.write_all(b"DBOK");
            }
        }
    });
    let script = format!("{}/clients/r40_mongo.py", env!("CARGO_MANIFEST_DIR"));
    let (phost, pport) = (socks.addr().ip().to_string(), socks.addr().port().to_string());
    let argv = ["/usr/bin/python3", &script, &phost, &pport, name, &port.to_string()];
    let out = sockstrace_tests::Trace::new()
        .proxy(socks.addr())
        .opts(["--inspect-socks"])
        .timeout(std::time::Duration::from_secs(60))
        .program(argv)
        .run();
    assert!(out.stdout.contains("DBOK"), "the client's first message was cut\n{}", out.describe());
}
